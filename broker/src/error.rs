//! The broker's one error type, and the codes the Lua scripts return (`lua/*.lua` headers).

use crate::job::{JobId, Status};

/// Negative codes returned by the Lua scripts as the first element of their reply; they
/// mirror the `Returns:` tables in the headers of `lua/*.lua`.
pub mod code {
    /// The job hash does not exist (never created, or expired).
    pub const NOT_FOUND: i64 = -1;
    /// The job is locked (lock.lua).
    pub const LOCKED: i64 = -2;
    /// The job's status does not allow the move.
    pub const ILLEGAL: i64 = -3;
    /// The caller's lease token is not the job's current one.
    pub const STALE_LEASE: i64 = -6;
    /// The job names a cluster that is missing or disabled (submit.lua, fire.lua).
    pub const CLUSTER: i64 = -7;
    /// The caller may not submit to the executor kind (pipeline_run.lua).
    pub const FORBIDDEN: i64 = -8;
    /// An idempotency key was used before with another request (submit.lua).
    pub const CONFLICT: i64 = -9;
}

/// Everything that can go wrong in the broker library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such job, or it has expired.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// Something other than a job (a cluster, a schedule) does not exist.
    #[error("{0} not found")]
    Missing(String),
    /// The job's status does not allow the requested move.
    #[error("job {id} is {status}; cannot {action}")]
    IllegalTransition {
        /// The job.
        id: JobId,
        /// Its current status.
        status: Status,
        /// What was asked, e.g. "stop".
        action: &'static str,
    },
    /// A call for a running attempt carried a token another attempt has replaced.
    #[error("job {0}: lease token is stale (another attempt owns it)")]
    StaleLease(JobId),
    /// The job is locked; stop and retry wait for unlock.
    #[error("job {id} is locked{}", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    Locked {
        /// The job.
        id: JobId,
        /// Who holds the lock and since when, if known.
        holder: Option<String>,
    },
    /// The job names a cluster that cannot run it: `CLUSTER_NOT_FOUND` or `CLUSTER_DISABLED`
    /// (Stand's word).
    #[error("{}", cluster_message(.0))]
    Cluster(String),
    /// The request itself is wrong (bad field, bad value).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A followed job ended other than COMPLETED (`sluice submit --wait`).
    #[error("{0}")]
    Ended(String),
    /// A signal (Ctrl-C, SIGTERM) ended a command that waits.
    #[error("interrupted")]
    Interrupted,
    /// The request contradicts an earlier one (an Idempotency-Key reused with another body).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller holds too much at once (event streams per key) or asks too often.
    #[error("too many: {0}")]
    TooMany(String),
    /// A file is over its size limit (`max_artifact_size`).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The caller is known but may not do this (an executor kind its key was not granted).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Bad configuration, found at start-up.
    #[error("config: {0}")]
    Config(String),
    /// The artifact store (a directory, a bucket) failed to read or write.
    #[error("artifact store: {0}")]
    Storage(String),
    /// A stored value could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// A script answered something its header does not document.
    #[error("unexpected reply from {script}.lua: {reply}")]
    Protocol {
        /// Which script.
        script: &'static str,
        /// What it said.
        reply: String,
    },
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No pooled Redis connection could be had in time.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

fn cluster_message(reason: &str) -> &'static str {
    if reason == "CLUSTER_DISABLED" {
        "the job's cluster is disabled (CLUSTER_DISABLED); enable it or pick another"
    } else {
        "the job's cluster does not exist (CLUSTER_NOT_FOUND); see GET /clusters"
    }
}

impl Error {
    /// Builds the error for a negative script `code`, with the job id, the attempted action
    /// and the status the script returned alongside the code.
    pub fn from_code(
        script: &'static str,
        id: JobId,
        action: &'static str,
        code: i64,
        status: Option<&str>,
        holder: Option<String>,
    ) -> Error {
        let parsed = status.and_then(|s| s.parse::<Status>().ok());
        match (code, parsed) {
            (code::NOT_FOUND, _) => Error::NotFound(id),
            (code::LOCKED, _) => Error::Locked { id, holder },
            (code::STALE_LEASE, _) => Error::StaleLease(id),
            (code::ILLEGAL, Some(status)) => Error::IllegalTransition { id, status, action },
            _ => Error::Protocol {
                script,
                reply: format!("code {code}, status {status:?}"),
            },
        }
    }

    /// True when the error is Redis being away (refused, timed out, pool exhausted), as
    /// opposed to a refusal of the request itself.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            // LOADING (a restart reading its AOF), MASTERDOWN and TRYAGAIN (a replica or a
            // failover in progress), BUSY (a script over lua-time-limit): all pass.
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || matches!(
                        e.code(),
                        Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "BUSY" | "READONLY")
                    )
            }
            _ => false,
        }
    }
}

impl Error {
    /// True when Redis refused a write because it is at `maxmemory` (policy `noeviction`):
    /// nothing was changed, and the same call may succeed once memory is freed.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::Redis(r) if r.code() == Some("OOM"))
    }

    /// True when the call may succeed if simply tried again later: Redis is away
    /// ([`Error::is_unavailable`]) or full ([`Error::is_out_of_memory`]). A refusal of the
    /// request itself (stale lease, illegal move, ...) is not transient.
    pub fn is_transient(&self) -> bool {
        self.is_unavailable() || self.is_out_of_memory()
    }
}

impl From<bb8::RunError<redis::RedisError>> for Error {
    fn from(e: bb8::RunError<redis::RedisError>) -> Self {
        match e {
            bb8::RunError::User(e) => Error::Redis(e),
            bb8::RunError::TimedOut => {
                Error::Unavailable("timed out waiting for a connection".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_script_codes() {
        let id = JobId(3);
        assert!(matches!(
            Error::from_code("stop", id, "stop", -1, None, None),
            Error::NotFound(JobId(3))
        ));
        assert!(matches!(
            Error::from_code("stop", id, "stop", -2, Some("RUNNING"), None),
            Error::Locked { .. }
        ));
        assert!(matches!(
            Error::from_code("complete", id, "complete", -6, Some("RUNNING"), None),
            Error::StaleLease(JobId(3))
        ));
        let e = Error::from_code("stop", id, "stop", -3, Some("COMPLETED"), None);
        assert_eq!(e.to_string(), "job 3 is COMPLETED; cannot stop");
        assert!(matches!(
            Error::from_code("stop", id, "stop", -9, None, None),
            Error::Protocol { .. }
        ));
    }

    #[test]
    fn a_redis_that_is_loading_or_failing_over_is_unavailable_not_broken() {
        // Errors as Redis sends them on the wire.
        let from_wire = |line: &str| -> Error {
            let e = redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
                .and_then(redis::Value::extract_error)
                .expect_err("an error reply");
            Error::Redis(e)
        };
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "MASTERDOWN Link with MASTER is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "BUSY Redis is busy running a script",
            "READONLY You can't write against a read only replica.",
        ] {
            let e = from_wire(line);
            assert!(e.is_unavailable(), "{line}: {e}");
        }
        assert!(!from_wire("ERR wrong number of arguments").is_unavailable());
    }
}
