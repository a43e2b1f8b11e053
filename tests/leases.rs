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

// See: issue 14. An executor's death is not the job's failure: a job with one attempt
// runs again after its lease expires, at the head of its queue, until it has lost more
// than max_lost_leases runs (a poison job), and then fails saying so.
#[tokio::test]
async fn a_lost_lease_runs_the_job_again_without_spending_an_attempt() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.lease = Duration::from_millis(50);
        c.max_attempts = 1;
        c.max_lost_leases = 2;
    });
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let (other, _) = b.submit(&b.new_job("x", json!(1))).await.unwrap();
    for (run, worker) in ["dead-1", "dead-2"].iter().enumerate() {
        let c = b.claim("x", worker, 1).await.unwrap().remove(0);
        assert_eq!(
            (c.id, c.attempt),
            (id, 1),
            "the lost job goes first, still attempt 1"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(b.tick().await.unwrap().0.requeued, 1);
        let j = job(&b, id).await;
        eq_job!(
            redis,
            id,
            (j.status, j.attempt, j.lost),
            (Status::Pending, 0, run as u32 + 1)
        );
        assert!(j
            .error
            .unwrap_or_default()
            .contains(&format!("lease expired on attempt 1 (worker {worker})")));
    }
    b.claim("x", "dead-3", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(b.tick().await.unwrap().0.failed, 1);
    let j = job(&b, id).await;
    eq_job!(
        redis,
        id,
        (j.status, j.attempt, j.lost),
        (Status::Failed, 1, 3)
    );
    assert!(j
        .error
        .unwrap_or_default()
        .contains("lost its executor 3 times, more than max_lost_leases (2)"));
    assert_eq!(redis.cli(&["ZCARD", "leases"]).trim(), "0");
    // A lost run followed by a success: COMPLETED on its first attempt, lost once.
    let c = b.claim("x", "alive", 1).await.unwrap().remove(0);
    assert_eq!(c.id, other);
    let j = job(&b, other).await;
    assert_eq!((j.attempt, j.lost), (1, 0));
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
