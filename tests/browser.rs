//! The web console in a real headless Chromium (harness/browser.rs) against a real API
//! server and Redis: sign-in, a running job's log growing live, stop, a form's field errors
//! from the schema (the browser's and the API's), a workflow's nodes turning green in
//! order, and a client key that sees none of another owner's jobs and no admin parts.
//! Screenshots of each main page land in target/ui-screenshots/ (README shows two).

use std::time::Duration;

use broker::apikeys::Role;
use broker::{Broker, Status};
use fantoccini::Locator;
use serde_json::json;

use crate::harness::browser::Browser;
use crate::harness::{submit_as, TestApi, TestRedis};

const WAIT: Duration = Duration::from_secs(15);

/// Signs in with `key` on the console's form; waits for the overview.
async fn sign_in(browser: &Browser, api: &TestApi, key: &str) {
    browser.goto(&api.url("/ui/login")).await;
    browser
        .find("#key")
        .await
        .send_keys(key)
        .await
        .expect("type the key");
    browser
        .find("#sign-in")
        .await
        .click()
        .await
        .expect("sign in");
    browser.wait_for("#kinds", WAIT).await;
}

/// Clicks an action button and accepts its confirmation dialog.
async fn act(browser: &Browser, action: &str) {
    let b = browser
        .find(&format!("#actions [data-action={action}]"))
        .await;
    b.click().await.expect("click");
    browser
        .client
        .accept_alert()
        .await
        .expect("a confirmation dialog");
}

/// Claims the one job of `kind` as a test executor.
async fn claim(b: &Broker, kind: &str) -> broker::Claimed {
    let mut c = b.claim(kind, "browser-test", 1).await.unwrap();
    assert_eq!(c.len(), 1, "one {kind} job ready");
    c.remove(0)
}

/// A signed-in client follows its running job's log live, stops it and sees CANCELED once
/// its executor confirms; the overview shows it no admin parts; a signed-out browser is sent
/// to the sign-in page.
#[tokio::test]
async fn a_client_follows_a_live_log_and_stops_its_job() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    let key = api.key("ana", Role::Client).await;
    let id = submit_as(b, "sim", "ana", json!({"steps": 3})).await;
    let run = claim(b, "sim").await;
    let browser = Browser::start().await;

    browser.goto(&api.url("/ui/")).await;
    browser.wait_for("#sign-in", WAIT).await;
    sign_in(&browser, &api, &key).await;
    let who = browser.find("#who").await.text().await.unwrap();
    assert!(who.contains("ana") && who.contains("client"), "{who}");
    assert!(
        browser
            .client
            .find(Locator::Css("#executors"))
            .await
            .is_err(),
        "no admin parts"
    );
    browser.screenshot("overview-client").await;

    browser.goto(&api.url(&format!("/ui/jobs/{id}"))).await;
    browser.wait_text("#status", "RUNNING", WAIT).await;
    for i in 1..=3 {
        b.log(id, &run.token, &format!("step {i} of 3 done"))
            .await
            .unwrap();
        browser
            .wait_text("#log", &format!("step {i} of 3"), WAIT)
            .await;
    }
    browser.screenshot("job-running").await;
    act(&browser, "stop").await;
    browser.wait_text("#action-message", "stop", WAIT).await;
    // The executor sees the stop on its next heartbeat and confirms it.
    assert!(b.heartbeat(id, &run.token).await.unwrap(), "stop requested");
    b.cancel(id, &run.token).await.unwrap();
    browser.wait_text("#status", "CANCELED", WAIT).await;
    assert_eq!(b.get(id).await.unwrap().status, Status::Canceled);

    browser.find("#sign-out").await.click().await.unwrap();
    browser.wait_for("#sign-in", WAIT).await;
    browser.goto(&api.url(&format!("/ui/jobs/{id}"))).await;
    browser.wait_for("#sign-in", WAIT).await;
    browser.close().await;
}

