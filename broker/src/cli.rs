//! The bodies of the `sluice` subcommands that talk to the broker. `bin/sluice.rs` parses
//! the command line and calls one function here; each prints its answer on stdout and
//! returns an error for `main` to print as one line.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::apikeys;
use crate::client::{Broker, ListFilter};
use crate::error::Error;
use crate::job::{JobId, NewJob, Status};

/// How often `submit --wait` and `events --follow` look again while nothing happens.
const FOLLOW_BLOCK: Duration = Duration::from_secs(1);

fn out(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Parses a JSON argument, naming it in the error.
///
/// # Errors
/// [`Error::Invalid`] when `text` is not JSON.
pub fn json_arg(name: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::Invalid(format!("{name} is not JSON: {e}")))
}

/// `sluice submit`: prints the id; with `wait`, follows the job to its end and prints it.
/// With `files`, the job is held until each file is stored as its artifact (named by the
/// file's name), then made ready ([`crate::uploads`]).
///
/// # Errors
/// Broker errors; a file that cannot be read; with `wait`, a job that ends other than
/// COMPLETED.
pub async fn submit(
    b: &Broker,
    job: &NewJob,
    files: &[std::path::PathBuf],
    wait: bool,
) -> Result<(), Error> {
    let (id, status) = if files.is_empty() {
        let made = b.submit_once(job).await?;
        if !made.created {
            eprintln!("job {} was made before (same key)", made.id);
        }
        (made.id, made.status.ok_or(Error::NotFound(made.id))?)
    } else {
        submit_with_files(b, job, files).await?
    };
    if !wait {
        out(format!("{id} {status}"));
        return Ok(());
    }
    eprintln!("job {id} {status}; waiting for it to finish");
    let mut conn = b.blocking_connection().await?;
    let mut after = "0".to_string();
    loop {
        let (events, next) = b
            .events(&mut conn, Some(id), &after, 1000, Some(FOLLOW_BLOCK))
            .await?;
        after = next;
        for e in events {
            eprintln!(
                "  {} {}",
                e.get("event").unwrap_or(""),
                e.get("status").unwrap_or("")
            );
        }
        let job = b.get(id).await?;
        if job.status.is_terminal() {
            out(pretty(&job));
            return match job.status {
                Status::Completed => Ok(()),
                s => Err(Error::Ended(format!(
                    "job {id} ended {s}: {}",
                    job.error.unwrap_or_default()
                ))),
            };
        }
    }
}

/// `sluice submit-bulk`: the jobs of `input`'s JSON lines, made in batches of 1000.
///
/// # Errors
/// Broker errors; [`Error::Invalid`] when any line was refused (each is reported).
pub async fn submit_bulk(b: &Broker, input: impl std::io::BufRead) -> Result<(), Error> {
    let admin = crate::apikeys::Account::local();
    let mut refused = 0usize;
    let mut batch: Vec<(usize, NewJob)> = Vec::new();
    let mut lines = input.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let line = line.map_err(|e| Error::Invalid(format!("stdin: {e}")))?;
        if !line.trim().is_empty() {
            let job = serde_json::from_str::<crate::http::jobs::SubmitBody>(&line)
                .map_err(|e| Error::Invalid(e.to_string()))
                .and_then(|mut body| body.to_job(b, &admin));
            match job {
                Ok(job) => batch.push((n + 1, job)),
                Err(e) => {
                    refused += 1;
                    out(format!("line {}: {e}", n + 1));
                }
            }
        }
        if batch.len() == crate::http::jobs::MAX_BULK
            || (lines.peek().is_none() && !batch.is_empty())
        {
            let (numbers, jobs): (Vec<usize>, Vec<Result<NewJob, Error>>) =
                std::mem::take(&mut batch)
                    .into_iter()
                    .map(|(n, job)| (n, Ok(job)))
                    .unzip();
            for (n, made) in numbers.into_iter().zip(b.submit_bulk(jobs).await?) {
                match made {
                    Ok(s) => out(format!(
                        "{} {}",
                        s.id,
                        s.status
                            .map_or_else(|| "EXPIRED".to_string(), |st| st.to_string())
                    )),
                    Err(e) => {
                        refused += 1;
                        out(format!("line {n}: {e}"));
                    }
                }
            }
        }
    }
    if refused > 0 {
        return Err(Error::Invalid(format!("{refused} line(s) refused")));
    }
    Ok(())
}

