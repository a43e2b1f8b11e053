//! The `sluice` binary against a real Redis: what a user types, what they see.
use std::process::Output;

use crate::harness::TestRedis;

fn sluice(redis: &TestRedis, args: &[&str]) -> Output {
    crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_REDIS_URL", &redis.url)
        .args(args)
        .output()
        .expect("run sluice")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn submit_claim_complete_status_through_the_cli() {
    let redis = TestRedis::start();
    let o = sluice(
        &redis,
        &[
            "submit",
            "command",
            r#"{"argv": ["echo", "hi"]}"#,
            "--result-ttl",
            "10m",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "1 PENDING");

    let o = sluice(&redis, &["claim", "command", "--worker", "me"]);
    let line: serde_json::Value =
        serde_json::from_str(stdout(&o).trim()).expect("claim prints JSON");
    assert_eq!(line["id"], 1);
    assert_eq!(line["params"]["argv"][1], "hi");
    let token = line["token"].as_str().unwrap().to_string();

    let o = sluice(&redis, &["complete", "1", &token, r#"{"out": "hi"}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = sluice(&redis, &["status", "1"]);
    let job: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("status prints JSON");
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["result"]["out"], "hi");
    assert_eq!(job["result_ttl"], "10m");
    assert_eq!(job["worker"], "me");

    let o = sluice(&redis, &["list", "--status", "completed"]);
    assert!(stdout(&o).contains("COMPLETED"), "{}", stdout(&o));
    let o = sluice(&redis, &["events", "1"]);
    let events = stdout(&o);
    for word in ["submitted", "claimed", "completed"] {
        assert!(events.contains(word), "{events}");
    }
}

#[test]
fn errors_are_one_line_and_a_nonzero_exit() {
    let redis = TestRedis::start();
    for (args, says) in [
        (vec!["status", "9"], "job 9 not found"),
        (vec!["status", "abc"], "positive integer"),
        (vec!["submit", "x", "{not json"], "params is not JSON"),
        (vec!["submit", "bad name"], "executor must be"),
        (vec!["submit", "x", "--timeout", "soon"], "soon"),
    ] {
        let o = sluice(&redis, &args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    // Stopping a finished job says why.
    sluice(&redis, &["submit", "x"]);
    sluice(&redis, &["stop", "1"]);
    let o = sluice(&redis, &["stop", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim(), "sluice: job 1 is CANCELED; cannot stop");
}

#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let o = crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_REDIS_URL", "redis://127.0.0.1:1")
        .args(["status", "1"])
        .output()
        .expect("run sluice");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("sluice: redis"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Stands for the claimed job's lease token in [`claim_then`]'s arguments.
const TOKEN: &str = "{token}";

/// Acts as an executor from another process: claims a job of kind `x` once one is queued,
/// then runs `sluice <then>` with its token.
fn claim_then(redis: &TestRedis, then: &'static [&'static str]) -> std::thread::JoinHandle<()> {
    let url = redis.url.clone();
    std::thread::spawn(move || {
        for _ in 0..200 {
            let o = crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
                .env("SLUICE_REDIS_URL", &url)
                .args(["claim", "x"])
                .output()
                .expect("claim");
            if let Ok(v) =
                serde_json::from_str::<serde_json::Value>(String::from_utf8_lossy(&o.stdout).trim())
            {
                let token = v["token"].as_str().unwrap_or_default();
                let args: Vec<&str> = then
                    .iter()
                    .map(|a| if *a == TOKEN { token } else { a })
                    .collect();
                crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
                    .env("SLUICE_REDIS_URL", &url)
                    .args(args)
                    .output()
                    .expect("sluice");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
}

#[test]
fn submit_wait_follows_the_job_to_its_end() {
    let redis = TestRedis::start();
    let worker = claim_then(&redis, &["complete", "1", TOKEN, "42"]);
    let o = sluice(&redis, &["submit", "x", "--wait"]);
    worker.join().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let job: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON job");
    assert_eq!(job["result"], 42);
}

/// `sluice <args>` started in the background with its stderr piped.
fn spawn(redis: &TestRedis, args: &[&str], env: &[(&str, &str)]) -> crate::harness::Proc {
    crate::harness::Proc(
        crate::harness::command(env!("CARGO_BIN_EXE_sluice"))
            .env("SLUICE_REDIS_URL", &redis.url)
            .envs(env.iter().copied())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start sluice"),
    )
}

/// Waits (up to 10 s) for a child to exit; its exit code.
fn exit_code(p: &mut crate::harness::Proc) -> Option<i32> {
    for _ in 0..200 {
        if let Ok(Some(s)) = p.try_wait() {
            return s.code();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

// See: issue 22 (follow commands ignored Ctrl-C and SIGTERM).
#[test]
fn waiting_commands_end_on_ctrl_c_and_sigterm() {
    let redis = TestRedis::start();
    assert!(sluice(&redis, &["submit", "x"]).status.success());
    for (args, signal) in [
        (&["events", "--follow"][..], "-INT"),
        (&["tick", "--every", "1s"][..], "-TERM"),
        (&["submit", "x", "--wait"][..], "-INT"),
    ] {
        let mut p = spawn(&redis, args, &[]);
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(p.try_wait().unwrap().is_none(), "{args:?} waits");
        let pid = p.id().to_string();
        assert!(std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        assert_eq!(exit_code(&mut p), Some(130), "{args:?} after {signal}");
    }
}

// See: issue 22 (`submit --wait` on a failed job said "invalid request").
#[test]
fn submit_wait_on_a_failed_job_says_how_it_ended() {
    let redis = TestRedis::start();
    let worker = claim_then(&redis, &["fail", "1", TOKEN, "disk full", "--no-retry"]);
    let o = sluice(&redis, &["submit", "x", "--wait", "--max-attempts", "1"]);
    worker.join().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sluice: job 1 ended FAILED: disk full"),
        "{err}"
    );
    assert!(!err.contains("invalid request"), "{err}");
}

// See: issue 22 (SLUICE_EXEC_SIZE was ignored by sluice-spark and sluice-gridlabd).
#[test]
fn every_executor_takes_its_exec_size_from_the_environment() {
    let redis = TestRedis::start();
    for program in [
        env!("CARGO_BIN_EXE_sluice-spark"),
        env!("CARGO_BIN_EXE_sluice-gridlabd"),
        env!("CARGO_BIN_EXE_sluice-solver"),
    ] {
        let mut p = crate::harness::Proc(
            crate::harness::command(program)
                .env("SLUICE_REDIS_URL", redis.url_for("exec"))
                .env("SLUICE_EXEC_SIZE", "5")
                .env("SLUICE_LOG", "info")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start executor"),
        );
        let pipe = p.stderr.take().expect("stderr");
        let mut started = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
            let line = line.unwrap_or_default();
            if line.contains("executor started") {
                started = line;
                break;
            }
        }
        assert!(started.contains("exec_size=5"), "{program}: {started}");
    }
}
