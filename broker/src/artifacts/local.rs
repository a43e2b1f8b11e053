//! The local artifact store: `<artifact_dir>/<N>/artifacts/<name>`, files written aside as
//! `.upload-<uuid>` in the job's directory and renamed into place (a file is whole or
//! absent; listings skip dot files).

use std::io::{self, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{missing, Artifact, ByteStream, Opened, Store};
use crate::error::Error;
use crate::job::JobId;

/// Read size of downloads through [`Store::open`].
const READ_CHUNK: usize = 64 * 1024;

/// The local artifact directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_error(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::Storage(format!("{what}: {e}"))
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

    /// Where artifact `name` (already validated) of job `id` lives.
    pub fn path(&self, id: JobId, name: &str) -> PathBuf {
        self.dir(id).join(name)
    }

    /// Creates job `id`'s directory and returns artifact `name`'s path, for a writer.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory cannot be made.
    pub async fn create(&self, id: JobId, name: &str) -> Result<PathBuf, Error> {
        tokio::fs::create_dir_all(self.dir(id))
            .await
            .map_err(|e| io_error(format_args!("artifact_dir {}", self.root.display()), e))?;
        Ok(self.path(id, name))
    }

    /// A fresh path beside artifact `name` of job `id` to write it aside, and its final path.
    async fn aside(&self, id: JobId, name: &str) -> Result<(PathBuf, PathBuf), Error> {
        let path = self.create(id, name).await?;
        let part = path.with_file_name(format!(".upload-{}", uuid::Uuid::new_v4().simple()));
        Ok((part, path))
    }

    /// Renames `part` to `path`, or deletes it when `written` failed.
    async fn settle<T>(part: &Path, path: &Path, written: Result<T, Error>) -> Result<T, Error> {
        let result = match written {
            Ok(v) => tokio::fs::rename(part, path)
                .await
                .map(|()| v)
                .map_err(|e| io_error(format_args!("storing {}", path.display()), e)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(part).await;
        }
        result
    }
}

/// Writes `body` to a new file at `path`; `None` once it grows past `limit` bytes.
async fn write_capped(path: &Path, mut body: ByteStream, limit: u64) -> Result<Option<u64>, Error> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| io_error(format_args!("creating {}", path.display()), e))?;
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Invalid(format!("reading the upload: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Ok(None);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error(format_args!("writing {}", path.display()), e))?;
    }
    file.flush()
        .await
        .map_err(|e| io_error(format_args!("writing {}", path.display()), e))?;
    Ok(Some(size))
}

#[async_trait::async_trait]
impl Store for LocalStore {
    async fn put_file(&self, id: JobId, name: &str, from: &Path) -> Result<u64, Error> {
        let (part, path) = self.aside(id, name).await?;
        let copied = tokio::fs::copy(from, &part)
            .await
            .map_err(|e| io_error(format_args!("copying {}", from.display()), e));
        Self::settle(&part, &path, copied).await
    }

    async fn put_stream(
        &self,
        id: JobId,
        name: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<Option<u64>, Error> {
        let (part, path) = self.aside(id, name).await?;
        match write_capped(&part, body, limit).await {
            Ok(None) => {
                let _ = tokio::fs::remove_file(&part).await;
                Ok(None)
            }
            written => Self::settle(&part, &path, written).await,
        }
    }

    async fn fetch(&self, id: JobId, name: &str, to: &Path) -> Result<(), Error> {
        match tokio::fs::copy(self.path(id, name), to).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.path(id, name).exists() => {
                Err(missing(id, name))
            }
            Err(e) => Err(io_error(
                format_args!("copying {name:?} to {}", to.display()),
                e,
            )),
        }
    }

    async fn copy(&self, from: JobId, name: &str, to: JobId, to_name: &str) -> Result<(), Error> {
        let source = self.path(from, name);
        if !source.is_file() {
            return Err(missing(from, name));
        }
        self.put_file(to, to_name, &source).await.map(|_| ())
    }

    async fn size(&self, id: JobId, name: &str) -> Result<u64, Error> {
        match tokio::fs::metadata(self.path(id, name)).await {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(missing(id, name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing(id, name)),
            Err(e) => Err(io_error(format_args!("artifact {name:?} of job {id}"), e)),
        }
    }

    async fn open(
        &self,
        id: JobId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<Opened, Error> {
        let size = self.size(id, name).await?;
        let what = || format!("reading artifact {name:?} of job {id}");
        let mut file = tokio::fs::File::open(self.path(id, name))
            .await
            .map_err(|e| io_error(what(), e))?;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(Error::Invalid(format!(
                "range {range:?} of a {size}-byte artifact"
            )));
        }
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_error(what(), e))?;
        let reader = file.take(range.end - range.start);
        let body = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK).boxed();
        Ok(Opened { size, range, body })
    }

    async fn list(&self, id: JobId) -> Result<Vec<Artifact>, Error> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(self.dir(id)).await {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_error(format_args!("artifacts of job {id}"), e)),
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

    async fn job_ids(&self) -> Result<Vec<JobId>, Error> {
        let mut ids = Vec::new();
        let mut dir = match tokio::fs::read_dir(&self.root).await {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io_error(format_args!("{}", self.root.display()), e)),
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(JobId(id));
            }
        }
        Ok(ids)
    }

    async fn remove(&self, id: JobId) -> Result<(), Error> {
        let dir = self.root.join(id.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format_args!("deleting {}", dir.display()), e)),
        }
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }
}
