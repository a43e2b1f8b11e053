//! `GET /jobs/{id}/artifacts` lists a job's files; `PUT /jobs/{id}/artifacts/{name}` stores
//! one; `GET /jobs/{id}/artifacts/{name}` streams one after the caller and the name are
//! checked: Content-Length, Content-Type by extension, Range requests (warp's file server
//! over a local store; the object's stream, one range at most, from a bucket).

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use warp::http::{HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::apikeys::Account;
use crate::artifacts::validate_name;
use crate::client::Broker;
use crate::error::Error;
use crate::http::access::visible;
use crate::job::JobId;

/// `GET /jobs/{id}/artifacts`.
#[utoipa::path(get, path = "/jobs/{id}/artifacts", tag = "jobs", operation_id = "list_artifacts",
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
/// streamed to the store chunk by chunk (memory stays flat whatever the size) and refused
/// with 413 past `max_artifact_size`. The artifact appears whole or not at all. Answers 201
/// `{name, size, url}`.
#[utoipa::path(put, path = "/jobs/{id}/artifacts/{name}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id"), ("name" = String, Path, description = "Artifact name")),
    request_body(content = String, description = "The file's bytes (streamed; at most max_artifact_size)", content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored: name, size", body = Object), (status = 404, description = "No such job (or not yours)", body = crate::http::openapi::ErrorBody),
              (status = 413, description = "Over max_artifact_size", body = crate::http::openapi::ErrorBody)))]
pub async fn upload(
    id: JobId,
    raw_name: String,
    b: Broker,
    who: Account,
    body: impl Stream<Item = Result<impl Buf + Send + 'static, warp::Error>> + Send + 'static,
) -> Result<warp::reply::Response, Rejection> {
    let name = percent_decode(&raw_name)?;
    validate_name(&name)?;
    crate::http::access::steerable(&b, &who, id).await?;
    let limit = b.config().max_artifact_size;
    let body = body.map(|chunk| {
        chunk
            .map(|mut buf| buf.copy_to_bytes(buf.remaining()))
            .map_err(std::io::Error::other)
    });
    let Some(size) = b.artifacts().put_stream(id, &name, body, limit).await? else {
        return Ok(crate::http::errors::reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("artifact over max_artifact_size ({limit} bytes)"),
        ));
    };
    let body = json!({"name": name, "size": size, "url": format!("/jobs/{id}/artifacts/{name}")});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED).into_response())
}

