//! One `Config` for every Sluice process: the defaults table, then the file named by
//! `SLUICE_CONFIG` (TOML), then `SLUICE_*` environment variables, then command-line flags,
//! each overriding the one before. Values are parsed once, here, into typed fields; a bad
//! value is one clear error at start-up. Nothing below `bin/` reads the environment: the
//! binaries hand their environment to [`Config::load`].

use std::path::Path;
use std::time::Duration;

use crate::artifacts::{S3Settings, StoreKind};
use crate::error::Error;

/// Settings shared by the API server, the CLI and the executors.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where Redis is (`SLUICE_REDIS_URL`): `redis://`, `unix://`, or a set of sentinels
    /// and the master name they watch, `redis+sentinel://host:port,.../<master>` (see
    /// [`crate::sentinel`]).
    pub redis_url: String,
    /// Prefix of every key (`SLUICE_PREFIX`); lets deployments or tests share one Redis.
    pub prefix: String,
    /// HTTP port of `sluice serve` (`SLUICE_PORT`).
    pub port: u16,
    /// Address `sluice serve` listens on (`SLUICE_BIND`); loopback unless told otherwise.
    pub bind: String,
    /// Bearer-key auth on the HTTP API (`SLUICE_AUTH=off` for local use only).
    pub auth: bool,
    /// How long a finished job (and its result) is kept when nothing more specific says (see
    /// `retention`).
    pub result_ttl: Duration,
    /// The retention policy: how long finished jobs are kept per scope, `scope=duration`
    /// pairs (`SLUICE_RETENTION="kind:gridlabd=7d,stand=90d"`) over the defaults of
    /// [`DEFAULT_RETENTION`]. Scopes: a face (`stableconfigs`, `stand`, `jetstream`, `wumai`),
    /// `pipelines` (their runs), `workflows`, or `kind:<executor>`. A job's own `result_ttl`
    /// wins, then its pipeline's, then its kind's, then its face's, then `result_ttl`.
    pub retention: Vec<(String, Duration)>,
    /// Lease of a claimed job; an executor silent this long is presumed dead.
    pub lease: Duration,
    /// An executor process that has not said it is alive for this long has vanished
    /// (`SLUICE_PRESENCE_TTL`, default 2 s): reapers hand its jobs back at once, without
    /// waiting for their leases. Executors refresh their presence four times per ttl.
    pub presence_ttl: Duration,
    /// Attempts per job unless the submit says otherwise. Only the job's own failures and
    /// timeouts spend attempts; a run whose executor died (a lost lease) does not.
    pub max_attempts: u32,
    /// Times a job may lose its executor (its lease expires: the process died, hung or was cut
    /// off) and run again before it fails for good (`SLUICE_MAX_LOST_LEASES`): the bound
    /// that stops a job which kills its executor every time (a poison job) from looping.
    pub max_lost_leases: u32,
    /// Base retry delay: attempt n waits backoff * 2^(n-1).
    pub backoff: Duration,
    /// Per-attempt time limit unless the submit says otherwise (wumai's worker: 600 s).
    pub timeout: Duration,
    /// Jobs an executor claims per round (wumai: 10).
    pub pick_size: usize,
    /// Jobs an executor runs at once (`SLUICE_EXEC_SIZE`); None: the kind's own default
    /// (10 for command, as wumai; 2 for spark and gridlabd; the cores for the solver).
    pub exec_size: Option<usize>,
    /// Most ids kept on Stand's `stop` list when nobody reads it.
    pub stop_list_cap: usize,
    /// Redis connections per process pool.
    pub pool_size: u32,
    /// How long to wait for Redis before answering "unavailable".
    pub redis_timeout: Duration,
    /// Replicas that must hold a submit or a job's closing write before it is acknowledged
    /// (`SLUICE_MIN_REPLICAS_ACK`, default 0: acknowledged once the primary has it). With 1
    /// or more, each such write is followed by Redis `WAIT`; when fewer replicas confirm it
    /// within `replica_ack_timeout` the caller gets "unavailable" (503) and may retry.
    pub min_replicas_ack: u32,
    /// How long `WAIT` may take (`SLUICE_REPLICA_ACK_TIMEOUT`, default 1s).
    pub replica_ack_timeout: Duration,
    /// How long `sluice serve` waits for a request's whole header (`SLUICE_HEADER_TIMEOUT`,
    /// default 10s): a socket that sends half a header, or idles between requests, closes.
    pub header_timeout: Duration,
    /// How long a request body may send nothing before the request fails
    /// (`SLUICE_BODY_TIMEOUT`, default 20s).
    pub body_timeout: Duration,
    /// Largest accepted HTTP body in bytes (MAX_CONTENT_LENGTH).
    pub max_content_length: u64,
    /// Start even if Redis' maxmemory-policy could evict job keys (`SLUICE_ALLOW_EVICTION`).
    pub allow_eviction: bool,
    /// Log lines as `human` text or `json` objects (`SLUICE_LOG_FORMAT`).
    pub log_format: String,
    /// Write logs to daily-rotated files in this directory instead of stderr (`SLUICE_LOG_DIR`).
    pub log_dir: Option<std::path::PathBuf>,
    /// Slack-compatible webhook URLs told when a job fails for good (`SLUICE_WEBHOOKS`,
    /// comma-separated; http:// or https://).
    pub webhooks: Vec<String>,
    /// A PEM file of extra CA certificates trusted for https webhooks, beside the system's
    /// roots (`SLUICE_WEBHOOK_CA`): for receivers behind a private CA.
    pub webhook_ca: Option<std::path::PathBuf>,
    /// Hosts (names or addresses) that job inputs, callbacks and webhooks may reach although
    /// they are not public (`SLUICE_OUTBOUND_ALLOW`, comma-separated): trusted internal
    /// services. Everything else private is refused ([`crate::outbound`]).
    pub outbound_allow: Vec<String>,
    /// Executor kinds every key may submit to without a grant (`SLUICE_OPEN_EXECUTORS`,
    /// comma-separated; default `solver`, which runs no code the client chose). Kinds that
    /// run a client's code (command, spark, gridlabd) need `sluice keys create --executors`.
    pub open_executors: Vec<String>,
    /// Which store keeps job artifacts (`SLUICE_ARTIFACT_STORE`): `local`, the directory
    /// `artifact_dir`, or `s3`, the bucket of [`Config::s3`].
    pub artifact_store: StoreKind,
    /// Where job artifacts (logs, output files) are kept, one directory per job
    /// (`SLUICE_ARTIFACT_DIR`); executors and `sluice serve` must see the same directory.
    pub artifact_dir: std::path::PathBuf,
    /// Largest artifact upload in bytes (`SLUICE_MAX_ARTIFACT_SIZE`; default 1 GiB).
    pub max_artifact_size: u64,
    /// The bucket of `artifact_store = s3`: not a setting of its own but the `S3_*`
    /// environment (as the Workflow Service read it), see [`S3Settings::from_env`].
    pub s3: S3Settings,
    /// Time limit of a StableConfigs `/task` (`SLUICE_SOLVER_TIMEOUT`; StableConfigs: 90 s).
    pub solver_timeout: Duration,
    /// Whether executors run job programs in a sandbox (`SLUICE_SANDBOX`): `auto` (when
    /// bubblewrap works on the host; start-up says so when it does not), `required` (refuse to
    /// start without it) or `off`. See `executors::child`.
    pub sandbox: String,
    /// More paths the sandbox hides from job programs (`SLUICE_SANDBOX_HIDE`,
    /// comma-separated), beside the artifact directory and the config file: wherever secrets
    /// or other tenants' data live on an executor host.
    pub sandbox_hide: Vec<std::path::PathBuf>,
    /// Names of the executor's environment variables its job programs may inherit
    /// (`SLUICE_CHILD_ENV`, comma-separated), beside PATH, HOME, LANG and the like; the
    /// rest of the environment (credentials included) is cleared.
    pub child_env: Vec<String>,
    /// The file named by `SLUICE_CONFIG`, when there is one (not a setting: recorded by
    /// [`Config::load`] so that the sandbox can hide it).
    pub config_file: Option<std::path::PathBuf>,
    /// Status words of the StableConfigs face (`SLUICE_STABLECONFIGS_WORDS`): `readme`
    /// (`COMPLETE`, `TimedOut`, as its README documents) or `code` (`Completed`, `Timeout`,
    /// as its server sent).
    pub stableconfigs_words: String,
    /// How long wumai's `POST /` waits for an action's result before it answers the job
    /// reference instead (`SLUICE_WUMAI_WAIT`; 0 = never wait).
    pub wumai_wait: Duration,
    /// Per-action bounds over `wumai_wait` (`SLUICE_WUMAI_WAITS="RunSolver=60s,Slow=0s"`).
    pub wumai_waits: Vec<(String, Duration)>,
    /// Jetstream pipelines mapped to the actions that run them
    /// (`SLUICE_JETSTREAM_PIPELINES="tempe@latest=tempe_v3,rnaseq=rnaseq_any"`): `name@version`
    /// first, then `name` for any version; unmapped pipelines go to the action of their name.
    pub jetstream_pipelines: Vec<(String, String)>,
    /// Browser origins allowed to call the StableConfigs face cross-origin
    /// (`SLUICE_CORS_ORIGINS`, comma-separated; `*` for any; empty: no CORS).
    pub cors_origins: Vec<String>,
    /// Opens the StableConfigs face to callers without a key (`SLUICE_STABLECONFIGS_ANONYMOUS`,
    /// on/off), as the original was; bounded by the two settings below.
    pub stableconfigs_anonymous: bool,
    /// Most anonymous StableConfigs requests per caller address per minute.
    pub stableconfigs_rate: u32,
    /// Most anonymous StableConfigs tasks waiting or running at once.
    pub stableconfigs_max_queued: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            prefix: String::new(),
            port: 3323,
            bind: "127.0.0.1".into(),
            auth: true,
            result_ttl: Duration::from_secs(300),
            lease: Duration::from_secs(30),
            presence_ttl: Duration::from_secs(2),
            max_attempts: 3,
            max_lost_leases: 5,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(600),
            pick_size: 10,
            exec_size: None,
            stop_list_cap: 1000,
            pool_size: 16,
            redis_timeout: Duration::from_secs(1),
            min_replicas_ack: 0,
            replica_ack_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            max_content_length: 16 * 1024 * 1024,
            allow_eviction: false,
            log_format: "human".into(),
            log_dir: None,
            webhooks: Vec::new(),
            webhook_ca: None,
            outbound_allow: Vec::new(),
            open_executors: vec!["solver".into()],
            artifact_store: StoreKind::Local,
            artifact_dir: "data/artifacts".into(),
            max_artifact_size: 1 << 30,
            s3: S3Settings::default(),
            solver_timeout: Duration::from_secs(90),
            stableconfigs_words: "readme".into(),
            sandbox: "auto".into(),
            sandbox_hide: Vec::new(),
            child_env: Vec::new(),
            config_file: None,
            retention: DEFAULT_RETENTION
                .iter()
                .map(|(s, secs)| (s.to_string(), Duration::from_secs(*secs)))
                .collect(),
            wumai_wait: Duration::from_secs(10),
            wumai_waits: Vec::new(),
            jetstream_pipelines: Vec::new(),
            cors_origins: Vec::new(),
            stableconfigs_anonymous: false,
            stableconfigs_rate: 60,
            stableconfigs_max_queued: 100,
        }
    }
}

