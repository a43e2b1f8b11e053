//! The GridLAB-D Workflow Service face (SEEDS.md 4): pipelines and their runs under `/v1`,
//! in its words. A pipeline is a job template (executor + params) instead of a docker image
//! and a git repository; a run is a job, its `uuid` the job id. States are the service's
//! QUEUED, NOT_STARTED, RUNNING, COMPLETED, FAILED, CANCELLED ([`crate::pipelines::run_state`]);
//! `states` is the run's append-only history; `callback_url` gets `{pipeline_run_uuid,
//! state}` on each change (from `sluice serve`'s notifier). Errors are the service's
//! `{"message": ...}`, a missing or bad key included (401). Keys: its `Workflow-API-Key`
//! header or a bearer key, any role. As in the service, a run gets one attempt unless its
//! pipeline sets `max_attempts`, and its states only move forward: a run whose executor was
//! lost and that runs again elsewhere stays RUNNING; `status` is the last of `states`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::http::parse_body;
use crate::inputs::Input;
use crate::job::{Job, JobId};
use crate::pipelines::{run_history, run_state, Pipeline, PipelineBody};
use warp::filters::BoxedFilter;
use warp::Filter;

/// Most characters of a console stream answered (its tail).
const CONSOLE_TAIL: usize = 64 * 1024;

/// The service's error reply.
fn error(e: &Error) -> warp::reply::Response {
    let status = crate::http::errors::status(e);
    let message = match status {
        StatusCode::SERVICE_UNAVAILABLE => "redis is unavailable; try again".to_string(),
        _ => e.to_string(),
    };
    warp::reply::with_status(warp::reply::json(&json!({"message": message})), status)
        .into_response()
}

fn answer(r: Result<Value, Error>, ok: StatusCode) -> Result<warp::reply::Response, Rejection> {
    Ok(match r {
        Ok(body) => warp::reply::with_status(warp::reply::json(&body), ok).into_response(),
        Err(e) => error(&e),
    })
}

fn number(what: &str, raw: &str) -> Result<u64, Error> {
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Missing(format!("{what} {raw:?}")))
}

fn pipeline_json(p: &Pipeline) -> Value {
    json!({
        "uuid": p.id.to_string(),
        "name": p.name,
        "description": p.description,
        "executor": p.executor,
        "params": p.params,
        "runs": p.runs,
        "created_at": p.field("created"),
        "updated_at": p.field("updated"),
    })
}

/// A run as the service showed it.
async fn run_json(b: &Broker, job: &Job) -> Result<Value, Error> {
    let history = run_history(&b.history(job.id).await?);
    // The current state is the last of the history, as in the service; a finished job's
    // own status wins should its history have been cut short.
    let status = match history.last() {
        Some((state, _)) if !job.status.is_terminal() => state,
        _ => run_state(job.status),
    };
    let states: Vec<Value> = history
        .into_iter()
        .map(|(state, at)| json!({"state": state, "created_at": at}))
        .collect();
    let artifacts: Vec<Value> = b
        .artifacts()
        .list(job.id)
        .await?
        .into_iter()
        .map(|a| {
            json!({"uuid": format!("{}/{}", job.id, a.name), "name": a.name, "size": a.size,
                   "url": format!("/jobs/{}/artifacts/{}", job.id, a.name)})
        })
        .collect();
    Ok(json!({
        "uuid": job.id.to_string(),
        "sequence": job.field("sequence").and_then(|s| s.parse::<u64>().ok()),
        "pipeline_uuid": job.field("pipeline"),
        "status": status,
        "created_at": job.field("created"),
        "started_at": job.field("started"),
        "completed_at": job.field("finished"),
        "inputs": crate::inputs::decode(job.field("inputs"))?,
        "states": states,
        "artifacts": artifacts,
        "callback_url": job.field("callback_url"),
    }))
}

/// `POST /v1/pipelines`.
#[utoipa::path(post, path = "/v1/pipelines", tag = "workflow-service", request_body = PipelineBody,
    responses((status = 200, description = "The pipeline", body = Object), (status = 400, description = "{message}", body = Object), (status = 401, description = "{message}", body = Object)))]
pub async fn create(
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let req: PipelineBody = parse_body(&body)?;
        let id = b.put_pipeline(None, &req, &who).await?;
        Ok(pipeline_json(&b.pipeline(id).await?))
    };
    answer(r.await, StatusCode::OK)
}

/// `GET /v1/pipelines`: the caller's own (a worker's or admin's: all).
#[utoipa::path(get, path = "/v1/pipelines", tag = "workflow-service",
    responses((status = 200, description = "The caller's pipelines", body = Object), (status = 401, description = "{message}", body = Object)))]
