//! Inputs: before a job with inputs runs (claim.lua flags it), the runtime stores each of
//! them as an artifact of the job, so every executor kind finds its files the same way:
//! first every artifact of each parent (a workflow member's `depends_on`; console logs
//! excepted), then the job's own `inputs` ([`broker::inputs`]): URLs downloaded (streamed to
//! disk, at most `max_artifact_size`), other jobs' artifacts copied. A name given twice
//! keeps the later one. Runs again on every attempt (idempotent).

use futures::StreamExt;

use broker::inputs::{decode, is_console_log, Input};
use broker::{Broker, JobId};

use crate::runtime::JobError;

/// Stores job `id`'s inputs as its artifacts; returns their names.
///
/// # Errors
/// [`JobError::Fatal`] for an input that cannot exist (a missing artifact, a URL answering
/// 4xx, one over the size limit); [`JobError::Retry`] for what may pass (network, 5xx, I/O).
pub async fn stage(b: &Broker, id: JobId) -> Result<Vec<String>, JobError> {
    let job = b
        .get(id)
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let mut names = Vec::new();
    let parents = job
        .field("depends_on")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok().map(JobId));
    for parent in parents {
        let listed = b.artifacts().list(parent).await;
        for a in listed.map_err(|e| JobError::Retry(e.to_string()))? {
            if !is_console_log(&a.name) {
                copy(b, parent, &a.name, id, &a.name).await?;
                names.push(a.name);
            }
        }
    }
    let inputs = decode(job.field("inputs")).map_err(|e| JobError::Fatal(e.to_string()))?;
    for input in &inputs {
        fetch(b, id, input).await?;
        names.push(input.name.clone());
    }
    if !names.is_empty() {
        tracing::info!(job = %id, inputs = ?names, "inputs stored as artifacts");
    }
    Ok(names)
}

async fn fetch(b: &Broker, id: JobId, input: &Input) -> Result<(), JobError> {
    match (&input.url, input.job) {
        (Some(url), _) => download(b, url, id, &input.name).await,
        (None, Some(from)) => copy(b, JobId(from), input.artifact_name(), id, &input.name).await,
        (None, None) => Err(JobError::Fatal(format!(
            "input {:?} has no source",
            input.name
        ))),
    }
}

/// Copies artifact `name` of job `from` to artifact `to_name` of job `to`.
async fn copy(
    b: &Broker,
    from: JobId,
    name: &str,
    to: JobId,
    to_name: &str,
) -> Result<(), JobError> {
    match b.artifacts().copy_as(from, name, to, to_name).await {
        Ok(()) => Ok(()),
        Err(broker::Error::Missing(_)) => Err(JobError::Fatal(format!(
            "input {to_name:?}: job {from} has no artifact {name:?}"
        ))),
        Err(e @ broker::Error::Invalid(_)) => Err(JobError::Fatal(e.to_string())),
        Err(e) => Err(JobError::Retry(format!("input {to_name:?}: {e}"))),
    }
}

/// Downloads `url` into artifact `name` of job `id`, streamed, whole or not at all.
async fn download(b: &Broker, url: &str, id: JobId, name: &str) -> Result<(), JobError> {
    let what = format!("input {name:?} from {url}");
    let limit = b.config().max_artifact_size;
    let reply = reqwest::get(url)
        .await
        .map_err(|e| JobError::Retry(format!("{what}: {e}")))?;
    let status = reply.status();
    if status.is_client_error() {
        return Err(JobError::Fatal(format!("{what}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(JobError::Retry(format!("{what}: HTTP {status}")));
    }
    let body = reply
        .bytes_stream()
        .map(|c| c.map_err(std::io::Error::other));
    match b.artifacts().put_stream(id, name, body, limit).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(JobError::Fatal(format!(
            "{what}: over max_artifact_size ({limit} bytes)"
        ))),
        Err(e) => Err(JobError::Retry(format!("{what}: {e}"))),
    }
}
