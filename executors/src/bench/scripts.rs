//! `sluice bench`: throughput and pickup latency of the broker's own scripts on a real
//! Redis. By default it starts a private redis-server on 127.0.0.1 with AOF `everysec` (as
//! `../shared/bench/lib.sh` starts one for the peers) so that the figures sit beside the
//! peers' measured the same way; `--mode external` measures the Redis of `--redis` instead.
//!
//! Phases (each over `--jobs` no-op jobs, `--concurrency` clients):
//! 1. submit, one job per call, one client (what the peers' enqueue figures measure);
//! 2. submit, pipelined in batches of `--batch`;
//! 3. claim in batches of `--batch` (jobs stay RUNNING);
//! 4. complete, pipelined in batches;
//! 5. drain: claim + pipelined complete of pre-queued jobs, and the Redis memory each of
//!    those finished jobs holds (hash, state history, index entry; `used_memory` delta);
//! 6. full lifecycle: producers submit while workers claim and complete, first submit to
//!    last completion;
//! 7. pickup latency: an idle claimer blocked on the wake marker (BLPOP, no polling);
//!    submit-call start to claim-return, one job at a time.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use broker::job::NewJob;
use broker::{Broker, Config, Error, JobId};

/// The executor kind bench jobs are queued for.
const KIND: &str = "bench";

/// Arguments of `sluice bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Jobs per phase.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Concurrent clients (producers and workers) per phase.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Jobs per claim call and per pipeline.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Pickup-latency samples.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// aof (appendfsync everysec), always (appendfsync always), mem (no persistence):
    /// start a private redis-server so; external: use --redis as it is (it is flushed of
    /// the bench prefix only).
    #[arg(long, default_value = "aof")]
    pub mode: String,
    /// Port of the private redis-server.
    #[arg(long, default_value_t = 6391)]
    pub port: u16,
    /// Print the figures as one JSON object too.
    #[arg(long)]
    pub json: bool,
    /// Give every bench job this feature, to measure what it costs against a plain run:
    /// priority (1-9 in turn), concurrency (100 keys, a limit never reached), unique (a key
    /// each), idempotency (a key each), rate (100 rate keys), kind-rate (a limit on the
    /// kind); limits are never reached, so the figure is the upkeep.
    #[arg(long, value_enum, default_value = "none")]
    pub feature: Feature,
}

/// The submit feature every bench job carries (`--feature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Feature {
    /// Plain jobs.
    None,
    /// `priority` 1-9.
    Priority,
    /// `concurrency_key` of 100, `concurrency_limit` 100 000 (a slot is taken and given back).
    Concurrency,
    /// A `unique_key` each.
    Unique,
    /// An `idempotency_key` each.
    Idempotency,
    /// `rate_key` of 100, `rate_limit` 100 000/1s (logged, never reached).
    Rate,
    /// A rate limit of the bench kind, 100 000/1s (logged, never reached).
    KindRate,
}

/// Makes each unique or idempotency key of a run new.
static KEYS_MADE: AtomicUsize = AtomicUsize::new(0);

/// A redis-server the bench started; killed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a private redis-server on 127.0.0.1:`port`: `aof` (everysec), `always` or `mem`.
///
/// # Errors
/// An unknown mode, or redis-server not starting.
pub fn start_redis(mode: &str, port: u16) -> Result<PrivateRedis, Error> {
    start_redis_with(mode, port, &[])
}

/// [`start_redis`] with `extra` redis-server arguments (e.g. `--replicaof`), in a directory
/// of its own.
///
/// # Errors
/// As [`start_redis`].
pub fn start_redis_with(mode: &str, port: u16, extra: &[&str]) -> Result<PrivateRedis, Error> {
    let persist: &[&str] = match mode {
        "aof" => &["--appendonly", "yes", "--appendfsync", "everysec"],
        "always" => &["--appendonly", "yes", "--appendfsync", "always"],
        "mem" => &["--appendonly", "no"],
        other => {
            return Err(Error::Invalid(format!(
                "--mode {other:?}: one of aof, always, mem, external"
            )))
        }
    };
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(&dir)
        .args(persist)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| Error::Config(format!("cannot start redis-server: {e}")))?;
    Ok(PrivateRedis { child, dir })
}

