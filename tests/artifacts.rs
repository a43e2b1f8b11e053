//! Artifacts, each test run against both stores (a local directory, and a bucket on a real
//! S3-compatible server, harness/s3.rs): through a real `sluice serve` process a 100 MiB
//! upload streams without the server's memory growing, downloads byte for byte (and by
//! range), bad names and oversize bodies are refused, and the artifacts go when the job
//! expires; in-process, the store handle keeps its contract (put, fetch, copy, list, remove).
use std::time::{Duration, Instant};

use broker::artifacts::StoreKind;
use broker::{Error, JobId};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Body, Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{TestRedis, TestStore};

const MIB: usize = 1 << 20;

/// Byte `i` of the test file: a pattern that a shifted or dropped chunk would break.
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// `len` bytes of the pattern from `start` in 64 KiB chunks, never all in memory.
fn chunks(start: usize, len: usize) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let end = start + len;
    futures::stream::iter((start..end).step_by(65_536).map(move |at| {
        Ok(Bytes::from(
            (at..(at + 65_536).min(end)).map(byte).collect::<Vec<u8>>(),
        ))
    }))
}

/// `len` bytes of the pattern as a request body.
fn pattern(len: usize) -> Body {
    Body::wrap_stream(chunks(0, len))
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

/// Checks that `body` is the pattern from byte `start` on; returns how many bytes came.
async fn check_pattern(r: reqwest::Response, start: usize) -> usize {
    let mut at = start;
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        assert!(
            chunk.iter().enumerate().all(|(i, b)| *b == byte(at + i)),
            "byte mismatch near {at}"
        );
        at += chunk.len();
    }
    at - start
}

