//! The wumai face (SEEDS.md section 5): `POST /` with `{"action": "Name", ...params}`.
//!
//! Always HTTP 200 with `{"data", "retCode", "message"}`; errors carry wumai's codes and the
//! request's context id in `data.exceptionTag`. An action is routed to the executor kind
//! that registered it (`actions` hash; `sluice-command` registers its config's actions),
//! trying the name as given, then its snake_case form (wumai resolved `RunSolver` to
//! `run_solver`). Two actions are built in: `DescribeJob {"jobId"}` and `CancelJob
//! {"jobId"}`. wumai's retries map onto the core: `try_max` (default 3) is max_attempts and
//! `try_period` (seconds, default 600) a linear backoff: retry n runs try_period × n later.

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

fn ok(data: Value) -> warp::reply::Response {
    warp::reply::json(&json!({"data": data, "retCode": code::OK, "message": null})).into_response()
}

fn err(ret: i64, message: impl Into<String>, context: &str) -> warp::reply::Response {
    let body =
        json!({"data": {"exceptionTag": context}, "retCode": ret, "message": message.into()});
    warp::reply::json(&body).into_response()
}

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

async fn handle(b: &Broker, who: &Account, body: &Bytes) -> Result<Value, (i64, String)> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| (code::VALIDATION, format!("body is not JSON: {e}")))?;
    let Value::Object(obj) = parsed else {
        return Err((
            code::VALIDATION,
            "body must be a JSON object with an \"action\"".into(),
        ));
    };
    let action = match obj.get("action") {
        Some(Value::String(a)) if !a.is_empty() => a.clone(),
        Some(_) => return Err((code::VALIDATION, "action must be a non-empty string".into())),
        None => return Err((code::VALIDATION, "'action' is a required property".into())),
    };
    let e = |e: Error| (ret_code(&e), e.to_string());
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
                return Err((code::UNKNOWN_ACTION, format!("unknown action {action:?}")));
            };
            let try_max = seconds(&obj, "try_max", 3)?;
            let try_period = seconds(&obj, "try_period", 600)?;
            if try_max == 0 || try_max > 1000 {
                return Err((code::INVALID_PARAMETER, "try_max must be 1-1000".into()));
            }
            let mut params = obj.clone();
            params.remove("try_max");
            params.remove("try_period");
            // The registered name, so the executor finds its action.
            if b.action_kind(&action).await.map_err(e)?.is_none() {
                params.insert("action".into(), Value::String(snake(&action)));
            }
            let mut job = b.job_for(who, &kind, Value::Object(params)).map_err(e)?;
            job.max_attempts = try_max as u32;
            job.backoff = std::time::Duration::from_secs(try_period);
            job.extra.push(("backoff_mode".into(), "linear".into()));
            let (id, status) = b.submit(&job).await.map_err(e)?;
            Ok(json!({"jobId": id, "status": status_word(status)}))
        }
    }
}

/// `POST /` (wumai).
#[utoipa::path(post, path = "/", tag = "wumai",
    request_body(content = Object, description = "{\"action\": \"Name\", ...params}; built in: DescribeJob, CancelJob {jobId}; try_max, try_period (s)"),
    params(("x-request-id" = Option<String>, Header, description = "Context id echoed in data.exceptionTag on errors")),
    responses((status = 200, description = "Always 200: {data, retCode, message}; retCode 0 ok, 4000 unknown action, 4100 invalid parameter, 4104 not found, 4105 busy, 4110 validation, 5000 unhandled", body = Object)))]
pub async fn post(
    b: Broker,
    who: Account,
    request_id: Option<String>,
    body: Bytes,
) -> Result<warp::reply::Response, warp::Rejection> {
    let context = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    Ok(match handle(&b, &who, &body).await {
        Ok(data) => ok(data),
        Err((ret, message)) => {
            if ret == code::UNHANDLED {
                tracing::error!(context = %context, error = %message, "wumai request failed");
            }
            err(ret, message, &context)
        }
    })
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // wumai
        warp::path::end()
            .and(warp::post())
            .and(c.caller())
            .and(warp::header::optional::<String>("x-request-id"))
            .and(c.json_body())
            .and_then(post)
            .boxed(),
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
