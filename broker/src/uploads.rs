//! A job and its files in one request (`POST /jobs` and pipeline runs as
//! `multipart/form-data`, `sluice submit --file`): the job is created *held* (SCHEDULED,
//! claimable by nobody), each file is streamed into its artifacts, and only then does
//! `lua/unhold.lua` make it ready. A failed upload cancels the job; a held job whose API
//! server died mid-upload is canceled at its hold deadline by `lua/promote.lua`. So an
//! executor never starts a job whose files are not all there.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::artifacts::validate_name;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{JobId, NewJob, Status};

/// How long a held job waits for its files before `lua/promote.lua` cancels it.
pub const HOLD: Duration = Duration::from_secs(3600);

/// Most files one submit carries.
pub const MAX_FILES: usize = 100;

/// The files of one submit so far: names checked, none twice, at most [`MAX_FILES`].
#[derive(Debug, Default)]
pub struct Files {
    stored: Vec<(String, u64)>,
}

impl Files {
    /// Checks that `name` may be the next file.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad or repeated name, or one file too many.
    pub fn admit(&self, name: &str) -> Result<(), Error> {
        validate_name(name)?;
        if self.stored.iter().any(|(n, _)| n == name) {
            return Err(Error::Invalid(format!("file {name:?} is given twice")));
        }
        if self.stored.len() >= MAX_FILES {
            return Err(Error::Invalid(format!("at most {MAX_FILES} files per job")));
        }
        Ok(())
    }

    /// The stored files, `(name, size)`, in order.
    pub fn stored(&self) -> &[(String, u64)] {
        &self.stored
    }
}

impl Broker {
    /// Creates `job` held: SCHEDULED, in nobody's queue, until [`Broker::unhold`] (or
    /// canceled after [`HOLD`]). Validated as [`Broker::submit`] does.
    ///
    /// # Errors
    /// As [`Broker::submit`].
    pub async fn submit_held(&self, job: &NewJob) -> Result<JobId, Error> {
        Self::validate(job)?;
        self.check_params(&job.executor, &job.params).await?;
        let mut held = job.clone();
        held.extra.push(("held".into(), hold_deadline()));
        let mut c = self.conn().await?;
        let id = self.scripts().submit(&mut *c, &held).await?.id;
        self.replicated(&mut c).await?;
        Ok(id)
    }

    /// Stores each of `files` (a name and its bytes, in order) as an artifact of held job
    /// `id`, then makes the job ready (PENDING, or SCHEDULED until `run_at`). Any failure
    /// cancels the job: it never runs with some of its files.
    ///
    /// # Errors
    /// What `files` yields; [`Error::Invalid`] for a bad or repeated name or too many files;
    /// [`Error::TooLarge`] past `max_artifact_size`; store and Redis errors.
    pub async fn fill_held<B>(
        &self,
        id: JobId,
        run_at: Option<SystemTime>,
        mut files: impl Stream<Item = Result<(String, B), Error>> + Unpin,
    ) -> Result<(Status, Files), Error>
    where
        B: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let mut stored = Files::default();
        let filled = async {
            while let Some(file) = files.next().await {
                let (name, body) = file?;
                self.put_file(id, &mut stored, &name, body).await?;
            }
            self.unhold(id, run_at).await
        };
        match filled.await {
            Ok(status) => Ok((status, stored)),
            Err(e) => {
                if let Err(stop) = self.stop(id).await {
                    // The hold deadline cancels it anyway (lua/promote.lua).
                    tracing::warn!(job = %id, error = %stop, "could not cancel a job whose upload failed");
                }
                Err(e)
            }
        }
    }

    async fn put_file(
        &self,
        id: JobId,
        files: &mut Files,
        name: &str,
        body: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Result<(), Error> {
        files.admit(name)?;
        let limit = self.config().max_artifact_size;
        match self.artifacts().put_stream(id, name, body, limit).await? {
            Some(size) => {
                files.stored.push((name.to_string(), size));
                Ok(())
            }
            None => Err(Error::TooLarge(format!(
                "file {name:?} is over max_artifact_size ({limit} bytes)"
            ))),
        }
    }

    async fn unhold(&self, id: JobId, run_at: Option<SystemTime>) -> Result<Status, Error> {
        let mut c = self.conn().await?;
        self.scripts().unhold(&mut *c, id, run_at).await
    }
}

/// The hold deadline of a job held now, as the `held` field's unix ms.
pub fn hold_deadline() -> String {
    crate::scripts::unix_ms(SystemTime::now() + HOLD).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_refuse_bad_repeated_and_too_many_names() {
        let mut f = Files::default();
        assert!(f.admit("../x").is_err());
        assert!(f.admit(".hidden").is_err());
        f.stored.push(("a.glm".into(), 1));
        assert!(f.admit("a.glm").is_err());
        assert!(f.admit("b.glm").is_ok());
        for i in 0..MAX_FILES {
            f.stored.push((format!("f{i}"), 1));
        }
        assert!(f.admit("c.glm").is_err());
    }
}