pub async fn list(b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        Ok(Value::Array(
            b.pipelines()
                .await?
                .iter()
                .filter(|p| who.may_see(p.field("owner")))
                .map(pipeline_json)
                .collect(),
        ))
    };
    answer(r.await, StatusCode::OK)
}

/// A live pipeline the caller may see; another owner's is "not found" (no existence leak).
async fn visible(b: &Broker, who: &Account, raw: &str) -> Result<Pipeline, Error> {
    let id = number("pipeline", raw)?;
    let p = b.pipeline(id).await?;
    if who.may_see(p.field("owner")) {
        Ok(p)
    } else {
        Err(Error::Missing(format!("pipeline {id}")))
    }
}

/// `GET /v1/pipelines/{id}`.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid")),
    responses((status = 200, description = "The pipeline", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn get(raw: String, b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    let r = async { Ok(pipeline_json(&visible(&b, &who, &raw).await?)) };
    answer(r.await, StatusCode::OK)
}

/// `PUT /v1/pipelines/{id}`: replaces the template of the caller's own pipeline (an admin:
/// any); another owner's is "not found". Checked inside `pipeline_put.lua`, so no race
/// between the check and the write.
#[utoipa::path(put, path = "/v1/pipelines/{id}", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid")), request_body = PipelineBody,
    responses((status = 200, description = "The pipeline", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn put(
    raw: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let id = number("pipeline", &raw)?;
        let req: PipelineBody = parse_body(&body)?;
        b.put_pipeline(Some(id), &req, &who).await?;
        Ok(pipeline_json(&b.pipeline(id).await?))
    };
    answer(r.await, StatusCode::OK)
}

/// `DELETE /v1/pipelines/{id}`: soft delete, of the caller's own (an admin: any).
#[utoipa::path(delete, path = "/v1/pipelines/{id}", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid")),
    responses((status = 200, description = "Deleted (softly)", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn delete(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        b.remove_pipeline(number("pipeline", &raw)?, &who).await?;
        Ok(json!({}))
    };
    answer(r.await, StatusCode::OK)
}

/// The body of `POST /v1/pipelines/{id}/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    inputs: Vec<Input>,
    callback_url: Option<String>,
}

/// `POST /v1/pipelines/{id}/runs`: starts run `sequence` = n + 1.
#[utoipa::path(post, path = "/v1/pipelines/{id}/runs", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid")),
    request_body(content = Object, description = "{inputs: [{name, url} | {name, job, artifact}], callback_url?}, or multipart/form-data: a part run, then files"),
    responses((status = 200, description = "The run: uuid, sequence, status, states, inputs, artifacts", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn start_run(
    raw: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let pid = number("pipeline", &raw)?;
        let req: RunBody = if body.is_empty() {
            RunBody::default()
        } else {
            parse_body(&body)?
        };
        crate::http::access::inputs_visible(&b, &who, &req.inputs).await?;
        let started = b
            .run_pipeline(pid, &who, &req.inputs, req.callback_url.as_deref(), false)
            .await?;
        run_json(&b, &b.get(started.id).await?).await
    };
    answer(r.await, StatusCode::OK)
}

/// `POST /v1/pipelines/{id}/runs` as `multipart/form-data`, as the Workflow Service took
/// input files: a first part `run` (its JSON body, `{}` for none), then each file as a part with
/// a filename, stored as the run's artifact; the run starts once every file is stored.
pub async fn start_run_with_files(
    raw: String,
    b: Broker,
    who: Account,
    form: warp::multipart::FormData,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let pid = number("pipeline", &raw)?;
        let (b, who) = (&b, &who);
        let done = crate::http::uploads::submit(b, form, "run", |body| async move {
            let req: RunBody = if body.is_empty() {
                RunBody::default()
            } else {
                parse_body(&body)?
            };
            crate::http::access::inputs_visible(b, who, &req.inputs).await?;
            let started = b
                .run_pipeline(pid, who, &req.inputs, req.callback_url.as_deref(), true)
                .await?;
            Ok((started.id, None))
        })
        .await?;
        run_json(b, &b.get(done.id).await?).await
    };
    answer(r.await, StatusCode::OK)
}

/// The body of `POST /v1/pipelines/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    uuids: Vec<String>,
}

/// Most ids one search names.
const MAX_SEARCH: usize = 1000;

/// `POST /v1/pipelines/search` `{"uuids": [...]}`: those of the caller's live pipelines, in
/// the order asked; ids it may not see or that are gone are left out.
#[utoipa::path(post, path = "/v1/pipelines/search", tag = "workflow-service",
    request_body(content = Object, description = "{\"uuids\": [...]}, at most 1000"),
    responses((status = 200, description = "The caller's pipelines among them, in order", body = Object), (status = 400, description = "{message}", body = Object)))]
