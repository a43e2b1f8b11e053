//! The job model: ids, statuses, the fields of the `job_N` hash and how they read back.
//!
//! Field conventions (what `redis-cli HGETALL job_7` shows): statuses are upper-case words;
//! timestamps are RFC 3339 UTC with milliseconds, written by the scripts from Redis `TIME`;
//! durations (`backoff`, `timeout`, `result_ttl`) are integer milliseconds; `params` and
//! `result` are MessagePack; `progress` is JSON text; everything else is plain text.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::Error;

/// A job id: the N of `job_N`, from `INCR job_seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s.strip_prefix("job_").unwrap_or(s);
        digits
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(JobId)
            .ok_or_else(|| Error::Invalid(format!("job id must be a positive integer, got {s:?}")))
    }
}

/// Where a job is in its life (DESIGN.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, utoipa::ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Waiting for `run_at` or a retry backoff, in the `delayed` zset.
    Scheduled,
    /// On its executor's queue.
    Pending,
    /// Claimed by an executor that holds its lease.
    Running,
    /// Finished with a result.
    Completed,
    /// Failed with no attempts left, or with an error that is not retried.
    Failed,
    /// Overran its timeout with no attempts left.
    TimedOut,
    /// Stopped before it finished.
    Canceled,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 7] = [
        Status::Scheduled,
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::TimedOut,
        Status::Canceled,
    ];

    /// The word stored in `job_N.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Canceled => "CANCELED",
        }
    }

    /// True once the job can change no more (except by an explicit retry).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::TimedOut | Status::Canceled
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let words: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                Error::Invalid(format!("unknown status {s:?}; one of {}", words.join(", ")))
            })
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// [`parse_duration`] of a field a request may leave out.
///
/// # Errors
/// [`Error::Invalid`] naming the field and the text.
pub fn parse_optional_duration(field: &str, text: Option<&str>) -> Result<Option<Duration>, Error> {
    text.map(|t| parse_duration(field, t)).transpose()
}

/// The largest value of each duration a request may give, checked before any script runs
/// (README "Limits"): a per-attempt `timeout` of 30 days, a retry `backoff` of 1 day, a
/// `result_ttl`, a `delay` (or a `run_at` that far ahead) and a schedule's `every` of 365 days.
pub fn max_duration(field: &str) -> Duration {
    const DAY: u64 = 24 * 3600;
    Duration::from_secs(match field {
        "timeout" => 30 * DAY,
        "backoff" => DAY,
        _ => 365 * DAY,
    })
}

/// The highest priority (0, the default, is the lowest; claims take the highest first).
pub const MAX_PRIORITY: u8 = 9;

/// The largest `concurrency_limit`.
pub const MAX_CONCURRENCY_LIMIT: u32 = 100_000;

/// The largest N of a rate limit "N/period".
pub const MAX_RATE: u32 = 100_000;

/// A rate limit: at most `max` job starts in any window of `period` (lua/claim.lua keeps
/// a sliding log of starts). Written "N/period" ("100/1s", "5/1m"); stored "N/<ms>ms".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed per window (1-[`MAX_RATE`]).
    pub max: u32,
    /// The window (1 ms - 1 day).
    pub period: Duration,
}

impl std::str::FromStr for Rate {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Invalid(format!(
                "rate_limit: {text:?} is not N/period like 100/1s or 5/1m (N 1-{MAX_RATE}, period 1ms-1day)"
            ))
        };
        let (n, period) = text.split_once('/').ok_or_else(bad)?;
        let max = n.trim().parse::<u32>().map_err(|_| bad())?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| bad())?;
        if !(1..=MAX_RATE).contains(&max)
            || period < Duration::from_millis(1)
            || period > Duration::from_secs(86_400)
        {
            return Err(bad());
        }
        Ok(Self { max, period })
    }
}

impl Rate {
    /// "N/period" with a humantime period ("100/1s"), as people write it.
    pub fn human(&self) -> String {
        format!("{}/{}", self.max, humantime::format_duration(self.period))
    }
}

/// "N/<ms>ms", as stored and as lua/claim.lua reads it.
impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}ms", self.max, self.period.as_millis())
    }
}

/// The submit options every front-end offers (HTTP, CLI), besides durations and attempts.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// 0 (the default) to [`MAX_PRIORITY`].
    pub priority: Option<u8>,
    /// Unique while active.
    pub unique_key: Option<String>,
    /// At most `concurrency_limit` jobs of this key run at once.
    pub concurrency_key: Option<String>,
    /// See `concurrency_key`.
    pub concurrency_limit: Option<u32>,
    /// At most `rate_limit` starts of this key per window.
    pub rate_key: Option<String>,
    /// See `rate_key`.
    pub rate_limit: Option<Rate>,
}

