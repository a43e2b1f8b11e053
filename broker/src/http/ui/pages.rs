//! The console's reading pages: overview, jobs, one job, workflows, one workflow. Each
//! reads through the same broker calls and access checks as the API (`access.rs`,
//! `jobs::listed_owner`), as the signed-in account.

use std::collections::BTreeMap;

use askama::Template;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{error_page, html, see_other, sign_in_first, Chrome, Session};
use crate::apikeys::{Account, Role};
use crate::client::{Broker, ListFilter};
use crate::error::Error;
use crate::job::{Job, JobId, Status};
use crate::stats::Stats;

/// Jobs per page of the jobs list.
const PAGE: usize = 50;

/// How many of the newest workflow ids the workflows page looks at.
const WORKFLOW_WINDOW: u64 = 500;

/// An error shown in the console's frame.
#[derive(Template)]
#[template(path = "ui/problem.html")]
pub(super) struct Problem {
    pub(super) c: Chrome,
    pub(super) message: String,
}

/// One row of the overview: a kind's counts (the caller's own jobs for a client).
struct KindRow {
    kind: String,
    pending: u64,
    running: u64,
    scheduled: u64,
    completed: u64,
    failed: u64,
    canceled: u64,
    /// Claim wait (ready to claimed) percentiles, as the bucket bound they fall in (admins).
    wait_p50: String,
    wait_p99: String,
}

/// The claim-wait bucket bound a quantile `q` of a kind's claims falls in ("≤ 5 ms"); "-"
/// before any claim.
fn claim_wait(stats: &Stats, kind: &str, q: f64) -> String {
    match stats.waits.get(kind).and_then(|w| w.quantile(q)) {
        None => "-".into(),
        Some("inf") => "> 300 s".into(),
        Some(b) => format!("≤ {b} ms"),
    }
}

#[derive(Default)]
struct RedisFacts {
    health: String,
    version: String,
    used: String,
    limit: String,
    replicas: String,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct Overview {
    c: Chrome,
    kinds: Vec<KindRow>,
    executors: Vec<crate::presence::ExecutorInfo>,
    redis: RedisFacts,
}

/// The count of each status of every kind, as `who` may see them.
async fn kind_counts(
    b: &Broker,
    who: &Account,
) -> Result<Vec<(String, BTreeMap<Status, u64>)>, Error> {
    let mut out = Vec::new();
    for kind in b.kinds().await? {
        let filter = ListFilter {
            executor: Some(kind.clone()),
            owner: crate::http::jobs::listed_owner(who, None)?,
            ..Default::default()
        };
        let page = b.list(&filter, None, 1).await?;
        out.push((kind, page.counts));
    }
    Ok(out)
}

/// Redis' facts for an admin: INFO server, memory and replication.
async fn redis_facts(b: &Broker) -> RedisFacts {
    let info = async {
        let mut c = b.conn().await?;
        let text: String = redis::cmd("INFO").query_async(&mut *c).await?;
        Ok::<_, Error>(text)
    }
    .await;
    let Ok(text) = info else {
        return RedisFacts {
            health: "unreachable".into(),
            version: "-".into(),
            used: "-".into(),
            limit: "-".into(),
            replicas: "-".into(),
        };
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map_or("-".to_string(), |v| v.trim().to_string())
    };
    let limit = match field("maxmemory_human").as_str() {
        "0B" => "none".to_string(),
        other => format!("{other} ({})", field("maxmemory_policy")),
    };
    RedisFacts {
        health: "ok".into(),
        version: field("redis_version"),
        used: field("used_memory_human"),
        limit,
        replicas: field("connected_slaves"),
    }
}

async fn overview(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let counts = match kind_counts(&b, &who).await {
        Ok(v) => v,
        Err(e) => return Ok(error_page(c, &e)),
    };
    let admin = who.role == Role::Admin;
    let stats = if admin {
        b.stats().await.unwrap_or_default()
    } else {
        Stats::default()
    };
    let n = |m: &BTreeMap<Status, u64>, s: Status| m.get(&s).copied().unwrap_or(0);
    let kinds = counts
        .iter()
        .map(|(kind, m)| KindRow {
            kind: kind.clone(),
            pending: n(m, Status::Pending),
            running: n(m, Status::Running),
            scheduled: n(m, Status::Scheduled),
            completed: n(m, Status::Completed),
            failed: n(m, Status::Failed) + n(m, Status::TimedOut),
            canceled: n(m, Status::Canceled),
            wait_p50: claim_wait(&stats, kind, 0.5),
            wait_p99: claim_wait(&stats, kind, 0.99),
        })
        .collect();
    let executors = if admin {
        b.executors().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let redis = if admin {
        redis_facts(&b).await
    } else {
        RedisFacts::default()
    };
    Ok(html(
        &Overview {
            c,
            kinds,
            executors,
            redis,
        },
        StatusCode::OK,
    ))
}

/// `GET /ui/overview.json`: the live numbers of the overview (counts; for an admin also the
/// cumulative completed and failed events per kind, which the page turns into rates).
async fn overview_json(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((who, _)) = s else {
        return Err(warp::reject::custom(
            crate::http::errors::Denied::Unauthenticated,
        ));
    };
    let counts = kind_counts(&b, &who).await?;
    let stats = if who.role == Role::Admin {
        b.stats().await?
    } else {
        Stats::default()
    };
    let kinds: Vec<Value> = counts
        .into_iter()
        .map(|(kind, m)| {
            let failed = stats.event("failed", &kind) + stats.event("timed_out", &kind);
            json!({
                "kind": kind,
                "counts": m,
                "stats": (who.role == Role::Admin).then(|| json!({
                    "completed": stats.event("completed", &kind),
                    "failed": failed,
                })),
            })
        })
        .collect();
    Ok(warp::reply::json(&json!({ "kinds": kinds })).into_response())
}

/// Query of `GET /ui/jobs`.
#[derive(Debug, Default, Deserialize)]
struct JobsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    executor: String,
    #[serde(default)]
    owner: String,
    cursor: Option<String>,
}

impl JobsQuery {
    /// The link to this listing with `status` instead (and no cursor).
    fn link(&self, status: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", status),
            ("executor", &self.executor),
            ("owner", &self.owner),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        format!("/ui/jobs?{}", q.finish())
    }
}

struct Tab {
    status: &'static str,
    count: u64,
    link: String,
    on: bool,
}

struct JobRow {
    id: JobId,
    executor: String,
    status: Status,
    owner: String,
    attempt: u32,
    created: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "ui/jobs.html")]
