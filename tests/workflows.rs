//! Workflows (`POST /workflows`): DAGs of jobs released in Lua as their parents complete,
//! run by real `sluice-command` processes; failures cancel; bad graphs are refused.
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{Proc, TestApi, TestRedis, TestStore};
use broker::artifacts::StoreKind;
use broker::JobId;

const ACTIONS: &str = r#"
[actions.nap]
argv = ["sleep", "{secs}"]
params = "none"

[actions.fail]
argv = ["sh", "-c", "echo broken >&2; exit 3"]
params = "none"

[actions.model]
argv = ["python3", "-c", "import sys; open(sys.argv[1] + '/feeder.glm', 'w').write(sys.argv[2].replace('AREA', sys.argv[3]))", "{output_dir}", "{model}", "{area}"]
params = "none"
files = true

[actions.summary]
argv = ["python3", "-c", "import csv, sys; rows = [r for r in csv.reader(open(sys.argv[1] + '/house1.csv')) if r and not r[0].startswith('#')]; open(sys.argv[2] + '/summary.txt', 'w').write('%d rows, area %s' % (len(rows), rows[0][3]))", "{input_dir}", "{output_dir}"]
params = "none"
files = true
"#;

/// Six hours of a house, recorded hourly; AREA is filled in by the first node.
const HOUSE: &str = "clock { timezone PST+8PDT; starttime '2020-01-01 00:00:00'; stoptime '2020-01-01 06:00:00'; }
module tape;
module residential { implicit_enduses NONE; }
object house { name house1; floor_area AREA; heating_system_type HEAT_PUMP;
  object recorder { property air_temperature,outdoor_temperature,floor_area; interval 3600; file house1.csv; }; }";

fn executor(redis: &TestRedis, config: &Path, exec_size: usize) -> Proc {
    crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        redis,
        &["--config", &config.display().to_string()],
        [
            ("SLUICE_EXEC_SIZE", exec_size.to_string()),
            ("SLUICE_PICK_SIZE", exec_size.to_string()),
            ("SLUICE_LEASE", "2s".into()),
        ],
    )
}

fn actions() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("actions.toml");
    std::fs::write(&path, ACTIONS).unwrap();
    (dir, path)
}

async fn post(api: &TestApi, body: &Value) -> (u16, Value) {
    api.call(
        reqwest::Method::POST,
        "/workflows",
        None,
        Some(body.clone()),
    )
    .await
}

