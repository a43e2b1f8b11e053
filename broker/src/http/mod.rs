//! The warp HTTP front-end of `sluice serve`. Every endpoint maps onto broker calls (and so
//! onto the Lua scripts); no endpoint keeps state of its own, so any number of API servers
//! over one Redis behave as one.
//!
//! - `jobs.rs`: `POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/{action}`
//! - `events.rs`: `GET /jobs/{id}/events` (server-sent events)
//! - `ops.rs`: `GET /healthz`, `GET /metrics`
//! - `compat/`: the wumai (`POST /`) and Jetstream Centro (`POST /api/v1/new-run/`) faces
//! - `schedules.rs`: `GET /schedules`, `PUT|DELETE /schedules/{name}` (admin)
//! - `openapi.rs`: `GET /openapi.json` (generated) and `GET /apidocs`
//! - `auth.rs`: API keys (bearer or basic); `errors.rs`: the one rejection handler

pub mod auth;
pub mod compat;
pub mod errors;
pub mod events;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod schedules;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::{Filter, Rejection};

use crate::client::Broker;
use crate::error::Error;
use crate::http::errors::{ApiError, TooLarge};
use crate::job::JobId;

/// Largest body of a job action (`lock` takes a small JSON object).
const ACTION_BODY_LIMIT: u64 = 64 * 1024;

/// How often the server re-queues expired leases and promotes due jobs.
const TICK_EVERY: Duration = Duration::from_secs(1);

/// The process-wide Prometheus recorder (installed once, shared by every server in it).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The route label of a path: numeric segments become `{id}` (bounded label values).
fn route_label(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn job_id() -> impl Filter<Extract = (JobId,), Error = Rejection> + Clone {
    warp::path::param::<String>().and_then(|raw: String| async move {
        raw.parse::<JobId>()
            .map_err(|e| warp::reject::custom(ApiError(e)))
    })
}

/// A body of at most `limit` bytes; absent is empty (for actions that take none).
fn optional_body(limit: u64) -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |n: Option<u64>| async move {
            if n.unwrap_or(0) > limit {
                Err(warp::reject::custom(TooLarge))
            } else {
                Ok(())
            }
        })
        .untuple_one()
        .and(warp::body::bytes())
}

/// All routes of the native API, with the JSON rejection handler and the access log.
/// `closing` turns true when the server is shutting down; endless responses (SSE) end then,
/// so that a graceful shutdown does not wait for them forever.
pub fn routes(b: Broker, closing: watch::Receiver<bool>) -> BoxedFilter<(impl warp::Reply,)> {
    let handle = metrics_handle();
    let broker = {
        let b = b.clone();
        warp::any().map(move || b.clone())
    };
    let who = auth::account(b.clone());
    let limit = b.config().max_content_length;

    let submit = warp::path!("jobs")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(jobs::submit);
    let list = warp::path!("jobs")
        .and(warp::get())
        .and(warp::query::<jobs::ListQuery>())
        .and(broker.clone())
        .and(who.clone())
        .and_then(jobs::list);
    let get = warp::path("jobs")
        .and(job_id())
        .and(warp::path::end())
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(jobs::get);
    let events = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("events"))
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::any().map(move || closing.clone()))
        .and_then(events::follow);
    let act = warp::path("jobs")
        .and(job_id())
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(optional_body(ACTION_BODY_LIMIT))
        .and_then(jobs::act);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(broker.clone())
        .and_then(ops::healthz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(broker.clone())
        .and(warp::any().map(move || handle.clone()))
        .and_then(ops::metrics);

    let wumai = warp::path::end()
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::header::optional::<String>("x-request-id"))
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::wumai::post);
    let jetstream = warp::path!("api" / "v1" / "new-run")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::jetstream::new_run);
    let schedules_list = warp::path!("schedules")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(schedules::list);
    let schedules_put = warp::path!("schedules" / String)
        .and(warp::put())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(schedules::put);
    let schedules_delete = warp::path!("schedules" / String)
        .and(warp::delete())
        .and(broker.clone())
        .and(who.clone())
        .and_then(schedules::delete);
    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .and_then(openapi::openapi_json);
    let apidocs = warp::path!("apidocs")
        .and(warp::get())
        .and_then(openapi::apidocs);

    let log = warp::log::custom(|info| {
        let route = route_label(info.path());
        let status = info.status().as_u16().to_string();
        let labels = [
            ("method", info.method().to_string()),
            ("route", route.clone()),
            ("status", status),
        ];
        metrics::counter!("sluice_http_requests_total", &labels).increment(1);
        metrics::histogram!("sluice_http_request_duration_seconds", &labels)
            .record(info.elapsed().as_secs_f64());
        let request_id = info
            .request_headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "sluice::access",
            method = %info.method(),
            path = info.path(),
            status = info.status().as_u16(),
            elapsed_ms = info.elapsed().as_secs_f64() * 1000.0,
            request_id,
            "request"
        );
    });

    submit
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(events)
        .unify()
        .or(act)
        .unify()
        .or(healthz)
        .unify()
        .or(metrics)
        .unify()
        .or(openapi)
        .unify()
        .or(apidocs)
        .unify()
        .or(wumai)
        .unify()
        .or(schedules_list)
        .unify()
        .or(schedules_put)
        .unify()
        .or(schedules_delete)
        .unify()
        .or(jetstream)
        .unify()
        .recover(errors::handle_rejection)
        .unify()
        .with(log)
        .boxed()
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting and
/// finishes in-flight requests. Also runs the maintenance tick (reap + promote) every
/// second and the beat of periodic jobs every half second; any number of servers may do
/// both at once.
///
/// # Errors
/// None today; the signature leaves room for start-up checks.
pub async fn run(
    listener: TcpListener,
    b: Broker,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let ticker = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK_EVERY);
            loop {
                every.tick().await;
                match b.tick().await {
                    Ok((r, promoted)) if r.requeued + r.failed + r.canceled + promoted > 0 => {
                        tracing::info!(
                            requeued = r.requeued,
                            failed = r.failed,
                            canceled = r.canceled,
                            promoted,
                            "tick"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "tick failed; retrying"),
                }
            }
        })
    };
    let (closing_tx, closing) = watch::channel(false);
    let beat = tokio::spawn(crate::schedules::beat(
        b.clone(),
        Duration::from_millis(500),
        closing.clone(),
    ));
    let notifier = tokio::spawn(crate::notify::run(b.clone(), closing.clone()));
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = closing_tx.send(true);
    };
    warp::serve(routes(b, closing))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    ticker.abort();
    let _ = beat.await;
    let _ = notifier.await;
    Ok(())
}
