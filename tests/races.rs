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

/// Concurrency keys: 8 claimers working through 90 jobs of 3 keys (limit 2 each) never run
/// more than 2 of a key at once, read from the events stream in Redis' own order; a job of
/// a full key does not hold back another key's job behind it, and a freed slot puts the
/// parked job straight back on the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_never_exceed_a_concurrency_limit() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.pool_size = 10);
    let keyed = |key: &str| {
        let mut nj = b.new_job("x", json!(key));
        nj.extra.push(("concurrency_key".into(), key.into()));
        nj.extra.push(("concurrency_limit".into(), "2".into()));
        nj
    };
    // Fairness first: two of "a" run, the third "a" waits, the "b" behind it is claimed.
    let (a1, _) = b.submit(&keyed("a")).await.unwrap();
    let (a2, _) = b.submit(&keyed("a")).await.unwrap();
    let (a3, _) = b.submit(&keyed("a")).await.unwrap();
    let (b1, _) = b.submit(&keyed("b")).await.unwrap();
    let got: Vec<_> = b.claim("x", "w", 4).await.unwrap();
    assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), [a1, a2, b1]);
    assert_eq!(
        redis.cli(&["LRANGE", "parked:x::a", "0", "-1"]).trim(),
        a3.to_string()
    );
    let first = &got[0];
    b.complete(first.id, &first.token, &json!(null))
        .await
        .unwrap();
    assert_eq!(
        redis.cli(&["LRANGE", "queue:x", "0", "-1"]).trim(),
        a3.to_string(),
        "the freed slot puts the parked job back at once"
    );
    let third = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(third.id, a3);
    for c in [&got[1], &got[2], &third] {
        b.complete(c.id, &c.token, &json!(null)).await.unwrap();
    }
    assert_eq!(
        redis
            .cli(&["EXISTS", "concurrency:x::a", "concurrency:x::b"])
            .trim(),
        "0"
    );

    // The race: 90 jobs, keys a, b, c in turn; each claimer completes, fails or releases.
    let key_of: std::collections::HashMap<u64, String> = {
        let mut m = std::collections::HashMap::new();
        for i in 0..90 {
            let key = ["a", "b", "c"][i % 3];
            let (id, _) = b.submit(&keyed(key)).await.unwrap();
            m.insert(id.0, key.to_string());
        }
        m
    };
    let released = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let b = b.clone();
            let released = released.clone();
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 50 {
                    let got = b.claim("x", &format!("w{w}"), 2).await.unwrap();
                    if got.is_empty() {
                        idle += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        continue;
                    }
                    idle = 0;
                    for c in got {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        // Every 7th job is handed back once (a release keeps its attempt).
                        let first = c.id.0 % 7 == 0 && released.lock().unwrap().insert(c.id.0);
                        if first {
                            b.release(c.id, &c.token).await.unwrap();
                        } else {
                            b.complete(c.id, &c.token, &json!(null)).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for c in claimers {
        c.await.unwrap();
    }
    for id in key_of.keys() {
        assert_eq!(
            b.get(broker::JobId(*id)).await.unwrap().status,
            Status::Completed,
            "job {id}"
        );
    }
    // Replay the stream: claimed adds one running job to its key, completed/released one less.
    let events = redis.cli(&["XRANGE", "events", "-", "+"]);
    let lines: Vec<&str> = events.lines().collect();
    let mut running: std::collections::HashMap<String, i64> = Default::default();
    let mut peak = 0;
    for (i, l) in lines.iter().enumerate() {
        let delta = match *l {
            "claimed" => 1,
            "completed" | "released" => -1,
            _ => continue,
        };
        let Some(job) = lines[..i]
            .iter()
            .rposition(|x| *x == "job")
            .and_then(|j| lines[j + 1].parse::<u64>().ok())
        else {
            continue;
        };
        let Some(key) = key_of.get(&job) else {
            continue;
        };
        let n = running.entry(key.clone()).or_default();
        *n += delta;
        assert!(*n <= 2, "key {key} ran {n} jobs at once");
        peak = peak.max(*n);
    }
    assert_eq!(peak, 2, "the limit was reached, not only respected");
    assert_eq!(
        redis
            .cli(&[
                "EXISTS",
                "concurrency:x::a",
                "concurrency:x::b",
                "concurrency:x::c"
            ])
            .trim(),
        "0",
        "no slot leaked"
    );
}
