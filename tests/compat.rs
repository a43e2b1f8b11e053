//! The wumai and Jetstream Centro faces over real HTTP, with a real command executor.
use std::sync::Arc;
use std::time::{Duration, Instant};

use executors::command::{CommandConfig, CommandExecutor};
use reqwest::Client;
use serde_json::{json, Value};

use crate::harness::{TestApi, TestRedis};

const ACTIONS: &str = r#"
[actions.hello]
argv = ["echo", "hello {name}"]
params = "none"

[actions.tempe]
argv = ["cat"]

[actions.broken]
argv = ["false"]
params = "none"
"#;

async fn with_executor(api: &TestApi) -> tokio::sync::watch::Sender<bool> {
    let ex = CommandExecutor::new(CommandConfig::parse(ACTIONS).unwrap());
    ex.register(&api.broker, "command").await.unwrap();
    let opts = executors::Options::new(api.broker.config(), "command");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let b = api.broker.clone();
    tokio::spawn(async move { executors::run(b, Arc::new(ex), opts, rx).await });
    tx
}

async fn wumai(http: &Client, api: &TestApi, body: Value) -> Value {
    let r = http
        .post(api.url("/"))
        .header("x-request-id", "ctx-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "wumai answers 200 whatever happens");
    r.json().await.unwrap()
}

#[tokio::test]
async fn wumai_actions_run_and_errors_carry_wumai_codes() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let _exec = with_executor(&api).await;
    let http = Client::new();

    // As wumai's server ran the handler: the action's result comes back in `data`.
    let v = wumai(&http, &api, json!({"action": "Hello", "name": "sync"})).await;
    assert_eq!(
        (v["retCode"].as_i64(), v["message"].is_null(), &v["data"]),
        (Some(0), true, &json!("hello sync\n")),
        "{v}"
    );
    // Asked not to wait (Prefer: respond-async), it answers the job reference.
    let (_, v) = crate::harness::send(
        http.post(api.url("/"))
            .header("prefer", "respond-async")
            .json(&json!({"action": "Hello", "name": "wumai"})),
    )
    .await;
    assert_eq!(
        (v["retCode"].as_i64(), v["message"].is_null()),
        (Some(0), true),
        "{v}"
    );
    let id = v["data"]["jobId"].as_u64().unwrap();
    assert_eq!(v["data"]["status"], "pending");
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        let d = wumai(&http, &api, json!({"action": "DescribeJob", "jobId": id})).await;
        if d["data"]["status"] == "finished" {
            break d;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done["data"]["result"], "hello wumai\n");
    assert_eq!(
        (
            done["data"]["trys"].as_u64(),
            done["data"]["try_max"].as_u64()
        ),
        (Some(1), Some(3))
    );

    for (body, code) in [
        (json!({"action": "NoSuchThing"}), 4000),
        (json!({"name": "x"}), 4110),
        (json!({"action": 5}), 4110),
        (json!([1, 2]), 4110),
        (json!({"action": "Hello", "try_max": "many"}), 4100),
        (json!({"action": "DescribeJob", "jobId": 999}), 4104),
        (json!({"action": "DescribeJob", "jobId": "abc"}), 4100),
        (json!({"action": "CancelJob", "jobId": id}), 4105),
    ] {
        let v = wumai(&http, &api, body.clone()).await;
        assert_eq!(v["retCode"].as_i64(), Some(code), "{body} -> {v}");
        assert!(v["message"].is_string(), "{v}");
        assert_eq!(
            v["data"]["exceptionTag"], "ctx-42",
            "the context id comes back"
        );
    }
    let r = http
        .post(api.url("/"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["retCode"], 4110);
    assert!(
        v["data"]["exceptionTag"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "a context id is made up"
    );
}

#[tokio::test]
async fn wumai_try_settings_become_attempts_and_linear_backoff() {
    let redis = TestRedis::start();
    // No executor runs "nobody": answer the reference at once.
    let api = TestApi::start(&redis, |c| c.wumai_wait = Duration::ZERO).await;
    api.broker
        .register_actions("nobody", &["Flaky".to_string()])
        .await
        .unwrap();
    let http = Client::new();
    let v = wumai(
        &http,
        &api,
        json!({"action": "Flaky", "try_max": 5, "try_period": 30}),
    )
    .await;
    let id = v["data"]["jobId"].as_u64().unwrap();
    let hash = redis.cli(&["HGETALL", &format!("job_{id}")]);
    for want in [
        "max_attempts\n5",
        "backoff\n30000",
        "backoff_mode\nlinear",
        "executor\nnobody",
    ] {
        assert!(hash.contains(want), "{want} not in\n{hash}");
    }
}

/// What a wumai client sees: its envelope on auth failures, the banner, `?pretty`, `run_at`,
/// a failed action within the bound, a per-action bound.
#[tokio::test]
async fn wumai_clients_get_wumai_answers_for_auth_banner_pretty_run_at_and_failures() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| {
        c.auth = true;
        c.open_executors = vec!["command".into()];
        c.wumai_waits = vec![("Hello".into(), Duration::ZERO)];
    })
    .await;
    let _exec = with_executor(&api).await;
    let key = api
        .broker
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let http = Client::new();
    let post = |key: Option<&str>, path: &str, body: Value| {
        let mut r = http.post(api.url(path)).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };

    // No key, or a bad one: HTTP 200 and wumai's envelope, never Sluice's 401.
    for k in [None, Some("sk_not_a_key")] {
        let r = post(k, "/", json!({"action": "Hello", "name": "x"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["retCode"], 4103, "{v}");
        assert!(v["message"].as_str().unwrap().contains("key"), "{v}");
        assert!(v["data"]["exceptionTag"].is_string(), "{v}");
    }
    assert_eq!(
        redis.cli(&["EXISTS", "job_seq"]).trim(),
        "0",
        "no job was made"
    );

    // GET / is wumai's banner; ?pretty indents.
    let r = http.get(api.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("wumai"));
    let text = post(
        Some(&key),
        "/?pretty",
        json!({"action": "Hello", "name": "p"}),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(text.contains("\n  \"retCode\": 0"), "{text}");
    // wumai_waits gives Hello no wait: the job reference at once.
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"]["status"], "pending", "{v}");

    // run_at (wumai's own format, UTC) is honoured: the job waits, DescribeJob shows it.
    let later =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string()
            .replace('T', " ")
            .replace('Z', "");
    let v = post(
        Some(&key),
        "/",
        json!({"action": "Hello", "name": "l", "run_at": later}),
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(v["data"]["status"], "pending", "{v}");
    let id = v["data"]["jobId"].as_u64().unwrap();
    assert_eq!(
        redis.cli(&["HGET", &format!("job_{id}"), "status"]).trim(),
        "SCHEDULED"
    );
    let d = post(
        Some(&key),
        "/",
        json!({"action": "DescribeJob", "jobId": id}),
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert!(d["data"]["run_at"].is_string(), "{d}");
    assert!(d["data"]["params"].get("run_at").is_none(), "{d}");
    for bad in [json!("tomorrow"), json!(-5), json!([1])] {
        let v = post(Some(&key), "/", json!({"action": "Hello", "run_at": bad}))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(v["retCode"], 4100, "{bad}: {v}");
    }

    // A failing action within the bound: 5000, its error and job id.
    let v = post(Some(&key), "/", json!({"action": "Broken", "try_max": 1}))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(v["retCode"], 5000, "{v}");
    assert!(v["message"].as_str().unwrap().contains("FAILED"), "{v}");
    assert!(v["data"]["jobId"].as_u64().is_some(), "{v}");
}

#[tokio::test]
async fn jetstream_new_run_with_basic_auth() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| {
        c.auth = true;
        // The operator maps a pipeline version to an action of another name.
        c.jetstream_pipelines = vec![("rnaseq@2".into(), "tempe".into())];
    })
    .await;
    let _exec = with_executor(&api).await;
    // Jetstream runs execute commands: the key needs the command kind granted.
    let key = api
        .broker
        .create_key_granted(
            "lab",
            broker::apikeys::Role::Client,
            Some(&["command".to_string()]),
        )
        .await
        .unwrap();
    let http = Client::new();
    let run = json!({
        "project": "P-001", "pipeline": "tempe@latest", "study": "S1", "email": "a@b.c", "cram": true,
        "dataFiles": [{"fastqPath": "/data/r1.fastq.gz", "fastqCode": "R1", "sampleName": "s1"}]
    });
    let r = http
        .post(api.url("/api/v1/new-run/"))
        .json(&run)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(api.url("/api/v1/new-run/"))
        .basic_auth("lab", Some(&key))
        .json(&run)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_u64().unwrap();
    assert_eq!(v["url"], format!("/jobs/{id}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let job = loop {
        let j: Value = http
            .get(api.url(&format!("/jobs/{id}")))
            .basic_auth("lab", Some(&key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["status"] == "COMPLETED" {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(job["owner"], "lab");
    assert_eq!(
        job["result"]["project"], "P-001",
        "the pipeline command got the whole config"
    );
    assert_eq!(
        (
            job["result"]["action"].as_str(),
            job["result"]["version"].as_str()
        ),
        (Some("tempe"), Some("latest"))
    );

    for (bad, field) in [
        (json!({"pipeline": "tempe@1", "dataFiles": []}), "project"),
        (
            json!({"project": "P", "pipeline": "tempe", "dataFiles": []}),
            "pipeline",
        ),
        (
            json!({"project": "P", "pipeline": "nosuch@1", "dataFiles": []}),
            "pipeline",
        ),
        (
            json!({"project": "P", "pipeline": "tempe@1", "dataFiles": "x"}),
            "dataFiles",
        ),
        (
            json!({"project": "P", "pipeline": "rnaseq@3", "dataFiles": []}),
            "pipeline",
        ),
    ] {
        let r = http
            .post(api.url("/api/v1/new-run/"))
            .basic_auth("lab", Some(&key))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("{field}:")),
            "{v} should name {field}"
        );
    }

    // rnaseq@2 runs as the tempe action, as mapped; its config still names rnaseq@2.
    let r = http
        .post(api.url("/api/v1/new-run/"))
        .basic_auth("lab", Some(&key))
        .json(&json!({"project": "P-2", "pipeline": "rnaseq@2", "dataFiles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let done = api
        .broker
        .wait_end(broker::JobId(id), Duration::from_secs(10))
        .await
        .unwrap()
        .expect("the mapped run ends");
    let result = done.result.unwrap_or_default();
    assert_eq!(
        (
            result["action"].as_str(),
            result["pipeline"].as_str(),
            result["version"].as_str()
        ),
        (Some("tempe"), Some("rnaseq@2"), Some("2"))
    );
}