/// A client key sees none of another owner's jobs anywhere in the console, and no admin
/// filter; an admin sees both owners, the executors and Redis.
#[tokio::test]
async fn a_client_sees_only_its_own_jobs_and_no_admin_pages() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    let mine = submit_as(b, "sim", "ana", json!({"who": "ana"})).await;
    let theirs = submit_as(b, "sim", "bob", json!({"secret": "bob's"})).await;
    let browser = Browser::start().await;
    sign_in(&browser, &api, &api.key("ana", Role::Client).await).await;

    browser.goto(&api.url("/ui/jobs")).await;
    browser
        .wait_for(&format!("tr[data-job=\"{mine}\"]"), WAIT)
        .await;
    let page = browser.client.source().await.unwrap();
    assert!(
        !page.contains(&format!("data-job=\"{theirs}\"")),
        "bob's job listed"
    );
    assert!(browser
        .client
        .find(Locator::Css("#filter-owner"))
        .await
        .is_err());
    browser.goto(&api.url("/ui/jobs?owner=bob")).await;
    browser.wait_text("#problem", "its own jobs", WAIT).await;
    browser.goto(&api.url(&format!("/ui/jobs/{theirs}"))).await;
    browser.wait_text("#problem", "not found", WAIT).await;
    assert!(!browser.client.source().await.unwrap().contains("bob's"));
    browser.close().await;

    let admin = Browser::start().await;
    sign_in(&admin, &api, &api.key("root", Role::Admin).await).await;
    admin.wait_for("#executors", WAIT).await;
    admin.wait_for("#redis", WAIT).await;
    admin.goto(&api.url("/ui/jobs")).await;
    admin
        .wait_for(&format!("tr[data-job=\"{theirs}\"]"), WAIT)
        .await;
    admin
        .wait_for(&format!("tr[data-job=\"{mine}\"]"), WAIT)
        .await;
    admin.screenshot("jobs").await;
    admin.goto(&api.url("/ui/")).await;
    admin.wait_for("#executors", WAIT).await;
    admin.screenshot("overview-admin").await;
    admin.close().await;
}

/// The submit form is built from the kind's schema: a bad param is shown at its field by
/// the browser's own check, one only the API's schema check refuses is shown at its field
/// from the 400, and a good one is submitted and followed to COMPLETED.
#[tokio::test]
async fn a_bad_param_is_shown_at_its_field_and_a_good_one_runs_to_completed() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    b.publish_schema(
        "sim",
        &json!({
            "type": "object",
            "required": ["steps", "model"],
            "properties": {
                "steps": {"type": "integer", "minimum": 1, "maximum": 100, "description": "time steps"},
                "model": {"type": "string", "pattern": "^[a-z]+$", "description": "model name"},
                "mode": {"enum": ["fast", "exact"]}
            },
            "additionalProperties": false
        }),
    )
    .await
    .unwrap();
    let browser = Browser::start().await;
    sign_in(&browser, &api, &api.key("ana", Role::Client).await).await;
    browser.goto(&api.url("/ui/submit?executor=sim")).await;
    browser.wait_for("#p-steps", WAIT).await;

    // The browser's check: 500 is over the schema's maximum.
    browser
        .find("#p-steps")
        .await
        .send_keys("500")
        .await
        .unwrap();
    browser
        .find("#p-model")
        .await
        .send_keys("grid")
        .await
        .unwrap();
    browser.find("#submit-job").await.click().await.unwrap();
    let err = browser
        .wait_for("[data-error-for=steps]:not(:empty)", WAIT)
        .await;
    let err = err.text().await.unwrap();
    assert!(err.contains("100"), "the browser names the maximum: {err}");
    browser.screenshot("submit-field-error").await;
    assert_eq!(
        b.list(&Default::default(), None, 10)
            .await
            .unwrap()
            .jobs
            .len(),
        0
    );

    // The API's check: the pattern, removed from the page, is still the schema's.
    browser
        .client
        .execute(
            "document.getElementById('p-model').removeAttribute('pattern')",
            vec![],
        )
        .await
        .unwrap();
    browser.find("#p-steps").await.clear().await.unwrap();
    browser.find("#p-steps").await.send_keys("5").await.unwrap();
    browser.find("#p-model").await.clear().await.unwrap();
    browser
        .find("#p-model")
        .await
        .send_keys("Grid 9")
        .await
        .unwrap();
    browser.find("#submit-job").await.click().await.unwrap();
    browser
        .wait_text("[data-error-for=model]", "does not match", WAIT)
        .await;
    assert_eq!(
        b.list(&Default::default(), None, 10)
            .await
            .unwrap()
            .jobs
            .len(),
        0
    );

    browser.find("#p-model").await.clear().await.unwrap();
    browser
        .find("#p-model")
        .await
        .send_keys("grid")
        .await
        .unwrap();
    browser.find("#submit-job").await.click().await.unwrap();
    browser.wait_for("#job", WAIT).await;
    let id: u64 = browser
        .find("#job")
        .await
        .attr("data-id")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let run = claim(b, "sim").await;
    assert_eq!(run.id.0, id);
    b.progress(run.id, &run.token, &json!({"done": 5, "total": 5}))
        .await
        .unwrap();
    b.complete(run.id, &run.token, &json!({"energy": -1.5}))
        .await
        .unwrap();
    browser.wait_text("#status", "COMPLETED", WAIT).await;
    browser.wait_text("#result", "energy", WAIT).await;
    browser.screenshot("job-completed").await;
    browser.close().await;
}

