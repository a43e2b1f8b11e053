//! Redis at `maxmemory` with `noeviction`: submits are refused (503 over HTTP), running jobs
//! keep their leases, and completions that hit the limit are retried until they land.

use std::time::{Duration, Instant};

use broker::Status;

use super::checker::Durability;
use super::cluster::Cluster;
use super::executors::{all, wait_for, NO_PERSIST};
use crate::harness::TestApi;

/// Fills Redis with 256 KiB ballast strings until a write is refused with OOM; returns how
/// many it took.
fn fill(c: &Cluster) -> usize {
    let used = used_memory(c);
    let limit = (used + 4 * 1024 * 1024).to_string();
    c.redis.cli(&["CONFIG", "SET", "maxmemory", &limit]);
    for n in 0.. {
        let out = c
            .redis
            .cli(&["SETRANGE", &format!("ballast:{n}"), "262143", "x"]);
        if out.contains("OOM") {
            // Right at the limit, small frees let small writes slip in again: set the limit
            // below what is used, so every write is refused until it is lifted.
            let used = used_memory(c);
            c.redis.cli(&[
                "CONFIG",
                "SET",
                "maxmemory",
                &(used - 1024 * 1024).to_string(),
            ]);
            return n;
        }
        assert!(n < 1000, "maxmemory {limit} never reached: {out}");
    }
    unreachable!()
}

fn used_memory(c: &Cluster) -> u64 {
    c.redis
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory used_memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_refuses_submits_and_running_jobs_land_afterwards() {
    let mut c = Cluster::start(&NO_PERSIST).await;
    c.redis
        .cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let api = TestApi::start(&c.redis, |_| {}).await;
    let mut execs = vec![c.executor(8, &[])];
    let mut ids = Vec::new();
    for i in 0..8 {
        // Half end while Redis is full (their completes must wait), half later (their
        // heartbeats must ride it out).
        let secs = if i % 2 == 0 { 0.8 } else { 3.0 };
        ids.push(
            c.client
                .submit(c.client.work(secs, 3))
                .await
                .expect("submit"),
        );
    }
    let b = c.client.broker.clone();
    wait_for(Duration::from_secs(10), "all eight running", || async {
        all(&b, &ids, |j| j.status == Status::Running).await
    })
    .await;
    let full = Instant::now();
    let ballast = fill(&c);
    let http = reqwest::Client::new();
    let t = Instant::now();
    let answer = http
        .post(api.url("/jobs"))
        .body(r#"{"executor": "command", "params": {"action": "work", "secs": "0"}}"#)
        .send()
        .await
        .expect("POST /jobs");
    let (status, took) = (answer.status().as_u16(), t.elapsed());
    let refused = c.client.submit(c.client.work(0.0, 1)).await;
    // Full for 1.2 s: longer than the short jobs, shorter than a lease (2 s).
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(full.elapsed())).await;
    let keys: Vec<String> = (0..=ballast).map(|n| format!("ballast:{n}")).collect();
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    c.redis.cli(&del);
    c.redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let freed = full.elapsed();
    let left = c.client.wait_ended(&ids, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "not ended: {left:?}\n{}", c.executor_log());
    for e in execs.iter() {
        e.signal(nix::sys::signal::Signal::SIGTERM);
    }
    for e in execs.iter_mut() {
        let _ = e.proc.wait();
    }
    execs.clear();
    let (report, _) = c.check(Durability::Strict).await;
    let ops = c.client.rec.read();
    let oom: Vec<String> = ops
        .iter()
        .filter(|o| o.err.as_deref() == Some("OOM"))
        .map(|o| o.op.clone())
        .collect();
    println!(
        "[maxmemory] full after {ballast} ballast writes, for {freed:?}; POST /jobs answered \
         {status} in {took:?}; calls refused with OOM and retried: {oom:?}\n[maxmemory] {report}"
    );
    report.assert_clean();
    assert_eq!(status, 503, "a submit at maxmemory is 503");
    assert!(refused.is_none(), "a submit at maxmemory is refused");
    assert!(
        oom.iter().any(|o| o == "complete"),
        "no complete met the limit: nothing tested"
    );
    for id in &ids {
        let j = c.client.broker.get(*id).await.expect("job");
        assert_eq!(
            (j.status, j.attempt),
            (Status::Completed, 1),
            "job {id}: a full Redis must not cost an attempt"
        );
    }
}
