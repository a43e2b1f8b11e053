//! Params schemas: executors publish them, and every submit path refuses params that break
//! them with a 400 naming the field (broker/src/schemas.rs).
use std::time::{Duration, Instant};

use broker::Status;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{wait_for, TestApi, TestRedis};

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_bad_param_is_a_400_naming_its_field_on_every_native_submit() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let schema = json!({
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer", "minimum": 1}, "tags": {"type": "array", "items": {"type": "string"}}},
    });
    api.broker.publish_schema("k", &schema).await.unwrap();
    assert_eq!(api.broker.schema("k").await.unwrap(), Some(schema.clone()));
    assert_eq!(api.broker.schemas().await.unwrap().get("k"), Some(&schema));
    let submit = |body: Value| api.call(Method::POST, "/jobs", None, Some(body));

    let (s, v) = submit(json!({"executor": "k", "params": {"n": "x"}})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    assert!(
        message(&v).contains(r#"params.n: "x" is not of type "integer""#),
        "{v}"
    );
    let (s, v) = submit(json!({"executor": "k", "params": {"tags": ["a", 2]}})).await;
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains("params.n: is required"), "{v}");
    assert!(
        message(&v).contains("params.tags[1]: 2 is not of type"),
        "{v}"
    );
    let (s, v) = submit(json!({"executor": "k", "params": {"n": 2, "tags": ["a"]}})).await;
    assert_eq!(s, 201, "{v}");

    // A bulk submit refuses the bad item alone.
    let (s, v) = submit(json!([
        {"executor": "k", "params": {"n": 1}},
        {"executor": "k", "params": {"n": 0}},
    ]))
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["jobs"][0]["id"].is_u64(), "{v}");
    assert!(
        message(&v["jobs"][1]).contains("params.n: 0 is less than the minimum of 1"),
        "{v}"
    );

    // A workflow node too, before anything is made.
    let (s, v) = api
        .call(
            Method::POST,
            "/workflows",
            None,
            Some(json!({"name": "w", "nodes": [{"name": "a", "executor": "k", "params": {}}]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        message(&v).contains("node \"a\": params.n: is required"),
        "{v}"
    );

    // A kind without a schema takes any params.
    let (s, v) = submit(json!({"executor": "free", "params": {"n": "x", "any": [1, {}]}})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = submit(json!({"executor": "free"})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        redis.cli(&["LLEN", "queue:k"]).trim(),
        "2",
        "only the good jobs were made"
    );
}

#[tokio::test]
async fn a_schema_that_does_not_compile_or_is_over_64_kib_is_refused() {
    let redis = TestRedis::start();
    let b = crate::harness::broker(&redis, |_| {});
    for bad in [
        json!({"type": "nope"}),
        json!({"properties": {"n": {"minimum": "one"}}}),
        json!({"$ref": "https://example.com/schema.json"}),
        json!({"description": "x".repeat(64 * 1024)}),
    ] {
        let e = b.publish_schema("k", &bad).await;
        assert!(
            matches!(e, Err(broker::Error::Invalid(_))),
            "{e:?} for {}",
            &bad.to_string()[..60.min(bad.to_string().len())]
        );
    }
    assert!(matches!(
        b.publish_schema("bad kind", &json!({})).await,
        Err(broker::Error::Invalid(_))
    ));
    assert_eq!(b.schema("k").await.unwrap(), None, "nothing stored");
    assert!(b.schemas().await.unwrap().is_empty());
    // Just under the limit is fine.
    let big = json!({"description": "x".repeat(64 * 1024 - 100)});
    b.publish_schema("k", &big).await.unwrap();
    b.check_params("k", &json!({"any": 1})).await.unwrap();
}

#[tokio::test]
async fn sluice_command_publishes_its_actions_and_their_placeholders() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actions.toml");
    std::fs::write(
        &config,
        r#"
[actions.hello]
argv = ["echo", "hello {name}", "job {job_id}"]
params = "none"

[actions.count]
argv = ["echo", "{n}"]
params = "none"
schema = { required = ["n"], properties = { n = { type = "integer", maximum = 10 } } }
"#,
    )
    .unwrap();
    let _executor = crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        &redis,
        &["--config", &config.display().to_string()],
        std::iter::empty::<(&str, &str)>(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = loop {
        if let Some(s) = api.broker.schema("command").await.unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no schema published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        published["properties"]["action"]["enum"],
        json!(["count", "hello"])
    );
    let submit = |params: Value| {
        api.call(
            Method::POST,
            "/jobs",
            None,
            Some(json!({"executor": "command", "params": params})),
        )
    };

    let (s, v) = submit(json!({"action": "hello"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(message(&v).contains("params.name: is required"), "{v}");
    assert!(
        !message(&v).contains("job_id"),
        "Sluice's own placeholders are not params: {v}"
    );
    let (s, v) = submit(json!({"action": "goodbye", "name": "x"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        message(&v).contains("params.action: \"goodbye\" is not one of"),
        "{v}"
    );
    let (s, v) = submit(json!({"action": "count", "n": 11})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        message(&v).contains("params.n: 11 is greater than the maximum of 10"),
        "{v}"
    );

    let (s, v) = submit(json!({"action": "hello", "name": "ana"})).await;
    assert_eq!(s, 201, "{v}");
    let id = broker::JobId(v["id"].as_u64().unwrap());
    let j = wait_for(
        &api.broker,
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    assert_eq!(j.result, Some(json!(format!("hello ana job {id}\n"))));

    // The faces check too: wumai routes the action here, and is refused naming the field.
    let (s, v) = api
        .call(Method::POST, "/", None, Some(json!({"action": "Hello"})))
        .await;
    assert_eq!((s, v["retCode"].as_i64()), (200, Some(4100)), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("params.name: is required"),
        "{v}"
    );
}
