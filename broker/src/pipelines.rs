//! Pipelines, as the Workflow Service had them: a named, reusable job template (an executor
//! kind and its params, optionally attempts, timeouts and a cluster) kept in `pipeline_P`.
//! A run (`lua/pipeline_run.lua`) is a job made from the template, numbered by the
//! pipeline's `sequence`, with its own inputs and callback URL; `runs:pipeline_P` lists
//! the runs. Deleting a pipeline is soft, as it was: the hash stays for its runs.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{decode, encode, Job, JobId, Status};

/// The body of `POST /v1/pipelines` and `PUT /v1/pipelines/{id}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineBody {
    /// Name people know it by.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Executor kind that runs it.
    pub executor: Option<String>,
    /// Parameters handed to the executor.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
    /// Attempts before a run fails for good.
    pub max_attempts: Option<u32>,
    /// Base retry delay.
    pub backoff: Option<String>,
    /// Per-attempt time limit.
    pub timeout: Option<String>,
    /// How long a finished run is kept.
    pub result_ttl: Option<String>,
    /// Stand cluster id.
    #[serde(default, deserialize_with = "crate::clusters::id_text")]
    pub cluster: Option<String>,
    /// The Workflow Service's docker pipelines: refused with an explanation.
    #[schema(ignore)]
    pub docker_image_url: Option<Value>,
    /// See `docker_image_url`.
    #[schema(ignore)]
    pub repository_ssh_url: Option<Value>,
    /// See `docker_image_url`.
    #[schema(ignore)]
    pub repository_branch: Option<Value>,
    /// See `docker_image_url`.
    #[schema(ignore)]
    pub repository_script: Option<Value>,
}

fn ms(d: Duration) -> Vec<u8> {
    d.as_millis().to_string().into_bytes()
}

impl PipelineBody {
    /// The hash fields of this template.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming what is wrong.
    pub fn fields(&self) -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
        if self.docker_image_url.is_some()
            || self.repository_ssh_url.is_some()
            || self.repository_branch.is_some()
            || self.repository_script.is_some()
        {
            return Err(Error::Invalid(
                "Sluice runs a pipeline with an executor kind: give executor and params \
                 (docker_image_url and repository_* pipelines are not supported)"
                    .into(),
            ));
        }
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(Error::Invalid("name: 1-200 characters".into()));
        }
        let Some(executor) = &self.executor else {
            return Err(Error::Invalid("executor is required".into()));
        };
        crate::keys::validate_executor(executor)?;
        let mut f = vec![
            ("name", self.name.clone().into_bytes()),
            ("executor", executor.clone().into_bytes()),
            ("params", encode(&self.params)?),
        ];
        if !self.description.is_empty() {
            f.push(("description", self.description.clone().into_bytes()));
        }
        match self.max_attempts {
            Some(0) => return Err(Error::Invalid("max_attempts must be at least 1".into())),
            Some(n) => f.push(("max_attempts", n.to_string().into_bytes())),
            None => {}
        }
        for (name, v) in [
            ("backoff", &self.backoff),
            ("timeout", &self.timeout),
            ("result_ttl", &self.result_ttl),
        ] {
            if let Some(text) = v {
                f.push((name, ms(crate::job::parse_duration(name, text)?)));
            }
        }
        if let Some(c) = &self.cluster {
            f.push(("cluster", c.clone().into_bytes()));
        }
        Ok(f)
    }
}

/// A pipeline as read back.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// Its id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Executor kind.
    pub executor: String,
    /// Parameters.
    pub params: Value,
    /// Runs made so far (the last sequence number).
    pub runs: u64,
    /// Text fields: created, updated, deleted, owner, max_attempts, backoff, timeout,
    /// result_ttl (ms), cluster.
    pub fields: HashMap<String, String>,
}

