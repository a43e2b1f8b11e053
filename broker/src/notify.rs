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
//! order per URL, off the reading loop; each URL has its own queue and sender, so a slow or
//! dead receiver delays only its own callbacks, never another tenant's. Failures logged.
//!
//! Every URL goes through the outbound policy ([`crate::outbound`]): public addresses only
//! (unless allowed), no redirects, 10 s in all. Message text is escaped for Slack (`&`, `<`,
//! `>`), so an error text cannot ping `<!channel>` or plant a link.

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
/// Callbacks queued per URL, at most.
const PER_URL_QUEUE: usize = 1_000;
/// URLs with callbacks in flight at once, at most.
const MAX_URLS: usize = 1_000;
/// A URL's sender stops after this long without callbacks.
const IDLE: Duration = Duration::from_secs(30);

/// Escapes text for a Slack message: `&`, `<` and `>` are its control characters.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(fields: &std::collections::HashMap<String, redis::Value>) -> Option<String> {
    let get = |k: &str| field(fields, k).map(|v| slack_escape(&v));
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
            Err(e) => {
                tracing::warn!(url, error = %crate::outbound::describe(&e), attempt, "webhook unreachable")
            }
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::error!(url, message, "webhook gave up after {TRIES} tries");
    false
}

/// The webhook and callback client: the outbound policy's (no redirects, public addresses
/// only unless allowed), http and https with the system's roots plus `ca`, a PEM file.
fn client(b: &Broker, ca: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut certs = Vec::new();
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| format!("webhook_ca {}: {e}", path.display()))?;
        certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("webhook_ca {}: {e}", path.display()))?;
    }
    b.outbound()
        .poster(|mut builder| {
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
            builder
        })
        .map_err(|e| e.to_string())
}

/// Callbacks in flight, one queue and sender task per URL.
struct Callers {
    http: reqwest::Client,
    queues: std::collections::HashMap<String, tokio::sync::mpsc::Sender<serde_json::Value>>,
}

impl Callers {
    /// Queues `body` for `url`, starting the URL's sender if it has none.
    fn send(&mut self, url: String, body: serde_json::Value) {
        self.queues.retain(|_, q| !q.is_closed());
        if let Some(q) = self.queues.get(&url) {
            if q.try_send(body).is_err() {
                tracing::warn!(%url, "callback queue of this URL full ({PER_URL_QUEUE}); a callback was dropped");
            }
            return;
        }
        if self.queues.len() >= MAX_URLS {
            tracing::warn!(%url, "callbacks to {MAX_URLS} URLs in flight; a callback was dropped");
            return;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(PER_URL_QUEUE);
        let _ = tx.try_send(body);
        self.queues.insert(url.clone(), tx);
        let http = self.http.clone();
        tokio::spawn(async move {
            while let Ok(Some(body)) = tokio::time::timeout(IDLE, rx.recv()).await {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(%url, status = r.status().as_u16(), "callback refused"),
                    Err(e) => {
                        tracing::warn!(%url, error = %crate::outbound::describe(&e), "callback failed")
                    }
                }
            }
        });
    }
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
    let http = match client(&b, b.config().webhook_ca.as_deref()) {
        Ok(h) => h,
        Err(e) => return tracing::error!(error = %e, "no HTTP client; notifications off"),
    };
    // Callbacks go out in order per URL from the URL's own task, never holding up the reader
    // or another URL's callbacks.
    let mut callers = Callers {
        http: http.clone(),
        queues: Default::default(),
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
        for (url, body) in callbacks(&b, c, &entries).await {
            callers.send(url, body);
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
