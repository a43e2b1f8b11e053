use std::time::Duration;

use broker::{Error, Status};
use serde_json::json;

use crate::harness::{broker, job, TestRedis};

#[tokio::test]
async fn a_finished_job_expires_after_result_ttl() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.result_ttl = Duration::from_millis(300));
    let (id, _) = b.submit(&b.new_job("x", json!(0))).await.unwrap();
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    b.complete(id, &c.token, &json!(1)).await.unwrap();
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("job_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 300, "PTTL {ttl}");
    assert_eq!(job(&b, id).await.status, Status::Completed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(b.get(id).await, Err(Error::NotFound(_))));
    // The next prune (every 10 s in sluice serve) takes it out of the listing indexes.
    b.prune().await.unwrap();
    let mut keys: Vec<String> = redis
        .cli(&["KEYS", "*"])
        .lines()
        .map(str::to_string)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "events",
            "ix:kinds",
            "ix:owners",
            "job_seq",
            "stats",
            "wake:x"
        ],
        "nothing of the job is left"
    );
}

#[tokio::test]
async fn result_ttl_is_per_job_and_running_jobs_never_expire() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut nj = b.new_job("x", json!(0));
    nj.result_ttl = Duration::from_secs(3600);
    let (id, _) = b.submit(&nj).await.unwrap();
    assert_eq!(redis.cli(&["PTTL", &format!("job_{id}")]).trim(), "-1");
    let c = b.claim("x", "w", 1).await.unwrap().remove(0);
    assert_eq!(redis.cli(&["PTTL", &format!("job_{id}")]).trim(), "-1");
    b.complete(id, &c.token, &json!(1)).await.unwrap();
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("job_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 3_590_000, "PTTL {ttl}");
}

/// Listing finished jobs: every job that ended for good is indexed newest first, filtered
/// by status and owner, paged and counted; a job leaves the indexes when its hash expires.
#[tokio::test]
async fn finished_jobs_are_listed_newest_first_and_leave_with_their_hash() {
    let redis = TestRedis::start();
    let api = crate::harness::TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    let mut ids = Vec::new();
    for (i, owner) in ["ana", "bob", "ana", "ana"].iter().enumerate() {
        let mut nj = b.new_job("k", json!(i));
        nj.owner = owner.to_string();
        nj.max_attempts = 1;
        let (id, _) = b.submit(&nj).await.unwrap();
        let c = b.claim("k", "w", 1).await.unwrap().remove(0);
        if i == 2 {
            b.fail(id, &c.token, "boom", false).await.unwrap();
        } else {
            b.complete(id, &c.token, &json!(i)).await.unwrap();
        }
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One that will have expired, and one still waiting (not history).
    let mut gone = b.new_job("k", json!("gone"));
    gone.owner = "ana".into();
    gone.result_ttl = Duration::from_secs(2);
    let (short_id, _) = b.submit(&gone).await.unwrap();
    let c = b.claim("k", "w", 1).await.unwrap().remove(0);
    b.complete(short_id, &c.token, &json!(null)).await.unwrap();
    b.submit(&b.new_job("k", json!("waiting"))).await.unwrap();

    let ana = b
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let list = |q: String| {
        let ana = ana.clone();
        let api = &api;
        async move {
            api.call(
                reqwest::Method::GET,
                &format!("/jobs?{q}"),
                Some(&ana),
                None,
            )
            .await
        }
    };
    let ids_of = |v: &serde_json::Value| -> Vec<u64> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect()
    };
    let (s, v) = list("finished=true&executor=k".into()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids_of(&v),
        [short_id.0, ids[3].0, ids[2].0, ids[0].0],
        "ana's, newest first; bob's is not hers"
    );
    let (_, v) = list("finished=true&executor=k&status=FAILED".into()).await;
    assert_eq!(ids_of(&v), [ids[2].0]);
    let (_, v) = list("finished=true&executor=k&limit=2".into()).await;
    assert_eq!(ids_of(&v), [short_id.0, ids[3].0]);
    let next = v["next"].as_str().unwrap().to_string();
    let (_, v) = list(format!("finished=true&executor=k&limit=2&cursor={next}")).await;
    assert_eq!(ids_of(&v), [ids[2].0, ids[0].0]);
    let (s, v) = list("finished=true".into()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        ids_of(&v),
        [short_id.0, ids[3].0, ids[2].0, ids[0].0],
        "every kind"
    );
    assert_eq!(v["counts"]["COMPLETED"], 3, "{v}");
    assert_eq!(v["counts"]["FAILED"], 1, "{v}");
    assert_eq!(
        v["counts"]["PENDING"], 0,
        "the waiting job is not hers: {v}"
    );
    let (s, v) = list("owner=bob".into()).await;
    assert_eq!(s, 403, "a client names only itself: {v}");

    // Its hash expires after its result_ttl; the next tick takes it out of the indexes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis.cli(&["EXISTS", &format!("job_{short_id}")]).trim() == "1" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job_{short_id} never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.prune().await.unwrap();
    let (_, v) = list("finished=true&executor=k".into()).await;
    assert_eq!(ids_of(&v), [ids[3].0, ids[2].0, ids[0].0], "expired: gone");
    assert_eq!(v["counts"]["COMPLETED"], 2, "{v}");
    for index in ["ix:k:COMPLETED", "ixo:ana"] {
        let member = redis.cli(&["ZSCORE", index, &short_id.to_string()]);
        assert_eq!(member.trim(), "", "pruned from {index}");
    }
    assert_eq!(
        redis.cli(&["ZCARD", "ix:k:COMPLETED"]).trim(),
        "3",
        "the others stay"
    );
}

