//! A job and its files in one multipart request: the job is claimable only once every file
//! is stored, a failed or refused upload leaves no runnable job, and names, sizes, counts,
//! grants and other owners' pipelines are checked as on every other route.

use std::time::Duration;

use broker::apikeys::Role;
use broker::JobId;
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Method};
use serde_json::{json, Value};

use super::Stack;

const CAT: &str = r#"{"executor": "command", "params": {"action": "cat"}}"#;

/// Posts `form` to `path` as `key`: (status, JSON reply).
async fn post(s: &Stack, key: &str, path: &str, form: Form) -> (u16, Value) {
    let r = Client::new()
        .post(s.api.url(path))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("the API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn file(name: &str, text: &str) -> Part {
    Part::text(text.to_string()).file_name(name.to_string())
}

fn field(s: &Stack, id: u64, name: &str) -> String {
    s.redis
        .cli(&["HGET", &format!("job_{id}"), name])
        .trim()
        .to_string()
}

/// Nothing of `command` is queued or parked.
fn nothing_runnable(s: &Stack) {
    assert_eq!(s.redis.cli(&["LLEN", "queue:command"]).trim(), "0");
    assert_eq!(s.redis.cli(&["ZCARD", "delayed"]).trim(), "0");
}

#[tokio::test]
async fn a_job_is_held_until_its_last_file_is_stored() {
    let s = Stack::start(|_| {}).await;
    // The second file arrives only when the test says so.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let slow = reqwest::Body::wrap_stream(rx);
    let form = Form::new()
        .text("job", CAT)
        .part("file", file("a.txt", "first"))
        .part("file", Part::stream(slow).file_name("b.txt"));
    let req = Client::new()
        .post(s.api.url("/jobs"))
        .bearer_auth(&s.alice)
        .multipart(form)
        .send();
    let pending = tokio::spawn(req);
    tx.unbounded_send(Ok(Bytes::from_static(b"second, ")))
        .unwrap();
    // The job exists, held: SCHEDULED, in no queue, parked until its hold deadline.
    let mut held = String::new();
    for _ in 0..100 {
        held = field(&s, 1, "held");
        if !held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!held.is_empty(), "job 1 is held while its files arrive");
    assert_eq!(field(&s, 1, "status"), "SCHEDULED");
    assert_eq!(s.redis.cli(&["LLEN", "queue:command"]).trim(), "0");
    // A tick meanwhile does not start it: its deadline is an hour away.
    s.api.broker.tick().await.unwrap();
    assert_eq!(field(&s, 1, "status"), "SCHEDULED");

    tx.unbounded_send(Ok(Bytes::from_static(b"in two chunks")))
        .unwrap();
    drop(tx);
    let r = pending.await.unwrap().expect("the API answers");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "PENDING", "{v}");
    assert_eq!(
        v["files"],
        json!([{"name": "a.txt", "size": 5}, {"name": "b.txt", "size": 21}])
    );
    assert_eq!(field(&s, 1, "held"), "");
    assert_eq!(
        s.redis.cli(&["LRANGE", "queue:command", "0", "-1"]).trim(),
        "1"
    );
    let (status, body) = s.artifacts(&s.alice, 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["artifacts"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    // The history says what happened.
    let history = s.redis.cli(&["LRANGE", "history:job_1", "0", "-1"]);
    assert!(history.contains("SCHEDULED submitted"), "{history}");
    assert!(history.contains("PENDING ready"), "{history}");
}

#[tokio::test]
async fn a_refused_or_broken_upload_leaves_no_runnable_job() {
    let s = Stack::start(|c| c.max_artifact_size = 1000).await;

    // Over max_artifact_size: 413, and the job is CANCELED, never queued.
    let form = Form::new()
        .text("job", CAT)
        .part("file", file("small.txt", "ok"))
        .part("file", file("big.bin", &"x".repeat(2000)));
    let (status, v) = post(&s, &s.alice, "/jobs", form).await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    assert_eq!(field(&s, 1, "status"), "CANCELED");
    nothing_runnable(&s);

    // Names are artifact names: no paths, no dot files; none twice.
    for (name, why) in [("../escape", "path separator"), (".env", "leading dot")] {
        let form = Form::new().text("job", CAT).part("file", file(name, "x"));
        let (status, v) = post(&s, &s.alice, "/jobs", form).await;
        assert_eq!(status, 400, "{name}: {v}");
        assert!(v.to_string().contains("artifact name"), "{why}: {v}");
    }
    let form = Form::new()
        .text("job", CAT)
        .part("file", file("a", "1"))
        .part("file", file("a", "2"));
    let (status, v) = post(&s, &s.alice, "/jobs", form).await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("given twice"), "{v}");

    // A part after the job without a filename is not a file.
    let form = Form::new().text("job", CAT).text("notes", "hello");
    let (status, v) = post(&s, &s.alice, "/jobs", form).await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("has no filename"), "{v}");

    // At most MAX_FILES files.
    let mut form = Form::new().text("job", CAT);
    for i in 0..=broker::uploads::MAX_FILES {
        form = form.part("file", file(&format!("f{i}"), "x"));
    }
    let (status, v) = post(&s, &s.alice, "/jobs", form).await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("at most 100 files"), "{v}");
    let made: u64 = s.job_seq().parse().unwrap();
    for id in 1..=made {
        assert_eq!(field(&s, id, "status"), "CANCELED", "job {id}");
    }
    nothing_runnable(&s);

    // Refused before any job exists: the job part missing or not first, malformed, over
    // its own limit.
    let huge = json!({"executor": "command", "params": {"pad": "x".repeat(1 << 20)}});
    for form in [
        Form::new()
            .part("file", file("a.txt", "x"))
            .text("job", CAT),
        Form::new().text("job", "{not json"),
        Form::new().text("job", huge.to_string()),
    ] {
        let (status, v) = post(&s, &s.alice, "/jobs", form).await;
        assert!(status == 400 || status == 413, "{status} {v}");
        assert_eq!(s.job_seq(), made.to_string(), "{v}");
    }
}

