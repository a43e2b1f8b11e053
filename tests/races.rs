use std::collections::HashSet;

use broker::Status;
use serde_json::json;

use crate::harness::{broker, TestRedis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_over_ten_thousand_jobs_claim_each_exactly_once() {
    const JOBS: usize = 10_000;
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.pool_size = 8);
    let mut conn = b.conn().await.unwrap();
    for chunk in (0..JOBS).collect::<Vec<_>>().chunks(500) {
        let jobs: Vec<_> = chunk.iter().map(|i| b.new_job("x", json!(i))).collect();
        b.scripts().submit_many(&mut *conn, &jobs).await.unwrap();
    }
    drop(conn);

    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = b.claim("x", &format!("w{w}"), 7).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    let mut conn = b.conn().await.unwrap();
                    let done: Vec<_> = got
                        .iter()
                        .map(|c| (c.id, c.token.as_str(), &[0xc0u8][..]))
                        .collect();
                    for r in b.scripts().complete_many(&mut *conn, &done).await.unwrap() {
                        r.unwrap();
                    }
                    mine.extend(got.iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for c in claimers {
        let mine = c.await.unwrap();
        per_claimer.push(mine.len());
        all.extend(mine);
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "claims: {per_claimer:?}");
    assert_eq!(unique.len(), JOBS, "a job was claimed twice");
    assert!(
        per_claimer.iter().filter(|n| **n > 0).count() >= 2,
        "claimers did not race: {per_claimer:?}"
    );

    let page = b
        .list(
            &broker::ListFilter {
                status: Some(Status::Completed),
                ..Default::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert!(!page.jobs.is_empty());
    let mut conn = b.conn().await.unwrap();
    let mut p = redis::pipe();
    for id in &all {
        p.hget(b.keys().job(*id), "attempt");
    }
    let attempts: Vec<u32> = p.query_async(&mut *conn).await.unwrap();
    assert!(attempts.iter().all(|a| *a == 1), "some job ran twice");
    assert_eq!(redis.cli(&["ZCARD", "leases"]).trim(), "0");
    assert_eq!(redis.cli(&["LLEN", "queue:x"]).trim(), "0");
}
