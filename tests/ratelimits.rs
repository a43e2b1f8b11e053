use std::collections::HashMap;
use std::time::{Duration, Instant};

use broker::job::Rate;
use broker::{Broker, JobId, Status};
use reqwest::Method;
use serde_json::json;

use crate::harness::{broker, TestApi, TestRedis};

fn rate(text: &str) -> Rate {
    text.parse().unwrap()
}

/// A job of kind `x` with a rate key.
fn keyed(b: &Broker, key: &str, limit: &str) -> broker::NewJob {
    let mut nj = b.new_job("x", json!(key));
    nj.options(broker::job::SubmitOptions {
        rate_key: Some(key.into()),
        rate_limit: Some(rate(limit)),
        ..Default::default()
    });
    nj
}

fn ids(c: &broker::Claims) -> Vec<JobId> {
    c.jobs.iter().map(|j| j.id).collect()
}

/// Per key: a key over its limit holds its jobs back, in order, without holding back
/// another key's job behind them; the claim tells when the window opens, and a claim then
/// starts the held jobs oldest first. Per kind: no more starts than the window has room
/// for, the rest stay queued with no wake marker (idle claimers would spin on it).
#[tokio::test]
async fn rate_limits_hold_jobs_back_in_order_and_say_when_they_may_start() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut a = Vec::new();
    for _ in 0..4 {
        a.push(b.submit(&keyed(&b, "a", "2/400ms")).await.unwrap().0);
    }
    let (b1, _) = b.submit(&keyed(&b, "b", "2/400ms")).await.unwrap();
    let first = b.claims("x", "w", 10).await.unwrap();
    assert_eq!(ids(&first), [a[0], a[1], b1]);
    let wait = first.throttled_for.expect("a key holds jobs back");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(400),
        "{wait:?}"
    );
    assert_eq!(
        redis.cli(&["LRANGE", "throttled:x::a", "0", "-1"]).trim(),
        format!("{}\n{}", a[2], a[3])
    );
    let held = b.get(a[2]).await.unwrap();
    assert_eq!(held.status, Status::Pending);
    assert_eq!(held.field("waiting"), Some("rate"));
    assert!(b.claims("x", "w", 10).await.unwrap().jobs.is_empty());
    // A newer job of the key waits behind the held ones even once the window opens.
    let late = b.submit(&keyed(&b, "a", "2/400ms")).await.unwrap().0;
    tokio::time::sleep(wait).await;
    let second = b.claims("x", "w", 10).await.unwrap();
    assert_eq!(ids(&second), [a[2], a[3]]);
    assert!(b.get(a[2]).await.unwrap().field("waiting").is_none());
    tokio::time::sleep(second.throttled_for.expect("the late job waits")).await;
    assert_eq!(ids(&b.claims("x", "w", 10).await.unwrap()), [late]);

    // The kind's own limit.
    b.set_rate_limit("y", Some(rate("3/300ms"))).await.unwrap();
    let mut y = Vec::new();
    for i in 0..5 {
        y.push(b.submit(&b.new_job("y", json!(i))).await.unwrap().0);
    }
    redis.cli(&["DEL", "wake:y"]); // armed by the first submit
    let first = b.claims("y", "w", 10).await.unwrap();
    assert_eq!(ids(&first), y[..3]);
    assert_eq!(
        redis.cli(&["LLEN", "wake:y"]).trim(),
        "0",
        "no marker for held jobs"
    );
    let limits = b.rate_limits().await.unwrap();
    assert_eq!(limits[0].executor, "y");
    assert_eq!(limits[0].limit, "3/300ms");
    assert_eq!(limits[0].started, 3);
    tokio::time::sleep(first.throttled_for.expect("the kind is at its limit")).await;
    assert_eq!(ids(&b.claims("y", "w", 10).await.unwrap()), y[3..]);
    // Lifting the limit: the next claim takes what it finds.
    assert!(b.set_rate_limit("y", None).await.unwrap());
    for i in 0..5 {
        b.submit(&b.new_job("y", json!(i))).await.unwrap();
    }
    assert_eq!(b.claims("y", "w", 10).await.unwrap().jobs.len(), 5);

    // Bad limits are refused before anything is stored.
    for bad in ["0/1s", "5", "5/0s", "5/2days", "100001/1s", "x/1s"] {
        assert!(bad.parse::<Rate>().is_err(), "{bad}");
    }
    let mut nj = b.new_job("x", json!(0));
    nj.extra.push(("rate_key".into(), "k".into()));
    assert!(matches!(
        b.submit(&nj).await,
        Err(broker::Error::Invalid(_))
    ));
    nj.extra.push(("rate_limit".into(), "5/1s".into()));
    assert!(
        matches!(b.submit(&nj).await, Err(broker::Error::Invalid(m)) if m.contains("N/<ms>ms"))
    );
}

