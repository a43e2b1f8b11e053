//! `Broker`: the one handle the CLI, the HTTP server and the executors use. It owns the
//! config, the connection pool and the scripts, validates requests before they reach Lua,
//! and reads jobs and events back. Every state change goes through one script of
//! `scripts/`; this file adds no state of its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::artifacts::Artifacts;
use crate::config::Config;
use crate::error::Error;
use crate::job::{encode, Job, JobId, NewJob, Status, EXTRA_FIELDS};
use crate::keys::{validate_executor, Keys};
use crate::outbound::Outbound;
use crate::pool::{self, Pool};
use crate::scripts::{Claimed, Reaped, Scripts};

/// Largest page of a job listing.
pub const MAX_PAGE: usize = 1000;
/// Most index entries one listing walks through before it ends its page early.
pub const LIST_BUDGET: usize = 2000;
/// Oldest entries of each listing index one prune looks at.
const PRUNE_BATCH: usize = 100;
/// Most expired leases / due jobs one maintenance pass handles per script call.
const TICK_BATCH: usize = 500;

/// A filter for [`Broker::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only jobs in this status.
    pub status: Option<Status>,
    /// Only jobs that ended for good (COMPLETED, FAILED, TIMED_OUT, CANCELED), when no
    /// `status` is given.
    pub finished: bool,
    /// Only jobs of this executor kind.
    pub executor: Option<String>,
    /// Only jobs of this owner.
    pub owner: Option<String>,
}

impl ListFilter {
    /// The statuses this filter lists (every one when it names none).
    pub fn statuses(&self) -> Vec<Status> {
        match self.status {
            Some(s) => vec![s],
            None if self.finished => Status::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .collect(),
            None => Status::ALL.to_vec(),
        }
    }
}

/// One page of a listing, newest first; `next` is the cursor for the next page (None at
/// the end).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The jobs found, newest first.
    pub jobs: Vec<Job>,
    /// Pass back as `cursor` to continue (the last id shown); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// How many jobs of the filter's kind and owner are in each status (every status,
    /// whatever the status filter: the tabs of a list).
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub counts: BTreeMap<Status, u64>,
    /// False when `counts` are over the owner's newest 1 000 jobs only (it has more).
    pub counts_exact: bool,
}

/// One entry of an event stream.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Stream entry id (`<ms>-<seq>`), usable as the `after` of the next read.
    pub id: String,
    /// The entry: job, event, status, event-specific fields, and `at`, the entry's time
    /// (RFC 3339, from the stream id).
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// A field of the entry.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether the entry leaves its job in a terminal status (its last event).
    pub fn ends_job(&self) -> bool {
        self.get("status")
            .and_then(|s| s.parse::<Status>().ok())
            .is_some_and(Status::is_terminal)
    }
}

/// The broker handle; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    config: Arc<Config>,
    pool: Pool,
    scripts: Arc<Scripts>,
    artifacts: Artifacts,
    outbound: Outbound,
    /// Compiled params schemas of the kinds submitted to lately (`crate::schemas`).
    schemas: crate::schemas::Cache,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field(
                "redis_url",
                &crate::config::redacted_url(&self.config.redis_url),
            )
            .finish()
    }
}

impl Broker {
    /// A broker for `config`. Connects lazily; call it inside a Tokio runtime (the pool
    /// starts its reaper task there).
    ///
    /// # Errors
    /// [`Error::Config`] when the Redis URL is malformed or the artifact store's settings
    /// are incomplete (`artifact_store = s3` without `S3_BUCKET`, ...).
    pub fn new(config: Config) -> Result<Self, Error> {
        let pool = pool::build(&config)?;
        let scripts = Arc::new(Scripts::new(
            Keys::new(config.prefix.clone()),
            config.stop_list_cap,
        ));
        let artifacts = Artifacts::from_config(&config)?;
        let outbound = Outbound::new(&config.outbound_allow);
        Ok(Self {
            config: Arc::new(config),
            pool,
            scripts,
            artifacts,
            outbound,
            schemas: crate::schemas::Cache::default(),
        })
    }

