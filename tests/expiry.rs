use std::time::Duration;

use broker::{Error, Status};
use serde_json::json;

use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn a_finished_job_expires_after_result_ttl() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.result_ttl = Duration::from_millis(300));
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.complete(id, &c.token, &json!(1)).await.unwrap();
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("job_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 300, "PTTL {ttl}");
    assert_eq!(job(&b, id).await.status, Status::Completed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(b.get(id).await, Err(Error::NotFound(_))));
    let mut keys: Vec<String> = redis
        .cli(&["KEYS", "*"])
        .lines()
        .map(str::to_string)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["events", "job_seq", "stats", "wake:x"],
        "nothing of the job is left"
    );
}

#[tokio::test]
async fn result_ttl_is_per_job_and_running_jobs_never_expire() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("x", json!(0));
    nj.result_ttl = Duration::from_secs(3600);
    let (id, _) = b.submit(&nj).await.unwrap();
    assert_eq!(redis.cli(&["PTTL", &format!("job_{id}")]).trim(), "-1");
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(redis.cli(&["PTTL", &format!("job_{id}")]).trim(), "-1");
    b.complete(id, &c.token, &json!(1)).await.unwrap();
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("job_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 3_590_000, "PTTL {ttl}");
}
