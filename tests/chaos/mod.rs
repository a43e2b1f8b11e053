//! The chaos suite: real processes (redis-server, `sluice-command` executors, `sluice
//! serve`), real faults (`kill -9`, SIGTERM, SIGSTOP/SIGCONT, Redis crashes and restarts
//! from its AOF, SCRIPT FLUSH), a recorded history and a checker that proves no job is
//! lost, none ends twice and no stale executor changes anything.
//!
//! - [`history`]: the operation log (executors' `--history` + the test's submits and
//!   stops) and the live tail of the `events` stream;
//! - [`audit`]: the final state of Redis;
//! - [`checker`]: the promises, checked over history + audit ([`doctored`] proves it
//!   catches breaches);
//! - [`cluster`]: starts and signals the processes, records the client's calls;
//! - scenarios, one test each, printing their figures: [`executors`] (kill -9, SIGTERM,
//!   SIGSTOP, poison), [`redis`] (crash + AOF, outage, SCRIPT FLUSH), [`failover`] (kill -9 of the primary behind sentinels), [`memory`]
//!   (maxmemory with noeviction), [`race`] (stop vs claim).
//!
//! Short by default; `SLUICE_CHAOS_JOBS` and `SLUICE_CHAOS_SECS` make a long run (README,
//! "Chaos suite").

pub mod audit;
pub mod checker;
pub mod cluster;
pub mod history;

mod doctored;
mod executors;
mod failover;
mod memory;
mod race;
mod redis;
