//! The recorded history of a chaos run: operations (one JSON line each: the executors'
//! `--history` log plus the test's own submits and stops, same format) and the `events`
//! stream, tailed live so that its cap (`MAXLEN ~ 10000`) never trims an entry unread.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::Broker;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

pub use executors::history::now_us;

/// One operation: who did what to which job, with which token, and what Redis said.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Op {
    /// Invocation time, unix µs.
    pub t0: u64,
    /// Completion time, unix µs.
    pub t1: u64,
    /// Who: the executor's worker name (`command-<pid>-<rand>`), or `client`.
    pub src: String,
    /// submit, claim, heartbeat, progress, complete, fail, timeout, cancel, release, stop.
    pub op: String,
    /// The job (0 when a submit was refused before an id existed).
    pub job: u64,
    /// The attempt, when known (0 otherwise).
    #[serde(default)]
    pub attempt: u32,
    /// The lease token carried (empty for client ops).
    #[serde(default)]
    pub token: String,
    /// Whether Redis accepted it.
    pub ok: bool,
    /// The refusal (STALE_LEASE, ILLEGAL:<status>, NOT_FOUND, UNAVAILABLE, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// The status the call answered (submit, stop), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A submit's own serial number, also sent as the job's `tag` param: tells a lost job
    /// from a new job that got its id after Redis lost the INCR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u64>,
}

/// Appends the test's own operations to the shared history file.
#[derive(Debug, Clone)]
pub struct Recorder {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl Recorder {
    /// Opens `path` for appending (the executors append to the same file).
    pub fn open(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("history file");
        Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        }
    }

    /// Appends one operation.
    pub fn push(&self, op: &Op) {
        let mut line = serde_json::to_string(op).expect("op as JSON");
        line.push('\n');
        let mut f = self.file.lock().expect("history lock");
        f.write_all(line.as_bytes()).expect("history write");
    }

