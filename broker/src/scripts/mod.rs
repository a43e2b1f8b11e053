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

mod jobs;
mod stand;
mod workflows;

/// The helper functions scripts pull in with `--- @include "includes/<name>"`.
const INCLUDES: [(&str, &str); 10] = [
    ("keys", include_str!("../../../lua/includes/keys.lua")),
    (
        "create_job",
        include_str!("../../../lua/includes/create_job.lua"),
    ),
    ("time", include_str!("../../../lua/includes/time.lua")),
    ("emit", include_str!("../../../lua/includes/emit.lua")),
    ("enqueue", include_str!("../../../lua/includes/enqueue.lua")),
    ("index", include_str!("../../../lua/includes/index.lua")),
    ("finish", include_str!("../../../lua/includes/finish.lua")),
    (
        "workflow",
        include_str!("../../../lua/includes/workflow.lua"),
    ),
    (
        "end_attempt",
        include_str!("../../../lua/includes/end_attempt.lua"),
    ),
    (
        "check_lease",
        include_str!("../../../lua/includes/check_lease.lua"),
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
            $((stringify!($name), include_str!(concat!("../../../lua/", stringify!($name), ".lua")))),*
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
                        "../../../lua/", stringify!($name), ".lua"
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
    presence,
    promote,
    prune,
    list,
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

/// What one [`Scripts::claim`] call handed out.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// The jobs claimed, in queue order.
    pub jobs: Vec<Claimed>,
    /// When a rate limit holds jobs back: how long until one may start (claim again then;
    /// no wake marker is armed for them).
    pub throttled_for: Option<Duration>,
}

/// What `lua/submit.lua` answered: the job made now, or the one an `idempotency_key` (same
/// request) or an active `unique_key` made before. `POST /jobs` answers it as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The job.
    pub id: JobId,
    /// Its status (None: a job made before that has since expired).
    pub status: Option<Status>,
    /// True when this call made it.
    pub created: bool,
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
    script: &'static str,
    code: i64,
    rest: Vec<Value>,
}

impl Reply {
    fn parse(script: &'static str, v: Value) -> Result<Reply, Error> {
        match v {
            Value::Array(mut items) if !items.is_empty() => match items.remove(0) {
                Value::Int(code) => Ok(Reply {
                    script,
                    code,
                    rest: items,
                }),
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
    fn check(self, id: JobId, action: &'static str) -> Result<Reply, Error> {
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
            self.script,
            id,
            action,
            self.code,
            self.text(0).as_deref(),
            holder,
        ))
    }

    fn status(&self, i: usize) -> Result<Status, Error> {
        self.text(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Protocol {
                script: self.script,
                reply: format!("no status at {i}"),
            })
    }
}

/// Sends a prepared script call and splits its reply: the one way every wrapper talks to
/// Redis (`self.claim.key(..).arg(..).run(c, "claim")`).
trait Run {
    async fn run<C: ConnectionLike>(&self, c: &mut C, script: &'static str)
        -> Result<Reply, Error>;
}

impl Run for ScriptInvocation<'_> {
    async fn run<C: ConnectionLike>(
        &self,
        c: &mut C,
        script: &'static str,
    ) -> Result<Reply, Error> {
        let v: Value = self.invoke_async(c).await?;
        Reply::parse(script, v)
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
/// wrapper sends (each wrapper called against a recording connection, not read from the
/// wrappers' text) = KEYS the body uses; every error code a body (with its includes) can
/// return is documented and has an `Error` mapping; no include survives expansion.
#[cfg(test)]
mod header_tests;
