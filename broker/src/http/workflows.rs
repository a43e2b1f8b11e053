//! `POST /workflows` and `GET /workflows/{id}`: DAGs of jobs (see [`crate::workflows`]).

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::http::parse_body;
use crate::workflows::{Workflow, WorkflowBody};

/// `POST /workflows` -> 201 `{id, status, jobs: {node: job id}}` with a Location header;
/// 400 for a cycle, an unknown or repeated name, or a bad node.
#[utoipa::path(post, path = "/workflows", tag = "workflows", request_body = WorkflowBody,
    responses(
        (status = 201, description = "Created; Location: /workflows/{id}", body = Object),
        (status = 400, description = "Bad graph or node (cycle, unknown name, ...)", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "A node names an unknown pipeline", body = crate::http::openapi::ErrorBody),
        (status = 422, description = "A node's cluster is missing or disabled", body = crate::http::openapi::ErrorBody)))]
pub async fn create(
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    let req: WorkflowBody = parse_body(&body)?;
    let wf = b.plan_workflow(&req, &who).await?;
    crate::http::access::inputs_visible(&b, &who, &req.inputs).await?;
    for node in &req.nodes {
        crate::http::access::inputs_visible(&b, &who, &node.inputs).await?;
    }
    let (id, jobs) = b.submit_workflow(&wf).await?;
    let by_name: serde_json::Map<String, Value> = wf
        .nodes
        .iter()
        .zip(&jobs)
        .map(|(n, j)| (n.name.clone(), json!(j)))
        .collect();
    let reply = warp::reply::with_status(
        warp::reply::json(&json!({"id": id, "status": "NOT_STARTED", "jobs": by_name})),
        StatusCode::CREATED,
    );
    Ok(warp::reply::with_header(reply, "location", format!("/workflows/{id}")).into_response())
}

/// A workflow as the API shows it: its status and every run (node, job, status, parents).
pub fn view(wf: &Workflow) -> Value {
    let node_of: std::collections::HashMap<String, String> = wf
        .jobs
        .iter()
        .filter_map(|j| Some((j.id.to_string(), j.field("node")?.to_string())))
        .collect();
    let runs: Vec<Value> = wf
        .jobs
        .iter()
        .map(|j| {
            let parents: Vec<&str> = j
                .field("depends_on")
                .unwrap_or_default()
                .split(',')
                .filter_map(|p| node_of.get(p).map(String::as_str))
                .collect();
            json!({
                "node": j.field("node"),
                "job": j.id,
                "executor": j.executor,
                "status": j.status,
                "depends_on": parents,
                "attempt": j.attempt,
                "lost": j.lost,
                "created": j.field("created"),
                "started": j.field("started"),
                "finished": j.field("finished"),
                "error": j.error,
                "pipeline": j.field("pipeline"),
                "artifacts": format!("/jobs/{}/artifacts", j.id),
            })
        })
        .collect();
    let num = |f: &str| wf.field(f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    json!({
        "id": wf.id,
        "name": wf.field("name"),
        "status": wf.field("status"),
        "on_failure": wf.field("on_failure"),
        "owner": wf.field("owner"),
        "created": wf.field("created"),
        "updated": wf.field("updated"),
        "finished": wf.field("finished"),
        "failed_job": wf.field("failed_job").and_then(|v| v.parse::<u64>().ok()),
        "stopped": wf.field("stopped"),
        "total": num("total"),
        "completed": num("completed"),
        "runs": runs,
    })
}

fn workflow_id(raw: &str) -> Result<u64, Error> {
    raw.parse::<u64>()
        .map_err(|_| Error::Invalid(format!("workflow id must be a number, got {raw:?}")))
}

/// `POST /workflows/{id}/stop`: cancels every unfinished run; 200 `{id, status}`.
#[utoipa::path(post, path = "/workflows/{id}/stop", tag = "workflows",
    params(("id" = u64, Path, description = "Workflow id")),
    responses((status = 200, description = "CANCELLED (or the status it had ended with)", body = Object),
              (status = 404, description = "No such workflow (or not yours)", body = crate::http::openapi::ErrorBody)))]
pub async fn stop(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let id = workflow_id(&raw)?;
    let wf = b.workflow(id).await?;
    if !who.may_act(wf.field("owner")) {
        return Err(Error::Missing(format!("workflow {id}")).into());
    }
    let status = b.stop_workflow(id).await?;
    Ok(warp::reply::json(&json!({"id": id, "status": status})).into_response())
}

/// `GET /workflows/{id}`.
#[utoipa::path(get, path = "/workflows/{id}", tag = "workflows",
    params(("id" = u64, Path, description = "Workflow id")),
    responses((status = 200, description = "The workflow and its runs", body = Object),
              (status = 404, description = "No such workflow (or not yours)", body = crate::http::openapi::ErrorBody)))]
pub async fn get(raw: String, b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    let id = workflow_id(&raw)?;
    let wf = b.workflow(id).await?;
    if !who.may_see(wf.field("owner")) {
        return Err(Error::Missing(format!("workflow {id}")).into());
    }
    Ok(warp::reply::json(&view(&wf)).into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // workflow create
        warp::path!("workflows")
            .and(warp::post())
            .and(c.caller())
            .and(c.json_body())
            .and_then(create)
            .boxed(),
        // workflow get
        warp::path!("workflows" / String)
            .and(warp::get())
            .and(c.caller())
            .and_then(get)
            .boxed(),
        // workflow stop
        warp::path!("workflows" / String / "stop")
            .and(warp::post())
            .and(c.caller())
            .and_then(stop)
            .boxed(),
    ]
}
