//! Failure notifications: when a job fails for good (events `failed` and `timed_out`, which
//! the scripts emit only when no attempt is left), POST a Slack-compatible message
//! `{"text": ...}` to every configured webhook. It never touches the job's own transition:
//! every `sluice serve` reads the `events` stream in the consumer group `notify`, so each
//! event goes to one server; an event is acknowledged once every webhook took it or after
//! 5 tries with backoff (then logged). Pending events of a server that died are taken over
//! after a minute (XAUTOCLAIM).

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
/// Tries per webhook and message.
const TRIES: u32 = 5;

fn text(fields: &std::collections::HashMap<String, redis::Value>) -> Option<String> {
    let get = |k: &str| {
        fields
            .get(k)
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
    };
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

/// Runs the notifier until `closing` turns true; returns at once with no webhooks.
pub async fn run(b: Broker, mut closing: watch::Receiver<bool>) {
    if b.config().webhooks.is_empty() {
        return;
    }
    let http = match client(b.config().webhook_ca.as_deref()) {
        Ok(h) => h,
        Err(e) => return tracing::error!(error = %e, "no HTTP client; notifications off"),
    };
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
}
