//! The `solver` executor kind: StableConfigs' TBN stable-configuration solver ([`crate::tbn`]).
//!
//! Params are StableConfigs' request body: `{"monomers": [[...]], "constraints": [[...]],
//! "gen": 1, "init_k": 1}`. The solve runs on a blocking thread; progress `{"count", "k"}`
//! is recorded as the search moves (at most 10 writes a second); a stop request or the job's
//! timeout raises the solver's stop flag, which it polls at every SAT conflict, so it ends
//! within milliseconds. The result is StableConfigs' answer `{"configs", "count",
//! "entropy"}`. An invalid TBN fails the job for good with the error text
//! `TBNException: <the original's message>`; anything else with `Exception: <text>`, which
//! is how the StableConfigs face tells its 401 from its 402. [`params_schema`] is the
//! schema `sluice-solver` publishes for those params (`broker::schemas`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use broker::solver::{Failure, Progress};

use crate::runtime::{Executor, JobContext, JobError, JobFuture, JobInput};
use crate::tbn::{solve, Problem, Request, TbnError};

/// Fewest time between two progress writes.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The JSON Schema of a `solver` job's params ([`crate::tbn::Request`]): what
/// `sluice-solver` publishes. Other keys are let through, as the solver ignores them; the
/// sites and constraints themselves are the solver's to check (their errors are the
/// original's `TBNException`s).
pub fn params_schema() -> Value {
    let lines = |what: &str| {
        json!({
            "type": "array",
            "description": what,
            "items": {"type": "array", "items": {"type": "string"}},
        })
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "solver params",
        "description": "A StableConfigs request: the stable configurations of a thermodynamic binding network.",
        "type": "object",
        "required": ["monomers"],
        "properties": {
            "monomers": lines("One list per monomer: its binding sites (\"a\", \"a*\", \"a:name\", \">name\" for the monomer's name)."),
            "constraints": lines("One list per constraint line, e.g. [\"FREE\", \"mon1\"] (default none)."),
            "gen": {"type": "integer", "minimum": 0, "default": 1,
                "description": "How many stable configurations to generate (default 1)."},
            "init_k": {"type": "integer", "minimum": 0, "default": 1,
                "description": "The polymer count the search starts at (default 1)."},
            "counting": {"enum": ["exact", "original"], "default": "exact",
                "description": "exact: the model's count (default); original: the original StableConfigs' count of self-bound monomers."},
        },
    })
}

/// The `solver` executor.
#[derive(Debug, Clone, Default)]
pub struct SolverExecutor;

impl Executor for SolverExecutor {
    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture {
        Box::pin(run_solver(job, ctx))
    }

    fn params_schema(&self) -> Option<Value> {
        Some(params_schema())
    }
}

fn fatal_tbn(e: &TbnError) -> JobError {
    JobError::Fatal(Failure::Tbn(e.to_string()).to_error())
}

async fn run_solver(job: JobInput, ctx: JobContext) -> Result<Value, JobError> {
    let request: Request = serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::Fatal(Failure::Other(format!("invalid request: {e}")).to_error()))?;
    let problem = Problem::parse(&request).map_err(|e| fatal_tbn(&e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress_rx) = watch::channel((0usize, request.init_k));
    // Progress writes and the stop flag live on the async side; the solver only touches
    // an atomic and a watch channel.
    let reporter = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    changed = progress_rx.changed() => {
                        if changed.is_err() { break; }
                        let (count, k) = *progress_rx.borrow_and_update();
                        if last != Some((count, k)) {
                            last = Some((count, k));
                            ctx.progress(&Progress { count: count as u64, k: k as u64 }).await;
                        }
                        tokio::time::sleep(PROGRESS_EVERY).await;
                    }
                    _ = ctx.stop.cancelled() => {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        })
    };
    let solver_stop = stop.clone();
    let (gen, init_k) = (request.gen, request.init_k);
    let started = Instant::now();
    let solved = tokio::task::spawn_blocking(move || {
        solve(
            &problem,
            gen,
            init_k,
            &mut |count, k| {
                let _ = progress_tx.send((count, k));
            },
            &solver_stop,
        )
    })
    .await;
    reporter.abort();
    let answer = match solved {
        Ok(Ok(answer)) => answer,
        // Stopped by its stop token (stop request, timeout, shutdown): the runtime knows why.
        Ok(Err(TbnError::EarlyTermination { .. })) if ctx.stop.is_cancelled() => {
            return Err(JobError::Stopped)
        }
        Ok(Err(e)) => return Err(fatal_tbn(&e)),
        Err(panic) => {
            return Err(JobError::Fatal(
                Failure::Other(format!("the solver crashed: {panic}")).to_error(),
            ))
        }
    };
    tracing::info!(job = %job.id, count = answer.count, entropy = answer.entropy, elapsed_ms = started.elapsed().as_millis() as u64, "solved");
    serde_json::to_value(&answer)
        .map_err(|e| JobError::Fatal(Failure::Other(e.to_string()).to_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_takes_what_stableconfigs_sends() {
        let schema = params_schema();
        let errors = |p: Value| broker::schemas::field_errors(&schema, &p);
        for good in [
            json!({"monomers": [["a*", "a", "a"], ["a*"], ["a", "a"]], "counting": "original"}),
            json!({"monomers": [["a:s1"]], "constraints": [["ANYPAIRED", "s1"]], "gen": 1000000, "init_k": 4}),
            json!({"monomers": [], "constraints": [["SOMETIMES", "x"]], "gen": 0, "other": "kept"}),
        ] {
            assert!(
                errors(good.clone()).is_empty(),
                "{good}: {:?}",
                errors(good.clone())
            );
            let parsed: Result<Request, _> = serde_json::from_value(good);
            assert!(parsed.is_ok(), "what the schema takes, the solver reads");
        }
        assert_eq!(
            errors(json!({"gen": 1})),
            vec![("params.monomers".into(), "is required".into())]
        );
        assert_eq!(
            errors(json!({"monomers": [["a"], "x"]})),
            vec![(
                "params.monomers[1]".into(),
                r#""x" is not of type "array""#.into()
            )]
        );
        assert_eq!(
            errors(json!({"monomers": [[1]]}))[0].0,
            "params.monomers[0][0]"
        );
        assert_eq!(
            errors(json!({"monomers": [], "gen": -1}))[0].0,
            "params.gen"
        );
        assert_eq!(
            errors(json!({"monomers": [], "init_k": 1.5}))[0].0,
            "params.init_k"
        );
        assert_eq!(
            errors(json!({"monomers": [], "counting": "roughly"}))[0].0,
            "params.counting"
        );
    }
}