#[tokio::test]
async fn multipart_obeys_grants_and_owners() {
    let s = Stack::start(|_| {}).await;
    // carol has no grant: command is not hers to run, with or without files.
    let carol = s
        .api
        .broker
        .create_key("carol", Role::Client)
        .await
        .unwrap();
    let form = Form::new()
        .text("job", CAT)
        .part("file", file("a.txt", "x"));
    let (status, v) = post(&s, &carol, "/jobs", form).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        s.job_seq(),
        "",
        "no job was made: {}",
        s.redis.cli(&["KEYS", "*"])
    );
    assert_eq!(s.redis.cli(&["KEYS", "job_*"]).trim(), "");

    // alice's pipeline: bob's run with files is a 404, as for a pipeline that does not exist.
    let (status, p) = s
        .call(
            &s.alice,
            Method::POST,
            "/v1/pipelines",
            Some(json!({"name": "p", "executor": "command", "params": {"action": "forward"}})),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let runs = format!("/v1/pipelines/{}/runs", p["uuid"].as_str().unwrap());
    let form = || {
        Form::new()
            .text("run", "{}")
            .part("file", file("in.txt", "data"))
    };
    let (status, v) = post(&s, &s.bob, &runs, form()).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(s.job_seq(), "");
    // Hers runs, with its file as an artifact.
    let (status, run) = post(&s, &s.alice, &runs, form()).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "NOT_STARTED", "{run}");
    let names: Vec<&str> = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["in.txt"], "{run}");
    assert_eq!(
        s.redis.cli(&["LRANGE", "queue:command", "0", "-1"]).trim(),
        "1"
    );
}

#[tokio::test]
async fn a_held_job_whose_upload_never_ended_is_canceled_at_its_deadline() {
    let s = Stack::start(|_| {}).await;
    let b = &s.api.broker;
    let job = b.new_job("command", json!({"action": "cat"}));
    // As a server that died mid-upload leaves it: held, parked until its deadline.
    let id: JobId = b.submit_held(&job).await.unwrap();
    s.redis.cli(&["ZADD", "delayed", "1", &id.to_string()]);
    b.tick().await.unwrap();
    let j = b.get(id).await.unwrap();
    assert_eq!(j.status, broker::Status::Canceled, "{j:?}");
    assert!(
        j.error
            .unwrap_or_default()
            .contains("did not finish uploading"),
        "the job says why"
    );
    nothing_runnable(&s);
}
