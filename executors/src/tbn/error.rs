//! Every failure the TBN solver reports, with the original StableConfigs
//! message text (`stableconfigs/common/CustomExceptions.py`) as `Display`.
//!
//! All variants correspond to a subclass of the original `TBNException`, so a
//! compatibility face answers all of them with HTTP 401 and `str(e)`.

/// A TBN input, constraint or search failure. `Display` is byte-for-byte the
/// original exception's `__str__`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TbnError {
    /// No monomer line produced a monomer.
    #[error("Input contains no monomers.")]
    EmptyProblem,
    /// A `>` token with nothing after it.
    #[error(
        "Empty Monomer name. '{line}'. Note that any whitespace after the monomer name keyword is ignored."
    )]
    EmptyMonomerName {
        /// The offending input line.
        line: String,
    },
    /// A site token starting with `*` or `:`, or with an empty side around `:`.
    #[error("Invalid BindingSite name. '{line}'")]
    InvalidBindingSiteName {
        /// The offending input line.
        line: String,
    },
    /// A site name (`a:name`) used twice in the whole input.
    #[error("Duplicate BindingSite name. '{line}'")]
    DuplicateBindingSiteName {
        /// The offending input line.
        line: String,
    },
    /// A monomer name (`>name`) used twice.
    #[error("Duplicate Monomer name. '{line}'")]
    DuplicateMonomerName {
        /// The offending input line.
        line: String,
    },
    /// A constraint with the wrong number of arguments.
    #[error("Constraint '{kind}' takes {expected} arguments, got {actual}. '{line}'")]
    ConstraintArgumentCount {
        /// The offending constraint line.
        line: String,
        /// The constraint keyword.
        kind: String,
        /// Arguments the keyword takes.
        expected: usize,
        /// Arguments given.
        actual: usize,
    },
    /// A site constraint naming an unknown site.
    #[error("BindingSite '{name}' does not exist. '{line}'")]
    NonexistentBindingSite {
        /// The offending constraint line.
        line: String,
        /// The unknown site name.
        name: String,
    },
    /// A monomer constraint naming an unknown monomer.
    #[error("Monomer '{name}' does not exist. '{line}'")]
    NonexistentMonomer {
        /// The offending constraint line.
        line: String,
        /// The unknown monomer name.
        name: String,
    },
    /// An unknown constraint keyword.
    #[error("Invalid Constraint '{kind}'. '{line}'")]
    InvalidConstraint {
        /// The offending constraint line.
        line: String,
        /// The unknown keyword.
        kind: String,
    },
    /// `TOGETHER` on two monomers with no potential bond path between them.
    #[error(
        "Monomer [{first}] and Monomer [{second}] cannot be together in any valid configuration."
    )]
    Together {
        /// Name of the monomer being added.
        first: String,
        /// Name of an earlier monomer of the same constraint.
        second: String,
    },
    /// `NOTFREE` on a monomer that can bind nothing.
    #[error("Monomer [{0}] cannot be together with any other Monomer in any valid configuration.")]
    NotFree(String),
    /// `PAIRED` on two sites that cannot form a pair.
    #[error("Binding Site [{0}] and Binding Site [{1}] are not complementary.")]
    Paired(String, String),
    /// `ANYPAIRED` on a site whose complement does not occur.
    #[error("Binding Site [{0}] does not have any complementary binding sites in the system.")]
    AnyPaired(String),
    /// The first search at `init_k` polymers was unsatisfiable.
    #[error(
        "Minimum Polymers [{0}] exceeds the max entropy of TBN system. No Results can be computed. Choose a lower value."
    )]
    MinPolymersExceedEntropy(usize),
    /// The caller's stop flag was raised.
    #[error("Early Termination at count [{count}] min polymers [{k}].")]
    EarlyTermination {
        /// 1-based index of the configuration being searched (0 before any).
        count: usize,
        /// Polymer bound being tested (0 before any).
        k: usize,
    },
}