impl Pipeline {
    fn from_hash(id: u64, mut h: HashMap<String, Vec<u8>>) -> Result<Option<Self>, Error> {
        if h.is_empty() {
            return Ok(None);
        }
        let params = h.remove("params").map(|p| decode(&p)).transpose()?;
        let mut fields: HashMap<String, String> = h
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        Ok(Some(Pipeline {
            id,
            name: fields.remove("name").unwrap_or_default(),
            description: fields.remove("description").unwrap_or_default(),
            executor: fields.remove("executor").unwrap_or_default(),
            params: params.unwrap_or(Value::Null),
            runs: fields
                .remove("runs")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            fields,
        }))
    }

    /// A field of the hash.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A run just started.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// The run's job.
    pub id: JobId,
    /// Its status (PENDING).
    pub status: Status,
    /// Its number within the pipeline.
    pub sequence: u64,
}

impl Broker {
    /// Creates a pipeline owned by `who` (`id` None) or replaces the template of one `who`
    /// may change (its own; an admin any).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad body; [`Error::Forbidden`] for an executor kind `who`
    /// may not submit to; [`Error::Missing`] for no such live pipeline of `who`'s.
    pub async fn put_pipeline(
        &self,
        id: Option<u64>,
        body: &PipelineBody,
        who: &Account,
    ) -> Result<u64, Error> {
        let fields = body.fields()?;
        if let Some(kind) = &body.executor {
            self.admit(who, kind)?;
        }
        let mut c = self.conn().await?;
        self.scripts()
            .pipeline_put(&mut *c, id, &who.owner, who.guard(), &fields)
            .await
    }

    /// Deletes a pipeline `who` may change softly.
    ///
    /// # Errors
    /// [`Error::Missing`] for no such live pipeline of `who`'s.
    pub async fn remove_pipeline(&self, id: u64, who: &Account) -> Result<(), Error> {
        let mut c = self.conn().await?;
        if self.scripts().pipeline_rm(&mut *c, id, who.guard()).await? {
            Ok(())
        } else {
            Err(Error::Missing(format!("pipeline {id}")))
        }
    }

    /// Reads a live pipeline.
    ///
    /// # Errors
    /// [`Error::Missing`] when there is none (or it was deleted).
    pub async fn pipeline(&self, id: u64) -> Result<Pipeline, Error> {
        let mut c = self.conn().await?;
        let h: HashMap<String, Vec<u8>> = c.hgetall(self.keys().pipeline(id)).await?;
        match Pipeline::from_hash(id, h)? {
            Some(p) if p.field("deleted").is_none() => Ok(p),
            _ => Err(Error::Missing(format!("pipeline {id}"))),
        }
    }

