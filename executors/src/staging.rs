//! Inputs: before a job with inputs runs (claim.lua flags it), the runtime stores each of
//! them as an artifact of the job, so every executor kind finds its files the same way:
//! first every artifact of each parent (a workflow member's `depends_on`; console logs
//! excepted), then the job's own `inputs` ([`broker::inputs`]): URLs downloaded (streamed to
//! disk, at most `max_artifact_size`), other jobs' artifacts copied. A name given twice
//! keeps the later one. Runs again on every attempt (idempotent).
//!
//! Executor kinds that run programs on files use the rest: [`Workdir`] (a fresh directory,
//! optionally with `input/` and `output/`), [`copy_in`] / [`artifacts_into`] (artifacts into it) and
//! [`keep_outputs`] (the files a run wrote, back as artifacts).

use std::path::{Path, PathBuf};

use broker::artifacts::Artifacts;
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
    // Parents are a workflow member's (field `node` is set only by workflow_create.lua).
    let parents = job
        .field("node")
        .and(job.field("depends_on"))
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
    let what = format!("input {name:?}");
    let limit = b.config().max_artifact_size;
    // The outbound policy: public addresses only, on every redirect hop (broker::outbound).
    let policy = b.outbound();
    policy
        .check(&what, url)
        .map_err(|e| JobError::Fatal(e.to_string()))?;
    let http = policy
        .downloader()
        .map_err(|e| JobError::Retry(format!("{what}: {e}")))?;
    let reply = http.get(url).send().await.map_err(|e| {
        let why = broker::outbound::describe(&e);
        if why.contains("outbound policy") || why.contains("redirects") {
            JobError::Fatal(format!("{what}: {why}"))
        } else {
            JobError::Retry(format!("{what}: {why}"))
        }
    })?;
    let status = reply.status();
    if status.is_client_error() {
        return Err(JobError::Fatal(format!("{what}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(JobError::Retry(format!("{what}: HTTP {status}")));
    }
    let body = reply
        .bytes_stream()
        .map(|c| c.map_err(|e| std::io::Error::other(broker::outbound::describe(&e))));
    match b.artifacts().put_stream(id, name, body, limit).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(JobError::Fatal(format!(
            "{what}: over max_artifact_size ({limit} bytes)"
        ))),
        Err(e) => Err(JobError::Retry(format!("{what}: {e}"))),
    }
}

/// Copies artifact `name` of job `id` into `dir`.
pub(crate) async fn copy_in(
    store: &Artifacts,
    id: broker::JobId,
    name: &str,
    dir: &Path,
) -> Result<(), JobError> {
    match store.fetch(id, name, &dir.join(name)).await {
        Ok(()) => Ok(()),
        Err(broker::Error::Missing(_)) => Err(JobError::Fatal(format!(
            "job {id} has no artifact {name:?} (upload it with PUT /jobs/{id}/artifacts/{name})"
        ))),
        Err(e @ broker::Error::Invalid(_)) => Err(JobError::Fatal(e.to_string())),
        Err(e) => Err(JobError::Retry(format!("cannot copy artifact {name}: {e}"))),
    }
}

/// Stores every file under `dir` except the `placed` ones (and one named `log_name`, the
/// console log's own) as an artifact of job `id` (subdirectories flattened with `_`);
/// returns their names.
pub(crate) async fn keep_outputs(
    store: &Artifacts,
    id: broker::JobId,
    dir: &Path,
    placed: &[String],
    log_name: &str,
) -> Result<Vec<String>, JobError> {
    let mut names = Vec::new();
    let mut todo: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((at, prefix)) = todo.pop() {
        let mut entries = tokio::fs::read_dir(&at)
            .await
            .map_err(|e| JobError::Retry(format!("cannot list {}: {e}", at.display())))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(file) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            let name = format!("{prefix}{file}");
            let Ok(kind) = entry.file_type().await else {
                continue;
            };
            if kind.is_dir() {
                todo.push((entry.path(), format!("{name}_")));
                continue;
            }
            if !kind.is_file() || (prefix.is_empty() && placed.contains(&name)) {
                continue;
            }
            if name == log_name || broker::artifacts::validate_name(&name).is_err() {
                tracing::warn!(job = %id, file = %name, "output not kept: reserved or bad name");
                continue;
            }
            store
                .put_file(id, &name, &entry.path())
                .await
                .map_err(|e| JobError::Retry(format!("cannot store {name}: {e}")))?;
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Copies every artifact of job `id` except console logs into `dir`; returns their names.
///
/// # Errors
/// As [`copy_in`]; listing errors are [`JobError::Retry`].
pub(crate) async fn artifacts_into(
    store: &Artifacts,
    id: JobId,
    dir: &Path,
) -> Result<Vec<String>, JobError> {
    let mut names = Vec::new();
    let listed = store
        .list(id)
        .await
        .map_err(|e| JobError::Retry(e.to_string()))?;
    for a in listed.into_iter().filter(|a| !is_console_log(&a.name)) {
        copy_in(store, id, &a.name, dir).await?;
        names.push(a.name);
    }
    Ok(names)
}

/// A fresh working directory for one attempt, removed by [`Workdir::remove`]; with `io`,
/// holding `input/` (the job's files) and `output/` (what it keeps).
#[derive(Debug)]
pub(crate) struct Workdir {
    /// The directory itself.
    pub(crate) root: PathBuf,
    /// `root/input`.
    pub(crate) input: PathBuf,
    /// `root/output`.
    pub(crate) output: PathBuf,
}

impl Workdir {
    /// Makes `<temp>/sluice-<kind>-<id>-<attempt>-<random>/` (mode 0700: its name cannot
    /// be guessed and no other user may enter it), and in it `input/` and `output/` when
    /// `io` is true.
    pub(crate) async fn create(
        kind: &str,
        id: JobId,
        attempt: u32,
        io: bool,
    ) -> Result<Self, JobError> {
        let root = std::env::temp_dir().join(format!(
            "sluice-{kind}-{id}-{attempt}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let (input, output) = (root.join("input"), root.join("output"));
        let made: &[&PathBuf] = if io { &[&input, &output] } else { &[&root] };
        for d in made {
            tokio::fs::create_dir_all(d)
                .await
                .map_err(|e| JobError::Retry(format!("cannot make {}: {e}", d.display())))?;
        }
        // Only this user may look inside (other tenants' jobs run on the same host).
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(|e| JobError::Retry(format!("cannot protect {}: {e}", root.display())))?;
        Ok(Self {
            root,
            input,
            output,
        })
    }

    /// Deletes it and everything in it.
    pub(crate) async fn remove(self) {
        if let Err(e) = tokio::fs::remove_dir_all(&self.root).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.root.display(), error = %e, "cannot remove");
            }
        }
    }
}
