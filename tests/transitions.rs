use std::time::Duration;

use broker::{Error, Status};
use serde_json::json;

use crate::eq_job;
use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn submit_claim_progress_complete_leaves_a_readable_hash() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, status) = b
        .submit(&b.new_job("solver", json!({"monomers": [["a", "a*"]]})))
        .await
        .unwrap();
    assert_eq!(status, Status::Pending);
    assert_eq!(
        redis.cli(&["LRANGE", "queue:solver", "0", "-1"]).trim(),
        id.to_string()
    );

    let claimed = b.claim("solver", "w1", 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id, c.attempt, c.max_attempts), (id, 1, 3));
    let params: serde_json::Value = rmp_serde::from_slice(&c.params).unwrap();
    assert_eq!(params, json!({"monomers": [["a", "a*"]]}));

    assert!(!b
        .progress(id, &c.token, &json!({"count": 1, "k": 2}))
        .await
        .unwrap());
    assert!(!b.heartbeat(id, &c.token).await.unwrap());
    let running = job(&b, id).await;
    eq_job!(redis, id, running.status, Status::Running);
    assert_eq!(running.progress, Some(json!({"count": 1, "k": 2})));
    assert_eq!(running.field("worker"), Some("w1"));
    assert_eq!(running.field("lease_token"), Some(c.token.as_str()));

    b.complete(id, &c.token, &json!({"configs": [], "count": 0}))
        .await
        .unwrap();
    let done = job(&b, id).await;
    eq_job!(redis, id, done.status, Status::Completed);
    assert_eq!(done.result, Some(json!({"configs": [], "count": 0})));
    assert_eq!(done.attempt, 1);

    // What a person sees in redis-cli: plain words and RFC 3339 times.
    let hash = redis.cli(&["HGETALL", &format!("job_{id}")]);
    for field in [
        "status",
        "COMPLETED",
        "executor",
        "solver",
        "attempt",
        "worker",
        "w1",
        "created",
        "started",
        "finished",
        "lease_token",
    ] {
        assert!(hash.contains(field), "HGETALL lacks {field}:\n{hash}");
    }
    let finished = done.field("finished").unwrap();
    assert!(
        humantime::parse_rfc3339(finished).is_ok(),
        "finished {finished:?} is not RFC 3339"
    );
    let age = std::time::SystemTime::now()
        .duration_since(humantime::parse_rfc3339(finished).unwrap())
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(5),
        "finished is {age:?} ago: clock or formatting is off"
    );
    assert_eq!(redis.cli(&["ZCARD", "leases"]).trim(), "0");
}

#[tokio::test]
async fn stop_pending_cancels_at_once_and_it_is_never_claimed() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("cmd", json!(null))).await.unwrap();
    assert_eq!(b.stop(id).await.unwrap(), Status::Canceled);
    assert!(b.claim("cmd", "w", 10).await.unwrap().is_empty());
    eq_job!(redis, id, job(&b, id).await.status, Status::Canceled);
    assert_eq!(redis.cli(&["LLEN", "queue:cmd"]).trim(), "0");
}

#[tokio::test]
async fn claim_skips_an_id_whose_job_is_no_longer_pending() {
    // A stale id on the queue (e.g. put back by hand) must not hand out a CANCELED job.
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("cmd", json!(1))).await.unwrap();
    b.stop(id).await.unwrap();
    redis.cli(&["RPUSH", "queue:cmd", &id.to_string()]);
    assert!(b.claim("cmd", "w", 10).await.unwrap().is_empty());
    eq_job!(redis, id, job(&b, id).await.status, Status::Canceled);
}

#[tokio::test]
async fn stop_running_asks_the_executor_which_then_cancels() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&stand_job(&b, &redis, "spark")).await.unwrap();
    let c = b.claim("spark", "w", 1).await.unwrap().remove(0);
    assert_eq!(b.stop(id).await.unwrap(), Status::Running);
    assert_eq!(
        b.stop(id).await.unwrap(),
        Status::Running,
        "a second stop is a no-op"
    );
    assert_eq!(
        redis.cli(&["LRANGE", "stop", "0", "-1"]).trim(),
        id.to_string(),
        "one entry on Stand's stop list (the job was announced on start)"
    );
    assert!(job(&b, id).await.field("stop_requested").is_some());
    assert!(
        b.heartbeat(id, &c.token).await.unwrap(),
        "heartbeat tells the executor to stop"
    );
    assert!(
        b.progress(id, &c.token, &json!(1)).await.unwrap(),
        "progress tells it too"
    );
    b.cancel(id, &c.token).await.unwrap();
    let j = job(&b, id).await;
    eq_job!(redis, id, j.status, Status::Canceled);
    assert!(j.field("stop_requested").is_none());
}

#[tokio::test]
async fn stop_list_is_capped_when_nobody_reads_it() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.stop_list_cap = 5);
    for _ in 0..12 {
        let (id, _) = b.submit(&stand_job(&b, &redis, "x")).await.unwrap();
        b.claim("x", "w", 1).await.unwrap();
        b.stop(id).await.unwrap();
    }
    assert_eq!(redis.cli(&["LLEN", "stop"]).trim(), "5");
    assert_eq!(
        redis.cli(&["LINDEX", "stop", "-1"]).trim(),
        "12",
        "newest kept, in order"
    );
}

