//! Workflows: named jobs ("nodes") joined by `depends_on` edges, made at once by
//! `lua/workflow_create.lua` and moved on inside the scripts that end jobs
//! (`lua/includes/workflow.lua`): a node is released onto its queue when its last parent
//! completes, with its parents' artifacts as inputs; a node that ends badly cancels the
//! unfinished ones (all, or only its descendants with `on_failure: "descendants"`) and the
//! workflow ends CANCELLED, as the Workflow Service's did. Any executor kind can be a node.
//! This module checks the graph (names, edges, cycles) and orders it before it reaches Redis.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Broker;
use crate::error::Error;
use crate::inputs::Input;
use crate::job::{Job, JobId, NewJob};

/// Most nodes in one workflow.
pub const MAX_NODES: usize = 1000;
/// Most `depends_on` edges in one workflow.
pub const MAX_EDGES: usize = 10_000;

/// What happens to the other nodes when one ends badly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Every unfinished node is canceled and the workflow is CANCELLED at once (the
    /// Workflow Service's rule).
    #[default]
    All,
    /// Only the failed node's descendants are canceled; the other branches run on, and the
    /// workflow ends CANCELLED when they are done.
    Descendants,
}

impl OnFailure {
    /// The word stored in the workflow hash.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::All => "all",
            OnFailure::Descendants => "descendants",
        }
    }
}

/// One node of `POST /workflows`: a pipeline (by id) or an inline job, and its parents.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeBody {
    /// Unique within the workflow.
    pub name: String,
    /// Names of the nodes that must complete first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// A pipeline whose template this node runs (instead of executor + params).
    pub pipeline: Option<u64>,
    /// Executor kind (when no pipeline is named).
    pub executor: Option<String>,
    /// Parameters (when no pipeline is named).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
    /// Per-attempt time limit.
    pub timeout: Option<String>,
    /// Attempts before failing for good.
    pub max_attempts: Option<u32>,
    /// Base retry delay.
    pub backoff: Option<String>,
    /// Stand cluster id.
    #[serde(default, deserialize_with = "crate::clusters::id_text")]
    pub cluster: Option<String>,
    /// Files this node starts with, besides its parents' artifacts.
    #[serde(default)]
    pub inputs: Vec<Input>,
}

/// The body of `POST /workflows`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowBody {
    /// The workflow's name.
    pub name: String,
    /// Its nodes (`pipelines` is accepted as another name for the list).
    #[serde(alias = "pipelines")]
    pub nodes: Vec<NodeBody>,
    /// Files every node without parents starts with.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// `all` (default) or `descendants`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// How long the workflow and its jobs are kept once it ends (default: the `workflows`
    /// retention, 30 days).
    pub result_ttl: Option<String>,
}

/// A node ready for Redis: its name, its parents' positions (all earlier) and its job.
#[derive(Debug, Clone)]
pub struct NewNode {
    /// Node name.
    pub name: String,
    /// Positions of its parents in [`NewWorkflow::nodes`] (0-based, all before it).
    pub parents: Vec<usize>,
    /// The job it runs.
    pub job: NewJob,
}

/// A checked workflow, nodes in a topological order.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    /// Name.
    pub name: String,
    /// Account that submitted it.
    pub owner: String,
    /// Failure rule.
    pub on_failure: OnFailure,
    /// Kept this long once it ends.
    pub result_ttl: Duration,
    /// The workflow's inputs as JSON, for people.
    pub inputs: String,
    /// Nodes, parents first.
    pub nodes: Vec<NewNode>,
}

