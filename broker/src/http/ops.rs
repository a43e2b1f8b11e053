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
use crate::stats::{Stats, WAIT_BUCKETS_MS};

/// `GET /healthz`: 200 `{"status": "ok"}` when Redis answers, else 503. With
/// `min_replicas_ack` set it also counts the replicas online (`replicas`), and answers 503
/// `degraded` when fewer than that are: writes would be refused meanwhile.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Redis answers (and enough replicas are online)", body = crate::http::openapi::Health),
        (status = 503, description = "Redis unavailable, or too few replicas", body = crate::http::openapi::Health)))]
pub async fn healthz(b: Broker) -> Result<warp::reply::Response, Rejection> {
    let unavailable = |e: Error| {
        warp::reply::with_status(
            warp::reply::json(&json!({"status": "unavailable", "redis": e.to_string()})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response()
    };
    if let Err(e) = b.ping().await {
        return Ok(unavailable(e));
    }
    let wanted = b.config().min_replicas_ack;
    if wanted == 0 {
        return Ok(warp::reply::json(&json!({"status": "ok", "redis": "ok"})).into_response());
    }
    let online = match b.replicas_online().await {
        Ok(n) => n,
        Err(e) => return Ok(unavailable(e)),
    };
    let (status, code) = if online >= wanted {
        ("ok", StatusCode::OK)
    } else {
        ("degraded", StatusCode::SERVICE_UNAVAILABLE)
    };
    let body =
        json!({"status": status, "redis": "ok", "replicas": online, "min_replicas_ack": wanted});
    Ok(warp::reply::with_status(warp::reply::json(&body), code).into_response())
}

/// Gauges read from Redis at scrape time, so every API server reports the same numbers.
async fn broker_gauges(b: &Broker) -> Result<String, Error> {
    let k = b.keys();
    let mut c = b.conn().await?;
    let running: u64 = c.zcard(k.leases()).await?;
    let scheduled: u64 = c.zcard(k.delayed()).await?;
    let queues = crate::client::scan(&mut *c, k.queue("*")).await?;
    let mut out = String::new();
    out.push_str(
        "# HELP sluice_jobs_running Jobs holding a lease.\n# TYPE sluice_jobs_running gauge\n",
    );
    out.push_str(&format!("sluice_jobs_running {running}\n"));
    out.push_str("# HELP sluice_jobs_scheduled Jobs waiting for run_at or a retry backoff.\n# TYPE sluice_jobs_scheduled gauge\n");
    out.push_str(&format!("sluice_jobs_scheduled {scheduled}\n"));
    out.push_str(&render_stats(&b.stats().await?));
    out.push_str("# HELP sluice_queue_depth Ready jobs per executor kind.\n# TYPE sluice_queue_depth gauge\n");
    // A kind's priority queues (queue:<kind>:p<N>) count toward its depth.
    let strip = k.queue("");
    let mut depths: std::collections::BTreeMap<String, u64> = Default::default();
    for q in queues {
        let depth: u64 = c.llen(&q).await?;
        let name = q.strip_prefix(&strip).unwrap_or(&q);
        let kind = match name.rsplit_once(":p") {
            Some((kind, level)) if level.parse::<u8>().is_ok() => kind,
            _ => name,
        };
        *depths
            .entry(kind.replace(['"', '\\', '\n'], "_"))
            .or_default() += depth;
    }
    for (executor, depth) in depths {
        out.push_str(&format!(
            "sluice_queue_depth{{executor=\"{executor}\"}} {depth}\n"
        ));
    }
    // Jobs parked for a concurrency slot or throttled by a rate key (lists per key; a job
    // stopped while it waits counts until a claim drops it).
    out.push_str("# HELP sluice_jobs_waiting Jobs held back by their concurrency or rate key.\n# TYPE sluice_jobs_waiting gauge\n");
    for (on, strip, pattern) in [
        ("concurrency", k.parked("", ""), k.parked("*", "*")),
        ("rate", k.throttled("", ""), k.throttled("*", "*")),
    ] {
        let strip = strip.strip_suffix(':').unwrap_or(&strip); // "parked:", from "parked::"
        let mut waiting: std::collections::BTreeMap<String, u64> = Default::default();
        for list in crate::client::scan(&mut *c, pattern).await? {
            let n: u64 = c.llen(&list).await?;
            let rest = list.strip_prefix(strip).unwrap_or(&list);
            let kind = rest.split(':').next().unwrap_or(rest);
            *waiting.entry(label(kind)).or_default() += n;
        }
        for (executor, n) in waiting {
            out.push_str(&format!(
                "sluice_jobs_waiting{{executor=\"{executor}\",on=\"{on}\"}} {n}\n"
            ));
        }
    }
    Ok(out)
}

fn label(v: &str) -> String {
    v.replace(['"', '\\', '\n'], "_")
}

/// The `stats` hash as Prometheus series: `sluice_job_events_total{event, executor}` from the
/// `<event>:<executor>` counters, and the `sluice_claim_wait_seconds` histogram (time from
/// ready to claimed) from the claim-wait buckets.
fn render_stats(stats: &Stats) -> String {
    let mut out = String::from("# HELP sluice_job_events_total Job events by kind (submitted, claimed, completed, failed, retried, timed_out, canceled, ...) and executor.\n# TYPE sluice_job_events_total counter\n");
    for ((event, executor), n) in &stats.events {
        out.push_str(&format!(
            "sluice_job_events_total{{event=\"{}\",executor=\"{}\"}} {n}\n",
            label(event),
            label(executor)
        ));
    }
    out.push_str("# HELP sluice_claim_wait_seconds Time from ready (queued) to claimed.\n# TYPE sluice_claim_wait_seconds histogram\n");
    for (executor, waits) in &stats.waits {
        let ex = label(executor);
        let mut cumulative = 0;
        for (b, n) in WAIT_BUCKETS_MS.iter().zip(waits.buckets) {
            cumulative += n;
            let le = if *b == "inf" {
                "+Inf".to_string()
            } else {
                format!("{}", b.parse::<f64>().unwrap_or(0.0) / 1000.0)
            };
            out.push_str(&format!(
                "sluice_claim_wait_seconds_bucket{{executor=\"{ex}\",le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "sluice_claim_wait_seconds_sum{{executor=\"{ex}\"}} {}\n",
            waits.sum_ms as f64 / 1000.0
        ));
        out.push_str(&format!(
            "sluice_claim_wait_seconds_count{{executor=\"{ex}\"}} {cumulative}\n"
        ));
    }
    out
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

/// `GET /executors`.
#[utoipa::path(get, path = "/executors", tag = "ops",
    responses((status = 200, description = "The executor processes alive now: worker, kind, slots, running, since, seen", body = Object),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody)))]
pub async fn executors(
    b: Broker,
    who: crate::apikeys::Account,
) -> Result<warp::reply::Response, Rejection> {
    crate::http::access::admin(&who, "executors")?;
    Ok(warp::reply::json(&json!({"executors": b.executors().await?})).into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // healthz
        warp::path!("healthz")
            .and(warp::get())
            .and(c.broker())
            .and_then(healthz)
            .boxed(),
        // metrics
        warp::path!("metrics")
            .and(warp::get())
            .and(c.broker())
            .and(c.metrics())
            .and_then(metrics)
            .boxed(),
        // executors
        warp::path!("executors")
            .and(warp::get())
            .and(c.caller())
            .and_then(executors)
            .boxed(),
    ]
}
