//! `sluice-spark`: the executor that runs `spark` jobs with spark-submit (see executors::spark).
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use executors::process::ProcessArgs;
use executors::spark::SparkExecutor;

/// Runs jobs of kind "spark": spark-submit against the Stand cluster each job names
/// (`sluice clusters add`), its output streamed to the job's events and kept as the
/// artifact `spark-submit.attempt-N.log` (SLUICE_ARTIFACT_STORE). Redis and defaults come
/// from SLUICE_CONFIG / SLUICE_* (SLUICE_REDIS_URL, SLUICE_EXEC_SIZE, ...). SIGTERM: stop
/// claiming, let running jobs finish within --grace, kill and hand back the rest, exit 0.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// spark-submit to run (default: $SPARK_HOME/bin/spark-submit, else spark-submit on PATH).
    #[arg(long, env = "SLUICE_SPARK_SUBMIT")]
    spark_submit: Option<PathBuf>,
    /// Jobs run at once (default SLUICE_EXEC_SIZE, else 2: each is a JVM, keep it small).
    #[arg(long)]
    exec_size: Option<usize>,
    #[command(flatten)]
    process: ProcessArgs,
}

fn main() -> ExitCode {
    executors::process::exit("sluice-spark", run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let (config, mut opts) = args.process.load("spark")?;
    opts.exec_size = args.exec_size.or(config.exec_size).unwrap_or(2).max(1);
    opts.pick_size = opts.exec_size;
    let program = args.spark_submit.unwrap_or_else(SparkExecutor::locate);
    executors::serve("sluice-spark", config, opts, |_| async move {
        Ok(Arc::new(SparkExecutor::new(program)) as Arc<dyn executors::Executor>)
    })
}
