//! An optional operation log of the runtime: one JSON line per call it makes to Redis for a
//! job (claim, heartbeat, progress, complete, fail, timeout, cancel, release), with the lease
//! token it carried, when it began and ended, and whether Redis accepted it. The chaos suite
//! (`tests/chaos`) checks these lines against the event stream: every accepted write must
//! carry the newest claim's token, and the refused ones show a stale executor changed nothing.
//!
//! Off unless `sluice-command --history FILE` (or [`crate::Options::history`]) names a file.
//! Each line is one `write` on a file opened for appending, so lines of several processes
//! sharing a file do not interleave, and a `kill -9` loses at most the line being written.
//!
//! ```text
//! {"t0":1763900000123456,"t1":1763900000124001,"src":"command-41-a1b2c3","op":"complete","job":7,"attempt":2,"token":"9f0c...","ok":true}
//! {"t0":...,"op":"complete","job":8,"attempt":1,"token":"77ab...","ok":false,"err":"STALE_LEASE"}
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use broker::{Error, JobId};
use serde_json::json;

/// A shared handle on the log file; cheap to clone.
#[derive(Debug, Clone)]
pub struct History {
    file: Arc<Mutex<File>>,
}

/// Microseconds since the Unix epoch, the time unit of the log.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The short name of an error as the log spells it: `STALE_LEASE`, `ILLEGAL:<status>`,
/// `NOT_FOUND`, `UNAVAILABLE` (the call may or may not have landed), else `ERROR`.
pub fn error_kind(e: &Error) -> String {
    match e {
        Error::StaleLease(_) => "STALE_LEASE".into(),
        Error::IllegalTransition { status, .. } => format!("ILLEGAL:{status}"),
        Error::NotFound(_) => "NOT_FOUND".into(),
        e if e.is_unavailable() => "UNAVAILABLE".into(),
        e if e.is_out_of_memory() => "OOM".into(),
        _ => "ERROR".into(),
    }
}

impl History {
    /// Opens (creates) `path` for appending.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Appends one operation. `attempt` is 0 where the caller does not know it.
    #[allow(clippy::too_many_arguments)]
    pub fn record<T>(
        &self,
        t0: u64,
        worker: &str,
        op: &str,
        job: JobId,
        attempt: u32,
        token: &str,
        result: &Result<T, Error>,
    ) {
        let mut line = json!({
            "t0": t0, "t1": now_us(), "src": worker, "op": op, "job": job.0,
            "attempt": attempt, "token": token, "ok": result.is_ok(),
        });
        if let Err(e) = result {
            line["err"] = json!(error_kind(e));
        }
        let mut text = line.to_string();
        text.push('\n');
        let Ok(mut f) = self.file.lock() else {
            return;
        };
        if let Err(e) = f.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "history line not written");
        }
    }
}
