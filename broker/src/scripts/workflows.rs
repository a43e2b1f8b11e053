//! Transitions over many jobs: schedules firing, workflows and pipeline runs.

use super::*;

impl Scripts {
    /// Runs `lua/fire.lua`: fires schedule `name` for `tick` (the due time read from the
    /// `schedules` zset) and moves it to `next`, creating `job` — unless another beat
    /// process fired that tick first.
    ///
    /// # Returns
    /// The new job, or None when this tick was not this caller's to fire.
    pub async fn fire<C: ConnectionLike>(
        &self,
        c: &mut C,
        name: &str,
        tick: u64,
        next: u64,
        job: &NewJob,
    ) -> Result<Option<(JobId, Status)>, Error> {
        let k = &self.keys;
        let mut inv = self.fire.prepare_invoke();
        inv.key(k.schedules())
            .key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(name)
            .arg(tick)
            .arg(next);
        self.job_args(&mut inv, job)?;
        let r = inv.run(c, "fire").await?;
        match r.code {
            0 => Ok(None),
            _ => Self::submitted(r).map(|s| Some((s.id, s.status.unwrap_or(Status::Pending)))),
        }
    }

    /// Runs `lua/workflow_create.lua`: the workflow and every member job at once (nodes in
    /// a topological order, checked by the caller).
    ///
    /// # Returns
    /// The workflow id and the member job ids in node order.
    pub async fn workflow_create<C: ConnectionLike>(
        &self,
        c: &mut C,
        wf: &crate::workflows::NewWorkflow,
    ) -> Result<(u64, Vec<JobId>), Error> {
        let k = &self.keys;
        let mut inv = self.workflow_create.prepare_invoke();
        inv.key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .key(k.workflow_seq())
            .arg(k.prefix())
            .arg(&wf.name)
            .arg(&wf.owner)
            .arg(wf.on_failure.as_str())
            .arg(ms(wf.result_ttl))
            .arg(&wf.inputs)
            .arg(wf.nodes.len());
        for node in &wf.nodes {
            let parents: Vec<String> = node.parents.iter().map(|p| (p + 1).to_string()).collect();
            inv.arg(&node.name).arg(parents.join(","));
            self.counted_job_args(&mut inv, &node.job)?;
        }
        let r = inv.run(c, "workflow_create").await?;
        if r.code == code::CLUSTER {
            return Err(Error::Cluster(format!(
                "{} (node {})",
                r.text(0).unwrap_or_default(),
                r.text(1).unwrap_or_default()
            )));
        }
        let id = r.int(0).filter(|n| *n > 0).ok_or_else(|| Error::Protocol {
            script: "workflow_create",
            reply: "no id".into(),
        })?;
        let ids = match r.rest.get(1) {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| match v {
                    Value::Int(n) => Some(JobId(*n as u64)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((id as u64, ids))
    }

    /// Runs `lua/workflow_stop.lua`: cancels workflow `id`'s unfinished members.
    ///
    /// # Returns
    /// CANCELLED, or the status it had already ended with; [`Error::Missing`] for none.
    pub async fn workflow_stop<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
    ) -> Result<String, Error> {
        let k = &self.keys;
        let r = self
            .workflow_stop
            .key(k.workflow(id))
            .arg(k.prefix())
            .arg(id)
            .run(c, "workflow_stop")
            .await?;
        if r.code == code::NOT_FOUND {
            return Err(Error::Missing(format!("workflow {id}")));
        }
        Ok(r.text(0).unwrap_or_default())
    }

    /// Runs `lua/pipeline_put.lua`: creates pipeline (id None) or replaces its template.
    ///
    /// # Returns
    /// The pipeline id; [`Error::Missing`] when `id` names no live pipeline.
    pub async fn pipeline_put<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: Option<u64>,
        owner: &str,
        guard: &str,
        fields: &[(&str, Vec<u8>)],
    ) -> Result<u64, Error> {
        let k = &self.keys;
        let mut inv = self.pipeline_put.prepare_invoke();
        inv.key(k.pipeline_seq())
            .key(k.pipelines())
            .arg(k.prefix())
            .arg(id.map(|i| i.to_string()).unwrap_or_default())
            .arg(owner)
            .arg(guard);
        for (f, v) in fields {
            inv.arg(*f).arg(v.as_slice());
        }
        let r = inv.run(c, "pipeline_put").await?;
        match (r.code, r.int(0)) {
            (1, Some(id)) => Ok(id as u64),
            _ => Err(Error::Missing(format!(
                "pipeline {}",
                id.unwrap_or_default()
            ))),
        }
    }

    /// Runs `lua/pipeline_rm.lua`: deletes pipeline `id` softly.
    ///
    /// # Returns
    /// False when there was no such live pipeline.
    pub async fn pipeline_rm<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        guard: &str,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        Ok(self
            .pipeline_rm
            .key(k.pipeline(id))
            .key(k.pipelines())
            .arg(id)
            .arg(guard)
            .run(c, "pipeline_rm")
            .await?
            .code
            > 0)
    }

    /// Runs `lua/pipeline_run.lua`: a run of pipeline `id` with `inputs` (JSON, '' = none)
    /// and `callback_url` ('' = none); `defaults` gives attempts, backoff, timeout and
    /// result_ttl where the pipeline sets none.
    ///
    /// # Returns
    /// The run's job id, status and sequence; [`Error::Missing`] for no live pipeline.
    pub async fn pipeline_run<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        actor: &Actor<'_>,
        inputs: &str,
        callback_url: &str,
        defaults: &NewJob,
    ) -> Result<(JobId, Status, u64), Error> {
        let k = &self.keys;
        let r = self
            .pipeline_run
            .key(k.job_seq())
            .key(k.delayed())
            .key(k.events())
            .key(k.pipeline(id))
            .key(k.pipeline_runs(id))
            .arg(k.prefix())
            .arg(id)
            .arg(actor.owner)
            .arg(self.list_cap)
            .arg(inputs)
            .arg(callback_url)
            .arg(defaults.max_attempts)
            .arg(ms(defaults.backoff))
            .arg(ms(defaults.timeout))
            .arg(ms(defaults.result_ttl))
            .arg(actor.guard)
            .arg(&actor.kinds)
            .arg(
                defaults
                    .extra
                    .iter()
                    .find(|(f, _)| f == "held")
                    .map_or("", |(_, v)| v.as_str()),
            )
            .run(c, "pipeline_run")
            .await?;
        match r.code {
            code::CLUSTER => Err(Error::Cluster(r.text(0).unwrap_or_default())),
            code::FORBIDDEN => Err(Error::Forbidden(format!(
                "this key may not submit {:?} jobs (pipeline {id}'s executor)",
                r.text(0).unwrap_or_default()
            ))),
            code::NOT_FOUND => Err(Error::Missing(format!("pipeline {id}"))),
            _ => {
                let job = r.int(0).filter(|n| *n > 0).ok_or_else(|| Error::Protocol {
                    script: "pipeline_run",
                    reply: "no id".into(),
                })?;
                let seq = r.int(2).unwrap_or_default();
                Ok((JobId(job as u64), r.status(1)?, seq as u64))
            }
        }
    }
}