struct Jobs {
    c: Chrome,
    tabs: Vec<Tab>,
    total: u64,
    all_link: String,
    status: String,
    executor: String,
    owner: String,
    kinds: Vec<String>,
    jobs: Vec<JobRow>,
    next_link: Option<String>,
}

fn text(j: &Job, f: &str) -> String {
    j.field(f).unwrap_or("").to_string()
}

async fn jobs(b: Broker, s: Session, q: JobsQuery) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let filter = (|| {
        Ok::<_, Error>(ListFilter {
            status: (!q.status.is_empty())
                .then(|| q.status.parse())
                .transpose()?,
            finished: false,
            executor: (!q.executor.is_empty()).then(|| q.executor.clone()),
            owner: crate::http::jobs::listed_owner(&who, Some(q.owner.clone()))?,
        })
    })();
    let page = match filter {
        Ok(f) => b.list(&f, q.cursor.as_deref(), PAGE).await,
        Err(e) => Err(e),
    };
    let (page, kinds) = match (page, b.kinds().await) {
        (Ok(p), Ok(k)) => (p, k),
        (Err(e), _) | (_, Err(e)) => return Ok(error_page(c, &e)),
    };
    let tabs = Status::ALL
        .into_iter()
        .map(|s| Tab {
            status: s.as_str(),
            count: page.counts.get(&s).copied().unwrap_or(0),
            link: q.link(s.as_str()),
            on: q.status == s.as_str(),
        })
        .collect();
    let next_link = page
        .next
        .as_ref()
        .map(|n| format!("{}&cursor={n}", q.link(&q.status)));
    let rows = page
        .jobs
        .iter()
        .map(|j| JobRow {
            id: j.id,
            executor: j.executor.clone(),
            status: j.status,
            owner: text(j, "owner"),
            attempt: j.attempt,
            created: text(j, "created"),
            updated: text(j, "updated"),
        })
        .collect();
    let page = Jobs {
        total: page.counts.values().sum(),
        all_link: q.link(""),
        tabs,
        status: q.status.clone(),
        executor: q.executor.clone(),
        owner: if who.role == Role::Client {
            String::new()
        } else {
            q.owner.clone()
        },
        kinds,
        jobs: rows,
        next_link,
        c,
    };
    Ok(html(&page, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "ui/job.html")]
