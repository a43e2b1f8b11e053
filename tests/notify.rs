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
    let api = TestApi::start(&redis, |c| c.webhooks = vec![url.clone()]).await;
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
    let t0 = Instant::now();
    b.fail(failed, &c.token, "Input contains no monomers.", false)
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(100),
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