async fn submit_with_files(
    b: &Broker,
    job: &NewJob,
    files: &[std::path::PathBuf],
) -> Result<(JobId, Status), Error> {
    let id = b.submit_held(job).await?;
    use futures_util::StreamExt;
    let opened = futures_util::stream::iter(files).then(|path| async move {
        let bad = |why: String| Error::Invalid(format!("--file {}: {why}", path.display()));
        let name = path.file_name().and_then(|n| n.to_str());
        let name = name.ok_or_else(|| bad("no file name".into()))?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| bad(e.to_string()))?;
        Ok((name.to_string(), tokio_util::io::ReaderStream::new(file)))
    });
    let (status, _) = b.fill_held(id, job.run_at, Box::pin(opened)).await?;
    Ok((id, status))
}

/// `sluice status ID`: the job as JSON.
///
/// # Errors
/// NotFound.
pub async fn status(b: &Broker, id: JobId) -> Result<(), Error> {
    out(pretty(&b.get(id).await?));
    Ok(())
}

/// `sluice stop|lock|unlock|retry|complete|fail ID`: prints `job N: STATUS` on success.
///
/// # Errors
/// The move's own error, unchanged.
pub fn moved(id: JobId, status: Result<Status, Error>) -> Result<(), Error> {
    out(format!("job {id}: {}", status?));
    Ok(())
}

