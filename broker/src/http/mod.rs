//! The warp HTTP front-end of `sluice serve`. Every endpoint maps onto broker calls (and so
//! onto the Lua scripts); no endpoint keeps state of its own, so any number of API servers
//! over one Redis behave as one.
//!
//! Each module below exports `routes(&Ctx)` (its paths, beside its handlers and request
//! types); [`routes`] tries them in order. [`Ctx`] hands every route the broker, the caller's
//! account and the body limit.
//!
//! - `jobs.rs`: `POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/{action}`
//! - `events.rs`: `GET /jobs/{id}/events` (server-sent events)
//! - `artifacts.rs`: `GET|PUT /jobs/{id}/artifacts[/{name}]`
//! - `workflows.rs`: `/workflows`; `clusters.rs`: `/clusters` (Stand's records)
//! - `schedules.rs`: `GET /schedules`, `PUT|DELETE /schedules/{name}` (admin)
//! - `ratelimits.rs`: `GET /rate-limits`, `PUT|DELETE /rate-limits/{executor}` (admin)
//! - `ops.rs`: `GET /healthz`, `GET /metrics`, `GET /executors` (admin); `openapi.rs`: `/openapi.json`, `/apidocs`
//! - `compat/`: the faces of the replaced systems: Stand, StableConfigs, wumai (`POST /`),
//!   Jetstream Centro (`POST /api/v1/new-run/`), the Workflow Service (`/v1/pipelines`)
//! - `ui/`: the web console under `/ui/` (a browser's `GET /` is sent there)
//! - `access.rs`: who may see and steer which job; `auth.rs`: API keys (bearer or basic); `errors.rs`: the one rejection handler;
//!   `server.rs`: the connection loop and its bounds

pub mod access;
pub mod artifacts;
pub mod auth;
pub mod clusters;
pub mod compat;
pub mod errors;
pub mod events;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod ratelimits;
pub mod schedules;
pub mod server;
pub mod ui;
pub mod uploads;
pub mod workflows;

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

/// Every route's template, most specific first: the only values of the `route` label of the
/// HTTP metrics, so that no request (a random 404 included) can add a series.
const ROUTE_TEMPLATES: &[&str] = &[
    "/",
    "/jobs",
    "/jobs/{id}",
    "/jobs/{id}/events",
    "/jobs/{id}/artifacts",
    "/jobs/{id}/artifacts/{name}",
    "/jobs/{id}/{action}",
    "/clusters",
    "/clusters/{id}",
    "/task",
    "/status/{id}",
    "/terminate/{id}",
    "/workflows",
    "/workflows/{id}",
    "/workflows/{id}/stop",
    "/v1/pipelines",
    "/v1/pipelines/{id}",
    "/v1/pipelines/{id}/runs",
    "/v1/pipelines/{id}/runs/{run}",
    "/v1/pipelines/{id}/runs/{run}/console",
    "/api/v1/new-run/",
    "/schedules",
    "/schedules/{name}",
    "/rate-limits",
    "/rate-limits/{executor}",
    "/healthz",
    "/metrics",
    "/executors",
    "/openapi.json",
    "/apidocs",
    "/ui",
    "/ui/",
    "/ui/login",
    "/ui/logout",
    "/ui/overview.json",
    "/ui/jobs",
    "/ui/jobs/{id}",
    "/ui/workflows",
    "/ui/workflows/open",
    "/ui/workflows/{id}",
    "/ui/pipelines",
    "/ui/pipelines/{id}",
    "/ui/schedules",
    "/ui/clusters",
    "/ui/submit",
    "/ui/assets/app.css",
    "/ui/assets/app.js",
];

/// The route label of a path: the template it matches, or "other".
fn route_label(path: &str) -> &'static str {
    let segs: Vec<&str> = path.split('/').collect();
    ROUTE_TEMPLATES
        .iter()
        .find(|t| {
            let tsegs: Vec<&str> = t.split('/').collect();
            tsegs.len() == segs.len()
                && tsegs
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
        })
        .copied()
        .unwrap_or("other")
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

/// Ticks between two sweeps of expired jobs' artifacts.
const SWEEP_EVERY: u64 = 10;

