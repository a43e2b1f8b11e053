//! The text format of the original `stableconfigs/parser/Parser.py` and the
//! parsed [`Problem`].
//!
//! One monomer per line, sites separated by whitespace:
//!
//! ```text
//! a b* c:s1 >m1   # sites a, b* and c (named s1), monomer named m1
//! ```
//!
//! * a `*` anywhere in a site token marks the complement; the site type is
//!   the text before the first `*`;
//! * `token:name` names a site, `>name` names the monomer and ends the line;
//! * `#` starts a comment (a whole token or the rest of a token);
//! * a line without sites creates no monomer (even if it has a `>name`).

use std::collections::HashMap;

use super::constraints::{parse_constraint, Constraint};
use super::error::TbnError;
use super::Counting;

/// Marks a complementary site (`a*`).
const COMPLEMENT: char = '*';
/// Separates a site from its name (`a:s1`).
const SITE_NAME: char = ':';
/// Starts a monomer name (`>m1`).
const MONOMER_NAME: char = '>';
/// Starts a comment.
const COMMENT: char = '#';

/// One binding site of a monomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Index into [`Problem::types`].
    pub kind: usize,
    /// `true` for `a*`.
    pub complement: bool,
    /// The `:name` of the site, if any.
    pub name: Option<String>,
    /// Index of the owning monomer in [`Problem::monomers`].
    pub monomer: usize,
}

/// One monomer: its sites (indices into [`Problem::sites`]) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monomer {
    /// Site indices, in input order.
    pub sites: Vec<usize>,
    /// The `>name` of the monomer, if any.
    pub name: Option<String>,
}

/// All sites of one type, split by side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteType {
    /// The type text (`a` for both `a` and `a*`).
    pub name: String,
    /// Sites without `*`, in input order.
    pub normal: Vec<usize>,
    /// Sites with `*`, in input order.
    pub complement: Vec<usize>,
}

impl SiteType {
    /// The side every site of which must be bound in a saturated
    /// configuration: the smaller side, ties going to the normal side
    /// (`SiteList.get_limiting_site_and_non_limiting_site`). Returns
    /// `(limiting, other)`.
    pub fn limiting(&self) -> (&[usize], &[usize]) {
        if self.normal.len() <= self.complement.len() {
            (&self.normal, &self.complement)
        } else {
            (&self.complement, &self.normal)
        }
    }

    /// The sites a site of this type on side `complement` can pair with.
    pub fn partners(&self, complement: bool) -> &[usize] {
        if complement {
            &self.normal
        } else {
            &self.complement
        }
    }
}

/// A parsed and validated TBN with its constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Every site, numbered in input order.
    pub sites: Vec<Site>,
    /// Every monomer, numbered in input order (the original's monomer id - 1).
    pub monomers: Vec<Monomer>,
    /// Site types in order of first appearance.
    pub types: Vec<SiteType>,
    /// Constraints in input order.
    pub constraints: Vec<Constraint>,
    /// How polymers are counted ([`Counting::Exact`] unless asked otherwise).
    pub counting: Counting,
    pub(crate) monomer_names: HashMap<String, usize>,
    pub(crate) site_names: HashMap<String, usize>,
    type_index: HashMap<String, usize>,
}

impl Problem {
    /// Parses monomer lines and constraint lines as the original CLI and
    /// server do: all monomers first, then [`TbnError::EmptyProblem`] if
    /// there are none, then the constraints.
    ///
    /// # Errors
    /// Any parse error of SEEDS §1.6 (names, argument counts, unknown names).
    pub fn from_lines<M, C>(monomer_lines: M, constraint_lines: C) -> Result<Problem, TbnError>
    where
        M: IntoIterator,
        M::Item: AsRef<str>,
        C: IntoIterator,
        C::Item: AsRef<str>,
    {
        let mut problem = Problem {
            sites: Vec::new(),
            monomers: Vec::new(),
            types: Vec::new(),
            constraints: Vec::new(),
            counting: Counting::Exact,
            monomer_names: HashMap::new(),
            site_names: HashMap::new(),
            type_index: HashMap::new(),
        };
        for line in monomer_lines {
            problem.parse_monomer(line.as_ref())?;
        }
        if problem.monomers.is_empty() {
            return Err(TbnError::EmptyProblem);
        }
        for line in constraint_lines {
            if let Some(constraint) = parse_constraint(&problem, line.as_ref())? {
                problem.constraints.push(constraint);
            }
        }
        Ok(problem)
    }