/// The race: 8 claimers over 200 jobs of 3 rate keys (4 per 100 ms each; 3 in 5 jobs
/// are a's) under a kind limit of 10 per 100 ms. Read back from the jobs' start times: no window of 100 ms ever
/// holds more starts than a limit allows, each key's jobs start in submit order, and every
/// job starts, at about the pace the limits allow (claimers sleep until the window opens,
/// they do not poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claimers_never_start_more_than_the_rate_allows_in_any_window() {
    const JOBS: usize = 200;
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.pool_size = 10);
    b.set_rate_limit("x", Some(rate("10/100ms"))).await.unwrap();
    let mut key_of = HashMap::new();
    for i in 0..JOBS {
        // Three in five jobs are a's: both the kind's and a's limit bind at once.
        let key = ["a", "a", "a", "b", "c"][i % 5];
        let (id, _) = b.submit(&keyed(&b, key, "4/100ms")).await.unwrap();
        key_of.insert(id, key);
    }
    let t0 = Instant::now();
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let b = b.clone();
            tokio::spawn(async move {
                let mut conn = b.conn().await.unwrap();
                let mut n = 0;
                loop {
                    let got = b.claims("x", &format!("w{w}"), 3).await.unwrap();
                    n += got.jobs.len();
                    let done: Vec<_> = got
                        .jobs
                        .iter()
                        .map(|c| (c.id, c.token.as_str(), &[0xc0u8][..]))
                        .collect();
                    for r in b.scripts().complete_many(&mut *conn, &done).await.unwrap() {
                        r.unwrap();
                    }
                    match (got.jobs.is_empty(), got.throttled_for) {
                        (true, Some(wait)) => tokio::time::sleep(wait).await,
                        (true, None) => return n,
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let mut started = 0;
    for c in claimers {
        started += c.await.unwrap();
    }
    let elapsed = t0.elapsed();
    assert_eq!(started, JOBS);

    let mut starts: Vec<(u64, JobId)> = Vec::new();
    for id in key_of.keys() {
        let j = b.get(*id).await.unwrap();
        assert_eq!(j.status, Status::Completed);
        assert_eq!(j.attempt, 1);
        let at = humantime::parse_rfc3339(j.field("started").unwrap()).unwrap();
        let ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        starts.push((ms, *id));
    }
    starts.sort();
    let most_in_window = |times: &[u64]| {
        (0..times.len())
            .map(|i| times[..=i].iter().filter(|t| **t + 100 > times[i]).count())
            .max()
            .unwrap_or(0)
    };
    let all: Vec<u64> = starts.iter().map(|s| s.0).collect();
    assert!(most_in_window(&all) <= 10, "kind: {}", most_in_window(&all));
    for key in ["a", "b", "c"] {
        let mine: Vec<&(u64, JobId)> = starts.iter().filter(|s| key_of[&s.1] == key).collect();
        let times: Vec<u64> = mine.iter().map(|s| s.0).collect();
        assert!(
            most_in_window(&times) <= 4,
            "key {key}: {}",
            most_in_window(&times)
        );
        // Start times are ms: within one ms, order by id.
        let order: Vec<JobId> = mine.iter().map(|s| s.1).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "key {key} started out of order");
    }
    // a's 120 starts at 4 per 100 ms take at least 2.9 s; claimers that slept until the
    // window opened finish well within 3x that (polling once a second would not).
    assert!(elapsed >= Duration::from_millis(2900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(9), "{elapsed:?}");
    for key in ["throttled:x::a", "throttle:x", "queue:x"] {
        assert_eq!(redis.cli(&["EXISTS", key]).trim(), "0", "{key} left behind");
    }
}

/// Over HTTP: a job shows its rate key, limit and what it waits on; a key is its owner's
/// own; admins set a kind's limit (clients may read, not set it); bad limits are 400s
/// naming the field; /metrics counts held jobs; only admins list executors.
#[tokio::test]
async fn rate_limits_over_http_are_admin_set_visible_and_validated() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let ana = api.key("ana", broker::apikeys::Role::Client).await;
    let admin = api.key("ops", broker::apikeys::Role::Admin).await;
    let post = Method::POST;
    let job = json!({"executor": "x", "rate_key": "acct-7", "rate_limit": "1/1m"});
    let (code, _) = api
        .call(post.clone(), "/jobs", Some(&ana), Some(job.clone()))
        .await;
    assert_eq!(code, 201);
    let (_, second) = api
        .call(post.clone(), "/jobs", Some(&ana), Some(job.clone()))
        .await;
    assert_eq!(api.broker.claim("x", "w", 10).await.unwrap().len(), 1);
    // Keys are the owner's own: another owner's job with the same key has its own window.
    let (_, theirs) = api
        .call(post.clone(), "/jobs", Some(&admin), Some(job))
        .await;
    let claimed = api.broker.claim("x", "w", 10).await.unwrap();
    let theirs = theirs["id"].as_u64().unwrap();
    assert_eq!(claimed.iter().map(|c| c.id.0).collect::<Vec<_>>(), [theirs]);
    let path = format!("/jobs/{}", second["id"]);
    let (_, job) = api.call(Method::GET, &path, Some(&ana), None).await;
    assert_eq!(job["rate_key"], "acct-7");
    assert_eq!(job["rate_limit"], "1/60000ms");
    assert_eq!(job["waiting"], "rate");
    let metrics = api.text("/metrics").await;
    assert!(
        metrics.contains("sluice_jobs_waiting{executor=\"x\",on=\"rate\"} 1"),
        "{metrics}"
    );
    for (body, field) in [
        (
            json!({"executor": "x", "rate_key": "k", "rate_limit": "often"}),
            "rate_limit",
        ),
        (
            json!({"executor": "x", "rate_key": "k"}),
            "rate_key and rate_limit",
        ),
        (
            json!({"executor": "x", "rate_key": "", "rate_limit": "1/1s"}),
            "rate_key",
        ),
    ] {
        let (code, err) = api
            .call(post.clone(), "/jobs", Some(&ana), Some(body))
            .await;
        assert_eq!(code, 400);
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{err}");
    }

    let limit = Some(json!({"limit": "5/1s"}));
    let (code, _) = api
        .call(Method::PUT, "/rate-limits/x", Some(&ana), limit.clone())
        .await;
    assert_eq!(code, 403, "a client sets no limit");
    assert_eq!(
        api.call(Method::DELETE, "/rate-limits/x", Some(&ana), None)
            .await
            .0,
        403
    );
    let (code, _) = api
        .call(Method::PUT, "/rate-limits/x", Some(&admin), limit)
        .await;
    assert_eq!(code, 200);
    let bad = Some(json!({"limit": "5/0s"}));
    let (code, err) = api
        .call(Method::PUT, "/rate-limits/x", Some(&admin), bad)
        .await;
    assert_eq!(code, 400, "{err}");
    let bad_kind = Some(json!({"limit": "5/1s"}));
    let (code, _) = api
        .call(Method::PUT, "/rate-limits/a:b", Some(&admin), bad_kind)
        .await;
    assert_eq!(
        code, 400,
        "a kind name is checked before it becomes a field"
    );
    api.broker
        .submit(&api.broker.new_job("x", json!(1)))
        .await
        .unwrap();
    assert_eq!(api.broker.claim("x", "w", 10).await.unwrap().len(), 1);
    let (code, limits) = api
        .call(Method::GET, "/rate-limits", Some(&ana), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(limits["rate_limits"][0]["limit"], "5/1s");
    assert_eq!(limits["rate_limits"][0]["started"], 1);
    assert_eq!(
        api.call(Method::GET, "/rate-limits", None, None).await.0,
        401
    );
    // Which executors run is the admins' to see.
    let (code, _) = api.call(Method::GET, "/executors", Some(&ana), None).await;
    assert_eq!(code, 403);
    let (code, live) = api
        .call(Method::GET, "/executors", Some(&admin), None)
        .await;
    assert_eq!((code, live), (200, json!({"executors": []})));
    let del = |key| api.call(Method::DELETE, "/rate-limits/x", Some(key), None);
    assert_eq!(del(&admin).await.0, 200);
    assert_eq!(del(&admin).await.0, 404);
}
