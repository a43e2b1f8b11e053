//! The wumai face (SEEDS.md section 5): `POST /` with `{"action": "Name", ...params}`.
//!
//! Always HTTP 200 with `{"data", "retCode", "message"}`; errors carry wumai's codes and the
//! request's context id in `data.exceptionTag`. An action is routed to the executor kind
//! that registered it (`actions` hash; `sluice-command` registers its config's actions),
//! trying the name as given, then its snake_case form (wumai resolved `RunSolver` to
//! `run_solver`). Two actions are built in: `DescribeJob {"jobId"}` and `CancelJob
//! {"jobId"}`. wumai's retries map onto the core: `try_max` (default 3) is max_attempts and
//! `try_period` (seconds, default 600) a linear backoff: retry n runs try_period × n later;
//! `run_at` (RFC 3339 time, or Unix seconds) starts it no earlier.
//!
//! wumai's API server ran the handler and answered its dict: `POST /` waits for the job up to
//! `wumai_wait` (per action: `wumai_waits`) and answers the action's result in `data`; a job
//! still going then (or asked with `Prefer: respond-async` or `?async`) answers
//! `{"jobId", "status"}` for `DescribeJob`. A job that ends badly within the bound answers
//! 5000 with its error and `data.jobId`. `GET /` answers wumai's text banner; `?pretty`
//! indents the JSON. A missing or bad key answers HTTP 200 and retCode 4103, as every wumai
//! error does.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::Reply;

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{JobId, Status};

/// wumai's return codes.
pub mod code {
    /// Success.
    pub const OK: i64 = 0;
    /// Unknown action.
    pub const UNKNOWN_ACTION: i64 = 4000;
    /// A parameter has a bad value.
    pub const INVALID_PARAMETER: i64 = 4100;
    /// No valid key (wumai's ResourceNotBelongsToProject: the caller's project owns nothing).
    pub const NOT_YOURS: i64 = 4103;
    /// The resource does not exist.
    pub const NOT_FOUND: i64 = 4104;
    /// The resource is busy or the action is forbidden in its state.
    pub const BUSY: i64 = 4105;
    /// Missing `action` or the body failed validation.
    pub const VALIDATION: i64 = 4110;
    /// Anything unhandled (Redis away, ...).
    pub const UNHANDLED: i64 = 5000;
}

/// wumai's retCode for each broker error; the table of this face.
pub fn ret_code(e: &Error) -> i64 {
    match e {
        Error::NotFound(_) => code::NOT_FOUND,
        // 4105 is wumai's ResourceActionForbiden and ResourceIsBusy alike.
        Error::IllegalTransition { .. }
        | Error::Locked { .. }
        | Error::StaleLease(_)
        | Error::Forbidden(_) => code::BUSY,
        Error::Invalid(_) => code::INVALID_PARAMETER,
        _ => code::UNHANDLED,
    }
}

/// wumai's status words.
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Scheduled | Status::Pending => "pending",
        Status::Running => "running",
        Status::Completed => "finished",
        Status::Failed | Status::TimedOut | Status::Canceled => "error",
    }
}

/// wumai's envelope, indented when the query asked `?pretty`.
fn envelope(body: &Value, pretty: bool) -> warp::reply::Response {
    let text = if pretty {
        serde_json::to_string_pretty(body)
    } else {
        serde_json::to_string(body)
    }
    .unwrap_or_default();
    warp::reply::with_header(text, "content-type", "application/json").into_response()
}

/// What a request failed with: wumai's code, the message and extra `data` fields.
struct Failure {
    ret: i64,
    message: String,
    data: Map<String, Value>,
}

impl From<(i64, String)> for Failure {
    fn from((ret, message): (i64, String)) -> Self {
        Failure {
            ret,
            message,
            data: Map::new(),
        }
    }
}

/// Most `POST /` calls waiting for their job at once on one server; beyond it callers get the
/// job reference at once.
const MAX_WAITING: usize = 256;
static WAITING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_WAITING);

/// `CamelCase` -> `snake_case`.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn job_id(body: &Map<String, Value>) -> Result<JobId, (i64, String)> {
    match body.get("jobId") {
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).map(JobId).ok_or((
            code::INVALID_PARAMETER,
            "jobId must be a positive integer".into(),
        )),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|e: Error| (code::INVALID_PARAMETER, e.to_string())),
        Some(_) => Err((
            code::INVALID_PARAMETER,
            "jobId must be a positive integer".into(),
        )),
        None => Err((code::VALIDATION, "jobId is required".into())),
    }
}