/// Runs the benchmark and prints a table (and JSON with `--json`).
///
/// # Errors
/// When Redis cannot be started or reached, or a phase loses a job.
pub async fn run(b: Broker, args: BenchArgs) -> Result<(), Error> {
    let (_redis, b) = if args.mode == "external" {
        (None, b)
    } else {
        let redis = start_redis(&args.mode, args.port)?;
        let config = Config {
            redis_url: format!("redis://127.0.0.1:{}", args.port),
            pool_size: 2 * args.concurrency as u32 + 2,
            ..b.config().clone()
        };
        (Some(redis), Broker::new(config)?)
    };
    wait_ready(&b).await?;
    let kind_rate = (args.feature == Feature::KindRate).then(|| broker::job::Rate {
        max: broker::job::MAX_RATE,
        period: Duration::from_secs(1),
    });
    b.set_rate_limit(KIND, kind_rate).await?;
    let version = redis_version(&b).await.unwrap_or_default();
    println!(
        "sluice bench: redis {version} ({}), {} jobs, {} clients, batch {}, feature {:?}",
        args.mode, args.jobs, args.concurrency, args.batch, args.feature
    );
    let mut rows: Vec<(&str, f64)> = Vec::new();
    let a = &args;

    let single = (a.jobs / 10).max(100);
    let mut row = |name: &'static str, v: f64| {
        println!("  {name:<52} {v:>10.2}");
        rows.push((name, v));
    };
    row(
        "submit, 1 client, 1 job per call (jobs/s)",
        rate(single, submit_one_by_one(&b, single).await?),
    );
    row(
        "submit, pipelined (jobs/s)",
        rate(a.jobs, submit_all(&b, a).await?),
    );
    let (claim_t, claimed) = claim_all(&b, a).await?;
    row("claim, batched (jobs/s)", rate(a.jobs, claim_t));
    row(
        "complete, pipelined (jobs/s)",
        rate(a.jobs, complete_all(&b, a, claimed).await?),
    );
    let before = used_memory(&b).await?;
    submit_all(&b, a).await?;
    let drained = drain(&b, a, a.jobs).await?;
    let after = used_memory(&b).await?;
    row(
        "drain pre-queued: claim + complete (jobs/s)",
        rate(a.jobs, drained),
    );
    row(
        "Redis memory per finished no-op job (bytes)",
        after.saturating_sub(before) as f64 / a.jobs as f64,
    );
    row(
        "full lifecycle: submit + claim + complete (jobs/s)",
        rate(a.jobs, lifecycle(&b, a).await?),
    );
    let (p50, p99) = pickup(&b, a.samples).await?;
    row("pickup p50 (ms)", p50);
    row("pickup p99 (ms)", p99);
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    }
    Ok(())
}

/// Jobs per second.
pub fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64().max(1e-9)
}

/// Waits up to 10 s for Redis to answer.
///
/// # Errors
/// The last error when it never does.
pub async fn wait_ready(b: &Broker) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match b.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The value of `field` in Redis' `INFO section`.
async fn info_field(b: &Broker, section: &str, field: &str) -> Result<Option<String>, Error> {
    let mut c = b.conn().await?;
    let info: String = redis::cmd("INFO").arg(section).query_async(&mut *c).await?;
    let prefix = format!("{field}:");
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_string()))
}

/// Redis' `used_memory` (bytes).
///
/// # Errors
/// Redis errors.
pub async fn used_memory(b: &Broker) -> Result<u64, Error> {
    Ok(info_field(b, "memory", "used_memory")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

async fn redis_version(b: &Broker) -> Result<String, Error> {
    Ok(info_field(b, "server", "redis_version")
        .await?
        .unwrap_or_else(|| "?".into()))
}

fn bench_job(b: &Broker, feature: Feature, i: usize) -> NewJob {
    let mut j = b.new_job(KIND, json!({ "n": i }));
    // Long enough that no key expires while the bench runs: expiry cycles would show up as
    // latency spikes that are not the broker's.
    j.result_ttl = Duration::from_secs(3600);
    let fresh = || KEYS_MADE.fetch_add(1, Ordering::Relaxed).to_string();
    let extra: Vec<(&str, String)> = match feature {
        Feature::Priority => vec![("priority", (i % 9 + 1).to_string())],
        Feature::Concurrency => vec![
            ("concurrency_key", format!("k{}", i % 100)),
            ("concurrency_limit", "100000".into()),
        ],
        Feature::Unique => vec![("unique_key", fresh())],
        Feature::Idempotency => vec![("idempotency_key", fresh()), ("request_hash", "h".into())],
        Feature::Rate => vec![
            ("rate_key", format!("k{}", i % 100)),
            ("rate_limit", "100000/1000ms".into()),
        ],
        Feature::None | Feature::KindRate => Vec::new(),
    };
    j.extra = extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    j
}

async fn submit_one_by_one(b: &Broker, n: usize) -> Result<Duration, Error> {
    let t0 = Instant::now();
    for i in 0..n {
        b.submit(&bench_job(b, Feature::None, i)).await?;
    }
    let t = t0.elapsed();
    // Leave nothing queued for the next phase.
    while !b.claim(KIND, "bench", 1000).await?.is_empty() {}
    Ok(t)
}

/// Splits `n` jobs over `clients` tasks running `f(task, share)`; returns the wall time.
async fn fan_out<F, Fut>(clients: usize, n: usize, f: F) -> Result<Duration, Error>
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(f(c, n / clients + usize::from(c < n % clients))))
        .collect();
    for t in tasks {
        t.await
            .map_err(|e| Error::Invalid(format!("bench task: {e}")))??;
    }
    Ok(t0.elapsed())
}

