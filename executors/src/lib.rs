//! Sluice executors: the runtime every executor kind shares, and the kinds themselves.
//!
//! # Layout
//!
//! - [`runtime`]: the claim loop (claim, run at most `exec_size`, heartbeat, timeout, stop,
//!   complete or fail, graceful shutdown). An executor kind implements [`Executor`].
//! - [`bench`]: `sluice bench-executors`.
//! - [`command`]: the `command` kind: runs programs from a config of actions (no shell).
#![warn(missing_docs)]

pub mod bench;
pub mod command;
pub mod runtime;

pub use runtime::{run, Executor, JobContext, JobError, JobInput, Options};
