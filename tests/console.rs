//! The web console's HTTP edges, without a browser: where a browser lands, the sign-in
//! cookie's attributes, the CSRF rules a cookie-signed request obeys, escaping of what jobs
//! carry, and the bounds of the sign-in form. (tests/browser.rs drives the pages.)

use broker::apikeys::Role;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::harness::{send, TestApi, TestRedis};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in through the form; the cookie header to send back.
async fn sign_in(api: &TestApi, key: &str) -> String {
    let r = http()
        .post(api.url("/ui/login"))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/ui/");
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    set.split(';').next().unwrap().to_string()
}

/// `GET path` signed by the console's `cookie`: (status, page).
async fn page(api: &TestApi, path: &str, cookie: &str) -> (u16, String) {
    let r = http()
        .get(api.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The CSRF token a console page carries (its `<meta name="csrf">`).
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf meta tag")
        .to_string()
}

#[tokio::test]
async fn a_browser_lands_on_the_console_and_api_clients_do_not() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let r = http()
        .get(api.url("/"))
        .header(ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()[LOCATION].to_str().unwrap()),
        (303, "/ui/")
    );
    let r = http().get(api.url("/ui/jobs")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()[LOCATION].to_str().unwrap()),
        (303, "/ui/login")
    );
    // wumai's POST / is untouched: its own JSON answer, no redirect.
    let (s, v) = send(http().post(api.url("/")).json(&json!({"action": "x"}))).await;
    assert_ne!(s, 303);
    assert!(v.is_object(), "{s} {v}");
    for (path, mime) in [
        ("/ui/assets/app.js", "text/javascript"),
        ("/ui/assets/app.css", "text/css"),
    ] {
        let r = http().get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(mime));
    }
}