fn seconds(body: &Map<String, Value>, field: &str, default: u64) -> Result<u64, (i64, String)> {
    match body.get(field) {
        None => Ok(default),
        Some(v) => v.as_u64().ok_or((
            code::INVALID_PARAMETER,
            format!("{field} must be a whole number"),
        )),
    }
}

/// `run_at`: an RFC 3339 time (`2026-11-28T12:00:00Z`, or wumai's `2026-11-28 12:00:00`, UTC)
/// or Unix seconds.
fn run_at(body: &Map<String, Value>) -> Result<Option<std::time::SystemTime>, (i64, String)> {
    let bad = |why: String| (code::INVALID_PARAMETER, format!("run_at: {why}"));
    match body.get("run_at") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
            .map(Some)
            .map_err(|e| {
                bad(format!(
                    "{t:?} is not a time like 2026-11-28T12:00:00Z ({e})"
                ))
            }),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)))
            .ok_or_else(|| bad(format!("{n} is not whole Unix seconds"))),
        Some(other) => Err(bad(format!("{other} is not a time"))),
    }
}

/// How long `action` may keep its caller waiting (`wumai_waits`, else `wumai_wait`).
fn wait_for(b: &Broker, action: &str) -> std::time::Duration {
    let c = b.config();
    c.wumai_waits
        .iter()
        .find(|(a, _)| a == action)
        .map_or(c.wumai_wait, |(_, d)| *d)
}

/// The action's result when its job ends within the bound, else the job reference.
async fn answer(
    b: &Broker,
    action: &str,
    id: JobId,
    status: Status,
    wait: bool,
) -> Result<Value, Failure> {
    let reference = json!({"jobId": id, "status": status_word(status)});
    let bound = wait_for(b, action);
    if !wait || bound.is_zero() || status != Status::Pending {
        return Ok(reference);
    }
    let Ok(_permit) = WAITING.try_acquire() else {
        return Ok(reference);
    };
    let e = |e: Error| Failure::from((ret_code(&e), e.to_string()));
    match b.wait_end(id, bound).await.map_err(e)? {
        None => Ok(reference),
        Some(job) if job.status == Status::Completed => Ok(job.result.unwrap_or(Value::Null)),
        Some(job) => Err(Failure {
            ret: code::UNHANDLED,
            message: format!(
                "job {id} ended {}: {}",
                job.status,
                job.error.unwrap_or_default()
            ),
            data: Map::from_iter([("jobId".to_string(), json!(id))]),
        }),
    }
}

async fn handle(b: &Broker, who: &Account, body: &Bytes, wait: bool) -> Result<Value, Failure> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| (code::VALIDATION, format!("body is not JSON: {e}")))?;
    let Value::Object(obj) = parsed else {
        return Err((
            code::VALIDATION,
            "body must be a JSON object with an \"action\"".into(),
        )
            .into());
    };
    let action = match obj.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(_) => {
            return Err((code::VALIDATION, "action must be a non-empty string".into()).into())
        }
        None => return Err((code::VALIDATION, "'action' is a required property".into()).into()),
    };
    let e = |e: Error| Failure::from((ret_code(&e), e.to_string()));
    match action.as_str() {
        "DescribeJob" => {
            let id = job_id(&obj)?;
            let job = crate::http::access::visible(b, who, id).await.map_err(e)?;
            Ok(json!({
                "id": job.id, "action": job.params.get("action").cloned().unwrap_or(Value::Null),
                "status": status_word(job.status), "result": &job.result, "error": job.error.as_deref().unwrap_or_default(),
                "params": &job.params, "trys": job.attempt, "try_max": job.max_attempts,
                "created": job.field("created"), "updated": job.field("updated"), "run_at": job.field("run_at"),
            }))
        }
        "CancelJob" => {
            let id = job_id(&obj)?;
            crate::http::access::steerable(b, who, id)
                .await
                .map_err(e)?;
            let status = b.stop(id).await.map_err(e)?;
            Ok(json!({"id": id, "status": status_word(status)}))
        }
        _ => {
            let mut kind = b.action_kind(&action).await.map_err(e)?;
            if kind.is_none() {
                kind = b.action_kind(&snake(&action)).await.map_err(e)?;
            }
            let Some(kind) = kind else {
                return Err((code::UNKNOWN_ACTION, format!("unknown action {action:?}")).into());
            };
            let try_max = seconds(&obj, "try_max", 3)?;
            let try_period = seconds(&obj, "try_period", 600)?;
            if try_max == 0 || try_max > 1000 {
                return Err((code::INVALID_PARAMETER, "try_max must be 1-1000".into()).into());
            }
            let start = run_at(&obj)?;
            let mut params = obj.clone();
            params.remove("try_max");
            params.remove("try_period");
            params.remove("run_at");
            // The registered name, so the executor finds its action.
            if b.action_kind(&action).await.map_err(e)?.is_none() {
                params.insert("action".into(), Value::String(snake(&action)));
            }
            let mut job = b
                .face_job("wumai", who, &kind, Value::Object(params))
                .map_err(e)?;
            job.max_attempts = try_max as u32;
            job.backoff = std::time::Duration::from_secs(try_period);
            job.extra.push(("backoff_mode".into(), "linear".into()));
            job.run_at = start;
            let (id, status) = b.submit(&job).await.map_err(e)?;
            answer(b, &action, id, status, wait).await
        }
    }
}

