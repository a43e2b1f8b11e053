//! The Lua script registry: embeds `lua/*.lua`, expands their `--- @include` lines once, and
//! gives each script exactly one typed wrapper. A wrapper is the only place that knows its
//! script's KEYS order; `grep -rn "complete.lua" broker/` finds a transition and its caller.
//!
//! Scripts run by SHA (`EVALSHA`); `redis::Script` loads a script again by itself when Redis
//! answers NOSCRIPT (restart, `SCRIPT FLUSH`). Pipelined batches cannot do that, so the batch
//! wrappers load first (`SCRIPT LOAD` in the same pipeline).
//!
//! Time: every script reads the cluster clock with Redis `TIME` (`lua/includes/time.lua`),
//! so leases, backoffs and `run_at` mean the same on every host whatever their clocks say.
//! Callers pass durations (ms), never instants, except `run_at` of a submit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionLike;
use redis::{Script, ScriptInvocation, Value};

use crate::error::{code, Error};
use crate::job::{encode, JobId, NewJob, Status};
use crate::keys::Keys;

/// The helper functions scripts pull in with `--- @include "includes/<name>"`.
const INCLUDES: [(&str, &str); 9] = [
    ("keys", include_str!("../../lua/includes/keys.lua")),
    (
        "create_job",
        include_str!("../../lua/includes/create_job.lua"),
    ),
    ("time", include_str!("../../lua/includes/time.lua")),
    ("emit", include_str!("../../lua/includes/emit.lua")),
    ("enqueue", include_str!("../../lua/includes/enqueue.lua")),
    ("finish", include_str!("../../lua/includes/finish.lua")),
    ("workflow", include_str!("../../lua/includes/workflow.lua")),
    (
        "end_attempt",
        include_str!("../../lua/includes/end_attempt.lua"),
    ),
    (
        "check_lease",
        include_str!("../../lua/includes/check_lease.lua"),
    ),
];

/// Declares the transition scripts once: `lua/<name>.lua` for each name. It yields
/// [`SOURCES`] (name, source) and the [`Scripts`] struct with one loaded handle per script,
/// built by `Scripts::new` and listed by `Scripts::all`, so a script cannot be named in one
/// place and missing in another.
macro_rules! transitions {
    ($($name:ident),* $(,)?) => {
        /// Every transition script, by name (the file `lua/<name>.lua`).
        pub const SOURCES: &[(&str, &str)] = &[
            $((stringify!($name), include_str!(concat!("../../lua/", stringify!($name), ".lua")))),*
        ];

        /// The loaded transition scripts plus the key schema they run over.
        #[derive(Debug)]
        pub struct Scripts {
            keys: Keys,
            /// Most entries kept on Stand's `start` list (`stop_list_cap`).
            list_cap: usize,
            $($name: Script,)*
        }

        impl Scripts {
            /// Builds every script (expanding includes) over the given key schema; Stand's
            /// `start` and `stop` lists keep at most `list_cap` entries.
            pub fn new(keys: Keys, list_cap: usize) -> Self {
                Self {
                    keys,
                    list_cap,
                    $($name: Script::new(&expand(include_str!(concat!(
                        "../../lua/", stringify!($name), ".lua"
                    )))),)*
                }
            }

            /// Every script handle, in [`SOURCES`] order.
            fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name),*]
            }
        }
    };
}

transitions![
    fire,
    submit,
    claim,
    heartbeat,
    progress,
    complete,
    fail,
    timeout,
    cancel,
    release,
    stop,
    lock,
    unlock,
    retry,
    reap,
    promote,
    unhold,
    seq_floor,
    log,
    cluster_put,
    cluster_rm,
    workflow_create,
    pipeline_put,
    pipeline_rm,
    pipeline_run,
    workflow_stop,
];

