//! `GET /jobs/{id}/events`: server-sent events of one job, live from the Redis event stream.
//! The first event is a `snapshot` of the job; then one event per transition or progress
//! report (named as in the stream: claimed, progress, completed, ...); the stream ends after
//! the job's terminal event. Followers read the global stream and keep this job's entries.
//!
//! Each stream holds a Redis connection, so streams are bounded: one ends as soon as its
//! client hangs up, when the server shuts down, or when the key that opened it is revoked
//! (looked up again every [`RECHECK_KEY`]); a key may hold [`PER_KEY`] streams at once (admins
//! are not capped) and a server [`PER_SERVER`]; past either, 429 / 503.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use warp::sse::Event as Sse;
use warp::{Rejection, Reply};

use crate::apikeys::{Account, Role};
use crate::client::Broker;
use crate::error::Error;
use crate::http::access::visible;
use crate::job::JobId;

/// How long one blocking read waits before the job hash is looked at again.
const BLOCK: Duration = Duration::from_secs(1);

/// How often a stream checks that its key still exists.
const RECHECK_KEY: Duration = Duration::from_secs(5);

/// Streams one (non-admin) key may hold open on one server.
pub const PER_KEY: usize = 16;

/// Streams one server holds open at most.
pub const PER_SERVER: usize = 256;

/// The streams open on one server, per owner. Shared by the routes of one server.
#[derive(Debug, Clone, Default)]
pub struct Open(Arc<Mutex<HashMap<String, usize>>>);

/// One open stream's place in [`Open`]; freed on drop.
struct Slot {
    open: Open,
    owner: String,
}

impl Open {
    /// A place for a stream of `who`, or the error to answer.
    fn take(&self, who: &Account) -> Result<Slot, Error> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = map.values().sum();
        let mine = map.get(&who.owner).copied().unwrap_or(0);
        if total >= PER_SERVER {
            return Err(Error::Unavailable(format!(
                "{PER_SERVER} event streams are open on this server; try again later"
            )));
        }
        if who.role != Role::Admin && mine >= PER_KEY {
            return Err(Error::TooMany(format!(
                "{PER_KEY} event streams of {:?} are open; close one first",
                who.owner
            )));
        }
        map.insert(who.owner.clone(), mine + 1);
        Ok(Slot {
            open: self.clone(),
            owner: who.owner.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .open
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.owner);
            }
        }
    }
}

/// `GET /jobs/{id}/events`.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs", params(("id" = u64, Path, description = "Job id"), crate::http::jobs::FieldsQuery),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (the job), then one per event (claimed, progress, completed, ...), data = the event's fields as JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "The key holds too many streams", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "The server holds too many streams, or Redis is away", body = crate::http::openapi::ErrorBody)))]
pub async fn follow(
    id: JobId,
    q: crate::http::jobs::FieldsQuery,
    b: Broker,
    who: Account,
    mut closing: watch::Receiver<bool>,
    open: Open,
) -> Result<warp::reply::Response, Rejection> {
    // Note the stream position before the snapshot, so nothing between them is missed.
    let mut after = b.events_tail().await?;
    let job = visible(&b, &who, id).await?;
    let slot = open.take(&who)?;
    let mut conn = b.blocking_connection().await?;
    let (tx, rx) = mpsc::channel::<Result<Sse, Infallible>>(64);
    let snapshot = Sse::default()
        .event("snapshot")
        .json_data(crate::http::jobs::pick(&job, q.fields.as_deref()))
        .unwrap_or_default();
    let done = job.status.is_terminal();
    let fields = q.fields;
    tokio::spawn(async move {
        let _slot = slot;
        if tx.send(Ok(snapshot)).await.is_err() || done {
            return;
        }
        let mut checked = Instant::now();
        loop {
            let read = tokio::select! {
                r = b.events(&mut conn, Some(id), &after, 1000, Some(BLOCK)) => r,
                _ = closing.wait_for(|c| *c) => return, // server shutting down: end the stream
                () = tx.closed() => return, // the client hung up
            };
            if checked.elapsed() >= RECHECK_KEY {
                checked = Instant::now();
                if let Some(sha) = &who.key_sha {
                    if !matches!(b.key_account_by_sha(sha).await, Ok(Some(_))) {
                        return; // the key was revoked (or Redis is away): end the stream
                    }
                }
            }
            let (events, next) = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "event stream read failed; ending SSE");
                    return;
                }
            };
            after = next;
            if forward(&tx, events).await {
                return;
            }
            // The stream is capped: if entries were trimmed before we read them, the hash
            // still tells whether the job has ended.
            match b.get(id).await {
                Ok(j) if !j.status.is_terminal() => {}
                Ok(j) => {
                    // Its terminal event may have landed after the read above: read once
                    // more, and send the hash only if the stream no longer holds it.
                    if let Ok((rest, _)) = b.events(&mut conn, Some(id), &after, 1000, None).await {
                        if forward(&tx, rest).await {
                            return;
                        }
                    }
                    let last = Sse::default()
                        .event("snapshot")
                        .json_data(crate::http::jobs::pick(&j, fields.as_deref()))
                        .unwrap_or_default();
                    let _ = tx.send(Ok(last)).await;
                    return;
                }
                Err(_) => return,
            }
        }
    });
    let stream = ReceiverStream::new(rx);
    Ok(warp::sse::reply(
        warp::sse::keep_alive()
            .interval(Duration::from_secs(15))
            .stream(stream),
    )
    .into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // events
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path!("events"))
            .and(warp::get())
            .and(warp::query::<crate::http::jobs::FieldsQuery>())
            .and(c.caller())
            .and(c.closing())
            .and(c.streams())
            .and_then(follow)
            .boxed(),
    ]
}

/// Sends `events` of one job as SSE; true when the stream should end (a terminal event was
/// sent, or the client hung up).
async fn forward(tx: &mpsc::Sender<Result<Sse, Infallible>>, events: Vec<crate::Event>) -> bool {
    for e in events {
        let terminal = e.ends_job();
        let sse = Sse::default()
            .id(e.id.clone())
            .event(e.get("event").unwrap_or("event"))
            .json_data(&e.fields)
            .unwrap_or_default();
        if tx.send(Ok(sse)).await.is_err() || terminal {
            return true;
        }
    }
    false
}
