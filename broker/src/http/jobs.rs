//! The native `/jobs` API: each handler validates, checks the caller may touch the job, and
//! runs one broker call (one Lua script for every state change).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::{Account, Role};
use crate::client::{Broker, ListFilter};
use crate::error::Error;
use crate::http::access::{inputs_visible, steerable, visible};
use crate::http::parse_body;
use crate::job::{Job, JobId, NewJob, Status};

/// The body of `POST /jobs`. Durations are humantime strings ("90s", "5m").
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Executor kind.
    pub executor: String,
    /// Parameters for the executor (any JSON).
    #[serde(default)]
    #[schema(value_type = Value)]
    pub params: Value,
    /// Not before this RFC 3339 time.
    pub run_at: Option<String>,
    /// Not before this long from now.
    pub delay: Option<String>,
    /// Per-attempt time limit.
    pub timeout: Option<String>,
    /// Attempts before failing for good.
    pub max_attempts: Option<u32>,
    /// Base retry delay.
    pub backoff: Option<String>,
    /// How long the finished job is kept.
    pub result_ttl: Option<String>,
    /// Stand cluster id: a number, as Stand sends it (`"cluster": 1`), or its text.
    #[serde(default, deserialize_with = "crate::clusters::id_text")]
    #[schema(value_type = Option<u64>)]
    pub cluster: Option<String>,
    /// Files the job starts with: `{name, url}` or `{name, job, artifact}`, stored as its
    /// artifacts before it runs.
    #[serde(default)]
    pub inputs: Vec<crate::inputs::Input>,
    /// POSTed `{"pipeline_run_uuid", "state"}` on each state change (best effort).
    pub callback_url: Option<String>,
    /// Unique while active: while a job of this kind with this key is PENDING, SCHEDULED or
    /// RUNNING, a submit with the key answers that job (200) instead of making another.
    pub unique_key: Option<String>,
    /// 0 (the default) to 9: claims take the highest priority first, FIFO within one.
    pub priority: Option<u8>,
    /// Jobs of this kind sharing a concurrency key run at most `concurrency_limit` at once
    /// (e.g. a customer's id); the others wait for a slot without holding back other keys.
    pub concurrency_key: Option<String>,
    /// How many jobs of `concurrency_key` may run at once (1-100 000).
    pub concurrency_limit: Option<u32>,
    /// Jobs of this kind sharing a rate key start at most `rate_limit` times per window
    /// (e.g. an API account's id); the others wait, in order, for the window.
    pub rate_key: Option<String>,
    /// "N/period": at most N starts of `rate_key` in any window of that length ("10/1s",
    /// "100/1m"; N 1-100 000, period 1 ms-1 day).
    pub rate_limit: Option<String>,
}

fn duration(field: &str, v: &Option<String>, default: Duration) -> Result<Duration, Error> {
    Ok(crate::job::parse_optional_duration(field, v.as_deref())?.unwrap_or(default))
}

impl SubmitBody {
    /// The submit request of `who`, with config defaults for what the body leaves out. The
    /// params move into the job (a large body is not held twice).
    ///
    /// # Errors
    /// [`Error::Forbidden`] for a kind the key may not submit to; [`Error::Invalid`] for a
    /// bad field.
    pub fn to_job(&mut self, b: &Broker, who: &Account) -> Result<NewJob, Error> {
        let mut job = b.job_for(who, &self.executor, std::mem::take(&mut self.params))?;
        job.timeout = duration("timeout", &self.timeout, job.timeout)?;
        job.backoff = duration("backoff", &self.backoff, job.backoff)?;
        job.result_ttl = duration("result_ttl", &self.result_ttl, job.result_ttl)?;
        job.max_attempts = self.max_attempts.unwrap_or(job.max_attempts);
        job.run_at = match (&self.run_at, &self.delay) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid("give run_at or delay, not both".into()))
            }
            (Some(t), None) => Some(humantime::parse_rfc3339_weak(t).map_err(|e| {
                Error::Invalid(format!("run_at: {t:?} is not an RFC 3339 time ({e})"))
            })?),
            (None, Some(_)) => {
                Some(SystemTime::now() + duration("delay", &self.delay, Duration::ZERO)?)
            }
            (None, None) => None,
        };
        b.attach(
            &mut job,
            self.cluster.as_deref(),
            &self.inputs,
            self.callback_url.as_deref(),
        )?;
        job.options(crate::job::SubmitOptions {
            priority: self.priority,
            unique_key: self.unique_key.take(),
            concurrency_key: self.concurrency_key.take(),
            concurrency_limit: self.concurrency_limit,
            rate_key: self.rate_key.take(),
            rate_limit: self.rate_limit.as_deref().map(str::parse).transpose()?,
        });
        Ok(job)
    }
}

