//! `GET /jobs/{id}/events`: server-sent events of one job, live from the Redis event stream.
//! The first event is a `snapshot` of the job; then one event per transition or progress
//! report (named as in the stream: claimed, progress, completed, ...); the stream ends after
//! the job's terminal event. Followers read the global stream and keep this job's entries.

use std::convert::Infallible;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use warp::sse::Event as Sse;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::http::jobs::visible;
use crate::job::{JobId, Status};

/// How long one blocking read waits before the job hash is looked at again.
const BLOCK: Duration = Duration::from_secs(1);

/// `GET /jobs/{id}/events`.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs", params(("id" = u64, Path, description = "Job id")),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (the job), then one per event (claimed, progress, completed, ...), data = the event's fields as JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such job", body = crate::http::openapi::ErrorBody)))]
pub async fn follow(
    id: JobId,
    b: Broker,
    who: Account,
    mut closing: watch::Receiver<bool>,
) -> Result<warp::reply::Response, Rejection> {
    // Note the stream position before the snapshot, so nothing between them is missed.
    let mut after = b.events_tail().await?;
    let job = visible(&b, &who, id).await?;
    let mut conn = b.blocking_connection().await?;
    let (tx, rx) = mpsc::channel::<Result<Sse, Infallible>>(64);
    let snapshot = Sse::default()
        .event("snapshot")
        .json_data(&job)
        .unwrap_or_default();
    let done = job.status.is_terminal();
    tokio::spawn(async move {
        if tx.send(Ok(snapshot)).await.is_err() || done {
            return;
        }
        loop {
            let read = tokio::select! {
                r = b.events(&mut conn, Some(id), &after, 1000, Some(BLOCK)) => r,
                _ = closing.wait_for(|c| *c) => return, // server shutting down: end the stream
            };
            let (events, next) = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "event stream read failed; ending SSE");
                    return;
                }
            };
            after = next;
            for e in events {
                let terminal = e
                    .get("status")
                    .and_then(|s| s.parse::<Status>().ok())
                    .is_some_and(Status::is_terminal);
                let sse = Sse::default()
                    .id(e.id.clone())
                    .event(e.get("event").unwrap_or("event"))
                    .json_data(&e.fields)
                    .unwrap_or_default();
                if tx.send(Ok(sse)).await.is_err() || terminal {
                    return;
                }
            }
            // The stream is capped: if entries were trimmed before we read them, the hash
            // still tells whether the job has ended.
            match b.get(id).await {
                Ok(j) if !j.status.is_terminal() => {}
                Ok(j) => {
                    let last = Sse::default()
                        .event("snapshot")
                        .json_data(&j)
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
