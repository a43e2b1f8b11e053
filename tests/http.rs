//! The native HTTP API over real HTTP against a real Redis.
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{send, TestApi, TestRedis};

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {v}"))
}

#[tokio::test]
async fn submit_read_list_stop_lock_unlock_retry_with_curl_shaped_requests() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let http = Client::new();

    let r = http.post(api.url("/jobs")).json(&json!({"executor": "solver", "params": {"monomers": [["a"]]}, "timeout": "90s", "max_attempts": 2})).send().await.unwrap();
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/jobs/1")
    );
    let (s, v) = (r.status(), r.json::<Value>().await.unwrap_or_default());
    assert_eq!(
        (s, v.clone()),
        (StatusCode::CREATED, json!({"id": 1, "status": "PENDING"}))
    );

    let (s, v) = send(http.get(api.url("/jobs/1"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["params"]["monomers"][0][0], "a");
    assert_eq!(
        (v["timeout"].as_str(), v["max_attempts"].as_u64()),
        (Some("1m 30s"), Some(2))
    );

    let (s, v) = send(http.get(api.url("/jobs?status=PENDING&executor=solver"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1));
    let (_, v) = send(http.get(api.url("/jobs?status=RUNNING"))).await;
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(0));

    let (s, v) = send(
        http.post(api.url("/jobs/1/lock"))
            .json(&json!({"holder": "ana"})),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("PENDING")));
    let (s, v) = send(http.post(api.url("/jobs/1/stop"))).await;
    assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "locked"));
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains("ana"),
        "{v}"
    );
    let (s, _) = send(http.post(api.url("/jobs/1/unlock"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = send(http.post(api.url("/jobs/1/stop"))).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("CANCELED"))
    );
    let (s, v) = send(http.post(api.url("/jobs/1/stop"))).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::CONFLICT, "illegal_transition")
    );
    assert_eq!(v["error"]["message"], "job 1 is CANCELED; cannot stop");
    let (s, v) = send(http.post(api.url("/jobs/1/retry"))).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("PENDING")));
}