/// What `POST /jobs` takes, for the OpenAPI document: one submit body, or an array of them
/// (a bulk submit). The handler reads the JSON itself.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SubmitRequest {
    /// One job.
    One(Box<SubmitBody>),
    /// A bulk submit (at most 1 000).
    Many(Vec<SubmitBody>),
}

/// One outcome of a bulk submit: the job, or why this item was refused.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum BulkOutcome {
    /// Made now, or before (`created` false).
    Made(crate::Submitted),
    /// Refused.
    Refused(crate::http::openapi::ErrorBody),
}

/// The answer for one job made before (an Idempotency-Key replay, an active unique_key's
/// job): `status` is null when that job has since expired.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Before {
    /// The job.
    pub id: JobId,
    /// Its status now.
    pub status: Option<Status>,
}

/// The 200 answer of `POST /jobs`: a job made before (one body), or a bulk submit's outcomes.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SubmitReply {
    /// An Idempotency-Key replay or an active unique_key's job.
    Before(Before),
    /// `{"jobs": [...]}`, in the order of the request.
    Bulk {
        /// One per item.
        jobs: Vec<BulkOutcome>,
    },
}

/// Most jobs in one bulk `POST /jobs` (a JSON array).
pub const MAX_BULK: usize = 1000;

/// The answer for a job made now (201) or before (200: an idempotent replay or the active
/// job of a unique key), with its Location.
fn submitted(s: crate::Submitted) -> warp::reply::Response {
    let code = if s.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = warp::reply::with_status(
        warp::reply::json(&Before {
            id: s.id,
            status: s.status,
        }),
        code,
    );
    warp::reply::with_header(reply, "location", format!("/jobs/{}", s.id)).into_response()
}

/// One item of a bulk submit: the job made (or made before), or why not.
async fn bulk_item(
    b: &Broker,
    who: &Account,
    item: Value,
    key: Option<String>,
) -> Result<NewJob, Error> {
    let text = item.to_string();
    let mut req: SubmitBody =
        serde_json::from_value(item).map_err(|e| Error::Invalid(format!("body: {e}")))?;
    let mut job = req.to_job(b, who)?;
    inputs_visible(b, who, &req.inputs).await?;
    if let Some(k) = &key {
        job.idempotent(k, text.as_bytes());
    }
    Ok(job)
}

/// `POST /jobs` with a JSON array: each item a submit body, checked and made on its own (at
/// most [`MAX_BULK`], all within `max_content_length`); 200 `{"jobs": [...]}`, one outcome
/// per item in order: `{id, status, created}` or `{error: {code, message}}`; 400 (with the
/// same `jobs`) when no item was accepted. An `Idempotency-Key` covers the whole request:
/// item i uses `<key>#<i>`.
async fn submit_bulk(
    b: &Broker,
    who: &Account,
    items: Vec<Value>,
    key: Option<&str>,
) -> Result<warp::reply::Response, Error> {
    if items.len() > MAX_BULK {
        return Err(Error::TooLarge(format!(
            "{} jobs in one request; at most {MAX_BULK}",
            items.len()
        )));
    }
    let mut jobs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        jobs.push(bulk_item(b, who, item, key.map(|k| format!("{k}#{i}"))).await);
    }
    let out: Vec<Value> = b
        .submit_bulk(jobs)
        .await?
        .into_iter()
        .map(|made| match made {
            Ok(s) => json!(s),
            Err(e) => crate::http::errors::body(&e),
        })
        .collect();
    if out.iter().all(|o| o.get("error").is_some()) {
        // Nothing accepted (or nothing sent): a refusal, with each item's reason.
        let body = json!({"error": {"code": "bad_request",
            "message": "no job of this bulk submit was accepted (see jobs)"}, "jobs": out});
        return Ok(
            warp::reply::with_status(warp::reply::json(&body), StatusCode::BAD_REQUEST)
                .into_response(),
        );
    }
    Ok(warp::reply::json(&json!({"jobs": out})).into_response())
}