async fn submit_all(b: &Broker, a: &BenchArgs) -> Result<Duration, Error> {
    let (batch, feature) = (a.batch, a.feature);
    fan_out(a.concurrency, a.jobs, |_, share| {
        let b = b.clone();
        async move {
            let mut conn = b.conn().await?;
            let mut done = 0;
            while done < share {
                let n = batch.min(share - done);
                let jobs: Vec<_> = (done..done + n)
                    .map(|i| bench_job(&b, feature, i))
                    .collect();
                for made in b.scripts().submit_many(&mut *conn, &jobs).await? {
                    made?;
                }
                done += n;
            }
            Ok(())
        }
    })
    .await
}

async fn claim_all(b: &Broker, a: &BenchArgs) -> Result<(Duration, Vec<(JobId, String)>), Error> {
    let found = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(a.jobs)));
    let batch = a.batch;
    let t = fan_out(a.concurrency, a.jobs, |c, _| {
        let (b, found) = (b.clone(), found.clone());
        async move {
            let mut mine = Vec::new();
            loop {
                let got = b.claim(KIND, &format!("bench-{c}"), batch).await?;
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|j| (j.id, j.token)));
            }
            found.lock().await.extend(mine);
            Ok(())
        }
    })
    .await?;
    let claimed = std::mem::take(&mut *found.lock().await);
    if claimed.len() != a.jobs {
        return Err(Error::Invalid(format!(
            "claimed {} of {} jobs",
            claimed.len(),
            a.jobs
        )));
    }
    Ok((t, claimed))
}

async fn complete_all(
    b: &Broker,
    a: &BenchArgs,
    claimed: Vec<(JobId, String)>,
) -> Result<Duration, Error> {
    let shares: Vec<Vec<_>> = claimed
        .chunks(claimed.len().div_ceil(a.concurrency).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let shares = Arc::new(shares);
    let batch = a.batch;
    fan_out(shares.len(), shares.len(), |c, _| {
        let (b, shares) = (b.clone(), shares.clone());
        async move {
            let mut conn = b.conn().await?;
            let result = broker::job::encode(&json!(null))?;
            for chunk in shares[c].chunks(batch) {
                let done: Vec<_> = chunk
                    .iter()
                    .map(|(id, t)| (*id, t.as_str(), result.as_slice()))
                    .collect();
                for r in b.scripts().complete_many(&mut *conn, &done).await? {
                    r?;
                }
            }
            Ok(())
        }
    })
    .await
}

/// Workers claim and complete until `target` jobs are done (counted across workers).
async fn drain(b: &Broker, a: &BenchArgs, target: usize) -> Result<Duration, Error> {
    let done = Arc::new(AtomicUsize::new(0));
    let batch = a.batch;
    fan_out(a.concurrency, target, |c, _| {
        let (b, done) = (b.clone(), done.clone());
        async move {
            let mut conn = b.conn().await?;
            let result = broker::job::encode(&json!(null))?;
            let worker = format!("bench-{c}");
            while done.load(Ordering::Relaxed) < target {
                let got = b
                    .scripts()
                    .claim(&mut *conn, KIND, &worker, batch, b.config().lease)
                    .await?
                    .jobs;
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                let items: Vec<_> = got
                    .iter()
                    .map(|j| (j.id, j.token.as_str(), result.as_slice()))
                    .collect();
                for r in b.scripts().complete_many(&mut *conn, &items).await? {
                    r?;
                }
                done.fetch_add(got.len(), Ordering::Relaxed);
            }
            Ok(())
        }
    })
    .await
}

async fn lifecycle(b: &Broker, a: &BenchArgs) -> Result<Duration, Error> {
    let t0 = Instant::now();
    let producers = {
        let (b, a) = (b.clone(), a.clone());
        tokio::spawn(async move { submit_all(&b, &a).await })
    };
    drain(b, a, a.jobs).await?;
    producers
        .await
        .map_err(|e| Error::Invalid(format!("bench producers: {e}")))??;
    Ok(t0.elapsed())
}

async fn pickup(b: &Broker, samples: usize) -> Result<(f64, f64), Error> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let claimer = {
        let b = b.clone();
        let mut blocking = b.blocking_connection().await?;
        tokio::spawn(async move {
            let mut seen = 0;
            while seen < samples {
                let got = b.claim(KIND, "bench-idle", 10).await?;
                if got.is_empty() {
                    b.wait_for_work(&mut blocking, KIND, Duration::from_secs(1))
                        .await?;
                    continue;
                }
                let at = Instant::now();
                for j in &got {
                    b.complete(j.id, &j.token, &json!(null)).await?;
                }
                seen += got.len();
                let _ = tx.send(at);
            }
            Ok::<(), Error>(())
        })
    };
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        // Let the claimer go idle (blocked in BLPOP) before each submit.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t0 = Instant::now();
        b.submit(&bench_job(b, Feature::None, i)).await?;
        let Some(at) = rx.recv().await else { break };
        lat.push(at.duration_since(t0).as_secs_f64() * 1000.0);
    }
    claimer
        .await
        .map_err(|e| Error::Invalid(format!("claimer: {e}")))??;
    Ok(p50_p99(lat))
}

/// The median and 99th percentile of latency samples (NaN when there are none).
pub fn p50_p99(mut lat: Vec<f64>) -> (f64, f64) {
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (pct(0.50), pct(0.99))
}
