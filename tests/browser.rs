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
