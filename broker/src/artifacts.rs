//! Artifacts: files a job produced (a spark-submit log, a simulator's CSVs), kept in a local
//! directory per job, `<artifact_dir>/<N>/artifacts/<name>`: the same shape as the URL
//! `/jobs/<N>/artifacts/<name>`, so `warp::fs::dir` streams downloads (length, type, ranges)
//! after the API has checked the caller and the name. Executors on the same host write
//! there directly.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::job::JobId;

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Artifact {
    /// Its name within the job.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Checks an artifact name: 1-255 bytes of a plain file name, no path separators, no `..`,
/// no leading dot or dash, no control characters.
///
/// # Errors
/// [`Error::Invalid`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::Invalid(format!("artifact name {name:?}: {why}")));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1-255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("must not contain a path separator");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("must not start with '.' or '-'");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

/// The local artifact directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of job `id`.
    pub fn dir(&self, id: JobId) -> PathBuf {
        self.root.join(id.to_string()).join("artifacts")
    }

    /// Where artifact `name` of job `id` lives (the name is validated).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name.
    pub fn path(&self, id: JobId, name: &str) -> Result<PathBuf, Error> {
        validate_name(name)?;
        Ok(self.dir(id).join(name))
    }

    /// Creates job `id`'s directory and returns artifact `name`'s path, for a writer.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Config`] when the directory cannot be made.
    pub async fn create(&self, id: JobId, name: &str) -> Result<PathBuf, Error> {
        let path = self.path(id, name)?;
        tokio::fs::create_dir_all(self.dir(id))
            .await
            .map_err(|e| Error::Config(format!("artifact_dir {}: {e}", self.root.display())))?;
        Ok(path)
    }

    /// Job `id`'s artifacts, by name.
    ///
    /// # Errors
    /// None for a job with no directory (an empty list); I/O errors otherwise.
    pub async fn list(&self, id: JobId) -> Result<Vec<Artifact>, Error> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(self.dir(id)).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::Config(format!("artifacts of job {id}: {e}"))),
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_str().filter(|n| !n.starts_with('.'));
            if let (true, Some(name)) = (meta.is_file(), name) {
                out.push(Artifact {
                    name: name.to_string(),
                    size: meta.len(),
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Ids of the jobs that have a directory here.
    pub async fn job_ids(&self) -> Vec<JobId> {
        let mut ids = Vec::new();
        if let Ok(mut dir) = tokio::fs::read_dir(&self.root).await {
            while let Ok(Some(entry)) = dir.next_entry().await {
                if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                    ids.push(JobId(id));
                }
            }
        }
        ids
    }

    /// Deletes job `id`'s artifacts.
    pub async fn remove(&self, id: JobId) {
        let dir = self.root.join(id.to_string());
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(job = %id, error = %e, "cannot delete artifacts");
            }
        }
    }
}

impl crate::client::Broker {
    /// Deletes the artifacts of jobs whose hash is gone (expired after `result_ttl`, or
    /// deleted); returns how many jobs' files went. Directories exist only for jobs that
    /// existed (uploads and executors need the job), so a missing hash means expired.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn sweep_artifacts(&self) -> Result<usize, Error> {
        let store = self.artifacts();
        let ids = store.job_ids().await;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.exists(self.keys().job(*id));
        }
        let exists: Vec<bool> = {
            let mut c = self.conn().await?;
            pipe.query_async(&mut *c).await?
        };
        let mut removed = 0;
        for (id, alive) in ids.into_iter().zip(exists) {
            if !alive {
                store.remove(id).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The artifact store of this broker's config.
    pub fn artifacts(&self) -> LocalStore {
        LocalStore::new(self.config().artifact_dir.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_job_directory_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "-rf",
            "a\\b",
            "a\nb",
            "a\u{7f}",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} must be refused");
        }
        for good in [
            "spark-submit.attempt-1.log",
            "out.csv",
            "model v2.glm",
            "résumé.txt",
        ] {
            assert!(validate_name(good).is_ok(), "{good:?} must be accepted");
        }
    }
}