async fn round_trip(kind: StoreKind) {
    let redis = TestRedis::start();
    let store = TestStore::start(kind).await;
    let mut serve = crate::harness::serve(&redis);
    serve
        .cmd
        .envs(store.env())
        .env("SLUICE_MAX_ARTIFACT_SIZE", (101 * MIB).to_string())
        .env("SLUICE_RESULT_TTL", "1s");
    let (server, base) = serve.start().await;
    let http = Client::new();
    let r = http
        .post(format!("{base}/jobs"))
        .json(&json!({"executor": "gridlabd"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let before = peak_rss(server.id());
    let len = 100 * MIB;
    let t0 = Instant::now();
    let r = http
        .put(format!("{base}/jobs/1/artifacts/model%20out.csv"))
        .body(pattern(len))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let took = t0.elapsed();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["name"].as_str(), v["size"].as_u64()),
        (Some("model out.csv"), Some(len as u64)),
        "{v}"
    );
    let grew = peak_rss(server.id()).saturating_sub(before);
    println!(
        "{kind}: 100 MiB upload in {took:?}, server peak RSS grew {} KiB",
        grew / 1024
    );
    // A file's upload holds a chunk at a time; a bucket's, one 5 MiB multipart part (about
    // 10 MiB measured: glibc keeps freed parts in two threads' arenas; 6.4 MiB with
    // MALLOC_ARENA_MAX=1). Either way far from the 100 MiB a buffered body would take.
    let bound = match kind {
        StoreKind::Local => 8 * MIB,
        StoreKind::S3 => 14 * MIB,
    };
    assert!(
        grew < bound,
        "{kind}: the server's peak memory grew by {} KiB for a 100 MiB upload",
        grew / 1024
    );

    let t0 = Instant::now();
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
    assert_eq!(check_pattern(r, 0).await, len, "every byte back");
    println!("{kind}: 100 MiB download in {:?}", t0.elapsed());

    let r = http
        .get(format!("{base}/jobs/1/artifacts/model%20out.csv"))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000-1999/{len}")
    );
    assert_eq!(check_pattern(r, 1000).await, 1000, "the range's bytes");
    let r = http
        .get(format!("{base}/jobs/1/artifacts/model%20out.csv"))
        .header("range", format!("bytes={}-", len + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = http
        .get(format!("{base}/jobs/1/artifacts/absent.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

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
        let r = http
            .get(format!("{base}/jobs/1/artifacts/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "GET {name}");
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
    assert_eq!(listed["artifacts"][0]["size"], len as u64, "{listed}");

    // The job ends, expires after result_ttl (1 s), and its artifacts follow at the next sweep.
    let r = http
        .post(format!("{base}/jobs/1/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let artifacts = store.artifacts();
    let deadline = Instant::now() + Duration::from_secs(30);
    while artifacts.job_ids().await.unwrap().contains(&JobId(1)) {
        assert!(
            Instant::now() < deadline,
            "{kind}: artifacts of an expired job are still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(artifacts.list(JobId(1)).await.unwrap(), []);
}

#[tokio::test]
async fn a_100_mib_artifact_round_trips_with_flat_server_memory_and_expires_with_its_job() {
    round_trip(StoreKind::Local).await;
}

#[tokio::test]
async fn a_100_mib_artifact_in_a_bucket_round_trips_with_flat_server_memory_and_expires() {
    round_trip(StoreKind::S3).await;
}

/// What every store promises its callers.
async fn contract(kind: StoreKind) {
    let store = TestStore::start(kind).await;
    let a = store.artifacts();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (JobId(1), JobId(2));

    // A file over one multipart part, and a small one.
    let big = dir.path().join("big.bin");
    let big_len = 6 * MIB + 5;
    std::fs::write(&big, (0..big_len).map(byte).collect::<Vec<u8>>()).unwrap();
    assert_eq!(
        a.put_file(one, "big.bin", &big).await.unwrap(),
        big_len as u64
    );
    let body = futures::stream::iter(["hello ", "world"].map(|s| Ok(Bytes::from(s))));
    assert_eq!(
        a.put_stream(one, "s.txt", body, 100).await.unwrap(),
        Some(11)
    );
    // Over the limit, or a body that breaks (after a part was sent): nothing stored.
    assert_eq!(
        a.put_stream(one, "over.bin", chunks(0, 7 * MIB), 6 * MIB as u64)
            .await
            .unwrap(),
        None
    );
    let broken = chunks(0, 6 * MIB).chain(futures::stream::iter([Err(std::io::Error::other(
        "client went away",
    ))]));
    assert!(matches!(
        a.put_stream(one, "broken.bin", broken, u64::MAX).await,
        Err(Error::Invalid(_))
    ));
    let names = |v: Vec<broker::artifacts::Artifact>| {
        v.into_iter().map(|x| (x.name, x.size)).collect::<Vec<_>>()
    };
    assert_eq!(
        names(a.list(one).await.unwrap()),
        [
            ("big.bin".to_string(), big_len as u64),
            ("s.txt".into(), 11)
        ]
    );
    assert_eq!(a.size(one, "s.txt").await.unwrap(), 11);

    let back = dir.path().join("back.bin");
    a.fetch(one, "big.bin", &back).await.unwrap();
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap());
    assert!(matches!(
        a.fetch(one, "absent.txt", &back).await,
        Err(Error::Missing(_))
    ));
    assert!(matches!(
        a.size(one, "absent.txt").await,
        Err(Error::Missing(_))
    ));

    a.copy(one, "big.bin", two).await.unwrap();
    a.fetch(two, "big.bin", &back).await.unwrap();
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&big).unwrap());
    assert!(matches!(
        a.copy(one, "absent.txt", two).await,
        Err(Error::Missing(_))
    ));
    a.copy_as(one, "s.txt", two, "renamed.txt").await.unwrap();
    assert_eq!(a.read(two, "renamed.txt").await.unwrap(), b"hello world");

    let opened = a.open(two, "big.bin", Some(10..20)).await.unwrap();
    assert_eq!(
        (opened.size, opened.range.clone()),
        (big_len as u64, 10..20)
    );
    let got: Vec<u8> = opened.body.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(got, (10..20).map(byte).collect::<Vec<u8>>());

    // Replacing an artifact replaces it whole.
    let body = futures::stream::iter([Ok(Bytes::from("new"))]);
    a.put_stream(one, "s.txt", body, 100).await.unwrap();
    a.fetch(one, "s.txt", &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"new");
    assert_eq!(a.read(one, "s.txt").await.unwrap(), b"new");
    assert!(matches!(
        a.read(one, "absent.txt").await,
        Err(Error::Missing(_))
    ));

    let mut ids = a.job_ids().await.unwrap();
    ids.sort();
    assert_eq!(ids, [one, two]);
    a.remove(one).await.unwrap();
    a.remove(one).await.unwrap();
    assert_eq!(a.list(one).await.unwrap(), []);
    assert_eq!(a.job_ids().await.unwrap(), [two]);
    assert_eq!(names(a.list(two).await.unwrap()).len(), 2);
}

#[tokio::test]
async fn the_local_store_keeps_the_artifacts_contract() {
    contract(StoreKind::Local).await;
}

#[tokio::test]
async fn the_s3_store_keeps_the_artifacts_contract() {
    contract(StoreKind::S3).await;
}
