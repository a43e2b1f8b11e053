//! The executor runtime: one loop that does everything but the work itself.
//!
//! 1. Claim up to `pick_size` jobs of its kind (`lua/claim.lua`), never more than free slots
//!    of `exec_size`; when none are ready, block on the kind's wake marker (BLPOP) instead of
//!    polling, so a new job starts within a few milliseconds.
//! 2. Run each job in its own task through [`Executor::run`], with a [`JobContext`] that
//!    reports progress (`lua/progress.lua`) and carries a stop token.
//! 3. Say the process is alive and beat every job's lease every `heartbeat`, in one call
//!    for all its jobs (`lua/presence.lua`, four times per presence ttl at least); a beat
//!    that reports a stop request cancels the job's stop token; one that finds the lease
//!    lost (stale token, job moved on) cancels it too and writes nothing more for that
//!    attempt.
//! 4. End the attempt with exactly one script: `complete` (batched with other jobs'
//!    completions, `crate::closer`), `fail` (retried with backoff
//!    while attempts are left, unless the error is fatal), `timeout` (the job's timeout ran
//!    out; the work was stopped), `cancel` (stop obeyed) or `release` (shutdown). A write
//!    that fails because Redis is away is retried until it lands or the lease is lost.
//! 5. Shutdown: when `shutdown` turns true, stop claiming; running jobs get `grace` to
//!    finish; the rest are stopped and handed back to the head of their queue without
//!    counting the attempt. If the process dies instead, the leases expire and another
//!    executor takes the jobs (`lua/reap.lua`).
//! 6. Meanwhile re-queue expired leases and promote due scheduled jobs once a second
//!    (`Broker::tick`), so jobs move on even with no API server running.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::presence::Presence;
use broker::{Broker, Claimed, Error, JobId};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::child::Jail;
use crate::closer::Closer;
use crate::history::{now_us, History};

/// What went wrong in a job; decides retry or not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a crashed program, a flaky network).
    #[error("{0}")]
    Retry(String),
    /// Another attempt would fail the same way (bad input): fail for good.
    #[error("{0}")]
    Fatal(String),
    /// The work overran a limit of its own (e.g. an action's timeout).
    #[error("{0}")]
    TimedOut(String),
    /// The work stopped because its stop token was cancelled.
    #[error("stopped")]
    Stopped,
}

/// A claimed job as an executor sees it.
#[derive(Debug, Clone)]
pub struct JobInput {
    /// The job id.
    pub id: JobId,
    /// This attempt's number (1 for the first run).
    pub attempt: u32,
    /// The job's parameters.
    pub params: Value,
}

/// What a running job may use: progress reports and its stop token.
#[derive(Debug, Clone)]
pub struct JobContext {
    broker: Broker,
    id: JobId,
    token: String,
    cause: Arc<watch::Sender<Option<Cause>>>,
    log: Log,
    jail: Arc<Jail>,
    /// Cancelled when the job must stop (stop request, timeout, shutdown, lease lost).
    pub stop: CancellationToken,
}

impl JobContext {
    /// Records progress (any JSON, or a kind's typed record such as
    /// [`broker::solver::Progress`]); a stop request seen here cancels [`JobContext::stop`].
    /// Failures are logged, never fatal to the job.
    pub async fn progress(&self, progress: &impl serde::Serialize) {
        let progress = &serde_json::to_value(progress).unwrap_or(Value::Null);
        let r = self
            .log
            .call("progress", self.id, &self.token, || {
                self.broker.progress(self.id, &self.token, progress)
            })
            .await;
        match r {
            Ok(true) => stop_for(&self.cause, Cause::StopRequested, &self.stop),
            Ok(false) => {}
            Err(e) => tracing::warn!(job = %self.id, error = %e, "progress not recorded"),
        }
    }

