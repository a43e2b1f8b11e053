//! `sluice`: the broker's command line (submit, inspect and control jobs; run the benchmark).
use std::process::ExitCode;
use std::time::Duration;

use broker::{cli, Broker, Config, Error, JobId, ListFilter, Status};
use clap::{Parser, Subcommand};

/// Sluice: a Redis-native job broker. Settings come from SLUICE_CONFIG (a TOML file), then
/// SLUICE_* variables (SLUICE_REDIS_URL, SLUICE_PREFIX, SLUICE_RESULT_TTL, ...), then flags.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Redis URL (overrides SLUICE_REDIS_URL; default redis://127.0.0.1:6379).
    #[arg(long, global = true)]
    redis: Option<String>,
    /// Key prefix (overrides SLUICE_PREFIX).
    #[arg(long, global = true)]
    prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit a job; prints "ID STATUS" (or, with --wait, the finished job).
    Submit(cli::SubmitArgs),
    /// Show one job as JSON.
    Status { id: JobId },
    /// Stop a job: a waiting one is CANCELED at once, a running one is asked to stop.
    Stop { id: JobId },
    /// Lock a job: stop and retry are refused until unlock.
    Lock {
        id: JobId,
        /// Who holds the lock (shown to others).
        #[arg(long, default_value = "cli")]
        holder: String,
        /// Take the lock even if someone holds it.
        #[arg(long)]
        force: bool,
    },
    /// Unlock a job.
    Unlock { id: JobId },
    /// Queue a FAILED, CANCELED or TIMED_OUT job again with fresh attempts.
    Retry { id: JobId },
    /// List jobs, optionally filtered.
    List {
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        executor: Option<String>,
        /// Most jobs to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue a listing from the cursor it printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Print the event stream of one job, or of all jobs.
    Events {
        id: Option<JobId>,
        /// Keep following new events (a job's stream ends when the job ends).
        #[arg(long, short)]
        follow: bool,
    },
    /// Claim jobs as an executor would; prints one JSON line per job with its lease token.
    Claim {
        executor: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value = "cli")]
        worker: String,
    },
    /// Complete a claimed job with a JSON result.
    Complete {
        id: JobId,
        token: String,
        #[arg(default_value = "null")]
        result: String,
    },
    /// Fail a claimed job (retried while attempts are left, unless --no-retry).
    Fail {
        id: JobId,
        token: String,
        error: String,
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
    /// Measure throughput and pickup latency against a Redis (see README).
    Bench(broker::bench::BenchArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Cli) -> Result<(), Error> {
    let mut config = Config::load(std::env::vars())?;
    for (name, value) in [("redis_url", &args.redis), ("prefix", &args.prefix)] {
        if let Some(v) = value {
            config.set(name, v).map_err(Error::Config)?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    rt.block_on(async { dispatch(Broker::new(config)?, args.command).await })
}

async fn dispatch(b: Broker, command: Command) -> Result<(), Error> {
    match command {
        Command::Submit(s) => cli::submit(&b, &s.to_job(&b)?, s.wait).await,
        Command::Status { id } => cli::status(&b, id).await,
        Command::Stop { id } => cli::moved(id, b.stop(id).await),
        Command::Lock { id, holder, force } => cli::moved(id, b.lock(id, &holder, force).await),
        Command::Unlock { id } => cli::moved(id, b.unlock(id).await),
        Command::Retry { id } => cli::moved(id, b.retry(id).await),
        Command::List {
            status,
            executor,
            limit,
            cursor,
        } => {
            let filter = ListFilter {
                status,
                executor,
                owner: None,
            };
            cli::list(&b, &filter, cursor.as_deref(), limit).await
        }
        Command::Events { id, follow } => cli::events(&b, id, follow).await,
        Command::Claim {
            executor,
            count,
            worker,
        } => cli::claim(&b, &executor, &worker, count).await,
        Command::Complete { id, token, result } => {
            let result = cli::json_arg("result", &result)?;
            let done = b.complete(id, &token, &result).await;
            cli::moved(id, done.map(|()| Status::Completed))
        }
        Command::Fail {
            id,
            token,
            error,
            no_retry,
        } => cli::moved(id, b.fail(id, &token, &error, !no_retry).await),
        Command::Tick { every } => cli::tick(&b, every).await,
        Command::Scripts => cli::scripts(&b).await,
        Command::Bench(args) => broker::bench::run(b, args).await,
    }
}