/// `GET /jobs/{id}/artifacts/{name}`: the artifact, streamed, once the caller and the name
/// are checked. A local store is served by `warp::fs::dir`; a bucket's object is streamed
/// through with its length, a Content-Type guessed from the name, and one `Range` honoured.
pub fn download(
    b: Broker,
    who: impl Filter<Extract = (Account,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> BoxedFilter<(warp::reply::Response,)> {
    let checked = warp::get()
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
        .and_then({
            let b = b.clone();
            move |(id, name): (JobId, String), who: Account| {
                let b = b.clone();
                async move {
                    visible(&b, &who, id).await?;
                    Ok::<_, Rejection>((id, name))
                }
            }
        });
    match b.artifacts().local_dir() {
        Some(root) => {
            let store = b.artifacts();
            checked
                .and_then(move |(id, name): (JobId, String)| {
                    let store = store.clone();
                    async move {
                        // Say which artifact is missing, rather than warp's bare 404.
                        store.size(id, &name).await?;
                        Ok::<(), Rejection>(())
                    }
                })
                .untuple_one()
                .and(warp::fs::dir(root.to_path_buf()))
                .map(|f: warp::fs::File| inert(f.into_response()))
                .boxed()
        }
        None => checked
            .and(warp::header::optional::<String>("range"))
            .and_then(move |(id, name): (JobId, String), range: Option<String>| {
                let b = b.clone();
                async move { stream(&b, id, &name, range.as_deref()).await.map(inert) }
            })
            .boxed(),
    }
}

/// Artifact `name` of job `id` from a store without local files, whole (200) or the one
/// byte range the client asked for (206, or 416 when it lies outside).
async fn stream(
    b: &Broker,
    id: JobId,
    name: &str,
    range: Option<&str>,
) -> Result<warp::reply::Response, Rejection> {
    let store = b.artifacts();
    let wanted = match range.and_then(parse_range) {
        None => None,
        Some(r) => {
            let size = store.size(id, name).await?;
            match r.within(size) {
                Some(r) => Some(r),
                None => {
                    let mut resp = warp::reply::with_status(
                        warp::reply::Response::default(),
                        StatusCode::RANGE_NOT_SATISFIABLE,
                    )
                    .into_response();
                    resp.headers_mut()
                        .insert(CONTENT_RANGE, header(format!("bytes */{size}")));
                    return Ok(resp);
                }
            }
        }
    };
    let partial = wanted.is_some();
    let opened = store.open(id, name, wanted).await?;
    let (size, range) = (opened.size, opened.range.clone());
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut resp = warp::reply::stream(sync_wrapper::SyncStream::new(opened.body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        CONTENT_LENGTH,
        header((range.end - range.start).to_string()),
    );
    h.insert(CONTENT_TYPE, header(mime.to_string()));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if partial {
        let last = range.end.saturating_sub(1);
        h.insert(
            CONTENT_RANGE,
            header(format!("bytes {}-{last}/{size}", range.start)),
        );
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(resp)
}

/// Makes an artifact inert on the API's origin: whatever a job or a client uploaded, a
/// browser never runs it as a page of this origin. `nosniff` keeps the declared type; a
/// `sandbox` CSP denies scripts and same-origin rights even if it is opened; types a browser
/// would render actively (HTML, SVG, XML, JavaScript) are sent as attachments, to download.
fn inert(mut resp: warp::reply::Response) -> warp::reply::Response {
    let active = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            [
                "html",
                "xml",
                "svg",
                "javascript",
                "ecmascript",
                "xsl",
                "pdf",
            ]
            .iter()
            .any(|k| t.contains(k))
        });
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if active {
        h.insert(
            "content-disposition",
            HeaderValue::from_static("attachment"),
        );
    }
    resp
}

fn header(v: String) -> HeaderValue {
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One byte range of a `Range` header, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `bytes=a-b` (b inclusive) or `bytes=a-` (b = None).
    From(u64, Option<u64>),
    /// `bytes=-n`: the last n bytes.
    Last(u64),
}

impl ByteRange {
    /// The bytes it means in an artifact of `size` bytes; None when it lies outside.
    fn within(self, size: u64) -> Option<std::ops::Range<u64>> {
        let r = match self {
            ByteRange::From(a, b) => a..b.map_or(size, |b| b.saturating_add(1).min(size)),
            ByteRange::Last(n) => size.saturating_sub(n)..size,
        };
        (r.start < r.end).then_some(r)
    }
}

/// A `Range` header of one byte range; None for anything else (several ranges, other
/// units, bad syntax), which is answered with the whole artifact as RFC 9110 allows.
fn parse_range(h: &str) -> Option<ByteRange> {
    let spec = h.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => num(b).filter(|n| *n > 0).map(ByteRange::Last),
        (false, true) => num(a).map(|a| ByteRange::From(a, None)),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(ByteRange::From(a, Some(b)))
        }
        (true, true) => None,
    }
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

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // artifacts list
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path!("artifacts"))
            .and(warp::get())
            .and(c.caller())
            .and_then(list)
            .boxed(),
        // artifact get
        warp::path("jobs")
            .and(download(c.broker.clone(), c.who()))
            .boxed(),
        // artifact put
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path("artifacts"))
            .and(warp::path::param::<String>())
            .and(warp::path::end())
            .and(warp::put())
            .and(c.caller())
            .and(warp::body::stream())
            .and_then(upload)
            .boxed(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_range_is_understood_and_clipped_to_the_artifact() {
        let r = |h: &str, size: u64| parse_range(h).and_then(|r| r.within(size));
        assert_eq!(r("bytes=0-99", 1000), Some(0..100));
        assert_eq!(r("bytes=900-", 1000), Some(900..1000));
        assert_eq!(r("bytes=-10", 1000), Some(990..1000));
        assert_eq!(r("bytes=-5000", 1000), Some(0..1000));
        assert_eq!(r("bytes=990-2000", 1000), Some(990..1000));
        assert_eq!(r("bytes=1000-", 1000), None, "past the end: 416");
        assert_eq!(
            parse_range("bytes=1000-").map(|r| r.within(1000)),
            Some(None)
        );
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=-0",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }
}
