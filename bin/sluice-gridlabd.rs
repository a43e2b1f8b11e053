//! `sluice-gridlabd`: the executor that runs `gridlabd` jobs (see executors::gridlabd).
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use broker::Config;
use clap::Parser;
use executors::gridlabd::GridlabdExecutor;
use executors::Options;

/// Runs jobs of kind "gridlabd": a GridLAB-D model (an uploaded artifact or inline text) run
/// by a small launcher on the Python interpreter that has the `gridlabd` package, in a fresh
/// working directory; its console is streamed to the job's events and kept as the artifact
/// `gridlabd.attempt-N.log`, and every file it writes becomes an artifact of the job (under
/// SLUICE_ARTIFACT_DIR). Redis and defaults come from SLUICE_CONFIG / SLUICE_*
/// (SLUICE_REDIS_URL, ...). SIGTERM: stop claiming, let running jobs finish within --grace,
/// kill and hand back the rest, exit 0.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Python interpreter with the `gridlabd` package (a job's `python` param wins).
    #[arg(long, env = "SLUICE_GRIDLABD_PYTHON", default_value = "python3")]
    python: String,
    /// Executor kind to serve (its queue is queue:<kind>).
    #[arg(long, default_value = "gridlabd")]
    kind: String,
    /// Simulations run at once.
    #[arg(long, default_value_t = 2)]
    exec_size: usize,
    /// How long running jobs may finish after SIGTERM before they are handed back.
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
            eprintln!("sluice-gridlabd: {e}");
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
    opts.exec_size = args.exec_size.max(1);
    opts.pick_size = opts.exec_size;
    opts.grace = args.grace;
    let python = args.python;
    executors::serve("sluice-gridlabd", config, opts, |_| async move {
        Ok(Arc::new(GridlabdExecutor::new(python)) as Arc<dyn executors::Executor>)
    })
}
