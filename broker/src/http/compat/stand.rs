//! The Lemonade Stand face (SEEDS.md 2.1-2.4): `POST /jobs` with Stand's body,
//! `GET /jobs/{id}`, `POST /jobs/{id}/stop`, `GET|POST /jobs/{id}/lock`,
//! `POST /jobs/{id}/unlock`, answered in Stand's words and its JobDetail schema.
//!
//! Stand's clients send `X-Auth-Token` (Stand's auth header); a request that carries it gets
//! this face on the paths Stand and the native API share, any other gets the native one.
//! The token is an API key like a bearer one. Errors are Stand's
//! `{"status": "ERROR", "message", "code"}`.

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{Job, JobId, Status};

/// Stand's status word for a job (StatusExecution): WAITING, RUNNING, COMPLETED, ERROR,
/// CANCELED or INTERRUPTED.
pub fn status_word(job: &Job) -> &'static str {
    match job.status {
        // Waiting again after a lost lease or a failed attempt: Stand's INTERRUPTED.
        Status::Pending | Status::Scheduled if job.attempt > 0 || job.lost > 0 => "INTERRUPTED",
        Status::Pending | Status::Scheduled => "WAITING",
        // Stand cancels at once; Sluice's executor confirms a moment later.
        Status::Running if job.field("stop_requested").is_some() => "CANCELED",
        Status::Running => "RUNNING",
        Status::Completed => "COMPLETED",
        Status::Failed | Status::TimedOut => "ERROR",
        Status::Canceled => "CANCELED",
    }
}

fn status_text(job: &Job) -> String {
    match status_word(job) {
        "WAITING" => "Job is allocating computer resources. Please wait".into(),
        "INTERRUPTED" => format!(
            "Attempt {} of {} was interrupted; waiting to run again",
            job.attempt, job.max_attempts
        ),
        "CANCELED" if job.status == Status::Running => {
            "Stop requested; the executor is stopping the job".into()
        }
        "ERROR" => job.error.clone().unwrap_or_default(),
        word => format!("Job is {}", word.to_lowercase()),
    }
}

/// A stored JSON field of the job, parsed.
fn json_field(job: &Job, f: &str) -> Option<Value> {
    job.field(f).and_then(|v| serde_json::from_str(v).ok())
}

/// A stored id as Stand wrote it: a number when it is one.
fn id_value(v: &str) -> Value {
    v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n))
}

/// Drops the null members of an object and of the objects inside it, as Stand's schemas did
/// (`remove_skip_values`).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Stand's JobDetail for a Sluice job: `results` a list, `cluster` and `workflow` objects,
/// `user {id, login, name}`, no nulls. `cluster_name` is the job's cluster's, when known.
pub fn job_detail(job: &Job, cluster_name: Option<&str>) -> Value {
    let workflow = job
        .field("stand_workflow")
        .or_else(|| job.field("workflow"))
        .map(|id| json!({"id": id_value(id), "name": job.field("stand_workflow_name")}));
    let cluster = job
        .field("cluster")
        .map(|id| json!({"id": id_value(id), "name": cluster_name}));
    let owner = job.field("owner");
    let user = json_field(job, "stand_user")
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"login": owner, "name": owner}));
    let results: Vec<Value> = job
        .result
        .iter()
        .map(|r| json!({"id": 1, "type": "OTHER", "title": "Result", "content": r.to_string()}))
        .collect();
    without_nulls(json!({
        "id": job.id,
        "name": job.field("stand_name").map_or_else(|| format!("{} job {}", job.executor, job.id), String::from),
        "type": job.field("stand_type").unwrap_or("NORMAL"),
        "status": status_word(job),
        "status_text": status_text(job),
        "created": job.field("created"),
        "started": job.field("started"),
        "finished": job.field("finished"),
        "workflow": workflow,
        "cluster": cluster,
        "user": user,
        "steps": json_field(job, "stand_steps").filter(Value::is_array).unwrap_or_else(|| json!([])),
        "exception_stack": job.error,
        "results": results,
    }))
}

/// The JobDetail of `job`, with its cluster's name looked up.
async fn detail(b: &Broker, job: &Job) -> Value {
    let name = match job.field("cluster").and_then(|c| c.parse::<u64>().ok()) {
        Some(id) => b.cluster(id).await.ok().map(|c| c.name),
        None => None,
    };
    job_detail(job, name.as_deref())
}

