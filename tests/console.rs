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
    let page = http()
        .get(api.url("/ui/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(&key), "the key is in the page");
    let token = page
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
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
