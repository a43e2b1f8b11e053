//! The executor runtime and the command executor, with real Redis and real child processes.
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::{Broker, JobId, Status};
use executors::command::{CommandConfig, CommandExecutor};
use executors::Options;
use serde_json::{json, Value};

use crate::harness::{broker, job, Proc, TestRedis};

const ACTIONS: &str = r#"
[actions.cat]
argv = ["cat"]

[actions.hello]
argv = ["echo", "hello {name}"]
params = "none"

[actions.true]
argv = ["true"]
params = "none"

[actions.boom]
argv = ["sh", "-c", "echo boom >&2; exit 3"]
params = "none"

[actions.tree]
argv = ["sh", "-c", "sleep 600 & echo $! > {dir}/grandchild.pid; echo $$ > {dir}/child.pid; wait"]
params = "none"

[actions.sleep]
argv = ["sleep", "{seconds}"]
params = "none"

[actions.slow_then_done]
argv = ["sh", "-c", "sleep {seconds}; echo '{{\"done\": true}}'"]
params = "none"
"#;

fn actions() -> CommandConfig {
    CommandConfig::parse(ACTIONS).expect("test actions")
}

/// An in-process command executor; returns the handle to stop it (graceful) and its task.
fn start_executor(
    b: &Broker,
    tweak: impl FnOnce(&mut Options),
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let mut opts = Options::new(b.config(), "command");
    opts.heartbeat = Duration::from_millis(200);
    tweak(&mut opts);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let b = b.clone();
    let task = tokio::spawn(async move {
        executors::run(b, Arc::new(CommandExecutor::new(actions())), opts, rx)
            .await
            .unwrap();
    });
    (tx, task)
}

async fn submit(b: &Broker, params: Value, tweak: impl FnOnce(&mut broker::NewJob)) -> JobId {
    let mut nj = b.new_job("command", params);
    tweak(&mut nj);
    b.submit(&nj).await.unwrap().0
}