#[tokio::test]
async fn every_error_is_json_with_the_right_status() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.max_content_length = 1024).await;
    let http = Client::new();
    let post = |b: &'static str| {
        http.post(api.url("/jobs"))
            .header("content-type", "application/json")
            .body(b)
    };

    let (s, v) = send(post("{not json")).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (s, v) = send(post(r#"{"params": {}}"#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("executor"),
        "names the field: {v}"
    );
    let (s, v) = send(post(r#"{"executor": "x", "max_attempts": "three"}"#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid type"),
        "{v}"
    );
    let (s, v) = send(post(r#"{"executor": "x", "timeout": "soon"}"#)).await;
    assert!(
        s == StatusCode::BAD_REQUEST
            && v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("timeout"),
        "{v}"
    );
    let (s, _) = send(post(r#"{"executor": "x", "colour": "red"}"#)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    let (s, v) = send(http.post(api.url("/jobs")).body("x".repeat(2048))).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let (s, v) = send(http.get(api.url("/jobs/99"))).await;
    assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = send(http.get(api.url("/jobs/abc"))).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (s, _) = send(http.get(api.url("/jobs?status=DONE"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(http.get(api.url("/jobs?cursor=zz"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = send(http.post(api.url("/jobs/1/explode"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(http.get(api.url("/nowhere"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = send(http.delete(api.url("/jobs"))).await;
    assert!(s.is_client_error(), "{s} {v}");
    assert_eq!(
        redis.cli(&["EXISTS", "job_seq"]).trim(),
        "0",
        "no refused request took an id"
    );
}

#[tokio::test]
async fn redis_down_is_503_fast_and_the_server_recovers() {
    let mut redis = TestRedis::start_with(&["--appendonly", "yes"]);
    let api = TestApi::start(&redis, |_| {}).await;
    let http = Client::new();
    assert_eq!(
        http.get(api.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    redis.stop();
    let t0 = std::time::Instant::now();
    let (s, v) = send(http.get(api.url("/jobs/1"))).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "503 took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        http.get(api.url("/healthz")).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    redis.restart();
    let mut ok = false;
    for _ in 0..40 {
        let r = http
            .post(api.url("/jobs"))
            .json(&json!({"executor": "x"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::CREATED {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the server never recovered after Redis came back");
}

#[tokio::test]
async fn keys_roles_and_owners() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    // Granted every executor kind: this test is about owners (attacks/ covers grants).
    let any = ["*".to_string()];
    let ana = b
        .create_key_granted("ana", broker::apikeys::Role::Client, Some(&any))
        .await
        .unwrap();
    let bob = b
        .create_key_granted("bob", broker::apikeys::Role::Client, Some(&any))
        .await
        .unwrap();
    let admin = b
        .create_key("ops", broker::apikeys::Role::Admin)
        .await
        .unwrap();
    let http = Client::new();

    let (s, v) = send(http.post(api.url("/jobs")).json(&json!({"executor": "x"}))).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (s, _) = send(
        http.post(api.url("/jobs"))
            .bearer_auth("sk_wrong")
            .json(&json!({"executor": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, v) = send(
        http.post(api.url("/jobs"))
            .bearer_auth(&ana)
            .json(&json!({"executor": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = v["id"].as_u64().unwrap();
    let (s, v) = send(http.get(api.url(&format!("/jobs/{id}"))).bearer_auth(&ana)).await;
    assert_eq!((s, v["owner"].as_str()), (StatusCode::OK, Some("ana")));
    // Basic auth maps to the same account (Jetstream style).
    let (s, _) = send(
        http.get(api.url(&format!("/jobs/{id}")))
            .basic_auth("ana", Some(&ana)),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        http.get(api.url(&format!("/jobs/{id}")))
            .basic_auth("bob", Some(&ana)),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the user name must match the key's owner"
    );

    let (s, _) = send(http.get(api.url(&format!("/jobs/{id}"))).bearer_auth(&bob)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no existence leak");
    let (s, v) = send(
        http.post(api.url(&format!("/jobs/{id}/stop")))
            .bearer_auth(&bob),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::NOT_FOUND, "not_found"),
        "acting on another owner's job answers as for a job that does not exist"
    );
    let (_, v) = send(http.get(api.url("/jobs")).bearer_auth(&bob)).await;
    assert_eq!(
        v["jobs"].as_array().map(Vec::len),
        Some(0),
        "bob lists none of ana's jobs"
    );
    let (_, v) = send(http.get(api.url("/jobs")).bearer_auth(&admin)).await;
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(1));
    let (s, _) = send(
        http.post(api.url(&format!("/jobs/{id}/stop")))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    b.revoke_key(&ana).await.unwrap();
    let (s, _) = send(http.get(api.url(&format!("/jobs/{id}"))).bearer_auth(&ana)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a revoked key is refused");
    let stored = redis.cli(&["KEYS", "apikey:*"]);
    assert!(
        !stored.contains(&bob),
        "keys are stored hashed, never as text"
    );
}

#[tokio::test]
async fn events_stream_live_as_server_sent_events_and_end_with_the_job() {
    use futures::StreamExt;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = api.broker.clone();
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let resp = Client::new()
        .get(api.url(&format!("/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let worker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = b.claim("x", "w", 1).await.unwrap().remove(0);
        b.progress(c.id, &c.token, &json!({"k": 3})).await.unwrap();
        b.complete(c.id, &c.token, &json!("done")).await.unwrap();
    });
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    })
    .await;
    worker.await.unwrap();
    assert!(read.is_ok(), "the stream did not end with the job:\n{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        names,
        ["snapshot", "claimed", "progress", "completed"],
        "{text}"
    );
}

#[tokio::test]
async fn healthz_and_metrics() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let http = Client::new();
    let (s, v) = send(http.get(api.url("/healthz"))).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    http.post(api.url("/jobs"))
        .json(&json!({"executor": "spark"}))
        .send()
        .await
        .unwrap();
    let text = api.text("/metrics").await;
    assert!(
        text.contains("sluice_queue_depth{executor=\"spark\"} 1"),
        "{text}"
    );
    assert!(text.contains("sluice_jobs_running 0"), "{text}");
    assert!(text.contains("sluice_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/jobs\""), "{text}");
    // Counters live in Redis, so every API server reports the same.
    let b = &api.broker;
    let c = b.claim("spark", "w", 1).await.unwrap().remove(0);
    b.complete(c.id, &c.token, &json!(1)).await.unwrap();
    let (id, _) = b.submit(&b.new_job("spark", json!(0))).await.unwrap();
    let c = b.claim("spark", "w", 1).await.unwrap().remove(0);
    b.fail(id, &c.token, "boom", false).await.unwrap();
    let text = http
        .get(api.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sluice_job_events_total{event=\"submitted\",executor=\"spark\"} 2",
        "sluice_job_events_total{event=\"claimed\",executor=\"spark\"} 2",
        "sluice_job_events_total{event=\"completed\",executor=\"spark\"} 1",
        "sluice_job_events_total{event=\"failed\",executor=\"spark\"} 1",
        "sluice_claim_wait_seconds_bucket{executor=\"spark\",le=\"+Inf\"} 2",
        "sluice_claim_wait_seconds_count{executor=\"spark\"} 2",
    ] {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
}

/// A fuzz-style test: 1 000+ malformed or hostile bodies, each answered with a 4xx JSON
/// error; the server stays up and the job stored before is unchanged.
#[tokio::test]
async fn a_thousand_hostile_bodies_get_4xx_and_corrupt_nothing() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.max_content_length = 64 * 1024).await;
    let http = Client::new();
    let (s, _) = send(
        http.post(api.url("/jobs"))
            .json(&json!({"executor": "keep", "params": {"a": 1}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let before = redis.cli(&["HGETALL", "job_1"]);

    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let deep = |n: usize| {
        format!(
            "{{\"executor\":\"x\",\"params\":{}{}}}",
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let fixed: Vec<String> = vec![
        "".into(),
        "null".into(),
        "[]".into(),
        "42".into(),
        "\"x\"".into(),
        "{".into(),
        "}".into(),
        r#"{"executor": 1}"#.into(),
        r#"{"executor": null}"#.into(),
        r#"{"executor": ""}"#.into(),
        r#"{"executor": "a b"}"#.into(),
        r#"{"executor": "a:b"}"#.into(),
        r#"{"executor": "x", "max_attempts": 0}"#.into(),
        r#"{"executor": "x", "max_attempts": -1}"#.into(),
        r#"{"executor": "x", "max_attempts": 1e400}"#.into(),
        r#"{"executor": "x", "max_attempts": 99999999999999999999999}"#.into(),
        r#"{"executor": "x", "timeout": 5}"#.into(),
        r#"{"executor": "x", "run_at": "yesterday"}"#.into(),
        r#"{"executor": "x", "delay": "1s", "run_at": "2030-01-01T00:00:00Z"}"#.into(),
        r#"{"executor": "x", "result_ttl": "-5m"}"#.into(),
        r#"{"executor": "x", "extra": true}"#.into(),
        deep(200),
        deep(5000),
        format!("{{\"executor\":\"{}\"}}", "e".repeat(100)),
    ];
    bodies.extend(fixed.into_iter().map(String::into_bytes));
    bodies.push(vec![0xff, 0xfe, 0x7b, 0x22]);
    bodies.push(b"{\"executor\": \"\xc3\x28\"}".to_vec());
    // Seeded variations: every prefix of a valid body, random byte flips, random junk.
    let valid = br#"{"executor": "x", "params": {"n": [1, 2.5, "s", null]}, "timeout": "90s", "max_attempts": 2}"#;
    for cut in 0..valid.len() - 1 {
        bodies.push(valid[..cut].to_vec());
    }
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while bodies.len() < 1100 {
        let mut b = valid.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % b.len();
            b[i] = (next() % 256) as u8;
        }
        if serde_json::from_slice::<Value>(&b).is_ok() {
            b.push(b'}'); // keep it malformed: the test is about refusals
        }
        bodies.push(b);
    }
    bodies.push(vec![b' '; 65 * 1024]);

    let mut counts = std::collections::BTreeMap::new();
    for b in &bodies {
        let r = http
            .post(api.url("/jobs"))
            .header("content-type", "application/json")
            .body(b.clone());
        let (s, v) = send(r).await;
        assert!(
            s.is_client_error(),
            "{s} for {:?}: {v}",
            String::from_utf8_lossy(b)
        );
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{v}"
        );
        *counts.entry(s.as_u16()).or_insert(0) += 1;
    }
    println!("{} hostile bodies: {counts:?}", bodies.len());
    assert_eq!(
        http.get(api.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK,
        "still up"
    );
    assert_eq!(
        redis.cli(&["HGETALL", "job_1"]),
        before,
        "the stored job is unchanged"
    );
    assert_eq!(
        redis.cli(&["GET", "job_seq"]).trim(),
        "1",
        "no hostile body created a job"
    );
}

#[tokio::test]
async fn lists_answer_over_an_empty_or_crowded_keyspace() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    // Nothing at all: no job, no cluster.
    for path in ["/jobs", "/clusters"] {
        let (status, v) = api.call(reqwest::Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{path} on an empty keyspace: {v}");
    }
    // Thousands of other keys beside one job: most SCAN batches match no job.
    redis.cli(&[
        "EVAL",
        "for i = 1, 5000 do redis.call('SET', 'other:' .. i, i) end",
        "0",
    ]);
    let (_, j) = api
        .call(
            reqwest::Method::POST,
            "/jobs",
            None,
            Some(json!({"executor": "x"})),
        )
        .await;
    let seen: Vec<Value> = pages(&api, 10).await.concat();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["id"], j["id"]);
}

// See: issue 22 (with Redis paused, /healthz answered 200 after 3 s).
#[tokio::test]
async fn healthz_answers_503_within_redis_timeout_while_redis_is_paused() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.redis_timeout = Duration::from_millis(500)).await;
    let (status, _) = api.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    redis.cli(&["CLIENT", "PAUSE", "3000", "ALL"]);
    let (status, v) = tokio::time::timeout(
        Duration::from_millis(2500),
        api.call(reqwest::Method::GET, "/healthz", None, None),
    )
    .await
    .expect("an answer before Redis wakes up");
    assert_eq!(status, 503, "{v}");
    redis.cli(&["CLIENT", "UNPAUSE"]);
}

// See: issue 22 (`GET /jobs?limit=1` returned 4 jobs and no `next`).
#[tokio::test]
async fn a_page_holds_exactly_limit_jobs_and_the_pages_hold_each_job_once() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    for _ in 0..25 {
        api.call(
            reqwest::Method::POST,
            "/jobs",
            None,
            Some(json!({"executor": "x"})),
        )
        .await;
    }
    for limit in [1usize, 4, 25, 100] {
        let pages = pages(&api, limit).await;
        for (i, page) in pages.iter().enumerate() {
            let last = i + 1 == pages.len();
            assert!(
                page.len() == limit || (last && page.len() <= limit),
                "limit {limit}: page {i} of {}",
                page.len()
            );
        }
        let mut seen: Vec<u64> = pages
            .concat()
            .iter()
            .filter_map(|j| j["id"].as_u64())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=25).collect::<Vec<u64>>(), "limit {limit}");
    }
}

/// Every page of `GET /jobs?limit=` followed through its `next` cursors.
async fn pages(api: &TestApi, limit: usize) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, v) = api
            .call(
                reqwest::Method::GET,
                &format!("/jobs?limit={limit}&cursor={cursor}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        pages.push(v["jobs"].as_array().cloned().unwrap_or_default());
        match v["next"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => return pages,
        }
    }
}

// See: issue 21, part 3 (every poll resent the whole model).
#[tokio::test]
async fn a_caller_chooses_the_fields_of_a_job_and_of_its_snapshot() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let model = "x".repeat(17_000);
    let (_, made) = api
        .call(
            reqwest::Method::POST,
            "/jobs",
            None,
            Some(json!({"executor": "gridlabd", "params": {"model_text": model}})),
        )
        .await;
    let id = made["id"].as_u64().unwrap();
    let (status, whole) = api
        .call(reqwest::Method::GET, &format!("/jobs/{id}"), None, None)
        .await;
    assert_eq!(status, 200);
    assert!(whole["params"]["model_text"].is_string());
    let (status, few) = api
        .call(
            reqwest::Method::GET,
            &format!("/jobs/{id}?fields=status,attempt"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mut keys: Vec<&str> = few
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["attempt", "id", "status"], "{few}");
    // The event stream's snapshot too.
    let r = Client::new()
        .get(api.url(&format!("/jobs/{id}/events?fields=status")))
        .send()
        .await
        .unwrap();
    let mut body = r.bytes_stream();
    let first = futures::StreamExt::next(&mut body)
        .await
        .expect("snapshot")
        .unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("\"status\":\"PENDING\""), "{text}");
    assert!(!text.contains("model_text"), "{text}");
}
