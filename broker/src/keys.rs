//! The key schema: the only place that formats Redis key names (DESIGN.md section 2).
//!
//! | key | type | purpose |
//! | --- | --- | --- |
//! | `job_seq` | string | INCR source of job ids N |
//! | `job_N` | hash | the whole state of job N, readable with `redis-cli HGETALL job_N` |
//! | `queue:<executor>` | list | ready job ids for one executor kind, FIFO |
//! | `wake:<executor>` | list | at most one marker: idle claimers BLPOP it instead of polling |
//! | `delayed` | zset | SCHEDULED jobs (run_at or retry backoff), scored by due unix ms |
//! | `leases` | zset | RUNNING jobs, scored by lease deadline unix ms |
//! | `events` | stream | state and progress events of every job, capped with `MAXLEN ~` |
//! | `actions` | hash | action name -> executor kind that runs it (registered by executors) |
//! | `schemas` | hash | executor kind -> the JSON Schema of its params (published by executors) |
//! | `schedules` | zset | periodic schedule names scored by their next tick (unix ms) |
//! | `schedule:<name>` | hash | a schedule: executor, params (JSON), cron or every, ... |
//! | `stats` | hash | counters: `<event>:<executor>`, claim wait buckets (for `/metrics`) |
//! | `start`, `stop` | list | Stand's queues; `stop` is also the pub/sub channel of stop requests |
//! | `cluster_N` | hash | Stand cluster records |
//! | `levels:<executor>`, `queue:<executor>:p<N>` | zset, list | priorities with jobs queued, their queues |
//! | `concurrency:<executor>:<key>`, `parked:<executor>:<key>` | string, list | a concurrency key's running count, jobs waiting for a slot |
//! | `executors`, `executor:<worker>` | zset, hash | live executor processes by last presence (Redis ms); each one's kind, slots, running jobs |
//! | `rate_limits` | hash | executor kind -> "N/<ms>ms": at most N starts in any window |
//! | `starts:<executor>[:<key>]` | zset | recent starts of a kind or rate key, by unix ms |
//! | `throttled:<executor>:<key>`, `throttle:<executor>` | list, zset | jobs waiting for a rate key's window; keys by when it opens |
//! | `history:job_N` | list | the job's state changes, `<time> <status> <event>`, expiring with it |
//! | `workflow_seq` | string | INCR source of workflow ids W |
//! | `workflow_W` | hash | a workflow: status, member job ids, counters (`lua/includes/workflow.lua`) |
//! | `pipeline_seq` | string | INCR source of pipeline ids P |
//! | `pipeline_P` | hash | a pipeline: a named job template (executor, params), its run counter |
//! | `pipelines` | set | the pipeline ids |
//! | `runs:pipeline_P` | zset | job ids of the pipeline's runs, scored by their sequence |
//!
//! Every name is prefixed by the configured prefix (default none). The Lua scripts derive
//! per-job names (`job_N`, `queue:<executor>`, `wake:<executor>`, `history:job_N`, `workflow_W`)
//! from the same prefix, which is passed to them as `ARGV[1]`; `lua/includes/*.lua` spell
//! those patterns too.

use crate::error::Error;
use crate::job::{JobId, Status};

/// Longest executor kind name; it becomes part of key names.
const MAX_EXECUTOR_LEN: usize = 64;