/// `sluice list`: one line per job, newest first (with `finished`, only jobs that ended for
/// good, with their finish time), then the cursor for the next page if any.
///
/// # Errors
/// Broker errors.
pub async fn list(
    b: &Broker,
    filter: &ListFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(), Error> {
    let page = b.list(filter, cursor, limit).await?;
    for j in &page.jobs {
        let waiting = match j.field("waiting") {
            Some(w) if j.status == Status::Pending => format!("  waiting on its {w} limit"),
            _ => String::new(),
        };
        out(format!(
            "{:>8}  {:<9}  {:<12}  attempt {}/{}  {}{waiting}",
            j.id,
            j.status,
            j.executor,
            j.attempt,
            j.max_attempts,
            j.field(if filter.finished {
                "finished"
            } else {
                "created"
            })
            .unwrap_or(""),
        ));
    }
    if let Some(next) = page.next {
        out(format!("(more: --cursor {next})"));
    }
    Ok(())
}

/// `sluice events [ID] [--follow]`: one line per event; following one job ends with it.
///
/// # Errors
/// Broker errors.
pub async fn events(b: &Broker, job: Option<JobId>, follow: bool) -> Result<(), Error> {
    let mut conn = b.blocking_connection().await?;
    let mut after = "0".to_string();
    loop {
        let block = follow.then_some(FOLLOW_BLOCK);
        let (batch, next) = b.events(&mut conn, job, &after, 1000, block).await?;
        let caught_up = next == after;
        after = next;
        for e in &batch {
            let rest: Vec<String> = e
                .fields
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "job" | "event" | "status" | "at"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out(format!(
                "{} job {} {} {} {}",
                e.get("at").unwrap_or(""),
                e.get("job").unwrap_or(""),
                e.get("event").unwrap_or(""),
                e.get("status").unwrap_or(""),
                rest.join(" ")
            ));
        }
        let ended = job.is_some() && batch.last().is_some_and(crate::Event::ends_job);
        if ended || (!follow && caught_up) {
            return Ok(());
        }
    }
}

/// `sluice claim EXECUTOR`: claims jobs and prints one JSON line each (with its token).
///
/// # Errors
/// Broker errors.
pub async fn claim(b: &Broker, executor: &str, worker: &str, count: usize) -> Result<(), Error> {
    for c in b.claim(executor, worker, count).await? {
        let params = crate::job::decode(&c.params).unwrap_or(Value::Null);
        out(serde_json::json!({
            "id": c.id, "attempt": c.attempt, "token": c.token, "params": params,
            "timeout": humantime::format_duration(c.timeout).to_string(),
        }));
    }
    Ok(())
}

/// `sluice scripts`: loads every transition script and prints `name sha1`, for
/// `redis-cli EVALSHA` by hand and for redis-benchmark.
///
/// # Errors
/// Redis errors.
pub async fn scripts(b: &Broker) -> Result<(), Error> {
    let mut c = b.conn().await?;
    b.scripts().load_all(&mut *c).await?;
    for (name, sha) in b.scripts().hashes() {
        out(format!("{name} {sha}"));
    }
    Ok(())
}

/// `sluice tick [--every D]`: reaps expired leases and promotes due jobs, once or forever.
///
/// # Errors
/// Broker errors.
pub async fn tick(b: &Broker, every: Option<Duration>) -> Result<(), Error> {
    loop {
        let (r, promoted) = b.tick().await?;
        if every.is_none() || r.requeued + r.failed + r.canceled + promoted > 0 {
            out(format!(
                "reaped: {} requeued, {} failed, {} canceled; promoted {promoted}",
                r.requeued, r.failed, r.canceled
            ));
        }
        match every {
            Some(d) => tokio::time::sleep(d).await,
            None => return Ok(()),
        }
    }
}

/// Arguments of `sluice submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Executor kind that runs the job (e.g. solver, spark, command).
    pub executor: String,
    /// Parameters as JSON.
    #[arg(default_value = "{}")]
    pub params: String,
    /// Run no earlier than this long from now (e.g. 30s, 5m).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "run_at")]
    pub delay: Option<Duration>,
    /// Run no earlier than this RFC 3339 time (e.g. 2026-11-23T18:00:00Z).
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    pub run_at: Option<std::time::SystemTime>,
    /// Per-attempt time limit (default from config: 600s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Attempts before the job fails for good (default from config: 3).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Base of the exponential retry delay (default from config: 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub backoff: Option<Duration>,
    /// How long the finished job is kept (default from config: 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub result_ttl: Option<Duration>,
    /// Follow the job until it ends and print it; exit non-zero unless it COMPLETED.
    #[arg(long)]
    pub wait: bool,
    /// Run on this cluster (see `sluice clusters`); refused if missing or disabled.
    #[arg(long)]
    pub cluster: Option<u64>,
    /// A file the job starts with, stored as its artifact under the file's name before the
    /// job can run (repeatable: `--file feeder.glm --file weather.csv`).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<std::path::PathBuf>,
    /// Retrying with the same key and the same job answers the job made the first time
    /// (within 24 h); the same key with another job is refused.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Unique while active: while a job of this kind with this key waits or runs, answer it
    /// instead of making another.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// 0 (the default) to 9: claims take the highest priority first.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Run at most --concurrency-limit jobs of this kind with this key at once.
    #[arg(long, requires = "concurrency_limit")]
    pub concurrency_key: Option<String>,
    /// How many jobs of --concurrency-key may run at once.
    #[arg(long, requires = "concurrency_key")]
    pub concurrency_limit: Option<u32>,
    /// Start at most --rate-limit jobs of this kind with this key per window.
    #[arg(long, requires = "rate_limit")]
    pub rate_key: Option<String>,
    /// N/period: at most N starts of --rate-key in any window ("10/1s", "100/1m").
    #[arg(long, requires = "rate_key")]
    pub rate_limit: Option<crate::job::Rate>,
}

impl SubmitArgs {
    /// The submit request these arguments describe, with config defaults filled in.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the params are not JSON.
    pub fn to_job(&self, b: &Broker) -> Result<NewJob, Error> {
        let mut job = b.new_job(&self.executor, json_arg("params", &self.params)?);
        if let Some(d) = self.delay {
            crate::job::check_duration("delay", d)?;
        }
        job.run_at = self
            .run_at
            .or_else(|| self.delay.map(|d| std::time::SystemTime::now() + d));
        job.timeout = self.timeout.unwrap_or(job.timeout);
        job.max_attempts = self.max_attempts.unwrap_or(job.max_attempts);
        job.backoff = self.backoff.unwrap_or(job.backoff);
        job.result_ttl = self.result_ttl.unwrap_or(job.result_ttl);
        if let Some(c) = self.cluster {
            job.extra.push(("cluster".into(), c.to_string()));
        }
        job.options(crate::job::SubmitOptions {
            priority: self.priority,
            unique_key: self.unique_key.clone(),
            concurrency_key: self.concurrency_key.clone(),
            concurrency_limit: self.concurrency_limit,
            rate_key: self.rate_key.clone(),
            rate_limit: self.rate_limit,
        });
        if let Some(k) = &self.idempotency_key {
            let request = format!("{}\n{}", self.executor, job.params);
            job.idempotent(k, request.as_bytes());
        }
        Ok(job)
    }
}