/// `POST /jobs` -> 201 `{id, status}` with a Location header; 200 with the job made before
/// for a repeated `Idempotency-Key` (same body) or an active `unique_key`; 409 for an
/// `Idempotency-Key` reused with another body. A JSON array is a bulk submit.
#[utoipa::path(post, path = "/jobs", tag = "jobs", request_body = SubmitRequest,
    params(("idempotency-key" = Option<String>, Header, description = "Retrying with the same key and body within 24 h answers the job made the first time (200); another body is 409. Per owner; 1-256 bytes.")),
    responses(
        (status = 201, description = "Created; Location: /jobs/{id}", body = crate::http::openapi::Moved),
        (status = 200, description = "Made before (Idempotency-Key with the same body, or an active unique_key); or the outcomes of a bulk submit (an array body)", body = SubmitReply),
        (status = 409, description = "The Idempotency-Key was used with another body", body = crate::http::openapi::ErrorBody),
        (status = 400, description = "Malformed body", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid key", body = crate::http::openapi::ErrorBody),
        (status = 403, description = "The key may not submit to this executor kind", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "Body over max_content_length", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis unavailable", body = crate::http::openapi::ErrorBody)))]
pub async fn submit(
    b: Broker,
    who: Account,
    key: Option<String>,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    if body.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[') {
        let items: Vec<Value> = parse_body(&body)?;
        drop(body);
        return Ok(submit_bulk(&b, &who, items, key.as_deref()).await?);
    }
    let mut req: SubmitBody = parse_body(&body)?;
    let mut job = req.to_job(&b, &who)?;
    inputs_visible(&b, &who, &req.inputs).await?;
    if let Some(k) = &key {
        job.idempotent(k, &body);
    }
    drop(body);
    Ok(submitted(b.submit_once(&job).await?))
}

/// `POST /jobs` as `multipart/form-data`: a part `job` (the JSON body of a plain submit)
/// first, then each file as a part with a filename, stored as the job's artifact of that
/// name. The job is claimable only once every file is stored; a failed upload cancels it.
/// 201 `{id, status, files: [{name, size}]}` with a Location header.
pub async fn submit_with_files(
    b: Broker,
    who: Account,
    form: warp::multipart::FormData,
) -> Result<warp::reply::Response, Rejection> {
    let (b, who) = (&b, &who);
    let done = crate::http::uploads::submit(b, form, "job", |body| async move {
        let mut req: SubmitBody = parse_body(&body)?;
        let job = req.to_job(b, who)?;
        inputs_visible(b, who, &req.inputs).await?;
        Ok((b.submit_held(&job).await?, job.run_at))
    })
    .await?;
    let files: Vec<Value> = done
        .files
        .stored()
        .iter()
        .map(|(name, size)| json!({"name": name, "size": size}))
        .collect();
    let body = json!({"id": done.id, "status": done.status, "files": files});
    let reply = warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED);
    Ok(warp::reply::with_header(reply, "location", format!("/jobs/{}", done.id)).into_response())
}

/// `?fields=status,result,...`: only these fields of the job (and its `id`), so that a
/// poller does not fetch a large `params` (a GridLAB-D model) every time.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FieldsQuery {
    /// Comma-separated field names (default: every field).
    pub fields: Option<String>,
}

/// `job` as JSON, cut to `fields` (comma-separated) when given; `id` is always there.
pub fn pick(job: &Job, fields: Option<&str>) -> Value {
    let mut v = serde_json::to_value(job).unwrap_or(Value::Null);
    if let (Some(want), Value::Object(map)) = (fields, &mut v) {
        let want: Vec<&str> = want.split(',').map(str::trim).collect();
        map.retain(|k, _| k == "id" || want.contains(&k.as_str()));
    }
    v
}

/// `GET /jobs/{id}[?fields=status,result,...]`.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "Job id"), FieldsQuery),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 400, description = "Bad id", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such job (or not yours)", body = crate::http::openapi::ErrorBody),
        (status = 503, description = "Redis unavailable", body = crate::http::openapi::ErrorBody)))]