    /// The cache of compiled params schemas.
    pub(crate) fn schema_cache(&self) -> &crate::schemas::Cache {
        &self.schemas
    }

    /// The policy for requests to addresses a client chose (inputs, callbacks, webhooks).
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Refuses a job of executor kind `kind` from `who` unless its key may submit to that
    /// kind ([`crate::apikeys::Account::may_run`] with this server's `open_executors`).
    ///
    /// # Errors
    /// [`Error::Forbidden`] naming the kind.
    pub fn admit(&self, who: &crate::apikeys::Account, kind: &str) -> Result<(), Error> {
        if who.may_run(kind, &self.config().open_executors) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this key may not submit {kind:?} jobs (an admin grants kinds with \
                 `sluice keys create --executors`)"
            )))
        }
    }

    /// The artifact store of this broker's config (`artifact_store`); cheap to clone.
    pub fn artifacts(&self) -> Artifacts {
        self.artifacts.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key schema.
    pub fn keys(&self) -> &Keys {
        self.scripts.keys()
    }

    /// The scripts, for callers that pipeline (benchmarks, batch completions).
    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// A pooled connection.
    ///
    /// # Errors
    /// [`Error::Unavailable`] / [`Error::Redis`] when Redis cannot be reached in time.
    pub async fn conn(&self) -> Result<pool::Conn<'_>, Error> {
        Ok(self.pool.get().await?)
    }

    /// A dedicated connection for blocking reads (see `pool.rs`).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis cannot be reached.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection, Error> {
        pool::blocking_connection(&self.config).await
    }

    /// PING through the pool.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn ping(&self) -> Result<(), Error> {
        // Bounded as a whole: a paused or stuck Redis answers nothing, and health must say
        // so within `redis_timeout`, not when Redis wakes up.
        let limit = self.config.redis_timeout;
        tokio::time::timeout(limit, async {
            let mut c = self.conn().await?;
            redis::cmd("PING").query_async::<String>(&mut *c).await?;
            Ok(())
        })
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(limit)
            )))
        })
    }

    /// Replicas of the primary that are online now (`INFO replication`, `slaveN:...state=online`).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn replicas_online(&self) -> Result<u32, Error> {
        let mut c = self.conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut *c)
            .await?;
        Ok(info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count() as u32)
    }

    /// Refuses a Redis that could evict job keys: `maxmemory-policy` must be `noeviction`
    /// (a broker must never silently lose a job), unless `allow_eviction` is set. Where
    /// `CONFIG GET` is disabled (managed Redis) or Redis is not up yet, it only warns.
    ///
    /// # Errors
    /// [`Error::Config`] naming the policy and the way out.
    pub async fn check_eviction_policy(&self) -> Result<(), Error> {
        // INFO, not CONFIG GET: the ACL users of `crate::acl` may not read the config.
        let policy: Result<String, Error> = async {
            let mut c = self.conn().await?;
            Ok(redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut *c)
                .await?)
        }
        .await;
        let value = |info: &String| {
            info.lines()
                .find_map(|l| l.strip_prefix("maxmemory_policy:"))
                .map(|v| v.trim().to_string())
        };
        match policy.as_ref().map(value).as_ref().map(Option::as_deref) {
            Ok(Some("noeviction")) => Ok(()),
            Ok(Some(p)) if !self.config.allow_eviction => Err(Error::Config(format!(
                "Redis maxmemory-policy is {p}: it may evict jobs. Set `maxmemory-policy noeviction` \
                 (as the shipped redis.conf does) or SLUICE_ALLOW_EVICTION=on to run anyway"
            ))),
            Ok(Some(p)) => {
                tracing::warn!(policy = p, "Redis may evict jobs (allowed by allow_eviction)");
                Ok(())
            }
            Ok(None) | Err(_) => {
                tracing::warn!(error = ?policy.err().map(|e| e.to_string()), "could not read maxmemory-policy; make sure it is noeviction");
                Ok(())
            }
        }
    }

    /// A submit request for `executor` with the configured defaults.
    /// Kept once finished as the retention policy says for its kind (see `face_job`).
    pub fn new_job(&self, executor: impl Into<String>, params: Value) -> NewJob {
        let executor = executor.into();
        NewJob {
            result_ttl: self.config.retention(None, &executor),
            executor,
            params,
            max_attempts: self.config.max_attempts,
            backoff: self.config.backoff,
            timeout: self.config.timeout,
            run_at: None,
            owner: String::new(),
            extra: Vec::new(),
        }
    }

    /// [`Broker::job_for`] for a compatible face (a scope of the `retention` policy): the job
    /// is kept as long as that face's clients expect, unless its kind says otherwise.
    ///
    /// # Errors
    /// [`Error::Forbidden`] for a kind `who` may not submit to.
    pub fn face_job(
        &self,
        face: &str,
        who: &crate::apikeys::Account,
        executor: &str,
        params: Value,
    ) -> Result<NewJob, Error> {
        let mut job = self.job_for(who, executor, params)?;
        job.result_ttl = self.config.retention(Some(face), executor);
        Ok(job)
    }

    /// The submit request of `who` for `executor`, with the configured defaults: the one
    /// core request every face, the CLI and the workflow planner build (then set typed
    /// durations and call [`Broker::attach`]).
    ///
    /// # Errors
    /// [`Error::Forbidden`] for a kind `who` may not submit to.
    pub fn job_for(
        &self,
        who: &crate::apikeys::Account,
        executor: &str,
        params: Value,
    ) -> Result<NewJob, Error> {
        self.admit(who, executor)?;
        let mut job = self.new_job(executor, params);
        job.owner = who.owner.clone();
        Ok(job)
    }

    /// Adds to `job` what travels beside its params: a Stand `cluster`, the files it starts
    /// with (`inputs`, checked by the outbound policy) and a `callback_url` (checked too).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a refused URL or a bad input.
    pub fn attach(
        &self,
        job: &mut NewJob,
        cluster: Option<&str>,
        inputs: &[crate::inputs::Input],
        callback_url: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(url) = callback_url {
            self.outbound().check("callback_url", url)?;
        }
        let inputs = crate::inputs::encode(inputs, self.outbound())?;
        for (field, value) in [
            ("cluster", cluster.map(String::from)),
            ("inputs", inputs),
            ("callback_url", callback_url.map(String::from)),
        ] {
            if let Some(v) = value {
                job.extra.push((field.to_string(), v));
            }
        }
        Ok(())
    }

    /// Checks a submit request before it reaches Redis.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(job: &NewJob) -> Result<(), Error> {
        validate_executor(&job.executor)?;
        if job.max_attempts == 0 || job.max_attempts > crate::job::MAX_ATTEMPTS {
            return Err(Error::Invalid(format!(
                "max_attempts must be 1-{}",
                crate::job::MAX_ATTEMPTS
            )));
        }
        // Every path (HTTP faces, CLI, workflows, schedules) comes through here.
        crate::job::check_duration("timeout", job.timeout)?;
        crate::job::check_duration("backoff", job.backoff)?;
        crate::job::check_duration("result_ttl", job.result_ttl)?;
        if let Some(at) = job.run_at {
            let ahead = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            crate::job::check_duration("run_at", ahead)
                .map_err(|_| Error::Invalid("run_at: at most 365 days ahead".into()))?;
        }
        let has = |f: &str| job.extra.iter().any(|(k, _)| k == f);
        for (a, b) in [
            ("concurrency_key", "concurrency_limit"),
            ("rate_key", "rate_limit"),
        ] {
            if has(a) != has(b) {
                return Err(Error::Invalid(format!("{a} and {b} go together")));
            }
        }
        for (field, value) in &job.extra {
            if field == "priority"
                && !value
                    .parse::<u8>()
                    .is_ok_and(|p| p <= crate::job::MAX_PRIORITY)
            {
                return Err(Error::Invalid(format!(
                    "priority: 0-{} (higher runs first), got {value:?}",
                    crate::job::MAX_PRIORITY
                )));
            }
            if field == "concurrency_limit"
                && !value
                    .parse::<u32>()
                    .is_ok_and(|n| (1..=crate::job::MAX_CONCURRENCY_LIMIT).contains(&n))
            {
                return Err(Error::Invalid(format!(
                    "concurrency_limit: 1-{}",
                    crate::job::MAX_CONCURRENCY_LIMIT
                )));
            }
            // Stored as lua/claim.lua reads it ("N/<ms>ms"), which parses back the same.
            if field == "rate_limit" && value.parse::<crate::job::Rate>()?.to_string() != *value {
                return Err(Error::Invalid(format!(
                    "rate_limit: store {value:?} as N/<ms>ms"
                )));
            }
            if matches!(
                field.as_str(),
                "idempotency_key" | "unique_key" | "concurrency_key" | "rate_key"
            ) && (value.is_empty() || value.len() > crate::job::MAX_KEY_LEN)
            {
                return Err(Error::Invalid(format!(
                    "{field}: 1-{} bytes",
                    crate::job::MAX_KEY_LEN
                )));
            }
            if !EXTRA_FIELDS.contains(&field.as_str()) {
                return Err(Error::Invalid(format!(
                    "unknown job field {field:?}; allowed: {}",
                    EXTRA_FIELDS.join(", ")
                )));
            }
        }
        encode(&job.params)?;
        Ok(())
    }

    /// Submits a job (`lua/submit.lua`), its params checked against its kind's schema
    /// ([`Broker::check_params`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad request or params; Redis errors.
    pub async fn submit(&self, job: &NewJob) -> Result<(JobId, Status), Error> {
        let s = self.submit_once(job).await?;
        Ok((s.id, s.status.ok_or(Error::NotFound(s.id))?))
    }

    /// [`Broker::submit`] for a job that may carry an `idempotency_key` (with its
    /// `request_hash`) or a `unique_key`: the job made now, or the one made before.
    ///
    /// # Errors
    /// As [`Broker::submit`]; [`Error::Conflict`] for an idempotency key used with another
    /// request.
    pub async fn submit_once(&self, job: &NewJob) -> Result<crate::scripts::Submitted, Error> {
        Self::validate(job)?;
        self.check_params(&job.executor, &job.params).await?;
        let mut c = self.conn().await?;
        let made = self.scripts.submit(&mut *c, job).await?;
        self.replicated(&mut c).await?;
        Ok(made)
    }

    /// Waits until `min_replicas_ack` replicas hold every write made so far on `c` (Redis
    /// `WAIT`, which counts this connection's writes; a pooled connection is one caller's
    /// while it is checked out). Nothing to do when the setting is 0.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when fewer replicas confirmed within `replica_ack_timeout`:
    /// the write is on the primary but could be lost if it failed now.
    pub(crate) async fn replicated(&self, c: &mut pool::Conn<'_>) -> Result<(), Error> {
        let wanted = self.config.min_replicas_ack;
        if wanted == 0 {
            return Ok(());
        }
        let timeout = self.config.replica_ack_timeout;
        let acked: u32 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(timeout.as_millis().max(1) as u64)
            .query_async(&mut **c)
            .await?;
        if acked >= wanted {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "written to the primary, but {acked} of {wanted} replicas (min_replicas_ack) confirmed \
             it within {}: it could be lost in a failover; retry (a submit with the same \
             Idempotency-Key makes no second job)",
            humantime::format_duration(timeout)
        )))
    }

    /// Many [`Broker::submit_once`] in one round trip, each job checked and made on its own:
    /// one outcome per item, in order. An item may already be a refusal (a request its
    /// caller could not read): it stays that item's outcome.
    ///
    /// # Errors
    /// Redis errors (each job's own refusal is in its outcome).
    pub async fn submit_bulk(
        &self,
        jobs: Vec<Result<NewJob, Error>>,
    ) -> Result<Vec<Result<crate::scripts::Submitted, Error>>, Error> {
        let mut outcomes: Vec<Option<Result<crate::scripts::Submitted, Error>>> = Vec::new();
        let mut valid = Vec::new();
        for job in jobs {
            let job = match job.and_then(|job| Self::validate(&job).map(|()| job)) {
                // A refused item is that item's outcome; Redis failing is the whole call's.
                Ok(job) => match self.check_params(&job.executor, &job.params).await {
                    Ok(()) => Ok(job),
                    Err(e @ Error::Invalid(_)) => Err(e),
                    Err(e) => return Err(e),
                },
                Err(e) => Err(e),
            };
            match job {
                Ok(job) => {
                    valid.push(job);
                    outcomes.push(None);
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        let mut made = if valid.is_empty() {
            Vec::new()
        } else {
            let mut c = self.conn().await?;
            let made = self.scripts.submit_many(&mut *c, &valid).await?;
            self.replicated(&mut c).await?;
            made
        }
        .into_iter();
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.or_else(|| made.next()).unwrap_or_else(|| {
                    Err(Error::Protocol {
                        script: "submit",
                        reply: "fewer replies than jobs".into(),
                    })
                })
            })
            .collect())
    }

    /// Reads one job.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such job (or it expired).
    pub async fn get(&self, id: JobId) -> Result<Job, Error> {
        let mut c = self.conn().await?;
        let h: HashMap<String, Vec<u8>> = c.hgetall(self.keys().job(id)).await?;
        Job::from_hash(h)?.ok_or(Error::NotFound(id))
    }

    /// Job `id`'s state history: `(time, status, event)`, oldest first.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn history(&self, id: JobId) -> Result<Vec<(String, String, String)>, Error> {
        let mut c = self.conn().await?;
        let lines: Vec<String> = c.lrange(self.keys().history(id), 0, -1).await?;
        Ok(lines
            .iter()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next().unwrap_or_default().to_string(),
                ))
            })
            .collect())
    }

    /// One page of the jobs `filter` admits, newest first, after the job `cursor` (a
    /// previous page's `next`), from the listing indexes that the scripts keep
    /// (lua/list.lua): O(page) for ended statuses, a bounded walk ([`LIST_BUDGET`] ids) for
    /// the waiting and running ones and for an owner's, which may end a page early with a
    /// `next` to continue from. A job that expired since its index entry was written (until
    /// a tick prunes it) is left out.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed cursor or executor; Redis errors.
    pub async fn list(
        &self,
        filter: &ListFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        if let Some(kind) = &filter.executor {
            validate_executor(kind)?;
        }
        let before: u64 = match cursor {
            None | Some("") => 0,
            Some(c) => c.parse().map_err(|_| bad_cursor(c))?,
        };
        let mut c = self.conn().await?;
        let found = self
            .scripts
            .list(&mut *c, filter, before, limit, LIST_BUDGET)
            .await?;
        let keys: Vec<String> = found
            .ids
            .iter()
            .map(|id| self.keys().job(JobId(*id)))
            .collect();
        let jobs: Vec<Job> = read_jobs(&mut *c, &keys)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(Page {
            jobs,
            next: found.next.map(|n| n.to_string()),
            counts: Status::ALL.into_iter().zip(found.counts).collect(),
            counts_exact: found.exact,
        })
    }

    /// Every executor kind with jobs in the listing indexes (`ix:kinds`), sorted.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn kinds(&self) -> Result<Vec<String>, Error> {
        let mut c = self.conn().await?;
        let mut kinds: Vec<String> = c.smembers(self.keys().index_kinds()).await?;
        kinds.sort();
        Ok(kinds)
    }

    /// Registers action names as run by executor `kind` (HSET actions), so that the wumai
    /// and Jetstream faces can route `{"action": NAME}` to it.
    ///
    /// # Errors
    /// Redis errors; [`Error::Invalid`] for a bad kind.
    pub async fn register_actions(&self, kind: &str, names: &[String]) -> Result<(), Error> {
        validate_executor(kind)?;
        if names.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), kind)).collect();
        let mut c = self.conn().await?;
        let () = c.hset_multiple(self.keys().actions(), &pairs).await?;
        Ok(())
    }

    /// The executor kind registered for an action, if any.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn action_kind(&self, name: &str) -> Result<Option<String>, Error> {
        let mut c = self.conn().await?;
        Ok(c.hget(self.keys().actions(), name).await?)
    }

    /// Stops a job (`lua/stop.lua`): CANCELED at once if waiting, else a stop request.
    ///
    /// # Errors
    /// NotFound, Locked, IllegalTransition (already finished).
    pub async fn stop(&self, id: JobId) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        self.scripts.stop(&mut *c, id).await
    }

    /// Locks a job for `holder` (`lua/lock.lua`).
    ///
    /// # Errors
    /// NotFound, Locked (held by someone, unless `force`).
    pub async fn lock(&self, id: JobId, holder: &str, force: bool) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        self.scripts.lock(&mut *c, id, holder, force).await
    }

    /// Unlocks a job (`lua/unlock.lua`).
    ///
    /// # Errors
    /// NotFound.
    pub async fn unlock(&self, id: JobId) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        self.scripts.unlock(&mut *c, id).await
    }

    /// Re-queues a FAILED, CANCELED or TIMED_OUT job (`lua/retry.lua`).
    ///
    /// # Errors
    /// NotFound, Locked, IllegalTransition.
    pub async fn retry(&self, id: JobId) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        self.scripts.retry(&mut *c, id).await
    }

    /// Claims up to `count` jobs of `executor` for `worker` (`lua/claim.lua`), with the
    /// configured lease.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad executor name; Redis errors.
    pub async fn claim(
        &self,
        executor: &str,
        worker: &str,
        count: usize,
    ) -> Result<Vec<Claimed>, Error> {
        Ok(self.claims(executor, worker, count).await?.jobs)
    }

    /// [`Broker::claim`], also telling when jobs held back by a rate limit may start.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad executor name; Redis errors.
    pub async fn claims(
        &self,
        executor: &str,
        worker: &str,
        count: usize,
    ) -> Result<crate::Claims, Error> {
        validate_executor(executor)?;
        let mut c = self.conn().await?;
        self.scripts
            .claim(&mut *c, executor, worker, count, self.config.lease)
            .await
    }

    /// Blocks on `executor`'s wake marker for up to `wait` on a dedicated connection.
    /// Returns true when woken (work may be queued), false on time-out. Callers then claim;
    /// a missed wake-up costs at most `wait`, never a job.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn wait_for_work(
        &self,
        conn: &mut MultiplexedConnection,
        executor: &str,
        wait: Duration,
    ) -> Result<bool, Error> {
        let woke: Option<(String, String)> = conn
            .blpop(self.keys().wake(executor), wait.as_secs_f64())
            .await?;
        Ok(woke.is_some())
    }

    /// Extends a lease (`lua/heartbeat.lua`); true when a stop was requested.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn heartbeat(&self, id: JobId, token: &str) -> Result<bool, Error> {
        let mut c = self.conn().await?;
        self.scripts
            .heartbeat(&mut *c, id, token, self.config.lease)
            .await
    }

    /// Appends output lines to the job's events (`lua/log.lua`); true when a stop was
    /// requested.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn log(&self, id: JobId, token: &str, lines: &str) -> Result<bool, Error> {
        let mut c = self.conn().await?;
        self.scripts.log(&mut *c, id, token, lines).await
    }

    /// Records progress (`lua/progress.lua`); true when a stop was requested.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn progress(&self, id: JobId, token: &str, progress: &Value) -> Result<bool, Error> {
        let mut c = self.conn().await?;
        self.scripts.progress(&mut *c, id, token, progress).await
    }

    /// Completes an attempt with `result` (`lua/complete.lua`).
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn complete(&self, id: JobId, token: &str, result: &Value) -> Result<(), Error> {
        self.complete_encoded(id, token, &encode(result)?).await
    }

    /// [`Broker::complete`] with the result already MessagePack.
    ///
    /// # Errors
    /// As [`Broker::complete`].
    pub async fn complete_encoded(
        &self,
        id: JobId,
        token: &str,
        result: &[u8],
    ) -> Result<(), Error> {
        let mut c = self.conn().await?;
        self.scripts.complete(&mut *c, id, token, result).await?;
        self.replicated(&mut c).await
    }

    /// Many [`Broker::complete`]s in one pipeline (and one replica wait for all): one
    /// outcome per attempt, in order.
    ///
    /// # Errors
    /// Redis errors, and a missing replica ack, for the whole batch.
    pub async fn complete_many(
        &self,
        done: &[(JobId, &str, &[u8])],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let mut c = self.conn().await?;
        let outcomes = self.scripts.complete_many(&mut *c, done).await?;
        self.replicated(&mut c).await?;
        Ok(outcomes)
    }

    /// Fails an attempt (`lua/fail.lua`); returns the new status.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn fail(
        &self,
        id: JobId,
        token: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        let status = self
            .scripts
            .fail(&mut *c, id, token, error, retryable)
            .await?;
        self.replicated(&mut c).await?;
        Ok(status)
    }

    /// Ends an attempt that overran its timeout (`lua/timeout.lua`); returns the new status.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn timeout(&self, id: JobId, token: &str, error: &str) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        let done = self.scripts.timeout(&mut *c, id, token, error).await?;
        self.replicated(&mut c).await?;
        Ok(done)
    }

    /// Confirms a stop the executor obeyed (`lua/cancel.lua`).
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn cancel(&self, id: JobId, token: &str) -> Result<(), Error> {
        let mut c = self.conn().await?;
        self.scripts.cancel(&mut *c, id, token).await?;
        self.replicated(&mut c).await
    }

    /// Hands a running job back (`lua/release.lua`); returns PENDING or CANCELED.
    ///
    /// # Errors
    /// StaleLease, IllegalTransition, NotFound.
    pub async fn release(&self, id: JobId, token: &str) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        let done = self.scripts.release(&mut *c, id, token).await?;
        self.replicated(&mut c).await?;
        Ok(done)
    }

    /// One maintenance pass: re-queue or fail expired leases (`lua/reap.lua`) and move due
    /// delayed jobs to their queues (`lua/promote.lua`), until none are left. Any number of
    /// processes may run it at once.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn tick(&self) -> Result<(Reaped, u64), Error> {
        let mut c = self.conn().await?;
        let mut total = Reaped::default();
        loop {
            let r = self
                .scripts
                .reap(
                    &mut *c,
                    TICK_BATCH,
                    self.config().max_lost_leases,
                    self.config().presence_ttl,
                )
                .await?;
            total.requeued += r.requeued;
            total.failed += r.failed;
            total.canceled += r.canceled;
            if r.requeued + r.failed + r.canceled < TICK_BATCH as u64 {
                break;
            }
        }
        let mut promoted = 0;
        loop {
            let n = self.scripts.promote(&mut *c, TICK_BATCH).await?;
            promoted += n;
            if n < TICK_BATCH as u64 {
                break;
            }
        }
        Ok((total, promoted))
    }

    /// Takes expired jobs out of the listing indexes (`lua/prune.lua`, the oldest
    /// [`PRUNE_BATCH`] entries of each index); `sluice serve` runs it every 10 s.
    ///
    /// # Returns
    /// How many ids left the indexes.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn prune(&self) -> Result<u64, Error> {
        let mut c = self.conn().await?;
        self.scripts.prune(&mut *c, PRUNE_BATCH).await
    }

    /// The id of the newest event, to follow only what happens from now on ("0-0" when the
    /// stream is empty).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn events_tail(&self) -> Result<String, Error> {
        let mut c = self.conn().await?;
        let last: StreamRangeReply = c.xrevrange_count(self.keys().events(), "+", "-", 1).await?;
        Ok(last
            .ids
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_string(), |e| e.id))
    }

    /// Waits up to `within` for job `id` to end: the job once it is COMPLETED, FAILED,
    /// TIMED_OUT or CANCELED, None when it is still going at the deadline. Wakes on the job's
    /// events (a blocking read on its own connection), never polls faster than once a second.
    ///
    /// # Errors
    /// Redis errors; [`Error::NotFound`] when the job is gone.
    pub async fn wait_end(&self, id: JobId, within: Duration) -> Result<Option<Job>, Error> {
        let deadline = std::time::Instant::now() + within;
        let mut conn = self.blocking_connection().await?;
        let mut after = self.events_tail().await?;
        loop {
            let job = self.get(id).await?;
            if job.status.is_terminal() {
                return Ok(Some(job));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let block = left.min(Duration::from_secs(1));
            after = self
                .events(&mut conn, Some(id), &after, 1000, Some(block))
                .await?
                .1;
        }
    }

    /// Reads up to `count` entries of the event stream after stream id `after` (`"0"` = from
    /// the oldest kept), waiting up to `block` when there are none, and keeps those of `job`
    /// (all when None). Returns them with the id to pass as `after` next time, which moves
    /// on even when every entry read belonged to other jobs.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn events(
        &self,
        conn: &mut MultiplexedConnection,
        job: Option<JobId>,
        after: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<(Vec<Event>, String), Error> {
        let mut opts = StreamReadOptions::default().count(count);
        if let Some(b) = block {
            opts = opts.block(usize::try_from(b.as_millis()).unwrap_or(usize::MAX).max(1));
        }
        let key = self.keys().events();
        let reply: Option<StreamReadReply> = conn.xread_options(&[&key], &[after], &opts).await?;
        let entries: Vec<_> = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        let next = entries
            .last()
            .map_or_else(|| after.to_string(), |e| e.id.clone());
        let want = job.map(|id| id.to_string());
        let events = entries
            .into_iter()
            .map(|e| {
                let mut fields: BTreeMap<String, String> = e
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap_or_default()))
                    .collect();
                fields.insert("at".into(), entry_time(&e.id));
                Event { id: e.id, fields }
            })
            .filter(|e| want.as_deref().is_none_or(|w| e.get("job") == Some(w)))
            .collect();
        Ok((events, next))
    }
}