/// Replaces each `--- @include "includes/<name>"` line with that include's text, whose own
/// includes come first (transitively), each include once per script: a script names the
/// helpers it calls, and their helpers follow.
pub fn expand(source: &str) -> String {
    fn into(source: &str, seen: &mut Vec<&'static str>, out: &mut String) {
        for line in source.lines() {
            let wanted = line
                .trim()
                .strip_prefix("--- @include \"includes/")
                .and_then(|rest| rest.strip_suffix('"'));
            match wanted.and_then(|n| INCLUDES.iter().find(|(i, _)| *i == n)) {
                Some((name, _)) if seen.contains(name) => {}
                Some((name, text)) => {
                    seen.push(name);
                    into(text, seen, out);
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    let mut out = String::with_capacity(source.len() * 2);
    into(source, &mut Vec::new(), &mut out);
    out
}

/// A job handed to an executor by [`Scripts::claim`].
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job.
    pub id: JobId,
    /// This attempt's number (1 for the first run).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt time limit (zero = none).
    pub timeout: Duration,
    /// The job's parameters, MessagePack as stored.
    pub params: Vec<u8>,
    /// The lease token every later call for this attempt must carry.
    pub token: String,
    /// The job has inputs or parents whose files must be stored first (executors::staging).
    pub inputs: bool,
}

/// What a reap pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Expired leases whose job went back to the head of its queue (the attempt not counted).
    pub requeued: u64,
    /// Expired leases whose job had lost its executor more than `max_lost_leases` times.
    pub failed: u64,
    /// Expired leases whose job had a stop request.
    pub canceled: u64,
}

/// Who a script acts for: the owner it writes, the owner it must find on what it changes
/// ("" for an admin, who may change anyone's) and the executor kinds it may submit to
/// (`*`, or `,a,b,`). Built by [`crate::apikeys::Account::actor`].
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    /// The account's owner name.
    pub owner: &'a str,
    /// The owner required on an existing thing, or "" for any.
    pub guard: &'a str,
    /// The executor kinds allowed.
    pub kinds: String,
}

/// A script reply split into its code and the rest (see the `Returns:` of each header).
struct Reply {
    code: i64,
    rest: Vec<Value>,
}

impl Reply {
    fn parse(script: &'static str, v: Value) -> Result<Reply, Error> {
        match v {
            Value::Array(mut items) if !items.is_empty() => match items.remove(0) {
                Value::Int(code) => Ok(Reply { code, rest: items }),
                other => Err(protocol(script, &other)),
            },
            other => Err(protocol(script, &other)),
        }
    }

    /// The text at `i` of the rest, if any.
    fn text(&self, i: usize) -> Option<String> {
        match self.rest.get(i) {
            Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Some(Value::SimpleString(s)) => Some(s.clone()),
            Some(Value::Int(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    fn int(&self, i: usize) -> Option<i64> {
        match self.rest.get(i) {
            Some(Value::Int(n)) => Some(*n),
            Some(Value::BulkString(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Ok(self) for a success code, else the typed error for this job and action.
    fn check(self, script: &'static str, id: JobId, action: &'static str) -> Result<Reply, Error> {
        if self.code > 0 {
            return Ok(self);
        }
        let holder = (self.code == code::LOCKED)
            .then(|| {
                self.text(1)
                    .map(|h| format!("{h} since {}", self.text(2).unwrap_or_default()))
            })
            .flatten();
        Err(Error::from_code(
            script,
            id,
            action,
            self.code,
            self.text(0).as_deref(),
            holder,
        ))
    }

    fn status(&self, script: &'static str, i: usize) -> Result<Status, Error> {
        self.text(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol {
                script,
                reply: format!("no status at {i}"),
            })
    }
}

fn protocol(script: &'static str, v: &Value) -> Error {
    Error::Protocol {
        script,
        reply: format!("{v:?}"),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Scripts {
    /// The key schema the scripts run over.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Loads every script (SCRIPT LOAD); useful before pipelining, harmless otherwise.
    pub async fn load_all<C: ConnectionLike>(&self, c: &mut C) -> Result<(), Error> {
        let mut p = redis::pipe();
        for s in self.all() {
            p.load_script(s);
        }
        p.query_async::<Vec<String>>(c).await?;
        Ok(())
    }

    /// Every script's name and SHA1, in `SOURCES` order (what `EVALSHA` takes).
    pub fn hashes(&self) -> Vec<(&'static str, &str)> {
        SOURCES
            .iter()
            .map(|(n, _)| *n)
            .zip(self.all().into_iter().map(Script::get_hash))
            .collect()
    }

    /// Appends a job's ARGV in the order of `lua/includes/create_job.lua`.
    fn job_args(&self, inv: &mut ScriptInvocation<'_>, job: &NewJob) -> Result<(), Error> {
        inv.arg(&job.executor)
            .arg(encode(&job.params)?)
            .arg(job.max_attempts)
            .arg(ms(job.backoff))
            .arg(ms(job.timeout))
            .arg(ms(job.result_ttl))
            .arg(job.run_at.map_or(0, unix_ms))
            .arg(&job.owner)
            .arg(self.list_cap);
        for (f, v) in &job.extra {
            inv.arg(f).arg(v);
        }
        Ok(())
    }

    /// [`Scripts::job_args`] with the number of extra pairs before the pairs
    /// (`lua/workflow_create.lua`'s node blocks).
    fn counted_job_args(&self, inv: &mut ScriptInvocation<'_>, job: &NewJob) -> Result<(), Error> {
        let mut bare = job.clone();
        let extra = std::mem::take(&mut bare.extra);
        self.job_args(inv, &bare)?;
        inv.arg(extra.len());
        for (f, v) in &extra {
            inv.arg(f).arg(v);
        }
        Ok(())
    }

    fn submit_call(&self, job: &NewJob) -> Result<ScriptInvocation<'_>, Error> {
        let k = &self.keys;
        let mut inv = self.submit.prepare_invoke();
        inv.key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix());
        self.job_args(&mut inv, job)?;
        Ok(inv)
    }

    /// Runs `lua/fire.lua`: fires schedule `name` for `tick` (the due time read from the
    /// `schedules` zset) and moves it to `next`, creating `job` — unless another beat
    /// process fired that tick first.
    ///
    /// # Returns
    /// The new job, or None when this tick was not this caller's to fire.
    pub async fn fire<C: ConnectionLike>(
        &self,
        c: &mut C,
        name: &str,
        tick: u64,
        next: u64,
        job: &NewJob,
    ) -> Result<Option<(JobId, Status)>, Error> {
        let k = &self.keys;
        let mut inv = self.fire.prepare_invoke();
        inv.key(k.schedules())
            .key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(name)
            .arg(tick)
            .arg(next);
        self.job_args(&mut inv, job)?;
        let v: Value = inv.invoke_async(c).await?;
        match Reply::parse("fire", v.clone())?.code {
            0 => Ok(None),
            _ => Self::submitted(v).map(Some),
        }
    }

    fn submitted(v: Value) -> Result<(JobId, Status), Error> {
        let r = Reply::parse("submit", v)?;
        if r.code == code::CLUSTER {
            return Err(Error::Cluster(r.text(0).unwrap_or_default()));
        }
        let id = r.int(0).filter(|n| *n > 0).ok_or_else(|| Error::Protocol {
            script: "submit",
            reply: "no id".into(),
        })?;
        Ok((JobId(id as u64), r.status("submit", 1)?))
    }

    /// Runs `lua/submit.lua`: creates `job_N` PENDING on its queue, or SCHEDULED when
    /// `run_at` is in the future. The caller has validated `job` (see `Broker::submit`).
    ///
    /// # Returns
    /// The new id and status.
    pub async fn submit<C: ConnectionLike>(
        &self,
        c: &mut C,
        job: &NewJob,
    ) -> Result<(JobId, Status), Error> {
        let v: Value = self.submit_call(job)?.invoke_async(c).await?;
        Self::submitted(v)
    }

    /// Runs `lua/submit.lua` for many jobs in one pipeline (one round trip).
    pub async fn submit_many<C: ConnectionLike>(
        &self,
        c: &mut C,
        jobs: &[NewJob],
    ) -> Result<Vec<(JobId, Status)>, Error> {
        let calls = jobs
            .iter()
            .map(|j| self.submit_call(j))
            .collect::<Result<Vec<_>, _>>()?;
        let mut p = redis::pipe();
        p.load_script(&self.submit).ignore();
        for inv in &calls {
            p.invoke_script(inv);
        }
        let replies: Vec<Value> = p.query_async(c).await?;
        replies.into_iter().map(Self::submitted).collect()
    }

    /// Runs `lua/claim.lua`: up to `count` PENDING jobs of `executor` become RUNNING under
    /// a fresh lease token and a lease of `lease`.
    pub async fn claim<C: ConnectionLike>(
        &self,
        c: &mut C,
        executor: &str,
        worker: &str,
        count: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, Error> {
        let k = &self.keys;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let v: Value = self
            .claim
            .key(k.queue(executor))
            .key(k.leases())
            .key(k.events())
            .key(k.wake(executor))
            .arg(k.prefix())
            .arg(worker)
            .arg(&token)
            .arg(ms(lease))
            .arg(count)
            .arg(executor)
            .invoke_async(c)
            .await?;
        let r = Reply::parse("claim", v)?;
        r.rest
            .into_iter()
            .map(|job| {
                let f = Reply::parse(
                    "claim",
                    Value::Array([vec![Value::Int(1)], as_array(job)].concat()),
                )?;
                let id = f.int(0).ok_or_else(|| protocol("claim", &Value::Nil))?;
                Ok(Claimed {
                    id: JobId(id as u64),
                    attempt: f.int(1).unwrap_or(1) as u32,
                    max_attempts: f.int(2).unwrap_or(1) as u32,
                    timeout: Duration::from_millis(f.int(3).unwrap_or(0) as u64),
                    params: match f.rest.get(4) {
                        Some(Value::BulkString(b)) => b.clone(),
                        _ => Vec::new(),
                    },
                    token: token.clone(),
                    inputs: f.int(5) == Some(1),
                })
            })
            .collect()
    }

    /// Runs `lua/heartbeat.lua`: extends the lease by `lease` from now.
    ///
    /// # Returns
    /// `true` when a stop was requested and the executor must stop the job.
    pub async fn heartbeat<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        lease: Duration,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let v: Value = self
            .heartbeat
            .key(k.job(id))
            .key(k.leases())
            .arg(id.0)
            .arg(token)
            .arg(ms(lease))
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("heartbeat", v)?
            .check("heartbeat", id, "heartbeat")?
            .code
            == 2)
    }

    /// Runs `lua/progress.lua`: records `progress` (JSON) for the running attempt.
    ///
    /// # Returns
    /// `true` when a stop was requested and the executor must stop the job.
    pub async fn progress<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let v: Value = self
            .progress
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(progress.to_string())
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("progress", v)?
            .check("progress", id, "report progress")?
            .code
            == 2)
    }

    /// Runs `lua/log.lua`: appends `lines` (joined by newlines) to the job's events.
    ///
    /// # Returns
    /// True when a stop was requested: the executor must stop the job.
    pub async fn log<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        lines: &str,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let v: Value = self
            .log
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(lines)
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("log", v)?.check("log", id, "log")?.code == 2)
    }

    /// Runs `lua/cluster_put.lua`: creates or replaces cluster `id` with `fields`.
    ///
    /// # Returns
    /// True when the record is new.
    pub async fn cluster_put<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        fields: &[(&str, String)],
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let mut inv = self.cluster_put.prepare_invoke();
        inv.key(k.cluster(id))
            .key(k.clusters())
            .key(k.events())
            .arg(id);
        for (f, v) in fields {
            inv.arg(*f).arg(v);
        }
        let v: Value = inv.invoke_async(c).await?;
        let r = Reply::parse("cluster_put", v)?;
        Ok(r.code > 0 && r.int(0) == Some(1))
    }

    /// Runs `lua/cluster_rm.lua`: deletes cluster `id`.
    ///
    /// # Returns
    /// False when there was no such cluster.
    pub async fn cluster_rm<C: ConnectionLike>(&self, c: &mut C, id: u64) -> Result<bool, Error> {
        let k = &self.keys;
        let v: Value = self
            .cluster_rm
            .key(k.cluster(id))
            .key(k.clusters())
            .key(k.events())
            .arg(id)
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("cluster_rm", v)?.code > 0)
    }

    /// Runs `lua/workflow_create.lua`: the workflow and every member job at once (nodes in
    /// a topological order, checked by the caller).
    ///
    /// # Returns
    /// The workflow id and the member job ids in node order.
    pub async fn workflow_create<C: ConnectionLike>(
        &self,
        c: &mut C,
        wf: &crate::workflows::NewWorkflow,
    ) -> Result<(u64, Vec<JobId>), Error> {
        let k = &self.keys;
        let mut inv = self.workflow_create.prepare_invoke();
        inv.key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .key(k.workflow_seq())
            .arg(k.prefix())
            .arg(&wf.name)
            .arg(&wf.owner)
            .arg(wf.on_failure.as_str())
            .arg(ms(wf.result_ttl))
            .arg(&wf.inputs)
            .arg(wf.nodes.len());
        for node in &wf.nodes {
            let parents: Vec<String> = node.parents.iter().map(|p| (p + 1).to_string()).collect();
            inv.arg(&node.name).arg(parents.join(","));
            self.counted_job_args(&mut inv, &node.job)?;
        }
        let v: Value = inv.invoke_async(c).await?;
        let r = Reply::parse("workflow_create", v)?;
        if r.code == code::CLUSTER {
            return Err(Error::Cluster(format!(
                "{} (node {})",
                r.text(0).unwrap_or_default(),
                r.text(1).unwrap_or_default()
            )));
        }
        let id = r.int(0).filter(|n| *n > 0).ok_or_else(|| Error::Protocol {
            script: "workflow_create",
            reply: "no id".into(),
        })?;
        let ids = match r.rest.get(1) {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| match v {
                    Value::Int(n) => Some(JobId(*n as u64)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((id as u64, ids))
    }

    /// Runs `lua/workflow_stop.lua`: cancels workflow `id`'s unfinished members.
    ///
    /// # Returns
    /// CANCELLED, or the status it had already ended with; [`Error::Missing`] for none.
    pub async fn workflow_stop<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
    ) -> Result<String, Error> {
        let k = &self.keys;
        let v: Value = self
            .workflow_stop
            .key(k.workflow(id))
            .arg(k.prefix())
            .arg(id)
            .invoke_async(c)
            .await?;
        let r = Reply::parse("workflow_stop", v)?;
        if r.code == code::NOT_FOUND {
            return Err(Error::Missing(format!("workflow {id}")));
        }
        Ok(r.text(0).unwrap_or_default())
    }

    /// Runs `lua/pipeline_put.lua`: creates pipeline (id None) or replaces its template.
    ///
    /// # Returns
    /// The pipeline id; [`Error::Missing`] when `id` names no live pipeline.
    pub async fn pipeline_put<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: Option<u64>,
        owner: &str,
        guard: &str,
        fields: &[(&str, Vec<u8>)],
    ) -> Result<u64, Error> {
        let k = &self.keys;
        let mut inv = self.pipeline_put.prepare_invoke();
        inv.key(k.pipeline_seq())
            .key(k.pipelines())
            .arg(k.prefix())
            .arg(id.map(|i| i.to_string()).unwrap_or_default())
            .arg(owner)
            .arg(guard);
        for (f, v) in fields {
            inv.arg(*f).arg(v.as_slice());
        }
        let v: Value = inv.invoke_async(c).await?;
        let r = Reply::parse("pipeline_put", v)?;
        match (r.code, r.int(0)) {
            (1, Some(id)) => Ok(id as u64),
            _ => Err(Error::Missing(format!(
                "pipeline {}",
                id.unwrap_or_default()
            ))),
        }
    }

    /// Runs `lua/pipeline_rm.lua`: deletes pipeline `id` softly.
    ///
    /// # Returns
    /// False when there was no such live pipeline.
    pub async fn pipeline_rm<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        guard: &str,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let v: Value = self
            .pipeline_rm
            .key(k.pipeline(id))
            .key(k.pipelines())
            .arg(id)
            .arg(guard)
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("pipeline_rm", v)?.code > 0)
    }

    /// Runs `lua/pipeline_run.lua`: a run of pipeline `id` with `inputs` (JSON, '' = none)
    /// and `callback_url` ('' = none); `defaults` gives attempts, backoff, timeout and
    /// result_ttl where the pipeline sets none.
    ///
    /// # Returns
    /// The run's job id, status and sequence; [`Error::Missing`] for no live pipeline.
    pub async fn pipeline_run<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        actor: &Actor<'_>,
        inputs: &str,
        callback_url: &str,
        defaults: &NewJob,
    ) -> Result<(JobId, Status, u64), Error> {
        let k = &self.keys;
        let v: Value = self
            .pipeline_run
            .key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .key(k.pipeline(id))
            .key(k.pipeline_runs(id))
            .arg(k.prefix())
            .arg(id)
            .arg(actor.owner)
            .arg(self.list_cap)
            .arg(inputs)
            .arg(callback_url)
            .arg(defaults.max_attempts)
            .arg(ms(defaults.backoff))
            .arg(ms(defaults.timeout))
            .arg(ms(defaults.result_ttl))
            .arg(actor.guard)
            .arg(&actor.kinds)
            .arg(
                defaults
                    .extra
                    .iter()
                    .find(|(f, _)| f == "held")
                    .map_or("", |(_, v)| v.as_str()),
            )
            .invoke_async(c)
            .await?;
        let r = Reply::parse("pipeline_run", v)?;
        match r.code {
            code::CLUSTER => Err(Error::Cluster(r.text(0).unwrap_or_default())),
            code::FORBIDDEN => Err(Error::Forbidden(format!(
                "this key may not submit {:?} jobs (pipeline {id}'s executor)",
                r.text(0).unwrap_or_default()
            ))),
            code::NOT_FOUND => Err(Error::Missing(format!("pipeline {id}"))),
            _ => {
                let job = r.int(0).filter(|n| *n > 0).ok_or_else(|| Error::Protocol {
                    script: "pipeline_run",
                    reply: "no id".into(),
                })?;
                let seq = r.int(2).unwrap_or_default();
                Ok((JobId(job as u64), r.status("pipeline_run", 1)?, seq as u64))
            }
        }
    }

    fn complete_call(&self, id: JobId, token: &str, result: &[u8]) -> ScriptInvocation<'_> {
        let k = &self.keys;
        let mut inv = self.complete.prepare_invoke();
        inv.key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(result);
        inv
    }

    /// Runs `lua/complete.lua`: RUNNING -> COMPLETED with `result` (MessagePack).
    pub async fn complete<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        result: &[u8],
    ) -> Result<(), Error> {
        let v: Value = self
            .complete_call(id, token, result)
            .invoke_async(c)
            .await?;
        Reply::parse("complete", v)?.check("complete", id, "complete")?;
        Ok(())
    }

    /// Runs `lua/complete.lua` for many attempts in one pipeline; one outcome per job.
    pub async fn complete_many<C: ConnectionLike>(
        &self,
        c: &mut C,
        done: &[(JobId, &str, &[u8])],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let calls: Vec<_> = done
            .iter()
            .map(|(id, t, r)| self.complete_call(*id, t, r))
            .collect();
        let mut p = redis::pipe();
        p.load_script(&self.complete).ignore();
        for inv in &calls {
            p.invoke_script(inv);
        }
        let replies: Vec<Value> = p.query_async(c).await?;
        Ok(replies
            .into_iter()
            .zip(done)
            .map(|(v, (id, _, _))| {
                Reply::parse("complete", v)?
                    .check("complete", *id, "complete")
                    .map(|_| ())
            })
            .collect())
    }

    /// Runs `lua/fail.lua`: retry (SCHEDULED or PENDING) or FAILED.
    ///
    /// # Returns
    /// The job's new status.
    pub async fn fail<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .fail
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(error)
            .arg(u8::from(retryable))
            .invoke_async(c)
            .await?;
        Reply::parse("fail", v)?
            .check("fail", id, "fail")?
            .status("fail", 0)
    }

    /// Runs `lua/timeout.lua`: retry (SCHEDULED or PENDING) or TIMED_OUT.
    ///
    /// # Returns
    /// The job's new status.
    pub async fn timeout<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        error: &str,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .timeout
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(error)
            .invoke_async(c)
            .await?;
        Reply::parse("timeout", v)?
            .check("timeout", id, "time out")?
            .status("timeout", 0)
    }

    /// Runs `lua/cancel.lua`: RUNNING -> CANCELED after the executor obeyed a stop.
    pub async fn cancel<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
    ) -> Result<(), Error> {
        let k = &self.keys;
        let v: Value = self
            .cancel
            .key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .invoke_async(c)
            .await?;
        Reply::parse("cancel", v)?.check("cancel", id, "cancel")?;
        Ok(())
    }

    /// Runs `lua/release.lua`: hands a running job back to the head of its queue without
    /// counting the attempt (graceful executor shutdown).
    ///
    /// # Returns
    /// PENDING, or CANCELED when its stop had been requested.
    pub async fn release<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .release
            .key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .invoke_async(c)
            .await?;
        Reply::parse("release", v)?
            .check("release", id, "release")?
            .status("release", 0)
    }

    /// Runs `lua/stop.lua`: a waiting job is CANCELED at once; a running one gets a stop
    /// request (pushed on the `stop` list, capped at `stop_list_cap`, and published).
    ///
    /// # Returns
    /// CANCELED, or RUNNING when the executor has been asked to stop it.
    pub async fn stop<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .stop
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.stop_list())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(self.list_cap.max(1))
            .invoke_async(c)
            .await?;
        Reply::parse("stop", v)?
            .check("stop", id, "stop")?
            .status("stop", 0)
    }

    /// Runs `lua/lock.lua`: freezes the job for `holder` (`force` takes a held lock).
    ///
    /// # Returns
    /// The job's status.
    pub async fn lock<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        holder: &str,
        force: bool,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .lock
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(holder)
            .arg(u8::from(force))
            .invoke_async(c)
            .await?;
        Reply::parse("lock", v)?
            .check("lock", id, "lock")?
            .status("lock", 0)
    }

    /// Runs `lua/unlock.lua`.
    ///
    /// # Returns
    /// The job's status.
    pub async fn unlock<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .unlock
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .invoke_async(c)
            .await?;
        Reply::parse("unlock", v)?
            .check("unlock", id, "unlock")?
            .status("unlock", 0)
    }

    /// Runs `lua/retry.lua`: FAILED, CANCELED or TIMED_OUT -> PENDING, attempts reset.
    pub async fn retry<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .retry
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .invoke_async(c)
            .await?;
        Reply::parse("retry", v)?
            .check("retry", id, "retry")?
            .status("retry", 0)
    }

    /// Runs `lua/reap.lua` over at most `count` expired leases.
    pub async fn reap<C: ConnectionLike>(
        &self,
        c: &mut C,
        count: usize,
        max_lost: u32,
    ) -> Result<Reaped, Error> {
        let k = &self.keys;
        let v: Value = self
            .reap
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(count)
            .arg(max_lost)
            .invoke_async(c)
            .await?;
        let r = Reply::parse("reap", v)?;
        let n = |i| r.int(i).unwrap_or(0) as u64;
        Ok(Reaped {
            requeued: n(0),
            failed: n(1),
            canceled: n(2),
        })
    }

    /// Runs `lua/promote.lua` over at most `count` due delayed jobs.
    ///
    /// # Returns
    /// How many became PENDING.
    pub async fn promote<C: ConnectionLike>(&self, c: &mut C, count: usize) -> Result<u64, Error> {
        let k = &self.keys;
        let v: Value = self
            .promote
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(count)
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("promote", v)?.int(0).unwrap_or(0) as u64)
    }

    /// Runs `lua/unhold.lua`: a held job (its files now stored) becomes PENDING, or
    /// SCHEDULED until `run_at`.
    ///
    /// # Errors
    /// NotFound; IllegalTransition when the job is no longer held (stopped meanwhile).
    pub async fn unhold<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        run_at: Option<SystemTime>,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        let v: Value = self
            .unhold
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(run_at.map_or(0, unix_ms))
            .arg(self.list_cap.max(1))
            .invoke_async(c)
            .await?;
        Reply::parse("unhold", v)?
            .check("unhold", id, "start")?
            .status("unhold", 0)
    }

    /// Runs `lua/seq_floor.lua`: the job id counter becomes at least `floor`.
    pub async fn seq_floor<C: ConnectionLike>(&self, c: &mut C, floor: u64) -> Result<u64, Error> {
        let v: Value = self
            .seq_floor
            .key(self.keys.job_seq())
            .arg(floor)
            .invoke_async(c)
            .await?;
        Ok(Reply::parse("seq_floor", v)?.int(0).unwrap_or(0) as u64)
    }
}

fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => vec![other],
    }
}

/// Unix milliseconds of a time, as `run_at` travels.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// Keeps every Lua header honest (the fix for header drift): KEYS documented = KEYS the
/// wrapper sends (each wrapper called against a recording connection, not read from this
/// file's text) = KEYS the body uses; every error code a body (with its includes) can
/// return is documented and has an `Error` mapping; no include survives expansion.
#[cfg(test)]
mod header_tests {
    use super::*;

    fn header(src: &str) -> &str {
        let start = src.find("--[[").unwrap_or(0);
        let end = src[start..].find("]]").map_or(src.len(), |e| start + e);
        &src[start..end]
    }

    fn numbers_after(text: &str, marker: &str) -> Vec<i64> {
        text.match_indices(marker)
            .filter_map(|(i, _)| {
                let rest = &text[i + marker.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// A connection that answers every command with `{-1}` and records, per script SHA,
    /// the KEYS count each EVALSHA sent: what the wrappers actually pass.
    #[derive(Default)]
    struct Recorder {
        sent: std::collections::HashMap<String, usize>,
    }

    impl Recorder {
        fn record(&mut self, cmd: &redis::Cmd) {
            let args: Vec<Vec<u8>> = cmd
                .args_iter()
                .filter_map(|a| match a {
                    redis::Arg::Simple(b) => Some(b.to_vec()),
                    _ => None,
                })
                .collect();
            if args
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"EVALSHA"))
            {
                let sha = String::from_utf8_lossy(&args[1]).into_owned();
                let n = String::from_utf8_lossy(&args[2])
                    .parse()
                    .unwrap_or(usize::MAX);
                self.sent.insert(sha, n);
            }
        }
    }

    impl ConnectionLike for Recorder {
        fn req_packed_command<'a>(
            &'a mut self,
            cmd: &'a redis::Cmd,
        ) -> redis::RedisFuture<'a, Value> {
            self.record(cmd);
            Box::pin(async { Ok(Value::Array(vec![Value::Int(-1)])) })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            cmd: &'a redis::Pipeline,
            _offset: usize,
            count: usize,
        ) -> redis::RedisFuture<'a, Vec<Value>> {
            for c in cmd.cmd_iter() {
                self.record(c);
            }
            Box::pin(async move { Ok(vec![Value::Array(vec![Value::Int(-1)]); count]) })
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    /// The KEYS count each script's wrapper sends, by script name: every wrapper called once
    /// against a [`Recorder`].
    fn wrapper_keys() -> std::collections::HashMap<&'static str, usize> {
        let s = Scripts::new(Keys::new(""), 10);
        let mut r = Recorder::default();
        let job = NewJob {
            executor: "x".into(),
            params: serde_json::json!({}),
            max_attempts: 1,
            backoff: Duration::ZERO,
            timeout: Duration::ZERO,
            result_ttl: Duration::ZERO,
            run_at: None,
            owner: String::new(),
            extra: Vec::new(),
        };
        let id = JobId(1);
        let actor = Actor {
            owner: "o",
            guard: "",
            kinds: "*".into(),
        };
        let wf = crate::workflows::NewWorkflow {
            name: "w".into(),
            owner: String::new(),
            on_failure: crate::workflows::OnFailure::All,
            result_ttl: Duration::ZERO,
            inputs: "[]".into(),
            nodes: vec![crate::workflows::NewNode {
                name: "a".into(),
                parents: Vec::new(),
                job: job.clone(),
            }],
        };
        futures::executor::block_on(async {
            let c = &mut r;
            let _ = s.fire(c, "n", 1, 2, &job).await;
            let _ = s.submit(c, &job).await;
            let _ = s.claim(c, "x", "w", 1, Duration::from_secs(1)).await;
            let _ = s.heartbeat(c, id, "t", Duration::from_secs(1)).await;
            let _ = s.progress(c, id, "t", &serde_json::json!({})).await;
            let _ = s.log(c, id, "t", "line").await;
            let _ = s.complete(c, id, "t", b"").await;
            let _ = s.fail(c, id, "t", "e", true).await;
            let _ = s.timeout(c, id, "t", "e").await;
            let _ = s.cancel(c, id, "t").await;
            let _ = s.release(c, id, "t").await;
            let _ = s.stop(c, id).await;
            let _ = s.lock(c, id, "h", false).await;
            let _ = s.unlock(c, id).await;
            let _ = s.retry(c, id).await;
            let _ = s.reap(c, 1, 5).await;
            let _ = s.promote(c, 1).await;
            let _ = s.unhold(c, id, None).await;
            let _ = s.seq_floor(c, 1).await;
            let _ = s.cluster_put(c, 1, &[("name", "n".into())]).await;
            let _ = s.cluster_rm(c, 1).await;
            let _ = s.workflow_create(c, &wf).await;
            let _ = s.workflow_stop(c, 1).await;
            let _ = s.pipeline_put(c, Some(1), "o", "", &[]).await;
            let _ = s.pipeline_rm(c, 1, "").await;
            let _ = s.pipeline_run(c, 1, &actor, "", "", &job).await;
        });
        s.hashes()
            .into_iter()
            .filter_map(|(name, sha)| Some((name, *r.sent.get(sha)?)))
            .collect()
    }

