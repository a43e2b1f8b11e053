//! `sluice-solver`: the executor that runs StableConfigs' TBN solver (see executors::solver).
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use executors::process::ProcessArgs;
use executors::solver::SolverExecutor;

/// Runs jobs of kind "solver": the stable configurations of a thermodynamic binding network
/// (StableConfigs' request body as params; `POST /task` submits them). Each solve takes one
/// core, so by default as many run at once as there are cores. Redis and defaults come from
/// SLUICE_CONFIG / SLUICE_* (SLUICE_REDIS_URL, ...). SIGTERM: stop claiming, let running
/// solves finish within --grace, stop and hand back the rest, exit 0.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Solves run at once (default SLUICE_EXEC_SIZE, else the number of cores).
    #[arg(long)]
    exec_size: Option<usize>,
    #[command(flatten)]
    process: ProcessArgs,
}

fn main() -> ExitCode {
    executors::process::exit("sluice-solver", run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let (config, mut opts) = args.process.load("solver")?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    opts.exec_size = args.exec_size.or(config.exec_size).unwrap_or(cores).max(1);
    opts.pick_size = opts.exec_size;
    executors::serve("sluice-solver", config, opts, |_| async move {
        Ok(Arc::new(SolverExecutor) as Arc<dyn executors::Executor>)
    })
}