    /// The owner of pipeline `id` ("" for none) if it was ever made, deleted or not.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn pipeline_owner(&self, id: u64) -> Result<Option<String>, Error> {
        let mut c = self.conn().await?;
        let (made, owner): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys().pipeline(id))
            .arg("id")
            .arg("owner")
            .query_async(&mut *c)
            .await?;
        Ok(made.map(|_| owner.unwrap_or_default()))
    }

    /// Every live pipeline, by id.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn pipelines(&self) -> Result<Vec<Pipeline>, Error> {
        let mut c = self.conn().await?;
        let mut ids: Vec<u64> = c.smembers(self.keys().pipelines()).await?;
        ids.sort_unstable();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for id in &ids {
            p.hgetall(self.keys().pipeline(*id));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = p.query_async(&mut *c).await?;
        let mut out = Vec::new();
        for (id, h) in ids.into_iter().zip(hashes) {
            out.extend(Pipeline::from_hash(id, h)?);
        }
        Ok(out)
    }

    /// Starts a run of pipeline `id` with `inputs` and an optional `callback_url`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for bad inputs or URL; [`Error::Missing`] for no live pipeline;
    /// [`Error::Cluster`] for a missing or disabled cluster.
    pub async fn run_pipeline(
        &self,
        id: u64,
        who: &Account,
        inputs: &[crate::inputs::Input],
        callback_url: Option<&str>,
        held: bool,
    ) -> Result<Started, Error> {
        let inputs = crate::inputs::encode(inputs, self.outbound())?.unwrap_or_default();
        if let Some(url) = callback_url {
            self.outbound().check("callback_url", url)?;
        }
        let mut defaults = self.new_job("", Value::Null);
        // The Workflow Service never retried a run: one attempt unless the pipeline says; it
        // kept its runs in a database: the `pipelines` retention unless the pipeline says.
        defaults.max_attempts = 1;
        defaults.result_ttl = self.config().retention(Some("pipelines"), "");
        if held {
            // Waits for its files (crate::uploads): SCHEDULED until unhold.lua.
            defaults
                .extra
                .push(("held".into(), crate::uploads::hold_deadline()));
        }
        let mut c = self.conn().await?;
        let (id, status, sequence) = self
            .scripts()
            .pipeline_run(
                &mut *c,
                id,
                &who.actor(&self.config().open_executors),
                &inputs,
                callback_url.unwrap_or(""),
                &defaults,
            )
            .await?;
        self.replicated(&mut c).await?;
        Ok(Started {
            id,
            status,
            sequence,
        })
    }

    /// The runs of pipeline `id` still kept, by sequence.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn pipeline_runs(&self, id: u64) -> Result<Vec<Job>, Error> {
        let mut c = self.conn().await?;
        let ids: Vec<u64> = c.zrange(self.keys().pipeline_runs(id), 0, -1).await?;
        let keys: Vec<String> = ids.iter().map(|j| self.keys().job(JobId(*j))).collect();
        Ok(crate::client::read_jobs(&mut *c, &keys)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// The last `max` bytes of job's console log artifact for its latest attempt
    /// (`<kind>.attempt-<n>.log`, written live by the spark and gridlabd kinds), if any; only
    /// that tail is read from the store.
    ///
    /// # Errors
    /// Store errors.
    pub async fn console_log(&self, job: &Job, max: u64) -> Result<Option<String>, Error> {
        use futures_util::StreamExt;
        let suffix = format!(".attempt-{}.log", job.attempt);
        let store = self.artifacts();
        let Some(log) = store
            .list(job.id)
            .await?
            .into_iter()
            .find(|a| a.name.ends_with(&suffix))
        else {
            return Ok(None);
        };
        let size = store.size(job.id, &log.name).await?;
        if size == 0 {
            return Ok(Some(String::new()));
        }
        let mut opened = store
            .open(job.id, &log.name, Some(size.saturating_sub(max)..size))
            .await?;
        let mut tail = Vec::new();
        while let Some(chunk) = opened.body.next().await {
            tail.extend_from_slice(&chunk.map_err(|e| Error::Storage(e.to_string()))?);
        }
        Ok(Some(String::from_utf8_lossy(&tail).into_owned()))
    }
}

/// The Workflow Service's run state (QUEUED, NOT_STARTED, RUNNING, COMPLETED, FAILED,
/// CANCELLED) for a job status: SCHEDULED (waiting for run_at, a retry or its parents) is
/// QUEUED, PENDING (on its queue) NOT_STARTED, TIMED_OUT FAILED.
pub fn run_state(status: Status) -> &'static str {
    match status {
        Status::Scheduled => "QUEUED",
        Status::Pending => "NOT_STARTED",
        Status::Running => "RUNNING",
        Status::Completed => "COMPLETED",
        Status::Failed | Status::TimedOut => "FAILED",
        Status::Canceled => "CANCELLED",
    }
}

/// The run states one event adds to a run's history (and its callbacks): a new ready job is
/// QUEUED then NOT_STARTED (as the Workflow Service recorded a new run); progress, log
/// lines, locks and a stop request change no state (the CANCELLED follows when the
/// executor confirms), and neither do the moves back to waiting (a lost executor, a
/// released job, a retry): the service's states only move forward.
pub fn run_states(status: &str, event: &str) -> Vec<&'static str> {
    let Ok(status) = status.parse::<Status>() else {
        return Vec::new();
    };
    match (event, status) {
        ("submitted", Status::Pending) => vec!["QUEUED", "NOT_STARTED"],
        // Moves between statuses; progress, log lines, locks and stop requests are not.
        (
            "submitted" | "claimed" | "completed" | "failed" | "timed_out" | "canceled" | "ready"
            | "promoted",
            s,
        ) => vec![run_state(s)],
        _ => Vec::new(),
    }
}

