//! The StableConfigs face over real HTTP with the real `sluice-solver` binary: SEEDS.md 1.9's
//! examples and answers, progress, terminate, timeout, and its status codes.
use std::time::{Duration, Instant};

use broker::Config;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Proc, TestApi, TestRedis};

struct Face {
    _redis: TestRedis,
    api: TestApi,
    _solver: Option<Proc>,
}

async fn face(with_solver: bool, tweak: impl FnOnce(&mut Config)) -> Face {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, tweak).await;
    let solver = with_solver.then(|| {
        crate::harness::executor(
            env!("CARGO_BIN_EXE_sluice-solver"),
            &redis,
            &[],
            Vec::<(&str, &str)>::new(),
        )
    });
    Face {
        _redis: redis,
        api,
        _solver: solver,
    }
}

impl Face {
    async fn post(&self, body: Value) -> String {
        let r = Client::new()
            .post(self.api.url("/task"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        v["task_id"]
            .as_str()
            .expect("task_id is a string")
            .to_string()
    }

    async fn status(&self, id: &str) -> (StatusCode, Value) {
        let r = Client::new()
            .get(self.api.url(&format!("/status/{id}")))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    /// Polls until the answer is neither 202 Progress nor 203 Pending.
    async fn outcome(&self, id: &str) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = self.status(id).await;
            if s != StatusCode::ACCEPTED && s != StatusCode::NON_AUTHORITATIVE_INFORMATION {
                return (s, v);
            }
            assert!(Instant::now() < deadline, "task {id} still {s}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn counts(v: &Value) -> Vec<u64> {
    v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["polymers_count"].as_u64().unwrap())
        .collect()
}

/// A TBN with very many distinct saturated configurations: asking for a million keeps
/// the solver busy long enough to watch and stop it.
fn endless() -> Value {
    let monomers: Vec<Value> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                json!(["a", "b", "c"])
            } else {
                json!(["a*", "b*", "c*"])
            }
        })
        .collect();
    json!({"monomers": monomers, "gen": 1_000_000})
}

#[tokio::test]
async fn the_readme_request_answers_as_the_original_code_did() {
    let f = face(true, |_| {}).await;
    // SEEDS.md 1.9 A1: the README's request.
    let id = f
        .post(
            json!({"monomers": [["a", "b"], ["a*", "b*"], ["a*", ">mon1"], ["b*"]],
                     "constraints": [["FREE", "mon1"]], "gen": 2, "init_k": 2}),
        )
        .await;
    let (s, v) = f.outcome(&id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["status"].as_str(),
            v["count"].as_u64(),
            v["entropy"].as_u64()
        ),
        (Some("COMPLETE"), Some(2), Some(3)),
        "{v}"
    );
    assert_eq!(counts(&v), [3, 2]);
    assert_eq!(
        v["configs"][0]["polymers"].as_array().unwrap().len(),
        3,
        "polymers_count counts the polymers listed"
    );
    // C1, C2, C3 and B1, G1.
    let c = json!([
        ["a", "b", ">mon1"],
        ["a*", "b*", ">mon2"],
        ["a", ">mon3"],
        ["b", ">mon4"]
    ]);
    for (body, want_counts, entropy) in [
        (json!({"monomers": c}), vec![3], 3),
        (json!({"monomers": c, "gen": 2}), vec![3, 2], 3),
        (
            json!({"monomers": c, "constraints": [["FREE", "mon1"]]}),
            vec![2],
            3,
        ),
        (
            json!({"monomers": [["a", "b*"], ["a*", "b"], ["a"], ["a*", "b"], ["b"], ["b"]]}),
            vec![4],
            4,
        ),
        (
            json!({"monomers": [["a","b","c","d","e"],["a*","b*","c*","d*"],["b*","c*:s1","d*","e*"],["d","e","f"],["a","b",">input1"],["b","c:s2"],["c","d:s3",">input2"],["e","f",">output"],["e*","f*"]]}),
            vec![5],
            5,
        ),
        // See: issue 14. A monomer whose sites pair with each other is a polymer of its
        // own: 2, where the original answered 1 (still there on request).
        (
            json!({"monomers": [["a*","a","a"], ["a*"], ["a","a"]]}),
            vec![2],
            2,
        ),
        (
            json!({"monomers": [["a*","a","a"], ["a*"], ["a","a"]], "counting": "original"}),
            vec![1],
            1,
        ),
    ] {
        let id = f.post(body.clone()).await;
        let (s, v) = f.outcome(&id).await;
        assert_eq!(s, StatusCode::OK, "{body}: {v}");
        assert_eq!(
            (counts(&v), v["entropy"].as_u64()),
            (want_counts, Some(entropy)),
            "{body}: {v}"
        );
    }
}