/// Key names for one Sluice deployment (one prefix).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// A schema whose every key starts with `prefix` (may be empty).
    pub fn new(prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        // `SLUICE_PREFIX=t1` means keys `t1:job_1`, not `t1job_1`.
        if !prefix.is_empty() && !prefix.ends_with([':', '_', '-', '.', '/', '{', '}']) {
            prefix.push(':');
        }
        Self { prefix }
    }

    /// The prefix, as the Lua scripts receive it in `ARGV[1]`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `job_N`: the job's hash.
    pub fn job(&self, id: JobId) -> String {
        format!("{}job_{id}", self.prefix)
    }

    /// Patterns of every key the job data lives in (everything but `apikey:*`): what the
    /// executor and API users of [`crate::acl`] may touch.
    pub fn data_patterns(&self) -> Vec<String> {
        [
            "job_*",
            "queue:*",
            "wake:*",
            "delayed",
            "leases",
            "events",
            "events:*",
            "history:*",
            "stats",
            "start",
            "stop",
            "actions",
            "schemas",
            "schedules",
            "schedule:*",
            "ix:*",
            "ixo:*",
            "levels:*",
            "concurrency:*",
            "parked:*",
            "starts:*",
            "throttled:*",
            "throttle:*",
            "rate_limits",
            "executors",
            "executor:*",
            "idempotency:*",
            "unique:*",
            "workflow_*",
            "pipeline_*",
            "pipelines",
            "runs:pipeline_*",
            "clusters",
            "cluster_*",
        ]
        .iter()
        .map(|k| format!("{}{k}", self.prefix))
        .collect()
    }

    /// `job_*`: SCAN pattern that finds job hashes (and `job_seq`, which is not a hash).
    pub fn job_pattern(&self) -> String {
        format!("{}job_*", self.prefix)
    }

    /// `job_seq`: the id counter.
    pub fn job_seq(&self) -> String {
        format!("{}job_seq", self.prefix)
    }

    /// `queue:<executor>`: ready ids of one executor kind.
    pub fn queue(&self, executor: &str) -> String {
        format!("{}queue:{executor}", self.prefix)
    }

    /// `wake:<executor>`: the wake marker idle claimers block on.
    pub fn wake(&self, executor: &str) -> String {
        format!("{}wake:{executor}", self.prefix)
    }

    /// `delayed`: scheduled jobs by due time.
    pub fn delayed(&self) -> String {
        format!("{}delayed", self.prefix)
    }

    /// `leases`: running jobs by lease deadline.
    pub fn leases(&self) -> String {
        format!("{}leases", self.prefix)
    }

    /// `events`: the global event stream.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// `actions`: action name -> executor kind, registered by executors at start.
    pub fn actions(&self) -> String {
        format!("{}actions", self.prefix)
    }

    /// `schemas`: executor kind -> the JSON Schema text of its params, published by executors
    /// at start (`crate::schemas`).
    pub fn schemas(&self) -> String {
        format!("{}schemas", self.prefix)
    }

    /// `schedules`: schedule names by next tick.
    pub fn schedules(&self) -> String {
        format!("{}schedules", self.prefix)
    }

    /// `schedule:<name>`: one schedule's definition.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}schedule:{name}", self.prefix)
    }

    /// `stats`: event counters and claim-wait buckets; lua/includes/emit.lua derives it from
    /// the events key, so the two must keep the same prefix.
    pub fn stats(&self) -> String {
        format!("{}stats", self.prefix)
    }

    /// `start`: Stand's list of jobs to start.
    pub fn start_list(&self) -> String {
        format!("{}start", self.prefix)
    }

    /// `stop`: Stand's list of jobs to stop, and the channel stop requests are published on.
    pub fn stop_list(&self) -> String {
        format!("{}stop", self.prefix)
    }

    /// `levels:<executor>`: the priorities above 0 that have jobs queued, as a zset
    /// (lua/includes/enqueue.lua, lua/claim.lua); level N's queue is `queue:<executor>:p<N>`.
    pub fn levels(&self, executor: &str) -> String {
        format!("{}levels:{executor}", self.prefix)
    }

    /// `ix:<executor>:<STATUS>` (an ended status) or `ix:<executor>:active`: a listing
    /// index, the ids of a kind's jobs scored by id (lua/includes/index.lua). None: active.
    pub fn index(&self, executor: &str, ended: Option<Status>) -> String {
        let what = ended.map_or("active", Status::as_str);
        format!("{}ix:{executor}:{what}", self.prefix)
    }

    /// `ixo:<owner>`: every job of an owner, scored by id (lua/includes/index.lua).
    pub fn owner_index(&self, owner: &str) -> String {
        format!("{}ixo:{owner}", self.prefix)
    }

    /// `ix:owners`: every owner with jobs in the listing indexes.
    pub fn index_owners(&self) -> String {
        format!("{}ix:owners", self.prefix)
    }

    /// `ix:kinds`: every executor kind with jobs in the listing indexes.
    pub fn index_kinds(&self) -> String {
        format!("{}ix:kinds", self.prefix)
    }

    /// `concurrency:<executor>:<key>`: how many jobs of a concurrency key run (lua/claim.lua).
    pub fn concurrency(&self, executor: &str, key: &str) -> String {
        format!("{}concurrency:{executor}:{key}", self.prefix)
    }

    /// `parked:<executor>:<key>`: jobs waiting for a slot of their concurrency key.
    pub fn parked(&self, executor: &str, key: &str) -> String {
        format!("{}parked:{executor}:{key}", self.prefix)
    }

    /// `executors`: live executor processes (worker name), scored by the Redis time of
    /// their last presence call (lua/presence.lua, read by lua/reap.lua).
    pub fn executors(&self) -> String {
        format!("{}executors", self.prefix)
    }

    /// `executor:<worker>`: what a live executor process said of itself (kind, slots,
    /// running, since, seen), expiring with its presence ttl.
    pub fn executor(&self, worker: &str) -> String {
        format!("{}executor:{worker}", self.prefix)
    }

    /// `rate_limits`: executor kind -> its rate limit, "N/<ms>ms" (lua/claim.lua).
    pub fn rate_limits(&self) -> String {
        format!("{}rate_limits", self.prefix)
    }

    /// `starts:<executor>` (the kind's) or `starts:<executor>:<key>` (a rate key's): the
    /// recent starts a rate limit counts, scored by unix ms.
    pub fn starts(&self, executor: &str, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{}starts:{executor}:{key}", self.prefix),
            None => format!("{}starts:{executor}", self.prefix),
        }
    }

    /// `throttled:<executor>:<key>`: jobs waiting for their rate key's window, in order.
    pub fn throttled(&self, executor: &str, key: &str) -> String {
        format!("{}throttled:{executor}:{key}", self.prefix)
    }

    /// `idempotency:<owner>:<key>`: the job an Idempotency-Key made, and its request hash
    /// (lua/submit.lua).
    pub fn idempotency(&self, owner: &str, key: &str) -> String {
        format!("{}idempotency:{owner}:{key}", self.prefix)
    }

    /// `unique:<executor>:<key>`: the active job holding a unique key (lua/submit.lua).
    pub fn unique(&self, executor: &str, key: &str) -> String {
        format!("{}unique:{executor}:{key}", self.prefix)
    }

    /// `rate:<scope>:<who>:<window>`: a counter of `who`'s requests in one rate window.
    pub fn rate(&self, scope: &str, who: &str, window: u64) -> String {
        format!("{}rate:{scope}:{who}:{window}", self.prefix)
    }

    /// `history:job_N`: job N's state changes (lua/includes/emit.lua).
    pub fn history(&self, id: JobId) -> String {
        format!("{}history:job_{id}", self.prefix)
    }

    /// `workflow_seq`: the workflow id counter.
    pub fn workflow_seq(&self) -> String {
        format!("{}workflow_seq", self.prefix)
    }

    /// `workflow_W`: a workflow's hash.
    pub fn workflow(&self, id: u64) -> String {
        format!("{}workflow_{id}", self.prefix)
    }

    /// `pipeline_seq`: the pipeline id counter.
    pub fn pipeline_seq(&self) -> String {
        format!("{}pipeline_seq", self.prefix)
    }

    /// `pipeline_P`: a pipeline (job template).
    pub fn pipeline(&self, id: u64) -> String {
        format!("{}pipeline_{id}", self.prefix)
    }

    /// `pipelines`: the set of pipeline ids.
    pub fn pipelines(&self) -> String {
        format!("{}pipelines", self.prefix)
    }

    /// `runs:pipeline_P`: job ids of pipeline P's runs, scored by sequence.
    pub fn pipeline_runs(&self, id: u64) -> String {
        format!("{}runs:pipeline_{id}", self.prefix)
    }

    /// `clusters`: the set of cluster ids (lists without SCAN).
    pub fn clusters(&self) -> String {
        format!("{}clusters", self.prefix)
    }

    /// `cluster_N`: a Stand cluster record.
    pub fn cluster(&self, id: u64) -> String {
        format!("{}cluster_{id}", self.prefix)
    }
}