#[tokio::test]
async fn lock_freezes_stop_and_retry_until_unlock() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    b.lock(id, "ana @ lab-pc", false).await.unwrap();
    match b.stop(id).await {
        Err(Error::Locked {
            holder: Some(h), ..
        }) => assert!(h.contains("ana @ lab-pc"), "{h}"),
        other => panic!("stop of a locked job: {other:?}"),
    }
    assert!(matches!(
        b.lock(id, "bob", false).await,
        Err(Error::Locked { .. })
    ));
    b.lock(id, "bob", true).await.unwrap();
    assert_eq!(job(&b, id).await.field("locked"), Some("bob"));
    b.unlock(id).await.unwrap();
    b.unlock(id).await.unwrap();
    assert_eq!(b.stop(id).await.unwrap(), Status::Canceled);
}

#[tokio::test]
async fn retry_requeues_a_failed_job_with_fresh_attempts() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.result_ttl = Duration::from_secs(60));
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(
        b.fail(id, &c.token, "bad input", false).await.unwrap(),
        Status::Failed
    );
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("job_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "a failed job expires");
    assert_eq!(b.retry(id).await.unwrap(), Status::Pending);
    let j = job(&b, id).await;
    eq_job!(
        redis,
        id,
        (j.status, j.attempt, j.error.clone()),
        (Status::Pending, 0, None)
    );
    assert_eq!(
        redis.cli(&["PTTL", &format!("job_{id}")]).trim(),
        "-1",
        "a retried job no longer expires"
    );
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 1);
}

#[tokio::test]
async fn release_hands_a_job_back_to_the_head_without_counting_the_attempt() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (first, _) = b.submit(&b.new_job("x", json!(1))).await.unwrap();
    let (second, _) = b.submit(&b.new_job("x", json!(2))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(c.id, first);
    assert_eq!(b.release(first, &c.token).await.unwrap(), Status::Pending);
    let j = job(&b, first).await;
    eq_job!(redis, first, (j.status, j.attempt), (Status::Pending, 0));
    let again = b.claim("x", "w", 2).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(again[0].attempt, 1);
}

#[tokio::test]
async fn timeout_ends_as_timed_out_when_no_attempts_are_left() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.max_attempts = 1);
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(
        b.timeout(id, &c.token, "timed out after 90s")
            .await
            .unwrap(),
        Status::TimedOut
    );
    let j = job(&b, id).await;
    eq_job!(redis, id, j.status, Status::TimedOut);
    assert_eq!(j.error.as_deref(), Some("timed out after 90s"));
}

#[tokio::test]
async fn an_idle_claimer_blocks_and_wakes_on_submit() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut blocking = b.blocking_connection().await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            let woke = b
                .wait_for_work(&mut blocking, "x", Duration::from_secs(5))
                .await
                .unwrap();
            (
                woke,
                t0.elapsed(),
                b.claim("x", "w", 10).await.unwrap().len(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let (woke, waited, claimed) = waiter.await.unwrap();
    assert!(woke);
    assert!(
        waited < Duration::from_secs(2),
        "woke after {waited:?}, not on submit"
    );
    assert_eq!(claimed, 1);
    // Nothing piles up on the marker: many submits leave at most one entry.
    for _ in 0..50 {
        b.submit(&b.new_job("x", json!(0))).await.unwrap();
    }
    assert_eq!(redis.cli(&["LLEN", "wake:x"]).trim(), "1");
}

#[tokio::test]
async fn extra_fields_are_stored_and_unknown_ones_refused() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("spark", json!({}));
    nj.extra.push(("backoff_mode".into(), "linear".into()));
    let (id, _) = b.submit(&nj).await.unwrap();
    assert_eq!(job(&b, id).await.field("backoff_mode"), Some("linear"));
    // Workflow membership is the workflow script's to write, never a submit's.
    let mut joins = b.new_job("spark", json!({}));
    joins.extra.push(("workflow".into(), "2".into()));
    assert!(matches!(b.submit(&joins).await, Err(Error::Invalid(_))));
    nj.extra.push(("status".into(), "COMPLETED".into()));
    assert!(matches!(b.submit(&nj).await, Err(Error::Invalid(_))));
    nj.extra.clear();
    nj.executor = "bad name".into();
    assert!(matches!(b.submit(&nj).await, Err(Error::Invalid(_))));
    assert_eq!(
        redis.cli(&["GET", "job_seq"]).trim(),
        "1",
        "refused submits take no id"
    );
}

/// A job of `kind` on Stand's cluster 1 (stored here): one Stand hears of on `start`, so its
/// stop goes on `stop`.
fn stand_job(b: &broker::Broker, redis: &TestRedis, kind: &str) -> broker::NewJob {
    redis.cli(&["HSET", "cluster_1", "enabled", "true"]);
    let mut nj = b.new_job(kind, json!({}));
    nj.extra = vec![("cluster".into(), "1".into())];
    nj
}