async fn get(api: &TestApi, id: u64) -> Value {
    reqwest::get(api.url(&format!("/workflows/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the workflow until its status is final; returns it.
async fn finished(api: &TestApi, id: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let wf = get(api, id).await;
        if matches!(wf["status"].as_str(), Some("COMPLETED" | "CANCELLED"))
            && wf["finished"].is_string()
        {
            return wf;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {id} not finished: {wf:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ms(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Job `id`'s history: (unix ms, status, event).
async fn history(api: &TestApi, id: JobId) -> Vec<(u64, String, String)> {
    api.broker
        .history(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(at, s, e)| (ms(&at), s, e))
        .collect()
}

fn when(h: &[(u64, String, String)], event: &str) -> Option<u64> {
    h.iter().find(|(_, _, e)| e == event).map(|(t, _, _)| *t)
}

/// A random DAG: node i depends on up to 3 earlier nodes, each with probability 1/4.
fn random_dag(n: usize, mut seed: u64) -> Vec<Vec<usize>> {
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let mut parents: Vec<usize> = (0..i).filter(|_| next() % 4 == 0).collect();
            while parents.len() > 3 {
                let drop = (next() as usize) % parents.len();
                parents.remove(drop);
            }
            parents
        })
        .collect()
}

#[tokio::test]
async fn a_random_20_node_dag_runs_in_topological_order_with_every_free_slot_used() {
    const SLOTS: usize = 4;
    const NAP_MS: u64 = 400;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let (_dir, config) = actions();
    let _exec = executor(&redis, &config, SLOTS);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let dag = random_dag(20, seed);
    let nodes: Vec<Value> = dag
        .iter()
        .enumerate()
        .map(|(i, ps)| {
            json!({"name": format!("n{i}"), "executor": "command",
                   "params": {"action": "nap", "secs": NAP_MS as f64 / 1000.0},
                   "depends_on": ps.iter().map(|p| format!("n{p}")).collect::<Vec<_>>()})
        })
        .collect();
    // Listed children first, so the API's ordering is what puts parents first.
    let reversed: Vec<Value> = nodes.iter().rev().cloned().collect();
    let (status, made) = post(&api, &json!({"name": "dag", "nodes": reversed})).await;
    assert_eq!(status, 201, "{made}");
    let wf_id = made["id"].as_u64().unwrap();
    let wf = finished(&api, wf_id, Duration::from_secs(90)).await;
    assert_eq!(wf["status"], "COMPLETED", "seed {seed}: {wf:#}");
    assert_eq!(wf["completed"], 20);

    let id_of = |i: usize| JobId(made["jobs"][format!("n{i}")].as_u64().unwrap());
    let mut start = [0u64; 20];
    let mut end = [0u64; 20];
    for i in 0..20 {
        let h = history(&api, id_of(i)).await;
        start[i] = when(&h, "claimed").unwrap_or_else(|| panic!("n{i} never claimed: {h:?}"));
        end[i] = when(&h, "completed").unwrap();
        assert_eq!(
            h.iter().filter(|(_, _, e)| e == "claimed").count(),
            1,
            "n{i}: {h:?}"
        );
    }
    let created = ms(wf["created"].as_str().unwrap());
    let running_at = |t: u64| (0..20).filter(|&j| start[j] <= t && t < end[j]).count();
    let mut peak = 0;
    for i in 0..20 {
        // Topological: no node starts before every parent completed.
        let ready = dag[i].iter().map(|&p| end[p]).max().unwrap_or(created);
        assert!(
            start[i] >= ready,
            "seed {seed}: n{i} started before a parent completed"
        );
        // Work-conserving: a ready node waits only while every slot is busy.
        let waited = start[i] - ready;
        if waited > 300 {
            let probe = ready + 250;
            assert_eq!(
                running_at(probe),
                SLOTS,
                "seed {seed}: n{i} waited {waited} ms with a free slot at +250 ms"
            );
        }
        peak = peak.max(running_at(start[i]));
    }
    assert!(
        peak <= SLOTS,
        "seed {seed}: {peak} ran at once on {SLOTS} slots"
    );
    println!(
        "seed {seed}: 20 nodes, {} edges, peak {peak}/{SLOTS} at once, makespan {} ms",
        dag.iter().map(Vec::len).sum::<usize>(),
        end.iter().max().unwrap() - created
    );
}

/// a -> b -> d, a -> c -> e; b fails.
fn failing_graph(on_failure: &str, c_secs: f64) -> Value {
    let nap = |s: f64| json!({"action": "nap", "secs": s});
    json!({
        "name": "failing",
        "on_failure": on_failure,
        "nodes": [
            {"name": "a", "executor": "command", "params": nap(0.1)},
            {"name": "b", "executor": "command", "params": {"action": "fail"}, "depends_on": ["a"], "max_attempts": 1},
            {"name": "c", "executor": "command", "params": nap(c_secs), "depends_on": ["a"]},
            {"name": "d", "executor": "command", "params": nap(0.1), "depends_on": ["b"]},
            {"name": "e", "executor": "command", "params": nap(0.1), "depends_on": ["c"]}
        ]
    })
}

fn statuses(wf: &Value) -> HashMap<String, String> {
    wf["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_failing_node_cancels_exactly_its_descendants_when_asked() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let (_dir, config) = actions();
    let _exec = executor(&redis, &config, 4);
    let (status, made) = post(&api, &failing_graph("descendants", 0.8)).await;
    assert_eq!(status, 201, "{made}");
    let wf = finished(&api, made["id"].as_u64().unwrap(), Duration::from_secs(30)).await;
    let s = statuses(&wf);
    assert_eq!(wf["status"], "CANCELLED", "{wf:#}");
    assert_eq!(s["a"], "COMPLETED");
    assert_eq!(s["b"], "FAILED");
    assert_eq!(s["d"], "CANCELED", "b's only descendant");
    assert_eq!(s["c"], "COMPLETED", "not a descendant of b: runs on");
    assert_eq!(s["e"], "COMPLETED", "released by c after b failed");
    assert_eq!(wf["failed_job"], made["jobs"]["b"]);
    let d = history(&api, JobId(made["jobs"]["d"].as_u64().unwrap())).await;
    assert!(when(&d, "claimed").is_none(), "d never ran: {d:?}");
    // A member is not retried alone: its workflow has moved on.
    let retry = format!("/jobs/{}/retry", made["jobs"]["b"]);
    assert_eq!(
        api.call(reqwest::Method::POST, &retry, None, None).await.0,
        409
    );
}

#[tokio::test]
async fn by_default_a_failure_cancels_every_unfinished_node_as_the_workflow_service_did() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let (_dir, config) = actions();
    let _exec = executor(&redis, &config, 4);
    // c naps 30 s: it is running when b fails, and must be stopped, not waited for.
    let t0 = Instant::now();
    let (status, made) = post(&api, &failing_graph("all", 30.0)).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_u64().unwrap();
    let wf = finished(&api, id, Duration::from_secs(20)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "c was stopped, not waited for"
    );
    let s = statuses(&wf);
    assert_eq!(wf["status"], "CANCELLED");
    assert_eq!(
        (
            s["a"].as_str(),
            s["b"].as_str(),
            s["c"].as_str(),
            s["d"].as_str(),
            s["e"].as_str()
        ),
        ("COMPLETED", "FAILED", "CANCELED", "CANCELED", "CANCELED"),
        "{wf:#}"
    );
    let c = history(&api, JobId(made["jobs"]["c"].as_u64().unwrap())).await;
    assert!(
        when(&c, "claimed").is_some() && when(&c, "stop_requested").is_some(),
        "{c:?}"
    );
    // Everything ended: the workflow and its jobs now expire together.
    let ttl: i64 = redis
        .cli(&["PTTL", &format!("workflow_{id}")])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0, "the finished workflow expires (PTTL {ttl})");
}

#[tokio::test]
async fn cycles_unknown_names_and_dangling_edges_are_refused_and_nothing_is_created() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let node = |name: &str, deps: &[&str]| json!({"name": name, "executor": "command", "params": {"action": "nap"}, "depends_on": deps});
    let cases = [
        (
            json!({"name": "w", "nodes": [node("a", &["c"]), node("b", &["a"]), node("c", &["b"])]}),
            "depends_on has a cycle: a -> c -> b -> a",
        ),
        (
            json!({"name": "w", "nodes": [node("a", &["a"])]}),
            "node \"a\" depends on itself",
        ),
        (
            json!({"name": "w", "nodes": [node("a", &[]), node("b", &["ghost"])]}),
            "node \"b\" depends on unknown node \"ghost\"",
        ),
        (
            json!({"name": "w", "nodes": [node("a", &[]), node("a", &[])]}),
            "node \"a\" is named twice",
        ),
        (
            json!({"name": "w", "nodes": []}),
            "a workflow has 1 to 1000 nodes",
        ),
        (
            json!({"name": "w", "nodes": [{"name": "a", "depends_on": []}]}),
            "node \"a\": give either pipeline, or executor (and params)",
        ),
    ];
    for (body, message) in cases {
        let (status, reply) = post(&api, &body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{reply} should say {message:?}"
        );
    }
    assert_eq!(
        redis.cli(&["EXISTS", "job_seq", "workflow_seq"]).trim(),
        "0",
        "nothing created"
    );
    // A node naming a disabled cluster is refused inside the script, before anything is made.
    let (status, reply) = post(
        &api,
        &json!({"name": "w", "nodes": [node("a", &[]), {"name": "b", "executor": "spark", "cluster": "9"}]}),
    )
    .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        redis.cli(&["EXISTS", "job_seq", "workflow_seq"]).trim(),
        "0",
        "nothing created"
    );
}

/// model (command) -> simulate (gridlabd) -> summary (command): each node's outputs reach
/// its child as input files through the artifact store.
async fn files_flow_from_parents_to_children(kind: StoreKind) {
    let store = TestStore::start(kind).await;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| store.apply(c)).await;
    let (_dir, config) = actions();
    let config = config.display().to_string();
    let _command = crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        &redis,
        &["--config", &config],
        store.env(),
    );
    let _gridlabd = crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-gridlabd"),
        &redis,
        &[],
        store.env(),
    );
    let (status, made) = post(&api, &json!({
        "name": "feeder",
        "nodes": [
            {"name": "model", "executor": "command", "params": {"action": "model", "model": HOUSE, "area": 1234}},
            {"name": "simulate", "executor": "gridlabd", "params": {"model": "feeder.glm"}, "depends_on": ["model"], "max_attempts": 1},
            {"name": "summary", "executor": "command", "params": {"action": "summary"}, "depends_on": ["simulate"]}
        ]
    })).await;
    assert_eq!(status, 201, "{made}");
    let wf = finished(&api, made["id"].as_u64().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(wf["status"], "COMPLETED", "{wf:#}");
    let summary = JobId(made["jobs"]["summary"].as_u64().unwrap());
    let text = String::from_utf8(
        api.broker
            .artifacts()
            .read(summary, "summary.txt")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        text, "6 rows, area +1234",
        "the simulation's CSV reached the last node"
    );
    // The child got its parents' outputs, not their console logs.
    let names: Vec<String> = api
        .broker
        .artifacts()
        .list(summary)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(
        names.contains(&"house1.csv".to_string()) && names.contains(&"feeder.glm".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("gridlabd.attempt-")),
        "{names:?}"
    );
}

#[tokio::test]
async fn files_flow_from_parents_to_children_through_the_local_store() {
    files_flow_from_parents_to_children(StoreKind::Local).await;
}

#[tokio::test]
async fn files_flow_from_parents_to_children_through_an_s3_bucket() {
    files_flow_from_parents_to_children(StoreKind::S3).await;
}

#[tokio::test]
async fn a_workflow_survives_kill_9_of_its_executor_mid_run() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let (_dir, config) = actions();
    let mut first = executor(&redis, &config, 4);
    // A chain of 3 and a fan of 6 under it: the kill lands while several nodes run.
    let nap = json!({"action": "nap", "secs": 0.7});
    let mut nodes = vec![
        json!({"name": "a", "executor": "command", "params": nap}),
        json!({"name": "b", "executor": "command", "params": nap, "depends_on": ["a"]}),
    ];
    for i in 0..6 {
        nodes.push(json!({"name": format!("f{i}"), "executor": "command", "params": nap, "depends_on": ["b"]}));
    }
    let (status, made) = post(&api, &json!({"name": "crash", "nodes": nodes})).await;
    assert_eq!(status, 201, "{made}");
    let wf_id = made["id"].as_u64().unwrap();
    // Kill -9 once the fan is running, then start a fresh executor.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&api, wf_id).await["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "RUNNING")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "the fan never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    let _second = executor(&redis, &config, 4);
    let wf = finished(&api, wf_id, Duration::from_secs(30)).await;
    assert_eq!(wf["status"], "COMPLETED", "{wf:#}");
    let reclaimed = wf["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["lost"] == 1 && r["attempt"] == 1)
        .count();
    assert!(
        reclaimed >= 3,
        "the killed executor's nodes ran again: {wf:#}"
    );
}

/// Plans and submits a workflow body as an ownerless admin (the broker call, no HTTP).
pub async fn plan(b: &broker::Broker, body: Value) -> (u64, Vec<JobId>) {
    let body: broker::workflows::WorkflowBody = serde_json::from_value(body).unwrap();
    let wf = b
        .plan_workflow(
            &body,
            &broker::apikeys::Account {
                owner: String::new(),
                ..broker::apikeys::Account::local()
            },
        )
        .await
        .unwrap();
    b.submit_workflow(&wf).await.unwrap()
}

async fn claim_one(b: &broker::Broker, executor: &str) -> broker::Claimed {
    let mut c = b.claim(executor, "test", 1).await.unwrap();
    assert_eq!(c.len(), 1, "one {executor} job ready");
    c.remove(0)
}

#[tokio::test]
async fn stand_hears_of_a_member_when_it_is_released_and_of_each_member_a_failure_cancels() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let cluster =
        json!({"name": "local", "type": "SPARK_LOCAL", "address": "local[2]", "enabled": true});
    let (status, _) = api
        .call(reqwest::Method::PUT, "/clusters/1", None, Some(cluster))
        .await;
    assert!(status < 300, "cluster 1 stored");
    let (wf, jobs) = plan(b, json!({"name": "s", "nodes": [
        {"name": "prep", "executor": "command", "params": {}},
        {"name": "spark", "executor": "spark", "params": {}, "cluster": "1", "depends_on": ["prep"]},
        {"name": "other", "executor": "command", "params": {}, "cluster": "1", "depends_on": ["prep"]},
        {"name": "last", "executor": "command", "params": {}, "depends_on": ["spark", "other"]}
    ]})).await;
    assert_eq!(
        redis.cli(&["LLEN", "start"]).trim(),
        "0",
        "not announced while it waits"
    );
    let prep = claim_one(b, "command").await;
    b.complete(jobs[0], &prep.token, &json!(null))
        .await
        .unwrap();
    let mut started: Vec<String> = redis
        .cli(&["LRANGE", "start", "0", "-1"])
        .lines()
        .map(String::from)
        .collect();
    started.sort_unstable();
    assert_eq!(
        started,
        [1, 2].map(|n| format!("{{'job_id': {}, 'workflow': {{'id': {wf}}}}}", jobs[n])),
        "announced at their release"
    );
    // The spark node fails for good: its siblings and children are canceled; those Stand
    // heard of on `start` go on its stop list too (other is running: asked to stop), the
    // others never (last was waiting, never announced: canceled quietly).
    let other = claim_one(b, "command").await;
    let spark = claim_one(b, "spark").await;
    let history_before = b.history(jobs[2]).await.unwrap().len();
    assert_eq!(
        b.fail(jobs[1], &spark.token, "boom", false).await.unwrap(),
        broker::Status::Failed
    );
    let stop = redis.cli(&["LRANGE", "stop", "0", "-1"]);
    let mut stopped: Vec<&str> = stop.split_whitespace().collect();
    stopped.sort_unstable();
    assert_eq!(stopped, [jobs[2].to_string()]);
    assert_eq!(
        b.get(jobs[3]).await.unwrap().status,
        broker::Status::Canceled
    );
    assert!(b
        .get(jobs[2])
        .await
        .unwrap()
        .field("stop_requested")
        .is_some());
    // The running member's own end: a failure after a stop request is a cancel, not a retry.
    let status = b.fail(jobs[2], &other.token, "killed", true).await.unwrap();
    assert_eq!(
        status,
        broker::Status::Canceled,
        "never re-queued after its stop"
    );
    assert!(b.history(jobs[2]).await.unwrap().len() > history_before);
    let view = get(&api, wf).await;
    assert_eq!(
        (view["status"].as_str(), view["finished"].is_string()),
        (Some("CANCELLED"), true),
        "{view:#}"
    );
    // The failure's own event comes before the cancellations it caused.
    let (events, _) = {
        let mut conn = b.blocking_connection().await.unwrap();
        b.events(&mut conn, None, "0", 1000, None).await.unwrap()
    };
    let order: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.get("event") == Some("failed") || e.get("event") == Some("canceled"))
        .map(|e| {
            (
                e.get("job").unwrap_or("").to_string(),
                e.get("event").unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        order.first(),
        Some(&(jobs[1].to_string(), "failed".to_string())),
        "{order:?}"
    );
}

#[tokio::test]
async fn a_stand_era_workflow_label_is_not_membership() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let (wf, _) = plan(
        b,
        json!({"name": "w", "nodes": [
            {"name": "a", "executor": "x", "params": {}},
            {"name": "b", "executor": "x", "params": {}, "depends_on": ["a"]}
        ]}),
    )
    .await;
    // An old job whose hash names workflow 1 (as POST /jobs once allowed) ends badly.
    let (old, _) = b.submit(&b.new_job("old", json!({}))).await.unwrap();
    redis.cli(&[
        "HSET",
        &format!("job_{old}"),
        "workflow",
        &wf.to_string(),
        "depends_on",
        "1",
    ]);
    let c = claim_one(b, "old").await;
    b.fail(old, &c.token, "boom", false).await.unwrap();
    let view = get(&api, wf).await;
    assert_eq!(view["status"], "NOT_STARTED", "{view:#}");
    assert_eq!(
        redis
            .cli(&["HGET", &format!("workflow_{wf}"), "done"])
            .trim(),
        "0"
    );
}

