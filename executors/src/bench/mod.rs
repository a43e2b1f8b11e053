//! Every benchmark of Sluice, in one place. Each is a `sluice` subcommand on a real Redis (a
//! private redis-server with AOF `everysec` unless told otherwise), so its figures sit beside
//! the peers' of `../shared/bench/run.sh`, measured the same way:
//!
//! - [`scripts`]: `sluice bench`, the broker's own scripts (submit, claim, complete, drain,
//!   full lifecycle, pickup latency);
//! - [`listing`]: `sluice bench-list`, pages of `GET /jobs` with a million jobs in Redis;
//! - [`runtime`]: `sluice bench-executors`, no-op and command jobs through the executor
//!   runtime;
//! - [`solver`]: `sluice bench-solver`, the TBN solver on one instance.
//!
//! The scripts beside them, in `executors/bench/`: `scripts.sh` (redis-benchmark on the
//! submit and claim scripts) and `compare.sh` (the solver against the original
//! StableConfigs, with `run_original.py` and `summarize.py`).

pub mod listing;
pub mod runtime;
pub mod scripts;
pub mod solver;
