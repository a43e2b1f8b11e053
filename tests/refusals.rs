use broker::{Error, JobId, Status};
use serde_json::json;

use crate::harness::{broker, TestRedis};

fn illegal(r: Result<impl std::fmt::Debug, Error>, expect: Status) {
    match r {
        Err(Error::IllegalTransition { status, .. }) => assert_eq!(status, expect),
        other => panic!("expected an illegal move from {expect}, got {other:?}"),
    }
}

#[tokio::test]
async fn every_move_on_a_missing_job_is_not_found() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let id = JobId(42);
    assert!(matches!(b.get(id).await, Err(Error::NotFound(_))));
    assert!(matches!(b.stop(id).await, Err(Error::NotFound(_))));
    assert!(matches!(
        b.lock(id, "x", false).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(b.unlock(id).await, Err(Error::NotFound(_))));
    assert!(matches!(b.retry(id).await, Err(Error::NotFound(_))));
    assert!(matches!(
        b.heartbeat(id, "t").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        b.progress(id, "t", &json!(1)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        b.complete(id, "t", &json!(1)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        b.fail(id, "t", "e", true).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        b.timeout(id, "t", "e").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(b.cancel(id, "t").await, Err(Error::NotFound(_))));
    assert!(matches!(b.release(id, "t").await, Err(Error::NotFound(_))));
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0", "refusals write nothing");
}

#[tokio::test]
async fn finished_jobs_refuse_stop_and_executor_calls() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.complete(id, &c.token, &json!("ok")).await.unwrap();
    let before = redis.cli(&["HGETALL", &format!("job_{id}")]);

    illegal(b.stop(id).await, Status::Completed);
    assert_eq!(
        b.stop(id).await.unwrap_err().to_string(),
        format!("job {id} is COMPLETED; cannot stop")
    );
    illegal(b.retry(id).await, Status::Completed);
    illegal(
        b.complete(id, &c.token, &json!("again")).await,
        Status::Completed,
    );
    illegal(b.fail(id, &c.token, "late", true).await, Status::Completed);
    illegal(b.timeout(id, &c.token, "late").await, Status::Completed);
    illegal(b.heartbeat(id, &c.token).await, Status::Completed);
    illegal(b.progress(id, &c.token, &json!(1)).await, Status::Completed);
    illegal(b.cancel(id, &c.token).await, Status::Completed);
    illegal(b.release(id, &c.token).await, Status::Completed);
    assert_eq!(
        redis.cli(&["HGETALL", &format!("job_{id}")]),
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn executor_calls_on_a_pending_job_are_refused() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    illegal(b.complete(id, "t", &json!(1)).await, Status::Pending);
    illegal(b.heartbeat(id, "t").await, Status::Pending);
    illegal(b.retry(id).await, Status::Pending);
}

#[tokio::test]
async fn canceled_and_failed_jobs_cannot_be_stopped_again() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    b.stop(id).await.unwrap();
    illegal(b.stop(id).await, Status::Canceled);
    let (id2, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.fail(id2, &c.token, "boom", false).await.unwrap();
    illegal(b.stop(id2).await, Status::Failed);
}