/// The subcommands of `sluice` that work on the broker.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the HTTP API (SLUICE_PORT, default 3323; SLUICE_BIND, default 127.0.0.1) until
    /// SIGTERM or SIGINT, then finish in-flight requests and exit 0.
    Serve,
    /// Manage API keys (stored hashed in Redis).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Redis ACL users for each process class (executors, API, admin CLI).
    #[command(subcommand)]
    Acl(AclCommand),
    /// Manage periodic jobs (cron or interval).
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Manage Stand cluster records (where spark jobs run).
    #[command(subcommand)]
    Clusters(ClustersCommand),
    /// The executor processes alive now: name, kind, jobs running of slots, last seen.
    Executors,
    /// Show every kind's rate limit; with KIND and LIMIT ("100/1s", or "off"), set or lift
    /// one: at most N job starts of the kind in any window of the period.
    RateLimit {
        /// Executor kind.
        executor: Option<String>,
        /// N/period ("100/1s", "5/1m"), or "off".
        #[arg(requires = "executor")]
        limit: Option<String>,
    },
    /// Fire due periodic jobs until SIGTERM (sluice serve does this too; any number may run).
    Beat {
        /// How often to look for due schedules.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        every: Duration,
    },
    /// Submit a job; prints "ID STATUS" (or, with --wait, the finished job).
    Submit(Box<SubmitArgs>),
    /// Submit the jobs read from stdin, one JSON object per line in the body of `POST /jobs`
    /// (`{"executor": "command", "params": {...}, ...}`), in batches of 1000; prints "ID
    /// STATUS" or "line N: error" per line, and fails if any line was refused.
    SubmitBulk,
    /// Show one job as JSON.
    Status {
        /// Job id.
        id: JobId,
    },
    /// Stop a job: a waiting one is CANCELED at once, a running one is asked to stop.
    Stop {
        /// Job id.
        id: JobId,
    },
    /// Lock a job: stop and retry are refused until unlock.
    Lock {
        /// Job id.
        id: JobId,
        /// Who holds the lock (shown to others).
        #[arg(long, default_value = "cli")]
        holder: String,
        /// Take the lock even if someone holds it.
        #[arg(long)]
        force: bool,
    },
    /// Unlock a job.
    Unlock {
        /// Job id.
        id: JobId,
    },
    /// Queue a FAILED, CANCELED or TIMED_OUT job again with fresh attempts.
    Retry {
        /// Job id.
        id: JobId,
    },
    /// List jobs, optionally filtered.
    List {
        /// Only jobs in this status.
        #[arg(long)]
        status: Option<Status>,
        /// Only jobs of this executor kind.
        #[arg(long)]
        executor: Option<String>,
        /// Most jobs to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue a listing from the cursor it printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Only jobs that ended for good (COMPLETED, FAILED, TIMED_OUT, CANCELED).
        #[arg(long)]
        finished: bool,
    },
    /// Print the event stream of one job, or of all jobs.
    Events {
        /// Only this job's events.
        id: Option<JobId>,
        /// Keep following new events (a job's stream ends when the job ends).
        #[arg(long, short)]
        follow: bool,
    },
    /// Claim jobs as an executor would; prints one JSON line per job with its lease token.
    Claim {
        /// Executor kind to claim for.
        executor: String,
        /// Most jobs to claim.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Worker name recorded on the job.
        #[arg(long, default_value = "cli")]
        worker: String,
    },
    /// Complete a claimed job with a JSON result.
    Complete {
        /// Job id.
        id: JobId,
        /// Lease token printed by claim.
        token: String,
        /// Result as JSON.
        #[arg(default_value = "null")]
        result: String,
    },
    /// Fail a claimed job (retried while attempts are left, unless --no-retry).
    Fail {
        /// Job id.
        id: JobId,
        /// Lease token printed by claim.
        token: String,
        /// Error text.
        error: String,
        /// Fail for good even if attempts are left.
        #[arg(long)]
        no_retry: bool,
    },
    /// Re-queue jobs whose lease expired and promote due scheduled jobs.
    Tick {
        /// Keep doing it at this interval (e.g. 1s).
        #[arg(long, value_parser = humantime::parse_duration)]
        every: Option<Duration>,
    },
    /// Load the Lua scripts into Redis and print each one's SHA1 (for EVALSHA by hand).
    Scripts,
}