#[tokio::test]
async fn a_workflow_can_be_stopped_as_a_whole() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let (wf, jobs) = plan(
        b,
        json!({"name": "w", "nodes": [
            {"name": "a", "executor": "x", "params": {}},
            {"name": "b", "executor": "x", "params": {}},
            {"name": "c", "executor": "x", "params": {}, "depends_on": ["a", "b"]}
        ]}),
    )
    .await;
    let a = claim_one(b, "x").await;
    let api = &api;
    let stop =
        |path: String| async move { api.call(reqwest::Method::POST, &path, None, None).await };
    let (status, v) = stop(format!("/workflows/{wf}/stop")).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("CANCELLED")),
        "{v}"
    );
    let statuses: Vec<broker::Status> = futures::future::join_all(jobs.iter().map(|j| b.get(*j)))
        .await
        .into_iter()
        .map(|j| j.unwrap().status)
        .collect();
    use broker::Status::{Canceled, Running};
    assert_eq!(
        statuses,
        [Running, Canceled, Canceled],
        "a asked to stop, b and c canceled"
    );
    assert!(
        get(api, wf).await["finished"].is_null(),
        "not ended while a runs"
    );
    b.cancel(jobs[0], &a.token).await.unwrap();
    let view = get(api, wf).await;
    assert_eq!(
        (view["status"].as_str(), view["finished"].is_string()),
        (Some("CANCELLED"), true)
    );
    let (status, v) = stop(format!("/workflows/{wf}/stop")).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("CANCELLED")),
        "stopping again changes nothing"
    );
    let (status, _) = stop("/workflows/99/stop".into()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_pipeline_can_be_a_node_and_the_nodes_own_settings_win() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let pipeline = json!({"name": "p", "executor": "x", "params": {"k": 1}, "timeout": "1m", "max_attempts": 2});
    let (_, r) = api
        .call(reqwest::Method::POST, "/v1/pipelines", None, Some(pipeline))
        .await;
    let pid = r["uuid"].as_str().unwrap().parse::<u64>().unwrap();
    let (status, made) = post(
        &api,
        &json!({"name": "w", "nodes": [
            {"name": "a", "pipeline": pid},
            {"name": "b", "pipeline": pid, "depends_on": ["a"], "max_attempts": 5}
        ]}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let a = b
        .get(JobId(made["jobs"]["a"].as_u64().unwrap()))
        .await
        .unwrap();
    let nb = b
        .get(JobId(made["jobs"]["b"].as_u64().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        (a.executor.as_str(), &a.params, a.field("pipeline")),
        ("x", &json!({"k": 1}), Some(pid.to_string().as_str()))
    );
    assert_eq!(
        (a.max_attempts, a.timeout),
        (2, Duration::from_secs(60)),
        "the template's"
    );
    assert_eq!(
        (nb.max_attempts, nb.timeout),
        (5, Duration::from_secs(60)),
        "the node's attempts win"
    );
    let (status, v) = post(
        &api,
        &json!({"name": "w", "nodes": [{"name": "a", "pipeline": 999}]}),
    )
    .await;
    assert_eq!(status, 404, "{v}");
}