struct JobPage {
    c: Chrome,
    id: JobId,
    status: Status,
    executor: String,
    owner: String,
    attempt: u32,
    max_attempts: u32,
    created: String,
    started: String,
    finished: String,
    worker: String,
    locked: String,
    workflow: Option<String>,
    error: String,
    progress: String,
    progress_fraction: f64,
    params: String,
    result: String,
    history: Vec<(String, String, String)>,
    /// A StableConfigs answer, drawn readably (None: the result is not one).
    configs: Option<Configs>,
    may_act: bool,
    terminal: bool,
    retryable: bool,
}

/// Most configurations a job's page draws (all of them stay in the result's JSON).
const CONFIGS_SHOWN: usize = 20;

/// A solver result (`{"configs": [{"polymers": [[[site, ...], ...], ...]}], "entropy"}`)
/// for reading: each polymer a list of its monomers, each monomer its sites in one line.
struct Configs {
    found: usize,
    entropy: Option<u64>,
    shown: Vec<Vec<Vec<String>>>,
}

fn configs(result: Option<&Value>) -> Option<Configs> {
    #[derive(Deserialize)]
    struct Answer {
        configs: Vec<Config>,
        entropy: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Config {
        polymers: Vec<Vec<Vec<String>>>,
    }
    let answer = Answer::deserialize(result?).ok()?;
    Some(Configs {
        found: answer.configs.len(),
        entropy: answer.entropy,
        shown: answer
            .configs
            .into_iter()
            .take(CONFIGS_SHOWN)
            .map(|c| {
                c.polymers
                    .into_iter()
                    .map(|p| p.into_iter().map(|m| m.join(" ")).collect())
                    .collect()
            })
            .collect(),
    })
}

fn pretty(v: Option<&Value>) -> String {
    v.and_then(|v| serde_json::to_string_pretty(v).ok())
        .unwrap_or_default()
}

async fn job(b: Broker, s: Session, id: JobId) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let found = crate::http::access::visible(&b, &who, id).await;
    let (j, history) = match found {
        Ok(j) => match b.history(id).await {
            Ok(h) => (j, h),
            Err(e) => return Ok(error_page(c, &e)),
        },
        Err(e) => return Ok(error_page(c, &e)),
    };
    let fraction = j
        .progress
        .as_ref()
        .and_then(|p| {
            let done = p.get("done").or_else(|| p.get("count"))?.as_f64()?;
            let total = p.get("total").or_else(|| p.get("of"))?.as_f64()?;
            (total > 0.0).then_some(done / total)
        })
        .unwrap_or(-1.0);
    let locked = match (j.field("locked"), j.field("locked_at")) {
        (Some(h), Some(at)) => format!("by {h} since {at}"),
        (Some(h), None) => format!("by {h}"),
        _ => String::new(),
    };
    let page = JobPage {
        id,
        status: j.status,
        executor: j.executor.clone(),
        owner: text(&j, "owner"),
        attempt: j.attempt,
        max_attempts: j.max_attempts,
        created: text(&j, "created"),
        started: text(&j, "started"),
        finished: text(&j, "finished"),
        worker: text(&j, "worker"),
        locked,
        workflow: j
            .field("workflow")
            .filter(|w| w.parse::<u64>().is_ok())
            .map(String::from),
        error: j.error.clone().unwrap_or_default(),
        progress: pretty(j.progress.as_ref()),
        progress_fraction: fraction,
        params: pretty(Some(&j.params)),
        result: pretty(j.result.as_ref()),
        history,
        configs: configs(j.result.as_ref()),
        may_act: who.may_act(j.field("owner")),
        terminal: j.status.is_terminal(),
        retryable: matches!(
            j.status,
            Status::Failed | Status::TimedOut | Status::Canceled
        ),
        c,
    };
    Ok(html(&page, StatusCode::OK))
}