/// Retention by scope unless set otherwise (and the scopes `retention` may name, besides
/// `kind:<executor>`): StableConfigs keeps its original 300 s; the
/// systems that kept their runs in a database (Stand, Jetstream, wumai, the Workflow
/// Service's pipeline runs and workflows) keep them 30 days.
pub const DEFAULT_RETENTION: [(&str, u64); 6] = [
    ("stableconfigs", 300),
    ("stand", 30 * 86_400),
    ("jetstream", 30 * 86_400),
    ("wumai", 30 * 86_400),
    ("pipelines", 30 * 86_400),
    ("workflows", 30 * 86_400),
];

/// Longest a wumai caller can be kept waiting for an action's result.
pub const MAX_WUMAI_WAIT: Duration = Duration::from_secs(300);

/// The setting names, as file keys; the environment spells them `SLUICE_<NAME>` upper-case.
pub const NAMES: [&str; 45] = [
    "retention",
    "jetstream_pipelines",
    "wumai_wait",
    "wumai_waits",
    "cors_origins",
    "stableconfigs_anonymous",
    "stableconfigs_rate",
    "stableconfigs_max_queued",
    "artifact_store",
    "artifact_dir",
    "max_artifact_size",
    "solver_timeout",
    "stableconfigs_words",
    "webhooks",
    "webhook_ca",
    "outbound_allow",
    "open_executors",
    "sandbox",
    "sandbox_hide",
    "child_env",
    "allow_eviction",
    "log_format",
    "log_dir",
    "redis_url",
    "prefix",
    "port",
    "bind",
    "auth",
    "result_ttl",
    "lease",
    "presence_ttl",
    "max_attempts",
    "max_lost_leases",
    "backoff",
    "timeout",
    "pick_size",
    "exec_size",
    "stop_list_cap",
    "pool_size",
    "redis_timeout",
    "min_replicas_ack",
    "replica_ack_timeout",
    "header_timeout",
    "body_timeout",
    "max_content_length",
];

