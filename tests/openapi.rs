//! The OpenAPI document is generated from the code; these tests keep it and the routes in
//! step and validate real responses against it.
use reqwest::{Client, Method};
use serde_json::{json, Value};

use crate::harness::{TestApi, TestRedis};

/// The ways `instance` breaks the response schema the document gives for
/// `method path status` (application/json).
fn violations(doc: &Value, method: &str, path: &str, status: u16, instance: &Value) -> Vec<String> {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "the document has no JSON schema for {method} {path} {status}"
    );
    let mut root = schema.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("bad schema for {method} {path}: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect()
}

fn check(doc: &Value, method: &str, path: &str, status: u16, instance: &Value) {
    let errors = violations(doc, method, path, status, instance);
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {instance} does not match the document: {errors:?}"
    );
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let http = Client::new();
    let doc: Value = http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with('3'));
    let routes = [
        ("post", "/jobs"),
        ("get", "/jobs"),
        ("get", "/jobs/{id}"),
        ("post", "/jobs/{id}/{action}"),
        ("get", "/jobs/{id}/events"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/apidocs"),
        ("post", "/"),
        ("post", "/api/v1/new-run/"),
        ("get", "/schedules"),
        ("put", "/schedules/{name}"),
        ("delete", "/schedules/{name}"),
        ("post", "/workflows"),
        ("get", "/workflows/{id}"),
        ("post", "/workflows/{id}/stop"),
        ("get", "/"),
        ("post", "/task"),
        ("get", "/status/{task_id}"),
        ("delete", "/terminate/{task_id}"),
        ("put", "/jobs/{id}/artifacts/{name}"),
        ("post", "/v1/pipelines"),
        ("get", "/v1/pipelines"),
        ("post", "/v1/pipelines/search"),
        ("get", "/v1/pipelines/{id}"),
        ("put", "/v1/pipelines/{id}"),
        ("delete", "/v1/pipelines/{id}"),
        ("post", "/v1/pipelines/{id}/runs"),
        ("get", "/v1/pipelines/{id}/runs"),
        ("get", "/v1/pipelines/{id}/runs/{run}"),
        ("delete", "/v1/pipelines/{id}/runs/{run}"),
        ("put", "/v1/pipelines/{id}/runs/{run}/state"),
        ("get", "/v1/pipelines/{id}/runs/{run}/console"),
        ("get", "/rate-limits"),
        ("put", "/rate-limits/{executor}"),
        ("delete", "/rate-limits/{executor}"),
    ];
    for (m, p) in routes {
        assert!(
            doc["paths"][p][m].is_object(),
            "{m} {p} is not in /openapi.json"
        );
    }
    // Client generators name methods after operationIds: the spec wants them unique.
    let mut ids = std::collections::HashSet::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_string()),
                "operationId {id:?} twice ({method})"
            );
        }
    }
    http.post(api.url("/jobs"))
        .json(&json!({"executor": "x"}))
        .send()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = api.url(
                &path
                    .replace("{id}", "1")
                    .replace("{action}", "unlock")
                    .replace("{name}", "s")
                    .replace("{run}", "1")
                    .replace("{task_id}", "1")
                    .replace("{executor}", "x"),
            );
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = http
                .request(m, &url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .unwrap();
            let status = r.status();
            if path.ends_with("/events") {
                assert_eq!(status, 200, "{method} {path}");
                continue;
            }
            let text = r.text().await.unwrap_or_default();
            assert!(
                !text.contains("no such route"),
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
    let page = http
        .get(api.url("/apidocs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/openapi.json"));
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.max_content_length = 512).await;
    let http = Client::new();
    let doc: Value = http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let b = &api.broker;

    let mut seen = Vec::new();
    let mut call = |method: &'static str, path: &'static str, status: u16, v: Value| {
        check(&doc, method, path, status, &v);
        seen.push((method, path, status));
    };
    let r = http
        .post(api.url("/jobs"))
        .json(&json!({"executor": "x", "params": [1, "two", {"3": null}], "delay": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    call("post", "/jobs", 201, r.json().await.unwrap());
    let r = http.post(api.url("/jobs")).body("{").send().await.unwrap();
    call("post", "/jobs", 400, r.json().await.unwrap());
    let r = http
        .post(api.url("/jobs"))
        .body("x".repeat(600))
        .send()
        .await
        .unwrap();
    call("post", "/jobs", 413, r.json().await.unwrap());

    // A job with every kind of field set: result, progress, error history, lock.
    let (id, _) = b.submit(&b.new_job("x", json!({"n": 1}))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.progress(id, &c.token, &json!({"count": 1, "k": 2}))
        .await
        .unwrap();
    b.complete(id, &c.token, &json!({"configs": [], "entropy": 1.5}))
        .await
        .unwrap();
    b.lock(id, "ana", false).await.unwrap();
    for path in ["/jobs/1", &format!("/jobs/{id}")] {
        let r = http.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        call("get", "/jobs/{id}", 200, r.json().await.unwrap());
    }
    let r = http.get(api.url("/jobs/999")).send().await.unwrap();
    call("get", "/jobs/{id}", 404, r.json().await.unwrap());
    let r = http.get(api.url("/jobs/x")).send().await.unwrap();
    call("get", "/jobs/{id}", 400, r.json().await.unwrap());
    let r = http.get(api.url("/jobs?limit=10")).send().await.unwrap();
    call("get", "/jobs", 200, r.json().await.unwrap());
    let r = http.get(api.url("/jobs?status=nope")).send().await.unwrap();
    call("get", "/jobs", 400, r.json().await.unwrap());
    let r = http
        .post(api.url(&format!("/jobs/{id}/stop")))
        .send()
        .await
        .unwrap();
    call("post", "/jobs/{id}/{action}", 409, r.json().await.unwrap());
    let r = http
        .post(api.url(&format!("/jobs/{id}/unlock")))
        .send()
        .await
        .unwrap();
    call("post", "/jobs/{id}/{action}", 200, r.json().await.unwrap());
    let r = http.post(api.url("/jobs/1/stop")).send().await.unwrap();
    call("post", "/jobs/{id}/{action}", 200, r.json().await.unwrap());
    let r = http.get(api.url("/healthz")).send().await.unwrap();
    call("get", "/healthz", 200, r.json().await.unwrap());
    assert_eq!(seen.len(), 13);

    // The check itself can fail: wrong shapes are caught.
    for wrong in [
        json!({"id": "1", "status": "PENDING"}),
        json!({"id": 1, "status": "DONE"}),
        json!({"id": 1}),
    ] {
        assert!(
            !violations(&doc, "post", "/jobs", 201, &wrong).is_empty(),
            "{wrong} passed"
        );
    }
    assert!(!violations(&doc, "get", "/jobs/{id}", 404, &json!({"error": "x"})).is_empty());
    assert!(!violations(
        &doc,
        "get",
        "/jobs/{id}",
        200,
        &json!({"id": 1, "status": "PENDING"})
    )
    .is_empty());
}

/// What a generated client makes of the document: PyPI's openapi-python-client generates a
/// Python package from /openapi.json (no warnings), and that package, with a bearer key,
/// submits a job, reads it back and in the list, replays an idempotent submit, gets a 400
/// for a bad body and a 404 for another owner's job, against a real server.
#[tokio::test]
async fn a_client_generated_by_openapi_python_client_submits_and_reads_jobs() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let ana = api.key("ana", broker::apikeys::Role::Client).await;
    let mut bobs = api.broker.new_job("command", json!({}));
    bobs.owner = "bob".into();
    let (bobs, _) = api.broker.submit(&bobs).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let doc = reqwest::get(api.url("/openapi.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.path().join("openapi.json"), &doc).unwrap();
    let generated = crate::harness::command("python3")
        .args([
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            "openapi.json",
        ])
        .args(["--output-path", "sluice_client", "--meta", "none"])
        .current_dir(dir.path())
        .output()
        .expect("python3 -m openapi_python_client (pip install openapi-python-client)");
    let said =
        String::from_utf8_lossy(&generated.stdout) + String::from_utf8_lossy(&generated.stderr);
    assert!(generated.status.success(), "{said}");
    assert!(
        !said.contains("WARNING"),
        "the generator skipped parts: {said}"
    );
    std::fs::write(dir.path().join("use.py"), USE_GENERATED).unwrap();
    // Run without blocking the runtime the in-process server answers on.
    let mut run = crate::harness::command("python3");
    run.args(["use.py", &api.base, &ana, &bobs.to_string()])
        .current_dir(dir.path());
    let ran = tokio::process::Command::from(run).output().await.unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let said: Value = serde_json::from_str(out.trim()).unwrap();
    let id = said["submitted"]["id"].as_u64().unwrap();
    assert_eq!(said["submitted"]["code"], 201);
    assert_eq!(
        said["read"],
        json!({"code": 200, "status": "PENDING", "priority": "7"})
    );
    assert_eq!(said["listed"], true);
    assert_eq!(
        said["replayed"],
        json!({"first": 201, "again": 200, "same": true})
    );
    assert_eq!(said["bad"], json!({"code": 400, "error": "bad_request"}));
    assert_eq!(said["bobs"], 404);
    assert_eq!(
        said["bulk"],
        json!({"code": 200, "outcomes": [true, "bad_request"]})
    );
    let job = api.broker.get(broker::JobId(id)).await.unwrap();
    assert_eq!(job.field("owner"), Some("ana"));
}

/// The generated client at work: prints one JSON object of what it saw.
const USE_GENERATED: &str = r#"
import json, sys
from sluice_client import AuthenticatedClient
from sluice_client.api.jobs import jobs_get, jobs_list, jobs_submit
from sluice_client.models import ErrorBody, SubmitBody, Submitted

base, key, bobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = AuthenticatedClient(base_url=base, token=key)
r = jobs_submit.sync_detailed(client=c, body=SubmitBody(
    executor="command", params={"action": "hello", "name": "generated"}, priority=7))
jid = r.parsed.id
g = jobs_get.sync_detailed(client=c, id=jid)
page = jobs_list.sync_detailed(client=c)
body = SubmitBody(executor="command", params={"n": 1})
first = jobs_submit.sync_detailed(client=c, body=body, idempotency_key="gen-1")
again = jobs_submit.sync_detailed(client=c, body=body, idempotency_key="gen-1")
bad = jobs_submit.sync_detailed(client=c, body=SubmitBody(executor="no such kind!"))
bulk = jobs_submit.sync_detailed(client=c, body=[
    SubmitBody(executor="command", params={"i": 1}), SubmitBody(executor="bad kind!")])
print(json.dumps({
    "submitted": {"code": int(r.status_code), "id": jid},
    "read": {"code": int(g.status_code), "status": g.parsed.status.value,
             "priority": g.parsed.additional_properties.get("priority")},
    "listed": any(j.id == jid for j in page.parsed.jobs),
    "replayed": {"first": int(first.status_code), "again": int(again.status_code),
                 "same": first.parsed.id == again.parsed.id},
    "bad": {"code": int(bad.status_code),
            "error": bad.parsed.error.code if isinstance(bad.parsed, ErrorBody) else None},
    "bobs": int(jobs_get.sync_detailed(client=c, id=bobs).status_code),
    "bulk": {"code": int(bulk.status_code),
             "outcomes": [o.created if isinstance(o, Submitted) else o.error.code
                          for o in bulk.parsed.jobs]},
}))
"#;
