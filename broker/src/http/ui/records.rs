//! The console's pages for what is stored beside jobs: pipelines and their runs (the
//! Workflow Service face), schedules with their next and last ticks (admins), and Stand's
//! cluster records. Each reads as the signed-in account with the API's own rules: a
//! pipeline is shown to whom `GET /v1/pipelines/{id}` shows it, schedules only to admins
//! (`GET /schedules`), clusters to every key (`GET /clusters`).

use askama::Template;
use serde_json::Value;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::{error_page, html, sign_in_first, Chrome, Session};
use crate::apikeys::Role;
use crate::client::Broker;
use crate::clusters::Cluster;
use crate::error::Error;
use crate::job::{JobId, Status};
use crate::schedules::Schedule;

/// Most runs a pipeline's page lists (the newest).
const RUNS_SHOWN: usize = 100;

struct PipelineRow {
    id: u64,
    name: String,
    executor: String,
    runs: u64,
    owner: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "ui/pipelines.html")]
struct Pipelines {
    c: Chrome,
    pipelines: Vec<PipelineRow>,
}

async fn pipelines(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let all = match b.pipelines().await {
        Ok(all) => all,
        Err(e) => return Ok(error_page(c, &e)),
    };
    let pipelines = all
        .iter()
        .filter(|p| who.may_see(p.field("owner")))
        .map(|p| PipelineRow {
            id: p.id,
            name: p.name.clone(),
            executor: p.executor.clone(),
            runs: p.runs,
            owner: p.field("owner").unwrap_or_default().to_string(),
            updated: p.field("updated").unwrap_or_default().to_string(),
        })
        .collect();
    Ok(html(&Pipelines { c, pipelines }, StatusCode::OK))
}

struct RunRow {
    job: JobId,
    sequence: String,
    status: Status,
    /// The Workflow Service's word for it (QUEUED, NOT_STARTED, ... CANCELLED).
    state: &'static str,
    created: String,
    finished: String,
}

#[derive(Template)]
#[template(path = "ui/pipeline.html")]
struct PipelinePage {
    c: Chrome,
    id: u64,
    name: String,
    description: String,
    executor: String,
    owner: String,
    created: String,
    updated: String,
    params: String,
    may_run: bool,
    runs: Vec<RunRow>,
    older: usize,
}

async fn pipeline(b: Broker, s: Session, id: u64) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let missing = || Error::Missing(format!("pipeline {id}"));
    let p = match b.pipeline(id).await {
        Ok(p) if who.may_see(p.field("owner")) => p,
        Ok(_) => return Ok(error_page(c, &missing())),
        Err(e) => return Ok(error_page(c, &e)),
    };
    let mut runs = match b.pipeline_runs(id).await {
        Ok(runs) => runs,
        Err(e) => return Ok(error_page(c, &e)),
    };
    runs.retain(|j| who.may_see(j.field("owner")));
    let older = runs.len().saturating_sub(RUNS_SHOWN);
    let field = |k: &str| p.field(k).unwrap_or_default().to_string();
    let page = PipelinePage {
        id,
        name: p.name.clone(),
        description: p.description.clone(),
        executor: p.executor.clone(),
        owner: field("owner"),
        created: field("created"),
        updated: field("updated"),
        params: serde_json::to_string_pretty(&p.params).unwrap_or_default(),
        may_run: who.may_act(p.field("owner")),
        runs: runs
            .iter()
            .rev()
            .take(RUNS_SHOWN)
            .map(|j| RunRow {
                job: j.id,
                sequence: j.field("sequence").unwrap_or_default().to_string(),
                status: j.status,
                state: crate::pipelines::run_state(j.status),
                created: j.field("created").unwrap_or_default().to_string(),
                finished: j.field("finished").unwrap_or_default().to_string(),
            })
            .collect(),
        older,
        c,
    };
    Ok(html(&page, StatusCode::OK))
}

struct ScheduleRow {
    name: String,
    executor: String,
    when: String,
    next_tick: String,
    last_tick: String,
    params: String,
}

#[derive(Template)]
#[template(path = "ui/schedules.html")]
struct Schedules {
    c: Chrome,
    schedules: Vec<ScheduleRow>,
}

fn schedule_row(s: Schedule) -> ScheduleRow {
    let when = match (&s.cron, &s.every) {
        (Some(cron), _) => format!("cron {cron}"),
        (None, Some(every)) => format!("every {every}"),
        (None, None) => String::new(),
    };
    ScheduleRow {
        name: s.name,
        executor: s.executor,
        when,
        next_tick: s.next_tick.unwrap_or_default(),
        last_tick: s.last_tick.unwrap_or_else(|| "never".into()),
        params: compact(&s.params),
    }
}

/// A JSON value on one line.
fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

async fn schedules(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    if who.role != Role::Admin {
        let denied = Error::Forbidden("schedules are for admins".into());
        return Ok(error_page(c, &denied));
    }
    match b.schedules().await {
        Ok(all) => {
            let schedules = all.into_iter().map(schedule_row).collect();
            Ok(html(&Schedules { c, schedules }, StatusCode::OK))
        }
        Err(e) => Ok(error_page(c, &e)),
    }
}

#[derive(Template)]
#[template(path = "ui/clusters.html")]
struct Clusters {
    c: Chrome,
    clusters: Vec<Cluster>,
}

async fn clusters(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((_, c)) = s else {
        return Ok(sign_in_first());
    };
    match b.clusters().await {
        Ok(clusters) => Ok(html(&Clusters { c, clusters }, StatusCode::OK)),
        Err(e) => Ok(error_page(c, &e)),
    }
}

/// The pages' routes; `session` reads the sign-in cookie.
pub(super) fn routes(session: BoxedFilter<(Broker, Session)>) -> Vec<crate::http::Route> {
    let s = move || session.clone();
    vec![
        warp::path!("ui" / "pipelines")
            .and(warp::get())
            .and(s())
            .and_then(pipelines)
            .boxed(),
        warp::path!("ui" / "pipelines" / u64)
            .and(warp::get())
            .and(s())
            .and_then(|id: u64, b: Broker, s: Session| pipeline(b, s, id))
            .boxed(),
        warp::path!("ui" / "schedules")
            .and(warp::get())
            .and(s())
            .and_then(schedules)
            .boxed(),
        warp::path!("ui" / "clusters")
            .and(warp::get())
            .and(s())
            .and_then(clusters)
            .boxed(),
    ]
}
