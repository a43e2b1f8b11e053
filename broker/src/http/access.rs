//! Who may see and steer what: every handler that reads or acts on a job goes through these,
//! so the rule is written once (see [`crate::apikeys::Account::may_see`] and `may_act`):
//! another owner's job answers exactly as a missing one.

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::job::{Job, JobId};

/// Refuses inputs that copy the artifacts of a job the caller may not see (400, worded as
/// for a job that does not exist: no existence leak).
///
/// # Errors
/// [`Error::Invalid`] naming the input.
pub async fn inputs_visible(
    b: &Broker,
    who: &Account,
    inputs: &[crate::inputs::Input],
) -> Result<(), Error> {
    for input in inputs {
        if let Some(j) = input.job {
            if visible(b, who, JobId(j)).await.is_err() {
                return Err(Error::Invalid(format!(
                    "input {:?}: job {j} not found",
                    input.name
                )));
            }
        }
    }
    Ok(())
}

/// Reads a job the caller may see; another owner's job is "not found" (no existence leak).
pub async fn visible(b: &Broker, who: &Account, id: JobId) -> Result<Job, Error> {
    let job = b.get(id).await?;
    if who.may_see(job.field("owner")) {
        Ok(job)
    } else {
        Err(Error::NotFound(id))
    }
}

/// Reads a job the caller may steer (stop, lock, retry, upload to); any other job is "not
/// found", as for [`visible`] (no existence leak).
pub async fn steerable(b: &Broker, who: &Account, id: JobId) -> Result<Job, Error> {
    let job = b.get(id).await?;
    if who.may_act(job.field("owner")) {
        Ok(job)
    } else {
        Err(Error::NotFound(id))
    }
}

/// Refuses a caller that is not an admin (403 "<what> are managed by admins").
///
/// # Errors
/// A 403 rejection.
pub fn admin(who: &Account, what: &str) -> Result<(), warp::Rejection> {
    if who.role == crate::apikeys::Role::Admin {
        Ok(())
    } else {
        Err(warp::reject::custom(
            crate::http::errors::Denied::Forbidden(format!("{what} are managed by admins")),
        ))
    }
}