/// `POST /` (wumai).
#[utoipa::path(post, path = "/", tag = "wumai",
    request_body(content = Object, description = "{\"action\": \"Name\", ...params}; built in: DescribeJob, CancelJob {jobId}; try_max, try_period (s), run_at (RFC 3339 or Unix s)"),
    params(("x-request-id" = Option<String>, Header, description = "Context id echoed in data.exceptionTag on errors"),
        ("prefer" = Option<String>, Header, description = "respond-async: answer the job reference without waiting"),
        ("pretty" = Option<String>, Query, description = "present: indented JSON"),
        ("async" = Option<String>, Query, description = "present: answer the job reference without waiting")),
    responses((status = 200, description = "Always 200: {data, retCode, message}; data is the action's result when its job ends within wumai_wait, else {jobId, status}; retCode 0 ok, 4000 unknown action, 4100 invalid parameter, 4103 no valid key, 4104 not found, 4105 busy, 4110 validation, 5000 unhandled or the job failed", body = Object)))]
pub async fn post(
    b: Broker,
    who: Option<Account>,
    request_id: Option<String>,
    prefer: Option<String>,
    query: String,
    body: Bytes,
) -> Result<warp::reply::Response, warp::Rejection> {
    let context = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let flags: Vec<&str> = query
        .split('&')
        .map(|p| p.split('=').next().unwrap_or(""))
        .collect();
    let pretty = flags.contains(&"pretty");
    let wait = !flags.contains(&"async")
        && !prefer.is_some_and(|p| p.to_ascii_lowercase().contains("respond-async"));
    let done = match &who {
        Some(who) => handle(&b, who, &body, wait).await,
        None => Err(Failure::from((
            code::NOT_YOURS,
            "a valid API key is required (Authorization: Bearer sk_...)".to_string(),
        ))),
    };
    Ok(match done {
        Ok(data) => envelope(
            &json!({"data": data, "retCode": code::OK, "message": null}),
            pretty,
        ),
        Err(f) => {
            if f.ret == code::UNHANDLED {
                tracing::error!(context = %context, error = %f.message, "wumai request failed");
            }
            let mut data = f.data;
            data.insert("exceptionTag".into(), Value::String(context));
            envelope(
                &json!({"data": data, "retCode": f.ret, "message": f.message}),
                pretty,
            )
        }
    })
}

/// `GET /` (wumai's banner, for clients that are not browsers).
#[utoipa::path(get, path = "/", tag = "wumai",
    responses((status = 200, description = "A text banner naming the service", content_type = "text/plain", body = String)))]
pub async fn banner() -> Result<warp::reply::Response, warp::Rejection> {
    Ok(warp::reply::with_header(
        format!(
            "Sluice {} (wumai-compatible API): POST / with {{\"action\": \"Name\", ...}}\n",
            env!("CARGO_PKG_VERSION")
        ),
        "content-type",
        "text/plain; charset=utf-8",
    )
    .into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // wumai
        warp::path::end()
            .and(warp::post())
            .and(c.broker())
            .and(c.who_or_none())
            .and(warp::header::optional::<String>("x-request-id"))
            .and(warp::header::optional::<String>("prefer"))
            .and(c.raw_query())
            .and(c.json_body())
            .and_then(post)
            .boxed(),
        warp::path::end().and(warp::get()).and_then(banner).boxed(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_per_error() {
        let id = JobId(1);
        assert_eq!(ret_code(&Error::NotFound(id)), 4104);
        assert_eq!(ret_code(&Error::Locked { id, holder: None }), 4105);
        assert_eq!(
            ret_code(&Error::IllegalTransition {
                id,
                status: Status::Completed,
                action: "stop"
            }),
            4105
        );
        assert_eq!(ret_code(&Error::Invalid("x".into())), 4100);
        assert_eq!(ret_code(&Error::Unavailable("down".into())), 5000);
    }

    #[test]
    fn camel_to_snake() {
        assert_eq!(snake("RunSolver"), "run_solver");
        assert_eq!(snake("hello"), "hello");
    }
}
