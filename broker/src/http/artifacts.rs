//! `GET /jobs/{id}/artifacts` lists a job's files; `GET /jobs/{id}/artifacts/{name}` streams
//! one (warp's file server over the artifact directory, after the caller and the name are
//! checked: Content-Length, Content-Type by extension, Range requests).

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::apikeys::Account;
use crate::artifacts::validate_name;
use crate::client::Broker;
use crate::error::Error;
use crate::http::jobs::visible;
use crate::job::JobId;

/// `GET /jobs/{id}/artifacts`.
#[utoipa::path(get, path = "/jobs/{id}/artifacts", tag = "jobs",
    params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, description = "The job's files: name, size, url", body = Object),
              (status = 404, description = "No such job (or not yours)", body = crate::http::openapi::ErrorBody)))]
pub async fn list(id: JobId, b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    visible(&b, &who, id).await?;
    let files: Vec<_> = b
        .artifacts()
        .list(id)
        .await?
        .into_iter()
        .map(|a| json!({"name": a.name, "size": a.size, "url": format!("/jobs/{id}/artifacts/{}", a.name)}))
        .collect();
    Ok(warp::reply::json(&json!({"id": id, "artifacts": files})).into_response())
}

/// `PUT /jobs/{id}/artifacts/{name}`: stores the body as artifact `name` of job `id`,
/// streamed to disk chunk by chunk (memory stays flat whatever the size) and refused with
/// 413 past `max_artifact_size`. The file appears whole or not at all (written aside, then
/// renamed). Answers 201 `{name, size, url}`.
pub async fn upload(
    id: JobId,
    raw_name: String,
    b: Broker,
    who: Account,
    body: impl Stream<Item = Result<impl Buf, warp::Error>>,
) -> Result<warp::reply::Response, Rejection> {
    let name = percent_decode(&raw_name)?;
    validate_name(&name)?;
    visible(&b, &who, id).await?;
    let store = b.artifacts();
    let path = store.create(id, &name).await?;
    let part = path.with_file_name(format!(".upload-{}", uuid::Uuid::new_v4().simple()));
    let limit = b.config().max_artifact_size;
    let written = write_capped(&part, Box::pin(body), limit).await;
    let size = match written {
        Ok(Some(size)) => size,
        Ok(None) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Ok(crate::http::errors::reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("artifact over max_artifact_size ({limit} bytes)"),
            ));
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(Error::Invalid(format!("upload of {name:?} failed: {e}")).into());
        }
    };
    tokio::fs::rename(&part, &path)
        .await
        .map_err(|e| Error::Config(format!("storing {name:?}: {e}")))?;
    let body = json!({"name": name, "size": size, "url": format!("/jobs/{id}/artifacts/{name}")});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED).into_response())
}

/// Writes `body` to `path`; None when it grows past `limit` bytes.
async fn write_capped(
    path: &std::path::Path,
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
    limit: u64,
) -> Result<Option<u64>, String> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| e.to_string())?;
        size += chunk.remaining() as u64;
        if size > limit {
            return Ok(None);
        }
        while chunk.has_remaining() {
            let n = {
                let bytes = chunk.chunk();
                file.write_all(bytes).await.map_err(|e| e.to_string())?;
                bytes.len()
            };
            chunk.advance(n);
        }
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(Some(size))
}

/// `GET /jobs/{id}/artifacts/{name}`: the file, streamed from the artifact directory.
pub fn download(
    b: Broker,
    who: impl Filter<Extract = (Account,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (warp::fs::File,), Error = Rejection> + Clone {
    let root = b.config().artifact_dir.clone();
    warp::get()
        .and(warp::path::peek())
        .and_then(|tail: warp::path::Peek| async move {
            // The tail is "<id>/artifacts/<name>" (the route starts after "/jobs").
            let parts: Vec<&str> = tail.as_str().split('/').collect();
            let [id, "artifacts", name] = parts.as_slice() else {
                return Err(warp::reject::not_found());
            };
            let id: JobId = id.parse().map_err(|_| warp::reject::not_found())?;
            let name = percent_decode(name)?;
            validate_name(&name)?;
            Ok::<_, Rejection>((id, name))
        })
        .and(who)
        .and_then(move |(id, name): (JobId, String), who: Account| {
            let b = b.clone();
            async move {
                visible(&b, &who, id).await?;
                if !b.artifacts().path(id, &name)?.is_file() {
                    return Err(Error::Missing(format!("artifact {name:?} of job {id}")).into());
                }
                Ok::<(), Rejection>(())
            }
        })
        .untuple_one()
        .and(warp::fs::dir(root))
}

/// Decodes %XX escapes of a path segment (names may hold spaces).
fn percent_decode(raw: &str) -> Result<String, Rejection> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::Invalid(format!("bad %-escape in {raw:?}")).into());
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Invalid(format!("{raw:?} is not UTF-8")).into())
}