/// `sluice schedules ...`
#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// Add or replace a schedule; give --cron or --every.
    Add {
        /// Schedule name.
        name: String,
        /// Executor kind of the jobs.
        #[arg(long)]
        executor: String,
        /// Params of the jobs (JSON).
        #[arg(long, default_value = "{}")]
        params: String,
        /// Cron expression, UTC (5 fields, or 6 with seconds first), e.g. "*/5 * * * *".
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// Interval, e.g. 30s or 1h.
        #[arg(long, value_parser = humantime::parse_duration)]
        every: Option<Duration>,
    },
    /// List schedules with their next and last ticks.
    List,
    /// Remove a schedule.
    Rm {
        /// Schedule name.
        name: String,
    },
}

/// `sluice clusters ...`
#[derive(Debug, clap::Subcommand)]
pub enum ClustersCommand {
    /// Add or replace cluster N.
    Add {
        /// Cluster id N (the record is `cluster_N`).
        id: u64,
        /// A name people recognise.
        #[arg(long)]
        name: String,
        /// SPARK_LOCAL, YARN, MESOS or KUBERNETES.
        #[arg(long = "type", default_value = "SPARK_LOCAL")]
        kind: String,
        /// The master: local[*], spark://host:7077, ... (empty: local[*]).
        #[arg(long, default_value = "")]
        address: String,
        /// Executors (spark.cores.max).
        #[arg(long, default_value_t = 1)]
        executors: u32,
        /// Cores per executor.
        #[arg(long, default_value_t = 1)]
        executor_cores: u32,
        /// Memory per executor, e.g. 1g (default: Spark's own).
        #[arg(long, default_value = "")]
        executor_memory: String,
        /// Extra settings: k=v,k=v or Stand's JSON {"spark": {...}, "environment": {...}}.
        #[arg(long, default_value = "")]
        general_parameters: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Create it disabled (new jobs naming it are refused).
        #[arg(long)]
        disabled: bool,
    },
    /// List clusters.
    List,
    /// Remove cluster N.
    Rm {
        /// Cluster id.
        id: u64,
    },
}

/// `sluice keys ...`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it once (only its hash is stored).
    Create {
        /// Owner name; the account's jobs carry it.
        #[arg(long)]
        owner: String,
        /// client (own jobs), worker (executors) or admin (everything).
        #[arg(long, default_value = "client")]
        role: crate::apikeys::Role,
        /// Executor kinds the key may submit to, comma-separated (`solver,command`, or `*`
        /// for all). Default: every kind for admins, the server's open_executors (solver)
        /// for the others. Kinds that run code the client chooses (command, spark,
        /// gridlabd) need a grant.
        #[arg(long)]
        executors: Option<String>,
    },
    /// List keys (ids, owners, roles; never the keys).
    List,
    /// Revoke a key by the id `list` shows (or by the key itself).
    Revoke {
        /// Key id (8+ hex digits) or the key.
        id: String,
    },
}

/// `sluice acl ...`: the Redis ACL users of [`crate::acl`].
#[derive(Debug, clap::Subcommand)]
pub enum AclCommand {
    /// Write DIR/users.acl (for redis.conf's aclfile) with a fresh random password per user
    /// and DIR/{exec,api,admin}.env with each class's SLUICE_REDIS_URL; keeps existing files
    /// unless --rotate.
    Setup {
        /// Where to write them.
        #[arg(default_value = "run/acl")]
        dir: std::path::PathBuf,
        /// Make new passwords even if the files exist (restart Redis and every process).
        #[arg(long)]
        rotate: bool,
    },
    /// Print each user's ACL rule (without its password) for this prefix.
    Rules,
}

