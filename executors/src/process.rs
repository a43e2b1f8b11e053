//! What every executor binary's `main` does around the runtime: read the config, set up
//! logging, catch SIGTERM/SIGINT (first: drain; second: exit at once, the leases expire and
//! other executors take the jobs), check Redis' eviction policy, then run the claim loop.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, Config};
use futures::StreamExt;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::runtime::{Executor, Options};

/// The options every executor binary takes (flattened into its own `Args`).
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Executor kind to serve (its queue is queue:<kind>; default: the binary's kind).
    #[arg(long)]
    pub kind: Option<String>,
    /// How long running jobs may finish after SIGTERM before they are handed back.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Redis URL (overrides SLUICE_REDIS_URL).
    #[arg(long)]
    pub redis: Option<String>,
}

impl ProcessArgs {
    /// The config (SLUICE_CONFIG, SLUICE_*, then these flags) and the runtime options for
    /// `default_kind`.
    ///
    /// # Errors
    /// A readable message for a bad setting.
    pub fn load(&self, default_kind: &str) -> Result<(Config, Options), String> {
        let mut config = Config::load(std::env::vars()).map_err(|e| e.to_string())?;
        if let Some(url) = &self.redis {
            config.set("redis_url", url)?;
        }
        let mut opts = Options::new(&config, self.kind.as_deref().unwrap_or(default_kind));
        opts.grace = self.grace;
        opts.jail = std::sync::Arc::new(crate::child::Jail::new(&config)?);
        Ok((config, opts))
    }
}

/// The exit of an executor binary: 0, or 2 with `name: error` on stderr.
pub fn exit(name: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs executor process `name` until a signal; `start` builds the executor once Redis is
/// reachable (e.g. to register actions first).
///
/// # Errors
/// A readable message for bad config, an unreachable or evicting Redis, or a failed start.
pub fn serve<F, Fut>(name: &str, config: Config, opts: Options, start: F) -> Result<(), String>
where
    F: FnOnce(Broker) -> Fut,
    Fut: Future<Output = Result<Arc<dyn Executor>, String>>,
{
    let level = std::env::var("SLUICE_LOG").unwrap_or_else(|_| "info".into());
    let _logs = broker::logging::init(&config, name, &level);
    crate::child::harden_self();
    if opts.jail.sandboxed() {
        tracing::info!("{}", opts.jail.describe());
    } else {
        tracing::warn!("{}", opts.jail.describe());
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let name = name.to_string();
    rt.block_on(async move {
        let mut signals =
            signal_hook_tokio::Signals::new([SIGTERM, SIGINT]).map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signals.next().await;
            let _ = tx.send(true);
            signals.next().await;
            eprintln!(
                "{name}: second signal: exiting now; leases will expire and the jobs run elsewhere"
            );
            std::process::exit(130);
        });
        let broker = Broker::new(config).map_err(|e| e.to_string())?;
        broker
            .check_eviction_policy()
            .await
            .map_err(|e| e.to_string())?;
        let executor = start(broker.clone()).await?;
        if let Some(schema) = executor.params_schema() {
            publish_schema(&broker, &opts.kind, schema);
        }
        crate::runtime::run(broker, executor, opts, rx)
            .await
            .map_err(|e| e.to_string())
    })
}

/// Publishes `schema` as the params schema of `kind` (`broker::schemas`) from a task of its
/// own, retried while Redis is away, so an executor starts (and waits out an outage) as it
/// would without one.
fn publish_schema(broker: &Broker, kind: &str, schema: serde_json::Value) {
    let (broker, kind) = (broker.clone(), kind.to_string());
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(200);
        loop {
            match broker.publish_schema(&kind, &schema).await {
                Ok(()) => return tracing::debug!(kind, "params schema published"),
                Err(e) if e.is_transient() => {
                    tracing::warn!(kind, error = %e, "params schema not published yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return tracing::error!(kind, error = %e, "params schema refused"),
            }
        }
    });
}