#[tokio::test]
async fn bad_tbns_answer_401_with_the_original_messages() {
    let f = face(true, |_| {}).await;
    for (body, want) in [
        (json!({"monomers": []}), "Input contains no monomers."),
        (json!({"monomers": [["a:s1"]], "constraints": [["ANYPAIRED", "s1"]]}),
         "Binding Site [s1] does not have any complementary binding sites in the system."),
        (json!({"monomers": [["a", ">t2"], ["a*", "b*", ">t1"], ["a", "b"], ["b", ">t3"]], "init_k": 4}),
         "Minimum Polymers [4] exceeds the max entropy of TBN system. No Results can be computed. Choose a lower value."),
        (json!({"monomers": [["a"]], "constraints": [["SOMETIMES", "x"]]}), "Invalid Constraint 'SOMETIMES'. 'SOMETIMES x'"),
    ] {
        let id = f.post(body.clone()).await;
        let (s, v) = f.outcome(&id).await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::UNAUTHORIZED, Some("TBNException")), "{body}: {v}");
        assert_eq!(v["message"], want, "{body}");
    }
    let r = Client::new()
        .post(f.api.url("/task"))
        .json(&json!({"gen": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "no monomers at all");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("monomers: required"),
        "{v}"
    );
    let r = Client::new()
        .post(f.api.url("/task"))
        .json(&json!({"monomers": [["a"]], "counting": "roughly"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "unknown counting");
}

#[tokio::test]
async fn progress_then_terminate_reads_as_early_termination() {
    let f = face(true, |_| {}).await;
    let id = f.post(endless()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let (s, v) = f.status(&id).await;
        if s == StatusCode::ACCEPTED && v["count"].as_u64().unwrap_or(0) >= 2 {
            break v;
        }
        assert!(Instant::now() < deadline, "no progress: {s} {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen["status"], "Progress");
    assert!(seen["k"].as_u64().unwrap() >= 1, "{seen}");
    let r = Client::new()
        .delete(f.api.url(&format!("/terminate/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": format!("terminating task: {id}")})
    );
    let t0 = Instant::now();
    let (s, v) = f.outcome(&id).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("TBNException")),
        "{v}"
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.starts_with("Early Termination at count [") && message.ends_with("]."),
        "{message}"
    );
    // The answer turns at the request; the solver itself stops within a heartbeat.
    let job_id = broker::JobId(id.parse().unwrap());
    while f.api.broker.get(job_id).await.unwrap().status != broker::Status::Canceled {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "the solver did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped_in = t0.elapsed();
    println!("terminate -> CANCELED in {stopped_in:?}");
    assert!(
        stopped_in < Duration::from_secs(1),
        "stopped in {stopped_in:?}"
    );
}

#[tokio::test]
async fn a_solve_over_its_time_limit_answers_400_timeout_in_either_words() {
    let f = face(true, |c| {
        c.solver_timeout = Duration::from_millis(1500);
        c.stableconfigs_words = "code".into();
    })
    .await;
    let id = f.post(endless()).await;
    let (s, v) = f.outcome(&id).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Timeout")),
        "the original code's word: {v}"
    );
    let id = f.post(json!({"monomers": [["a"], ["a*"]]})).await;
    let (_, v) = f.outcome(&id).await;
    assert_eq!(v["status"], "Completed", "the original code's word");
}

#[tokio::test]
async fn unknown_pending_and_expired_tasks_are_told_apart() {
    // The face's own retention (StableConfigs kept results 300 s) decides, not result_ttl.
    let f = face(false, |c| {
        c.result_ttl = Duration::from_secs(3600);
        c.set("retention", "stableconfigs=300ms").unwrap();
    })
    .await;
    let id = f.post(json!({"monomers": [["a"], ["a*"]]})).await;
    let (s, v) = f.status(&id).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::NON_AUTHORITATIVE_INFORMATION, Some("Pending")),
        "no solver yet: {v}"
    );
    let (s, _) = f.status("999").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f.status("not-a-number").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Terminating a task nobody started cancels it; then it expires.
    let r = Client::new()
        .delete(f.api.url(&format!("/terminate/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, v) = f.status(&id).await;
    assert_eq!(
        (s, v["message"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Early Termination at count [0] min polymers [1].")
        ),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, v) = f.status(&id).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::NON_AUTHORITATIVE_INFORMATION, Some("Expired")),
        "{v}"
    );
}

// See: issue 14. A task is submitted with one attempt; a solver SIGKILLed mid-solve must not
// spend it: its tasks run again on the surviving solver once their lease expires, and every
// acknowledged task ends COMPLETE with the right answer.
#[tokio::test]
async fn a_solver_killed_mid_solve_loses_no_task() {
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.lease = Duration::from_secs(1)).await;
    let solver = |redis: &TestRedis| {
        crate::harness::executor(
            env!("CARGO_BIN_EXE_sluice-solver"),
            redis,
            &["--exec-size", "2"],
            [("SLUICE_LEASE", "1s")],
        )
    };
    let mut doomed = solver(&redis);
    let _survivor = solver(&redis);
    // Six pairs of [a b c] / [a* b* c*]: entropy 6 and far more than 300 distinct
    // configurations, so each task takes a while and always answers 300 of them.
    let mut body = endless();
    body["gen"] = json!(300);
    let f = Face {
        _redis: redis,
        api,
        _solver: None,
    };
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(f.post(body.clone()).await);
    }
    let b = &f.api.broker;
    let doomed_name = format!("solver-{}-", doomed.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    'wait: loop {
        for id in &ids {
            let j = b.get(broker::JobId(id.parse().unwrap())).await.unwrap();
            if j.status == broker::Status::Running
                && j.field("worker")
                    .is_some_and(|w| w.starts_with(&doomed_name))
            {
                break 'wait;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the doomed solver never ran a task"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().unwrap(); // SIGKILL mid-solve
    doomed.wait().unwrap();
    let mut lost = 0;
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (s, v) = loop {
            let (s, v) = f.status(id).await;
            if s != StatusCode::ACCEPTED && s != StatusCode::NON_AUTHORITATIVE_INFORMATION {
                break (s, v);
            }
            assert!(Instant::now() < deadline, "task {id} still {s}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(s, StatusCode::OK, "task {id}: {v}");
        assert_eq!(
            (v["count"].as_u64(), v["entropy"].as_u64()),
            (Some(300), Some(6))
        );
        let j = b.get(broker::JobId(id.parse().unwrap())).await.unwrap();
        assert_eq!(j.attempt, 1, "task {id} spent one attempt");
        lost += j.lost;
    }
    assert!(lost >= 1, "no task lost its solver");
}

/// The original needed no key: an operator can open this face to anonymous callers, bounded
/// by a per-address rate and a cap on waiting tasks, while every other route stays keyed and
/// a keyed owner's tasks stay out of anonymous reach.
#[tokio::test]
async fn an_open_face_serves_anonymous_callers_within_bounds() {
    let f = face(false, |c| {
        c.auth = true;
        c.stableconfigs_anonymous = true;
        c.stableconfigs_rate = 3;
        c.stableconfigs_max_queued = 2;
    })
    .await;
    let http = Client::new();
    let tbn = json!({"monomers": [["a"], ["a*"]]});
    let task = |key: Option<&str>| {
        let mut r = http.post(f.api.url("/task")).json(&tbn);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let first = f.post(tbn.clone()).await;
    let (s, v) = f.status(&first).await;
    assert_eq!(s, StatusCode::NON_AUTHORITATIVE_INFORMATION, "{v}");
    assert_eq!(
        f._redis
            .cli(&["HGET", &format!("job_{first}"), "owner"])
            .trim(),
        "anonymous"
    );
    f.post(tbn.clone()).await;
    // Two tasks wait: the third is refused with the face's shape, then the rate (3 a minute).
    let r = task(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "Exception");
    let r = task(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // A keyed caller is not bound by them, and its tasks are not the anonymous callers'.
    let key = f
        .api
        .broker
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let r = task(Some(&key)).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let anas = r.json::<Value>().await.unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = f.status(&anas).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "anonymous callers do not see ana's task"
    );
    let r = http
        .delete(f.api.url(&format!("/terminate/{anas}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The rest of the API stays keyed; a bad key is not taken for anonymous.
    let r = http.get(f.api.url("/jobs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(f.api.url(&format!("/jobs/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(f.api.url(&format!("/status/{first}")))
        .bearer_auth("sk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NON_AUTHORITATIVE_INFORMATION);
}

/// Closed (the default), the face wants a key like every other route.
#[tokio::test]
async fn a_closed_face_wants_a_key() {
    let f = face(false, |c| c.auth = true).await;
    let r = Client::new()
        .post(f.api.url("/task"))
        .json(&json!({"monomers": [["a"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(f._redis.cli(&["EXISTS", "job_seq"]).trim(), "0");
}

/// Its browser front-end called the API from another origin: a preflight from a listed
/// origin is answered, an unlisted one is refused, and answers carry the CORS headers.
#[tokio::test]
async fn listed_origins_may_call_the_face_from_a_browser() {
    let f = face(false, |c| {
        c.cors_origins = vec!["http://localhost:8080".into()];
    })
    .await;
    let http = Client::new();
    for path in ["/task", "/status/1", "/terminate/1"] {
        let r = http
            .request(reqwest::Method::OPTIONS, f.api.url(path))
            .header("origin", "http://localhost:8080")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:8080");
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type"));
    }
    let r = http
        .request(reqwest::Method::OPTIONS, f.api.url("/task"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let r = http
        .post(f.api.url("/task"))
        .header("origin", "http://localhost:8080")
        .json(&json!({"monomers": [["a"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:8080"
    );
    let r = http
        .get(f.api.url("/status/1"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Only this face: the native API answers no preflight.
    let r = http
        .request(reqwest::Method::OPTIONS, f.api.url("/jobs"))
        .header("origin", "http://localhost:8080")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
