//! The system under test, as real processes: a redis-server (AOF as the scenario asks),
//! `sluice-command` executors that log every call to the shared history file, and the
//! test's own client (a [`Broker`]) whose submits and stops are recorded in the same file.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use broker::{Broker, JobId, NewJob, Status};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::audit::Audit;
use super::checker::{check, Durability, Report};
use super::history::{now_us, Op, Recorder, Tail, Tailed};
use crate::harness::sentinel::TestSentinels;
use crate::harness::{Proc, TestRedis};

/// The actions the chaos executors run.
const ACTIONS: &str = r#"
[actions.work]
argv = ["sleep", "{secs}"]
params = "none"

[actions.poison]
argv = ["sh", "-c", "kill -9 $PPID; sleep 5"]
params = "none"
"#;

/// The lease of every chaos run: short, so that recovery is quick to observe.
pub const LEASE: Duration = Duration::from_secs(2);

/// How big a run is: `SLUICE_CHAOS_JOBS` jobs over `SLUICE_CHAOS_SECS` seconds of faults
/// (long mode), else the short defaults the scenario passes.
pub fn size(jobs: usize, secs: u64) -> (usize, Duration) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let jobs = env("SLUICE_CHAOS_JOBS").map_or(jobs, |j| j as usize);
    let secs = env("SLUICE_CHAOS_SECS").unwrap_or(secs);
    (jobs, Duration::from_secs(secs))
}

