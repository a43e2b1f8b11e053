//! Server-side request forgery: a client names a URL for Sluice to fetch (a job input) or
//! to POST to (a callback), hoping to reach what only Sluice's hosts can reach. The outbound
//! policy (broker::outbound) refuses loopback, private and special addresses in every
//! spelling, on every redirect hop, follows no redirect for a POST, and reads the same
//! whatever the port's state.
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{response, Server, Stack};

const SECRET: &str = "the loopback-only secret";

// See: issue 15, finding 2.
#[tokio::test]
async fn loopback_and_private_inputs_are_refused_in_every_spelling() {
    let s = Stack::start(|_| {}).await;
    let secret = Server::start("127.0.0.1:0", response("200 OK", &[], SECRET)).await;
    let p = secret.addr.port();
    let before = s.job_seq();
    for url in [
        format!("http://127.0.0.1:{p}/secret"),
        format!("http://2130706433:{p}/secret"),
        format!("http://0x7f.1:{p}/secret"),
        format!("http://127.1:{p}/secret"),
        format!("http://[::ffff:127.0.0.1]:{p}/secret"),
        format!("http://[::1]:{p}/secret"),
        format!("http://localhost:{p}/secret"),
        format!("http://LOCALHOST.:{p}/secret"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://user:pw@example.com/x".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let body = json!({"executor": "command", "params": {"action": "x"},
                          "inputs": [{"name": "in.txt", "url": url}]});
        let (status, reply) = s.call(&s.alice, Method::POST, "/jobs", Some(body)).await;
        assert_eq!(status, 400, "{url}: {reply}");
        let (status, reply) = s
            .call(
                &s.alice,
                Method::POST,
                "/jobs",
                Some(json!({"executor": "command", "params": {}, "callback_url": url})),
            )
            .await;
        assert_eq!(status, 400, "callback {url}: {reply}");
    }
    assert_eq!(s.job_seq(), before, "no job was created");
    assert_eq!(secret.hits(), 0, "nothing reached the secret service");
}

// See: issue 15, finding 2 (redirects, port state). 127.0.0.2 stands for a trusted internal
// host (outbound_allow); it redirects to loopback services, open and closed.
#[tokio::test]
async fn a_redirect_to_loopback_is_refused_on_the_hop_and_port_state_does_not_show() {
    let s = Stack::start(|c| c.outbound_allow = vec!["127.0.0.2".into()]).await;
    let secret = Server::start("127.0.0.1:0", response("200 OK", &[], SECRET)).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port() // dropped: closed
    };
    let to_open = Server::start(
        "127.0.0.2:0",
        response(
            "302 Found",
            &[format!(
                "Location: http://127.0.0.1:{}/secret",
                secret.addr.port()
            )],
            "",
        ),
    )
    .await;
    let to_closed = Server::start(
        "127.0.0.2:0",
        response(
            "302 Found",
            &[format!("Location: http://2130706433:{closed}/secret")],
            "",
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actions.toml");
    std::fs::write(&config, "[actions.cat]\nargv = [\"cat\", \"{input_dir}/in.txt\"]\nfiles = true\nparams = \"none\"\n").unwrap();
    let _exec = crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        &s.redis,
        &["--config", &config.display().to_string()],
        [("SLUICE_OUTBOUND_ALLOW", "127.0.0.2")],
    );
    let mut errors = Vec::new();
    for hop in [&to_open, &to_closed] {
        let body = json!({"executor": "command", "params": {"action": "cat"}, "max_attempts": 1,
                          "inputs": [{"name": "in.txt", "url": format!("http://{}/x", hop.addr)}]});
        let (status, made) = s.call(&s.alice, Method::POST, "/jobs", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        let id = broker::JobId(made["id"].as_u64().unwrap());
        let j = crate::harness::wait_for(
            &s.api.broker,
            id,
            |j| j.status.is_terminal(),
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(j.status, broker::Status::Failed, "{j:?}");
        assert!(j.result.is_none());
        let (_, listed) = s.artifacts(&s.alice, id).await;
        assert!(
            listed.to_string().find("in.txt").is_none(),
            "nothing was stored: {listed}"
        );
        errors.push(j.error.unwrap_or_default());
        assert_eq!(hop.hits(), 1, "the trusted host was asked once");
    }
    assert_eq!(
        secret.hits(),
        0,
        "the redirect was not followed to loopback"
    );
    assert!(
        errors[0].contains("refused by the outbound policy"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[0], errors[1],
        "an open and a closed port read the same"
    );
}

// See: issue 15, finding 2 (callbacks follow a 307 with the body).
#[tokio::test]
async fn a_callback_follows_no_redirect() {
    let s = Stack::start(|c| c.outbound_allow = vec!["127.0.0.2".into()]).await;
    let secret = Server::start("127.0.0.1:0", response("200 OK", &[], "")).await;
    let hop = Server::start(
        "127.0.0.2:0",
        response(
            "307 Temporary Redirect",
            &[format!(
                "Location: http://127.0.0.1:{}/",
                secret.addr.port()
            )],
            "",
        ),
    )
    .await;
    let body = json!({"executor": "command", "params": {}, "callback_url": format!("http://{}/hook", hop.addr)});
    let (status, made) = s.call(&s.alice, Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hop.hits() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the callback never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(secret.hits(), 0, "the 307 was not followed");
}
