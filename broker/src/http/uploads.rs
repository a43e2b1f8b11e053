//! `multipart/form-data` bodies that carry a job and its files (`POST /jobs`,
//! `POST /v1/pipelines/{id}/runs`): the first part is the JSON request, every later part a
//! file (its filename is the artifact's name), streamed into the store as it arrives. The
//! job is created held and made ready only once every file is stored ([`crate::uploads`]).

use std::future::Future;
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use warp::filters::multipart::{FormData, Part};
use warp::filters::BoxedFilter;
use warp::Filter;

use crate::client::Broker;
use crate::error::Error;
use crate::job::{JobId, Status};
use crate::uploads::Files;

/// Largest JSON part of a multipart submit (the files carry the bulk).
pub const REQUEST_PART_LIMIT: usize = 1 << 20;

/// Whether a Content-Type names a `multipart/form-data` body.
pub fn is_multipart(content_type: &str) -> bool {
    content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
}

/// A `multipart/form-data` body (other content types fall through to the JSON routes).
/// Its length is not capped as a whole: the request part is capped at
/// [`REQUEST_PART_LIMIT`], each file at `max_artifact_size`, the count at
/// [`crate::uploads::MAX_FILES`].
pub fn form() -> BoxedFilter<(FormData,)> {
    warp::header::<String>("content-type")
        .and_then(|ct: String| async move {
            if is_multipart(&ct) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(warp::multipart::form().max_length(None))
        .boxed()
}

/// What a multipart submit made: the job, its status once ready, and its files.
#[derive(Debug)]
pub struct Submitted {
    /// The job.
    pub id: JobId,
    /// PENDING, or SCHEDULED until its `run_at`.
    pub status: Status,
    /// Each file stored, `(name, size)`.
    pub files: Files,
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("multipart body: {e}"))
}

/// Reads `form`: its first part must be named `request` (the JSON request, at most
/// [`REQUEST_PART_LIMIT`] bytes), which `create` turns into a held job and its `run_at`;
/// then stores every later part as a file of that job and makes it ready. Any failure
/// after the job exists cancels it.
///
/// # Errors
/// [`Error::Invalid`] for a malformed body, a missing request part or a file part without a
/// filename; what `create` answers; [`Error::TooLarge`] for a file over its limit.
pub async fn submit<F, Fut>(
    b: &Broker,
    mut form: FormData,
    request: &str,
    create: F,
) -> Result<Submitted, Error>
where
    F: FnOnce(Bytes) -> Fut,
    Fut: Future<Output = Result<(JobId, Option<SystemTime>), Error>>,
{
    let first = form
        .next()
        .await
        .ok_or_else(|| bad(format!("no parts; the first must be {request:?}")))?
        .map_err(bad)?;
    if first.name() != request {
        return Err(bad(format!(
            "the first part must be {request:?} (the JSON request), not {:?}",
            first.name()
        )));
    }
    let body = read_small(first, REQUEST_PART_LIMIT).await?;
    let (id, run_at) = create(body).await?;
    let parts = form.map(|part| {
        let part = part.map_err(bad)?;
        let Some(name) = part.filename().map(str::to_string) else {
            return Err(bad(format!(
                "part {:?} has no filename (every part after {request:?} is a file)",
                part.name()
            )));
        };
        let body = part.stream().map(|chunk| {
            chunk
                .map(|mut buf| buf.copy_to_bytes(buf.remaining()))
                .map_err(std::io::Error::other)
        });
        Ok((name, body))
    });
    let (status, files) = b.fill_held(id, run_at, parts).await?;
    Ok(Submitted { id, status, files })
}

/// The whole of a small part, refused past `limit` bytes.
async fn read_small(part: Part, limit: usize) -> Result<Bytes, Error> {
    part.stream()
        .map_err(bad)
        .try_fold(BytesMut::new(), |mut acc, mut buf| async move {
            if acc.len() + buf.remaining() > limit {
                return Err(Error::TooLarge(format!(
                    "the request part is over {limit} bytes; send large data as files"
                )));
            }
            acc.extend_from_slice(&buf.copy_to_bytes(buf.remaining()));
            Ok(acc)
        })
        .await
        .map(BytesMut::freeze)
}
