//! `GET /jobs/{id}/artifacts` lists a job's files; `GET /jobs/{id}/artifacts/{name}` streams
//! one (warp's file server over the artifact directory, after the caller and the name are
//! checked: Content-Length, Content-Type by extension, Range requests).

use serde_json::json;
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
