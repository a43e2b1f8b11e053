//! Artifacts through a real `sluice serve` process: a 100 MiB upload streams to disk without
//! the server's memory growing, downloads byte for byte, bad names and oversize bodies are
//! refused, and the files go when the job expires.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Body, Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{free_port, Proc, TestRedis};

const MIB: usize = 1 << 20;

/// Byte `i` of the test file: a pattern that a shifted or dropped chunk would break.
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// `len` bytes of the pattern as a stream of 64 KiB chunks, never all in memory.
fn pattern(len: usize) -> Body {
    let chunks = (0..len.div_ceil(65_536)).map(move |c| {
        let start = c * 65_536;
        let bytes: Vec<u8> = (start..(start + 65_536).min(len)).map(byte).collect();
        Ok::<_, std::io::Error>(bytes)
    });
    Body::wrap_stream(futures::stream::iter(chunks))
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_100_mib_artifact_round_trips_with_flat_server_memory_and_expires_with_its_job() {
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Proc(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .env_remove("SLUICE_CONFIG")
            .env("SLUICE_REDIS_URL", &redis.url)
            .env("SLUICE_PORT", port.to_string())
            .env("SLUICE_AUTH", "off")
            .env("SLUICE_ARTIFACT_DIR", dir.path())
            .env("SLUICE_MAX_ARTIFACT_SIZE", (101 * MIB).to_string())
            .env("SLUICE_RESULT_TTL", "1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sluice serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "sluice serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{base}/jobs"))
        .json(&json!({"executor": "gridlabd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let before = peak_rss(server.id());
    let len = 100 * MIB;
    let r = http
        .put(format!("{base}/jobs/1/artifacts/model%20out.csv"))
        .body(pattern(len))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["size"].as_u64()),
        (Some("model out.csv"), Some(len as u64)),
        "{v}"
    );
    let grew = peak_rss(server.id()).saturating_sub(before);
    assert!(
        grew < 8 * MIB,
        "the server's peak memory grew by {} KiB for a 100 MiB upload",
        grew / 1024
    );
    println!("100 MiB upload: server peak RSS grew {} KiB", grew / 1024);

    let r = http
        .get(format!("{base}/jobs/1/artifacts/model%20out.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert_eq!(r.headers()["content-type"].to_str().unwrap(), "text/csv");
    let mut at = 0;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        assert!(
            chunk.iter().enumerate().all(|(i, b)| *b == byte(at + i)),
            "byte mismatch near {at}"
        );
        at += chunk.len();
    }
    assert_eq!(at, len, "every byte back");

    for (name, want) in [
        ("..%2Fescape", StatusCode::BAD_REQUEST),
        (".hidden", StatusCode::BAD_REQUEST),
        ("a%0Ab", StatusCode::BAD_REQUEST),
    ] {
        let r = http
            .put(format!("{base}/jobs/1/artifacts/{name}"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{name}");
    }
    let r = http
        .put(format!("{base}/jobs/1/artifacts/big.bin"))
        .body(pattern(101 * MIB + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = http
        .put(format!("{base}/jobs/9/artifacts/x.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "no artifacts for a job that does not exist"
    );
    let listed: Value = http
        .get(format!("{base}/jobs/1/artifacts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["artifacts"].as_array().map(Vec::len),
        Some(1),
        "nothing left of refused uploads: {listed}"
    );

    // The job ends, expires after result_ttl (1 s), and its files follow at the next sweep.
    let r = http
        .post(format!("{base}/jobs/1/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let files = dir.path().join("1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while files.exists() {
        assert!(
            Instant::now() < deadline,
            "artifacts of an expired job are still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
