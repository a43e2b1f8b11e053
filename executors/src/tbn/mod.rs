//! Exact solver for thermodynamic binding networks (TBN): the stable
//! configurations of StableConfigs (`BensonKHuang/StableConfigs`), same
//! input, constraints, errors and answers, on an incremental SAT encoding.
//!
//! # Layout
//! * [`parse`]: the text format and the parsed [`Problem`];
//! * [`constraints`]: constraint lines;
//! * [`bound`]: a cheap upper bound that spares the last, hardest test;
//! * [`encode`]: the CNF encoding (its docs explain it and why it gives the
//!   original's answers);
//! * `polymers`, `constraint_clauses`, `symmetry`, `sink`: parts of the
//!   encoding (representatives, constraints, symmetry breaking, clause sink);
//! * [`search`]: the k-search, `gen` and `init_k`, progress and stopping;
//! * [`decode`]: models to [`Config`]s;
//! * [`validate`]: an independent check of a returned configuration;
//! * [`error`]: [`TbnError`], with the original messages.
//!
//! ```text
//! let problem = Problem::parse(&request)?;
//! let answer = solve(&problem, request.gen, request.init_k, &mut |c, k| .., &stop)?;
//! ```

pub mod bound;
mod constraint_clauses;
pub mod constraints;
pub mod decode;
pub mod encode;
pub mod error;
pub mod parse;
mod polymers;
pub mod search;
mod sink;
mod symmetry;
pub mod validate;

#[cfg(test)]
mod tests;

use serde::Deserialize;

pub use decode::{Config, ConfigDetail};
pub use error::TbnError;
pub use parse::Problem;
pub use search::{solve, Answer};
pub use sink::Dimacs;

/// A solve request in the original server's JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Request {
    /// One token list per monomer line.
    pub monomers: Vec<Vec<String>>,
    /// One token list per constraint line.
    #[serde(default)]
    pub constraints: Vec<Vec<String>>,
    /// How many configurations to generate.
    #[serde(default = "one")]
    pub gen: usize,
    /// Polymer count the search starts at.
    #[serde(default = "one")]
    pub init_k: usize,
}

/// Default of `gen` and `init_k`.
fn one() -> usize {
    1
}

impl Problem {
    /// Parses a request the way `server/tasks.py` does: each inner list is
    /// joined with spaces and parsed as one line.
    ///
    /// # Errors
    /// The parse errors of SEEDS §1.6.
    pub fn parse(req: &Request) -> Result<Problem, TbnError> {
        Problem::from_lines(
            req.monomers.iter().map(|t| t.join(" ")),
            req.constraints.iter().map(|t| t.join(" ")),
        )
    }
}