pub async fn get(
    id: JobId,
    q: FieldsQuery,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let job = visible(&b, &who, id).await?;
    Ok(warp::reply::json(&pick(&job, q.fields.as_deref())).into_response())
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Only jobs of this executor kind.
    pub executor: Option<String>,
    /// Only jobs of this owner (a client key may name only its own).
    pub owner: Option<String>,
    /// Continue from a previous page's `next`.
    pub cursor: Option<String>,
    /// Page size (1-1000, default 100).
    pub limit: Option<usize>,
    /// `true`: only jobs that ended for good (COMPLETED, FAILED, TIMED_OUT, CANCELED).
    pub finished: Option<bool>,
}

/// `GET /jobs?status=&executor=&owner=&finished=&cursor=&limit=`: newest first, with the
/// count of each status; clients see only their own jobs.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(ListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = crate::client::Page),
        (status = 400, description = "Bad filter or cursor", body = crate::http::openapi::ErrorBody)))]
pub async fn list(
    q: ListQuery,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let filter = ListFilter {
        status: q.status.as_deref().map(str::parse::<Status>).transpose()?,
        finished: q.finished == Some(true),
        executor: q.executor,
        owner: listed_owner(&who, q.owner)?,
    };
    let page = b
        .list(&filter, q.cursor.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(warp::reply::json(&page).into_response())
}

/// Whose jobs a listing shows: a client's own, whatever it asks (naming another owner is
/// refused); anyone's, or the named owner's, for the other roles. An empty name is none.
///
/// # Errors
/// [`Error::Forbidden`] for a client naming another owner.
pub fn listed_owner(who: &Account, asked: Option<String>) -> Result<Option<String>, Error> {
    match (who.role, asked.filter(|o| !o.is_empty())) {
        (Role::Client, Some(o)) if o != who.owner => Err(Error::Forbidden(format!(
            "a client key lists only its own jobs (owner {:?})",
            who.owner
        ))),
        (Role::Client, _) => Ok(Some(who.owner.clone())),
        (_, asked) => Ok(asked),
    }
}

/// Body of `POST /jobs/{id}/lock` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    /// Who holds the lock (default: the caller's owner name).
    pub holder: Option<String>,
    /// Take the lock even if someone else holds it.
    #[serde(default)]
    pub force: bool,
}

/// `POST /jobs/{id}/{stop|lock|unlock|retry}` -> 200 `{id, status}`; 404 for another
/// owner's job, as for one that does not exist.
#[utoipa::path(post, path = "/jobs/{id}/{action}", tag = "jobs",
    params(("id" = u64, Path, description = "Job id"),
           ("action" = String, Path, description = "stop, lock, unlock or retry")),
    request_body(content = Option<LockBody>, description = "Only for lock; optional"),
    responses(
        (status = 200, description = "The job's status after the move", body = crate::http::openapi::Moved),
        (status = 404, description = "No such job or action (or not yours)", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Illegal move, locked", body = crate::http::openapi::ErrorBody)))]
pub async fn act(
    id: JobId,
    action: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    steerable(&b, &who, id).await?;
    let status = match action.as_str() {
        "stop" => b.stop(id).await?,
        "unlock" => b.unlock(id).await?,
        "retry" => b.retry(id).await?,
        "lock" => {
            let req: LockBody = if body.is_empty() {
                LockBody::default()
            } else {
                parse_body(&body)?
            };
            let holder = req.holder.unwrap_or_else(|| who.owner.clone());
            b.lock(id, &holder, req.force).await?
        }
        _ => return Err(warp::reject::not_found()),
    };
    Ok(warp::reply::json(&json!({"id": id, "status": status})).into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // submit with files (multipart/form-data)
        warp::path!("jobs")
            .and(warp::post())
            .and(c.caller())
            .and(crate::http::uploads::form())
            .and_then(submit_with_files)
            .boxed(),
        // submit
        warp::path!("jobs")
            .and(warp::post())
            .and(c.caller())
            .and(warp::header::optional::<String>("idempotency-key"))
            .and(c.json_body())
            .and_then(submit)
            .boxed(),
        // list
        warp::path!("jobs")
            .and(warp::get())
            .and(warp::query::<ListQuery>())
            .and(c.caller())
            .and_then(list)
            .boxed(),
        // get
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path::end())
            .and(warp::get())
            .and(warp::query::<FieldsQuery>())
            .and(c.caller())
            .and_then(get)
            .boxed(),
        // act
        warp::path("jobs")
            .and(c.job_id())
            .and(warp::path::param::<String>())
            .and(warp::path::end())
            .and(warp::post())
            .and(c.caller())
            .and(c.action_body())
            .and_then(act)
            .boxed(),
    ]
}
