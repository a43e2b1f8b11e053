//! The StableConfigs face (SEEDS.md 1.5): `POST /task`, `GET /status/{task_id}`,
//! `DELETE /terminate/{task_id}`, with its status codes. A task is a job of kind `solver`
//! (`sluice-solver`) whose params are the request body; its time limit is `solver_timeout`
//! (90 s, StableConfigs' TIMEOUT) and its result is kept as the `stableconfigs` retention says
//! (300 s, as StableConfigs kept it).
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
//!
//! Like the original, the face can be open to callers without a key
//! (`stableconfigs_anonymous`): they act as the owner `anonymous` (they see and terminate
//! anonymous tasks only), at most `stableconfigs_rate` new tasks per address per minute (429)
//! and none while `stableconfigs_max_queued` tasks wait (503). Its browser front-end called it
//! cross-origin: `cors_origins` lists the origins allowed (preflight included).

use bytes::Bytes;
use redis::AsyncCommands;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::{Account, Role};
use crate::client::Broker;
use crate::error::Error;
use crate::job::{Job, JobId, Status};

use crate::http::server::ClientAddr;
use crate::solver::{Failure, Progress, KIND};
use warp::filters::BoxedFilter;
use warp::Filter;

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

/// The owner of tasks sent without a key to an open face.
pub const ANONYMOUS: &str = "anonymous";

/// The account of a caller without a key when the face is open: a client of the solver only.
fn anonymous() -> Account {
    Account {
        owner: ANONYMOUS.into(),
        role: Role::Client,
        executors: Some(vec![KIND.into()]),
        key_sha: None,
    }
}

/// Refuses an anonymous task beyond the address's rate or the queue cap (None: go on).
async fn anonymous_bounds(
    b: &Broker,
    addr: Option<ClientAddr>,
) -> Result<Option<warp::reply::Response>, Error> {
    let c = b.config();
    let window = crate::scripts::unix_ms(std::time::SystemTime::now()) / 60_000;
    let from = addr.map_or_else(|| "unknown".to_string(), |a| a.0.ip().to_string());
    let key = b.keys().rate("stableconfigs", &from, window);
    let mut conn = b.conn().await?;
    let (sent, waiting): (u64, u64) = redis::pipe()
        .incr(&key, 1)
        .expire(&key, 120)
        .ignore()
        .llen(b.keys().queue(KIND))
        .query_async(&mut *conn)
        .await?;
    if sent > u64::from(c.stableconfigs_rate) {
        return Ok(Some(answer(
            StatusCode::TOO_MANY_REQUESTS,
            "Exception",
            format!(
                "at most {} tasks a minute from one address without a key; try again later",
                c.stableconfigs_rate
            ),
        )));
    }
    if waiting >= u64::from(c.stableconfigs_max_queued) {
        return Ok(Some(answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "Exception",
            format!("{waiting} tasks are waiting; try again later"),
        )));
    }
    Ok(None)
}

/// `POST /task` -> 202 `{"task_id": "N"}`.
#[utoipa::path(post, path = "/task", tag = "stableconfigs",
    request_body(content = Object, description = "{\"monomers\": [[site, ...], ...], \"constraints\"?, \"gen\"?, \"init_k\"?, \"counting\"?}"),
    responses((status = 202, description = "{\"task_id\": \"N\"}", body = Object),
              (status = 400, description = "{\"status\": \"Exception\", \"message\"}", body = Object),
              (status = 429, description = "Anonymous caller over stableconfigs_rate", body = Object),
              (status = 503, description = "Anonymous tasks over stableconfigs_max_queued, or Redis away", body = Object)))]
pub async fn task(
    b: Broker,
    who: Account,
    addr: Option<ClientAddr>,
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
    if who.key_sha.is_none() && who.owner == ANONYMOUS {
        match anonymous_bounds(&b, addr).await {
            Ok(None) => {}
            Ok(Some(refused)) => return Ok(refused),
            Err(e) => return Ok(from_error(&e)),
        }
    }
    let mut job = match b.face_job("stableconfigs", &who, KIND, params) {
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
#[utoipa::path(get, path = "/status/{task_id}", tag = "stableconfigs",
    params(("task_id" = String, Path, description = "A task_id of POST /task")),
    responses((status = 200, description = "COMPLETE: configs, count, entropy", body = Object),
              (status = 202, description = "Progress: count, k", body = Object),
              (status = 203, description = "Pending, or Expired", body = Object),
              (status = 400, description = "TimedOut", body = Object),
              (status = 401, description = "TBNException (invalid TBN, or terminated)", body = Object),
              (status = 402, description = "Exception (any other failure)", body = Object),
              (status = 404, description = "Never issued (or not yours)", body = Object)))]
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
                        humantime::format_duration(
                            b.config().retention(Some("stableconfigs"), KIND)
                        )
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
#[utoipa::path(delete, path = "/terminate/{task_id}", tag = "stableconfigs",
    params(("task_id" = String, Path, description = "A task_id of POST /task")),
    responses((status = 200, description = "{\"status\": \"terminating task: N\"}", body = Object),
              (status = 404, description = "Never issued (or not yours)", body = Object)))]
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