/// Retention is a policy: each face keeps its jobs as its clients expect, a kind can say
/// otherwise, and a request's own result_ttl wins.
#[tokio::test]
async fn retention_follows_the_face_the_kind_and_the_request() {
    let redis = TestRedis::start();
    let api = crate::harness::TestApi::start(&redis, |c| {
        c.set("retention", "kind:gridlabd=2h").unwrap();
    })
    .await;
    let ttl = |id: u64| {
        redis
            .cli(&["HGET", &format!("job_{id}"), "result_ttl"])
            .trim()
            .to_string()
    };
    let post = |path: &'static str, body: serde_json::Value| {
        api.call(reqwest::Method::POST, path, None, Some(body))
    };
    let (_, v) = post("/jobs", json!({"executor": "command", "params": {}})).await;
    assert_eq!(
        ttl(v["id"].as_u64().unwrap()),
        "300000",
        "native: result_ttl (5m)"
    );
    let (_, v) = post(
        "/jobs",
        json!({"executor": "command", "params": {}, "result_ttl": "1m"}),
    )
    .await;
    assert_eq!(ttl(v["id"].as_u64().unwrap()), "60000", "the request's own");
    let (_, v) = post(
        "/jobs",
        json!({"executor": "gridlabd", "params": {"model": "m.glm"}}),
    )
    .await;
    assert_eq!(ttl(v["id"].as_u64().unwrap()), "7200000", "the kind's");
    let (_, v) = post("/task", json!({"monomers": [["a"]]})).await;
    let task: u64 = v["task_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(ttl(task), "300000", "StableConfigs keeps its 300 s");
    let (_, p) = post(
        "/v1/pipelines",
        json!({"name": "p", "executor": "command", "params": {}}),
    )
    .await;
    let runs: &'static str =
        Box::leak(format!("/v1/pipelines/{}/runs", p["uuid"].as_str().unwrap()).into_boxed_str());
    let (_, run) = post(runs, json!({})).await;
    let run: u64 = run["uuid"].as_str().unwrap().parse().unwrap();
    assert_eq!(ttl(run), "2592000000", "pipeline runs: 30 days");
    let (_, wf) = post(
        "/workflows",
        json!({"name": "w", "nodes": [{"name": "a", "executor": "command", "params": {}}]}),
    )
    .await;
    let wf_ttl = redis.cli(&["HGET", &format!("workflow_{}", wf["id"]), "result_ttl"]);
    assert_eq!(wf_ttl.trim(), "2592000000", "workflows: 30 days");
}
