//! The GridLAB-D Workflow Service face: pipelines (job templates), runs numbered by
//! `sequence` with inputs, their state history, console and callbacks, run by a real
//! `sluice-command`; inputs fetched from a real HTTP server and from other jobs.
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warp::Filter;

use crate::harness::{Proc, TestApi, TestRedis};

const ACTIONS: &str = r#"
[actions.hello]
argv = ["echo", "hello {name}"]
params = "none"

[actions.oops]
argv = ["sh", "-c", "echo partial; echo 'oops: bad feeder' >&2; exit 2"]
params = "none"
"#;

fn executor(redis: &TestRedis, config: &Path, artifacts: &Path) -> Proc {
    crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        redis,
        &["--config", &config.display().to_string()],
        [
            ("SLUICE_ARTIFACT_DIR", artifacts.as_os_str()),
            // The tests' input servers listen on loopback, which the outbound policy refuses
            // unless allowed.
            ("SLUICE_OUTBOUND_ALLOW", std::ffi::OsStr::new("127.0.0.1")),
        ],
    )
}

struct Setup {
    redis: TestRedis,
    api: TestApi,
    _exec: Proc,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let config = dir.path().join("actions.toml");
    std::fs::write(&config, ACTIONS).unwrap();
    let a = artifacts.clone();
    let api = TestApi::start(&redis, move |c| {
        c.artifact_dir = a;
        c.outbound_allow = vec!["127.0.0.1".into()];
    })
    .await;
    let exec = executor(&redis, &config, &artifacts);
    Setup {
        redis,
        api,
        _exec: exec,
        dir,
    }
}

async fn call(
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    api.call(method, path, None, body).await
}

async fn run_until(api: &TestApi, pipeline: &str, run: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = call(
            api,
            reqwest::Method::GET,
            &format!("/v1/pipelines/{pipeline}/runs/{run}"),
            None,
        )
        .await;
        if r["status"] == state {
            return r;
        }
        assert!(Instant::now() < deadline, "run {run} is not {state}: {r:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn states(run: &Value) -> Vec<&str> {
    run["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect()
}

/// A receiver that records every JSON body POSTed to it.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let route = warp::post()
        .and(warp::body::json())
        .map(move |body: Value| {
            g.lock().unwrap().push(body);
            warp::http::StatusCode::OK
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, got)
}

#[tokio::test]
async fn runs_are_numbered_and_keep_their_state_history_console_and_callbacks() {
    let s = setup().await;
    let api = &s.api;
    let (status, p) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({
            "name": "hello", "description": "greets", "executor": "command",
            "params": {"action": "hello", "name": "grid"}
        })),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    let pid = p["uuid"].as_str().unwrap().to_string();
    let (hook, got) = receiver().await;

    let mut runs = Vec::new();
    for n in 1..=2 {
        let (status, run) = call(
            api,
            reqwest::Method::POST,
            &format!("/v1/pipelines/{pid}/runs"),
            Some(json!({"inputs": [], "callback_url": hook})),
        )
        .await;
        assert_eq!(status, 200, "{run}");
        assert_eq!(run["sequence"], n, "{run}");
        assert_eq!(&states(&run)[..2], ["QUEUED", "NOT_STARTED"], "{run}");
        runs.push(run["uuid"].as_str().unwrap().to_string());
    }
    for run in &runs {
        let done = run_until(api, &pid, run, "COMPLETED").await;
        assert_eq!(
            states(&done),
            ["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"],
            "{done:#}"
        );
        let times: Vec<&str> = done["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["created_at"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "history in order: {times:?}"
        );
        let (_, console) = call(
            api,
            reqwest::Method::GET,
            &format!("/v1/pipelines/{pid}/runs/{run}/console"),
            None,
        )
        .await;
        assert_eq!(console["std_out"], "hello grid\n", "{console}");
        assert_eq!(console["std_err"], "", "{console}");
    }
    // Each state change reached the callback, in order, as {pipeline_run_uuid, state}.
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = got.lock().unwrap().clone();
    for run in &runs {
        let mine: Vec<&str> = calls
            .iter()
            .filter(|c| c["pipeline_run_uuid"] == run.as_str())
            .map(|c| c["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            mine,
            ["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"],
            "{calls:?}"
        );
    }
    let (_, list) = call(
        api,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{pid}/runs"),
        None,
    )
    .await;
    let seqs: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);

    // A failing run: FAILED, its stderr in the console.
    let (_, bad) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({
            "name": "oops", "executor": "command", "params": {"action": "oops"}, "max_attempts": 1
        })),
    )
    .await;
    let bad_id = bad["uuid"].as_str().unwrap().to_string();
    let (_, run) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{bad_id}/runs"),
        Some(json!({})),
    )
    .await;
    let run_id = run["uuid"].as_str().unwrap().to_string();
    let failed = run_until(api, &bad_id, &run_id, "FAILED").await;
    assert_eq!(
        states(&failed),
        ["QUEUED", "NOT_STARTED", "RUNNING", "FAILED"]
    );
    let (_, console) = call(
        api,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{bad_id}/runs/{run_id}/console"),
        None,
    )
    .await;
    assert!(
        console["std_err"]
            .as_str()
            .unwrap()
            .contains("oops: bad feeder"),
        "{console}"
    );
    // The history is plain text in Redis too.
    let history = s
        .redis
        .cli(&["LRANGE", &format!("history:job_{run_id}"), "0", "-1"]);
    assert!(history.contains("FAILED failed"), "{history}");
}

