//! Failure notifications: when a job fails for good (events `failed` and `timed_out`, which
//! the scripts emit only when no attempt is left), POST a Slack-compatible message
//! `{"text": ...}` to every configured webhook. It never touches the job's own transition:
//! every `sluice serve` reads the `events` stream in the consumer group `notify`, so each
//! event goes to one server; an event is acknowledged once every webhook took it or after
//! 5 tries with backoff (then logged). Pending events of a server that died are taken over
//! after a minute (XAUTOCLAIM).
//!
//! The same reader sends run callbacks: a job with a `callback_url` (a pipeline run, or any
//! job submitted with one) gets `{"pipeline_run_uuid": "<id>", "state": <state>}` POSTed
//! on each state change, in the Workflow Service's state words
//! ([`crate::pipelines::run_states`]). Best effort, as the service did: one try each, in
//! order, off the reading loop (a slow receiver delays only later callbacks), failures
//! logged.

use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use serde_json::json;
use tokio::sync::watch;

use crate::client::Broker;

/// The consumer group of notifiers on `events`.
const GROUP: &str = "notify";
/// Callbacks waiting to be sent, at most.
const CALLBACK_QUEUE: usize = 10_000;
/// Tries per webhook and message.
const TRIES: u32 = 5;

fn text(fields: &std::collections::HashMap<String, redis::Value>) -> Option<String> {
    let get = |k: &str| field(fields, k);
    let event = get("event")?;
    if event != "failed" && event != "timed_out" {
        return None;
    }
    Some(format!(
        "Sluice: job {} ({}) {}: {}",
        get("job").unwrap_or_default(),
        get("executor").unwrap_or_default(),
        get("status").unwrap_or_default(),
        get("error").unwrap_or_default()
    ))
}

async fn post(http: &reqwest::Client, url: &str, message: &str) -> bool {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=TRIES {
        match http.post(url).json(&json!({"text": message})).send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => tracing::warn!(
                url,
                status = r.status().as_u16(),
                attempt,
                "webhook refused"
            ),
            Err(e) => tracing::warn!(url, error = %e, attempt, "webhook unreachable"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::error!(url, message, "webhook gave up after {TRIES} tries");
    false
}

/// The webhook client: http and https (rustls, the system's roots plus `ca`, a PEM file).
fn client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| format!("webhook_ca {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("webhook_ca {}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Field values of one event entry as text.
fn field(fields: &std::collections::HashMap<String, redis::Value>, k: &str) -> Option<String> {
    fields
        .get(k)
        .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
}

/// The callbacks a batch of events calls for: (url, body), in event order.
async fn callbacks(
    b: &Broker,
    c: &mut redis::aio::MultiplexedConnection,
    entries: &[redis::streams::StreamId],
) -> Vec<(String, serde_json::Value)> {
    let changes: Vec<(String, Vec<&'static str>)> = entries
        .iter()
        .filter_map(|e| {
            let states =
                crate::pipelines::run_states(&field(&e.map, "status")?, &field(&e.map, "event")?);
            (!states.is_empty()).then(|| Some((field(&e.map, "job")?, states)))?
        })
        .collect();
    if changes.is_empty() {
        return Vec::new();
    }
    let mut p = redis::pipe();
    for (job, _) in &changes {
        let id = job.parse().map(crate::JobId).unwrap_or(crate::JobId(0));
        p.hget(b.keys().job(id), "callback_url");
    }
    let urls: Vec<Option<String>> = match p.query_async(c).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read callback URLs; callbacks of this batch skipped");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for ((job, states), url) in changes.into_iter().zip(urls) {
        if let Some(url) = url {
            for state in states {
                out.push((
                    url.clone(),
                    json!({"pipeline_run_uuid": job, "state": state}),
                ));
            }
        }
    }
    out
}

/// Runs the notifier (failure webhooks and run callbacks) until `closing` turns true.
pub async fn run(b: Broker, mut closing: watch::Receiver<bool>) {
    let http = match client(b.config().webhook_ca.as_deref()) {
        Ok(h) => h,
        Err(e) => return tracing::error!(error = %e, "no HTTP client; notifications off"),
    };
    // Callbacks go out in order from one task, so a slow receiver never holds up the reader.
    let (calls, mut queued) =
        tokio::sync::mpsc::channel::<(String, serde_json::Value)>(CALLBACK_QUEUE);
    let sender = http.clone();
    let caller = tokio::spawn(async move {
        while let Some((url, body)) = queued.recv().await {
            match sender.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(%url, status = r.status().as_u16(), "callback refused"),
                Err(e) => tracing::warn!(%url, error = %e, "callback failed"),
            }
        }
    });
    let me = format!("notify-{}", uuid::Uuid::new_v4().simple());
    let key = b.keys().events();
    let mut conn = None;
    while !*closing.borrow() {
        if conn.is_none() {
            conn = b.blocking_connection().await.ok();
            if let Some(c) = conn.as_mut() {
                // Start from now; an existing group keeps its place.
                let created: Result<(), redis::RedisError> =
                    c.xgroup_create_mkstream(&key, GROUP, "$").await;
                if let Err(e) = created {
                    if e.code() != Some("BUSYGROUP") {
                        tracing::warn!(error = %e, "cannot create the notify group");
                    }
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = closing.changed() => {} }
            continue;
        };
        // Events left pending by a dead notifier for a minute, then new ones.
        let mut entries = Vec::new();
        let stale: Result<StreamAutoClaimReply, _> = c
            .xautoclaim_options(
                &key,
                GROUP,
                &me,
                60_000,
                "0-0",
                StreamAutoClaimOptions::default().count(100),
            )
            .await;
        if let Ok(r) = stale {
            entries.extend(r.claimed);
        }
        let opts = StreamReadOptions::default()
            .group(GROUP, &me)
            .count(100)
            .block(1000);
        let (keys, ids) = ([&key], [">"]);
        let read = tokio::select! {
            r = c.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &opts) => r,
            _ = closing.changed() => continue,
        };
        match read {
            Ok(reply) => entries.extend(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids)),
            Err(e) => {
                tracing::warn!(error = %e, "notify read failed; reconnecting");
                conn = None;
                continue;
            }
        }
        for call in callbacks(&b, c, &entries).await {
            if calls.try_send(call).is_err() {
                tracing::warn!("callback queue full ({CALLBACK_QUEUE}); a callback was dropped");
            }
        }
        for e in &entries {
            if let Some(message) = text(&e.map) {
                for url in &b.config().webhooks {
                    post(&http, url, &message).await;
                }
            }
        }
        if !entries.is_empty() {
            let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            let acked: Result<i64, _> = c.xack(&key, GROUP, &ids).await;
            if let Err(e) = acked {
                tracing::warn!(error = %e, "notify ack failed");
            }
        }
    }
    caller.abort();
}
