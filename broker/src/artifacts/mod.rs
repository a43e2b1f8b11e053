//! Artifacts: files a job produced or was given (a spark-submit log, a simulator's CSVs, an
//! uploaded model), kept per job as `<N>/artifacts/<name>`, the same shape as the URL
//! `/jobs/<N>/artifacts/<name>`.
//!
//! [`Artifacts`] is the one handle every caller uses (`Broker::artifacts()`): it checks names
//! ([`validate_name`]) and hands the work to a [`Store`], picked by `artifact_store`:
//!
//! - [`local::LocalStore`] (`local`, the default): files under `artifact_dir`, which
//!   `sluice serve` and the executors must share (one host, or a shared mount). Downloads go
//!   through `warp::fs::dir` (length, type, ranges); a log is written in place while its
//!   program runs.
//! - [`s3::S3Store`] (`s3`): objects in an S3-compatible bucket, keys `<N>/artifacts/<name>`,
//!   configured by the `S3_*` environment ([`s3::S3Settings`]); processes on any host share
//!   it. Uploads are streamed in 5 MiB multipart parts, copies are server-side.
//!
//! Every write is whole or nothing: a file is written aside and renamed, an object appears
//! when its (multipart) upload completes.

pub mod local;
pub mod s3;

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::config::Config;
use crate::error::Error;
use crate::job::JobId;

pub use self::local::LocalStore;
pub use self::s3::{S3Settings, S3Store};

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

/// The error for artifact `name` of job `id` not being there.
pub(crate) fn missing(id: JobId, name: &str) -> Error {
    Error::Missing(format!("artifact {name:?} of job {id}"))
}

/// A body of bytes, read chunk by chunk.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// Which [`Store`] keeps the artifacts (`artifact_store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// Files under `artifact_dir`.
    #[default]
    Local,
    /// Objects in the S3-compatible bucket of the `S3_*` environment.
    S3,
}

impl FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(StoreKind::Local),
            "s3" => Ok(StoreKind::S3),
            _ => Err(format!("{s:?} must be local or s3")),
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Local => "local",
            StoreKind::S3 => "s3",
        })
    }
}

/// An artifact opened for reading: its whole size, the byte range `body` carries, and the
/// bytes.
pub struct Opened {
    /// Size of the whole artifact.
    pub size: u64,
    /// The part of it `body` carries (all of it unless a range was asked for).
    pub range: Range<u64>,
    /// The bytes, streamed.
    pub body: ByteStream,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Where artifacts are kept. [`Artifacts`] validates every name before a store sees it, so
/// implementations may use names as they are. Every write is whole or nothing.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores local file `from` as artifact `name` of job `id`; returns its size.
    async fn put_file(&self, id: JobId, name: &str, from: &Path) -> Result<u64, Error>;

