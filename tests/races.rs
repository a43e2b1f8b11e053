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

/// Priorities: 8 concurrent claimers over 300 jobs of priorities 0-9 always take the highest
/// priority first and, within one, the oldest (the claimed events, in Redis' own order, read
/// back); a released job goes back to the head of its own level; a bad priority is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimers_take_higher_priorities_first_and_fifo_within_one() {
    const JOBS: u64 = 300;
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.pool_size = 10);
    let mut priority_of = std::collections::HashMap::new();
    let mut seed = 0x2545_f491_u64;
    for i in 0..JOBS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = seed % 10;
        let mut nj = b.new_job("x", json!(i));
        if p > 0 {
            nj.extra.push(("priority".into(), p.to_string()));
        }
        let (id, _) = b.submit(&nj).await.unwrap();
        priority_of.insert(id.0, p);
    }
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut n = 0;
                loop {
                    let got = b.claim("x", &format!("w{w}"), 3).await.unwrap();
                    if got.is_empty() {
                        return n;
                    }
                    n += got.len();
                }
            })
        })
        .collect();
    let mut claimed = 0;
    for c in claimers {
        claimed += c.await.unwrap();
    }
    assert_eq!(claimed as u64, JOBS);
    let events = redis.cli(&["XRANGE", "events", "-", "+"]);
    let mut order = Vec::new();
    let lines: Vec<&str> = events.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if *l == "claimed" {
            // Fields come as name/value lines: find this entry's job id before it.
            let job = lines[..i]
                .iter()
                .rposition(|x| *x == "job")
                .map(|j| lines[j + 1].parse::<u64>().unwrap())
                .unwrap();
            order.push(job);
        }
    }
    assert_eq!(order.len() as u64, JOBS);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (pa, pb) = (priority_of[&a], priority_of[&b]);
        assert!(
            pa > pb || (pa == pb && a < b),
            "job {a} (priority {pa}) was claimed before job {b} (priority {pb})"
        );
    }

    // A released job goes back to the head of its own level, before lower ones.
    let mut high = b.new_job("x", json!("high"));
    high.extra.push(("priority".into(), "5".into()));
    let (low, _) = b.submit(&b.new_job("x", json!("low"))).await.unwrap();
    let (high, _) = b.submit(&high).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(c.id, high);
    assert_eq!(b.release(high, &c.token).await.unwrap(), Status::Pending);
    let again = b.claim("x", "w", 2).await.unwrap();
    assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), [high, low]);
    let mut bad = b.new_job("x", json!(0));
    bad.extra.push(("priority".into(), "10".into()));
    assert!(matches!(
        b.submit(&bad).await,
        Err(broker::Error::Invalid(_))
    ));
    assert_eq!(
        redis.cli(&["EXISTS", "levels:x", "queue:x:p5"]).trim(),
        "0",
        "empty levels leave no keys behind"
    );
}
