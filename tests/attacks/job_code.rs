//! Job code reaching for the broker: a client whose job runs code it chose (a command action
//! that runs an interpreter, a GridLAB-D model) tries to read the executor's Redis
//! credentials (environment, /proc of its parent, the config file), to reach Redis, to read
//! other jobs' files, or to make GridLAB-D run a shell command. Each is refused, and no API
//! key appears in Redis.
use std::time::Duration;

use broker::Status;
use reqwest::Method;
use serde_json::{json, Value};

use super::Stack;
use crate::harness::{executor, wait_for};

/// What the probe reports, as one JSON object on stdout.
const PROBE: &str = r#"
import json, os, socket
out = {}
out["env_has_redis"] = any("REDIS" in k or "redis://" in v for k, v in os.environ.items())
out["env_names"] = sorted(os.environ)
try:
    out["parent_environ"] = open(f"/proc/{os.getppid()}/environ", "rb").read().decode(errors="replace")
except Exception as e:
    out["parent_environ"] = "refused: " + type(e).__name__
try:
    out["config"] = open(os.environ.get("PROBE_CONFIG", "/nonexistent")).read()
except Exception as e:
    out["config"] = "refused: " + type(e).__name__
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect("PROBE_SOCKET")
    s.sendall(b"PING\r\n")
    out["redis"] = s.recv(100).decode()
except Exception as e:
    out["redis"] = "refused: " + type(e).__name__
try:
    s = socket.create_connection(("127.0.0.1", PROBE_PORT), timeout=2)
    out["loopback"] = "connected"
except Exception as e:
    out["loopback"] = "refused: " + type(e).__name__
try:
    out["artifacts"] = os.listdir(os.environ.get("PROBE_ARTIFACTS", "/nonexistent"))
except Exception as e:
    out["artifacts"] = "refused: " + type(e).__name__
try:
    open("/etc/sluice-probe", "w").write("x")
    out["wrote_etc"] = True
except Exception:
    out["wrote_etc"] = False
print(json.dumps(out))
"#;

// See: issue 15, finding 1.
#[tokio::test]
async fn job_code_cannot_read_the_executors_credentials_or_reach_redis() {
    let s = Stack::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    std::fs::create_dir_all(artifacts.join("1")).unwrap();
    std::fs::write(artifacts.join("1/other-tenant.csv"), "secret rows").unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, format!("redis_url = \"{}\"\n", s.redis.url)).unwrap();
    let actions = dir.path().join("actions.toml");
    // An operator's action that runs client code (what the finding calls "command actions
    // that run interpreters"), with the probe's hints passed on as parameters.
    std::fs::write(
        &actions,
        "[actions.python]\nargv = [\"python3\", \"-c\", \"{code}\"]\nparams = \"none\"\n\
         env = { PROBE_CONFIG = \"{config}\" }\n"
            .replace("{config}", &config.display().to_string()),
    )
    .unwrap();
    // A loopback TCP service the job must not reach (the sandbox has no network).
    let loopback = super::Server::start("127.0.0.1:0", super::response("200 OK", &[], "")).await;
    let _exec = executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        &s.redis,
        &["--config", &actions.display().to_string()],
        [
            ("SLUICE_CONFIG", config.display().to_string()),
            ("SLUICE_ARTIFACT_DIR", artifacts.display().to_string()),
            ("SLUICE_SANDBOX", "required".to_string()),
        ],
    );
    let keys_before = s.api_keys();
    let code = PROBE
        .replace("PROBE_SOCKET", &s.redis.socket.display().to_string())
        .replace("PROBE_PORT", &loopback.addr.port().to_string())
        .replace(
            "PROBE_ARTIFACTS\", \"/nonexistent\"",
            &format!("PROBE_ARTIFACTS\", \"{}\"", artifacts.display()),
        );
    let body = json!({"executor": "command", "params": {"action": "python", "code": code}, "max_attempts": 1});
    let (status, made) = s.call(&s.admin, Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let id = broker::JobId(made["id"].as_u64().unwrap());
    let j = wait_for(
        &s.api.broker,
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let out: Value = j.result.clone().unwrap_or_default();
    assert_eq!(
        out["env_has_redis"], false,
        "the environment is cleared: {out}"
    );
    let names: Vec<&str> = out["env_names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("SLUICE_") && *n != "SLUICE_JOB_ID" && *n != "SLUICE_ATTEMPT"),
        "{names:?}"
    );
    assert!(
        !out["parent_environ"].as_str().unwrap().contains("redis://"),
        "{out}"
    );
    assert!(
        out["config"].as_str().unwrap().is_empty()
            || out["config"].as_str().unwrap().starts_with("refused"),
        "the config file is hidden: {out}"
    );
    assert!(
        out["redis"].as_str().unwrap().starts_with("refused"),
        "Redis' socket is hidden: {out}"
    );
    assert!(
        out["loopback"].as_str().unwrap().starts_with("refused"),
        "no network: {out}"
    );
    assert_eq!(loopback.hits(), 0);
    let listed = out["artifacts"].to_string();
    assert!(
        !listed.contains("other-tenant"),
        "other jobs' files are hidden: {out}"
    );
    assert_eq!(
        out["wrote_etc"], false,
        "the filesystem is read-only: {out}"
    );
    assert_eq!(s.api_keys(), keys_before, "no key was made");
}

// See: issue 15, finding 1: a GLM macro that runs a shell command.
#[tokio::test]
async fn a_gridlabd_model_that_runs_a_command_is_refused() {
    let s = Stack::start(|_| {}).await;
    let mark = std::env::temp_dir().join(format!("sluice-glm-{}", std::process::id()));
    let _exec = executor(
        env!("CARGO_BIN_EXE_sluice-gridlabd"),
        &s.redis,
        &[],
        [("SLUICE_LOG", "warn")],
    );
    let keys_before = s.api_keys();
    for model in [
        format!("#system touch {}\nclock {{ starttime '2020-01-01 00:00:00'; stoptime '2020-01-01 01:00:00'; }}\n", mark.display()),
        format!("clock {{ starttime '2020-01-01 00:00:00'; stoptime '2020-01-01 01:00:00'; }}\n#exec touch {}\n", mark.display()),
        "#setenv LD_PRELOAD=./x.so\n".to_string(),
        "extern \"C\" lib:f { int f() { return 0; } }\n".to_string(),
    ] {
        let body = json!({"executor": "gridlabd", "params": {"model_text": model}, "max_attempts": 1});
        let (status, made) = s.call(&s.admin, Method::POST, "/jobs", Some(body)).await;
        assert_eq!(status, 201, "{made}");
        let id = broker::JobId(made["id"].as_u64().unwrap());
        let j = wait_for(&s.api.broker, id, |j| j.status.is_terminal(), Duration::from_secs(60)).await;
        assert_eq!(j.status, Status::Failed, "{model}: {j:?}");
        assert!(j.error.as_deref().unwrap_or("").contains("runs a command or code"), "{:?}", j.error);
    }
    assert!(!mark.exists(), "the command never ran");
    assert_eq!(s.api_keys(), keys_before);
}