/// Stand's `POST /jobs` body: the job's name and type, its cluster (`{"id": N}` or N), the
/// Lemonade workflow it runs (`{"id", "name", ...}`), its steps and user. Stand's other
/// fields (`app_configs`, `persist`) travel in the params; `executor` (default `spark`) and
/// `params` are Sluice's additions.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    /// The job's name.
    pub name: Option<String>,
    /// Stand's job type (NORMAL, APP, BATCH, ...).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `{"id": N}` or N.
    pub cluster: Value,
    /// The Lemonade workflow: `{"id", "name", ...}`.
    #[serde(default)]
    pub workflow: Value,
    /// Stand's steps, one per workflow task.
    #[serde(default)]
    pub steps: Vec<Value>,
    /// The user, as Stand's UI sends it (`{"id", "login", "name"}`).
    pub user: Option<Value>,
    /// Stand's application settings, passed to the executor.
    pub app_configs: Option<Value>,
    /// Stand's persist flag, passed to the executor.
    pub persist: Option<Value>,
    /// The Sluice executor kind that runs it (default `spark`).
    pub executor: Option<String>,
    /// More params for the executor (`sluice-spark` wants `app`).
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
}

/// Refuses a Stand body: 400 INVALID_DATA naming what is wrong.
fn invalid(message: impl Into<String>) -> warp::reply::Response {
    error(StatusCode::BAD_REQUEST, "INVALID_DATA", message)
}

/// `POST /jobs` (Stand): 201 with the JobDetail; the job is announced on `start` with its
/// workflow's id, as Stand did.
pub async fn create(
    b: Broker,
    who: Account,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let req: CreateBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Ok(invalid(format!("body: {e}"))),
    };
    let cluster = match &req.cluster {
        Value::Number(n) => n.as_u64(),
        Value::Object(o) => o.get("id").and_then(Value::as_u64),
        _ => None,
    };
    let Some(cluster) = cluster.filter(|c| *c > 0) else {
        return Ok(invalid(
            "cluster: required, {\"id\": N} with N a positive integer",
        ));
    };
    let workflow_id = match req.workflow.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => Some(n.to_string()),
        Some(_) => return Ok(invalid("workflow.id: must be a positive integer")),
    };
    let mut params = req.params;
    for (name, value) in [
        ("workflow", Some(req.workflow.clone())),
        ("app_configs", req.app_configs),
        ("persist", req.persist),
    ] {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            params.insert(name.into(), v);
        }
    }
    let kind = req.executor.unwrap_or_else(|| "spark".into());
    let mut job = match b.face_job("stand", &who, &kind, Value::Object(params)) {
        Ok(job) => job,
        Err(Error::Forbidden(m)) => return Ok(error(StatusCode::FORBIDDEN, "FORBIDDEN", m)),
        Err(e) => return Ok(from_error(&e)),
    };
    if let Err(e) = b.attach(&mut job, Some(&cluster.to_string()), &[], None) {
        return Ok(invalid(e.to_string()));
    }
    let text = |v: &Value| v.to_string();
    for (field, value) in [
        ("stand_name", req.name),
        ("stand_type", req.kind),
        ("stand_workflow", workflow_id),
        (
            "stand_workflow_name",
            req.workflow
                .get("name")
                .and_then(Value::as_str)
                .map(String::from),
        ),
        (
            "stand_user",
            req.user.as_ref().filter(|u| u.is_object()).map(text),
        ),
        ("stand_steps", Some(text(&Value::Array(req.steps)))),
    ] {
        if let Some(v) = value {
            job.extra.push((field.into(), v));
        }
    }
    if let Err(e) = Broker::validate(&job) {
        return Ok(invalid(e.to_string()));
    }
    Ok(match b.submit(&job).await {
        Ok((id, _)) => match b.get(id).await {
            Ok(job) => reply(StatusCode::CREATED, &detail(&b, &job).await),
            Err(e) => from_error(&e),
        },
        Err(Error::Cluster(why)) => error(
            StatusCode::BAD_REQUEST,
            if why == "CLUSTER_DISABLED" {
                "CLUSTER_DISABLED"
            } else {
                "INVALID_CLUSTER"
            },
            Error::Cluster(why.clone()).to_string(),
        ),
        Err(e) => from_error(&e),
    })
}

fn reply(status: StatusCode, body: &Value) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Stand's error reply.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> warp::reply::Response {
    reply(
        status,
        &json!({"status": "ERROR", "message": message.into(), "code": code}),
    )
}

