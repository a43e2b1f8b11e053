//! A client key acts on its own things only, and submits only to the executor kinds it was
//! granted. Another owner's job, run, pipeline or workflow answers exactly as one that does
//! not exist, on every verb and every face; nothing of the owner's changes.

use reqwest::Method;
use serde_json::{json, Value};

use super::Stack;
use broker::apikeys::Role;

/// `body` with every run of digits replaced by `N`: two answers that differ only in an id.
fn shape(body: &Value) -> String {
    let mut out = String::new();
    let mut digits = false;
    for ch in body.to_string().chars() {
        if ch.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            out.push(ch);
            digits = false;
        }
    }
    out
}

#[tokio::test]
async fn a_key_submits_only_to_the_kinds_it_was_granted() {
    let s = Stack::start(|_| {}).await;
    let b = &s.api.broker;
    // A client key with no grant: the open kinds only (solver).
    let carol = b.create_key("carol", Role::Client).await.unwrap();
    // The command executor registers its actions; wumai and Jetstream map onto them.
    s.redis.cli(&["HSET", "actions", "hello", "command"]);
    let seq = s.job_seq();
    let refused: Vec<(&str, Value)> = vec![
        (
            "/jobs",
            json!({"executor": "command", "params": {"action": "hello"}}),
        ),
        (
            "/jobs",
            json!({"executor": "gridlabd", "params": {"model_text": "clock {}"}}),
        ),
        (
            "/jobs",
            json!({"executor": "spark", "params": {"app": "x.py"}}),
        ),
        (
            "/workflows",
            json!({"name": "w", "nodes": [{"name": "a", "executor": "solver", "params": {"monomers": [["a"]]}},
                             {"name": "b", "executor": "command", "params": {"action": "hello"},
                              "depends_on": ["a"]}]}),
        ),
        (
            "/v1/pipelines",
            json!({"name": "p", "executor": "command", "params": {}}),
        ),
        (
            "/api/v1/new-run/",
            json!({"project": "P", "pipeline": "hello@1", "study": "S", "email": "a@b.c",
                   "dataFiles": [{"fastqPath": "/d/r1.fq", "fastqCode": "R1", "sampleName": "s1"}]}),
        ),
    ];
    for (path, body) in refused {
        let (status, v) = s.call(&carol, Method::POST, path, Some(body)).await;
        assert_eq!(status, 403, "{path}: {v}");
        let text = v.to_string();
        assert!(text.contains("may not submit"), "{path}: {v}");
    }
    // wumai answers in its own envelope: HTTP 200, retCode 4105 (action forbidden).
    let (status, v) = s
        .call(&carol, Method::POST, "/", Some(json!({"action": "hello"})))
        .await;
    assert_eq!((status, &v["retCode"]), (200, &json!(4105)), "{v}");
    assert_eq!(s.job_seq(), seq, "no refused request made a job");
    assert_eq!(
        s.redis.cli(&["SCARD", "pipelines"]).trim(),
        "0",
        "nor a pipeline"
    );

    // The open kind needs no grant; a granted kind works.
    let (status, _) = s
        .call(
            &carol,
            Method::POST,
            "/jobs",
            Some(json!({"executor": "solver",
            "params": {"monomers": [["a"], ["a*"]]}})),
        )
        .await;
    assert_eq!(status, 201);
    let dave = b
        .create_key_granted("dave", Role::Client, Some(&["command".into()]))
        .await
        .unwrap();
    let (status, _) = s
        .call(
            &dave,
            Method::POST,
            "/jobs",
            Some(json!({"executor": "command",
            "params": {"action": "hello"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = s
        .call(
            &dave,
            Method::POST,
            "/jobs",
            Some(json!({"executor": "spark",
            "params": {"app": "x.py"}})),
        )
        .await;
    assert_eq!(status, 403, "a grant names kinds; others stay closed");

    // Checked inside pipeline_run.lua: carol's solver pipeline turned into a command one
    // by an admin does not run for carol.
    let (status, p) = s
        .call(
            &carol,
            Method::POST,
            "/v1/pipelines",
            Some(json!({"name": "mine",
            "executor": "solver", "params": {"monomers": [["a"]]}})),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let pid = p["uuid"].as_str().unwrap().to_string();
    let (status, _) = s
        .call(
            &s.admin,
            Method::PUT,
            &format!("/v1/pipelines/{pid}"),
            Some(json!({"name": "mine",
            "executor": "command", "params": {"action": "hello"}})),
        )
        .await;
    assert_eq!(status, 200);
    let seq = s.job_seq();
    let (status, v) = s
        .call(
            &carol,
            Method::POST,
            &format!("/v1/pipelines/{pid}/runs"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(s.job_seq(), seq);
}

#[tokio::test]
async fn another_owners_pipeline_is_not_found_to_every_verb() {
    let s = Stack::start(|_| {}).await;
    let template = json!({"name": "feeder", "executor": "command",
                          "params": {"action": "hello", "name": "alice"}});
    let (status, p) = s
        .call(
            &s.alice,
            Method::POST,
            "/v1/pipelines",
            Some(template.clone()),
        )
        .await;
    assert_eq!(status, 200, "{p}");
    let pid = p["uuid"].as_str().unwrap().to_string();
    let stored = s.redis.cli(&["HGETALL", &format!("pipeline_{pid}")]);

    let intruder = json!({"name": "feeder", "executor": "command",
                          "params": {"action": "hello", "name": "bob"}});
    let verbs: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/pipelines/{pid}"), None),
        (
            Method::PUT,
            format!("/v1/pipelines/{pid}"),
            Some(intruder.clone()),
        ),
        (Method::DELETE, format!("/v1/pipelines/{pid}"), None),
        (
            Method::POST,
            format!("/v1/pipelines/{pid}/runs"),
            Some(json!({})),
        ),
        (Method::GET, format!("/v1/pipelines/{pid}/runs"), None),
    ];
    for (method, path, body) in verbs {
        let (status, v) = s.call(&s.bob, method.clone(), &path, body.clone()).await;
        let missing = path.replace(&format!("/{pid}"), "/999");
        let (status_missing, v_missing) = s.call(&s.bob, method.clone(), &missing, body).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
        assert_eq!(
            (status, shape(&v)),
            (status_missing, shape(&v_missing)),
            "{method} {path}: the same answer as for a pipeline that does not exist"
        );
    }
    // Nor through a workflow node naming it.
    let (status, v) = s
        .call(
            &s.bob,
            Method::POST,
            "/workflows",
            Some(json!({"name": "w", "nodes": [
            {"name": "a", "pipeline": pid.parse::<u64>().unwrap()}]})),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    let (_, list) = s.call(&s.bob, Method::GET, "/v1/pipelines", None).await;
    assert_eq!(list, json!([]), "bob lists none of alice's pipelines");

    assert_eq!(
        s.redis.cli(&["HGETALL", &format!("pipeline_{pid}")]),
        stored,
        "alice's pipeline is unchanged"
    );
    let (status, mine) = s
        .call(&s.alice, Method::GET, &format!("/v1/pipelines/{pid}"), None)
        .await;
    assert_eq!((status, &mine["params"]), (200, &template["params"]));
    assert_eq!(mine["runs"], 0, "bob started no run of it");
    // An admin may change anyone's.
    let (status, _) = s
        .call(
            &s.admin,
            Method::PUT,
            &format!("/v1/pipelines/{pid}"),
            Some(template),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn another_owners_job_and_workflow_answer_404_to_every_action() {
    let s = Stack::start(|_| {}).await;
    // No executor runs: alice's jobs stay PENDING.
    let (_, j) = s
        .call(
            &s.alice,
            Method::POST,
            "/jobs",
            Some(json!({"executor": "solver",
            "params": {"monomers": [["a"], ["a*"]]}})),
        )
        .await;
    let id = j["id"].as_u64().unwrap();
    let (_, w) = s
        .call(
            &s.alice,
            Method::POST,
            "/workflows",
            Some(json!({"name": "w", "nodes": [
            {"name": "a", "executor": "command", "params": {"action": "hello"}}]})),
        )
        .await;
    let wid = w["id"].as_u64().unwrap();
    let job_before = s.redis.cli(&["HGETALL", &format!("job_{id}")]);

    let native: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/jobs/{id}/stop"), None),
        (
            Method::POST,
            format!("/jobs/{id}/lock"),
            Some(json!({"force": true})),
        ),
        (Method::POST, format!("/jobs/{id}/unlock"), None),
        (Method::POST, format!("/jobs/{id}/retry"), None),
        (Method::GET, format!("/jobs/{id}"), None),
        (Method::GET, format!("/jobs/{id}/artifacts"), None),
        (Method::GET, format!("/workflows/{wid}"), None),
        (Method::POST, format!("/workflows/{wid}/stop"), None),
    ];
    for (method, path, body) in native {
        let (status, v) = s.call(&s.bob, method.clone(), &path, body.clone()).await;
        let missing = path
            .replace(&format!("/{id}/"), "/999/")
            .replace(&format!("/{id}"), "/999")
            .replace(&format!("/{wid}"), "/999");
        let (status_missing, v_missing) = s.call(&s.bob, method.clone(), &missing, body).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
        assert_eq!(
            (status, shape(&v)),
            (status_missing, shape(&v_missing)),
            "{method} {path}: the same answer as for one that does not exist"
        );
    }
    let http = reqwest::Client::new();
    // The event stream and an artifact upload (not JSON calls).
    let events = http
        .get(s.api.url(&format!("/jobs/{id}/events")))
        .bearer_auth(&s.bob)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 404);
    let put = http
        .put(s.api.url(&format!("/jobs/{id}/artifacts/planted.csv")))
        .bearer_auth(&s.bob)
        .body("x,y\n")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 404);
    // Stand's face (X-Auth-Token) and StableConfigs' terminate.
    for path in ["stop", "lock", "unlock"] {
        let r = http
            .post(s.api.url(&format!("/jobs/{id}/{path}")))
            .header("x-auth-token", &s.bob)
            .json(&json!({"user": {"name": "bob"}, "computer": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "Stand {path}");
    }
    let (status, _) = s
        .call(&s.bob, Method::DELETE, &format!("/terminate/{id}"), None)
        .await;
    assert_eq!(status, 404);
    // wumai: CancelJob of another owner's job is its ResourceNotFound.
    let (_, v) = s
        .call(
            &s.bob,
            Method::POST,
            "/",
            Some(json!({"action": "CancelJob", "jobId": id})),
        )
        .await;
    assert_eq!(v["retCode"], 4104, "{v}");

    assert_eq!(
        s.redis.cli(&["HGETALL", &format!("job_{id}")]),
        job_before,
        "alice's job is unchanged"
    );
    let (_, w) = s
        .call(&s.alice, Method::GET, &format!("/workflows/{wid}"), None)
        .await;
    assert_ne!(w["status"], "CANCELLED", "{w}");
    let (_, a) = s.artifacts(&s.alice, id).await;
    assert_eq!(a["artifacts"], json!([]), "{a}");
}

#[tokio::test]
async fn a_job_id_reused_after_a_restore_inherits_no_artifacts() {
    let s = Stack::start(|_| {}).await;
    let b = &s.api.broker;
    let http = reqwest::Client::new();
    // alice's job 1 with a file.
    let old = s.solver_job(&s.alice).await;
    let put = http
        .put(s.api.url(&format!("/jobs/{old}/artifacts/secret.csv")))
        .bearer_auth(&s.alice)
        .body("alice's data")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    // Redis comes back from an older snapshot: the job and the counter are gone, the files
    // are not. Within a sweep the counter passes every stored id.
    s.redis.cli(&["DEL", &format!("job_{old}"), "job_seq"]);
    b.sweep_artifacts().await.unwrap();
    let new = s.solver_job(&s.bob).await;
    assert!(
        new > old,
        "job {new} took the id of a job whose files were stored"
    );
    let (_, a) = s.artifacts(&s.bob, new).await;
    assert_eq!(a["artifacts"], json!([]), "{a}");
    let got = http
        .get(s.api.url(&format!("/jobs/{old}/artifacts/secret.csv")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 404, "the orphaned files were swept");
}
