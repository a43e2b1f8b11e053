//! Sluice's broker library: all job state lives in Redis, and every state change is one
//! atomic Lua script from `lua/`.
//!
//! # Layout
//!
//! - [`config`]: the one `Config`, its defaults table and how file and environment override it.
//! - [`keys`]: the key schema (`job_N`, `queue:<executor>`, `leases`, ...); the only place that
//!   formats key names.
//! - [`job`]: ids, statuses and the fields of the `job_N` hash.
//! - [`clusters`]: Stand's cluster records and what they add to a spark-submit run.
//! - [`solver`]: the contract of `solver` jobs (progress, failure classes) between the
//!   executor and the StableConfigs face.
//! - [`schedules`]: periodic jobs and the beat loop (`lua/fire.lua`).
//! - [`schemas`]: the JSON Schemas of each kind's params, published by executors and checked
//!   on every submit.
//! - [`scripts`]: embeds `lua/*.lua`; one typed wrapper per transition.
//! - [`error`]: the error enum and the codes shared with the scripts.
//! - [`logging`]: tracing set-up: human or JSON lines, stderr or daily-rotated files.
//! - [`notify`]: failure notifications to webhooks, from the event stream.
//! - [`pool`]: the bb8-redis pool and dedicated connections for blocking reads.
//! - [`client`]: [`Broker`], the handle the CLI, HTTP server and executors use.
//! - [`http`]: the warp front-end of `sluice serve` (native API, auth, errors, SSE, metrics).
//! - [`artifacts`]: files jobs produced or were given, behind one handle: a local directory
//!   per job or an S3-compatible bucket.
//! - [`workflows`]: DAGs of jobs (`POST /workflows`), checked and ordered before Redis.
//! - [`pipelines`]: named job templates and their numbered runs (the Workflow Service's).
//! - [`inputs`]: the files a job starts with (URLs or other jobs' artifacts).
//! - [`uploads`]: a job and its files in one request: held until every file is stored.
//! - [`outbound`]: the one policy for requests to addresses a client chose (no SSRF).
//! - [`apikeys`]: API keys and roles, stored hashed in Redis.
//! - [`acl`]: the Redis ACL users of each process class (executor, API, admin CLI).
//! - [`cli`]: the bodies of the `sluice` subcommands.
#![warn(missing_docs)]

// One convention: a domain module extends [`Broker`] with `impl Broker` methods for what it
// stores (jobs, keys, schedules, clusters, pipelines, workflows, artifacts); a long-running
// loop (the beat, the notifier, the HTTP server) is a free `run`/`beat` function that takes
// a `Broker`.
pub mod acl;
pub mod apikeys;
pub mod artifacts;
pub mod cli;
pub mod client;
pub mod clusters;
pub mod config;
pub mod error;
pub mod http;
pub mod inputs;
pub mod job;
pub mod keys;
pub mod logging;
pub mod notify;
pub mod outbound;
pub mod pipelines;
pub mod pool;
pub mod presence;
pub mod ratelimits;
pub mod schedules;
pub mod schemas;
pub mod scripts;
pub mod sentinel;
pub mod solver;
pub mod stats;
pub mod uploads;
pub mod workflows;

pub use client::{Broker, Event, ListFilter, Page};
pub use config::Config;
pub use error::Error;
pub use job::{Job, JobId, NewJob, Status};
pub use scripts::{Claimed, Claims, Reaped, Submitted};
