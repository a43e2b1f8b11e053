//! What a client can make `sluice serve` send: a failure text cannot ping a Slack channel or
//! plant a link, and a callback receiver that never answers delays only its own callbacks.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Stack;

/// A receiver on 127.0.0.1 that keeps every request body it gets; `answer` false makes it
/// read and then hold the connection without ever answering.
async fn receiver(answer: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = text
                    .split("\r\n\r\n")
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push(body);
                if answer {
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                } else {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
            });
        }
    });
    (url, got)
}

// See: issue 15, finding 6 (Slack text unescaped; one slow receiver delays every tenant).
#[tokio::test]
async fn failure_texts_are_escaped_and_a_silent_receiver_holds_up_only_its_own() {
    let (hook, posted) = receiver(true).await;
    let (fast, fast_got) = receiver(true).await;
    let (slow, slow_got) = receiver(false).await;
    let s = Stack::start(|c| {
        c.outbound_allow = vec!["127.0.0.1".into()];
        c.webhooks = vec![hook.clone()];
    })
    .await;
    // bob's receiver never answers; he submits many jobs with callbacks to it first.
    for _ in 0..20 {
        let body = json!({"executor": "solver", "params": {"monomers": [["a"]]},
                          "callback_url": slow});
        let (status, _) = s.call(&s.bob, Method::POST, "/jobs", Some(body)).await;
        assert_eq!(status, 201);
    }
    let body = json!({"executor": "solver", "params": {"monomers": [["a"]]},
                      "callback_url": fast});
    let (status, _) = s.call(&s.alice, Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 201);
    let t0 = Instant::now();
    while fast_got.lock().unwrap().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "alice's callback waited behind bob's silent receiver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !slow_got.lock().unwrap().is_empty(),
        "bob's receiver was called too"
    );

    // A job failing for good with a text that would ping a channel and plant a link.
    let b = &s.api.broker;
    let (_, made) = s
        .call(
            &s.admin,
            Method::POST,
            "/jobs",
            Some(json!({"executor": "x", "max_attempts": 1})),
        )
        .await;
    let id = broker::JobId(made["id"].as_u64().unwrap());
    let claim = b
        .claim("x", "w", 1)
        .await
        .unwrap()
        .pop()
        .expect("the job is claimed");
    b.fail(
        id,
        &claim.token,
        "<!channel> see <http://evil.example|your invoice> & pay",
        false,
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let text = loop {
        if let Some(t) = posted
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.contains("channel"))
        {
            break t.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no webhook came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(!text.contains("<http://evil"), "{text}");
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(text.contains("&amp; pay"), "{text}");
}
