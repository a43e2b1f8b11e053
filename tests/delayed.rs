use std::time::{Duration, SystemTime};

use broker::Status;
use serde_json::json;

use crate::eq_job;
use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn run_at_in_the_future_waits_in_delayed_until_promoted() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("x", json!(0));
    nj.run_at = Some(SystemTime::now() + Duration::from_millis(300));
    let (id, status) = b.submit(&nj).await.unwrap();
    assert_eq!(status, Status::Scheduled);
    assert!(job(&b, id).await.field("run_at").is_some());
    assert!(
        b.claim("x", "w", 1).await.unwrap().is_empty(),
        "not before run_at"
    );
    assert_eq!(b.tick().await.unwrap().1, 0, "not due yet");

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(b.tick().await.unwrap().1, 1);
    eq_job!(redis, id, job(&b, id).await.status, Status::Pending);
    assert_eq!(b.claim("x", "w", 1).await.unwrap()[0].id, id);
}

#[tokio::test]
async fn run_at_in_the_past_runs_now() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("x", json!(0));
    nj.run_at = Some(SystemTime::now() - Duration::from_secs(60));
    assert_eq!(b.submit(&nj).await.unwrap().1, Status::Pending);
}

#[tokio::test]
async fn stopping_a_scheduled_job_removes_it_from_delayed() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("x", json!(0));
    nj.run_at = Some(SystemTime::now() + Duration::from_secs(60));
    let (id, _) = b.submit(&nj).await.unwrap();
    assert_eq!(b.stop(id).await.unwrap(), Status::Canceled);
    assert_eq!(redis.cli(&["ZCARD", "delayed"]).trim(), "0");
}

#[tokio::test]
async fn failures_retry_with_exponential_backoff_then_fail() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.max_attempts = 3;
        c.backoff = Duration::from_millis(200);
    });
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();

    // Attempt 1 fails: retry after 200 ms.
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(
        b.fail(id, &c.token, "flaky", true).await.unwrap(),
        Status::Scheduled
    );
    let due1: f64 = redis
        .cli(&["ZSCORE", "delayed", &id.to_string()])
        .trim()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.tick().await.unwrap().1, 0, "not before the backoff");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(b.tick().await.unwrap().1, 1);

    // Attempt 2 fails: retry after 400 ms (doubled).
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 2);
    let t2 = broker::scripts::unix_ms(SystemTime::now()) as f64;
    assert_eq!(
        b.fail(id, &c.token, "flaky", true).await.unwrap(),
        Status::Scheduled
    );
    let due2: f64 = redis
        .cli(&["ZSCORE", "delayed", &id.to_string()])
        .trim()
        .parse()
        .unwrap();
    assert!(
        due2 - t2 >= 350.0 && due2 - t2 <= 600.0,
        "second backoff {} ms",
        due2 - t2
    );
    assert!(due2 > due1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    b.tick().await.unwrap();

    // Attempt 3 fails: no attempts left.
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 3);
    assert_eq!(
        b.fail(id, &c.token, "flaky", true).await.unwrap(),
        Status::Failed
    );
    let j = job(&b, id).await;
    eq_job!(
        redis,
        id,
        (j.status, j.error.as_deref()),
        (Status::Failed, Some("flaky"))
    );
}

#[tokio::test]
async fn a_non_retryable_error_fails_at_once() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.max_attempts = 5);
    let (id, _) = b.submit(&b.new_job("solver", json!(0))).await.unwrap();
    let c = b.claim("solver", "w", 1).await.unwrap().remove(0);
    assert_eq!(
        b.fail(id, &c.token, "Input contains no monomers.", false)
            .await
            .unwrap(),
        Status::Failed
    );
}

#[tokio::test]
async fn zero_backoff_retries_straight_onto_the_queue() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.backoff = Duration::ZERO);
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(
        b.fail(id, &c.token, "again", true).await.unwrap(),
        Status::Pending
    );
    assert_eq!(b.claim("x", "w", 1).await.unwrap()[0].attempt, 2);
}

#[tokio::test]
async fn linear_backoff_waits_backoff_times_the_attempt() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.max_attempts = 4;
        c.backoff = Duration::from_millis(100);
    });
    let mut nj = b.new_job("x", json!(0));
    nj.extra.push(("backoff_mode".into(), "linear".into()));
    let (id, _) = b.submit(&nj).await.unwrap();
    let mut delays = Vec::new();
    for _ in 0..3 {
        let c = loop {
            b.tick().await.unwrap();
            if let Some(c) = b.claim("x", "w", 1).await.unwrap().pop() {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let t = broker::scripts::unix_ms(SystemTime::now()) as f64;
        assert_eq!(
            b.fail(id, &c.token, "again", true).await.unwrap(),
            Status::Scheduled
        );
        let due: f64 = redis
            .cli(&["ZSCORE", "delayed", &id.to_string()])
            .trim()
            .parse()
            .unwrap();
        delays.push(((due - t) / 100.0).round() as i64);
    }
    assert_eq!(
        delays,
        [1, 2, 3],
        "linear: 100, 200, 300 ms (exponential would be 100, 200, 400)"
    );
}