/// A workflow's graph turns each node green as its job completes, in order.
#[tokio::test]
async fn a_workflows_nodes_turn_green_in_order() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let (wf, members) = crate::workflows::plan(
        b,
        json!({"name": "chain", "nodes": [
            {"name": "prepare", "executor": "sim", "params": {}},
            {"name": "solve", "executor": "sim", "params": {}, "depends_on": ["prepare"]},
            {"name": "report", "executor": "sim", "params": {}, "depends_on": ["solve"]},
        ]}),
    )
    .await;
    let browser = Browser::start().await;
    browser.goto(&api.url(&format!("/ui/workflows/{wf}"))).await;
    browser.wait_for("#auth-off", WAIT).await;
    let node = |id: broker::JobId| format!("g.node[data-job=\"{id}\"]");
    for (i, id) in members.iter().enumerate() {
        let run = claim(b, "sim").await;
        assert_eq!(run.id, *id, "in order");
        browser
            .wait_for(&format!("{}.RUNNING", node(*id)), WAIT)
            .await;
        if i == 1 {
            browser.screenshot("workflow").await;
        }
        b.complete(run.id, &run.token, &json!(i)).await.unwrap();
        browser
            .wait_for(&format!("{}.COMPLETED", node(*id)), WAIT)
            .await;
        for later in &members[i + 1..] {
            let class = browser
                .find(&node(*later))
                .await
                .attr("class")
                .await
                .unwrap();
            assert!(!class.unwrap_or_default().contains("COMPLETED"), "not yet");
        }
    }
    browser.wait_text("#wf-status", "COMPLETED", WAIT).await;
    browser.close().await;
}