/// Runs one subcommand; `shutdown` ends `serve` (the binary passes SIGTERM/SIGINT).
///
/// # Errors
/// The command's error, for `main` to print as one line.
pub async fn dispatch(
    b: Broker,
    command: Command,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    // `serve` and `beat` end gracefully on SIGTERM/SIGINT themselves; every other command
    // (`events --follow`, `tick --every`, `submit --wait`, ...) just stops.
    if matches!(command, Command::Serve | Command::Beat { .. }) {
        return run_command(b, command, shutdown).await;
    }
    tokio::select! {
        r = run_command(b, command, std::future::pending()) => r,
        () = shutdown => Err(Error::Interrupted),
    }
}

async fn run_command(
    b: Broker,
    command: Command,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    match command {
        Command::Serve => serve(b, shutdown).await,
        Command::Keys(k) => keys(&b, k).await,
        Command::Acl(AclCommand::Setup { dir, rotate }) => {
            let url = &b.config().redis_url;
            for line in crate::acl::setup(&dir, b.keys(), url, rotate)? {
                out(line);
            }
            Ok(())
        }
        Command::Acl(AclCommand::Rules) => {
            for (class, user) in crate::acl::USERS {
                out(format!(
                    "user {user} on >PASSWORD {}",
                    crate::acl::rule(b.keys(), class)?
                ));
            }
            Ok(())
        }
        Command::Schedules(s) => schedules(&b, s).await,
        Command::Clusters(c) => clusters(&b, c).await,
        Command::RateLimit { executor, limit } => rate_limit(&b, executor, limit).await,
        Command::Executors => {
            for e in b.executors().await? {
                out(format!(
                    "{:<32} {:<12} {}/{} running  since {}  seen {}",
                    e.worker, e.kind, e.running, e.slots, e.since, e.seen
                ));
            }
            Ok(())
        }
        Command::Beat { every } => {
            let (tx, rx) = tokio::sync::watch::channel(false);
            let beat = tokio::spawn(crate::schedules::beat(b, every, rx));
            shutdown.await;
            let _ = tx.send(true);
            let _ = beat.await;
            Ok(())
        }
        Command::Submit(s) => submit(&b, &s.to_job(&b)?, &s.files, s.wait).await,
        Command::SubmitBulk => submit_bulk(&b, std::io::stdin().lock()).await,
        Command::Status { id } => status(&b, id).await,
        Command::Stop { id } => moved(id, b.stop(id).await),
        Command::Lock { id, holder, force } => moved(id, b.lock(id, &holder, force).await),
        Command::Unlock { id } => moved(id, b.unlock(id).await),
        Command::Retry { id } => moved(id, b.retry(id).await),
        Command::List {
            status,
            executor,
            limit,
            cursor,
            finished,
        } => {
            let filter = ListFilter {
                status,
                finished,
                executor,
                owner: None,
            };
            list(&b, &filter, cursor.as_deref(), limit).await
        }
        Command::Events { id, follow } => events(&b, id, follow).await,
        Command::Claim {
            executor,
            count,
            worker,
        } => claim(&b, &executor, &worker, count).await,
        Command::Complete { id, token, result } => {
            let result = json_arg("result", &result)?;
            let done = b.complete(id, &token, &result).await;
            moved(id, done.map(|()| Status::Completed))
        }
        Command::Fail {
            id,
            token,
            error,
            no_retry,
        } => moved(id, b.fail(id, &token, &error, !no_retry).await),
        Command::Tick { every } => tick(&b, every).await,
        Command::Scripts => scripts(&b).await,
    }
}

