//! Sluice executors: the runtime every executor kind shares, and the kinds themselves.
//!
//! # Layout
//!
//! - [`runtime`]: the claim loop (claim, run at most `exec_size`, heartbeat, timeout, stop,
//!   complete or fail, graceful shutdown). An executor kind implements [`Executor`].
//! - [`bench`]: every benchmark (`sluice bench`, `sluice bench-executors`,
//!   `sluice bench-solver`; the scripts beside them are in `executors/bench/`).
//! - [`history`]: the optional operation log the chaos suite checks.
//! - [`command`]: the `command` kind: runs programs from a config of actions (no shell).
//! - [`spark`]: the `spark` kind: spark-submit against a Stand cluster record.
//! - [`gridlabd`]: the `gridlabd` kind: a GridLAB-D model run by a small Python launcher.
//! - [`solver`]: the `solver` kind: StableConfigs' requests solved by [`tbn`], the exact
//!   TBN stable-configuration solver (incremental SAT on batsat).
//! - [`staging`]: a job's inputs (URLs, other jobs' and parents' artifacts) stored as its
//!   artifacts before it runs.
//! - [`process`]: what every executor binary's `main` does (signals, config, run).
#![warn(missing_docs)]

pub mod bench;
pub mod child;
pub mod closer;
pub mod command;
pub mod gridlabd;
pub mod history;
mod output;
pub mod process;
pub mod runtime;
pub mod solver;
pub mod spark;
pub mod staging;
pub mod tbn;

pub use process::serve;
pub use runtime::{run, Executor, JobContext, JobError, JobInput, Options};