/// Orders `nodes` so that every node comes after its parents (Kahn's algorithm, ties in
/// the given order).
///
/// # Errors
/// [`Error::Invalid`] for no nodes, too many, an empty or repeated name, an edge to an
/// unknown node or to itself, a repeated edge, or a cycle (named node by node).
pub fn order(nodes: &[NodeBody]) -> Result<Vec<usize>, Error> {
    let bad = |m: String| Err(Error::Invalid(m));
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        return bad(format!("a workflow has 1 to {MAX_NODES} nodes"));
    }
    let mut index = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.name.is_empty() || n.name.len() > 200 || n.name.chars().any(char::is_control) {
            return bad(format!(
                "node name {:?}: 1-200 printable characters",
                n.name
            ));
        }
        if index.insert(n.name.as_str(), i).is_some() {
            return bad(format!("node {:?} is named twice", n.name));
        }
    }
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for p in &n.depends_on {
            let Some(&j) = index.get(p.as_str()) else {
                return bad(format!("node {:?} depends on unknown node {p:?}", n.name));
            };
            if j == i {
                return bad(format!("node {:?} depends on itself", n.name));
            }
            if parents[i].contains(&j) {
                return bad(format!("node {:?} names {p:?} twice in depends_on", n.name));
            }
            parents[i].push(j);
        }
    }
    let edges: usize = parents.iter().map(Vec::len).sum();
    if edges > MAX_EDGES {
        return bad(format!(
            "a workflow has at most {MAX_EDGES} depends_on edges, not {edges}"
        ));
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(i);
        }
    }
    let mut missing: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|&i| missing[i] == 0).collect();
    let mut out = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_front() {
        out.push(i);
        for &k in &children[i] {
            missing[k] -= 1;
            if missing[k] == 0 {
                ready.push_back(k);
            }
        }
    }
    if out.len() < nodes.len() {
        let mut placed = vec![false; nodes.len()];
        for &i in &out {
            placed[i] = true;
        }
        return bad(format!(
            "depends_on has a cycle: {}",
            cycle(nodes, &parents, &placed)
        ));
    }
    Ok(out)
}

/// One cycle among the unplaced nodes, as "a -> b -> a" (each waits for the next).
fn cycle(nodes: &[NodeBody], parents: &[Vec<usize>], placed: &[bool]) -> String {
    let Some(start) = (0..nodes.len()).find(|&i| !placed[i]) else {
        return String::new();
    };
    let mut path = vec![start];
    let mut at = start;
    // Every unplaced node waits for at least one unplaced parent, so the walk closes a loop.
    while let Some(&next) = parents[at].iter().find(|&&p| !placed[p]) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut names: Vec<&str> = path[pos..]
                .iter()
                .map(|&i| nodes[i].name.as_str())
                .collect();
            names.push(&nodes[next].name);
            return names.join(" -> ");
        }
        path.push(next);
        at = next;
    }
    nodes[start].name.clone()
}

/// A workflow as read back: its hash and its member jobs, by node name.
#[derive(Debug, Clone, Serialize)]
pub struct Workflow {
    /// The workflow id.
    pub id: u64,
    /// Every field of `workflow_W` (name, status, owner, on_failure, jobs, counters, times).
    pub fields: BTreeMap<String, String>,
    /// Member jobs still readable, in node order.
    pub jobs: Vec<Job>,
}

