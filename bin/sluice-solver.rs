//! `sluice-solver`: the executor that runs StableConfigs' TBN solver (see executors::solver).
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use broker::Config;
use clap::Parser;
use executors::solver::SolverExecutor;
use executors::Options;

/// Runs jobs of kind "solver": the stable configurations of a thermodynamic binding network
/// (StableConfigs' request body as params; `POST /task` submits them). Each solve takes one
/// core, so by default as many run at once as there are cores. Redis and defaults come from
/// SLUICE_CONFIG / SLUICE_* (SLUICE_REDIS_URL, ...). SIGTERM: stop claiming, let running
/// solves finish within --grace, stop and hand back the rest, exit 0.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Executor kind to serve (its queue is queue:<kind>).
    #[arg(long, default_value = "solver")]
    kind: String,
    /// Solves run at once (default: the number of cores).
    #[arg(long)]
    exec_size: Option<usize>,
    /// How long running solves may finish after SIGTERM before they are handed back.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// Redis URL (overrides SLUICE_REDIS_URL).
    #[arg(long)]
    redis: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-solver: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let mut config = Config::load(std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(url) = &args.redis {
        config.set("redis_url", url)?;
    }
    let mut opts = Options::new(&config, &args.kind);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    opts.exec_size = args.exec_size.unwrap_or(cores).max(1);
    opts.pick_size = opts.exec_size;
    opts.grace = args.grace;
    executors::serve("sluice-solver", config, opts, |_| async move {
        Ok(Arc::new(SolverExecutor) as Arc<dyn executors::Executor>)
    })
}
