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

pub mod artifacts;
pub mod auth;
pub mod clusters;
pub mod compat;
pub mod errors;
pub mod events;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod schedules;
pub mod server;
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
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/apidocs",
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

/// One route of the API, type-erased.
type Route = BoxedFilter<(warp::reply::Response,)>;

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
/// so that a graceful shutdown does not wait for them forever.
pub fn routes(b: Broker, closing: watch::Receiver<bool>) -> BoxedFilter<(impl warp::Reply,)> {
    let handle = metrics_handle();
    let broker = {
        let b = b.clone();
        warp::any().map(move || b.clone())
    };
    let who = auth::account(b.clone());
    let limit = b.config().max_content_length;
    let open_streams = events::Open::default();

    let submit: Route = warp::path!("jobs")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(jobs::submit)
        .boxed();
    let list: Route = warp::path!("jobs")
        .and(warp::get())
        .and(warp::query::<jobs::ListQuery>())
        .and(broker.clone())
        .and(who.clone())
        .and_then(jobs::list)
        .boxed();
    let get: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path::end())
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(jobs::get)
        .boxed();
    let events: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("events"))
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::any().map(move || closing.clone()))
        .and(warp::any().map(move || open_streams.clone()))
        .and_then(events::follow)
        .boxed();
    let act: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(optional_body(ACTION_BODY_LIMIT))
        .and_then(jobs::act)
        .boxed(); // Stand's face: the same paths, chosen by Stand's X-Auth-Token header.
    let stand = warp::header::<String>("x-auth-token")
        .map(|_| ())
        .untuple_one();
    let stand_get: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path::end())
        .and(warp::get())
        .and(stand)
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::stand::get)
        .boxed();
    let stand_stop: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("stop"))
        .and(warp::post())
        .and(stand)
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::stand::stop)
        .boxed();
    let stand_lock: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("lock"))
        .and(warp::get().or(warp::post()).unify())
        .and(stand)
        .and(warp::method())
        .and(broker.clone())
        .and(who.clone())
        .and(optional_body(ACTION_BODY_LIMIT))
        .and_then(compat::stand::lock)
        .boxed();
    let stand_unlock: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("unlock"))
        .and(warp::post())
        .and(stand)
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::stand::unlock)
        .boxed();
    let clusters_list: Route = warp::path!("clusters")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(clusters::list)
        .boxed();
    let cluster_get: Route = warp::path!("clusters" / String)
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(clusters::get)
        .boxed();
    let cluster_put: Route = warp::path!("clusters" / String)
        .and(warp::put())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(clusters::put)
        .boxed();
    let cluster_delete: Route = warp::path!("clusters" / String)
        .and(warp::delete())
        .and(broker.clone())
        .and(who.clone())
        .and_then(clusters::delete)
        .boxed();
    let artifacts_list: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path!("artifacts"))
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(artifacts::list)
        .boxed();
    let artifact_put: Route = warp::path("jobs")
        .and(job_id())
        .and(warp::path("artifacts"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::put())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::stream())
        .and_then(artifacts::upload)
        .boxed();
    let artifact_get: Route = warp::path("jobs")
        .and(artifacts::download(b.clone(), who.clone()))
        .boxed();
    let sc_task: Route = warp::path!("task")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::stableconfigs::task)
        .boxed();
    let sc_status: Route = warp::path!("status" / String)
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::stableconfigs::status)
        .boxed();
    let sc_terminate: Route = warp::path!("terminate" / String)
        .and(warp::delete())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::stableconfigs::terminate)
        .boxed();
    let workflow_create: Route = warp::path!("workflows")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(workflows::create)
        .boxed();
    let workflow_get: Route = warp::path!("workflows" / String)
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(workflows::get)
        .boxed();
    let workflow_stop: Route = warp::path!("workflows" / String / "stop")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and_then(workflows::stop)
        .boxed();
    let ws_create: Route = warp::path!("v1" / "pipelines")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::workflow_service::create)
        .boxed();
    let ws_list: Route = warp::path!("v1" / "pipelines")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::list)
        .boxed();
    let ws_get: Route = warp::path!("v1" / "pipelines" / String)
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::get)
        .boxed();
    let ws_put: Route = warp::path!("v1" / "pipelines" / String)
        .and(warp::put())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::workflow_service::put)
        .boxed();
    let ws_delete: Route = warp::path!("v1" / "pipelines" / String)
        .and(warp::delete())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::delete)
        .boxed();
    let ws_run: Route = warp::path!("v1" / "pipelines" / String / "runs")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::workflow_service::start_run)
        .boxed();
    let ws_runs: Route = warp::path!("v1" / "pipelines" / String / "runs")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::list_runs)
        .boxed();
    let ws_run_get: Route = warp::path!("v1" / "pipelines" / String / "runs" / String)
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::get_run)
        .boxed();
    let ws_console: Route = warp::path!("v1" / "pipelines" / String / "runs" / String / "console")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(compat::workflow_service::console)
        .boxed();
    let healthz: Route = warp::path!("healthz")
        .and(warp::get())
        .and(broker.clone())
        .and_then(ops::healthz)
        .boxed();
    let metrics: Route = warp::path!("metrics")
        .and(warp::get())
        .and(broker.clone())
        .and(warp::any().map(move || handle.clone()))
        .and_then(ops::metrics)
        .boxed();
    let wumai: Route = warp::path::end()
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::header::optional::<String>("x-request-id"))
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::wumai::post)
        .boxed();
    let jetstream: Route = warp::path!("api" / "v1" / "new-run")
        .and(warp::post())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(compat::jetstream::new_run)
        .boxed();
    let schedules_list: Route = warp::path!("schedules")
        .and(warp::get())
        .and(broker.clone())
        .and(who.clone())
        .and_then(schedules::list)
        .boxed();
    let schedules_put: Route = warp::path!("schedules" / String)
        .and(warp::put())
        .and(broker.clone())
        .and(who.clone())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(schedules::put)
        .boxed();
    let schedules_delete: Route = warp::path!("schedules" / String)
        .and(warp::delete())
        .and(broker.clone())
        .and(who.clone())
        .and_then(schedules::delete)
        .boxed();
    let openapi: Route = warp::path!("openapi.json")
        .and(warp::get())
        .and_then(openapi::openapi_json)
        .boxed();
    let apidocs: Route = warp::path!("apidocs")
        .and(warp::get())
        .and_then(openapi::apidocs)
        .boxed();
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
    one_of(vec![
        stand_get,
        stand_stop,
        stand_lock,
        stand_unlock,
        submit,
        list,
        get,
        events,
        act,
        healthz,
        metrics,
        openapi,
        apidocs,
        wumai,
        schedules_list,
        schedules_put,
        schedules_delete,
        jetstream,
        clusters_list,
        cluster_get,
        cluster_put,
        cluster_delete,
        artifacts_list,
        artifact_get,
        artifact_put,
        sc_task,
        sc_status,
        sc_terminate,
        workflow_create,
        workflow_get,
        workflow_stop,
        ws_create,
        ws_list,
        ws_get,
        ws_put,
        ws_delete,
        ws_run,
        ws_runs,
        ws_run_get,
        ws_console,
    ])
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
                // Artifacts of expired jobs go with them (checked every SWEEP_EVERY ticks).
                if ticks % SWEEP_EVERY == 1 {
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
        assert_eq!(route_label("/jobs//events"), "other");
    }
}
