use std::time::Duration;

use serde_json::json;

use crate::harness::{broker, TestRedis};

#[tokio::test]
async fn a_job_leaves_its_story_in_the_event_stream() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.progress(id, &c.token, &json!({"count": 1}))
        .await
        .unwrap();
    b.complete(id, &c.token, &json!(1)).await.unwrap();

    b.submit(&b.new_job("other", json!(0))).await.unwrap();
    let mut conn = b.blocking_connection().await.unwrap();
    let (evs, _) = b.events(&mut conn, Some(id), "0", 100, None).await.unwrap();
    let story: Vec<_> = evs
        .iter()
        .map(|e| (e.get("event").unwrap_or(""), e.get("status").unwrap_or("")))
        .collect();
    assert_eq!(
        story,
        vec![
            ("submitted", "PENDING"),
            ("claimed", "RUNNING"),
            ("progress", "RUNNING"),
            ("completed", "COMPLETED")
        ]
    );
    assert_eq!(evs[2].get("progress"), Some("{\"count\":1}"));
    assert!(evs.iter().all(|e| e.get("job") == Some(&*id.to_string())));
    assert!(evs
        .iter()
        .all(|e| humantime::parse_rfc3339(e.get("at").unwrap_or("")).is_ok()));
    let (all, next) = b.events(&mut conn, None, "0", 100, None).await.unwrap();
    assert_eq!(all.len(), 5, "the other job's submit is there too");
    assert_eq!(next, all[4].id);
    let (none, same) = b.events(&mut conn, None, &next, 100, None).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(same, next);
}

#[tokio::test]
async fn a_blocked_reader_sees_new_events_as_they_happen() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    b.submit(&b.new_job("x", json!("before"))).await.unwrap();
    let mut conn = b.blocking_connection().await.unwrap();
    let reader = {
        let b = b.clone();
        let tail = b.events_tail().await.unwrap();
        tokio::spawn(async move {
            let wait = Some(Duration::from_secs(5));
            b.events(&mut conn, None, &tail, 10, wait).await.unwrap().0
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let evs = reader.await.unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].get("event"), Some("submitted"));
}

#[tokio::test]
async fn the_global_stream_is_capped() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let jobs: Vec<_> = (0..1000).map(|i| b.new_job("x", json!(i))).collect();
    let mut conn = b.conn().await.unwrap();
    for _ in 0..15 {
        b.scripts().submit_many(&mut *conn, &jobs).await.unwrap();
    }
    let len: u64 = redis.cli(&["XLEN", "events"]).trim().parse().unwrap();
    assert!((10_000..15_000).contains(&len), "XLEN events = {len}");
}