#[tokio::test]
async fn inputs_come_from_urls_and_other_jobs_artifacts_byte_for_byte() {
    let s = setup().await;
    let api = &s.api;
    // A real HTTP server with a 3 MiB file, and a 404.
    let weather: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let w = weather.clone();
    let files = warp::path!("weather.csv").map(move || w.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(files).incoming(listener).run());
    // Another job's artifact.
    let (other, _) = s
        .api
        .broker
        .submit(&s.api.broker.new_job("nobody", json!(0)))
        .await
        .unwrap();
    let put = reqwest::Client::new()
        .put(api.url(&format!("/jobs/{other}/artifacts/feeder.glm")))
        .body("clock {}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);

    let (_, p) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({
            "name": "with-inputs", "executor": "command", "params": {"action": "hello", "name": "x"}
        })),
    )
    .await;
    let pid = p["uuid"].as_str().unwrap().to_string();
    let (status, run) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({
            "inputs": [
                {"name": "weather.csv", "url": format!("{base}/weather.csv")},
                {"name": "model.glm", "job": other.0, "artifact": "feeder.glm"}
            ]
        })),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["inputs"][0]["name"], "weather.csv");
    let run_id = run["uuid"].as_str().unwrap().to_string();
    let done = run_until(api, &pid, &run_id, "COMPLETED").await;
    let names: Vec<&str> = done["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["model.glm", "weather.csv"], "{done:#}");
    let got = reqwest::get(api.url(&format!("/jobs/{run_id}/artifacts/weather.csv")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got[..] == weather[..],
        "weather.csv byte for byte ({} bytes)",
        got.len()
    );
    let model = reqwest::get(api.url(&format!("/jobs/{run_id}/artifacts/model.glm")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(model, "clock {}");

    // An input that cannot exist fails the run for good, naming it.
    let (_, run) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({
            "inputs": [{"name": "gone.csv", "url": format!("{base}/gone.csv")}]
        })),
    )
    .await;
    let run_id = run["uuid"].as_str().unwrap().to_string();
    run_until(api, &pid, &run_id, "FAILED").await;
    let job = s.api.broker.get(run_id.parse().unwrap()).await.unwrap();
    let error = job.error.unwrap_or_default();
    assert!(
        error.contains("gone.csv") && error.contains("404"),
        "{error}"
    );
    assert_eq!(
        job.attempt, 1,
        "not retried: another attempt would fail the same way"
    );
    drop(s.dir);
}

#[tokio::test]
async fn the_face_answers_in_the_services_words_and_refuses_what_it_cannot_run() {
    let s = setup().await;
    let api = &s.api;
    let (status, v) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({
            "name": "docker", "docker_image_url": "python:3.8", "repository_ssh_url": "git@x:y.git"
        })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        v["message"].as_str().unwrap().contains("executor kind"),
        "{v}"
    );
    let (status, v) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines/99/runs",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, v["message"].as_str()),
        (404, Some("pipeline 99 not found"))
    );
    let (status, v) = call(
        api,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({
            "name": "p", "executor": "command", "params": {"action": "hello", "name": "a"}
        })),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let pid = v["uuid"].as_str().unwrap().to_string();
    let (status, v) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({"inputs": [{"name": "../etc/passwd", "url": "http://x/y"}]})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({"callback_url": "file:///tmp/x"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    // PUT replaces the template: the next run greets b.
    let (status, v) = call(
        api,
        reqwest::Method::PUT,
        &format!("/v1/pipelines/{pid}"),
        Some(json!({
            "name": "p2", "executor": "command", "params": {"action": "hello", "name": "b"}
        })),
    )
    .await;
    assert_eq!((status, v["name"].as_str()), (200, Some("p2")), "{v}");
    let (_, run) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({})),
    )
    .await;
    let run_id = run["uuid"].as_str().unwrap().to_string();
    let done = run_until(api, &pid, &run_id, "COMPLETED").await;
    assert_eq!(done["sequence"], 1);
    let (_, console) = call(
        api,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{pid}/runs/{run_id}/console"),
        None,
    )
    .await;
    assert_eq!(console["std_out"], "hello b\n");
    // A run is found only under its own pipeline.
    let (status, _) = call(
        api,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{}/runs/{run_id}", 77),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Soft delete: gone from the list and from runs, its runs still readable by job id.
    let (status, _) = call(
        api,
        reqwest::Method::DELETE,
        &format!("/v1/pipelines/{pid}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = call(api, reqwest::Method::GET, "/v1/pipelines", None).await;
    assert_eq!(list, json!([]));
    let (status, _) = call(
        api,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        s.redis
            .cli(&["HGET", &format!("pipeline_{pid}"), "name"])
            .trim(),
        "p2"
    );
}

#[tokio::test]
async fn inputs_may_copy_only_jobs_the_caller_may_see() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    let any = ["*".to_string()];
    let ana = b
        .create_key_granted("ana", broker::apikeys::Role::Client, Some(&any))
        .await
        .unwrap();
    let bob = b
        .create_key_granted("bob", broker::apikeys::Role::Client, Some(&any))
        .await
        .unwrap();
    let submit = |key: String, body: Value| {
        let api = &api;
        async move {
            api.call(reqwest::Method::POST, "/jobs", Some(&key), Some(body))
                .await
        }
    };
    let (_, bobs) = submit(bob.clone(), json!({"executor": "x"})).await;
    let bobs = bobs["id"].as_u64().unwrap();
    let copy = json!([{"name": "secret.csv", "job": bobs}]);
    let (status, v) = submit(ana.clone(), json!({"executor": "x", "inputs": copy})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("invalid request: input \"secret.csv\": job {bobs} not found")
    );
    let (status, _) = submit(bob.clone(), json!({"executor": "x", "inputs": copy})).await;
    assert_eq!(status, 201, "his own job's files are his to use");
    let (_, pipeline) = api
        .call(
            reqwest::Method::POST,
            "/v1/pipelines",
            Some(&ana),
            Some(json!({"name": "p", "executor": "x"})),
        )
        .await;
    let runs = format!("/v1/pipelines/{}/runs", pipeline["uuid"].as_str().unwrap());
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &runs,
            Some(&ana),
            Some(json!({"inputs": copy})),
        )
        .await;
    assert_eq!(status, 400);
    let wf = json!({"name": "w", "inputs": copy, "nodes": [{"name": "a", "executor": "x"}]});
    let (status, _) = api
        .call(reqwest::Method::POST, "/workflows", Some(&ana), Some(wf))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_stop_interrupts_an_input_download_that_hangs() {
    let s = setup().await;
    // A server that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slow.csv", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let (id, _) = {
        let mut nj = s
            .api
            .broker
            .new_job("command", json!({"action": "hello", "name": "x"}));
        nj.extra.push((
            "inputs".into(),
            json!([{"name": "slow.csv", "url": url}]).to_string(),
        ));
        s.api.broker.submit(&nj).await.unwrap()
    };
    crate::harness::wait_for(
        &s.api.broker,
        id,
        |j| j.status == broker::Status::Running,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    s.api.broker.stop(id).await.unwrap();
    crate::harness::wait_for(
        &s.api.broker,
        id,
        |j| j.status == broker::Status::Canceled,
        Duration::from_secs(5),
    )
    .await;
    println!(
        "canceled {} ms after the stop, mid-download",
        t0.elapsed().as_millis()
    );
}

/// The service's own requests: search by ids, cancel a run (DELETE, or PUT state CANCELLED),
/// one attempt per run, states that only move forward with `status` their last, and its
/// `{"message"}` 401 for a missing or bad key.
#[tokio::test]
async fn runs_move_forward_once_and_are_searched_and_cancelled_as_the_service_did() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| {
        c.auth = true;
        c.lease = Duration::from_millis(200);
    })
    .await;
    let command = ["command".to_string()];
    let key = |owner: &'static str| {
        let b = api.broker.clone();
        let kinds = command.clone();
        async move {
            b.create_key_granted(owner, broker::apikeys::Role::Client, Some(&kinds))
                .await
                .unwrap()
        }
    };
    let (ana, bob) = (key("ana").await, key("bob").await);
    let ws = |k: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = reqwest::Client::new()
            .request(method, api.url(path))
            .header("workflow-api-key", k);
        if let Some(b) = body {
            r = r.json(&b);
        }
        crate::harness::send(r)
    };
    let template = json!({"name": "sim", "executor": "command", "params": {"action": "hello"}});
    let (_, p) = ws(
        &ana,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(template.clone()),
    )
    .await;
    let (_, q) = ws(&bob, reqwest::Method::POST, "/v1/pipelines", Some(template)).await;
    let (mine, theirs) = (p["uuid"].as_str().unwrap(), q["uuid"].as_str().unwrap());

    // Search answers the caller's own, in the order asked; others and unknown ids are left out.
    let (s, found) = ws(
        &ana,
        reqwest::Method::POST,
        "/v1/pipelines/search",
        Some(json!({"uuids": [theirs, mine, "999", "x"]})),
    )
    .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["uuid"], mine);

    // A missing or bad key: the service's 401 {"message"}.
    for k in [None, Some("sk_bad")] {
        let mut r = reqwest::Client::new().get(api.url("/v1/pipelines"));
        if let Some(k) = k {
            r = r.header("workflow-api-key", k);
        }
        let (s, v) = crate::harness::send(r).await;
        assert_eq!(s, 401);
        assert!(v["message"].is_string() && v.get("error").is_none(), "{v}");
    }

    // One attempt per run; an executor lost mid-run: the run stays RUNNING while it waits to
    // run again, and `status` agrees with its states.
    let runs = format!("/v1/pipelines/{mine}/runs");
    let (_, run) = ws(&ana, reqwest::Method::POST, &runs, Some(json!({}))).await;
    let run_id = run["uuid"].as_str().unwrap().to_string();
    assert_eq!(
        redis
            .cli(&["HGET", &format!("job_{run_id}"), "max_attempts"])
            .trim(),
        "1"
    );
    let claimed = api.broker.claim("command", "w", 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (reaped, _) = api.broker.tick().await.unwrap();
    assert_eq!(reaped.requeued, 1, "the lease expired");
    let path = format!("{runs}/{run_id}");
    let (_, v) = ws(&ana, reqwest::Method::GET, &path, None).await;
    assert_eq!(
        (v["status"].as_str(), states(&v)),
        (Some("RUNNING"), vec!["QUEUED", "NOT_STARTED", "RUNNING"]),
        "{v}"
    );

    // Cancel: another owner's run is not found; other states are refused; CANCELLED works
    // once, then it is an invalid transition.
    let (s, v) = ws(&bob, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = ws(
        &ana,
        reqwest::Method::PUT,
        &format!("{path}/state"),
        Some(json!({"state": "COMPLETED"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = ws(
        &ana,
        reqwest::Method::PUT,
        &format!("{path}/state"),
        Some(json!({"state": "CANCELLED"})),
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["status"].as_str()),
        (200, Some("CANCELLED")),
        "{v}"
    );
    assert_eq!(states(&v).last().copied(), Some("CANCELLED"));
    let (s, v) = ws(&ana, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Invalid state transition: CANCELLED->CANCELLED"),
        "{v}"
    );
    // A second run cancelled with DELETE while it waits.
    let (_, run) = ws(&ana, reqwest::Method::POST, &runs, Some(json!({}))).await;
    let (s, v) = ws(
        &ana,
        reqwest::Method::DELETE,
        &format!("{runs}/{}", run["uuid"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["status"].as_str()),
        (200, Some("CANCELLED")),
        "{v}"
    );
}
