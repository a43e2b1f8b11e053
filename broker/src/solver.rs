//! The contract of jobs of kind `solver` (TBN stable configurations), shared by the executor
//! that runs them (`executors::solver`) and the StableConfigs face that shows them
//! (`http::compat::stableconfigs`): the kind's name, its progress record and its failure
//! classes. Neither side knows the other's text formats; both go through these types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::Job;

/// The executor kind of TBN solves (StableConfigs tasks).
pub const KIND: &str = "solver";

/// How far a solve has got: `count` configurations looked at, `k` the polymer count being
/// searched. Written as the job's `progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Configurations looked at so far.
    pub count: u64,
    /// The polymer count being searched.
    pub k: u64,
}

impl Progress {
    /// The progress of a solver job: its last report, else nothing counted at its `init_k`.
    pub fn of(job: &Job) -> Progress {
        let init_k = job
            .params
            .get("init_k")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        job.progress
            .clone()
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or(Progress {
                count: 0,
                k: init_k,
            })
    }
}

/// Why a solve failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The TBN itself is wrong or has no answer (StableConfigs' TBNException).
    Tbn(String),
    /// Anything else: a malformed request, a crash (StableConfigs' Exception).
    Other(String),
}

/// How a class travels in the job's `error` text.
const TBN: &str = "TBNException: ";
const OTHER: &str = "Exception: ";

impl Failure {
    /// The job's `error` text for this failure.
    pub fn to_error(&self) -> String {
        match self {
            Failure::Tbn(m) => format!("{TBN}{m}"),
            Failure::Other(m) => format!("{OTHER}{m}"),
        }
    }

    /// The failure a solver job's `error` text records (an unclassified text is `Other`).
    pub fn of_error(text: &str) -> Failure {
        match text.strip_prefix(TBN) {
            Some(m) => Failure::Tbn(m.to_string()),
            None => Failure::Other(text.strip_prefix(OTHER).unwrap_or(text).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_round_trip_through_the_error_text() {
        for f in [
            Failure::Tbn("unsatisfiable".into()),
            Failure::Other("bad request".into()),
        ] {
            assert_eq!(Failure::of_error(&f.to_error()), f);
        }
        assert_eq!(Failure::of_error("boom"), Failure::Other("boom".into()));
    }
}
