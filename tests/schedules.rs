//! Periodic jobs: two real `sluice beat` processes fire every tick exactly once.
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{Proc, TestRedis};

fn sluice(redis: &TestRedis, args: &[&str]) -> std::process::Output {
    crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_REDIS_URL", &redis.url)
        .args(args)
        .output()
        .expect("sluice")
}

fn beat(redis: &TestRedis) -> Proc {
    Proc(
        crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
            .args(["beat", "--every", "20ms"])
            .env("SLUICE_REDIS_URL", redis.url_for("api"))
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sluice beat"),
    )
}

#[test]
fn two_beats_fire_each_tick_exactly_once() {
    let redis = TestRedis::start();
    let o = sluice(
        &redis,
        &[
            "schedules",
            "add",
            "pulse",
            "--executor",
            "x",
            "--every",
            "200ms",
            "--params",
            r#"{"n": 1}"#,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut a, mut b) = (beat(&redis), beat(&redis));
    std::thread::sleep(Duration::from_millis(4500));
    for p in [&mut a, &mut b] {
        assert!(Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status()
            .unwrap()
            .success());
        assert_eq!(p.wait().unwrap().code(), Some(0), "beat exits 0 on SIGTERM");
    }
    let jobs: u64 = redis.cli(&["GET", "job_seq"]).trim().parse().unwrap_or(0);
    let mut ticks = BTreeSet::new();
    for id in 1..=jobs {
        let tick = redis
            .cli(&["HGET", &format!("job_{id}"), "schedule"])
            .trim()
            .to_string();
        assert!(tick.starts_with("pulse@"), "job {id}: {tick:?}");
        assert!(ticks.insert(tick.clone()), "tick {tick} fired twice");
    }
    assert!(jobs >= 20, "only {jobs} ticks fired in 4.5 s");
    let times: Vec<u128> = ticks
        .iter()
        .map(|t| {
            humantime::parse_rfc3339(t.trim_start_matches("pulse@"))
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        })
        .collect();
    let span = (times[times.len() - 1] - times[0]) / 200 + 1;
    assert_eq!(
        span as u64, jobs,
        "no tick was skipped between the first and the last"
    );
    println!("{jobs} ticks, each fired once by two beats");
    let list = String::from_utf8_lossy(&sluice(&redis, &["schedules", "list"]).stdout).into_owned();
    assert!(
        list.contains("pulse") && list.contains("every 200ms"),
        "{list}"
    );
}

#[test]
fn schedules_are_checked_and_removed() {
    let redis = TestRedis::start();
    let o = sluice(
        &redis,
        &[
            "schedules",
            "add",
            "bad",
            "--executor",
            "x",
            "--cron",
            "every day",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cron"));
    assert!(sluice(
        &redis,
        &[
            "schedules",
            "add",
            "nightly",
            "--executor",
            "x",
            "--cron",
            "0 3 * * *"
        ]
    )
    .status
    .success());
    assert_eq!(redis.cli(&["ZCARD", "schedules"]).trim(), "1");
    assert!(sluice(&redis, &["schedules", "rm", "nightly"])
        .status
        .success());
    assert_eq!(redis.cli(&["EXISTS", "schedule:nightly"]).trim(), "0");
    assert_eq!(
        sluice(&redis, &["schedules", "rm", "nightly"])
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test]
async fn schedules_over_http_are_for_admins() {
    use crate::harness::TestApi;
    use serde_json::json;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.auth = true).await;
    let admin = api
        .broker
        .create_key("ops", broker::apikeys::Role::Admin)
        .await
        .unwrap();
    let client = api
        .broker
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let body = json!({"executor": "x", "every": "1h", "params": {"a": 1}});
    let r = http
        .put(api.url("/schedules/hourly"))
        .bearer_auth(&client)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .put(api.url("/schedules/hourly"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .put(api.url("/schedules/bad"))
        .bearer_auth(&admin)
        .json(&json!({"executor": "x", "cron": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = http
        .get(api.url("/schedules"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["schedules"][0]["name"], "hourly");
    assert_eq!(v["schedules"][0]["every"], "1h");
    let r = http
        .delete(api.url("/schedules/hourly"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .delete(api.url("/schedules/hourly"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
