//! The bodies of the `sluice` subcommands that talk to the broker. `bin/sluice.rs` parses
//! the command line and calls one function here; each prints its answer on stdout and
//! returns an error for `main` to print as one line.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

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
///
/// # Errors
/// Broker errors; with `wait`, a job that ends other than COMPLETED.
pub async fn submit(b: &Broker, job: &NewJob, wait: bool) -> Result<(), Error> {
    let (id, status) = b.submit(job).await?;
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
                s => Err(Error::Invalid(format!(
                    "job {id} ended {s}: {}",
                    job.error.unwrap_or_default()
                ))),
            };
        }
    }
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

/// `sluice list`: one line per job, then the cursor for the next page if any.
///
/// # Errors
/// Broker errors.
pub async fn list(
    b: &Broker,
    filter: &ListFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(), Error> {
    let mut page = b.list(filter, cursor, limit).await?;
    page.jobs.sort_by_key(|j| j.id);
    for j in &page.jobs {
        out(format!(
            "{:>8}  {:<9}  {:<12}  attempt {}/{}  {}",
            j.id,
            j.status,
            j.executor,
            j.attempt,
            j.max_attempts,
            j.field("created").unwrap_or("")
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
        let ended = match (job, batch.last()) {
            (Some(_), Some(e)) => e
                .get("status")
                .and_then(|s| s.parse::<Status>().ok())
                .is_some_and(Status::is_terminal),
            _ => false,
        };
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
}

impl SubmitArgs {
    /// The submit request these arguments describe, with config defaults filled in.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the params are not JSON.
    pub fn to_job(&self, b: &Broker) -> Result<NewJob, Error> {
        let mut job = b.new_job(&self.executor, json_arg("params", &self.params)?);
        job.run_at = self
            .run_at
            .or_else(|| self.delay.map(|d| std::time::SystemTime::now() + d));
        job.timeout = self.timeout.unwrap_or(job.timeout);
        job.max_attempts = self.max_attempts.unwrap_or(job.max_attempts);
        job.backoff = self.backoff.unwrap_or(job.backoff);
        job.result_ttl = self.result_ttl.unwrap_or(job.result_ttl);
        Ok(job)
    }
}