    /// Stores `body` as artifact `name` of job `id` with memory flat whatever its size;
    /// `None` (and nothing stored) once it grows past `limit` bytes. A failing `body` is
    /// [`Error::Invalid`].
    async fn put_stream(
        &self,
        id: JobId,
        name: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<Option<u64>, Error>;

    /// Writes artifact `name` of job `id` to local file `to`; [`Error::Missing`] if absent.
    async fn fetch(&self, id: JobId, name: &str, to: &Path) -> Result<(), Error>;

    /// Artifact `name` of job `from` becomes artifact `to_name` of job `to`.
    async fn copy(&self, from: JobId, name: &str, to: JobId, to_name: &str) -> Result<(), Error>;

    /// The size of artifact `name` of job `id`; [`Error::Missing`] if absent.
    async fn size(&self, id: JobId, name: &str) -> Result<u64, Error>;

    /// Opens artifact `name` of job `id` for reading, bytes `range` only if given (it must
    /// lie within the artifact); [`Error::Missing`] if absent.
    async fn open(&self, id: JobId, name: &str, range: Option<Range<u64>>)
        -> Result<Opened, Error>;

    /// Job `id`'s artifacts, by name (none for a job that has none).
    async fn list(&self, id: JobId) -> Result<Vec<Artifact>, Error>;

    /// Ids of the jobs that have artifacts here.
    async fn job_ids(&self) -> Result<Vec<JobId>, Error>;

    /// Deletes every artifact of job `id` (nothing to do is not an error).
    async fn remove(&self, id: JobId) -> Result<(), Error>;

    /// The local directory the store keeps files in, if it is one (`<dir>/<N>/artifacts/..`).
    fn local_dir(&self) -> Option<&Path> {
        None
    }
}

/// The artifact store of a broker: cheap to clone, names checked here once.
#[derive(Debug, Clone)]
pub struct Artifacts {
    store: Arc<dyn Store>,
}

impl Artifacts {
    /// A handle over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The store `config` names (`artifact_store`): the local `artifact_dir`, or the bucket
    /// of `config.s3`.
    ///
    /// # Errors
    /// [`Error::Config`] when the S3 settings are incomplete or wrong.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        Ok(match config.artifact_store {
            StoreKind::Local => Self::new(Arc::new(LocalStore::new(config.artifact_dir.clone()))),
            StoreKind::S3 => Self::new(Arc::new(S3Store::new(&config.s3)?)),
        })
    }

    /// See [`Store::put_file`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Storage`] when it cannot be stored.
    pub async fn put_file(&self, id: JobId, name: &str, from: &Path) -> Result<u64, Error> {
        validate_name(name)?;
        self.store.put_file(id, name, from).await
    }

    /// See [`Store::put_stream`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name or a body that failed; [`Error::Storage`] when it
    /// cannot be stored.
    pub async fn put_stream(
        &self,
        id: JobId,
        name: &str,
        body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
        limit: u64,
    ) -> Result<Option<u64>, Error> {
        validate_name(name)?;
        self.store.put_stream(id, name, body.boxed(), limit).await
    }

    /// See [`Store::fetch`].
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such artifact; [`Error::Invalid`] for a bad
    /// name; [`Error::Storage`] otherwise.
    pub async fn fetch(&self, id: JobId, name: &str, to: &Path) -> Result<(), Error> {
        validate_name(name)?;
        self.store.fetch(id, name, to).await
    }

    /// See [`Store::copy`].
    ///
    /// # Errors
    /// [`Error::Missing`] when job `from` has no such artifact; [`Error::Invalid`] for a bad
    /// name; [`Error::Storage`] otherwise.
    pub async fn copy(&self, from: JobId, name: &str, to: JobId) -> Result<(), Error> {
        self.copy_as(from, name, to, name).await
    }

    /// Artifact `name` of job `from` becomes artifact `to_name` of job `to` (an input
    /// renamed on the way).
    ///
    /// # Errors
    /// As [`Artifacts::copy`].
    pub async fn copy_as(
        &self,
        from: JobId,
        name: &str,
        to: JobId,
        to_name: &str,
    ) -> Result<(), Error> {
        validate_name(name)?;
        validate_name(to_name)?;
        self.store.copy(from, name, to, to_name).await
    }

    /// See [`Store::size`].
    ///
    /// # Errors
    /// As [`Artifacts::fetch`].
    pub async fn size(&self, id: JobId, name: &str) -> Result<u64, Error> {
        validate_name(name)?;
        self.store.size(id, name).await
    }

    /// See [`Store::open`].
    ///
    /// # Errors
    /// As [`Artifacts::fetch`].
    pub async fn open(
        &self,
        id: JobId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<Opened, Error> {
        validate_name(name)?;
        self.store.open(id, name, range).await
    }

    /// The whole of artifact `name` of job `id`, in memory: for small ones (a log shown in a
    /// reply); stream big ones with [`Artifacts::open`].
    ///
    /// # Errors
    /// As [`Artifacts::fetch`].
    pub async fn read(&self, id: JobId, name: &str) -> Result<Vec<u8>, Error> {
        let mut opened = self.open(id, name, None).await?;
        let mut out = Vec::new();
        while let Some(chunk) = opened.body.next().await {
            let chunk =
                chunk.map_err(|e| Error::Storage(format!("reading {name:?} of job {id}: {e}")))?;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// See [`Store::list`].
    ///
    /// # Errors
    /// [`Error::Storage`] when the store cannot be read.
    pub async fn list(&self, id: JobId) -> Result<Vec<Artifact>, Error> {
        self.store.list(id).await
    }

    /// See [`Store::job_ids`].
    ///
    /// # Errors
    /// [`Error::Storage`] when the store cannot be read.
    pub async fn job_ids(&self) -> Result<Vec<JobId>, Error> {
        self.store.job_ids().await
    }

    /// See [`Store::remove`].
    ///
    /// # Errors
    /// [`Error::Storage`] when something could not be deleted.
    pub async fn remove(&self, id: JobId) -> Result<(), Error> {
        self.store.remove(id).await
    }

    /// The local directory of a local store (for `warp::fs::dir`); `None` for a bucket.
    pub fn local_dir(&self) -> Option<&Path> {
        self.store.local_dir()
    }

    /// Where a writer may write artifact `name` of job `id` in place, readable while it
    /// grows (a running program's log): `Some` for a local store (the job's directory is
    /// made), `None` for a store that takes whole files: write elsewhere, then
    /// [`Artifacts::put_file`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name; [`Error::Storage`] when the directory cannot be made.
    pub async fn live_path(&self, id: JobId, name: &str) -> Result<Option<PathBuf>, Error> {
        validate_name(name)?;
        match self.store.local_dir() {
            Some(root) => LocalStore::new(root).create(id, name).await.map(Some),
            None => Ok(None),
        }
    }
}

impl crate::client::Broker {
    /// Deletes the artifacts of jobs whose hash is gone (expired after `result_ttl`, or
    /// deleted); returns how many jobs' artifacts went. Artifacts exist only for jobs that
    /// existed (uploads and executors need the job), so a missing hash means expired: the
    /// store must be Sluice's own (a bucket shared with other `<N>/` keys would lose them).
    ///
    /// Before deleting, the job id counter is raised past every stored id
    /// (`lua/seq_floor.lua`): after a restore of Redis from an older snapshot no new job
    /// takes an id whose files are still in the store.
    ///
    /// # Errors
    /// Redis errors; the store's when it cannot list. A job whose artifacts cannot be
    /// deleted is logged and tried again at the next sweep.
    pub async fn sweep_artifacts(&self) -> Result<usize, Error> {
        let store = self.artifacts();
        let ids = store.job_ids().await?;
        let Some(highest) = ids.iter().map(|id| id.0).max() else {
            return Ok(0);
        };
        {
            let mut c = self.conn().await?;
            self.scripts().seq_floor(&mut *c, highest).await?;
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
            if alive {
                continue;
            }
            match store.remove(id).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(job = %id, error = %e, "cannot delete artifacts"),
            }
        }
        Ok(removed)
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

    #[test]
    fn store_kinds_round_trip() {
        for kind in [StoreKind::Local, StoreKind::S3] {
            assert_eq!(kind.to_string().parse::<StoreKind>(), Ok(kind));
        }
        assert!("S3 ".parse::<StoreKind>().is_err());
        assert_eq!(StoreKind::default(), StoreKind::Local);
    }

    /// The handle refuses bad names before any store sees them.
    #[tokio::test]
    async fn the_handle_checks_names_for_every_store() {
        let dir = std::env::temp_dir().join(format!("sluice-art-{}", uuid::Uuid::new_v4()));
        let a = Artifacts::new(Arc::new(LocalStore::new(&dir)));
        let to = dir.join("out");
        for bad in ["../x", ".hidden", "a/b"] {
            assert!(matches!(
                a.put_file(JobId(1), bad, &to).await,
                Err(Error::Invalid(_))
            ));
            assert!(matches!(
                a.fetch(JobId(1), bad, &to).await,
                Err(Error::Invalid(_))
            ));
            assert!(matches!(
                a.copy(JobId(1), bad, JobId(2)).await,
                Err(Error::Invalid(_))
            ));
            assert!(matches!(
                a.copy_as(JobId(1), "ok.txt", JobId(2), bad).await,
                Err(Error::Invalid(_))
            ));
            let body = futures::stream::iter([Ok(Bytes::from_static(b"x"))]);
            assert!(matches!(
                a.put_stream(JobId(1), bad, body, 10).await,
                Err(Error::Invalid(_))
            ));
        }
        assert!(!dir.exists(), "nothing written for refused names");
    }
}
