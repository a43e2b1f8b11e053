use std::time::Duration;

use broker::Status;
use serde_json::json;

use crate::eq_job;
use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn a_live_lease_is_not_reaped_and_heartbeats_keep_it_alive() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.lease = Duration::from_millis(300));
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        b.heartbeat(id, &c.token).await.unwrap();
        let (r, _) = b.tick().await.unwrap();
        assert_eq!(r, Default::default(), "a heartbeating job was reaped");
    }
    eq_job!(redis, id, job(&b, id).await.status, Status::Running);
}

#[tokio::test]
async fn expired_lease_is_requeued_then_failed_when_attempts_are_spent() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.lease = Duration::from_millis(50);
        c.max_attempts = 2;
        c.backoff = Duration::ZERO;
    });
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    b.claim("x", "dead-1", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.tick().await.unwrap().0.requeued, 1);
    let j = job(&b, id).await;
    eq_job!(redis, id, j.status, Status::Pending);
    assert!(j
        .error
        .unwrap_or_default()
        .contains("lease expired on attempt 1 (worker dead-1)"));

    let c = b.claim("x", "dead-2", 1).await.unwrap().remove(0);
    assert_eq!(c.attempt, 2);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.tick().await.unwrap().0.failed, 1);
    let j = job(&b, id).await;
    eq_job!(redis, id, (j.status, j.attempt), (Status::Failed, 2));
    assert_eq!(redis.cli(&["ZCARD", "leases"]).trim(), "0");
}

#[tokio::test]
async fn expired_lease_of_a_stopped_job_cancels_it() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.lease = Duration::from_millis(50));
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    b.claim("x", "w", 1).await.unwrap();
    b.stop(id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.tick().await.unwrap().0.canceled, 1);
    eq_job!(redis, id, job(&b, id).await.status, Status::Canceled);
}

#[tokio::test]
async fn many_reapers_at_once_handle_each_expired_lease_once() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.lease = Duration::from_millis(20);
        c.backoff = Duration::ZERO;
    });
    for _ in 0..300 {
        b.submit(&b.new_job("x", json!(0))).await.unwrap();
    }
    assert_eq!(b.claim("x", "w", 1000).await.unwrap().len(), 300);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.tick().await.unwrap().0.requeued })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 300);
    assert_eq!(redis.cli(&["LLEN", "queue:x"]).trim(), "300");
}
