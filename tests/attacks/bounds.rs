//! Everything a client sends is bounded: durations and counts are checked before any script
//! runs, half-sent headers and stalled bodies are cut off, many large bodies at once do not
//! take the server's memory, event streams end when their client goes (and are capped per
//! key), and no request adds a metric series.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Stack;
use crate::harness::TestRedis;

#[tokio::test]
async fn durations_and_counts_past_their_maximum_are_400_before_any_script() {
    let s = Stack::start(|_| {}).await;
    let seq = s.job_seq();
    let job = |extra: Value| {
        let mut body = json!({"executor": "solver", "params": {"monomers": [["a"]]}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let refused = [
        job(json!({"delay": "584542046090y"})),
        job(json!({"delay": "366days"})),
        job(json!({"result_ttl": "500000000y"})),
        job(json!({"timeout": "999999999999h"})),
        job(json!({"timeout": "31days"})),
        job(json!({"backoff": "2days"})),
        job(json!({"run_at": "9999-01-01T00:00:00Z"})),
        job(json!({"max_attempts": 100000})),
    ];
    for body in refused {
        let (status, v) = s
            .call(&s.alice, Method::POST, "/jobs", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("at most") || m.contains("max_attempts")),
            "{body}: {v}"
        );
    }
    let (status, _) = s
        .call(
            &s.alice,
            Method::POST,
            "/workflows",
            Some(json!({"name": "w", "result_ttl": "400days",
            "nodes": [{"name": "a", "executor": "solver", "params": {}}]})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .call(
            &s.alice,
            Method::POST,
            "/v1/pipelines",
            Some(json!({"name": "p", "executor": "solver",
            "timeout": "999999999999h"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(s.job_seq(), seq, "nothing was created");
    // The server still answers: nothing panicked.
    let (status, _) = s.call(&s.alice, Method::GET, "/jobs", None).await;
    assert_eq!(status, 200);
    // The largest allowed values pass.
    let (status, v) = s
        .call(&s.alice, Method::POST, "/jobs", Some(job(json!({"delay": "365days",
            "timeout": "30days", "result_ttl": "365days", "backoff": "1day", "max_attempts": 1000}))))
        .await;
    assert_eq!(status, 201, "{v}");
    // A query string that does not parse is the caller's error, not a missing method.
    let (status, v) = s
        .call(&s.alice, Method::GET, "/jobs?limit=lots", None)
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn half_sent_headers_and_stalled_bodies_are_cut_off() {
    let s = Stack::start(|c| {
        c.header_timeout = Duration::from_secs(1);
        c.body_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = s.api.url("").trim_start_matches("http://").to_string();
    let closed_within = |mut sock: tokio::net::TcpStream, within: Duration| async move {
        let t0 = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(within, sock.read_to_end(&mut buf)).await;
        (
            read.is_ok(),
            t0.elapsed(),
            String::from_utf8_lossy(&buf).into_owned(),
        )
    };
    // Half a header, then silence.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(b"GET /jobs HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (closed, took, _) = closed_within(sock, Duration::from_secs(5)).await;
    assert!(closed, "a half-sent header keeps its socket open");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // A connection that says nothing at all.
    let sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (closed, _, _) = closed_within(sock, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stays open");
    // A body that stops halfway.
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"executor\": ",
        s.alice
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let (closed, took, answer) = closed_within(sock, Duration::from_secs(6)).await;
    assert!(closed, "a stalled body keeps its socket open");
    assert!(
        took < Duration::from_secs(4),
        "closed after {took:?}: {answer}"
    );
    assert!(!answer.contains("201"), "{answer}");
}

#[tokio::test]
async fn event_streams_end_with_their_client_are_capped_and_die_with_their_key() {
    let s = Stack::start(|_| {}).await;
    let b = &s.api.broker;
    // A job that never ends (no executor runs).
    let id = s.solver_job(&s.alice).await;
    let clients = || {
        s.redis
            .cli(&["CLIENT", "LIST"])
            .lines()
            .filter(|l| l.contains("user=sluice-api"))
            .count()
    };
    let before = clients();
    let http = reqwest::Client::new();
    let open = |key: String| {
        let http = http.clone();
        let url = s.api.url(&format!("/jobs/{id}/events"));
        async move { http.get(url).bearer_auth(key).send().await.unwrap() }
    };
    // A key holds at most 16 streams; the 17th is 429.
    let mut held = Vec::new();
    for _ in 0..broker::http::events::PER_KEY {
        let r = open(s.alice.clone()).await;
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let first = body.next().await.expect("snapshot").unwrap();
        assert!(String::from_utf8_lossy(&first).contains("snapshot"));
        held.push(body);
    }
    let r = open(s.alice.clone()).await;
    assert_eq!(r.status(), 429, "the key's cap");
    assert_eq!(
        open(s.bob.clone()).await.status(),
        404,
        "bob may not follow alice's job"
    );
    assert!(clients() >= before + broker::http::events::PER_KEY);
    // The clients hang up: their streams end and give back their Redis connections.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients() > before + 2 {
        assert!(
            Instant::now() < deadline,
            "streams whose clients hung up still hold {} Redis connections",
            clients() - before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Room again for alice.
    let r = open(s.alice.clone()).await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    stream.next().await.expect("snapshot").unwrap();
    // A revoked key's stream ends (it is looked up again every few seconds).
    b.revoke_key(&s.alice).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a revoked key's stream kept going");
}

#[tokio::test]
async fn random_paths_add_no_metric_series_and_artifacts_are_inert() {
    let s = Stack::start(|_| {}).await;
    let metrics = |s: &Stack| {
        let url = s.api.url("/metrics");
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let http = reqwest::Client::new();
    for i in 0..300 {
        let _ = http
            .request(
                reqwest::Method::from_bytes(if i % 2 == 0 { b"GET" } else { b"BREW" }).unwrap(),
                s.api.url(&format!("/probe-{i}/x{i}")),
            )
            .send()
            .await
            .unwrap();
    }
    let text = metrics(&s).await;
    assert!(!text.contains("probe-"), "a request path became a label");
    assert!(!text.contains("BREW"), "a request method became a label");
    assert!(text.contains("route=\"other\""), "{text}");

    // An uploaded page is not served as a page of the API's origin.
    let id = s.solver_job(&s.alice).await;
    for (name, body) in [
        ("page.html", "<script>fetch('/jobs')</script>"),
        (
            "pic.svg",
            "<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
        ),
        ("data.csv", "a,b\n1,2\n"),
    ] {
        let put = http
            .put(s.api.url(&format!("/jobs/{id}/artifacts/{name}")))
            .bearer_auth(&s.alice)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
        let got = http
            .get(s.api.url(&format!("/jobs/{id}/artifacts/{name}")))
            .bearer_auth(&s.alice)
            .send()
            .await
            .unwrap();
        let h = got.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{name}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox"),
            "{name}"
        );
        let attachment = h
            .get("content-disposition")
            .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("attachment"));
        assert_eq!(attachment, name != "data.csv", "{name}: {h:?}");
    }
    // The job's lease token (its running attempt's credential) is never shown.
    let (_, job) = s
        .call(&s.admin, Method::GET, &format!("/jobs/{id}"), None)
        .await;
    assert!(job.get("lease_token").is_none(), "{job}");
}

/// Peak resident memory (VmHWM) of a process, in MiB.
fn peak_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test]
async fn many_large_bodies_at_once_keep_memory_near_the_limit() {
    // A real `sluice serve` process, to read its own peak memory.
    let redis = TestRedis::start();
    let (child, base) = crate::harness::serve(&redis).start().await;
    let http = reqwest::Client::new();
    let idle = peak_mib(child.0.id());
    // 15 MB of many small keys: the costliest JSON to hold parsed (about 8x its size).
    let mut params = String::from("{");
    let mut i = 0;
    while params.len() < 15_000_000 {
        params.push_str(&format!("\"k{i}\":{i},"));
        i += 1;
    }
    params.push_str("\"end\":0}");
    let body = format!("{{\"executor\": \"x\", \"params\": {params}}}");
    let sends: Vec<_> = (0..6)
        .map(|_| {
            let http = http.clone();
            let (url, body) = (format!("{base}/jobs"), body.clone());
            tokio::spawn(async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for s in sends {
        statuses.push(s.await.unwrap().unwrap_or(0));
    }
    let peak = peak_mib(child.0.id());
    assert!(
        statuses.iter().all(|s| [201, 413, 503].contains(s)),
        "{statuses:?}"
    );
    // Six bodies parsed at once took ~730 MB over idle before the budget; two at a time
    // (the budget: 2 x max_content_length) stay well under that.
    assert!(
        peak - idle < 450,
        "peak {peak} MiB, idle {idle} MiB: large bodies are not bounded"
    );
    eprintln!("six 15 MB bodies: idle {idle} MiB, peak {peak} MiB, statuses {statuses:?}");
}