    /// Appends output lines to the job's events (`lua/log.lua`); a stop request seen here
    /// cancels [`JobContext::stop`]. Failures are logged, never fatal to the job.
    pub async fn log(&self, lines: &str) {
        let r = self
            .log
            .call("log", self.id, &self.token, || {
                self.broker.log(self.id, &self.token, lines)
            })
            .await;
        match r {
            Ok(true) => stop_for(&self.cause, Cause::StopRequested, &self.stop),
            Ok(false) => {}
            Err(e) => tracing::warn!(job = %self.id, error = %e, "log lines not recorded"),
        }
    }

    /// The broker, to read the job's record (e.g. its cluster).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// How this job's programs are started ([`crate::child`]).
    pub fn jail(&self) -> &Jail {
        &self.jail
    }
}

/// A boxed job future.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;

/// An executor kind: runs one job. It must return soon after `ctx.stop` is cancelled
/// (with [`JobError::Stopped`] or whatever it has).
pub trait Executor: Send + Sync + 'static {
    /// Runs one job to its end.
    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture;

    /// The JSON Schema of this kind's `params`, which [`crate::serve`] publishes when the
    /// process starts so the API refuses bad params at submit (`broker::schemas`); None:
    /// unchecked.
    fn params_schema(&self) -> Option<Value> {
        None
    }
}

/// How one executor process runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The executor kind (its queue is `queue:<kind>`).
    pub kind: String,
    /// This process' name, recorded as `worker` on the jobs it runs.
    pub worker: String,
    /// Jobs claimed per round (wumai: 10).
    pub pick_size: usize,
    /// Jobs run at once (wumai: 10).
    pub exec_size: usize,
    /// Time between heartbeats; also how fast a stop request is noticed.
    pub heartbeat: Duration,
    /// How long running jobs may go on after shutdown begins before they are handed back.
    pub grace: Duration,
    /// Where to log every call made for a job (see [`crate::history`]); None: no log.
    pub history: Option<History>,
    /// How job programs are started: cleared environment, sandbox ([`crate::child`]).
    pub jail: Arc<Jail>,
}

impl Options {
    /// Options from the broker config for `kind`, with a fresh worker name.
    pub fn new(config: &broker::Config, kind: &str) -> Self {
        Options {
            kind: kind.to_string(),
            worker: format!(
                "{kind}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            ),
            pick_size: config.pick_size,
            exec_size: config.exec_size.unwrap_or(10),
            // Often enough to notice a stop within half a second, and at least 3 per lease.
            heartbeat: (config.lease / 3).min(Duration::from_millis(500)),
            grace: Duration::from_secs(10),
            history: None,
            // With `sandbox = required` and no sandbox here, `ProcessArgs::load` refuses to
            // start; a caller that builds options itself gets a jail that starts nothing.
            jail: Arc::new(Jail::new(config).unwrap_or_else(|_| Jail::refusing())),
        }
    }
}

/// How an attempt ended, before it is written.
enum Outcome {
    Done(Result<Value, JobError>),
    TimedOut(Duration),
    Released,
}

/// Records `why` and cancels `stop`, so the attempt ends as that cause says (CANCELED for a
/// stop request), whichever of the heartbeat, a progress report or a log write saw it
/// first. A lost lease overrides a stop request: the attempt can write nothing any more.
fn stop_for(cause: &watch::Sender<Option<Cause>>, why: Cause, stop: &CancellationToken) {
    cause.send_if_modified(|c| {
        if c.is_none() || why == Cause::LeaseLost {
            *c = Some(why);
            true
        } else {
            false
        }
    });
    stop.cancel();
}

/// Why the stop token of a job was cancelled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cause {
    StopRequested,
    LeaseLost,
}

/// One attempt's view of the operation log: who and which attempt, to tag each call.
#[derive(Debug, Clone)]
struct Log {
    history: Option<History>,
    worker: Arc<str>,
    attempt: u32,
}

impl Log {
    /// Makes one call for job `id` and logs it (with `token` and its outcome) when a history
    /// is kept.
    async fn call<T, F, Fut>(&self, op: &str, id: JobId, token: &str, call: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let t0 = now_us();
        let r = call().await;
        if let Some(h) = &self.history {
            h.record(t0, &self.worker, op, id, self.attempt, token, &r);
        }
        r
    }
}

