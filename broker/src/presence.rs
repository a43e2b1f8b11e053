//! Executor liveness, apart from job leases: each executor process refreshes its presence
//! (`lua/presence.lua`) four times per `presence_ttl`; reapers (`lua/reap.lua`, run by every
//! `sluice serve` and executor tick) hand the jobs of one silent for longer back at once.
//! Job leases stay the backstop for an executor that is alive but stuck.

use redis::AsyncCommands;
use serde::Serialize;

use crate::client::Broker;
use crate::error::Error;
use crate::job::JobId;

/// What an executor process says of itself in one presence call.
#[derive(Debug, Clone, Copy)]
pub struct Presence<'a> {
    /// Its name: the `worker` field of the jobs it runs.
    pub worker: &'a str,
    /// Executor kind.
    pub kind: &'a str,
    /// Jobs it may run at once.
    pub slots: usize,
    /// Jobs it runs now.
    pub running: usize,
    /// How long it counts as alive after this call (the config's `presence_ttl`).
    pub ttl: std::time::Duration,
    /// A clean shutdown: remove it.
    pub leaving: bool,
    /// Jobs whose leases to extend (their heartbeats, batched): id and lease token.
    pub jobs: &'a [(JobId, &'a str)],
}

/// A live executor process, as `GET /executors` and `sluice executors` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExecutorInfo {
    /// Its name: the `worker` field of the jobs it runs.
    pub worker: String,
    /// Executor kind.
    pub kind: String,
    /// Jobs it may run at once.
    pub slots: u64,
    /// Jobs it runs now.
    pub running: u64,
    /// When it first said it was alive (RFC 3339).
    pub since: String,
    /// Its last presence call (RFC 3339).
    pub seen: String,
}

impl Broker {
    /// Says an executor process is alive (or, leaving, gone: a clean shutdown, after it
    /// handed its jobs back) and beats its jobs' leases with the configured lease: one answer
    /// per job, as [`Broker::heartbeat`]'s (true when a stop was requested).
    ///
    /// # Errors
    /// Redis errors (each job's own refusal is in its answer).
    pub async fn presence(&self, p: &Presence<'_>) -> Result<Vec<Result<bool, Error>>, Error> {
        let mut c = self.conn().await?;
        self.scripts()
            .presence(&mut *c, p, self.config().lease)
            .await
    }

    /// The executor processes alive now, oldest first.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn executors(&self) -> Result<Vec<ExecutorInfo>, Error> {
        let k = self.keys();
        let mut c = self.conn().await?;
        let workers: Vec<String> = c.zrange(k.executors(), 0, -1).await?;
        if workers.is_empty() {
            return Ok(Vec::new()); // an empty pipeline is an error to redis-rs
        }
        let mut p = redis::pipe();
        for w in &workers {
            p.hgetall(k.executor(w));
        }
        let infos: Vec<std::collections::HashMap<String, String>> = p.query_async(&mut *c).await?;
        Ok(workers
            .into_iter()
            .zip(infos)
            .filter(|(_, f)| !f.is_empty())
            .map(|(worker, f)| {
                let text = |n: &str| f.get(n).cloned().unwrap_or_default();
                let num = |n: &str| f.get(n).and_then(|v| v.parse().ok()).unwrap_or(0);
                ExecutorInfo {
                    kind: text("kind"),
                    slots: num("slots"),
                    running: num("running"),
                    since: text("since"),
                    seen: text("seen"),
                    worker,
                }
            })
            .collect())
    }
}