/// The caller: its key's account; without a key, the anonymous account when the face is
/// open, else 401 as on every other route.
fn caller(c: &crate::http::Ctx) -> BoxedFilter<(Broker, Account)> {
    let open = c.broker.config().stableconfigs_anonymous;
    c.broker()
        .and(c.who_or_none())
        .and_then(move |b: Broker, who: Option<Account>| async move {
            match who {
                Some(who) => Ok((b, who)),
                None if open => Ok((b, anonymous())),
                None => Err(warp::reject::custom(
                    crate::http::errors::Denied::Unauthenticated,
                )),
            }
        })
        .untuple_one()
        .boxed()
}

/// The `Access-Control-Allow-Origin` value for a request's `Origin`, when `cors_origins`
/// allows it.
fn allowed_origin(b: &Broker, origin: Option<&str>) -> Option<String> {
    let origin = origin?;
    let list = &b.config().cors_origins;
    if list.iter().any(|o| o == "*") {
        Some("*".into())
    } else {
        list.iter().any(|o| o == origin).then(|| origin.to_string())
    }
}

/// Adds the CORS headers a browser needs to read `r` from `origin`'s page.
fn with_cors(
    b: &Broker,
    origin: Option<&str>,
    mut r: warp::reply::Response,
) -> warp::reply::Response {
    if let Some(allow) = allowed_origin(b, origin) {
        let h = r.headers_mut();
        if let Ok(v) = warp::http::HeaderValue::from_str(&allow) {
            h.insert("access-control-allow-origin", v);
        }
        h.insert("vary", warp::http::HeaderValue::from_static("Origin"));
    }
    r
}

/// `OPTIONS` on a face path: the preflight of a cross-origin call; 204 with the methods and
/// headers allowed for a listed origin, 403 for another.
async fn preflight(b: Broker, origin: Option<String>) -> Result<warp::reply::Response, Rejection> {
    if allowed_origin(&b, origin.as_deref()).is_none() {
        return Ok(answer(
            StatusCode::FORBIDDEN,
            "Exception",
            "this origin may not call the API from a browser (cors_origins)",
        ));
    }
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
        (
            "access-control-allow-headers",
            "content-type, authorization, x-auth-token",
        ),
        ("access-control-max-age", "600"),
    ] {
        h.insert(name, warp::http::HeaderValue::from_static(value));
    }
    // The origin and Vary headers every answer of this face carries.
    Ok(with_cors(&b, origin.as_deref(), r))
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    let origin = || warp::header::optional::<String>("origin");
    let cors = {
        let b = c.broker.clone();
        move |r: warp::reply::Response, origin: Option<String>| with_cors(&b, origin.as_deref(), r)
    };
    vec![
        // sc task
        warp::path!("task")
            .and(warp::post())
            .and(caller(c))
            .and(warp::ext::optional::<ClientAddr>())
            .and(c.json_body())
            .and_then(task)
            .and(origin())
            .map(cors.clone())
            .boxed(),
        // sc status
        warp::path!("status" / String)
            .and(warp::get())
            .and(caller(c))
            .and_then(status)
            .and(origin())
            .map(cors.clone())
            .boxed(),
        // sc terminate
        warp::path!("terminate" / String)
            .and(warp::delete())
            .and(caller(c))
            .and_then(terminate)
            .and(origin())
            .map(cors)
            .boxed(),
        // sc preflight
        warp::path("task")
            .and(warp::path::end())
            .or(warp::path("status")
                .and(warp::path::param::<String>())
                .and(warp::path::end())
                .map(|_| ())
                .untuple_one())
            .unify()
            .or(warp::path("terminate")
                .and(warp::path::param::<String>())
                .and(warp::path::end())
                .map(|_| ())
                .untuple_one())
            .unify()
            .and(warp::options())
            .and(c.broker())
            .and(origin())
            .and_then(preflight)
            .boxed(),
    ]
}