/// A small deterministic random source (xorshift), seeded from `SLUICE_CHAOS_SEED` or the
/// clock; the seed is printed so a run can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator; prints its seed.
    pub fn new(name: &str) -> Self {
        let seed = std::env::var("SLUICE_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_us() | 1);
        println!("[{name}] seed {seed} (SLUICE_CHAOS_SEED={seed} replays the choices)");
        Self(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One executor process.
pub struct Exec {
    /// The process.
    pub proc: Proc,
    /// Its pid (its worker name is `command-<pid>-...`).
    pub pid: u32,
}

impl Exec {
    /// Sends `sig` to the executor.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), sig);
    }

    /// True when `worker` (a name from a claim) is this process.
    pub fn is(&self, worker: &str) -> bool {
        worker.starts_with(&format!("command-{}-", self.pid))
    }
}

/// Where a run's Redis is: one server, or a primary with replicas behind sentinels.
pub trait Backend {
    /// The `redis_url` of ACL user class `class`.
    fn url_for(&self, class: &str) -> String;
    /// A directory for the run's files.
    fn dir(&self) -> &std::path::Path;
}

impl Backend for TestRedis {
    fn url_for(&self, class: &str) -> String {
        TestRedis::url_for(self, class)
    }
    fn dir(&self) -> &std::path::Path {
        TestRedis::dir(self)
    }
}

impl Backend for TestSentinels {
    fn url_for(&self, class: &str) -> String {
        TestSentinels::url_for(self, class)
    }
    fn dir(&self) -> &std::path::Path {
        TestSentinels::dir(self)
    }
}

/// Redis, executors, the client and the records of one run.
pub struct Cluster<R: Backend = TestRedis> {
    /// The redis-server(s).
    pub redis: R,
    /// The test's client (cheap to clone into tasks).
    pub client: Client,
    actions: PathBuf,
    tail: Option<Tail>,
}

/// The test's recorded client: submits and stops, each logged with Redis' answer.
#[derive(Clone)]
pub struct Client {
    /// The broker it calls.
    pub broker: Broker,
    /// The shared history file.
    pub rec: Recorder,
    serial: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Cluster {
    /// Starts redis-server with `redis_args` and starts tailing its event stream.
    pub async fn start(redis_args: &[&str]) -> Self {
        Cluster::on(TestRedis::start_with(redis_args), |_| {})
    }
}

impl<R: Backend> Cluster<R> {
    /// A run over `redis`, whose client's settings are `tweak`ed; starts tailing the event
    /// stream.
    pub fn on(redis: R, tweak: impl FnOnce(&mut broker::Config)) -> Self {
        let mut config = broker::Config {
            redis_url: redis.url_for("admin"),
            lease: LEASE,
            result_ttl: Duration::from_secs(3600),
            ..broker::Config::default()
        };
        tweak(&mut config);
        let broker = Broker::new(config).expect("broker over the test redis");
        let rec = Recorder::open(&redis.dir().join("history.jsonl"));
        let actions = redis.dir().join("actions.toml");
        std::fs::write(&actions, ACTIONS).expect("actions file");
        let tail = Some(Tail::start(&broker));
        Self {
            redis,
            client: Client {
                broker,
                rec,
                serial: Default::default(),
            },
            actions,
            tail,
        }
    }

    /// Starts one `sluice-command` with `exec_size` slots and the given extra flags.
    pub fn executor(&self, exec_size: usize, extra: &[&str]) -> Exec {
        self.executor_with(exec_size, extra, &[])
    }

    /// [`Cluster::executor`] with extra `SLUICE_*` settings in its environment.
    pub fn executor_with(&self, exec_size: usize, extra: &[&str], env: &[(&str, &str)]) -> Exec {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.redis.dir().join("executors.log"))
            .expect("executor log");
        let child = crate::harness::command(env!("CARGO_BIN_EXE_sluice-command"))
            .arg("--config")
            .arg(&self.actions)
            .arg("--exec-size")
            .arg(exec_size.to_string())
            .arg("--pick-size")
            .arg(exec_size.to_string())
            .args(extra)
            .env("SLUICE_REDIS_URL", self.redis.url_for("exec"))
            .env(
                "SLUICE_LEASE",
                humantime::format_duration(LEASE).to_string(),
            )
            .env("SLUICE_HISTORY", self.client.rec.path())
            .env("SLUICE_LOG", "warn")
            // The chaos suite checks recovery, not isolation: its poison job kills its
            // executor with `kill -9 $PPID`, which a sandbox rightly prevents.
            .env("SLUICE_SANDBOX", "off")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sluice-command");
        let pid = child.id();
        Exec {
            proc: Proc(child),
            pid,
        }
    }

    /// Stops tailing, audits Redis and checks the whole history.
    pub async fn check(&mut self, durability: Durability) -> (Report, Tailed) {
        let b = &self.client.broker;
        let tailed = match self.tail.take() {
            Some(t) => t.finish(b).await,
            None => Tailed::default(),
        };
        let audit = Audit::read(b).await;
        let ops = self.client.rec.read();
        let report = check(&ops, &tailed, &audit, durability);
        (report, tailed)
    }

    /// Like [`Cluster::check`], but takes the events from Redis' own stream at the end
    /// (XRANGE) instead of the live tail: after Redis lost its last second (AOF
    /// `everysec`), what the tail saw before the crash is not what Redis kept.
    pub async fn check_from_redis(&mut self, durability: Durability) -> (Report, Tailed) {
        let b = &self.client.broker;
        if let Some(t) = self.tail.take() {
            t.finish(b).await;
        }
        let tailed = super::history::xrange_all(b).await;
        let audit = Audit::read(b).await;
        let ops = self.client.rec.read();
        (check(&ops, &tailed, &audit, durability), tailed)
    }

    /// Prints the tail of the executors' log (for a failing run).
    pub fn executor_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.redis.dir().join("executors.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Client {
    /// A job for the `work` action sleeping `secs`, retried straight away (no backoff) up
    /// to `max_attempts` times.
    pub fn work(&self, secs: f64, max_attempts: u32) -> NewJob {
        let mut j = self.broker.new_job(
            "command",
            json!({"action": "work", "secs": format!("{secs:.3}")}),
        );
        j.max_attempts = max_attempts;
        j.backoff = Duration::ZERO;
        j.result_ttl = Duration::from_secs(3600);
        j.timeout = Duration::from_secs(120);
        j
    }

    /// Submits `job` (tagged with a serial number) and records the answer.
    pub async fn submit(&self, mut job: NewJob) -> Option<JobId> {
        let tag = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if let Value::Object(m) = &mut job.params {
            m.insert("tag".into(), json!(tag));
        }
        let t0 = now_us();
        let r = self.broker.submit(&job).await;
        let mut op = Op {
            t0,
            t1: now_us(),
            src: "client".into(),
            op: "submit".into(),
            ok: r.is_ok(),
            tag: Some(tag),
            ..Op::default()
        };
        match &r {
            Ok((id, status)) => {
                op.job = id.0;
                op.status = Some(status.to_string());
            }
            Err(e) => op.err = Some(executors::history::error_kind(e)),
        }
        self.rec.push(&op);
        r.ok().map(|(id, _)| id)
    }

    /// Stops job `id` and records the answer.
    pub async fn stop(&self, id: JobId) -> Option<Status> {
        let t0 = now_us();
        let r = self.broker.stop(id).await;
        self.rec.push(&Op {
            t0,
            t1: now_us(),
            src: "client".into(),
            op: "stop".into(),
            job: id.0,
            ok: r.is_ok(),
            err: r.as_ref().err().map(executors::history::error_kind),
            status: r.as_ref().ok().map(ToString::to_string),
            ..Op::default()
        });
        r.ok()
    }

    /// Polls until every job of `ids` has ended or is gone (or `within` passes); returns
    /// those that have not.
    pub async fn wait_ended(&self, ids: &[JobId], within: Duration) -> Vec<JobId> {
        let deadline = Instant::now() + within;
        let mut left: Vec<JobId> = ids.to_vec();
        loop {
            let mut still = Vec::new();
            for id in left {
                match self.broker.get(id).await {
                    Ok(j) if j.status.is_terminal() => {}
                    // Gone (lost in a crash): the checker counts it; waiting will not help.
                    Err(broker::Error::NotFound(_)) => {}
                    _ => still.push(id),
                }
            }
            left = still;
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The children of process `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit(')').next()?.split_whitespace().collect::<Vec<_>>();
                    // state, ppid
                    (rest.first()? != &"Z").then(|| rest.get(1)?.parse::<u32>().ok())?
                })
                == Some(pid)
        })
        .collect()
}

/// Median and maximum of some durations (zero when empty).
pub fn median_max(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let med = d.get(d.len() / 2).copied().unwrap_or_default();
    (med, d.last().copied().unwrap_or_default())
}