    /// Reads every operation of the file (the test's and the executors'); a torn last line
    /// (an executor killed mid-write) is skipped.
    pub fn read(&self) -> Vec<Op> {
        read_ops(&self.path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The operations of a history file, ordered by completion time.
pub fn read_ops(path: &Path) -> Vec<Op> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ops: Vec<Op> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ops.sort_by_key(|o| o.t1);
    ops
}

/// One entry of the `events` stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// Unix ms (from the entry id: Redis' clock).
    pub ms: u64,
    /// The entry id.
    pub id: String,
    /// The job.
    pub job: u64,
    /// submitted, claimed, completed, failed, retried, canceled, released, ...
    pub event: String,
    /// The job's status after it.
    pub status: String,
    /// The attempt (claimed events).
    pub attempt: Option<u32>,
    /// The claiming worker (claimed events).
    pub worker: Option<String>,
}

impl Event {
    /// Builds an event from a stream entry; None for entries that are not about a job.
    pub fn from_entry(id: &str, map: &BTreeMap<String, String>) -> Option<Self> {
        Some(Self {
            ms: id.split('-').next()?.parse().ok()?,
            id: id.to_string(),
            job: map.get("job")?.parse().ok()?,
            event: map.get("event")?.clone(),
            status: map.get("status").cloned().unwrap_or_default(),
            attempt: map.get("attempt").and_then(|a| a.parse().ok()),
            worker: map.get("worker").cloned(),
        })
    }
}

/// Reads the `events` stream as it grows, from its own blocking connection, reconnecting
/// while Redis is away. Stop it with [`Tail::finish`].
pub struct Tail {
    events: Arc<Mutex<Vec<Event>>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What the tail read, and whether it read everything the stream ever held.
#[derive(Debug, Clone, Default)]
pub struct Tailed {
    /// Every entry read, in stream order.
    pub events: Vec<Event>,
    /// Entries the stream ever took (`XINFO STREAM` entries-added) at the end.
    pub entries_added: u64,
}

impl Tail {
    /// Starts tailing `events` of `b`'s Redis from the beginning.
    pub fn start(b: &Broker) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let (b, sink) = (b.clone(), events.clone());
        let task = tokio::spawn(async move {
            let mut after = "0-0".to_string();
            let mut conn = None;
            loop {
                let finishing = *rx.borrow();
                if conn.is_none() {
                    conn = b.blocking_connection().await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    if finishing {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let block = if finishing { None } else { Some(200) };
                match read(c, &b, &after, block).await {
                    Ok(got) if got.is_empty() && finishing => return,
                    Ok(got) => {
                        if let Some(last) = got.last() {
                            after = last.id.clone();
                        }
                        sink.lock().expect("tail lock").extend(got);
                    }
                    Err(_) => {
                        conn = None;
                        if finishing {
                            return;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                            _ = rx.changed() => {}
                        }
                    }
                }
            }
        });
        Self { events, stop, task }
    }

    /// Reads what is left, stops, and returns everything read.
    pub async fn finish(self, b: &Broker) -> Tailed {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let events = std::mem::take(&mut *self.events.lock().expect("tail lock"));
        let mut c = b.blocking_connection().await.expect("redis for XINFO");
        let info: redis::Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(b.keys().events())
            .query_async(&mut c)
            .await
            .unwrap_or(redis::Value::Nil);
        Tailed {
            events,
            entries_added: entries_added(&info),
        }
    }
}

async fn read(
    c: &mut redis::aio::MultiplexedConnection,
    b: &Broker,
    after: &str,
    block_ms: Option<usize>,
) -> redis::RedisResult<Vec<Event>> {
    let mut opts = StreamReadOptions::default().count(2000);
    if let Some(ms) = block_ms {
        opts = opts.block(ms);
    }
    let key = b.keys().events();
    let reply: Option<StreamReadReply> = c.xread_options(&[&key], &[after], &opts).await?;
    Ok(reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .filter_map(|e| {
            let map: BTreeMap<String, String> = e
                .map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        redis::from_redis_value_ref::<String>(v).unwrap_or_default(),
                    )
                })
                .collect();
            Event::from_entry(&e.id, &map)
        })
        .collect())
}

/// `entries-added` of an `XINFO STREAM` reply (0 when absent).
fn entries_added(info: &redis::Value) -> u64 {
    let redis::Value::Array(items) = info else {
        if let redis::Value::Map(pairs) = info {
            for (k, v) in pairs {
                if redis::from_redis_value_ref::<String>(k).ok().as_deref() == Some("entries-added")
                {
                    return redis::from_redis_value_ref(v).unwrap_or(0);
                }
            }
        }
        return 0;
    };
    for pair in items.chunks(2) {
        if let [k, v] = pair {
            if redis::from_redis_value_ref::<String>(k).ok().as_deref() == Some("entries-added") {
                return redis::from_redis_value_ref(v).unwrap_or(0);
            }
        }
    }
    0
}

/// The whole `events` stream as Redis holds it now (XRANGE - +), with entries-added.
pub async fn xrange_all(b: &Broker) -> Tailed {
    let mut c = b.blocking_connection().await.expect("redis for XRANGE");
    let key = b.keys().events();
    let mut events = Vec::new();
    let mut start = "-".to_string();
    loop {
        let reply: redis::streams::StreamRangeReply = c
            .xrange_count(&key, &start, "+", 5000)
            .await
            .expect("XRANGE events");
        let n = reply.ids.len();
        for e in reply.ids {
            start = format!("({}", e.id);
            let map: BTreeMap<String, String> = e
                .map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        redis::from_redis_value_ref::<String>(v).unwrap_or_default(),
                    )
                })
                .collect();
            events.extend(Event::from_entry(&e.id, &map));
        }
        if n < 5000 {
            break;
        }
    }
    let info: redis::Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap_or(redis::Value::Nil);
    Tailed {
        events,
        entries_added: entries_added(&info),
    }
}