/// Where a state stands in the service's order: QUEUED, NOT_STARTED, RUNNING, then the final
/// ones.
fn rank(state: &str) -> u8 {
    match state {
        "QUEUED" => 0,
        "NOT_STARTED" => 1,
        "RUNNING" => 2,
        _ => 3,
    }
}

/// A run's state history from its job's history: `(state, time)`, each state later in the
/// service's order than the one before (repeats and moves back dropped; one final state).
pub fn run_history(history: &[(String, String, String)]) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (at, status, event) in history {
        for state in run_states(status, event) {
            if out.last().is_none_or(|(s, _)| rank(state) > rank(s)) {
                out.push((state, at.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(lines: &[(&str, &str)]) -> Vec<(String, String, String)> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (s, e))| (format!("t{i}"), (*s).into(), (*e).into()))
            .collect()
    }

    #[test]
    fn a_run_history_reads_in_the_workflow_services_words() {
        let states = |l: &[(&str, &str)]| -> Vec<&str> {
            run_history(&h(l)).into_iter().map(|(s, _)| s).collect()
        };
        assert_eq!(
            states(&[
                ("PENDING", "submitted"),
                ("RUNNING", "claimed"),
                ("COMPLETED", "completed")
            ]),
            ["QUEUED", "NOT_STARTED", "RUNNING", "COMPLETED"]
        );
        assert_eq!(
            states(&[
                ("SCHEDULED", "submitted"),
                ("PENDING", "ready"),
                ("RUNNING", "claimed"),
                ("RUNNING", "stop_requested"),
                ("CANCELED", "canceled")
            ]),
            ["QUEUED", "NOT_STARTED", "RUNNING", "CANCELLED"]
        );
        assert_eq!(
            states(&[
                ("PENDING", "submitted"),
                ("RUNNING", "claimed"),
                ("TIMED_OUT", "timed_out")
            ]),
            ["QUEUED", "NOT_STARTED", "RUNNING", "FAILED"]
        );
        // A lost executor, a retry: the run stays RUNNING until it ends (states only move
        // forward, as in the service).
        assert_eq!(
            states(&[
                ("PENDING", "submitted"),
                ("RUNNING", "claimed"),
                ("PENDING", "lost"),
                ("RUNNING", "claimed"),
                ("SCHEDULED", "retry_scheduled"),
                ("PENDING", "promoted"),
                ("RUNNING", "claimed"),
                ("FAILED", "failed")
            ]),
            ["QUEUED", "NOT_STARTED", "RUNNING", "FAILED"]
        );
        assert_eq!(run_history(&h(&[("PENDING", "submitted")]))[1].1, "t0");
        for back in ["lost", "released", "retried", "retry_scheduled"] {
            assert!(run_states("PENDING", back).is_empty(), "{back}");
        }
        for quiet in ["progress", "log", "locked", "unlocked", "stop_requested"] {
            assert!(run_states("RUNNING", quiet).is_empty(), "{quiet}");
        }
    }

    #[test]
    fn templates_refuse_docker_pipelines_and_bad_fields() {
        let body = |j: &str| serde_json::from_str::<PipelineBody>(j).map_err(|e| e.to_string());
        let fields = |j: &str| body(j).and_then(|b| b.fields().map_err(|e| e.to_string()));
        assert!(
            fields(r#"{"name": "p", "executor": "command", "params": {"action": "x"}}"#).is_ok()
        );
        let docker = fields(r#"{"name": "p", "docker_image_url": "x", "repository_ssh_url": "y"}"#);
        assert!(docker.is_err_and(|e| e.contains("executor kind")));
        assert!(fields(r#"{"name": "p"}"#).is_err_and(|e| e.contains("executor is required")));
        assert!(fields(r#"{"name": "p", "executor": "a b"}"#).is_err());
        assert!(fields(r#"{"name": "p", "executor": "x", "timeout": "soon"}"#).is_err());
        assert!(body(r#"{"name": "p", "executor": "x", "colour": 1}"#).is_err());
    }
}
