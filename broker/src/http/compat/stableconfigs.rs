//! The StableConfigs face (SEEDS.md 1.5): `POST /task`, `GET /status/{task_id}`,
//! `DELETE /terminate/{task_id}`, with its status codes. A task is a job of kind `solver`
//! (`sluice-solver`) whose params are the request body; its time limit is `solver_timeout`
//! (90 s, StableConfigs' TIMEOUT) and its result is kept `result_ttl` (StableConfigs: 300 s).
//!
//! | job | answer |
//! | --- | --- |
//! | PENDING, SCHEDULED | 203 `{"status": "Pending", "message": "Please GET /status of task again."}` |
//! | expired (id was issued, hash gone) | 203 `{"status": "Expired", "message"}` |
//! | never issued | 404 `{"status": "Exception", "message"}` |
//! | RUNNING | 202 `{"status": "Progress", "count", "k"}` |
//! | COMPLETED | 200 `{"status": "COMPLETE", "configs", "count", "entropy"}` |
//! | TIMED_OUT | 400 `{"status": "TimedOut", "message"}` |
//! | FAILED with a TBN error, CANCELED (terminated) | 401 `{"status": "TBNException", "message"}` |
//! | FAILED otherwise | 402 `{"status": "Exception", "message"}` |
//!
//! `stableconfigs_words = "code"` answers `Completed` and `Timeout` instead, the words the
//! original server sent (its README says `COMPLETE` and `TimedOut`).

use bytes::Bytes;
use redis::AsyncCommands;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{Job, JobId, Status};

use crate::solver::{Failure, Progress, KIND};

fn reply(status: StatusCode, body: &Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn answer(status: StatusCode, word: &str, message: impl Into<String>) -> warp::reply::Response {
    reply(status, &json!({"status": word, "message": message.into()}))
}

fn from_error(e: &Error) -> warp::reply::Response {
    if e.is_unavailable() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "Exception",
            "redis is unavailable; try again",
        );
    }
    match e {
        Error::Invalid(m) => answer(StatusCode::BAD_REQUEST, "Exception", m.clone()),
        Error::Forbidden(m) => answer(StatusCode::FORBIDDEN, "Exception", m.clone()),
        e => {
            tracing::error!(error = %e, "stableconfigs face request failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Exception",
                "internal error (logged)",
            )
        }
    }
}

/// `POST /task` -> 202 `{"task_id": "N"}`.
pub async fn task(
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let params: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "Exception",
                "body must be a JSON object {\"monomers\": [[...]], \"constraints\"?, \"gen\"?, \"init_k\"?}",
            ))
        }
    };
    if !params.get("monomers").is_some_and(Value::is_array) {
        return Ok(answer(
            StatusCode::BAD_REQUEST,
            "Exception",
            "monomers: required, a list of monomers, each a list of binding sites",
        ));
    }
    if let Some(c) = params.get("counting") {
        if c != "exact" && c != "original" {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "Exception",
                "counting: \"exact\" (the default) or \"original\" (the original's count of self-bound monomers)",
            ));
        }
    }
    let mut job = match b.job_for(&who, KIND, params) {
        Ok(job) => job,
        Err(e) => return Ok(from_error(&e)),
    };
    job.timeout = b.config().solver_timeout;
    // A solve is deterministic: another attempt would fail the same way.
    job.max_attempts = 1;
    Ok(match b.submit(&job).await {
        Ok((id, _)) => reply(StatusCode::ACCEPTED, &json!({"task_id": id.to_string()})),
        Err(e) => from_error(&e),
    })
}

fn task_id(raw: &str) -> Option<JobId> {
    raw.parse::<u64>().ok().filter(|n| *n > 0).map(JobId)
}