    /// Parses one monomer line, adding the monomer and its sites.
    fn parse_monomer(&mut self, line: &str) -> Result<(), TbnError> {
        let monomer = self.monomers.len();
        let first_site = self.sites.len();
        let mut name = None;
        for raw in line.split_whitespace() {
            // The original checks for a leading `*` before looking for `#`.
            if raw.starts_with(COMPLEMENT) {
                return Err(TbnError::InvalidBindingSiteName { line: line.into() });
            }
            let (token, commented) = match raw.find(COMMENT) {
                Some(0) => break,
                Some(at) => (&raw[..at], true),
                None => (raw, false),
            };
            if let Some(rest) = token.strip_prefix(MONOMER_NAME) {
                if rest.is_empty() {
                    return Err(TbnError::EmptyMonomerName { line: line.into() });
                }
                name = Some(rest.to_string());
                break;
            }
            let (site_token, site_name) = match token.find(SITE_NAME) {
                Some(0) => return Err(TbnError::InvalidBindingSiteName { line: line.into() }),
                Some(at) => {
                    let site_name = &token[at + 1..];
                    if site_name.is_empty() {
                        return Err(TbnError::InvalidBindingSiteName { line: line.into() });
                    }
                    (&token[..at], Some(site_name))
                }
                None => (token, None),
            };
            let (kind, complement) = match site_token.find(COMPLEMENT) {
                Some(at) => (&site_token[..at], true),
                None => (site_token, false),
            };
            let index = self.sites.len();
            if let Some(site_name) = site_name {
                if self.site_names.contains_key(site_name) {
                    return Err(TbnError::DuplicateBindingSiteName { line: line.into() });
                }
                self.site_names.insert(site_name.to_string(), index);
            }
            let kind = self.type_of(kind);
            if complement {
                self.types[kind].complement.push(index);
            } else {
                self.types[kind].normal.push(index);
            }
            self.sites.push(Site {
                kind,
                complement,
                name: site_name.map(str::to_string),
                monomer,
            });
            if commented {
                break;
            }
        }
        if self.sites.len() == first_site {
            return Ok(());
        }
        if let Some(name) = &name {
            if self.monomer_names.contains_key(name) {
                return Err(TbnError::DuplicateMonomerName { line: line.into() });
            }
            self.monomer_names.insert(name.clone(), monomer);
        }
        self.monomers.push(Monomer {
            sites: (first_site..self.sites.len()).collect(),
            name,
        });
        Ok(())
    }

    /// The index of site type `name`, created on first use.
    fn type_of(&mut self, name: &str) -> usize {
        if let Some(&index) = self.type_index.get(name) {
            return index;
        }
        let index = self.types.len();
        self.types.push(SiteType {
            name: name.to_string(),
            normal: Vec::new(),
            complement: Vec::new(),
        });
        self.type_index.insert(name.to_string(), index);
        index
    }

    /// Potential components: monomers joined by chains of possible pairs
    /// (every `a` can pair with every `a*`), each sorted, in order of their
    /// lowest monomer.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let n = self.monomers.len();
        let mut parent: Vec<usize> = (0..n).collect();
        for t in self
            .types
            .iter()
            .filter(|t| !t.normal.is_empty() && !t.complement.is_empty())
        {
            let mut holders = t
                .normal
                .iter()
                .chain(&t.complement)
                .map(|&s| self.sites[s].monomer);
            if let Some(first) = holders.next() {
                for m in holders {
                    let (a, b) = (
                        super::encode::find(&mut parent, first),
                        super::encode::find(&mut parent, m),
                    );
                    parent[b] = a;
                }
            }
        }
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for m in 0..n {
            let root = super::encode::find(&mut parent, m);
            let i = *index.entry(root).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            });
            out[i].push(m);
        }
        out
    }

    /// The unconstrained sub-problem made of `monomers` (in that order),
    /// with, for each of its sites, the index of that site here.
    ///
    /// # Errors
    /// None in practice: the lines it re-parses come from a parsed problem.
    pub fn restrict(&self, monomers: &[usize]) -> Result<(Problem, Vec<usize>), TbnError> {
        let mut sites = Vec::new();
        let lines: Vec<String> = monomers
            .iter()
            .map(|&m| {
                sites.extend(&self.monomers[m].sites);
                self.monomers[m]
                    .sites
                    .iter()
                    .map(|&s| {
                        let site = &self.sites[s];
                        let star = if site.complement { "*" } else { "" };
                        format!("{}{star}", self.types[site.kind].name)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let mut sub = Problem::from_lines(&lines, [""; 0])?;
        sub.counting = self.counting;
        Ok((sub, sites))
    }

    /// A site as the original prints it: `a`, `a*`, `a*:name`.
    pub fn site_text(&self, site: usize) -> String {
        let s = &self.sites[site];
        let mut text = self.types[s.kind].name.clone();
        if s.complement {
            text.push(COMPLEMENT);
        }
        if let Some(name) = &s.name {
            text.push(SITE_NAME);
            text.push_str(name);
        }
        text
    }

    /// A monomer as the original's JSON: its site strings, then `>name`.
    pub fn monomer_json(&self, monomer: usize) -> Vec<String> {
        let m = &self.monomers[monomer];
        let mut out: Vec<String> = m.sites.iter().map(|&s| self.site_text(s)).collect();
        if let Some(name) = &m.name {
            out.push(format!("{MONOMER_NAME}{name}"));
        }
        out
    }

    /// A monomer's display name for error messages (`None` prints as the
    /// original's `None`, which cannot happen for named-constraint lookups).
    pub(crate) fn monomer_label(&self, monomer: usize) -> String {
        self.monomers[monomer]
            .name
            .clone()
            .unwrap_or_else(|| "None".into())
    }

    /// A site's display name for error messages.
    pub(crate) fn site_label(&self, site: usize) -> String {
        self.sites[site]
            .name
            .clone()
            .unwrap_or_else(|| "None".into())
    }
}