/// `url` (a `redis_url`) with its passwords hidden, for logs: `user:***@` and `pass=***`.
pub fn redacted_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    match base.split_once("://").and_then(|(scheme, rest)| {
        let (auth, hosts) = rest.rsplit_once('@')?;
        let user = auth.split_once(':').map_or(auth, |(u, _)| u);
        Some(format!("{scheme}://{user}:***@{hosts}"))
    }) {
        Some(hidden) => out.push_str(&hidden),
        None => out.push_str(base),
    }
    if !query.is_empty() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.contains("pass") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

impl Config {
    /// How long a finished job of executor `kind`, submitted through `face` (a scope of
    /// `retention`; None for the native API), is kept: its kind's retention, else its
    /// face's, else `result_ttl`.
    pub fn retention(&self, face: Option<&str>, kind: &str) -> Duration {
        let find = |scope: &str| {
            self.retention
                .iter()
                .find(|(s, _)| s == scope)
                .map(|(_, d)| *d)
        };
        find(&format!("kind:{kind}"))
            .or_else(|| face.and_then(find))
            .unwrap_or(self.result_ttl)
    }

    /// Defaults, then the file named by `SLUICE_CONFIG` in `env` (if any), then the other
    /// `SLUICE_*` variables of `env`; the S3 artifact bucket from the `S3_*` (`AWS_*`)
    /// variables of `env`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file, variable or value that is wrong.
    pub fn load<I, K, V>(env: I) -> Result<Config, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let env: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
            .collect();
        let mut config = Config {
            s3: S3Settings::from_env(&env),
            ..Config::default()
        };
        if let Some((_, path)) = env.iter().find(|(k, _)| k == "SLUICE_CONFIG") {
            config.apply_file(Path::new(path))?;
            config.config_file = Some(path.into());
        }
        for (k, v) in &env {
            let Some(name) = k.strip_prefix("SLUICE_").map(str::to_ascii_lowercase) else {
                continue;
            };
            if NAMES.contains(&name.as_str()) {
                config
                    .set(&name, v)
                    .map_err(|e| Error::Config(format!("{k}: {e}")))?;
            }
        }
        Ok(config)
    }

    /// Applies a TOML file of `name = value` lines; unknown names are refused (typos).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is wrong in it.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), Error> {
        let where_ = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {where_}: {e}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| Error::Config(format!("{where_}: {e}")))?;
        for (name, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                // A list (webhooks, outbound_allow) as the comma-separated form.
                toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(Error::Config(format!(
                        "{where_}: {name} must be a string, integer or boolean, not {}",
                        other.type_str()
                    )))
                }
            };
            self.set(&name, &text)
                .map_err(|e| Error::Config(format!("{where_}: {e}")))?;
        }
        Ok(())
    }

    /// Sets one setting from text (a file value, an env value or a flag).
    ///
    /// # Errors
    /// A message naming the setting and the expected form.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let dur = || {
            humantime::parse_duration(v)
                .map_err(|e| format!("{name}: {v:?} is not a duration like 90s or 5m ({e})"))
        };
        fn list(v: &str) -> impl Iterator<Item = &str> {
            v.split(',').map(str::trim).filter(|x| !x.is_empty())
        }
        /// `a=b,c=d` as (a, b) pairs, both sides non-empty; `shape` names them in the error.
        fn pairs<'v>(
            name: &str,
            v: &'v str,
            shape: &str,
        ) -> Result<Vec<(&'v str, &'v str)>, String> {
            list(v)
                .map(|pair| match pair.split_once('=') {
                    Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                        Ok((a.trim(), b.trim()))
                    }
                    _ => Err(format!("{name}: {pair:?} is not {shape}")),
                })
                .collect()
        }
        let duration = |what: &str, d: &str| {
            humantime::parse_duration(d).map_err(|e| format!("{name}: {what}: {d:?}: {e}"))
        };
        fn num<T>(name: &str, v: &str, min: T) -> Result<T, String>
        where
            T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
        {
            match v.parse::<T>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("{name}: {v:?} is not a whole number >= {min}")),
            }
        }
        match name {
            "redis_url" => {
                if let Some(sentinel) = crate::sentinel::parse(v) {
                    sentinel?;
                } else if redis::parse_redis_url(v).is_none() {
                    return Err(format!(
                        "redis_url: {v:?} is not a redis://, unix:// or redis+sentinel:// URL"
                    ));
                }
                self.redis_url = v.to_string();
            }
            "prefix" => self.prefix = v.to_string(),
            "port" => self.port = num(name, v, 0u16)?,
            "bind" => {
                v.parse::<std::net::IpAddr>().map_err(|_| {
                    format!("bind: {v:?} is not an IP address like 127.0.0.1 or 0.0.0.0")
                })?;
                self.bind = v.to_string();
            }
            "auth" => self.auth = on_off(name, v)?,
            "allow_eviction" => self.allow_eviction = on_off(name, v)?,
            "log_format" => {
                if v != "human" && v != "json" {
                    return Err(format!("log_format: {v:?} must be human or json"));
                }
                self.log_format = v.to_string();
            }
            "log_dir" => self.log_dir = (!v.is_empty()).then(|| v.into()),
            "solver_timeout" => self.solver_timeout = dur()?,
            "max_artifact_size" => self.max_artifact_size = bytes(name, v)?,
            "stableconfigs_words" => {
                if v != "readme" && v != "code" {
                    return Err(format!("stableconfigs_words: {v:?} must be readme or code"));
                }
                self.stableconfigs_words = v.to_string();
            }
            "wumai_wait" => self.wumai_wait = dur()?.min(MAX_WUMAI_WAIT),
            "wumai_waits" => {
                self.wumai_waits = pairs(name, v, "Action=duration")?
                    .into_iter()
                    .map(|(action, d)| {
                        Ok((action.to_string(), duration(action, d)?.min(MAX_WUMAI_WAIT)))
                    })
                    .collect::<Result<_, String>>()?;
            }
            "jetstream_pipelines" => {
                self.jetstream_pipelines = pairs(name, v, "pipeline[@version]=action")?
                    .into_iter()
                    .map(|(p, a)| (p.to_string(), a.to_string()))
                    .collect();
            }
            "cors_origins" => {
                let origins: Vec<String> = list(v).map(String::from).collect();
                if let Some(bad) = origins.iter().find(|o| {
                    *o != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
                        || o.trim_start_matches("http://")
                            .trim_start_matches("https://")
                            .contains('/')
                }) {
                    return Err(format!(
                        "cors_origins: {bad:?} is not an origin like https://app.example.org or *"
                    ));
                }
                self.cors_origins = origins;
            }
            "stableconfigs_anonymous" => self.stableconfigs_anonymous = on_off(name, v)?,
            "stableconfigs_rate" => self.stableconfigs_rate = num(name, v, 1u32)?,
            "stableconfigs_max_queued" => self.stableconfigs_max_queued = num(name, v, 1u32)?,
            "artifact_store" => {
                self.artifact_store = v.parse().map_err(|e| format!("artifact_store: {e}"))?;
            }
            "artifact_dir" if v.is_empty() => return Err("artifact_dir: must not be empty".into()),
            "artifact_dir" => self.artifact_dir = v.into(),
            "webhook_ca" => self.webhook_ca = (!v.is_empty()).then(|| v.into()),
            "webhooks" => {
                let urls: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect();
                if let Some(bad) = urls
                    .iter()
                    .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
                {
                    return Err(format!(
                        "webhooks: {bad:?} must be an http:// or https:// URL"
                    ));
                }
                self.webhooks = urls;
            }
            "sandbox" => {
                if !matches!(v, "auto" | "off" | "required") {
                    return Err(format!("sandbox: {v:?} must be auto, off or required"));
                }
                self.sandbox = v.to_string();
            }
            "sandbox_hide" => self.sandbox_hide = list(v).map(Into::into).collect(),
            "child_env" => self.child_env = list(v).map(String::from).collect(),
            "outbound_allow" => self.outbound_allow = list(v).map(String::from).collect(),
            "open_executors" => self.open_executors = list(v).map(String::from).collect(),
            "result_ttl" => self.result_ttl = dur()?,
            "retention" => {
                for (scope, d) in pairs(name, v, "scope=duration")? {
                    let faces = DEFAULT_RETENTION.map(|(s, _)| s);
                    let known = faces.contains(&scope)
                        || scope
                            .strip_prefix("kind:")
                            .is_some_and(|k| crate::keys::validate_executor(k).is_ok());
                    if !known {
                        return Err(format!(
                            "retention: unknown scope {scope:?}; use {} or kind:<executor>",
                            faces.join(", ")
                        ));
                    }
                    let d = duration(scope, d)?;
                    crate::job::check_duration("result_ttl", d)
                        .map_err(|e| format!("retention: {scope}: {e}"))?;
                    self.retention.retain(|(s, _)| s != scope);
                    self.retention.push((scope.to_string(), d));
                }
            }
            "lease" => self.lease = dur()?.max(Duration::from_millis(10)),
            "presence_ttl" => self.presence_ttl = dur()?.max(Duration::from_millis(100)),
            "max_attempts" => self.max_attempts = num(name, v, 1u32)?,
            "max_lost_leases" => self.max_lost_leases = num(name, v, 0u32)?,
            "backoff" => self.backoff = dur()?,
            "timeout" => self.timeout = dur()?,
            "pick_size" => self.pick_size = num(name, v, 1usize)?,
            "exec_size" => self.exec_size = Some(num(name, v, 1usize)?),
            "stop_list_cap" => self.stop_list_cap = num(name, v, 1usize)?,
            "pool_size" => self.pool_size = num(name, v, 1u32)?,
            "redis_timeout" => self.redis_timeout = dur()?,
            "min_replicas_ack" => self.min_replicas_ack = num(name, v, 0u32)?,
            "replica_ack_timeout" => {
                self.replica_ack_timeout = dur()?.max(Duration::from_millis(1))
            }
            "header_timeout" => self.header_timeout = dur()?.max(Duration::from_millis(100)),
            "body_timeout" => self.body_timeout = dur()?.max(Duration::from_millis(100)),
            "max_content_length" => self.max_content_length = bytes(name, v)?,
            _ => {
                return Err(format!(
                    "unknown setting {name:?}; known: {}",
                    NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
}

/// A size in bytes: a number, or with a unit ("16 MiB", "1 GiB", "512kB").
fn bytes(name: &str, v: &str) -> Result<u64, String> {
    match v.trim().parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() >= 1 => Ok(b.as_u64()),
        _ => Err(format!(
            "{name}: {v:?} is not a size like 16777216, \"16 MiB\" or \"1 GiB\""
        )),
    }
}

fn on_off(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("{name}: {v:?} must be on or off")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_hide_passwords() {
        assert_eq!(
            redacted_url("redis://sluice-api:s3cret@127.0.0.1:6379"),
            "redis://sluice-api:***@127.0.0.1:6379"
        );
        assert_eq!(
            redacted_url("redis+sentinel://u:p@h1:1,h2:2/sluice?sentinel_password=x"),
            "redis+sentinel://u:***@h1:1,h2:2/sluice?sentinel_password=***"
        );
        assert_eq!(
            redacted_url("unix:///tmp/r.sock?user=sluice-exec&pass=pw"),
            "unix:///tmp/r.sock?user=sluice-exec&pass=***"
        );
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retention_is_a_policy_by_scope_over_defaults() {
        let mut c = Config::default();
        let d = |s: u64| Duration::from_secs(s);
        assert_eq!(c.retention(Some("stableconfigs"), "solver"), d(300));
        assert_eq!(c.retention(Some("stand"), "spark"), d(30 * 86_400));
        assert_eq!(c.retention(None, "command"), c.result_ttl);
        c.set("retention", "kind:spark=1h, stand=90d")
            .expect("a good policy");
        assert_eq!(
            c.retention(Some("stand"), "spark"),
            d(3600),
            "the kind wins"
        );
        assert_eq!(c.retention(Some("stand"), "solver"), d(90 * 86_400));
        assert_eq!(
            c.retention(Some("jetstream"), "x"),
            d(30 * 86_400),
            "defaults kept"
        );
        for bad in [
            "nowhere=1h",
            "stand",
            "stand=soon",
            "stand=400d",
            "kind:a b=1h",
        ] {
            assert!(c.set("retention", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_apply_without_sources() {
        let c = Config::load(env(&[])).unwrap_or_default();
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 3323);
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let file = dir.join("c.toml");
        std::fs::write(&file, "result_ttl = \"1h\"\nport = 4000\nlease = \"10s\"\n").ok();
        let path = file.display().to_string();
        let c = Config::load(env(&[
            ("SLUICE_CONFIG", &path),
            ("SLUICE_PORT", "5000"),
            ("HOME", "/x"),
        ]));
        let c = c.unwrap_or_default();
        assert_eq!(c.port, 5000, "env beats file");
        assert_eq!(
            c.result_ttl,
            Duration::from_secs(3600),
            "file beats default"
        );
        assert_eq!(c.lease, Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_values_are_one_clear_error() {
        let e = Config::load(env(&[("SLUICE_RESULT_TTL", "soon")]))
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("SLUICE_RESULT_TTL"));
        let e = Config::load(env(&[("SLUICE_REDIS_URL", "http://x")])).err();
        assert!(e.is_some());
        let e = Config::load(env(&[("SLUICE_MAX_ATTEMPTS", "0")])).err();
        assert!(e.is_some());
        let e = Config::load(env(&[("SLUICE_CONFIG", "/nonexistent/sluice.toml")])).err();
        assert!(e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("cannot read"));
    }

    #[test]
    fn sizes_take_units_and_exec_size_is_kept_for_every_kind() {
        let mut c = Config::default();
        assert!(c.set("max_content_length", "16 MiB").is_ok());
        assert_eq!(c.max_content_length, 16 * 1024 * 1024);
        assert!(c.set("max_artifact_size", "1 GiB").is_ok());
        assert_eq!(c.max_artifact_size, 1 << 30);
        assert!(c.set("max_content_length", "4096").is_ok());
        assert_eq!(c.max_content_length, 4096);
        assert!(c.set("max_content_length", "lots").is_err());
        assert_eq!(
            Config::default().exec_size,
            None,
            "each kind has its own default"
        );
        let c = Config::load(env(&[("SLUICE_EXEC_SIZE", "5")])).unwrap_or_default();
        assert_eq!(c.exec_size, Some(5));
        assert_eq!(
            crate::keys::Keys::new("t1").job(crate::JobId(1)),
            "t1:job_1"
        );
        assert_eq!(
            crate::keys::Keys::new("t1:").job(crate::JobId(1)),
            "t1:job_1"
        );
        assert_eq!(crate::keys::Keys::new("").job(crate::JobId(1)), "job_1");
    }

    #[test]
    fn the_artifact_store_is_local_unless_set_to_s3() {
        assert_eq!(Config::default().artifact_store, StoreKind::Local);
        let c = Config::load(env(&[
            ("SLUICE_ARTIFACT_STORE", "s3"),
            ("S3_BUCKET", "jobs"),
            ("S3_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ]))
        .unwrap_or_default();
        assert_eq!(c.artifact_store, StoreKind::S3);
        assert_eq!(c.s3.bucket, "jobs");
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.s3.region, "us-east-1");
        let mut c = Config::default();
        assert!(c.set("artifact_store", "local").is_ok());
        let e = c.set("artifact_store", "gcs").err().unwrap_or_default();
        assert!(
            e.contains("artifact_store") && e.contains("local or s3"),
            "{e}"
        );
        let e = Config::load(env(&[("SLUICE_ARTIFACT_STORE", "ftp")])).err();
        assert!(e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("SLUICE_ARTIFACT_STORE"));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let mut c = Config::default();
        assert!(c.set("result_tll", "5m").is_err());
        assert!(c.set("auth", "off").is_ok());
        assert!(!c.auth);
    }
}