/// Longest block on the wake marker before claiming again (a missed wake-up costs this).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Runs the executor until `shutdown` turns true, then drains (see the module doc).
///
/// # Errors
/// Only when the executor kind name is invalid; Redis outages are waited out.
pub async fn run(
    broker: Broker,
    executor: Arc<dyn Executor>,
    opts: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    broker::keys::validate_executor(&opts.kind)?;
    let slots = Arc::new(Semaphore::new(opts.exec_size.max(1)));
    let release = CancellationToken::new();
    let mut running = JoinSet::new();
    let ticker = tokio::spawn(tick_forever(broker.clone()));
    let beats = Beats::default();
    let presence = tokio::spawn(present_forever(
        broker.clone(),
        opts.clone(),
        slots.clone(),
        beats.clone(),
    ));
    let (closer, closing) = Closer::start(broker.clone());
    let mut blocking = None;
    tracing::info!(kind = %opts.kind, worker = %opts.worker, exec_size = opts.exec_size, pick_size = opts.pick_size, "executor started");

    while !*shutdown.borrow() {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = running.join_next() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let t0 = now_us();
        let (claimed, throttled_for) = match broker
            .claims(&opts.kind, &opts.worker, free.min(opts.pick_size.max(1)))
            .await
        {
            Ok(broker::Claims {
                jobs: c,
                throttled_for,
            }) => {
                if let Some(h) = &opts.history {
                    for j in &c {
                        h.record(
                            t0,
                            &opts.worker,
                            "claim",
                            j.id,
                            j.attempt,
                            &j.token,
                            &Ok(()),
                        );
                    }
                }
                (c, throttled_for)
            }
            Err(e) => {
                tracing::warn!(error = %e, "claim failed; retrying in 1s");
                tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = shutdown.changed() => {} }
                continue;
            }
        };
        if claimed.is_empty() {
            if blocking.is_none() {
                blocking = broker
                    .blocking_connection()
                    .await
                    .map_err(|e| tracing::warn!(error = %e, "no blocking connection"))
                    .ok();
            }
            let Some(conn) = blocking.as_mut() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            tokio::select! {
                // Jobs held back by a rate limit wake no one: claim again when one may start.
                woke = broker.wait_for_work(conn, &opts.kind, throttled_for.map_or(IDLE_WAIT, |t| t.min(IDLE_WAIT))) => {
                    if woke.is_err() { blocking = None; }
                }
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (b, ex, opts, release, beats, closer) = (
                broker.clone(),
                executor.clone(),
                opts.clone(),
                release.clone(),
                beats.clone(),
                closer.clone(),
            );
            running.spawn(async move {
                run_one(b, ex, &opts, job, release, beats, closer).await;
                drop(permit);
            });
        }
    }

    tracing::info!(running = running.len(), grace = ?opts.grace, "shutting down: no more claims; waiting for running jobs");
    let deadline = Instant::now() + opts.grace;
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline.into(), running.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                tracing::info!(
                    left = running.len(),
                    "grace period over: handing running jobs back"
                );
                release.cancel();
                while running.join_next().await.is_some() {}
            }
        }
    }
    drop(closer);
    let _ = closing.await; // every batch written
    ticker.abort();
    presence.abort();
    let goodbye = Presence {
        worker: &opts.worker,
        kind: &opts.kind,
        slots: opts.exec_size,
        running: 0,
        ttl: broker.config().presence_ttl,
        leaving: true,
        jobs: &[],
    };
    if let Err(e) = broker.presence(&goodbye).await {
        tracing::warn!(error = %e, "could not say goodbye; reapers will notice");
    }
    tracing::info!("executor stopped");
    Ok(())
}

/// How often reapers run and presence is refreshed: four times per presence ttl, so a
/// vanished executor's jobs run again within about 1.25 ttl.
fn beat(b: &Broker) -> Duration {
    (b.config().presence_ttl / 4).max(Duration::from_millis(25))
}

/// What the presence beat needs of one running attempt: its token, and how to stop it.
struct Beat {
    token: String,
    stop: CancellationToken,
    cause: Arc<watch::Sender<Option<Cause>>>,
    log: Log,
}

