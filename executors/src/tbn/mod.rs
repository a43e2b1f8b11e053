//! Exact solver for thermodynamic binding networks (TBN): the stable
//! configurations of StableConfigs (`BensonKHuang/StableConfigs`), same
//! input, constraints, errors and answers, on an incremental SAT encoding.
//!
//! # Layout
//! * [`parse`]: the text format and the parsed [`Problem`];
//! * [`constraints`]: constraint lines;
//! * [`bound`]: a cheap upper bound that spares the last, hardest test;
//! * [`encode`]: the CNF encoding (its docs explain it, the exact count and
//!   the original's [`Counting`]);
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

mod blocks;
pub mod bound;
mod constraint_clauses;
pub mod constraints;
pub mod decode;
pub mod encode;
pub mod error;
mod mip;
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

/// How polymers are counted when a monomer's own sites pair with each other.
///
/// A polymer is a set of monomers joined by bonds; a pair inside one monomer
/// joins nothing, so it neither makes nor removes a polymer ([`Counting::Exact`],
/// the model of Breik et al. that StableConfigs cites). The original
/// StableConfigs encodes such a pair as `Bind(m, m)` and then forbids a
/// self-bound monomer from representing its polymer, so it under-counts
/// ([`Counting::Original`], kept only to reproduce old results).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Counting {
    /// The stable configurations of the model (default).
    #[default]
    Exact,
    /// The original StableConfigs' answers, self-binding quirk included.
    Original,
}

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
    /// `"exact"` (default) or `"original"`: see [`Counting`].
    #[serde(default)]
    pub counting: Counting,
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
        let mut problem = Problem::from_lines(
            req.monomers.iter().map(|t| t.join(" ")),
            req.constraints.iter().map(|t| t.join(" ")),
        )?;
        problem.counting = req.counting;
        Ok(problem)
    }
}
