//! The supervisord stack of supervisor/: every program comes up RUNNING, a job runs end to
//! end, and a `kill -9` of the API or of the executor is restarted by supervisord with no
//! job lost. The failover stack (supervisor/failover.conf) survives its primary Redis
//! going away. The test writes its own supervisord.conf (socket, logs in a temp dir) that
//! includes the repository's program files unchanged.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::sentinel::sentinel_cli;
use crate::harness::{free_port, Proc};

struct Stack {
    conf: PathBuf,
    api: String,
    run: PathBuf,
    redis_port: u16,
    _supervisord: Proc,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("supervisorctl")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("supervisorctl (pip install supervisor)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pid(&self, name: &str) -> String {
        self.ctl(&["pid", name]).trim().to_string()
    }

    fn wait_running(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.ctl(&["status"]);
            if names.iter().all(|n| {
                status
                    .lines()
                    .any(|l| l.starts_with(n) && l.contains("RUNNING"))
            }) {
                return;
            }
            assert!(Instant::now() < deadline, "not all RUNNING:\n{status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Stack {
    /// Stops the programs through supervisord before it is killed, so a failing test leaves
    /// no redis-server or sluice process behind.
    fn drop(&mut self) {
        self.ctl(&["shutdown"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self._supervisord.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn start_stack() -> Stack {
    start_stack_with("programs/*.conf", &[])
}

/// The stack of the program files `includes` (globs under supervisor/), with `env` beside
/// the test's settings.
fn start_stack_with(includes: &str, env: &[(&str, String)]) -> Stack {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("log")).unwrap();
    let conf = d.join("supervisord.conf");
    std::fs::write(
        &conf,
        format!(
            "[unix_http_server]\nfile={d}/s.sock\n\n[supervisord]\nlogfile={d}/log/supervisord.log\npidfile={d}/supervisord.pid\nchildlogdir={d}/log\nnodaemon=true\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{d}/s.sock\n\n[include]\nfiles = {files}\n",
            d = d.display(),
            files = includes
                .split(' ')
                .map(|g| format!("{}/supervisor/{g}", repo.display()))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .unwrap();
    let (redis_port, api_port) = (free_port(), free_port());
    let supervisord = Proc(
        crate::harness::command("supervisord")
            .arg("-c")
            .arg(&conf)
            .env("SLUICE_RUN", d)
            .env("SLUICE_BIN_DIR", &bin_dir)
            .env("SLUICE_REDIS_PORT", redis_port.to_string())
            .env("SLUICE_PORT", api_port.to_string())
            .env("SLUICE_AUTH", "off")
            .env("SLUICE_LEASE", "1s")
            .env("SLUICE_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("supervisord must be installed (pip install supervisor)"),
    );
    let stack = Stack {
        conf,
        api: format!("http://127.0.0.1:{api_port}"),
        run: d.to_path_buf(),
        redis_port,
        _supervisord: supervisord,
        _dir: dir,
    };
    stack.wait_running(&["redis", "serve", "command:command-0"]);
    stack
}

async fn wait_job(
    http: &reqwest::Client,
    api: &str,
    id: u64,
    want: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = http.get(format!("{api}/jobs/{id}")).send().await {
            if let Ok(j) = r.json::<Value>().await {
                if j["status"] == want {
                    return j;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_stack_comes_up_runs_jobs_and_survives_kill_9() {
    let stack = start_stack();
    // No pooled keep-alive connections: the API process is killed under them.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http
        .get(format!("{}/healthz", stack.api))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the API never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submit = |params: Value| {
        let http = http.clone();
        let api = stack.api.clone();
        async move {
            let r = http
                .post(format!("{api}/jobs"))
                .json(&json!({"executor": "command", "params": params}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
        }
    };
    let id = submit(json!({"action": "hello", "name": "supervisor"})).await;
    let j = wait_job(&http, &stack.api, id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(j["result"], "hello supervisor\n");

    // kill -9 the API: supervisord starts it again.
    let api_pid = stack.pid("serve");
    assert!(Command::new("kill")
        .args(["-9", &api_pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    stack.wait_running(&["serve"]);
    assert_ne!(stack.pid("serve"), api_pid, "a new API process");

    // kill -9 the executor in the middle of a job: restarted, and the job still completes.
    let id = submit(json!({"action": "sleep", "seconds": 2})).await;
    wait_job(&http, &stack.api, id, "RUNNING", Duration::from_secs(10)).await;
    let exec_pid = stack.pid("command:command-0");
    assert!(Command::new("kill")
        .args(["-9", &exec_pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    stack.wait_running(&["command:command-0"]);
    assert_ne!(
        stack.pid("command:command-0"),
        exec_pid,
        "a new executor process"
    );
    let j = wait_job(&http, &stack.api, id, "COMPLETED", Duration::from_secs(20)).await;
    assert_eq!(
        (&j["attempt"], &j["lost"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "the job ran again after its lease expired, spending no attempt; nothing was lost"
    );

    let stopped = stack.ctl(&["stop", "all"]);
    assert!(stopped.contains("stopped"), "{stopped}");
}

/// redis-cli as the admin user (from the stack's run/acl/admin.env) against `port`.
fn redis_cli(stack: &Stack, port: &str, args: &[&str]) -> String {
    let env = std::fs::read_to_string(stack.run.join("acl/admin.env")).unwrap_or_default();
    let pass = env
        .split("sluice-admin:")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .unwrap_or_default()
        .to_string();
    let out = Command::new("redis-cli")
        .args([
            "--no-auth-warning",
            "-p",
            port,
            "--user",
            "sluice-admin",
            "--pass",
            &pass,
        ])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Submits a `hello` job for `name` once the API takes submits (30 s at most); its id.
async fn submit_until_taken(http: &reqwest::Client, api: &str, name: &str) -> u64 {
    let job = json!({"executor": "command", "params": {"action": "hello", "name": name}});
    crate::harness::submit_until_taken(
        http,
        api,
        &job,
        Duration::from_secs(30),
        Duration::from_millis(100),
    )
    .await
}

/// Polls `done` every 100 ms; panics naming `what` after `within`.
async fn until(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The failover stack as README "Failover" runs it, with `min_replicas_ack = 1`: a job runs
/// end to end; the primary Redis is stopped; the sentinels promote the replica and the
/// same API and executor processes carry on through it; the old primary, started again,
/// joins the new one as its replica (bin/sluice-run asks the sentinels), after which
/// acknowledged submits resume and complete; nothing made before is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failover_stack_survives_losing_its_primary() {
    let (replica, sentinels) = (free_port(), [free_port(), free_port(), free_port()]);
    let ports: Vec<String> = sentinels.iter().map(u16::to_string).collect();
    let stack = tokio::task::block_in_place(|| {
        start_stack_with(
            "programs/*.conf failover/*.conf",
            &[
                ("SLUICE_FAILOVER", "on".into()),
                ("SLUICE_REPLICA_PORT", replica.to_string()),
                (
                    "SLUICE_SENTINELS",
                    ports
                        .iter()
                        .map(|p| format!("127.0.0.1:{p}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("SLUICE_SENTINEL_DOWN_AFTER", "1000".into()),
                ("SLUICE_MIN_REPLICAS_ACK", "1".into()),
            ],
        )
    });
    tokio::task::block_in_place(|| {
        stack.wait_running(&[
            "redis-replica",
            "sentinel:sentinel-0",
            "sentinel:sentinel-1",
            "sentinel:sentinel-2",
        ])
    });
    // What the first sentinel says (harness::sentinel's redis-cli, no auth).
    let ask = |args: &[&str]| sentinel_cli(sentinels[0], args);
    let primary_port = || {
        ask(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "sluice"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let http = reqwest::Client::new();
    let first = submit_until_taken(&http, &stack.api, "primary").await;
    wait_job(
        &http,
        &stack.api,
        first,
        "COMPLETED",
        Duration::from_secs(10),
    )
    .await;
    let redis_port = stack.redis_port.to_string();
    until(
        Duration::from_secs(20),
        "the sentinels know the replica",
        async || ask(&["SENTINEL", "REPLICAS", "sluice"]).contains(&replica.to_string()),
    )
    .await;

    // The primary goes away: the sentinels promote the replica.
    let t = Instant::now();
    assert!(stack.ctl(&["stop", "redis"]).contains("stopped"));
    until(
        Duration::from_secs(30),
        "the replica promoted",
        async || primary_port() == replica.to_string(),
    )
    .await;
    let promoted = t.elapsed();
    // The old primary comes back as the new one's replica; submits are acknowledged again.
    assert!(stack.ctl(&["start", "redis"]).contains("started"));
    let second = submit_until_taken(&http, &stack.api, "replica").await;
    let resumed = t.elapsed();
    let j = wait_job(
        &http,
        &stack.api,
        second,
        "COMPLETED",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(j["result"], "hello replica\n");
    let j = wait_job(
        &http,
        &stack.api,
        first,
        "COMPLETED",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        j["result"], "hello primary\n",
        "the job made before is on the new primary"
    );
    let role = redis_cli(&stack, &redis_port, &["INFO", "replication"]);
    assert!(
        role.contains("role:slave") && role.contains(&format!("master_port:{replica}")),
        "the old primary replicates the new one: {role}"
    );
    println!("[failover stack] replica promoted {promoted:?} after the primary stopped; acknowledged submits again {resumed:?} after it");
}