struct WorkflowRow {
    id: u64,
    name: String,
    status: String,
    completed: String,
    total: String,
    owner: String,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/workflows.html")]
struct Workflows {
    c: Chrome,
    recent: Vec<WorkflowRow>,
    window: u64,
}

async fn workflows(b: Broker, s: Session) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    match b.recent_workflows(WORKFLOW_WINDOW).await {
        Ok(all) => {
            let recent = all
                .into_iter()
                .filter(|(_, f)| who.may_see(f.get("owner").map(String::as_str)))
                .take(PAGE)
                .map(|(id, f)| {
                    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
                    WorkflowRow {
                        id,
                        name: get("name"),
                        status: get("status"),
                        completed: get("completed"),
                        total: get("total"),
                        owner: get("owner"),
                        created: get("created"),
                    }
                })
                .collect();
            Ok(html(
                &Workflows {
                    c,
                    recent,
                    window: WORKFLOW_WINDOW,
                },
                StatusCode::OK,
            ))
        }
        Err(e) => Ok(error_page(c, &e)),
    }
}

#[derive(Template)]
#[template(path = "ui/workflow.html")]
struct WorkflowPage {
    c: Chrome,
    id: u64,
    name: String,
    status: String,
    completed: u64,
    total: u64,
    on_failure: String,
    width: u32,
    height: u32,
    node_w: u32,
    node_h: u32,
    nodes: Vec<super::graph::Node>,
    edges: Vec<(u32, u32, u32, u32)>,
}

async fn workflow(b: Broker, s: Session, id: u64) -> Result<warp::reply::Response, Rejection> {
    let Some((who, c)) = s else {
        return Ok(sign_in_first());
    };
    let wf = match b.workflow(id).await {
        Ok(wf) if who.may_see(wf.field("owner")) => wf,
        Ok(_) => return Ok(error_page(c, &Error::Missing(format!("workflow {id}")))),
        Err(e) => return Ok(error_page(c, &e)),
    };
    let view = crate::http::workflows::view(&wf);
    let g = super::graph::layout(&view["runs"]);
    let word = |k: &str| view[k].as_str().unwrap_or_default().to_string();
    let page = WorkflowPage {
        id,
        name: word("name"),
        status: word("status"),
        on_failure: word("on_failure"),
        completed: view["completed"].as_u64().unwrap_or(0),
        total: view["total"].as_u64().unwrap_or(0),
        width: g.width,
        height: g.height,
        node_w: super::graph::NODE_W,
        node_h: super::graph::NODE_H,
        nodes: g.nodes,
        edges: g.edges,
        c,
    };
    Ok(html(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct OpenQuery {
    id: String,
}

/// The pages' routes; `session` reads the sign-in cookie.
pub(super) fn routes(session: BoxedFilter<(Broker, Session)>) -> Vec<crate::http::Route> {
    let s = move || session.clone();
    vec![
        // "/ui" and "/ui/" alike
        warp::path!("ui")
            .and(warp::get())
            .and(s())
            .and_then(overview)
            .boxed(),
        warp::path!("ui" / "overview.json")
            .and(warp::get())
            .and(s())
            .and_then(overview_json)
            .boxed(),
        warp::path!("ui" / "jobs")
            .and(warp::get())
            .and(s())
            .and(warp::query::<JobsQuery>())
            .and_then(jobs)
            .boxed(),
        warp::path!("ui" / "jobs" / JobId)
            .and(warp::get())
            .and(s())
            .and_then(|id: JobId, b: Broker, s: Session| job(b, s, id))
            .boxed(),
        warp::path!("ui" / "workflows")
            .and(warp::get())
            .and(s())
            .and_then(workflows)
            .boxed(),
        warp::path!("ui" / "workflows" / "open")
            .and(warp::get())
            .and(warp::query::<OpenQuery>())
            .map(|q: OpenQuery| {
                let id: String = q.id.chars().filter(char::is_ascii_digit).collect();
                see_other(&format!("/ui/workflows/{id}"))
            })
            .boxed(),
        warp::path!("ui" / "workflows" / u64)
            .and(warp::get())
            .and(s())
            .and_then(|id: u64, b: Broker, s: Session| workflow(b, s, id))
            .boxed(),
    ]
}
