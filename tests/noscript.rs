use broker::Status;
use serde_json::json;

use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn every_path_recovers_after_script_flush() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    redis.cli(&["SCRIPT", "FLUSH"]);
    b.heartbeat(id, &c.token).await.unwrap();
    redis.cli(&["SCRIPT", "FLUSH"]);
    b.complete(id, &c.token, &json!(1)).await.unwrap();
    assert_eq!(job(&b, id).await.status, Status::Completed);

    // Pipelined batches load the script themselves first.
    redis.cli(&["SCRIPT", "FLUSH"]);
    let jobs: Vec<_> = (0..5).map(|i| b.new_job("x", json!(i))).collect();
    let mut conn = b.conn().await.unwrap();
    let ids = b.scripts().submit_many(&mut *conn, &jobs).await.unwrap();
    assert_eq!(ids.len(), 5);
    let claimed = b.claim("x", "w", 5).await.unwrap();
    redis.cli(&["SCRIPT", "FLUSH"]);
    let done: Vec<_> = claimed
        .iter()
        .map(|c| (c.id, c.token.as_str(), &[0xc0u8][..]))
        .collect();
    let outcomes = b.scripts().complete_many(&mut *conn, &done).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
}
