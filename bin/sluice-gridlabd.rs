//! `sluice-gridlabd`: the executor that runs `gridlabd` jobs (see executors::gridlabd).
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use executors::gridlabd::GridlabdExecutor;
use executors::process::ProcessArgs;

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
    /// Python interpreter with the `gridlabd` package.
    #[arg(long, env = "SLUICE_GRIDLABD_PYTHON", default_value = "python3")]
    python: String,
    /// Run models that use GLM macros or statements that run commands or compile code
    /// (`#system`, `#exec`, `#wget`, `#setenv`, `extern`, `link`, ...) and shared objects
    /// among a job's files; refused by default, as they run the client's code.
    #[arg(long, env = "SLUICE_GRIDLABD_UNSAFE_GLM")]
    allow_unsafe_glm: bool,
    /// Simulations run at once (default SLUICE_EXEC_SIZE, else 2).
    #[arg(long)]
    exec_size: Option<usize>,
    #[command(flatten)]
    process: ProcessArgs,
}

fn main() -> ExitCode {
    executors::process::exit("sluice-gridlabd", run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let (config, mut opts) = args.process.load("gridlabd")?;
    opts.exec_size = args.exec_size.or(config.exec_size).unwrap_or(2).max(1);
    opts.pick_size = opts.exec_size;
    let (python, allow_unsafe) = (args.python, args.allow_unsafe_glm);
    executors::serve("sluice-gridlabd", config, opts, |_| async move {
        Ok(Arc::new(GridlabdExecutor::new(python, allow_unsafe)) as Arc<dyn executors::Executor>)
    })
}
