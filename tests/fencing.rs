use std::time::Duration;

use broker::{Error, Status};
use serde_json::json;

use crate::eq_job;
use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn stale_token_cannot_complete_fail_or_heartbeat() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| {
        c.lease = Duration::from_millis(100);
        c.backoff = Duration::ZERO;
    });
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let old = b.claim("x", "slow", 1).await.unwrap().remove(0);

    // The slow executor misses its lease; the reaper hands the job to another.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (reaped, _) = b.tick().await.unwrap();
    assert_eq!(reaped.requeued, 1);
    let new = b.claim("x", "fast", 1).await.unwrap().remove(0);
    assert_eq!(
        (new.id, new.attempt),
        (id, 1),
        "a lost run spends no attempt"
    );
    assert_ne!(new.token, old.token);

    let before = redis.cli(&["HGETALL", &format!("job_{id}")]);
    for r in [
        b.complete(id, &old.token, &json!("stale"))
            .await
            .map(|_| ()),
        b.fail(id, &old.token, "stale", true).await.map(|_| ()),
        b.timeout(id, &old.token, "stale").await.map(|_| ()),
        b.heartbeat(id, &old.token).await.map(|_| ()),
        b.progress(id, &old.token, &json!("stale"))
            .await
            .map(|_| ()),
        b.cancel(id, &old.token).await.map(|_| ()),
        b.release(id, &old.token).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(Error::StaleLease(_))), "{r:?}");
    }
    assert_eq!(
        redis.cli(&["HGETALL", &format!("job_{id}")]),
        before,
        "the stale executor changed nothing"
    );

    b.complete(id, &new.token, &json!("fresh")).await.unwrap();
    let j = job(&b, id).await;
    eq_job!(
        redis,
        id,
        (j.status, j.result.clone()),
        (Status::Completed, Some(json!("fresh")))
    );
    assert_eq!(j.field("worker"), Some("fast"));
}