    #[test]
    fn keys_documented_used_and_passed_agree() {
        let sent = wrapper_keys();
        for (name, src) in SOURCES {
            let documented = numbers_after(header(src), "KEYS[");
            let n = documented.len();
            assert_eq!(
                documented,
                (1..=n as i64).collect::<Vec<_>>(),
                "{name}.lua: header KEYS must be numbered 1..n"
            );
            let body = &src[header(src).len()..];
            let used = numbers_after(body, "KEYS[").into_iter().max().unwrap_or(0);
            assert_eq!(
                used as usize, n,
                "{name}.lua: body uses KEYS up to {used}, header documents {n}"
            );
            assert_eq!(
                sent.get(name).copied(),
                Some(n),
                "{name}.lua: its Rust wrapper sends a different KEYS count (None: not called)"
            );
        }
    }

    #[test]
    fn every_returned_code_is_documented_and_mapped() {
        let mapped = [
            code::NOT_FOUND,
            code::LOCKED,
            code::ILLEGAL,
            code::STALE_LEASE,
            code::CLUSTER,
            code::FORBIDDEN,
        ];
        for (name, src) in SOURCES {
            let doc = header(src);
            let returns = &doc[doc.find("Returns:").unwrap_or(0)..];
            let expanded = expand(src);
            let body = &expanded[header(&expanded).len()..];
            for c in numbers_after(body, "{-") {
                assert!(
                    returns.contains(&format!("{{-{c}")),
                    "{name}.lua can return -{c} but its header does not say so"
                );
            }
            for c in numbers_after(returns, "{-") {
                assert!(
                    mapped.contains(&-c),
                    "{name}.lua documents -{c}, which error.rs does not map"
                );
            }
        }
    }

