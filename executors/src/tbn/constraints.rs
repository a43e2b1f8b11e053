//! Constraint lines (`KEYWORD arg ...`), as `stableconfigs/common/Constraint.py`
//! and `Parser.parse_constraint` define them.
//!
//! Parsing only checks the keyword, the argument count and that every name
//! exists. What a constraint means, and the errors raised when it can never
//! hold, live in the encoder ([`super::encode`]).

use super::error::TbnError;
use super::parse::Problem;

/// Starts a comment.
const COMMENT: char = '#';

/// One parsed constraint. Monomer and site arguments are indices into
/// [`Problem::monomers`] and [`Problem::sites`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// All listed monomers are in one polymer (any number of arguments).
    Together(Vec<usize>),
    /// The two monomers are in different polymers.
    NotTogether(usize, usize),
    /// The monomer shares its polymer with no other monomer (counting as
    /// the original, its own sites may not pair with each other either).
    Free(usize),
    /// The monomer shares its polymer with another monomer (counting as the
    /// original, a pair inside it also does).
    NotFree(usize),
    /// The two sites are bound to each other.
    Paired(usize, usize),
    /// The two sites are not bound to each other.
    NotPaired(usize, usize),
    /// The site is bound.
    AnyPaired(usize),
    /// The site is unbound.
    NotAnyPaired(usize),
}

/// What a keyword's arguments name.
enum ArgKind {
    Monomer,
    Site,
}

/// Keyword table: name, argument count (`None` = any), argument kind.
fn keyword(kind: &str) -> Option<(Option<usize>, ArgKind)> {
    Some(match kind {
        "TOGETHER" => (None, ArgKind::Monomer),
        "NOTTOGETHER" => (Some(2), ArgKind::Monomer),
        "FREE" | "NOTFREE" => (Some(1), ArgKind::Monomer),
        "PAIRED" | "NOTPAIRED" => (Some(2), ArgKind::Site),
        "ANYPAIRED" | "NOTANYPAIRED" => (Some(1), ArgKind::Site),
        _ => return None,
    })
}

/// Parses one constraint line. Blank and comment-only lines give `Ok(None)`.
///
/// # Errors
/// [`TbnError::ConstraintArgumentCount`], [`TbnError::NonexistentBindingSite`],
/// [`TbnError::NonexistentMonomer`], [`TbnError::InvalidConstraint`].
pub(crate) fn parse_constraint(
    problem: &Problem,
    line: &str,
) -> Result<Option<Constraint>, TbnError> {
    let mut tokens: Vec<&str> = Vec::new();
    for raw in line.split_whitespace() {
        match raw.find(COMMENT) {
            Some(0) => break,
            Some(at) => {
                tokens.push(&raw[..at]);
                break;
            }
            None => tokens.push(raw),
        }
    }
    let Some((&kind, args)) = tokens.split_first() else {
        return Ok(None);
    };
    let Some((count, arg_kind)) = keyword(kind) else {
        return Err(TbnError::InvalidConstraint {
            line: line.into(),
            kind: kind.into(),
        });
    };
    if let Some(expected) = count {
        if args.len() != expected {
            return Err(TbnError::ConstraintArgumentCount {
                line: line.into(),
                kind: kind.into(),
                expected,
                actual: args.len(),
            });
        }
    }
    let mut ids = Vec::with_capacity(args.len());
    for &arg in args {
        let id = match arg_kind {
            ArgKind::Site => problem.site_names.get(arg).copied().ok_or_else(|| {
                TbnError::NonexistentBindingSite {
                    line: line.into(),
                    name: arg.into(),
                }
            })?,
            ArgKind::Monomer => problem.monomer_names.get(arg).copied().ok_or_else(|| {
                TbnError::NonexistentMonomer {
                    line: line.into(),
                    name: arg.into(),
                }
            })?,
        };
        ids.push(id);
    }
    let arg = |i: usize| ids.get(i).copied().unwrap_or_default();
    Ok(Some(match kind {
        "TOGETHER" => Constraint::Together(ids.clone()),
        "NOTTOGETHER" => Constraint::NotTogether(arg(0), arg(1)),
        "FREE" => Constraint::Free(arg(0)),
        "NOTFREE" => Constraint::NotFree(arg(0)),
        "PAIRED" => Constraint::Paired(arg(0), arg(1)),
        "NOTPAIRED" => Constraint::NotPaired(arg(0), arg(1)),
        "ANYPAIRED" => Constraint::AnyPaired(arg(0)),
        _ => Constraint::NotAnyPaired(arg(0)),
    }))
}