/// Longest idempotency, unique, concurrency or rate key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 1000;

/// Refuses `d` for `field` past [`max_duration`].
///
/// # Errors
/// [`Error::Invalid`] naming the field and its maximum.
pub fn check_duration(field: &str, d: Duration) -> Result<Duration, Error> {
    let max = max_duration(field);
    if d > max {
        return Err(Error::Invalid(format!(
            "{field}: at most {}",
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

/// Parses a humantime duration given for `field` ("90s", "5m", "1h 30m"), at most
/// [`max_duration`] of that field.
///
/// # Errors
/// [`Error::Invalid`] naming the field and the text.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, Error> {
    let d = humantime::parse_duration(text).map_err(|e| {
        Error::Invalid(format!(
            "{field}: {text:?} is not a duration like 90s or 5m ({e})"
        ))
    })?;
    check_duration(field, d)
}

/// Extra `job_N` fields a submit may set, besides the ones every job has. `backoff_mode`
/// "linear" makes retry n wait backoff × n (wumai's try_period) instead of backoff × 2^(n−1).
/// `inputs` (JSON, see [`crate::inputs`]) and `callback_url` come from the run APIs. The
/// workflow fields (`workflow`, `node`, `depends_on`, `dependents`, `waiting_on`) and the
/// pipeline ones (`pipeline`, `sequence`) are written only by their scripts: a plain submit
/// cannot join a workflow it did not create. The `stand_*` fields are what Stand's
/// `POST /jobs` said about the job (name, type, its Lemonade workflow, user, steps), shown
/// back in its JobDetail. `idempotency_key` (with the `request_hash` of its request) and
/// `unique_key` are what lua/submit.lua checks before it makes a job.
pub const EXTRA_FIELDS: [&str; 19] = [
    "priority",
    "concurrency_key",
    "concurrency_limit",
    "rate_key",
    "rate_limit",
    "idempotency_key",
    "request_hash",
    "unique_key",
    "cluster",
    "restart",
    "backoff_mode",
    "inputs",
    "callback_url",
    "stand_name",
    "stand_type",
    "stand_workflow",
    "stand_workflow_name",
    "stand_user",
    "stand_steps",
];

/// What a submit asks for. Defaults for the durations and attempts come from the config.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Executor kind that runs it (`queue:<executor>`).
    pub executor: String,
    /// Parameters handed to the executor; stored as MessagePack.
    pub params: Value,
    /// Attempts before the job fails for good (>= 1).
    pub max_attempts: u32,
    /// Base of the exponential retry delay.
    pub backoff: Duration,
    /// Per-attempt time limit (zero = none).
    pub timeout: Duration,
    /// How long the job is kept once finished.
    pub result_ttl: Duration,
    /// Do not run before this time.
    pub run_at: Option<SystemTime>,
    /// Account that submitted it.
    pub owner: String,
    /// Other fields from [`EXTRA_FIELDS`].
    pub extra: Vec<(String, String)>,
}

impl NewJob {
    /// The submit options every front-end offers (HTTP, CLI), as job fields: a priority above
    /// 0, a unique key, a concurrency key and limit, a rate key and limit (checked by
    /// `Broker::validate`).
    pub fn options(&mut self, o: SubmitOptions) {
        let fields = [
            (
                "priority",
                o.priority.filter(|p| *p > 0).map(|p| p.to_string()),
            ),
            ("unique_key", o.unique_key),
            ("concurrency_key", o.concurrency_key),
            (
                "concurrency_limit",
                o.concurrency_limit.map(|n| n.to_string()),
            ),
            ("rate_key", o.rate_key),
            ("rate_limit", o.rate_limit.map(|r| r.to_string())),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                self.extra.push((field.into(), v));
            }
        }
    }

    /// Marks the job with an idempotency key and the SHA-256 of the request it came from, as
    /// `lua/submit.lua` compares them.
    pub fn idempotent(&mut self, key: &str, request: &[u8]) {
        use sha2::Digest;
        self.extra.push(("idempotency_key".into(), key.to_string()));
        self.extra.push((
            "request_hash".into(),
            hex::encode(sha2::Sha256::digest(request)),
        ));
    }
}

/// One job as read back from its hash. Besides the fields below it carries every other text
/// field of `job_N` that is set: created, started, updated, finished, run_at, worker,
/// lease_token, locked, locked_at, stop_requested, owner, cluster, workflow, depends_on.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// The job id.
    pub id: JobId,
    /// Executor kind.
    pub executor: String,
    /// Current status.
    pub status: Status,
    /// Parameters (decoded from MessagePack).
    #[schema(value_type = Value)]
    pub params: Value,
    /// Result of a COMPLETED job (decoded from MessagePack).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Last error text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Last progress report (JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// Attempts spent so far (the one running counts; a run whose executor died does not).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Runs that lost their executor (lease expired) and were run again without spending an
    /// attempt; bounded by the `max_lost_leases` setting.
    pub lost: u32,
    /// Retry backoff base.
    #[serde(serialize_with = "human")]
    #[schema(value_type = String, example = "90s")]
    pub backoff: Duration,
    /// Per-attempt time limit (0s = none).
    #[serde(serialize_with = "human")]
    #[schema(value_type = String, example = "90s")]
    pub timeout: Duration,
    /// Time kept after finishing.
    #[serde(serialize_with = "human")]
    #[schema(value_type = String, example = "90s")]
    pub result_ttl: Duration,
    /// Every other text field of the hash (created, started, updated, finished, run_at,
    /// worker, lease_token, locked, locked_at, stop_requested, owner, cluster, ...). The
    /// lease token, the running attempt's fencing credential, and `ix`, the status the
    /// listing indexes hold it under (lua/includes/index.lua), are never serialized.
    #[serde(flatten, serialize_with = "without_token")]
    #[schema(additional_properties)]
    pub fields: std::collections::BTreeMap<String, String>,
}

fn without_token<S: Serializer>(
    fields: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(
        fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "lease_token" | "ix")),
    )
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl Job {
    /// Reads a job from `HGETALL job_N`; `None` when the hash is empty (no such job).
    ///
    /// # Errors
    /// [`Error::Codec`] when a field is not what the scripts write.
    pub fn from_hash(mut h: HashMap<String, Vec<u8>>) -> Result<Option<Job>, Error> {
        if h.is_empty() {
            return Ok(None);
        }
        let mut text = |name: &str| -> Option<String> {
            h.remove(name)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        let num = |v: Option<String>, name: &str| -> Result<u64, Error> {
            v.unwrap_or_else(|| "0".into())
                .parse::<u64>()
                .map_err(|_| Error::Codec(format!("field {name} is not a number")))
        };
        let id = JobId(num(text("id"), "id")?);
        let status = text("status")
            .unwrap_or_default()
            .parse::<Status>()
            .map_err(|e| Error::Codec(e.to_string()))?;
        let executor = text("executor").unwrap_or_default();
        let error = text("error");
        let progress =
            text("progress").map(|p| serde_json::from_str(&p).unwrap_or(Value::String(p)));
        let attempt = num(text("attempt"), "attempt")? as u32;
        let max_attempts = num(text("max_attempts"), "max_attempts")? as u32;
        let lost = num(text("lost"), "lost")? as u32;
        let backoff = Duration::from_millis(num(text("backoff"), "backoff")?);
        let timeout = Duration::from_millis(num(text("timeout"), "timeout")?);
        let result_ttl = Duration::from_millis(num(text("result_ttl"), "result_ttl")?);
        let params = match h.remove("params") {
            Some(b) => decode(&b)?,
            None => Value::Null,
        };
        let result = h.remove("result").map(|b| decode(&b)).transpose()?;
        let fields = h
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        Ok(Some(Job {
            id,
            executor,
            status,
            params,
            result,
            error,
            progress,
            attempt,
            max_attempts,
            lost,
            backoff,
            timeout,
            result_ttl,
            fields,
        }))
    }

    /// A text field of the hash not modelled above (e.g. `created`, `worker`, `locked`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// Encodes a JSON value as the MessagePack stored in `params` / `result`.
///
/// # Errors
/// [`Error::Codec`] if the value cannot be encoded.
pub fn encode(v: &Value) -> Result<Vec<u8>, Error> {
    rmp_serde::to_vec_named(v).map_err(|e| Error::Codec(e.to_string()))
}

/// Decodes MessagePack from `params` / `result` into JSON.
///
/// # Errors
/// [`Error::Codec`] if the bytes are not MessagePack.
pub fn decode(b: &[u8]) -> Result<Value, Error> {
    rmp_serde::from_slice(b).map_err(|e| Error::Codec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_word() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().ok(), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!("timed_out".parse::<Status>().ok(), Some(Status::TimedOut));
        assert!("DONE".parse::<Status>().is_err());
    }

    #[test]
    fn job_ids_parse_strictly() {
        assert_eq!("7".parse::<JobId>().ok(), Some(JobId(7)));
        assert_eq!("job_7".parse::<JobId>().ok(), Some(JobId(7)));
        assert!("0".parse::<JobId>().is_err());
        assert!("-1".parse::<JobId>().is_err());
        assert!("abc".parse::<JobId>().is_err());
        assert!("99999999999999999999999".parse::<JobId>().is_err());
    }

    #[test]
    fn messagepack_round_trip_keeps_json() {
        let v = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}});
        assert_eq!(decode(&encode(&v).unwrap_or_default()).ok(), Some(v));
    }
}