    #[test]
    fn keys_are_made_only_by_the_key_schema_and_it_agrees_with_keys_rs() {
        let lua = include_str!("../../lua/includes/keys.lua");
        for (name, src) in SOURCES.iter().chain(INCLUDES.iter()) {
            if *name == "keys" {
                continue;
            }
            let body = &src[header(src).len()..];
            assert!(
                !body.contains("prefix .."),
                "{name}.lua builds a key by hand; use includes/keys"
            );
        }
        let k = Keys::new("t:");
        let id = JobId(7);
        for (f, rust) in [
            ("job", k.job(id)),
            ("history", k.history(id)),
            ("workflow", k.workflow(7)),
            ("pipeline", k.pipeline(7)),
            ("cluster", k.cluster(7)),
            ("queue", k.queue("7")),
            ("wake", k.wake("7")),
            ("schedule", k.schedule("7")),
        ] {
            let line = lua
                .lines()
                .find(|l| l.starts_with(&format!("local function key_{f}(")))
                .unwrap_or_default();
            let literal = line.split('\'').nth(1).unwrap_or("?");
            assert_eq!(
                format!("t:{literal}7"),
                rust,
                "key_{f} and Keys::{f} disagree"
            );
        }
    }

    #[test]
    fn no_include_survives_expansion() {
        for (name, src) in SOURCES {
            assert!(
                !expand(src).contains("@include"),
                "{name}.lua keeps an unexpanded include"
            );
        }
    }

    #[test]
    fn every_lua_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        files.retain(|f| f.ends_with(".lua"));
        files.sort();
        let mut names: Vec<String> = SOURCES.iter().map(|(n, _)| format!("{n}.lua")).collect();
        names.sort();
        assert_eq!(files, names);
    }
}