/// The attempts this process runs, by job: the presence beat extends their leases.
type Beats = Arc<std::sync::Mutex<std::collections::HashMap<JobId, Beat>>>;

/// Says this process is alive, four times per presence ttl, and, every `heartbeat`, beats
/// the leases of all its jobs in the same call; cancels a job's `stop` on a stop request or
/// a lost lease.
async fn present_forever(b: Broker, opts: Options, slots: Arc<Semaphore>, beats: Beats) {
    let tick = beat(&b).min(opts.heartbeat);
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_jobs = Instant::now();
    loop {
        every.tick().await;
        let due = last_jobs.elapsed() + tick / 2 >= opts.heartbeat;
        let jobs: Vec<(JobId, String)> = if due {
            last_jobs = Instant::now();
            let beats = beats.lock().unwrap_or_else(|e| e.into_inner());
            beats.iter().map(|(id, b)| (*id, b.token.clone())).collect()
        } else {
            Vec::new()
        };
        let pairs: Vec<(JobId, &str)> = jobs.iter().map(|(id, t)| (*id, t.as_str())).collect();
        let p = Presence {
            worker: &opts.worker,
            kind: &opts.kind,
            slots: opts.exec_size.max(1),
            running: opts.exec_size.max(1) - slots.available_permits(),
            ttl: b.config().presence_ttl,
            leaving: false,
            jobs: &pairs,
        };
        let t0 = now_us();
        let answers = match b.presence(&p).await {
            Ok(a) => a,
            // Redis away or full: no lease is lost (only Redis can say so); keep working
            // and try again at the next beat.
            Err(e) => {
                tracing::warn!(error = %e, jobs = pairs.len(), "presence and heartbeats failed; retrying");
                continue;
            }
        };
        let mut beats = beats.lock().unwrap_or_else(|e| e.into_inner());
        for ((id, token), answer) in pairs.iter().zip(answers) {
            let Some(beat) = beats.get(id).filter(|b| b.token == *token) else {
                continue; // the attempt ended meanwhile
            };
            if let Some(h) = &beat.log.history {
                h.record(
                    t0,
                    &beat.log.worker,
                    "heartbeat",
                    *id,
                    beat.log.attempt,
                    token,
                    &answer,
                );
            }
            match answer {
                Ok(false) => {}
                // Keep beating the lease while the work winds down.
                Ok(true) => stop_for(&beat.cause, Cause::StopRequested, &beat.stop),
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "lease lost; stopping the work");
                    stop_for(&beat.cause, Cause::LeaseLost, &beat.stop);
                    beats.remove(id);
                }
            }
        }
    }
}

async fn tick_forever(b: Broker) {
    let mut every = tokio::time::interval(beat(&b));
    loop {
        every.tick().await;
        if let Err(e) = b.tick().await {
            tracing::debug!(error = %e, "tick failed");
        }
    }
}