/// Parses a JSON body into `T`, naming what is wrong (field, type, position).
///
/// # Errors
/// [`Error::Invalid`] for an empty or malformed body.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &bytes::Bytes) -> Result<T, Error> {
    if body.is_empty() {
        return Err(Error::Invalid(
            "request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("body: {e}")))
}

/// One route of the API, type-erased.
pub type Route = BoxedFilter<(warp::reply::Response,)>;

/// What every route is built from: the broker, the caller's account, the body limit, and
/// the server-wide state a few routes need (shutdown signal, open streams, metrics).
#[derive(Clone)]
pub struct Ctx {
    /// The broker the handlers call.
    pub broker: Broker,
    who: BoxedFilter<(crate::apikeys::Account,)>,
    /// Largest JSON body (`max_content_length`).
    pub limit: u64,
    closing: watch::Receiver<bool>,
    streams: events::Open,
    metrics: PrometheusHandle,
}

impl Ctx {
    /// The broker, for a handler.
    pub fn broker(&self) -> BoxedFilter<(Broker,)> {
        let b = self.broker.clone();
        warp::any().map(move || b.clone()).boxed()
    }

    /// The calling account (401 without a valid key).
    pub fn who(&self) -> BoxedFilter<(crate::apikeys::Account,)> {
        self.who.clone()
    }

    /// The calling account, or None where [`Ctx::who`] would answer 401 (for the faces that
    /// answer a missing key in their own shape).
    pub fn who_or_none(&self) -> BoxedFilter<(Option<crate::apikeys::Account>,)> {
        self.who
            .clone()
            .map(Some)
            .or_else(|r: Rejection| async move {
                match r.find::<errors::Denied>() {
                    Some(errors::Denied::Unauthenticated) => Ok((None,)),
                    _ => Err(r),
                }
            })
            .boxed()
    }

    /// The raw query string ("" for none).
    pub fn raw_query(&self) -> BoxedFilter<(String,)> {
        warp::query::raw()
            .or(warp::any().map(String::new))
            .unify()
            .boxed()
    }

    /// The broker and the calling account: what most handlers take first.
    pub fn caller(&self) -> BoxedFilter<(Broker, crate::apikeys::Account)> {
        self.broker().and(self.who()).boxed()
    }

    /// A JSON body of at most `limit` bytes (411 without Content-Length, 413 beyond).
    pub fn json_body(&self) -> BoxedFilter<(bytes::Bytes,)> {
        warp::body::content_length_limit(self.limit)
            .and(warp::body::bytes())
            .boxed()
    }

    /// Turns true when the server shuts down (endless responses end then).
    pub fn closing(&self) -> BoxedFilter<(watch::Receiver<bool>,)> {
        let c = self.closing.clone();
        warp::any().map(move || c.clone()).boxed()
    }

    /// The event streams open on this server.
    pub fn streams(&self) -> BoxedFilter<(events::Open,)> {
        let o = self.streams.clone();
        warp::any().map(move || o.clone()).boxed()
    }

    /// A job id path segment (400 for one that is not a number).
    pub fn job_id(&self) -> BoxedFilter<(JobId,)> {
        job_id().boxed()
    }

    /// The optional small JSON body of a job action (`lock` takes one).
    pub fn action_body(&self) -> BoxedFilter<(bytes::Bytes,)> {
        optional_body(ACTION_BODY_LIMIT).boxed()
    }

    /// The process' Prometheus recorder.
    pub fn metrics(&self) -> BoxedFilter<(PrometheusHandle,)> {
        let h = self.metrics.clone();
        warp::any().map(move || h.clone()).boxed()
    }
}

/// The first of `routes` that matches; their order is the precedence.
fn one_of(routes: Vec<Route>) -> Route {
    let mut routes = routes.into_iter();
    let first = routes.next().unwrap_or_else(|| {
        warp::any()
            .and_then(|| async {
                Err::<warp::reply::Response, Rejection>(warp::reject::not_found())
            })
            .boxed()
    });
    routes.fold(first, |all, r| all.or(r).unify().boxed())
}

/// All routes of the native API, with the JSON rejection handler and the access log.
/// `closing` turns true when the server is shutting down; endless responses (SSE) end then,
/// so that a graceful shutdown does not wait for them forever. Each module exports its own
/// routes from one [`Ctx`]; their order here is the precedence (Stand's header-guarded
/// routes before the native ones on the same paths).
pub fn routes(b: Broker, closing: watch::Receiver<bool>) -> BoxedFilter<(impl warp::Reply,)> {
    let c = Ctx {
        who: auth::account(b.clone()).boxed(),
        limit: b.config().max_content_length,
        broker: b,
        closing,
        streams: events::Open::default(),
        metrics: metrics_handle(),
    };
    let log = warp::log::custom(|info| {
        let route = route_label(info.path());
        let status = info.status().as_u16().to_string();
        let labels = [
            // Any token is a method to HTTP: only the standard ones become label values.
            ("method", {
                let m = info.method().as_str();
                match m {
                    "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS" => m,
                    _ => "OTHER",
                }
                .to_string()
            }),
            ("route", route.to_string()),
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

    // Each route is boxed and the `or` chain folded flat: a nested chain of two dozen
    // filter types took rustc minutes to compile.
    one_of(
        [
            ui::routes(&c),
            compat::stand::routes(&c),
            jobs::routes(&c),
            events::routes(&c),
            ops::routes(&c),
            openapi::routes(&c),
            compat::wumai::routes(&c),
            schedules::routes(&c),
            ratelimits::routes(&c),
            compat::jetstream::routes(&c),
            clusters::routes(&c),
            artifacts::routes(&c),
            compat::stableconfigs::routes(&c),
            workflows::routes(&c),
            compat::workflow_service::routes(&c),
        ]
        .concat(),
    )
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
            let mut ticks: u64 = 0;
            loop {
                every.tick().await;
                ticks += 1;
                // Artifacts of expired jobs go with them, and so do their entries in the
                // listing indexes (checked every SWEEP_EVERY ticks).
                if ticks % SWEEP_EVERY == 1 {
                    if let Err(e) = b.prune().await {
                        tracing::warn!(error = %e, "pruning the listing indexes failed");
                    }
                    match b.sweep_artifacts().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(jobs = n, "deleted artifacts of expired jobs"),
                        Err(e) => tracing::warn!(error = %e, "artifact sweep failed"),
                    }
                }
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
    let config = b.config().clone();
    server::serve(listener, routes(b, closing), &config, shutdown).await;
    ticker.abort();
    let _ = beat.await;
    let _ = notifier.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn route_labels_are_templates() {
        assert_eq!(route_label("/jobs/17"), "/jobs/{id}");
        assert_eq!(route_label("/jobs/17/events"), "/jobs/{id}/events");
        assert_eq!(route_label("/jobs/17/stop"), "/jobs/{id}/{action}");
        assert_eq!(route_label("/api/v1/new-run/"), "/api/v1/new-run/");
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/x9f3/random"), "other");
        assert_eq!(route_label("/ui/pipelines/3"), "/ui/pipelines/{id}");
        assert_eq!(route_label("/ui/workflows/open"), "/ui/workflows/open");
        assert_eq!(route_label("/jobs//events"), "other");
    }
}
