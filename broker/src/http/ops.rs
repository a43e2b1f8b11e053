//! Operations endpoints: `GET /healthz` (Redis reachable?) and `GET /metrics` (Prometheus
//! text: queue depths, running and scheduled jobs from Redis, plus this process' HTTP
//! request counts and latencies by route and status).

use metrics_exporter_prometheus::PrometheusHandle;
use redis::AsyncCommands;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::client::Broker;
use crate::error::Error;

/// `GET /healthz`: 200 `{"status": "ok"}` when Redis answers, else 503.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Redis answers", body = crate::http::openapi::Health),
        (status = 503, description = "Redis unavailable", body = crate::http::openapi::Health)))]
pub async fn healthz(b: Broker) -> Result<warp::reply::Response, Rejection> {
    match b.ping().await {
        Ok(()) => Ok(warp::reply::json(&json!({"status": "ok", "redis": "ok"})).into_response()),
        Err(e) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"status": "unavailable", "redis": e.to_string()})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response()),
    }
}

/// Gauges read from Redis at scrape time, so every API server reports the same numbers.
async fn broker_gauges(b: &Broker) -> Result<String, Error> {
    let k = b.keys();
    let mut c = b.conn().await?;
    let running: u64 = c.zcard(k.leases()).await?;
    let scheduled: u64 = c.zcard(k.delayed()).await?;
    let queues: Vec<String> = {
        let mut it = c.scan_match::<_, String>(k.queue("*")).await?;
        let mut v = Vec::new();
        while let Some(q) = futures::StreamExt::next(&mut it).await {
            v.push(q?);
        }
        v
    };
    let mut out = String::new();
    out.push_str(
        "# HELP sluice_jobs_running Jobs holding a lease.\n# TYPE sluice_jobs_running gauge\n",
    );
    out.push_str(&format!("sluice_jobs_running {running}\n"));
    out.push_str("# HELP sluice_jobs_scheduled Jobs waiting for run_at or a retry backoff.\n# TYPE sluice_jobs_scheduled gauge\n");
    out.push_str(&format!("sluice_jobs_scheduled {scheduled}\n"));
    out.push_str("# HELP sluice_queue_depth Ready jobs per executor kind.\n# TYPE sluice_queue_depth gauge\n");
    let strip = k.queue("");
    for q in queues {
        let depth: u64 = c.llen(&q).await?;
        let executor = q
            .strip_prefix(&strip)
            .unwrap_or(&q)
            .replace(['"', '\\', '\n'], "_");
        out.push_str(&format!(
            "sluice_queue_depth{{executor=\"{executor}\"}} {depth}\n"
        ));
    }
    Ok(out)
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(
    b: Broker,
    handle: PrometheusHandle,
) -> Result<warp::reply::Response, Rejection> {
    let mut text = handle.render();
    match broker_gauges(&b).await {
        Ok(g) => text.push_str(&g),
        Err(e) => text.push_str(&format!(
            "# redis unavailable: {}\nsluice_redis_up 0\n",
            e.to_string().replace('\n', " ")
        )),
    }
    Ok(warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4").into_response())
}
