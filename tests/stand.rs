//! Clusters and the Lemonade Stand face over real HTTP, and Stand's `start`/`stop` lists read
//! by a Stand-era consumer (BLPOP) on a real Redis.
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{TestApi, TestRedis};

/// Sends `body` (if any) to `path`; Stand's clients always send X-Auth-Token.
async fn call(
    api: &TestApi,
    method: Method,
    path: &str,
    stand: bool,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Client::new().request(method, api.url(path));
    if stand {
        req = req.header("x-auth-token", "stand");
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const LOCAL: &str = r#"{"name": "local", "type": "SPARK_LOCAL", "address": "local[2]",
    "general_parameters": "spark.ui.enabled=false"}"#;

#[tokio::test]
async fn clusters_are_managed_over_http_and_jobs_naming_a_bad_one_are_refused() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let local: Value = serde_json::from_str(LOCAL).unwrap();

    let (s, v) = call(&api, Method::PUT, "/clusters/1", false, Some(local.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["id"].as_u64(), v["enabled"].as_bool()),
        (Some(1), Some(true)),
        "{v}"
    );
    assert_eq!(
        v["executor_memory"], "",
        "Spark's own default (Stand's 1M is refused by Spark)"
    );
    let (s, _) = call(&api, Method::PUT, "/clusters/1", false, Some(local.clone())).await;
    assert_eq!(s, StatusCode::OK, "replacing answers 200");
    // Stand's GET /clusters/{id} answers the record, with or without its header.
    let (s, v) = call(&api, Method::GET, "/clusters/1", true, None).await;
    assert_eq!(
        (s, v["address"].as_str()),
        (StatusCode::OK, Some("local[2]"))
    );
    assert_eq!(cli(&redis, &["HGET", "cluster_1", "type"]), "SPARK_LOCAL");

    let (s, v) = call(
        &api,
        Method::PUT,
        "/clusters/2",
        false,
        Some(json!({"name": "x", "type": "SLURM"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("SLURM"),
        "{v}"
    );
    let mut off = local.clone();
    off["enabled"] = json!(false);
    off["name"] = json!("off");
    call(&api, Method::PUT, "/clusters/2", false, Some(off)).await;
    let (_, v) = call(&api, Method::GET, "/clusters", false, None).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2), "{v}");

    let submit =
        |cluster: &str| json!({"executor": "spark", "params": {"app": "a.py"}, "cluster": cluster});
    let (s, v) = call(&api, Method::POST, "/jobs", false, Some(submit("2"))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cluster_disabled")),
        "{v}"
    );
    let (s, v) = call(&api, Method::POST, "/jobs", false, Some(submit("9"))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cluster_not_found")),
        "{v}"
    );
    assert_eq!(
        cli(&redis, &["GET", "job_seq"]),
        "",
        "a refused submit creates nothing"
    );
    let (s, v) = call(&api, Method::POST, "/jobs", false, Some(submit("1"))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (s, _) = call(&api, Method::DELETE, "/clusters/2", false, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = call(&api, Method::DELETE, "/clusters/2", false, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(cli(&redis, &["SMEMBERS", "clusters"]), "1");
}

#[tokio::test]
async fn only_admins_write_clusters() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let client = api
        .broker
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let admin = api
        .broker
        .create_key("ops", broker::apikeys::Role::Admin)
        .await
        .unwrap();
    let put = |key: String| {
        Client::new()
            .put(api.url("/clusters/1"))
            .header("x-auth-token", key)
            .body(LOCAL)
            .send()
    };
    assert_eq!(
        put(client.clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(admin).await.unwrap().status(),
        StatusCode::CREATED,
        "X-Auth-Token is an API key"
    );
    let r = Client::new()
        .get(api.url("/clusters/1"))
        .header("x-auth-token", "sk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = Client::new()
        .get(api.url("/clusters/1"))
        .bearer_auth(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "clients read clusters");
    // The Workflow Service's header carries a key the same way.
    for (key, want) in [
        (client.as_str(), StatusCode::OK),
        ("sk_wrong", StatusCode::UNAUTHORIZED),
    ] {
        let r = Client::new()
            .get(api.url("/clusters/1"))
            .header("workflow-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "Workflow-API-Key {key}");
    }
}

#[tokio::test]
async fn stand_face_reads_stops_and_locks_jobs_in_stands_words() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    local_cluster(&api).await;
    // Stand's jobs belong to workflows: each here is a one-node workflow on cluster 1.
    let (waiting, w1) = in_workflow(b).await;

    let (s, v) = call(&api, Method::GET, &format!("/jobs/{waiting}"), true, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["workflow"]["id"].as_u64(),
            v["cluster"]["id"].as_u64()
        ),
        (Some("WAITING"), Some(w1), Some(1)),
        "{v}"
    );
    let (_, native) = call(&api, Method::GET, &format!("/jobs/{waiting}"), false, None).await;
    assert_eq!(
        native["status"], "PENDING",
        "without X-Auth-Token the native face answers"
    );

    // Lock: Stand's body; a second locker gets 409 ALREADY_LOCKED naming the holder.
    let lock = format!("/jobs/{waiting}/lock");
    let (_, v) = call(&api, Method::GET, &lock, true, None).await;
    assert_eq!(
        (v["status"].as_str(), v["lock"].is_null()),
        (Some("OK"), true),
        "{v}"
    );
    let ana = json!({"user": {"id": 1, "name": "Ana"}, "computer": "lab-3"});
    let (s, v) = call(&api, Method::POST, &lock, true, Some(ana)).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::OK, Some("Locked")),
        "{v}"
    );
    let (s, v) = call(
        &api,
        Method::POST,
        &lock,
        true,
        Some(json!({"user": {"name": "Bo"}, "computer": "x"})),
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str(), v["code"].as_str()),
        (StatusCode::CONFLICT, Some("ERROR"), Some("ALREADY_LOCKED")),
        "{v}"
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Job {waiting} is locked by Ana @ lab-3 since 20")),
        "{message}"
    );
    let (_, v) = call(&api, Method::GET, &lock, true, None).await;
    assert_eq!(v["lock"]["user"]["name"], "Ana", "{v}");
    let (s, v) = call(
        &api,
        Method::POST,
        &format!("/jobs/{waiting}/stop"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("LOCKED")),
        "a locked job is not stopped: {v}"
    );
    let (s, v) = call(
        &api,
        Method::POST,
        &format!("/jobs/{waiting}/unlock"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::OK, Some("Unlocked")),
        "{v}"
    );

    // Stop from WAITING: CANCELED at once, and a canceled job is never started.
    let (s, v) = call(
        &api,
        Method::POST,
        &format!("/jobs/{waiting}/stop"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["status"].as_str(), v["data"]["status"].as_str()),
        (StatusCode::OK, Some("OK"), Some("CANCELED")),
        "{v}"
    );
    assert!(
        b.claim("spark", "w", 10).await.unwrap().is_empty(),
        "nothing to start"
    );
    assert_eq!(
        cli(&redis, &["HGET", &format!("job_{waiting}"), "status"]),
        "CANCELED"
    );
    let (s, v) = call(
        &api,
        Method::POST,
        &format!("/jobs/{waiting}/stop"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ALREADY_FINISHED")),
        "{v}"
    );

    // RUNNING: Stand says CANCELED at once; the id goes on the stop list.
    let (running, w2) = in_workflow(b).await;
    let claimed = b.claim("spark", "w", 1).await.unwrap().remove(0);
    let (_, v) = call(&api, Method::GET, &format!("/jobs/{running}"), true, None).await;
    assert_eq!(v["status"], "RUNNING");
    let (s, v) = call(
        &api,
        Method::POST,
        &format!("/jobs/{running}/stop"),
        true,
        None,
    )
    .await;
    assert_eq!(
        (s, v["data"]["status"].as_str()),
        (StatusCode::OK, Some("CANCELED")),
        "{v}"
    );
    b.cancel(running, &claimed.token).await.unwrap();
    // A failed attempt with attempts left waits as INTERRUPTED; failing for good is ERROR.
    let (retried, w3) = in_workflow(b).await;
    let c = b.claim("spark", "w", 1).await.unwrap().remove(0);
    b.fail(retried, &c.token, "executor lost", true)
        .await
        .unwrap();
    let (_, v) = call(&api, Method::GET, &format!("/jobs/{retried}"), true, None).await;
    assert_eq!(v["status"], "INTERRUPTED", "{v}");

    let (s, v) = call(&api, Method::GET, "/jobs/999", true, None).await;
    assert_eq!(
        (s, v["status"].as_str(), v["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("ERROR"), Some("Not found"))
    );

    // Jobs that never went on `start` never go on `stop`: a native job and a StableConfigs
    // task stopped through their own faces.
    let mut task = broker::JobId(0);
    for (kind, params, method, path) in [
        (
            "spark",
            json!({"app": "a.py"}),
            Method::POST,
            "/jobs/{}/stop",
        ),
        (
            "solver",
            json!({"monomers": [["a"]]}),
            Method::DELETE,
            "/terminate/{}",
        ),
    ] {
        let (id, _) = b.submit(&b.new_job(kind, params)).await.unwrap();
        let path = path.replace("{}", &id.to_string());
        let (s, _) = call(&api, method, &path, false, None).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        task = id;
    }
    assert_eq!(
        cli(&redis, &["HGET", &format!("job_{task}"), "status"]),
        "CANCELED"
    );

    // Stand's lists, in order: a start message per cluster job, every stopped one of them.
    assert_eq!(
        cli(&redis, &["LRANGE", "start", "0", "-1"]),
        format!("{{'job_id': {waiting}, 'workflow': {{'id': {w1}}}}}\n{{'job_id': {running}, 'workflow': {{'id': {w2}}}}}\n{{'job_id': {retried}, 'workflow': {{'id': {w3}}}}}")
    );
    assert_eq!(
        cli(&redis, &["LRANGE", "stop", "0", "-1"]),
        format!("{waiting}\n{running}")
    );
}

#[tokio::test]
async fn stand_lists_feed_a_blocking_consumer_and_stay_capped_without_one() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.stop_list_cap = 5).await;
    let b = &api.broker;
    local_cluster(&api).await;
    let mut nj = b.new_job("spark", json!({"app": "a.py"}));
    nj.extra = vec![("cluster".into(), "1".into())];
    // A Stand-era consumer blocks on `start` before anything is submitted.
    let url = redis.url.clone();
    let consumer = tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let got: (String, String) = redis::cmd("BLPOP")
            .arg("start")
            .arg(10)
            .query_async(&mut c)
            .await
            .unwrap();
        got.1
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (first, _) = b.submit(&nj).await.unwrap();
    assert_eq!(
        consumer.await.unwrap(),
        format!("{{'job_id': {first}, 'workflow': {{'id': None}}}}")
    );
    for _ in 0..20 {
        b.submit(&nj).await.unwrap();
    }
    assert_eq!(
        cli(&redis, &["LLEN", "start"]),
        "5",
        "only the newest stop_list_cap entries are kept"
    );
    let plain = b.new_job("spark", json!({"app": "a.py"}));
    b.submit(&plain).await.unwrap();
    assert_eq!(
        cli(&redis, &["LLEN", "start"]),
        "5",
        "jobs without a cluster are not Stand's"
    );
}

/// Stores cluster 1 (LOCAL) through the API, as every Stand job here names it.
async fn local_cluster(api: &TestApi) {
    let (s, v) = call(
        api,
        Method::PUT,
        "/clusters/1",
        false,
        Some(serde_json::from_str(LOCAL).unwrap()),
    )
    .await;
    assert!(s.is_success(), "cluster 1 stored: {v}");
}

fn cli(redis: &TestRedis, args: &[&str]) -> String {
    redis.cli(args).trim().to_string()
}

/// A one-node workflow running a spark job on cluster 1: (its job, the workflow id).
async fn in_workflow(b: &broker::Broker) -> (broker::JobId, u64) {
    let (id, jobs) = crate::workflows::plan(
        b,
        json!({
            "name": "stand",
            "nodes": [{"name": "s", "executor": "spark", "params": {"app": "a.py"}, "cluster": "1"}]
        }),
    )
    .await;
    (jobs[0], id)
}

/// A Stand client creates a job with Stand's own body under X-Auth-Token and reads Stand's
/// JobDetail back: `results` a list, `cluster` and `workflow` objects, `user`, no nulls; the
/// job is announced on `start` with its Lemonade workflow's id.
#[tokio::test]
async fn stand_clients_create_jobs_with_stands_body_and_read_its_schema() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    local_cluster(&api).await;
    let body = json!({
        "name": "Iris classification",
        "type": "NORMAL",
        "cluster": {"id": 1},
        "workflow": {"id": 204, "name": "Iris", "tasks": [{"id": "t1", "operation": {"id": 26}}]},
        "steps": [{"id": 1, "status": "PENDING", "task": {"id": "t1"}}],
        "user": {"id": 12, "login": "ana", "name": "Ana"},
        "app_configs": {"locale": "pt"},
        "persist": true,
        "params": {"app": "iris.py"}
    });
    let (s, v) = call(&api, Method::POST, "/jobs", true, Some(body)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_u64().unwrap();
    assert_eq!(
        (v["name"].as_str(), v["type"].as_str(), v["status"].as_str()),
        (Some("Iris classification"), Some("NORMAL"), Some("WAITING"))
    );
    assert_eq!(v["workflow"], json!({"id": 204, "name": "Iris"}));
    assert_eq!(v["cluster"], json!({"id": 1, "name": "local"}));
    assert_eq!(v["user"], json!({"id": 12, "login": "ana", "name": "Ana"}));
    assert_eq!(v["steps"][0]["task"]["id"], "t1");
    assert_eq!(v["results"], json!([]));
    for absent in ["started", "finished", "exception_stack"] {
        assert!(v.get(absent).is_none(), "{absent} null is dropped: {v}");
    }
    assert_eq!(
        cli(&redis, &["LRANGE", "start", "0", "-1"]),
        format!("{{'job_id': {id}, 'workflow': {{'id': 204}}}}")
    );
    assert_eq!(
        cli(&redis, &["HGET", &format!("job_{id}"), "workflow"]),
        "",
        "a Lemonade workflow is not a Sluice workflow"
    );
    // The executor got Stand's settings beside its own params.
    let job = api.broker.get(broker::JobId(id)).await.unwrap();
    assert_eq!(
        (
            job.params["app"].as_str(),
            job.params["app_configs"]["locale"].as_str(),
            job.params["workflow"]["id"].as_u64()
        ),
        (Some("iris.py"), Some("pt"), Some(204))
    );

    // Finished, its result is Stand's results list.
    let c = api.broker.claim("spark", "w", 1).await.unwrap().remove(0);
    api.broker
        .complete(c.id, &c.token, &json!({"accuracy": 0.97}))
        .await
        .unwrap();
    let (_, v) = call(&api, Method::GET, &format!("/jobs/{id}"), true, None).await;
    assert_eq!(v["status"], "COMPLETED", "{v}");
    let content: Value =
        serde_json::from_str(v["results"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["accuracy"], 0.97);

    // A bare integer cluster works; a missing or unknown one is Stand's error.
    let (s, v) = call(
        &api,
        Method::POST,
        "/jobs",
        true,
        Some(json!({"name": "n", "cluster": 1, "workflow": {"id": 1}, "params": {"app": "a.py"}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (bad, code) in [
        (json!({"name": "n"}), "INVALID_DATA"),
        (json!({"cluster": {"id": "x"}}), "INVALID_DATA"),
        (json!({"cluster": 9}), "INVALID_CLUSTER"),
        (
            json!({"cluster": 1, "workflow": {"id": "w"}}),
            "INVALID_DATA",
        ),
    ] {
        let (s, v) = call(&api, Method::POST, "/jobs", true, Some(bad.clone())).await;
        assert_eq!(
            (s, v["status"].as_str(), v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ERROR"), Some(code)),
            "{bad}: {v}"
        );
    }
    // Without Stand's header, the native API answers (and knows no 'workflow' object).
    let (s, _) = call(
        &api,
        Method::POST,
        "/jobs",
        false,
        Some(json!({"executor": "spark", "cluster": 1, "workflow": {"id": 1}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