pub async fn search(
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let req: SearchBody = parse_body(&body)?;
        if req.uuids.len() > MAX_SEARCH {
            return Err(Error::Invalid(format!(
                "uuids: at most {MAX_SEARCH} per search"
            )));
        }
        let mut out = Vec::new();
        for raw in &req.uuids {
            match visible(&b, &who, raw).await {
                Ok(p) => out.push(pipeline_json(&p)),
                Err(Error::Missing(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Value::Array(out))
    };
    answer(r.await, StatusCode::OK)
}

/// Cancels run `run` of pipeline `raw` (its owner or an admin): a waiting run ends CANCELLED
/// at once, a running one when its executor stops it. A finished run is a 400 "Invalid state
/// transition", as the service answered.
async fn cancel_run(b: &Broker, who: &Account, raw: &str, run: &str) -> Result<Value, Error> {
    let job = run_of(b, who, raw, run).await?;
    if !who.may_act(job.field("owner")) {
        return Err(Error::Missing(format!("pipeline run {run}")));
    }
    if job.status.is_terminal() {
        return Err(Error::Invalid(format!(
            "Invalid state transition: {}->CANCELLED",
            run_state(job.status)
        )));
    }
    b.stop(job.id).await?;
    run_json(b, &b.get(job.id).await?).await
}

/// `DELETE /v1/pipelines/{id}/runs/{run}`: cancels the run.
#[utoipa::path(delete, path = "/v1/pipelines/{id}/runs/{run}", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid"), ("run" = String, Path, description = "Run uuid")),
    responses((status = 200, description = "Cancelled: the run", body = Object), (status = 400, description = "Invalid state transition", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn delete_run(
    raw: String,
    run: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    answer(cancel_run(&b, &who, &raw, &run).await, StatusCode::OK)
}

/// The body of `PUT /v1/pipelines/{id}/runs/{run}/state`.
#[derive(Debug, Deserialize)]
struct StateBody {
    state: String,
}

/// `PUT /v1/pipelines/{id}/runs/{run}/state` `{"state": "CANCELLED"}`: cancels the run. The
/// other states are Sluice's executors' to set: asking for one is a 400.
#[utoipa::path(put, path = "/v1/pipelines/{id}/runs/{run}/state", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid"), ("run" = String, Path, description = "Run uuid")),
    request_body(content = Object, description = "{\"state\": \"CANCELLED\"}"),
    responses((status = 200, description = "Cancelled: the run", body = Object), (status = 400, description = "Another state, or Invalid state transition", body = Object)))]
pub async fn put_state(
    raw: String,
    run: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let req: StateBody = parse_body(&body)?;
        if req.state != "CANCELLED" {
            return Err(Error::Invalid(format!(
                "state {:?}: only CANCELLED may be requested; executors set the others",
                req.state
            )));
        }
        cancel_run(&b, &who, &raw, &run).await
    };
    answer(r.await, StatusCode::OK)
}

/// The caller: its key's account; without a valid key, the service's 401 `{"message"}`.
fn caller(c: &crate::http::Ctx) -> BoxedFilter<(Broker, Account)> {
    c.broker()
        .and(c.who_or_none())
        .and_then(|b: Broker, who: Option<Account>| async move {
            who.map(|w| (b, w)).ok_or_else(|| {
                warp::reject::custom(crate::http::errors::FaceUnauthenticated(json!({
                    "message": "no valid authorization header (Workflow-API-Key: <key>)"
                })))
            })
        })
        .untuple_one()
        .boxed()
}

/// `GET /v1/pipelines/{id}/runs`: the runs still kept, by sequence (the caller's own,
/// unless a worker or admin).
#[utoipa::path(get, path = "/v1/pipelines/{id}/runs", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid")),
    responses((status = 200, description = "The runs still kept, by sequence", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn list_runs(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let pid = number("pipeline", &raw)?;
        // A soft-deleted pipeline's runs stay listed, as they stay readable one by one.
        match b.pipeline_owner(pid).await? {
            Some(owner) if who.may_see(Some(&owner)) => {}
            _ => return Err(Error::Missing(format!("pipeline {pid}"))),
        }
        let mut out = Vec::new();
        for job in b.pipeline_runs(pid).await? {
            if who.may_see(job.field("owner")) {
                out.push(run_json(&b, &job).await?);
            }
        }
        Ok(Value::Array(out))
    };
    answer(r.await, StatusCode::OK)
}

/// Run `run` of pipeline `raw`, if the caller may see it.
async fn run_of(b: &Broker, who: &Account, raw: &str, run: &str) -> Result<Job, Error> {
    let pid = number("pipeline", raw)?;
    let id = JobId(number("pipeline run", run)?);
    let job = crate::http::access::visible(b, who, id)
        .await
        .map_err(|_| Error::Missing(format!("pipeline run {run}")))?;
    if job.field("pipeline") != Some(pid.to_string().as_str()) {
        return Err(Error::Missing(format!(
            "pipeline run {run} of pipeline {pid}"
        )));
    }
    Ok(job)
}

/// `GET /v1/pipelines/{id}/runs/{run}`.
#[utoipa::path(get, path = "/v1/pipelines/{id}/runs/{run}", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid"), ("run" = String, Path, description = "Run uuid")),
    responses((status = 200, description = "The run", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn get_run(
    raw: String,
    run: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let r = async { run_json(&b, &run_of(&b, &who, &raw, &run).await?).await };
    answer(r.await, StatusCode::OK)
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(CONSOLE_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `GET /v1/pipelines/{id}/runs/{run}/console` -> `{std_out, std_err}`: the tail of the
/// run's console log artifact (`<kind>.attempt-<n>.log`, written live by the spark and
/// gridlabd kinds) or its result text, and its error (a command's stderr tail).
#[utoipa::path(get, path = "/v1/pipelines/{id}/runs/{run}/console", tag = "workflow-service", params(("id" = String, Path, description = "Pipeline uuid"), ("run" = String, Path, description = "Run uuid")),
    responses((status = 200, description = "{std_out, std_err}: their tails", body = Object), (status = 404, description = "{message}", body = Object)))]
pub async fn console(
    raw: String,
    run: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let r = async {
        let job = run_of(&b, &who, &raw, &run).await?;
        let std_out = match b.console_log(&job, CONSOLE_TAIL as u64).await? {
            Some(text) => text,
            None => match &job.result {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            },
        };
        Ok(json!({
            "std_out": tail(&std_out),
            "std_err": tail(job.error.as_deref().unwrap_or_default()),
        }))
    };
    answer(r.await, StatusCode::OK)
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    vec![
        // ws create
        warp::path!("v1" / "pipelines")
            .and(warp::post())
            .and(caller(c))
            .and(c.json_body())
            .and_then(create)
            .boxed(),
        // ws list
        warp::path!("v1" / "pipelines")
            .and(warp::get())
            .and(caller(c))
            .and_then(list)
            .boxed(),
        // ws search
        warp::path!("v1" / "pipelines" / "search")
            .and(warp::post())
            .and(caller(c))
            .and(c.json_body())
            .and_then(search)
            .boxed(),
        // ws get
        warp::path!("v1" / "pipelines" / String)
            .and(warp::get())
            .and(caller(c))
            .and_then(get)
            .boxed(),
        // ws put
        warp::path!("v1" / "pipelines" / String)
            .and(warp::put())
            .and(caller(c))
            .and(c.json_body())
            .and_then(put)
            .boxed(),
        // ws delete
        warp::path!("v1" / "pipelines" / String)
            .and(warp::delete())
            .and(caller(c))
            .and_then(delete)
            .boxed(),
        // ws run with files (multipart/form-data)
        warp::path!("v1" / "pipelines" / String / "runs")
            .and(warp::post())
            .and(caller(c))
            .and(crate::http::uploads::form())
            .and_then(start_run_with_files)
            .boxed(),
        // ws run
        warp::path!("v1" / "pipelines" / String / "runs")
            .and(warp::post())
            .and(caller(c))
            .and(c.json_body())
            .and_then(start_run)
            .boxed(),
        // ws runs
        warp::path!("v1" / "pipelines" / String / "runs")
            .and(warp::get())
            .and(caller(c))
            .and_then(list_runs)
            .boxed(),
        // ws run get
        warp::path!("v1" / "pipelines" / String / "runs" / String)
            .and(warp::get())
            .and(caller(c))
            .and_then(get_run)
            .boxed(),
        // ws run cancel
        warp::path!("v1" / "pipelines" / String / "runs" / String)
            .and(warp::delete())
            .and(caller(c))
            .and_then(delete_run)
            .boxed(),
        // ws run state
        warp::path!("v1" / "pipelines" / String / "runs" / String / "state")
            .and(warp::put())
            .and(caller(c))
            .and(c.json_body())
            .and_then(put_state)
            .boxed(),
        // ws console
        warp::path!("v1" / "pipelines" / String / "runs" / String / "console")
            .and(warp::get())
            .and(caller(c))
            .and_then(console)
            .boxed(),
    ]
}