/// Runs one claimed job to its single closing write.
async fn run_one(
    b: Broker,
    ex: Arc<dyn Executor>,
    opts: &Options,
    job: Claimed,
    release: CancellationToken,
    beats: Beats,
    closer: Closer,
) {
    let id = job.id;
    let log = Log {
        history: opts.history.clone(),
        worker: opts.worker.as_str().into(),
        attempt: job.attempt,
    };
    let params = match broker::job::decode(&job.params) {
        Ok(v) => v,
        Err(e) => {
            finish(
                &b,
                &closer,
                &log,
                id,
                &job.token,
                Outcome::Done(Err(JobError::Fatal(format!("params: {e}")))),
            )
            .await;
            return;
        }
    };
    let stop = CancellationToken::new();
    let (cause_tx, cause_rx) = watch::channel(None::<Cause>);
    let cause_tx = Arc::new(cause_tx);
    let ctx = JobContext {
        broker: b.clone(),
        id,
        token: job.token.clone(),
        cause: cause_tx.clone(),
        log: log.clone(),
        jail: opts.jail.clone(),
        stop: stop.clone(),
    };
    beats.lock().unwrap_or_else(|e| e.into_inner()).insert(
        id,
        Beat {
            token: job.token.clone(),
            stop: stop.clone(),
            cause: cause_tx.clone(),
            log: log.clone(),
        },
    );
    tracing::info!(job = %id, attempt = job.attempt, "started");

    let staged = job.inputs.then(|| (b.clone(), stop.clone()));
    let work = async move {
        // Inputs are stored first; a stop (or timeout) interrupts a slow download too.
        if let Some((b, stop)) = staged {
            tokio::select! {
                r = crate::staging::stage(&b, id) => { r?; }
                _ = stop.cancelled() => return Err(JobError::Stopped),
            }
        }
        ex.run(
            JobInput {
                id,
                attempt: job.attempt,
                params,
            },
            ctx,
        )
        .await
    };
    tokio::pin!(work);
    let limit = (!job.timeout.is_zero()).then_some(job.timeout);
    let outcome = tokio::select! {
        r = &mut work => Outcome::Done(r),
        _ = sleep_or_forever(limit) => {
            stop.cancel();
            let _ = work.await;
            Outcome::TimedOut(job.timeout)
        }
        _ = release.cancelled() => {
            stop.cancel();
            let _ = work.await;
            Outcome::Released
        }
    };
    beats.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    let cause = *cause_rx.borrow();
    match (cause, outcome) {
        (Some(Cause::LeaseLost), _) => {
            tracing::warn!(job = %id, "lease lost; this attempt writes nothing")
        }
        (Some(Cause::StopRequested), Outcome::Done(Err(_)))
        | (Some(Cause::StopRequested), Outcome::TimedOut(_)) => {
            write_until_landed(id, || {
                log.call("cancel", id, &job.token, || b.cancel(id, &job.token))
            })
            .await;
            tracing::info!(job = %id, "canceled on request");
        }
        (_, outcome) => finish(&b, &closer, &log, id, &job.token, outcome).await,
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => futures::future::pending().await,
    }
}

/// Writes the attempt's end with exactly one script (a completion in the closer's next
/// batch).
async fn finish(b: &Broker, closer: &Closer, log: &Log, id: JobId, token: &str, outcome: Outcome) {
    match outcome {
        Outcome::Done(Ok(result)) => {
            write_until_landed(id, || {
                log.call("complete", id, token, || {
                    closer.complete(id, token, &result)
                })
            })
            .await;
            tracing::info!(job = %id, "completed");
        }
        Outcome::Done(Err(JobError::TimedOut(msg))) => {
            let s = write_until_landed(id, || {
                log.call("timeout", id, token, || b.timeout(id, token, &msg))
            })
            .await;
            tracing::info!(job = %id, status = ?s, error = %msg, "timed out");
        }
        Outcome::TimedOut(limit) => {
            let msg = format!("timed out after {}", humantime::format_duration(limit));
            let s = write_until_landed(id, || {
                log.call("timeout", id, token, || b.timeout(id, token, &msg))
            })
            .await;
            tracing::info!(job = %id, status = ?s, "timed out");
        }
        Outcome::Done(Err(e)) => {
            let retryable = matches!(e, JobError::Retry(_) | JobError::Stopped);
            let msg = e.to_string();
            let s = write_until_landed(id, || {
                log.call("fail", id, token, || b.fail(id, token, &msg, retryable))
            })
            .await;
            tracing::info!(job = %id, status = ?s, error = %e, "failed");
        }
        Outcome::Released => {
            let s = write_until_landed(id, || {
                log.call("release", id, token, || b.release(id, token))
            })
            .await;
            tracing::info!(job = %id, status = ?s, "handed back");
        }
    }
}

/// Retries a closing write while Redis is away; gives up (and logs) on any other refusal,
/// such as a stale lease: then another attempt owns the job and this one must not write.
async fn write_until_landed<T, F, Fut>(id: JobId, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(v) => return Some(v),
            Err(e) if e.is_transient() => {
                tracing::warn!(job = %id, error = %e, "result not written yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "result refused");
                return None;
            }
        }
    }
}
