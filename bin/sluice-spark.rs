//! `sluice-spark`: the executor that runs `spark` jobs with spark-submit (see executors::spark).
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use broker::Config;
use clap::Parser;
use executors::spark::SparkExecutor;
use executors::Options;

/// Runs jobs of kind "spark": spark-submit against the Stand cluster each job names
/// (`sluice clusters add`), its output streamed to the job's events and kept as the
/// artifact `spark-submit.attempt-N.log` under SLUICE_ARTIFACT_DIR. Redis and defaults come
/// from SLUICE_CONFIG / SLUICE_* (SLUICE_REDIS_URL, SLUICE_EXEC_SIZE, ...). SIGTERM: stop
/// claiming, let running jobs finish within --grace, kill and hand back the rest, exit 0.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// spark-submit to run (default: $SPARK_HOME/bin/spark-submit, else spark-submit on PATH).
    #[arg(long, env = "SLUICE_SPARK_SUBMIT")]
    spark_submit: Option<PathBuf>,
    /// Executor kind to serve (its queue is queue:<kind>).
    #[arg(long, default_value = "spark")]
    kind: String,
    /// Jobs run at once (default SLUICE_EXEC_SIZE or 10; each is a JVM: keep it small).
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
            eprintln!("sluice-spark: {e}");
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
    let program = args.spark_submit.unwrap_or_else(SparkExecutor::locate);
    executors::serve("sluice-spark", config, opts, |_| async move {
        Ok(Arc::new(SparkExecutor::new(program)) as Arc<dyn executors::Executor>)
    })
}