/// The pages beside jobs, as a client and as an admin: a client starts a run of its own
/// pipeline from the pipeline's page and lands on the run's job; bob's pipeline is "not
/// found" and absent from the list; schedules are refused (and not in the menu) while
/// clusters are readable; a StableConfigs task solved by the real `sluice-solver` shows each
/// configuration's polymers as lists of monomers, the same ones `GET /status/{id}` answers.
/// The admin sees the schedule with its next tick.
#[tokio::test]
async fn pipelines_schedules_clusters_and_a_tasks_configurations() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let _solver = crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-solver"),
        &redis,
        &[],
        Vec::<(&str, &str)>::new(),
    );
    let b = &api.broker;
    let ana = api.key("ana", Role::Client).await;
    let bob = api.key("bob", Role::Client).await;
    let pipeline = |name: &str| json!({"name": name, "executor": "sim", "params": {"steps": 2}});
    let post = reqwest::Method::POST;
    let (s, mine) = api
        .call(
            post.clone(),
            "/v1/pipelines",
            Some(&ana),
            Some(pipeline("nightly")),
        )
        .await;
    assert_eq!(s, 200, "{mine}");
    let (s, theirs) = api
        .call(
            post.clone(),
            "/v1/pipelines",
            Some(&bob),
            Some(pipeline("bob-secret")),
        )
        .await;
    assert_eq!(s, 200, "{theirs}");
    let (mine, theirs) = (
        mine["uuid"].as_str().unwrap(),
        theirs["uuid"].as_str().unwrap(),
    );
    b.add_schedule(
        "hourly-sim",
        "sim",
        &json!({"steps": 1}),
        &broker::schedules::Spec::Every(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let cluster: broker::clusters::Cluster = serde_json::from_value(
        json!({"id": 3, "name": "lab-spark", "description": "the lab's standalone master",
               "type": "SPARK_LOCAL", "address": "local[2]", "executor_memory": "2g"}),
    )
    .unwrap();
    b.put_cluster(&cluster).await.unwrap();
    // A StableConfigs task, as its client sent it, solved by the real solver.
    let task = json!({"monomers": [["a", "b"], ["a*", "b*"], ["a"], ["b*", ">tail"]], "gen": 2});
    let (s, v) = api.call(post, "/task", Some(&ana), Some(task)).await;
    assert_eq!(s, 202, "{v}");
    let task = v["task_id"].as_str().unwrap().to_string();
    let answer = loop {
        let (s, v) = api
            .call(
                reqwest::Method::GET,
                &format!("/status/{task}"),
                Some(&ana),
                None,
            )
            .await;
        if s == 200 {
            break v;
        }
        assert!([202, 203].contains(&s), "{s} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let browser = Browser::start().await;
    sign_in(&browser, &api, &ana).await;
    let menu = browser.find("header nav").await.text().await.unwrap();
    assert!(
        menu.contains("Pipelines") && menu.contains("Clusters"),
        "{menu}"
    );
    assert!(!menu.contains("Schedules"), "a client's menu: {menu}");
    browser.goto(&api.url("/ui/pipelines")).await;
    browser
        .wait_for(&format!("tr[data-pipeline=\"{mine}\"]"), WAIT)
        .await;
    let page = browser.client.source().await.unwrap();
    assert!(!page.contains("bob-secret"), "bob's pipeline listed");
    browser
        .goto(&api.url(&format!("/ui/pipelines/{mine}")))
        .await;
    browser
        .wait_text("#pipeline-params", "\"steps\": 2", WAIT)
        .await;
    browser.find("#start-run").await.click().await.unwrap();
    browser.client.accept_alert().await.expect("a confirmation");
    let job = browser.wait_for("#job[data-id]", WAIT).await;
    let run = job.attr("data-id").await.unwrap().unwrap();
    let started = b.get(broker::JobId(run.parse().unwrap())).await.unwrap();
    assert_eq!(
        (started.field("pipeline"), started.field("owner")),
        (Some(mine), Some("ana"))
    );
    browser
        .goto(&api.url(&format!("/ui/pipelines/{mine}")))
        .await;
    browser
        .wait_for(&format!("tr[data-run=\"{run}\"]"), WAIT)
        .await;
    browser.screenshot("pipeline").await;
    browser
        .goto(&api.url(&format!("/ui/pipelines/{theirs}")))
        .await;
    browser.wait_text("#problem", "not found", WAIT).await;
    assert!(!browser
        .client
        .source()
        .await
        .unwrap()
        .contains("bob-secret"));
    browser.goto(&api.url("/ui/schedules")).await;
    browser.wait_text("#problem", "admins", WAIT).await;
    assert!(!browser
        .client
        .source()
        .await
        .unwrap()
        .contains("hourly-sim"));
    browser.goto(&api.url("/ui/clusters")).await;
    let row = browser
        .wait_text("tr[data-cluster=\"3\"]", "lab-spark", WAIT)
        .await;
    assert!(row.contains("local[2]") && row.contains("2g"), "{row}");

    browser.goto(&api.url(&format!("/ui/jobs/{task}"))).await;
    browser.wait_for("#configurations", WAIT).await;
    for (i, config) in answer["configs"].as_array().unwrap().iter().enumerate() {
        let polymers = browser
            .client
            .find_all(Locator::Css(&format!(
                "[data-config=\"{}\"] li.polymer",
                i + 1
            )))
            .await
            .unwrap();
        let want = config["polymers"].as_array().unwrap();
        assert_eq!(polymers.len(), want.len(), "configuration {}", i + 1);
        for (li, polymer) in polymers.iter().zip(want) {
            let mut shown = Vec::new();
            for m in li.find_all(Locator::Css("li.monomer")).await.unwrap() {
                shown.push(m.text().await.unwrap());
            }
            let monomers: Vec<String> = polymer
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let sites: Vec<&str> = m
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap())
                        .collect();
                    sites.join(" ")
                })
                .collect();
            assert_eq!(shown, monomers);
        }
    }
    browser
        .client
        .execute(
            "document.querySelector('#configurations').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("stableconfigs-task").await;
    browser.close().await;

    let admin = Browser::start().await;
    sign_in(&admin, &api, &api.key("root", Role::Admin).await).await;
    admin.goto(&api.url("/ui/schedules")).await;
    let row = admin
        .wait_text("tr[data-schedule=\"hourly-sim\"]", "every 1h", WAIT)
        .await;
    let next = admin
        .find("tr[data-schedule=\"hourly-sim\"] [data-f=next]")
        .await
        .text()
        .await
        .unwrap();
    assert!(next.starts_with("20"), "a next tick: {row}");
    admin.goto(&api.url("/ui/pipelines")).await;
    admin
        .wait_for(&format!("tr[data-pipeline=\"{theirs}\"]"), WAIT)
        .await;
    admin.close().await;
}