/// Checks an executor kind name: 1-64 of `[A-Za-z0-9_.-]`, since it becomes part of keys.
///
/// # Errors
/// [`Error::Invalid`] naming the rule that was broken.
pub fn validate_executor(name: &str) -> Result<(), Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_EXECUTOR_LEN || !name.chars().all(ok_char) {
        return Err(Error::Invalid(format!(
            "executor must be 1-{MAX_EXECUTOR_LEN} characters of A-Z a-z 0-9 _ - . (got {name:?})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_prefix_match_the_design() {
        let k = Keys::new("");
        assert_eq!(k.job(JobId(7)), "job_7");
        assert_eq!(k.job_seq(), "job_seq");
        assert_eq!(k.queue("solver"), "queue:solver");
        assert_eq!(k.wake("solver"), "wake:solver");
        assert_eq!(k.delayed(), "delayed");
        assert_eq!(k.leases(), "leases");
        assert_eq!(k.events(), "events");
        assert_eq!(k.stats(), "stats");
        assert_eq!(k.schemas(), "schemas");
        assert_eq!(k.stop_list(), "stop");
        assert_eq!(k.start_list(), "start");
        assert_eq!(k.cluster(2), "cluster_2");
        assert_eq!(k.history(JobId(7)), "history:job_7");
        assert_eq!(k.workflow(3), "workflow_3");
        assert_eq!(k.workflow_seq(), "workflow_seq");
        assert_eq!(k.pipeline(4), "pipeline_4");
        assert_eq!(k.pipeline_runs(4), "runs:pipeline_4");
        assert_eq!(
            k.index("solver", Some(Status::TimedOut)),
            "ix:solver:TIMED_OUT"
        );
        assert_eq!(k.index("solver", None), "ix:solver:active");
        assert_eq!(k.owner_index("ana"), "ixo:ana");
    }

    #[test]
    fn prefix_goes_in_front_of_every_name() {
        let k = Keys::new("t1:");
        assert_eq!(k.job(JobId(7)), "t1:job_7");
        assert_eq!(k.queue("spark"), "t1:queue:spark");
        assert_eq!(k.job_pattern(), "t1:job_*");
    }

    #[test]
    fn executor_names_are_checked() {
        assert!(validate_executor("solver").is_ok());
        assert!(validate_executor("spark-3.5_x").is_ok());
        assert!(validate_executor("").is_err());
        assert!(validate_executor("a b").is_err());
        assert!(validate_executor("a:b").is_err());
        assert!(validate_executor(&"x".repeat(65)).is_err());
    }
}
