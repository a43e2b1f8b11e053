//! What a client that retries, or sends many jobs at once, gets: Idempotency-Key, unique
//! while active (`unique_key`) and bulk submit, over real HTTP and the CLI, raced by
//! concurrent clients against a real Redis.
use std::io::Write;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{send, TestApi, TestRedis};

/// `POST /jobs` as `key`'s owner, with an optional Idempotency-Key.
async fn post(api: &TestApi, key: &str, idem: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new()
        .post(api.url("/jobs"))
        .bearer_auth(key)
        .json(body);
    if let Some(k) = idem {
        r = r.header("idempotency-key", k);
    }
    send(r).await
}

async fn stack() -> (TestRedis, TestApi, String, String) {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let kinds = ["command".to_string()];
    let ana = api
        .broker
        .create_key_granted("ana", broker::apikeys::Role::Client, Some(&kinds))
        .await
        .unwrap();
    let bob = api
        .broker
        .create_key_granted("bob", broker::apikeys::Role::Client, Some(&kinds))
        .await
        .unwrap();
    (redis, api, ana, bob)
}

fn jobs_made(redis: &TestRedis) -> u64 {
    redis.cli(&["GET", "job_seq"]).trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn a_retried_submit_answers_the_first_job_and_another_body_is_a_conflict() {
    let (redis, api, ana, bob) = stack().await;
    let body = json!({"executor": "command", "params": {"action": "hello"}});
    let (s, first) = post(&api, &ana, Some("order-17"), &body).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, again) = post(&api, &ana, Some("order-17"), &body).await;
    assert_eq!((s, &again["id"]), (StatusCode::OK, &first["id"]), "{again}");
    let (s, v) = post(
        &api,
        &ana,
        Some("order-17"),
        &json!({"executor": "command", "params": {"action": "other"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_conflict")),
        "{v}"
    );
    // Keys are per owner: bob's "order-17" is his own.
    let (s, his) = post(&api, &bob, Some("order-17"), &body).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(his["id"], first["id"]);
    assert_eq!(jobs_made(&redis), 2);
    // The job shows its key; once it has expired, a retry still answers it (status null).
    let id = first["id"].as_u64().unwrap();
    assert_eq!(
        redis
            .cli(&["HGET", &format!("job_{id}"), "idempotency_key"])
            .trim(),
        "order-17"
    );
    redis.cli(&["DEL", &format!("job_{id}")]);
    let (s, v) = post(&api, &ana, Some("order-17"), &body).await;
    assert_eq!(
        (s, &v["id"], &v["status"]),
        (StatusCode::OK, &first["id"], &Value::Null)
    );
    assert_eq!(jobs_made(&redis), 2, "no job made by a retry");
    let pttl: i64 = redis
        .cli(&["PTTL", "idempotency:ana:order-17"])
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 23 * 3600 * 1000, "kept 24 h: {pttl}");
    // Bounded: a key over 256 bytes is refused.
    let (s, _) = post(&api, &ana, Some(&"k".repeat(257)), &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// A client that times out and retries from 8 connections at once never makes two jobs.
#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_job() {
    let (redis, api, ana, _) = stack().await;
    let body = json!({"executor": "command", "params": {"action": "hello"}});
    for round in 0..20 {
        let key = format!("retry-{round}");
        let answers =
            futures::future::join_all((0..8).map(|_| post(&api, &ana, Some(&key), &body))).await;
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        let ids: std::collections::HashSet<String> =
            answers.iter().map(|(_, v)| v["id"].to_string()).collect();
        assert_eq!((created, ids.len()), (1, 1), "round {round}: {answers:?}");
    }
    assert_eq!(jobs_made(&redis), 20);
}

/// Unique while active: a second submit with the key answers the waiting or running job;
/// once it ended, the key makes a new one. Raced by 8 clients, one job.
#[tokio::test]
async fn a_unique_key_holds_one_active_job() {
    let (redis, api, ana, bob) = stack().await;
    let body = json!({"executor": "command", "params": {"action": "hello"}, "unique_key": "nightly-report"});
    let answers = futures::future::join_all((0..8).map(|_| post(&api, &ana, None, &body))).await;
    let created: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = created[0].1["id"].as_u64().unwrap();
    assert!(answers.iter().all(|(_, v)| v["id"] == id));
    assert_eq!(jobs_made(&redis), 1);
    // Running: still that job.
    let b = &api.broker;
    let c = b.claim("command", "w", 1).await.unwrap().remove(0);
    let (s, v) = post(&api, &ana, None, &body).await;
    assert_eq!(
        (s, v["id"].as_u64(), v["status"].as_str()),
        (StatusCode::OK, Some(id), Some("RUNNING"))
    );
    // Keys are per owner: bob's submit with the same key is his own job, not a view of ana's.
    let (s, v) = post(&api, &bob, None, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_ne!(v["id"].as_u64(), Some(id));
    // Ended: the key is free again, and a new job takes it.
    b.complete(c.id, &c.token, &json!(null)).await.unwrap();
    assert_eq!(
        redis
            .cli(&["EXISTS", "unique:command:ana:nightly-report"])
            .trim(),
        "0"
    );
    let (s, v) = post(&api, &ana, None, &body).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_ne!(v["id"].as_u64(), Some(id));
}

/// An array is a bulk submit: each item checked and made on its own, one outcome per item
/// in order; a retried bulk request with its Idempotency-Key makes nothing new.
#[tokio::test]
async fn a_bulk_submit_answers_each_item_and_refuses_only_the_bad_ones() {
    let (redis, api, ana, _) = stack().await;
    let items = json!([
        {"executor": "command", "params": {"n": 1}},
        {"executor": "command", "params": {"n": 2}, "colour": "red"},
        {"executor": "spark", "params": {"app": "a.py"}},
        {"executor": "command", "params": {"n": 3}, "timeout": "soon"},
        {"executor": "command", "params": {"n": 4}, "delay": "1h"}
    ]);
    let (s, v) = post(&api, &ana, Some("batch-1"), &items).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let out = v["jobs"].as_array().unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(
        (out[0]["status"].as_str(), out[0]["created"].as_bool()),
        (Some("PENDING"), Some(true))
    );
    assert_eq!(
        out[1]["error"]["code"], "bad_request",
        "unknown field: {}",
        out[1]
    );
    assert_eq!(
        out[2]["error"]["code"], "forbidden",
        "kind not granted: {}",
        out[2]
    );
    assert_eq!(out[3]["error"]["code"], "bad_request");
    assert_eq!(out[4]["status"], "SCHEDULED");
    assert_eq!(jobs_made(&redis), 2, "only the good items made jobs");
    let (_, again) = post(&api, &ana, Some("batch-1"), &items).await;
    let again = again["jobs"].as_array().unwrap();
    assert_eq!(
        (again[0]["id"].clone(), again[0]["created"].as_bool()),
        (out[0]["id"].clone(), Some(false))
    );
    assert_eq!(
        jobs_made(&redis),
        2,
        "a retried bulk request makes nothing new"
    );
    // Bounded: 1 001 items are refused whole.
    let many: Vec<Value> = (0..1001).map(|_| json!({"executor": "command"})).collect();
    let (s, _) = post(&api, &ana, None, &Value::Array(many)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(jobs_made(&redis), 2);
    // A job's priority travels with it (0-9) and shows on it.
    let (s, v) = post(
        &api,
        &ana,
        None,
        &json!({"executor": "command", "priority": 7}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(
        redis
            .cli(&["HGET", &format!("job_{id}"), "priority"])
            .trim(),
        "7"
    );
    assert_eq!(redis.cli(&["LLEN", "queue:command:p7"]).trim(), "1");
    let (s, v) = post(
        &api,
        &ana,
        None,
        &json!({"executor": "command", "priority": 10}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
}

/// `sluice submit-bulk` reads JSON lines from stdin; `--idempotency-key` and
/// `--unique-key` on `sluice submit`.
#[test]
fn the_cli_submits_json_lines_and_retries_with_a_key() {
    let redis = TestRedis::start();
    let run = |args: &[&str], stdin: &str| {
        let mut child = crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
            .env("SLUICE_REDIS_URL", &redis.url)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let lines = (1..=2500)
        .map(|i| json!({"executor": "command", "params": {"n": i}}).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let o = run(&["submit-bulk"], &lines);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 2500);
    assert_eq!(out.lines().last(), Some("2500 PENDING"));
    let o = run(
        &["submit-bulk"],
        "{\"executor\": \"command\"}\nnot json\n{\"executor\": \"command\", \"max_attempts\": 0}\n",
    );
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("2501 PENDING") && out.contains("line 2:") && out.contains("line 3:"),
        "{out}"
    );
    let args = ["submit", "command", "{\"n\": 1}", "--idempotency-key", "k1"];
    let first = run(&args, "");
    let again = run(&args, "");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("made before"));
    let other = run(
        &["submit", "command", "{\"n\": 2}", "--idempotency-key", "k1"],
        "",
    );
    assert_eq!(other.status.code(), Some(2));
}
