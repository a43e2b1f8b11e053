//! Failure notifications: a webhook receiver started by the test gets one Slack-compatible
//! message per job that fails for good, even when it refuses the first try.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warp::Filter;

use crate::harness::{TestApi, TestRedis};

/// A webhook on 127.0.0.1 that answers 500 to its first request and records the rest.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(Mutex::new(0u32));
    let (g, n) = (got.clone(), calls.clone());
    let route = warp::post()
        .and(warp::body::json())
        .map(move |body: Value| {
            let mut n = n.lock().unwrap();
            *n += 1;
            if *n == 1 {
                return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            g.lock().unwrap().push(body);
            warp::http::StatusCode::OK
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, got)
}

#[tokio::test]
async fn a_job_that_fails_for_good_is_posted_to_the_webhook() {
    let (url, got) = receiver().await;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| {
        c.webhooks = vec![url.clone()];
        c.outbound_allow = vec!["127.0.0.1".into()];
    })
    .await;
    let b = &api.broker;
    tokio::time::sleep(Duration::from_millis(300)).await; // the notifier joins the stream
    let (retried, _) = b.submit(&b.new_job("solver", json!(0))).await.unwrap();
    let c = b.claim("solver", "w", 1).await.unwrap().remove(0);
    b.fail(retried, &c.token, "flaky", true).await.unwrap(); // attempts left: no message
    let (failed, _) = b.submit(&b.new_job("solver", json!(1))).await.unwrap();
    let c = b
        .claim("solver", "w", 2)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == failed)
        .unwrap();
    b.fail(failed, &c.token, "Input contains no monomers.", false)
        .await
        .unwrap();
    // The receiver refuses the first try and the notifier waits before the next: a
    // transition that waited for the webhook would find the message delivered.
    assert!(
        got.lock().unwrap().is_empty(),
        "the transition does not wait for the webhook"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no message reached the webhook");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = got.lock().unwrap().clone();
    assert_eq!(
        messages.len(),
        1,
        "one message, for the job that failed for good: {messages:?}"
    );
    let text = messages[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("job {failed} (solver) FAILED"))
            && text.contains("Input contains no monomers."),
        "{text}"
    );
}

/// A real TLS receiver (Python's http.server behind ssl, a self-signed certificate made by
/// openssl for 127.0.0.1) trusted through `webhook_ca`: https webhooks work end to end.
#[tokio::test]
async fn https_webhooks_reach_a_tls_receiver_trusted_through_webhook_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let got = dir.path().join("got.jsonl");
    let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open(sys.argv[3], 'ab') as f: f.write(body + b'\n')
        self.send_response(200); self.end_headers()
s = http.server.HTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .args([&cert, &key, &got])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _receiver = crate::harness::Proc(child);
    let url = format!("https://127.0.0.1:{}/hook", line.trim());
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| {
        c.webhooks = vec![url.clone()];
        c.webhook_ca = Some(cert.clone());
        c.outbound_allow = vec!["127.0.0.1".into()];
    })
    .await;
    let b = &api.broker;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, _) = b.submit(&b.new_job("gridlabd", json!(0))).await.unwrap();
    let c = b.claim("gridlabd", "w", 1).await.unwrap().remove(0);
    b.fail(id, &c.token, "model did not converge", false)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&got).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no message reached the https webhook"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let message: Value = serde_json::from_str(text.trim()).unwrap();
    assert!(
        message["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!(
                "job {id} (gridlabd) FAILED: model did not converge"
            )),
        "{message}"
    );
}