fn not_found() -> warp::reply::Response {
    reply(
        StatusCode::NOT_FOUND,
        &json!({"status": "ERROR", "message": "Not found"}),
    )
}

/// Any other broker error, in Stand's shape.
fn from_error(e: &Error) -> warp::reply::Response {
    match e {
        Error::NotFound(_) => not_found(),
        e if e.is_unavailable() => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "redis is unavailable; try again",
        ),
        e => {
            tracing::error!(error = %e, "stand face request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error",
            )
        }
    }
}

/// The job if the caller may see it (the native rule: another owner's job is not found).
async fn visible(b: &Broker, who: &Account, id: JobId) -> Result<Job, warp::reply::Response> {
    crate::http::access::visible(b, who, id)
        .await
        .map_err(|e| from_error(&e))
}

/// The job if the caller may steer it (its owner or an admin); any other is not found.
async fn steerable(b: &Broker, who: &Account, id: JobId) -> Result<Job, warp::reply::Response> {
    crate::http::access::steerable(b, who, id)
        .await
        .map_err(|e| from_error(&e))
}

/// Who holds a lock, in Stand's message: "<user.name> @ <computer> since <date>".
fn holder_text(job: &Job) -> String {
    let holder: Value = job
        .field("locked")
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or(Value::Null);
    let name = holder["user"]["name"]
        .as_str()
        .or_else(|| holder["user"].as_str())
        .or_else(|| job.field("locked"))
        .unwrap_or("someone");
    let computer = holder["computer"].as_str().unwrap_or("?");
    let since = holder["date"]
        .as_str()
        .or_else(|| job.field("locked_at"))
        .unwrap_or("?");
    format!("{name} @ {computer} since {since}")
}

/// `GET /jobs/{id}` (Stand): the JobDetail.
pub async fn get(id: JobId, b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    Ok(match visible(&b, &who, id).await {
        Ok(job) => reply(StatusCode::OK, &detail(&b, &job).await),
        Err(r) => r,
    })
}

/// `POST /jobs/{id}/stop` (Stand): allowed from WAITING, PENDING, RUNNING and INTERRUPTED.
pub async fn stop(id: JobId, b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    let job = match steerable(&b, &who, id).await {
        Ok(job) => job,
        Err(r) => return Ok(r),
    };
    if job.status.is_terminal() {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            "ALREADY_FINISHED",
            format!("Job {id} is already finished ({})", status_word(&job)),
        ));
    }
    Ok(match b.stop(id).await {
        Ok(_) => match b.get(id).await {
            Ok(job) => reply(
                StatusCode::OK,
                &json!({"status": "OK", "message": "Deleted", "data": detail(&b, &job).await}),
            ),
            Err(e) => from_error(&e),
        },
        Err(Error::Locked { .. }) => error(
            StatusCode::CONFLICT,
            "LOCKED",
            format!("Job {id} is locked by {}", holder_text(&job)),
        ),
        Err(Error::IllegalTransition { status, .. }) => error(
            StatusCode::BAD_REQUEST,
            "ALREADY_FINISHED",
            format!("Job {id} is already finished ({status})"),
        ),
        Err(e) => from_error(&e),
    })
}

/// Body of Stand's `POST /jobs/{id}/lock`.
#[derive(Debug, Deserialize)]
pub struct LockBody {
    /// The user, as Stand's UI sends it (`{"id", "login", "name"}`).
    pub user: Value,
    /// The computer the user edits from.
    #[serde(default)]
    pub computer: String,
}

/// `GET|POST /jobs/{id}/lock` (Stand). POST locks with `{user, computer}`; 409
/// ALREADY_LOCKED names the holder. GET answers the lock, or null.
pub async fn lock(
    id: JobId,
    method: warp::http::Method,
    b: Broker,
    who: Account,
    body: bytes::Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let job = if method == warp::http::Method::GET {
        visible(&b, &who, id).await
    } else {
        steerable(&b, &who, id).await
    };
    let job = match job {
        Ok(job) => job,
        Err(r) => return Ok(r),
    };
    if method == warp::http::Method::GET {
        let lock = job
            .field("locked")
            .map(|h| serde_json::from_str(h).unwrap_or_else(|_| json!(h)))
            .unwrap_or(Value::Null);
        return Ok(reply(
            StatusCode::OK,
            &json!({"status": "OK", "message": "", "lock": lock}),
        ));
    }
    let req: LockBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                format!("body must be {{\"user\": {{...}}, \"computer\": \"...\"}}: {e}"),
            ))
        }
    };
    let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let holder = json!({"user": req.user, "computer": req.computer, "date": date}).to_string();
    Ok(match b.lock(id, &holder, false).await {
        Ok(_) => reply(
            StatusCode::OK,
            &json!({"status": "OK", "message": "Locked"}),
        ),
        Err(Error::Locked { .. }) => {
            let job = b.get(id).await.unwrap_or(job);
            error(
                StatusCode::CONFLICT,
                "ALREADY_LOCKED",
                format!("Job {id} is locked by {}", holder_text(&job)),
            )
        }
        Err(e) => from_error(&e),
    })
}

