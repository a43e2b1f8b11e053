//! `sluice-command`: the executor that runs configured programs (see executors::command).
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use executors::command::{CommandConfig, CommandExecutor};
use executors::process::ProcessArgs;

/// Runs jobs of an executor kind (default "command") whose params name an action of the
/// config file. Redis and defaults come from SLUICE_CONFIG / SLUICE_* (SLUICE_REDIS_URL,
/// SLUICE_LEASE, SLUICE_PICK_SIZE, SLUICE_EXEC_SIZE, ...). SIGTERM: stop claiming, let
/// running jobs finish within --grace, hand the rest back, exit 0; a second SIGTERM exits at
/// once (the leases expire and other executors take the jobs).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The actions file (TOML; see README). Also SLUICE_COMMAND_CONFIG.
    #[arg(long, env = "SLUICE_COMMAND_CONFIG")]
    config: PathBuf,
    /// Jobs claimed per round (default SLUICE_PICK_SIZE or 10).
    #[arg(long)]
    pick_size: Option<usize>,
    /// Jobs run at once (default SLUICE_EXEC_SIZE or 10).
    #[arg(long)]
    exec_size: Option<usize>,
    #[command(flatten)]
    process: ProcessArgs,
    /// Append one JSON line per Redis call made for a job to this file (the chaos suite's
    /// operation log; see executors::history). Also SLUICE_HISTORY.
    #[arg(long, env = "SLUICE_HISTORY")]
    history: Option<PathBuf>,
}

fn main() -> ExitCode {
    executors::process::exit("sluice-command", run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let (config, mut opts) = args.process.load("command")?;
    let actions = CommandConfig::load(&args.config)?;
    opts.pick_size = args.pick_size.unwrap_or(opts.pick_size);
    opts.exec_size = args.exec_size.unwrap_or(opts.exec_size);
    if let Some(path) = &args.history {
        let h = executors::history::History::open(path)
            .map_err(|e| format!("history {}: {e}", path.display()))?;
        opts.history = Some(h);
    }
    let kind = opts.kind.clone();
    executors::serve("sluice-command", config, opts, |broker| async move {
        let names: Vec<String> = actions.actions.keys().cloned().collect();
        // Its params schema is published by `serve` (Executor::params_schema).
        let executor = CommandExecutor::new(actions);
        // Registered so the wumai and Jetstream faces can route actions here; retried by
        // the operator's supervisor if Redis is not up yet.
        broker
            .register_actions(&kind, &names)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(executor) as Arc<dyn executors::Executor>)
    })
}