/// The jobs at `keys`, in order (None where there is none), in one pipeline.
pub(crate) async fn read_jobs<C: redis::aio::ConnectionLike>(
    c: &mut C,
    keys: &[String],
) -> Result<Vec<Option<Job>>, Error> {
    // An empty pipeline is an error to Redis: a batch may match no job at all.
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    for k in keys {
        p.hgetall(k);
    }
    let hashes: Vec<HashMap<String, Vec<u8>>> = p.query_async(c).await?;
    Ok(hashes
        .into_iter()
        .map(|h| Job::from_hash(h).ok().flatten())
        .collect())
}

/// Every key matching `pattern` (a whole SCAN).
pub(crate) async fn scan<C: redis::aio::ConnectionLike + Send + Sync>(
    c: &mut C,
    pattern: String,
) -> Result<Vec<String>, Error> {
    let mut it = c.scan_match::<_, String>(pattern).await?;
    let mut keys = Vec::new();
    while let Some(k) = futures::StreamExt::next(&mut it).await {
        keys.push(k?);
    }
    Ok(keys)
}

/// The error for a cursor that is not a `next` of a previous page.
fn bad_cursor(c: &str) -> Error {
    Error::Invalid(format!(
        "cursor must be a `next` from a previous page, got {c:?}"
    ))
}

/// The time of a stream entry, from its id `<unix ms>-<seq>`, as RFC 3339.
fn entry_time(id: &str) -> String {
    let ms = id
        .split('-')
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(0);
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