/// `POST /jobs/{id}/unlock` (Stand left it a stub; here it works): frees the lock.
pub async fn unlock(
    id: JobId,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    if let Err(r) = steerable(&b, &who, id).await {
        return Ok(r);
    }
    Ok(match b.unlock(id).await {
        Ok(_) => reply(
            StatusCode::OK,
            &json!({"status": "OK", "message": "Unlocked"}),
        ),
        Err(e) => from_error(&e),
    })
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // stand create
        warp::path!("jobs")
            .and(warp::post())
            .and(stand())
            .and(c.caller())
            .and(c.json_body())
            .and_then(create)
            .boxed(),
        // stand get
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path::end())
            .and(warp::get())
            .and(stand())
            .and(c.caller())
            .and_then(get)
            .boxed(),
        // stand stop
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path!("stop"))
            .and(warp::post())
            .and(stand())
            .and(c.caller())
            .and_then(stop)
            .boxed(),
        // stand lock
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path!("lock"))
            .and(warp::get().or(warp::post()).unify())
            .and(stand())
            .and(warp::method())
            .and(c.caller())
            .and(c.action_body())
            .and_then(lock)
            .boxed(),
        // stand unlock
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path!("unlock"))
            .and(warp::post())
            .and(stand())
            .and(c.caller())
            .and_then(unlock)
            .boxed(),
    ]
}

/// Stand's face: the same paths as the native API, chosen by Stand's X-Auth-Token header.
fn stand() -> impl warp::Filter<Extract = (), Error = warp::Rejection> + Clone {
    use warp::Filter;
    warp::header::<String>("x-auth-token")
        .map(|_| ())
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: Status, attempt: u32, fields: &[(&str, &str)]) -> Job {
        let mut j = Job {
            id: JobId(7),
            executor: "spark".into(),
            status,
            params: Value::Null,
            result: None,
            error: None,
            progress: None,
            attempt,
            max_attempts: 3,
            lost: 0,
            backoff: std::time::Duration::ZERO,
            timeout: std::time::Duration::ZERO,
            result_ttl: std::time::Duration::ZERO,
            fields: Default::default(),
        };
        for (k, v) in fields {
            j.fields.insert((*k).into(), (*v).into());
        }
        j
    }

    #[test]
    fn sluice_statuses_in_stands_words() {
        assert_eq!(status_word(&job(Status::Pending, 0, &[])), "WAITING");
        assert_eq!(status_word(&job(Status::Scheduled, 0, &[])), "WAITING");
        assert_eq!(status_word(&job(Status::Pending, 1, &[])), "INTERRUPTED");
        assert_eq!(status_word(&job(Status::Running, 1, &[])), "RUNNING");
        let stopping = job(Status::Running, 1, &[("stop_requested", "t")]);
        assert_eq!(status_word(&stopping), "CANCELED");
        assert_eq!(status_word(&job(Status::Completed, 1, &[])), "COMPLETED");
        assert_eq!(status_word(&job(Status::Failed, 3, &[])), "ERROR");
        assert_eq!(status_word(&job(Status::TimedOut, 3, &[])), "ERROR");
        assert_eq!(status_word(&job(Status::Canceled, 0, &[])), "CANCELED");
    }

    #[test]
    fn lock_holder_in_stands_message() {
        let held =
            r#"{"user": {"name": "Ana"}, "computer": "lab-3", "date": "2026-11-23T10:00:00Z"}"#;
        let j = job(Status::Pending, 0, &[("locked", held)]);
        assert_eq!(holder_text(&j), "Ana @ lab-3 since 2026-11-23T10:00:00Z");
        let native = job(
            Status::Pending,
            0,
            &[("locked", "ops"), ("locked_at", "2026-11-23T10:00:00.000Z")],
        );
        assert_eq!(
            holder_text(&native),
            "ops @ ? since 2026-11-23T10:00:00.000Z"
        );
    }
}
