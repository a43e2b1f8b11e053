//! Sluice's integration tests: every test starts its own redis-server (harness/redis.rs).
#![allow(unreachable_pub, dead_code, clippy::unwrap_used)]
//! Test names read as claims.

mod harness;

mod artifacts; // uploads and downloads through a real sluice serve, expiry
mod attacks; // one real-process test per attack class: refused, nothing stored changed
mod browser; // the web console in a real headless Chromium
mod chaos; // recorded-history chaos runs with a checker: nothing lost, nothing twice
mod cli; // the `sluice` binary: one clear line and a non-zero exit on errors
mod compat; // the wumai and Jetstream Centro faces
mod console; // the web console's HTTP edges: landing, sign-in cookie, CSRF, escaping
mod delayed; // run_at, retry backoff and promote
mod docs; // every console example of README.md and the folder READMEs runs as written
mod events; // the capped event streams a job leaves behind
mod executors; // the runtime and the command executor, real child processes
mod expiry; // finished jobs expire after result_ttl; retry keeps them
mod fencing; // a stale lease token changes nothing
mod gridlabd; // the gridlabd executor with a real GridLAB-D (pip gridlabd): models, CSVs, stop
mod http; // the native HTTP API over real HTTP
mod idempotency; // Idempotency-Key, unique_key and bulk submit, raced by concurrent clients
mod leases; // expired leases are reaped: re-queued, failed or canceled
mod listing; // the listing indexes: each job in its status' index only, pages newest first
mod noscript; // scripts survive SCRIPT FLUSH
mod notify; // failure notifications reach a real webhook receiver
mod openapi; // /openapi.json matches the routes and the real responses
mod pipelines; // the Workflow Service face: pipelines, numbered runs, inputs, history, callbacks
mod races; // concurrent claimers never double-claim
mod ratelimits; // rate limits per kind and per key: never more starts than a window allows
mod refusals; // every illegal move is refused with a typed error
mod schedules; // periodic jobs fired exactly once per tick by any number of beats
mod schemas; // params schemas executors publish: a bad submit is a 400 naming the field
mod serve; // the sluice serve process: signals and graceful shutdown
mod spark; // the spark executor with a real spark-submit (pyspark), clusters, stop, logs
mod stableconfigs; // the StableConfigs face with the real sluice-solver
mod stand; // clusters and the Lemonade Stand face, its start/stop lists
mod supervisor; // the supervisord stack of supervisor/ with real supervisord
mod transitions; // the happy paths of the state machine
mod workflows; // DAGs of jobs: order, parallelism, failure, refusals
