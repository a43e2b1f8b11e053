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

#[tokio::test]
async fn the_pool_reconnects_and_reloads_scripts_after_a_redis_restart() {
    let mut redis = TestRedis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(1))).await.unwrap();
    redis.restart();
    // The first call on a connection that died may fail; it must be an "unavailable" error,
    // and the pool must heal by itself without a new Broker.
    let mut got = None;
    for _ in 0..20 {
        match b.claim("x", "w", 1).await {
            Ok(c) => {
                got = Some(c);
                break;
            }
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let c = got.expect("the broker never recovered").remove(0);
    assert_eq!(c.id, id, "the job survived the restart through the AOF");
    b.complete(id, &c.token, &json!(2)).await.unwrap();
    assert_eq!(job(&b, id).await.status, Status::Completed);
}