impl Workflow {
    /// A field of the hash.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

impl Broker {
    /// Checks and orders a workflow request, resolving pipelines to their templates.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad graph or node; [`Error::Missing`] for an unknown pipeline
    /// (or one `who` may not run); [`Error::Forbidden`] for a kind `who` may not submit to.
    pub async fn plan_workflow(
        &self,
        body: &WorkflowBody,
        who: &crate::apikeys::Account,
    ) -> Result<NewWorkflow, Error> {
        let owner = who.owner.as_str();
        let order = order(&body.nodes)?;
        let mut position = vec![0; order.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        let index: HashMap<&str, usize> = body
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let shared = crate::inputs::encode(&body.inputs, self.outbound())?;
        let mut nodes = Vec::with_capacity(order.len());
        for &i in &order {
            let n = &body.nodes[i];
            let mut parents: Vec<usize> = n
                .depends_on
                .iter()
                .filter_map(|p| index.get(p.as_str()))
                .map(|&j| position[j])
                .collect();
            parents.sort_unstable();
            let mut inputs = n.inputs.clone();
            if parents.is_empty() {
                inputs.extend(body.inputs.iter().cloned());
            }
            let job = self.node_job(n, who, &inputs).await.map_err(|e| match e {
                Error::Invalid(m) => Error::Invalid(format!("node {:?}: {m}", n.name)),
                other => other,
            })?;
            nodes.push(NewNode {
                name: n.name.clone(),
                parents,
                job,
            });
        }
        let result_ttl = match &body.result_ttl {
            None => self.config().retention(Some("workflows"), ""),
            Some(t) => crate::job::parse_duration("result_ttl", t)?,
        };
        Ok(NewWorkflow {
            name: body.name.clone(),
            owner: owner.to_string(),
            on_failure: body.on_failure,
            result_ttl,
            inputs: shared.unwrap_or_else(|| "[]".into()),
            nodes,
        })
    }

    /// The job a node runs: its pipeline's template or its inline executor and params. The
    /// node's own timeout, attempts, backoff and cluster win over the template's.
    async fn node_job(
        &self,
        n: &NodeBody,
        who: &crate::apikeys::Account,
        inputs: &[Input],
    ) -> Result<NewJob, Error> {
        let (executor, params, template) = match (n.pipeline, &n.executor) {
            (Some(p), None) if n.params.is_null() => {
                let t = self.pipeline(p).await?;
                if !who.may_act(t.field("owner")) {
                    return Err(Error::Missing(format!("pipeline {p}")));
                }
                (t.executor.clone(), t.params.clone(), Some(t))
            }
            (None, Some(executor)) => (executor.clone(), n.params.clone(), None),
            _ => {
                return Err(Error::Invalid(
                    "give either pipeline, or executor (and params)".into(),
                ))
            }
        };
        // The node's own settings win over its template's (stored in milliseconds).
        let from_template = |f: &str| template.as_ref().and_then(|t| t.field(f)).map(String::from);
        let template_ms = |f: &str| {
            from_template(f)
                .and_then(|ms| ms.parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        let own = |f: &str, text: &Option<String>| {
            crate::job::parse_optional_duration(f, text.as_deref())
        };
        let mut job = self.job_for(who, &executor, params)?;
        if let Some(d) = own("timeout", &n.timeout)?.or_else(|| template_ms("timeout")) {
            job.timeout = d;
        }
        if let Some(d) = own("backoff", &n.backoff)?.or_else(|| template_ms("backoff")) {
            job.backoff = d;
        }
        if let Some(d) = template_ms("result_ttl") {
            job.result_ttl = d;
        }
        if let Some(m) = n
            .max_attempts
            .or_else(|| from_template("max_attempts").and_then(|v| v.parse().ok()))
        {
            job.max_attempts = m;
        }
        let cluster = n.cluster.clone().or_else(|| from_template("cluster"));
        self.attach(&mut job, cluster.as_deref(), inputs, None)?;
        Broker::validate(&job)?;
        self.check_params(&job.executor, &job.params).await?;
        // Written after the check: `pipeline` is a field only the scripts and this set.
        if let Some(t) = template {
            job.extra.push(("pipeline".into(), t.id.to_string()));
        }
        Ok(job)
    }

    /// Creates a checked workflow (`lua/workflow_create.lua`).
    ///
    /// # Errors
    /// [`Error::Cluster`] when a node's cluster is missing or disabled; Redis errors.
    pub async fn submit_workflow(&self, wf: &NewWorkflow) -> Result<(u64, Vec<JobId>), Error> {
        let mut c = self.conn().await?;
        let made = self.scripts().workflow_create(&mut *c, wf).await?;
        self.replicated(&mut c).await?;
        Ok(made)
    }

    /// Stops workflow `id` (`lua/workflow_stop.lua`): CANCELLED, or the status it had
    /// already ended with.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such workflow.
    pub async fn stop_workflow(&self, id: u64) -> Result<String, Error> {
        let mut c = self.conn().await?;
        self.scripts().workflow_stop(&mut *c, id).await
    }

    /// The newest `window` workflow ids that still exist, newest first, with their summary
    /// fields (name, status, owner, created, total, completed): one pipelined read, O(window).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn recent_workflows(
        &self,
        window: u64,
    ) -> Result<Vec<(u64, BTreeMap<String, String>)>, Error> {
        const FIELDS: [&str; 6] = ["name", "status", "owner", "created", "total", "completed"];
        let mut c = self.conn().await?;
        let newest: Option<u64> = c.get(self.keys().workflow_seq()).await?;
        let ids: Vec<u64> = (1..=newest.unwrap_or(0))
            .rev()
            .take(window as usize)
            .collect();
        let mut p = redis::pipe();
        for id in &ids {
            p.cmd("HMGET")
                .arg(self.keys().workflow(*id))
                .arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = p.query_async(&mut *c).await?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter(|(_, r)| r.iter().any(Option::is_some))
            .map(|(id, r)| {
                let fields = FIELDS
                    .iter()
                    .zip(r)
                    .filter_map(|(f, v)| Some((f.to_string(), v?)))
                    .collect();
                (id, fields)
            })
            .collect())
    }

    /// Reads workflow `id` and its member jobs.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such workflow (or it expired).
    pub async fn workflow(&self, id: u64) -> Result<Workflow, Error> {
        let mut c = self.conn().await?;
        let fields: BTreeMap<String, String> = c.hgetall(self.keys().workflow(id)).await?;
        if fields.is_empty() {
            return Err(Error::Missing(format!("workflow {id}")));
        }
        let ids: Vec<JobId> = fields
            .get("jobs")
            .map(|j| {
                j.split(',')
                    .filter_map(|n| n.parse().ok())
                    .map(JobId)
                    .collect()
            })
            .unwrap_or_default();
        let keys: Vec<String> = ids.iter().map(|j| self.keys().job(*j)).collect();
        let jobs = crate::client::read_jobs(&mut *c, &keys)
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(Workflow { id, fields, jobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(edges: &[(&str, &[&str])]) -> Vec<NodeBody> {
        edges
            .iter()
            .map(|(name, deps)| NodeBody {
                name: (*name).into(),
                depends_on: deps.iter().map(|d| (*d).to_string()).collect(),
                pipeline: None,
                executor: Some("command".into()),
                params: Value::Null,
                timeout: None,
                max_attempts: None,
                backoff: None,
                cluster: None,
                inputs: Vec::new(),
            })
            .collect()
    }

    fn names(ns: &[NodeBody], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| ns[i].name.clone()).collect()
    }

    #[test]
    fn parents_come_first() {
        let ns = nodes(&[("c", &["a", "b"]), ("b", &["a"]), ("a", &[]), ("d", &[])]);
        let o = order(&ns).unwrap_or_default();
        assert_eq!(names(&ns, &o), ["a", "d", "b", "c"]);
    }

    #[test]
    fn bad_graphs_are_refused_with_what_is_wrong() {
        let msg = |ns: Vec<NodeBody>| match order(&ns) {
            Err(Error::Invalid(m)) => m,
            other => format!("accepted: {other:?}"),
        };
        assert_eq!(
            msg(nodes(&[
                ("a", &["c"]),
                ("b", &["a"]),
                ("c", &["b"]),
                ("d", &[])
            ])),
            "depends_on has a cycle: a -> c -> b -> a"
        );
        assert_eq!(msg(nodes(&[("a", &["a"])])), "node \"a\" depends on itself");
        assert_eq!(
            msg(nodes(&[("a", &[]), ("b", &["x"])])),
            "node \"b\" depends on unknown node \"x\""
        );
        assert_eq!(
            msg(nodes(&[("a", &[]), ("a", &[])])),
            "node \"a\" is named twice"
        );
        assert_eq!(
            msg(nodes(&[("a", &[]), ("b", &["a", "a"])])),
            "node \"b\" names \"a\" twice in depends_on"
        );
        assert_eq!(
            msg(Vec::new()),
            format!("a workflow has 1 to {MAX_NODES} nodes")
        );
    }
}
