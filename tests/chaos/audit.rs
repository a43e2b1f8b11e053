//! The final Redis audit of a chaos run: every `job_N` hash (status, attempt, max_attempts,
//! executor) and the ids in every queue, the delayed set and the leases set.

use std::collections::BTreeMap;

use broker::Broker;
use redis::AsyncCommands;

/// A job as the audit found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobState {
    /// Its status.
    pub status: String,
    /// Its attempt count.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its executor kind.
    pub executor: String,
    /// The `tag` param the chaos submitter gave it, if any.
    pub tag: Option<u64>,
    /// A workflow member waiting for its parents (field `waiting_on` set).
    pub waiting: bool,
}

/// What Redis holds at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Every job hash, by id.
    pub jobs: BTreeMap<u64, JobState>,
    /// `queue:<executor>` contents, by executor.
    pub queues: BTreeMap<String, Vec<u64>>,
    /// `delayed` members.
    pub delayed: Vec<u64>,
    /// `leases` members.
    pub leases: Vec<u64>,
}

impl Audit {
    /// Reads the audit from `b`'s Redis (SCAN over `job_*`, then each structure).
    pub async fn read(b: &Broker) -> Self {
        let mut c = b.blocking_connection().await.expect("redis for the audit");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(b.keys().job_pattern())
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("hash")
                .query_async(&mut c)
                .await
                .expect("SCAN job_*");
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut audit = Audit::default();
        for key in keys {
            let f: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                .arg(&key)
                .arg(&[
                    "id",
                    "status",
                    "attempt",
                    "max_attempts",
                    "executor",
                    "params",
                    "waiting_on",
                ])
                .query_async(&mut c)
                .await
                .expect("HMGET job");
            let text = |i: usize| {
                f[i].as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            let (Some(id), Some(status)) = (text(0).and_then(|s| s.parse::<u64>().ok()), text(1))
            else {
                continue; // vanished between SCAN and HMGET (expired)
            };
            let num = |i: usize| text(i).and_then(|s| s.parse().ok()).unwrap_or(0);
            let executor = text(4).unwrap_or_default();
            let tag = f[5]
                .as_deref()
                .and_then(|p| broker::job::decode(p).ok())
                .and_then(|p| p.get("tag").and_then(serde_json::Value::as_u64));
            audit.jobs.insert(
                id,
                JobState {
                    status,
                    attempt: num(2),
                    max_attempts: num(3),
                    executor,
                    tag,
                    waiting: f[6].is_some(),
                },
            );
        }
        let executors: std::collections::BTreeSet<String> =
            audit.jobs.values().map(|j| j.executor.clone()).collect();
        for e in executors {
            let ids: Vec<u64> = c.lrange(b.keys().queue(&e), 0, -1).await.expect("LRANGE");
            audit.queues.insert(e, ids);
        }
        audit.delayed = c
            .zrange(b.keys().delayed(), 0, -1)
            .await
            .expect("ZRANGE delayed");
        audit.leases = c
            .zrange(b.keys().leases(), 0, -1)
            .await
            .expect("ZRANGE leases");
        audit
    }
}