/// A cookie-signed request that changes something needs the page's CSRF token and no other
/// origin; reading needs only the cookie; a stranger's key is refused at sign-in.
#[tokio::test]
async fn a_cookie_alone_cannot_change_anything() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let key = api.key("ana", Role::Client).await;
    let cookie = sign_in(&api, &key).await;
    let body = json!({"executor": "sim", "params": {}});
    let post = || {
        http()
            .post(api.url("/jobs"))
            .header(COOKIE, &cookie)
            .json(&body)
    };

    let (s, v) = send(post()).await;
    assert_eq!(s, 403, "no token: {v}");
    let (s, v) = send(post().header("x-sluice-csrf", "0".repeat(32))).await;
    assert_eq!(s, 403, "a wrong token: {v}");
    // The token is in the page the cookie opens, never the key itself.
    let (_, page) = page(&api, "/ui/", &cookie).await;
    assert!(!page.contains(&key), "the key is in the page");
    let token = csrf_of(&page);
    let (s, v) = send(
        post()
            .header("x-sluice-csrf", &token)
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(s, 403, "another origin: {v}");
    let (s, v) = send(post().header("x-sluice-csrf", &token)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        api.broker
            .get(broker::JobId(1))
            .await
            .unwrap()
            .field("owner"),
        Some("ana")
    );
    let (s, _) = send(http().get(api.url("/jobs/1")).header(COOKIE, &cookie)).await;
    assert_eq!(s, 200, "reading needs only the cookie");

    // Sign-out needs the token too; then the cookie is emptied.
    let r = http()
        .post(api.url("/ui/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http()
        .post(api.url("/ui/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    for bad in ["sk_unknown", "", &"x".repeat(300)] {
        let r = http()
            .post(api.url("/ui/login"))
            .form(&[("key", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{bad:?}");
        assert!(r.headers().get(SET_COOKIE).is_none());
    }
    let r = http()
        .post(api.url("/ui/login"))
        .form(&[("key", "k".repeat(10_000))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a sign-in form is small");
}

/// What a job carries is shown as text: markup in params, errors or kinds never runs.
#[tokio::test]
async fn what_jobs_carry_is_escaped() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |_| {}).await;
    let b = &api.broker;
    let evil = "<script>alert(1)</script>";
    let (id, _) = b
        .submit(&b.new_job("sim", json!({ "x": evil })))
        .await
        .unwrap();
    let c = b.claim("sim", "w", 1).await.unwrap().remove(0);
    b.fail(id, &c.token, evil, false).await.unwrap();
    for path in [
        format!("/ui/jobs/{id}"),
        "/ui/jobs".to_string(),
        "/ui/".to_string(),
    ] {
        let page = api.text(&path).await;
        assert!(!page.contains("<script>alert"), "{path}: {page}");
    }
    assert!(api
        .text(&format!("/ui/jobs/{id}"))
        .await
        .contains("&#60;script&#62;alert"));
}

/// The pages beside jobs obey the API's rules over plain HTTP: another owner's pipeline is
/// a 404 page, schedules a 403 page for a client, names are escaped everywhere, and starting
/// a run from a pipeline's page needs the page's CSRF token like any other write.
#[tokio::test]
async fn pipelines_schedules_and_clusters_keep_to_the_apis_rules() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    let evil = "<img src=x onerror=alert(1)>";
    let ana = api.key("ana", Role::Client).await;
    let bob = api.key("bob", Role::Client).await;
    let body = json!({"name": evil, "description": evil, "executor": "sim", "params": {"x": evil}});
    let post = reqwest::Method::POST;
    let (_, mine) = api
        .call(
            post.clone(),
            "/v1/pipelines",
            Some(&ana),
            Some(body.clone()),
        )
        .await;
    let (_, theirs) = api
        .call(post, "/v1/pipelines", Some(&bob), Some(body))
        .await;
    let (mine, theirs) = (
        mine["uuid"].as_str().unwrap(),
        theirs["uuid"].as_str().unwrap(),
    );
    b.add_schedule(
        "nightly",
        "sim",
        &json!({"x": evil}),
        &broker::schedules::Spec::Cron("0 3 * * *".into()),
    )
    .await
    .unwrap();
    let cluster: broker::clusters::Cluster =
        serde_json::from_value(json!({"id": 1, "name": evil, "description": evil})).unwrap();
    b.put_cluster(&cluster).await.unwrap();

    let cookie = sign_in(&api, &ana).await;
    for path in [
        "/ui/pipelines".to_string(),
        format!("/ui/pipelines/{mine}"),
        "/ui/clusters".to_string(),
    ] {
        let (s, text) = page(&api, &path, &cookie).await;
        assert_eq!(s, 200, "{path}: {text}");
        assert!(!text.contains("<img src=x"), "{path}: {text}");
        assert!(text.contains("&#60;img src=x"), "{path} shows the name");
    }
    let (s, text) = page(&api, &format!("/ui/pipelines/{theirs}"), &cookie).await;
    assert_eq!(s, 404, "{text}");
    let (s, text) = page(&api, "/ui/schedules", &cookie).await;
    assert_eq!(s, 403, "{text}");
    assert!(!text.contains("nightly"));
    let admin = sign_in(&api, &api.key("root", Role::Admin).await).await;
    let (s, text) = page(&api, "/ui/schedules", &admin).await;
    assert_eq!(s, 200, "{text}");
    assert!(
        text.contains("cron 0 3 * * *") && !text.contains("<img src=x"),
        "{text}"
    );
    let (s, text) = page(&api, &format!("/ui/pipelines/{theirs}"), &admin).await;
    assert_eq!(s, 200, "an admin sees bob's: {text}");

    // Starting a run: the cookie alone is refused, the page's token lets it through.
    let (_, text) = page(&api, &format!("/ui/pipelines/{mine}"), &cookie).await;
    let token = csrf_of(&text);
    let start = |pipeline: &str| {
        http()
            .post(api.url(&format!("/v1/pipelines/{pipeline}/runs")))
            .header(COOKIE, &cookie)
            .json(&json!({}))
    };
    let (s, v) = send(start(mine)).await;
    assert_eq!(s, 403, "no token: {v}");
    let (s, v) = send(start(theirs).header("x-sluice-csrf", &token)).await;
    assert_eq!(s, 404, "bob's pipeline: {v}");
    let (s, v) = send(start(mine).header("x-sluice-csrf", &token)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        b.pipeline_runs(theirs.parse().unwrap())
            .await
            .unwrap()
            .len(),
        0
    );
}
