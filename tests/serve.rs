//! `sluice serve` as a real process: it serves, and on SIGTERM stops accepting, ends open
//! event streams, finishes what is in flight and exits 0.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::harness::{Proc, TestRedis};

#[tokio::test]
async fn sigterm_ends_streams_and_exits_zero() {
    let redis = TestRedis::start();
    let mut serve = crate::harness::serve(&redis);
    serve.cmd.env("SLUICE_LOG", "info").stderr(Stdio::piped());
    let (mut child, base) = serve.start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/jobs"))
        .json(&json!({"executor": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    // An open event stream of a job that never ends: in flight when the signal comes.
    let sse = http
        .get(format!("{base}/jobs/1/events"))
        .send()
        .await
        .unwrap();
    let mut stream = sse.bytes_stream();
    let first = stream.next().await.expect("snapshot").unwrap();
    assert!(String::from_utf8_lossy(&first).contains("snapshot"));

    let t0 = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the event stream was not ended by the shutdown"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sluice serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    assert!(
        http.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer accepting"
    );
    assert_eq!(
        redis.cli(&["HGET", "job_1", "status"]).trim(),
        "PENDING",
        "the job is untouched"
    );
}

#[test]
fn serve_refuses_a_redis_that_may_evict_jobs() {
    let redis = TestRedis::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let run = |allow: &str| {
        let mut serve = crate::harness::serve(&redis);
        serve
            .cmd
            .env("SLUICE_LOG", "info")
            .env("SLUICE_ALLOW_EVICTION", allow)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice serve")
    };
    let out = run("off").wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("maxmemory-policy is allkeys-lru") && err.contains("noeviction"),
        "{err}"
    );
    // Allowed explicitly: it starts (and is stopped here).
    let mut child = Proc(run("on"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "with SLUICE_ALLOW_EVICTION=on it runs"
    );
    // Its log on a pipe (as under supervisord) is plain text: no colour codes.
    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
    }
    assert!(err.contains("serving"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes in a piped log: {err:?}"
    );
}

#[tokio::test]
async fn json_logs_to_daily_files_with_an_access_line_per_request() {
    let redis = TestRedis::start();
    let logs = tempfile::tempdir().unwrap();
    let mut serve = crate::harness::serve(&redis);
    serve
        .cmd
        .env("SLUICE_LOG", "info")
        .env("SLUICE_LOG_FORMAT", "json")
        .env("SLUICE_LOG_DIR", logs.path());
    let (mut child, base) = serve.start().await;
    let http = reqwest::Client::new();
    http.post(format!("{base}/jobs"))
        .header("x-request-id", "req-77")
        .json(&json!({"executor": "x"}))
        .send()
        .await
        .unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap();
    let file = std::fs::read_dir(logs.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("sluice.log."));
    let text = std::fs::read_to_string(file.expect("a dated log file").path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "req-77")
        .expect("an access line with the request id");
    assert_eq!(
        (
            access["method"].as_str(),
            access["path"].as_str(),
            access["status"].as_u64()
        ),
        (Some("POST"), Some("/jobs"), Some(201))
    );
}