async fn wait_status(b: &Broker, id: JobId, want: Status, within: Duration) -> broker::Job {
    let deadline = Instant::now() + within;
    loop {
        let j = job(b, id).await;
        if j.status == want {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {} after {within:?}, not {want}: {:?}",
            j.status,
            j.error
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// True while the pid written in a pid file is a live process; an empty or unreadable one
/// (a file not yet written) is no process.
fn alive(pid: &str) -> bool {
    pid.trim().parse().is_ok_and(crate::harness::alive)
}

#[tokio::test]
async fn a_command_runs_and_its_result_is_stored() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (_stop, _task) = start_executor(&b, |_| {});
    let id = submit(&b, json!({"action": "cat", "x": [1, 2]}), |_| {}).await;
    let j = wait_status(&b, id, Status::Completed, Duration::from_secs(5)).await;
    assert_eq!(
        j.result,
        Some(json!({"action": "cat", "x": [1, 2]})),
        "stdout JSON is the result"
    );
    let id = submit(
        &b,
        json!({"action": "hello", "name": "a b; rm -rf /"}),
        |_| {},
    )
    .await;
    let j = wait_status(&b, id, Status::Completed, Duration::from_secs(5)).await;
    assert_eq!(
        j.result,
        Some(json!("hello a b; rm -rf /\n")),
        "text stays text; the param is one argument"
    );
    let id = submit(&b, json!({"action": "nope"}), |_| {}).await;
    let j = wait_status(&b, id, Status::Failed, Duration::from_secs(5)).await;
    assert!(j.error.unwrap_or_default().contains("unknown action"));
    assert_eq!(j.attempt, 1, "a bad action is not retried");
}

#[tokio::test]
async fn stop_kills_the_child_and_its_grandchildren_within_a_second() {
    let redis = TestRedis::start();
    // Unsandboxed: the test reads the children's pids from files they write in its own
    // temporary directory (a sandbox hides /tmp; tests/attacks/job_code.rs stops sandboxed
    // children).
    let b = broker(&redis, |c| c.sandbox = "off".into());
    let (_stop, _task) = start_executor(&b, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let id = submit(&b, json!({"action": "tree", "dir": d}), |_| {}).await;
    wait_status(&b, id, Status::Running, Duration::from_secs(5)).await;
    let (child, grandchild) = (
        dir.path().join("child.pid"),
        dir.path().join("grandchild.pid"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    // A pid file exists before its number is written: wait for both numbers.
    while read(&child).is_empty() || read(&grandchild).is_empty() {
        assert!(Instant::now() < deadline, "the child never wrote its pids");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pids = [read(&child), read(&grandchild)];
    assert!(pids.iter().all(|p| alive(p)));
    let t0 = Instant::now();
    assert_eq!(b.stop(id).await.unwrap(), Status::Running);
    // Within a heartbeat or two (500 ms each); the deadline is generous for a busy CI.
    wait_status(&b, id, Status::Canceled, Duration::from_secs(5)).await;
    println!("stop -> CANCELED in {:?}", t0.elapsed());
    for p in &pids {
        assert!(!alive(p), "process {p} survived the stop");
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_job_over_its_timeout_is_timed_out_and_its_child_killed() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (_stop, _task) = start_executor(&b, |_| {});
    let id = submit(&b, json!({"action": "sleep", "seconds": 600}), |j| {
        j.timeout = Duration::from_millis(500);
        j.max_attempts = 1;
    })
    .await;
    let j = wait_status(&b, id, Status::TimedOut, Duration::from_secs(5)).await;
    assert!(j.error.unwrap_or_default().contains("timed out after"));
    let sleeping = Command::new("pgrep")
        .args(["-f", "^sleep 600$"])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(
        sleeping.is_empty()
            || String::from_utf8_lossy(&sleeping)
                .lines()
                .all(|p| !alive(p)),
        "the child survived its timeout"
    );
}

#[tokio::test]
async fn a_failing_command_is_retried_with_backoff_then_failed() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let (_stop, _task) = start_executor(&b, |_| {});
    let id = submit(&b, json!({"action": "boom"}), |j| {
        j.max_attempts = 3;
        j.backoff = Duration::from_millis(200);
    })
    .await;
    let t0 = Instant::now();
    let j = wait_status(&b, id, Status::Failed, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert_eq!(j.attempt, 3);
    let err = j.error.unwrap_or_default();
    assert!(
        err.contains("exit status: 3") && err.contains("boom"),
        "{err}"
    );
    // Backoff 200 ms then 400 ms (promoted by the executor's own tick, once a second).
    assert!(
        took >= Duration::from_millis(600),
        "retried too soon: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_through_two_executors_complete_exactly_once() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.pool_size = 32);
    let jobs: Vec<_> = (0..1000)
        .map(|i| b.new_job("command", json!({"action": "true", "i": i})))
        .collect();
    let mut conn = b.conn().await.unwrap();
    let ids: Vec<broker::JobId> = b
        .scripts()
        .submit_many(&mut *conn, &jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.unwrap().id)
        .collect();
    drop(conn);
    let t0 = Instant::now();
    let a = start_executor(&b, |o| o.exec_size = 10);
    let c = start_executor(&b, |o| o.exec_size = 10);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: u64 = redis
            .cli(&["HGET", "stats", "completed:command"])
            .trim()
            .parse()
            .unwrap_or(0);
        if done == 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of 1000 completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t0.elapsed();
    println!(
        "1000 `true` jobs through 2 command executors: {:.0} jobs/s",
        1000.0 / took.as_secs_f64()
    );
    for id in &ids {
        let j = job(&b, *id).await;
        assert_eq!((j.status, j.attempt), (Status::Completed, 1), "job {id}");
    }
    assert_eq!(
        redis.cli(&["HGET", "stats", "claimed:command"]).trim(),
        "1000",
        "each claimed once"
    );
    let workers: std::collections::HashSet<String> = {
        let mut w = std::collections::HashSet::new();
        for id in &ids {
            w.insert(job(&b, *id).await.field("worker").unwrap_or("").to_string());
        }
        w
    };
    assert_eq!(workers.len(), 2, "both executors took part");
    for (tx, task) in [a, c] {
        let _ = tx.send(true);
        task.await.unwrap();
    }
}

fn spawn_binary(redis: &TestRedis, config: &Path, extra: &[&str]) -> Proc {
    let config = config.display().to_string();
    let args: Vec<&str> = ["--config", config.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    crate::harness::executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        redis,
        &args,
        [("SLUICE_LEASE", "1s")],
    )
}

#[tokio::test]
async fn kill_9_of_an_executor_mid_job_completes_on_another_after_the_lease() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actions.toml");
    std::fs::write(&config, ACTIONS).unwrap();
    let mut first = spawn_binary(&redis, &config, &[]);
    // See: issue 14. One attempt: the executor's death must not spend it.
    let id = submit(&b, json!({"action": "slow_then_done", "seconds": 1}), |j| {
        j.max_attempts = 1
    })
    .await;
    let j = wait_status(&b, id, Status::Running, Duration::from_secs(10)).await;
    let first_worker = j.field("worker").unwrap_or("").to_string();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mut second = spawn_binary(&redis, &config, &[]);
    let j = wait_status(&b, id, Status::Completed, Duration::from_secs(15)).await;
    second.kill().ok();
    second.wait().ok();
    assert_eq!(
        (j.attempt, j.lost),
        (1, 1),
        "the lost run spent no attempt; the second run finished it"
    );
    assert_ne!(j.field("worker").unwrap_or(""), first_worker);
    assert_eq!(j.result, Some(json!({"done": true})));
}

#[tokio::test]
async fn sigterm_lets_short_jobs_finish_and_hands_long_ones_back() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actions.toml");
    std::fs::write(&config, ACTIONS).unwrap();
    let mut exec = spawn_binary(&redis, &config, &["--grace", "2s"]);
    let short = submit(
        &b,
        json!({"action": "slow_then_done", "seconds": 1}),
        |_| {},
    )
    .await;
    let long = submit(&b, json!({"action": "sleep", "seconds": 600}), |_| {}).await;
    wait_status(&b, short, Status::Running, Duration::from_secs(10)).await;
    wait_status(&b, long, Status::Running, Duration::from_secs(10)).await;
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &exec.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = exec.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(
        job(&b, short).await.status,
        Status::Completed,
        "the short job finished in the grace period"
    );
    let l = job(&b, long).await;
    assert_eq!(
        (l.status, l.attempt),
        (Status::Pending, 0),
        "the long job was handed back, attempt not counted"
    );
    assert_eq!(
        redis.cli(&["LRANGE", "queue:command", "0", "-1"]).trim(),
        long.to_string()
    );
}

/// Reports progress every 10 ms until stopped.
struct Chatty;

impl executors::Executor for Chatty {
    fn run(
        &self,
        _job: executors::JobInput,
        ctx: executors::JobContext,
    ) -> executors::runtime::JobFuture {
        Box::pin(async move {
            loop {
                ctx.progress(&json!({"tick": 1})).await;
                if ctx.stop.is_cancelled() {
                    return Err(executors::JobError::Stopped);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }
}

#[tokio::test]
async fn a_stop_seen_by_a_progress_report_before_the_heartbeat_still_cancels() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut opts = Options::new(b.config(), "chatty");
    opts.heartbeat = Duration::from_secs(5); // the progress report sees the stop first
    let (tx, rx) = tokio::sync::watch::channel(false);
    let runner = b.clone();
    tokio::spawn(async move { executors::run(runner, Arc::new(Chatty), opts, rx).await });
    let (id, _) = b.submit(&b.new_job("chatty", json!({}))).await.unwrap();
    wait_status(&b, id, Status::Running, Duration::from_secs(5)).await;
    b.stop(id).await.unwrap();
    let j = wait_status(&b, id, Status::Canceled, Duration::from_secs(2)).await;
    assert_eq!(j.error, None, "canceled, not failed with \"stopped\"");
    let _ = tx.send(true);
}

/// A kind's rate limit through the runtime: an executor with free slots starts no more jobs
/// than the window allows and sleeps until the window opens (the claim says when), so 9
/// jobs at 3 per 300 ms start in three waves about 300 ms apart, not a second (the idle
/// wake-up) apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_starts_rate_limited_jobs_as_the_window_opens() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    b.set_rate_limit("command", Some("3/300ms".parse().unwrap()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..9 {
        ids.push(submit(&b, json!({"action": "true"}), |_| {}).await);
    }
    let (stop, task) = start_executor(&b, |o| o.exec_size = 10);
    let mut starts = Vec::new();
    for id in &ids {
        let j = wait_status(&b, *id, Status::Completed, Duration::from_secs(10)).await;
        let at = humantime::parse_rfc3339(j.field("started").unwrap()).unwrap();
        starts.push(at);
    }
    starts.sort();
    for wave in starts.chunks(3).collect::<Vec<_>>().windows(2) {
        let gap = wave[1][0].duration_since(wave[0][0]).unwrap();
        assert!(
            gap >= Duration::from_millis(300) && gap < Duration::from_millis(700),
            "waves {gap:?} apart"
        );
    }
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Liveness apart from leases: with the default 30 s lease, `kill -9` of an executor hands
/// its jobs back within seconds, because it stops refreshing its presence (2 s ttl) and a
/// reaper (the other executor's tick) ends its leases at once. The other executor runs
/// them; `GET /executors`' source, `Broker::executors`, shows the live one only, and a
/// clean shutdown leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_an_executor_hands_its_jobs_on_within_seconds_not_a_lease() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    assert_eq!(b.config().lease, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("actions.toml");
    std::fs::write(&config, ACTIONS).unwrap();
    let spawn = |slots: &str| {
        crate::harness::executor(
            env!("CARGO_BIN_EXE_sluice-command"),
            &redis,
            &["--config", &config.display().to_string()],
            [("SLUICE_EXEC_SIZE", slots)],
        )
    };
    let mut first = spawn("3");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            submit(
                &b,
                json!({"action": "slow_then_done", "seconds": 2}),
                |_| {},
            )
            .await,
        );
    }
    for id in &ids {
        wait_status(&b, *id, Status::Running, Duration::from_secs(10)).await;
    }
    let mut second = spawn("3");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = b.executors().await.unwrap();
        if live.len() == 2 && live.iter().any(|e| e.running == 3 && e.slots == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "executors never said so: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = Instant::now();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let mut recovered = Vec::new();
    for id in &ids {
        let j = wait_status(&b, *id, Status::Completed, Duration::from_secs(20)).await;
        assert_eq!((j.attempt, j.lost), (1, 1), "job {id}");
        let started = humantime::parse_rfc3339(j.field("started").unwrap()).unwrap();
        recovered.push(started);
    }
    // The second runs began within about 1.25 presence ttls of the kill, far from the lease.
    let since_kill = std::time::SystemTime::now() - killed_at.elapsed();
    for started in recovered {
        let after = started.duration_since(since_kill).unwrap_or_default();
        assert!(
            after < Duration::from_secs(5),
            "re-run {after:?} after the kill"
        );
        eprintln!("re-run {after:?} after the kill");
    }
    assert_eq!(
        b.executors().await.unwrap().len(),
        1,
        "the dead one left the list"
    );
    let term = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    assert!(term.unwrap().success());
    second.wait().unwrap();
    assert!(
        b.executors().await.unwrap().is_empty(),
        "a clean exit says goodbye"
    );
}
