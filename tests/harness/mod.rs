//! Test harness: a real redis-server per test, brokers over it, the `sluice` binary, and
//! artifact stores (a temp dir, or a bucket on a real S3-compatible server, harness/s3.rs).

pub mod browser;
pub mod redis;
pub mod s3;
pub mod sentinel;

use broker::{Broker, Config, Job, JobId};

pub use self::redis::TestRedis;
pub use self::s3::TestStore;

/// A broker over `redis` with short, test-friendly durations and the given tweaks.
pub fn broker(redis: &TestRedis, tweak: impl FnOnce(&mut Config)) -> Broker {
    let mut config = Config {
        redis_url: redis.url.clone(),
        ..Config::default()
    };
    tweak(&mut config);
    Broker::new(config).expect("broker over the test redis")
}

/// Reads a job, panicking with a clear message if it is gone.
pub async fn job(b: &Broker, id: JobId) -> Job {
    match b.get(id).await {
        Ok(j) => j,
        Err(e) => panic!("job {id}: {e}"),
    }
}

/// Polls job `id` every 100 ms until `done` holds; panics with the job after `within`.
pub async fn wait_for(
    b: &Broker,
    id: JobId,
    done: impl Fn(&Job) -> bool,
    within: std::time::Duration,
) -> Job {
    let deadline = std::time::Instant::now() + within;
    loop {
        let j = job(b, id).await;
        if done(&j) {
            return j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} still {:?}: {j:?}",
            j.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every `log` event's lines for job `id` (an executor's console), joined by newlines.
pub async fn logged(b: &Broker, id: JobId) -> String {
    let mut conn = b.blocking_connection().await.unwrap();
    let (events, _) = b
        .events(&mut conn, Some(id), "0", 100_000, None)
        .await
        .unwrap();
    events
        .into_iter()
        .filter(|e| e.get("event") == Some("log"))
        .filter_map(|e| e.get("lines").map(String::from))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Live processes whose command line matches `pattern` (`pgrep -f`, extended regex).
pub fn processes(pattern: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// `assert_eq!` that prints `HGETALL job_N` when it fails.
#[macro_export]
macro_rules! eq_job {
    ($redis:expr, $id:expr, $left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            panic!(
                "{} != {}: {:?} vs {:?}\nHGETALL job_{}:\n{}",
                stringify!($left),
                stringify!($right),
                l,
                r,
                $id,
                $redis.cli(&["HGETALL", &format!("job_{}", $id)])
            );
        }
    }};
}

/// Submits a job of `kind` owned by `owner` (the broker call, no HTTP); its id.
pub async fn submit_as(b: &Broker, kind: &str, owner: &str, params: serde_json::Value) -> JobId {
    let mut j = b.new_job(kind, params);
    j.owner = owner.into();
    b.submit(&j).await.expect("a submit to the test redis").0
}

/// An API server (`broker::http::run`) in this process on 127.0.0.1:<free port>; stopped
/// (gracefully) on drop.
pub struct TestApi {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The broker the server uses.
    pub broker: Broker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Its own artifact directory (unless the tweak names one): a server's artifact sweep
    /// deletes the files of jobs its Redis does not know, so servers never share one.
    _artifacts: tempfile::TempDir,
}

impl TestApi {
    /// Starts a server over `redis` with the config tweaks (auth is off unless turned on).
    /// The server connects as the API's ACL user; [`TestApi::broker`], for the test's own
    /// calls, as the admin CLI's.
    pub async fn start(redis: &TestRedis, tweak: impl FnOnce(&mut Config)) -> Self {
        let artifacts = tempfile::tempdir().expect("artifact dir");
        let mut config = Config {
            redis_url: redis.url.clone(),
            auth: false,
            artifact_dir: artifacts.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let b = Broker::new(config.clone()).expect("broker over the test redis");
        config.redis_url = redis.url_for("api");
        let server_broker = Broker::new(config).expect("API broker over the test redis");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = broker::http::run(listener, server_broker, async {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            base,
            broker: b,
            stop: Some(tx),
            _artifacts: artifacts,
        }
    }

    /// A new API key of `owner` with `role`, granted every executor kind.
    pub async fn key(&self, owner: &str, role: broker::apikeys::Role) -> String {
        let any = ["*".to_string()];
        self.broker
            .create_key_granted(owner, role, Some(&any))
            .await
            .expect("a key in the test redis")
    }

    /// The text `GET path` answers (e.g. `/metrics`).
    pub async fn text(&self, path: &str) -> String {
        let r = reqwest::get(self.url(path))
            .await
            .expect("the server answers");
        r.text().await.expect("a text body")
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request with an optional JSON body and API key: (status, JSON reply or null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, v) = send(req).await;
        (status.as_u16(), v)
    }
}

/// Sends one request (any method, headers and body): (status, JSON reply, or null when the
/// reply is not JSON). The one way tests talk HTTP; [`TestApi::call`] builds on it.
pub async fn send(req: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let r = req.send().await.expect("the server answers");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A command for `program` whose environment holds none of the test process' own `SLUICE_*`
/// settings (a developer's SLUICE_CONFIG, SLUICE_PREFIX, ... never reach a spawned program):
/// every test spawns its programs through this.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// True while `pid` is a live process (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// A child process a test started; killed (SIGKILL) on drop, so a failing test leaks none.
pub struct Proc(pub std::process::Child);

impl std::ops::Deref for Proc {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an executor binary (`program`: an `env!("CARGO_BIN_EXE_...")`) against `redis`
/// with `args` and the extra environment `env`, quiet (SLUICE_LOG=warn, output dropped) and
/// deaf to a SLUICE_CONFIG of the caller's; killed when the returned [`Proc`] drops.
pub fn executor<K, V>(
    program: &str,
    redis: &TestRedis,
    args: &[&str],
    env: impl IntoIterator<Item = (K, V)>,
) -> Proc
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    Proc(
        command(program)
            .args(args)
            .env("SLUICE_REDIS_URL", redis.url_for("exec"))
            .env("SLUICE_LOG", "warn")
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}")),
    )
}

/// A `sluice serve` process over `redis` (as the API's ACL user) on a free port of
/// 127.0.0.1, auth off and quiet (SLUICE_LOG=warn, output dropped) unless the caller's
/// `.env(..)` and `.stderr(..)` say otherwise; start it with [`ServeCommand::start`].
pub struct ServeCommand {
    /// The command; add settings to it.
    pub cmd: std::process::Command,
    /// The port it will listen on.
    pub port: u16,
}

/// POSTs `job` to `base`/jobs every `every` until the API answers 201 (an API coming back:
/// a restart, a Redis failover); the job's id. Panics after `within`.
pub async fn submit_until_taken(
    http: &reqwest::Client,
    base: &str,
    job: &serde_json::Value,
    within: std::time::Duration,
    every: std::time::Duration,
) -> u64 {
    let deadline = std::time::Instant::now() + within;
    loop {
        let r = http.post(format!("{base}/jobs")).json(job).send().await;
        if let Some(r) = r.ok().filter(|r| r.status() == 201) {
            let body = r.json::<serde_json::Value>().await.ok();
            if let Some(id) = body.and_then(|v| v["id"].as_u64()) {
                return id;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the API took no submit within {within:?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// [`ServeCommand`] for `redis`.
pub fn serve(redis: &TestRedis) -> ServeCommand {
    serve_at(&redis.url_for("api"))
}

/// [`ServeCommand`] for the Redis at `redis_url` (the API user's).
pub fn serve_at(redis_url: &str) -> ServeCommand {
    let port = free_port();
    let mut cmd = command(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("serve")
        .env("SLUICE_REDIS_URL", redis_url)
        .env("SLUICE_PORT", port.to_string())
        .env("SLUICE_AUTH", "off")
        .env("SLUICE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    ServeCommand { cmd, port }
}

impl ServeCommand {
    /// Spawns the server and waits (10 s at most) until its /healthz answers 200: the
    /// process (killed on drop) and its base URL `http://127.0.0.1:<port>`.
    pub async fn start(mut self) -> (Proc, String) {
        let child = Proc(self.cmd.spawn().expect("start sluice serve"));
        let base = format!("http://127.0.0.1:{}", self.port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let http = reqwest::Client::new();
        while !http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "sluice serve did not come up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        (child, base)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers started as processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
