//! `sluice`: the broker's command line and HTTP server. Parses flags into the config, sets
//! up logging and signals, and hands one subcommand to `broker::cli::dispatch`.
use std::process::ExitCode;

use broker::cli::{dispatch, Command};
use broker::{Broker, Config, Error};
use clap::Parser;
use futures::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Sluice: a Redis-native job broker. Settings come from SLUICE_CONFIG (a TOML file), then
/// SLUICE_* variables (SLUICE_REDIS_URL, SLUICE_PREFIX, SLUICE_PORT, SLUICE_AUTH, ...), then flags.
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
    command: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(flatten)]
    Broker(Command),
    /// Measure throughput and pickup latency of the broker's scripts against a Redis.
    Bench(executors::bench::scripts::BenchArgs),
    /// Time filtered pages of GET /jobs with a million jobs in Redis.
    BenchList(executors::bench::listing::Args),
    /// Measure the executor runtime and the command executor.
    BenchExecutors(executors::bench::runtime::Args),
    /// Time the TBN solver on one file, or print a generated TBN (`solve FILE ...`, `gen FAMILY SIZE`).
    BenchSolver {
        /// `solve FILE [CONSTRAINTS] [GEN] [INIT_K] [COUNTING]` or `gen FAMILY SIZE`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => ExitCode::from(130),
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
    let level = std::env::var("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    let _logs = broker::logging::init(&config, "sluice", &level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    rt.block_on(async {
        let signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])
            .map_err(|e| Error::Config(format!("cannot install signal handlers: {e}")))?;
        let shutdown = async move {
            let mut signals = signals;
            signals.next().await;
        };
        match args.command {
            Top::Broker(command) => dispatch(Broker::new(config)?, command, shutdown).await,
            Top::Bench(a) => executors::bench::scripts::run(Broker::new(config)?, a).await,
            Top::BenchList(a) => executors::bench::listing::run(config, a).await,
            Top::BenchExecutors(a) => executors::bench::runtime::run(config, a).await,
            Top::BenchSolver { args } => {
                executors::bench::solver::run(&args).map_err(Error::Invalid)
            }
        }
    })
}
