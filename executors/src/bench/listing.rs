//! `sluice bench-list`: what a page of `GET /jobs` costs with many jobs in Redis. Fills a
//! private redis-server (AOF `everysec`) with `--jobs` jobs over 5 kinds and 20 owners,
//! most of them finished (completed, one in ten failed) and the rest waiting, then times
//! filtered pages of 50 through a real `sluice serve` API on a local port: the newest page
//! of everything, one kind and status, one owner and status (a client's view), a page deep
//! in the list (cursor), and the counts that come with each. The index upkeep on the job
//! path is `sluice bench`'s drain figure measured with and without the indexes.

use std::time::{Duration, Instant};

use serde_json::json;

use broker::{Broker, Config, Error};

use crate::bench::scripts::{rate, start_redis, used_memory, wait_ready};

const KINDS: [&str; 5] = ["solver", "spark", "gridlabd", "command", "etl"];
const OWNERS: usize = 20;

/// Arguments of `sluice bench-list`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Jobs to fill Redis with.
    #[arg(long, default_value_t = 1_000_000)]
    pub jobs: usize,
    /// Timed requests per query.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Port of the private redis-server.
    #[arg(long, default_value_t = 6393)]
    pub port: u16,
}

/// Fills Redis, serves the API, times the queries and prints a table.
///
/// # Errors
/// When Redis or the API cannot start, or a request fails.
pub async fn run(config: Config, a: Args) -> Result<(), Error> {
    let _redis = start_redis("aof", a.port)?;
    let config = Config {
        redis_url: format!("redis://127.0.0.1:{}", a.port),
        auth: false,
        pool_size: 16,
        ..config
    };
    let b = Broker::new(config)?;
    wait_ready(&b).await?;
    let t0 = Instant::now();
    fill(&b, a.jobs).await?;
    let memory = used_memory(&b).await?;
    println!(
        "sluice bench-list: {} jobs in Redis (filled in {:.0} s, {:.0} bytes each)",
        a.jobs,
        t0.elapsed().as_secs_f64(),
        memory as f64 / a.jobs as f64
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Config(format!("bind: {e}")))?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::Config(e.to_string()))?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(broker::http::run(listener, b.clone(), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let deep = (a.jobs / 2).to_string();
    let queries = [
        ("newest 50 of everything", "limit=50".to_string()),
        (
            "one kind, COMPLETED",
            "limit=50&executor=spark&status=COMPLETED".into(),
        ),
        (
            "one kind, FAILED",
            "limit=50&executor=etl&status=FAILED".into(),
        ),
        ("one owner (a client's view)", "limit=50&owner=o7".into()),
        (
            "one owner, PENDING",
            "limit=50&owner=o7&status=PENDING".into(),
        ),
        (
            "one owner, one kind, COMPLETED",
            "limit=50&owner=o5&executor=solver&status=COMPLETED".into(),
        ),
        (
            "one owner, a kind it never ran (worst)",
            "limit=50&owner=o3&executor=solver".into(),
        ),
        (
            "finished, from the middle (cursor)",
            format!("limit=50&finished=true&cursor={deep}"),
        ),
    ];
    println!(
        "  {:<40} {:>9} {:>9} {:>6}",
        "GET /jobs?...", "p50 ms", "p99 ms", "jobs"
    );
    for (name, q) in queries {
        let url = format!("{base}/jobs?{q}");
        let mut times = Vec::with_capacity(a.requests);
        let mut shown = 0;
        for _ in 0..a.requests {
            let t = Instant::now();
            let page: serde_json::Value = http
                .get(&url)
                .send()
                .await
                .map_err(|e| Error::Invalid(format!("{url}: {e}")))?
                .json()
                .await
                .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
            times.push(t.elapsed());
            shown = page["jobs"].as_array().map_or(0, Vec::len);
        }
        times.sort();
        let ms = |p: f64| times[((times.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
        println!("  {name:<40} {:>9.2} {:>9.2} {shown:>6}", ms(0.5), ms(0.99));
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// Submits `n` jobs (pipelined), then claims and ends 90% of them: completed, one in ten
/// of those failed.
async fn fill(b: &Broker, n: usize) -> Result<(), Error> {
    let mut conn = b.conn().await?;
    let t = Instant::now();
    for start in (0..n).step_by(1000) {
        let jobs: Vec<_> = (start..(start + 1000).min(n))
            .map(|i| {
                let mut j = b.new_job(KINDS[i % KINDS.len()], json!({ "n": i }));
                j.owner = format!("o{}", i % OWNERS);
                j.result_ttl = Duration::from_secs(86_400);
                j.max_attempts = 1;
                j
            })
            .collect();
        for made in b.scripts().submit_many(&mut *conn, &jobs).await? {
            made?;
        }
    }
    println!("  submitted {n} at {:.0} jobs/s", rate(n, t.elapsed()));
    let t = Instant::now();
    let result = broker::job::encode(&json!(null))?;
    let lease = Duration::from_secs(3600);
    let mut ended = 0;
    for kind in KINDS {
        let target = n * 9 / 10 / KINDS.len();
        let mut done = 0;
        while done < target {
            let got = b
                .scripts()
                .claim(&mut *conn, kind, "bench", 500.min(target - done), lease)
                .await?
                .jobs;
            if got.is_empty() {
                break;
            }
            let (fail, ok): (Vec<_>, Vec<_>) = got.iter().partition(|c| c.id.0 % 10 == 0);
            let done_now: Vec<_> = ok
                .iter()
                .map(|c| (c.id, c.token.as_str(), result.as_slice()))
                .collect();
            for r in b.scripts().complete_many(&mut *conn, &done_now).await? {
                r?;
            }
            for c in fail {
                b.scripts()
                    .fail(&mut *conn, c.id, &c.token, "bench", false)
                    .await?;
            }
            done += got.len();
        }
        ended += done;
    }
    println!("  ended {ended} at {:.0} jobs/s", rate(ended, t.elapsed()));
    Ok(())
}