/// `sluice serve`.
async fn serve(
    b: Broker,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    b.check_eviction_policy().await?;
    let addr = format!("{}:{}", b.config().bind, b.config().port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    if !b.config().auth {
        eprintln!("sluice: WARNING: auth is OFF (SLUICE_AUTH=off): anyone who reaches {addr} is admin. Local use only.");
    }
    tracing::info!(%addr, auth = b.config().auth, redis = %crate::config::redacted_url(&b.config().redis_url), "serving");
    crate::http::run(listener, b, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// `sluice schedules ...`.
async fn schedules(b: &Broker, s: SchedulesCommand) -> Result<(), Error> {
    use crate::schedules::Spec;
    match s {
        SchedulesCommand::Add {
            name,
            executor,
            params,
            cron,
            every,
        } => {
            let spec = match (cron, every) {
                (Some(c), _) => Spec::Cron(c),
                (None, Some(d)) => Spec::Every(d),
                (None, None) => return Err(Error::Invalid("give --cron or --every".into())),
            };
            b.add_schedule(&name, &executor, &json_arg("params", &params)?, &spec)
                .await?;
            out(format!("schedule {name} added"));
        }
        SchedulesCommand::List => {
            for s in b.schedules().await? {
                let when = s
                    .cron
                    .map(|c| format!("cron {c}"))
                    .or(s.every.map(|e| format!("every {e}")))
                    .unwrap_or_default();
                out(format!(
                    "{:<20} {:<12} {:<22} next {}  last {}",
                    s.name,
                    s.executor,
                    when,
                    s.next_tick.unwrap_or_default(),
                    s.last_tick.unwrap_or_else(|| "-".into())
                ));
            }
        }
        SchedulesCommand::Rm { name } => {
            if !b.remove_schedule(&name).await? {
                return Err(Error::Invalid(format!("no schedule named {name:?}")));
            }
            out(format!("schedule {name} removed"));
        }
    }
    Ok(())
}

/// `sluice rate-limit [KIND [LIMIT|off]]`.
async fn rate_limit(
    b: &Broker,
    executor: Option<String>,
    limit: Option<String>,
) -> Result<(), Error> {
    match (executor, limit.as_deref()) {
        (Some(kind), Some("off")) => {
            if !b.set_rate_limit(&kind, None).await? {
                return Err(Error::Invalid(format!("{kind:?} has no rate limit")));
            }
            out(format!("{kind}: no rate limit"));
        }
        (Some(kind), Some(text)) => {
            let rate: crate::job::Rate = text.parse()?;
            b.set_rate_limit(&kind, Some(rate)).await?;
            out(format!("{kind}: at most {}", rate.human()));
        }
        (kind, _) => {
            for l in b.rate_limits().await? {
                if kind.as_ref().is_none_or(|k| *k == l.executor) {
                    out(format!(
                        "{:<20} {:<12} {} started in the window",
                        l.executor, l.limit, l.started
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `sluice clusters ...`.
async fn clusters(b: &Broker, c: ClustersCommand) -> Result<(), Error> {
    match c {
        ClustersCommand::Add {
            id,
            name,
            kind,
            address,
            executors,
            executor_cores,
            executor_memory,
            general_parameters,
            description,
            disabled,
        } => {
            let record = serde_json::json!({
                "id": id, "name": name, "type": kind, "address": address,
                "executors": executors, "executor_cores": executor_cores,
                "executor_memory": executor_memory, "general_parameters": general_parameters,
                "description": description, "enabled": !disabled,
            });
            let cluster: crate::clusters::Cluster = serde_json::from_value(record)
                .map_err(|e| Error::Invalid(format!("cluster: {e}")))?;
            let created = b.put_cluster(&cluster).await?;
            out(format!(
                "cluster {id} {}",
                if created { "added" } else { "replaced" }
            ));
        }
        ClustersCommand::List => {
            for c in b.clusters().await? {
                out(format!(
                    "{:<4} {:<20} {:<12} {:<28} {}",
                    c.id,
                    c.name,
                    serde_json::to_value(c.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    c.master(),
                    if c.enabled { "enabled" } else { "disabled" }
                ));
            }
        }
        ClustersCommand::Rm { id } => {
            b.remove_cluster(id).await?;
            out(format!("cluster {id} removed"));
        }
    }
    Ok(())
}

/// `sluice keys ...`.
async fn keys(b: &Broker, k: KeysCommand) -> Result<(), Error> {
    match k {
        KeysCommand::Create {
            owner,
            role,
            executors,
        } => {
            let grant = executors.as_deref().map(apikeys::parse_grant).transpose()?;
            let key = b.create_key_granted(&owner, role, grant.as_deref()).await?;
            out(key);
        }
        KeysCommand::List => {
            for k in b.api_keys().await? {
                out(format!(
                    "{}  {:<7}  {:<20}  {}  {}",
                    k.id,
                    k.role,
                    k.owner,
                    k.created,
                    if k.executors.is_empty() {
                        "executors: role default"
                    } else {
                        &k.executors
                    }
                ));
            }
        }
        KeysCommand::Revoke { id } => {
            let revoked = b.revoke_key(&id).await?;
            out(format!("revoked {revoked}"));
        }
    }
    Ok(())
}