/// The answer for a task's job, by its status (see the module table).
pub fn status_answer(job: &Job, code_words: bool) -> warp::reply::Response {
    let Progress { count, k } = Progress::of(job);
    let terminated = || {
        answer(
            StatusCode::UNAUTHORIZED,
            "TBNException",
            format!("Early Termination at count [{count}] min polymers [{k}]."),
        )
    };
    match job.status {
        Status::Pending | Status::Scheduled => answer(
            StatusCode::NON_AUTHORITATIVE_INFORMATION,
            "Pending",
            "Please GET /status of task again.",
        ),
        Status::Running if job.field("stop_requested").is_some() => terminated(),
        Status::Running => reply(
            StatusCode::ACCEPTED,
            &json!({"status": "Progress", "count": count, "k": k}),
        ),
        Status::Completed => {
            let mut body = job.result.clone().unwrap_or_else(|| json!({}));
            body["status"] = json!(if code_words { "Completed" } else { "COMPLETE" });
            reply(StatusCode::OK, &body)
        }
        Status::TimedOut => answer(
            StatusCode::BAD_REQUEST,
            if code_words { "Timeout" } else { "TimedOut" },
            format!(
                "Timeout: no answer within {} (searching configuration {count} at {k} polymers)",
                humantime::format_duration(job.timeout)
            ),
        ),
        Status::Canceled => terminated(),
        Status::Failed => match Failure::of_error(job.error.as_deref().unwrap_or_default()) {
            Failure::Tbn(m) => answer(StatusCode::UNAUTHORIZED, "TBNException", m),
            Failure::Other(m) => answer(StatusCode::PAYMENT_REQUIRED, "Exception", m),
        },
    }
}

/// `GET /status/{task_id}`.
pub async fn status(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let Some(id) = task_id(&raw) else {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            "Exception",
            format!("unknown task {raw:?}"),
        ));
    };
    let code_words = b.config().stableconfigs_words == "code";
    match b.get(id).await {
        Ok(job) if job.executor == KIND && who.may_see(job.field("owner")) => {
            Ok(status_answer(&job, code_words))
        }
        Ok(_) => Ok(answer(
            StatusCode::NOT_FOUND,
            "Exception",
            format!("unknown task {id}"),
        )),
        Err(Error::NotFound(_)) => {
            // Ids are issued in order: one at or below the counter existed and expired.
            let issued: Result<Option<u64>, Error> = async {
                let mut c = b.conn().await?;
                Ok(c.get(b.keys().job_seq()).await?)
            }
            .await;
            Ok(match issued {
                Ok(Some(seq)) if id.0 <= seq => answer(
                    StatusCode::NON_AUTHORITATIVE_INFORMATION,
                    "Expired",
                    format!(
                        "task {id} finished and its result expired (kept {})",
                        humantime::format_duration(b.config().result_ttl)
                    ),
                ),
                Ok(_) => answer(
                    StatusCode::NOT_FOUND,
                    "Exception",
                    format!("unknown task {id}"),
                ),
                Err(e) => from_error(&e),
            })
        }
        Err(e) => Ok(from_error(&e)),
    }
}

/// `DELETE /terminate/{task_id}` -> 200 `{"status": "terminating task: ID"}`; the solver
/// stops within a heartbeat and the status reads as the original's Early Termination.
pub async fn terminate(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let Some(id) = task_id(&raw) else {
        return Ok(answer(
            StatusCode::NOT_FOUND,
            "Exception",
            format!("unknown task {raw:?}"),
        ));
    };
    match b.get(id).await {
        Ok(job) if job.executor == KIND && who.may_act(job.field("owner")) => {}
        Ok(_) | Err(Error::NotFound(_)) => {
            return Ok(answer(
                StatusCode::NOT_FOUND,
                "Exception",
                format!("unknown task {id}"),
            ))
        }
        Err(e) => return Ok(from_error(&e)),
    }
    Ok(match b.stop(id).await {
        // A finished task is left as it is; the original answered the same.
        Ok(_) | Err(Error::IllegalTransition { .. }) => reply(
            StatusCode::OK,
            &json!({"status": format!("terminating task: {id}")}),
        ),
        Err(Error::Locked { .. }) => answer(
            StatusCode::CONFLICT,
            "Exception",
            format!("task {id} is locked"),
        ),
        Err(e) => from_error(&e),
    })
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // sc task
        warp::path!("task")
            .and(warp::post())
            .and(c.caller())
            .and(c.json_body())
            .and_then(task)
            .boxed(),
        // sc status
        warp::path!("status" / String)
            .and(warp::get())
            .and(c.caller())
            .and_then(status)
            .boxed(),
        // sc terminate
        warp::path!("terminate" / String)
            .and(warp::delete())
            .and(c.caller())
            .and_then(terminate)
            .boxed(),
    ]
}
