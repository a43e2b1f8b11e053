//! `Rep(m)`: m is the lowest monomer of its polymer and not self-bound,
//! encoded per potential component either with the original's transitive
//! `Bind` relation or with binary labels (see [`super::encode`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use batsat::Lit;

use super::encode::{Edge, Encoding};
use super::error::TbnError;
use super::sink::{clause, var, Sink};

/// How "Rep(m) means m is the lowest monomer of its polymer" is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // the forced modes are for tests
pub(crate) enum RepMode {
    /// Transitive `Bind` for small dense components (where its strong
    /// propagation pays off), binary labels elsewhere.
    Auto,
    /// Always the transitive encoding (tests).
    Transitive,
    /// Always binary labels (tests).
    Labels,
}

/// Largest component [`RepMode::Auto`] encodes transitively (O(size³)).
const TRANSITIVE_MAX_SIZE: usize = 120;

/// Smallest share of monomer pairs with a possible bond for which
/// [`RepMode::Auto`] encodes a component transitively: on sparse binding
/// graphs labels are much smaller and were faster in the benchmarks.
const TRANSITIVE_MIN_DENSITY: f64 = 0.4;

impl RepMode {
    /// Whether a component of `size` monomers and `edges` edges is encoded
    /// transitively.
    pub(crate) fn transitive(self, size: usize, edges: usize) -> bool {
        match self {
            RepMode::Transitive => true,
            RepMode::Labels => false,
            RepMode::Auto => {
                let pairs = size * size.saturating_sub(1) / 2;
                size <= TRANSITIVE_MAX_SIZE
                    && pairs > 0
                    && edges as f64 >= TRANSITIVE_MIN_DENSITY * pairs as f64
            }
        }
    }
}

impl Encoding {
    /// `Rep(m)`: m is not self-bound and is the lowest monomer of its
    /// polymer, through the binary component labels of the module docs.
    pub(crate) fn encode_representatives<S: Sink>(
        &mut self,
        solver: &mut S,
        component: &[usize],
        stop: &AtomicBool,
        mode: RepMode,
    ) -> Result<(), TbnError> {
        let n = component.len();
        // Branch on `Rep` true first: models with many polymers come early.
        self.reps = (0..n).map(|_| solver.new_lit(true)).collect();
        for m in 0..n {
            if let Some(s) = self.self_flag[m] {
                clause(solver, &[!self.reps[m], !s]);
            }
        }
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for (m, &root) in component.iter().enumerate() {
            members.entry(root).or_default().push(m);
        }
        let mut by_component: HashMap<usize, Vec<Edge>> = HashMap::new();
        for e in &self.edges {
            by_component.entry(component[e.a]).or_default().push(*e);
        }
        for (root, list) in &members {
            let Some(edges) = by_component.get(root) else {
                continue;
            };
            if stop.load(Ordering::Relaxed) {
                return Err(TbnError::EarlyTermination { count: 0, k: 0 });
            }
            if mode.transitive(list.len(), edges.len()) {
                self.encode_transitive(solver, list, edges, stop)?;
                continue;
            }
            // Label bits, least significant first; rank = position in `list`.
            let width = usize::BITS - (list.len() - 1).leading_zeros();
            let mut bits: HashMap<usize, Vec<Lit>> = HashMap::new();
            for (rank, &x) in list.iter().enumerate() {
                let b: Vec<Lit> = (0..width).map(|_| var(solver)).collect();
                // label(x) <= rank: for every 0 bit of rank, that bit set
                // and all higher 1 bits of rank set would exceed it.
                for i in 0..width as usize {
                    if rank >> i & 1 == 1 {
                        continue;
                    }
                    let mut c = vec![!b[i]];
                    c.extend(
                        (i + 1..width as usize)
                            .filter(|&j| rank >> j & 1 == 1)
                            .map(|j| !b[j]),
                    );
                    clause(solver, &c);
                }
                // Rep(x) -> label(x) == rank.
                for (i, &bit) in b.iter().enumerate() {
                    let want = if rank >> i & 1 == 1 { bit } else { !bit };
                    clause(solver, &[!self.reps[x], want]);
                }
                bits.insert(x, b);
            }
            for e in edges {
                // Redundant but propagates at once: a representative has no
                // edge to a lower monomer.
                clause(solver, &[!self.reps[e.b], !e.lit]);
                for (&p, &q) in bits[&e.a].iter().zip(&bits[&e.b]) {
                    clause(solver, &[!e.lit, !p, q]);
                    clause(solver, &[!e.lit, p, !q]);
                }
            }
        }
        Ok(())
    }

    /// The original's encoding for one (small) component: `Bind(x, y)` for
    /// every two members, implied by their edges, closed under transitivity,
    /// and `Bind(x, y) -> !Rep(max(x, y))`. O(size³) clauses, but unit
    /// propagation sees "same polymer" directly, which makes the final
    /// unsatisfiable tests much easier than with labels.
    pub(crate) fn encode_transitive<S: Sink>(
        &mut self,
        solver: &mut S,
        list: &[usize],
        edges: &[Edge],
        stop: &AtomicBool,
    ) -> Result<(), TbnError> {
        let c = list.len();
        let rank: HashMap<usize, usize> = list.iter().enumerate().map(|(i, &x)| (x, i)).collect();
        // bind[i][j - i - 1] for ranks i < j.
        let bind: Vec<Vec<Lit>> = (0..c)
            .map(|i| (i + 1..c).map(|_| var(solver)).collect())
            .collect();
        let b = |i: usize, j: usize| -> Lit {
            let (i, j) = (i.min(j), i.max(j));
            bind[i][j - i - 1]
        };
        for e in edges {
            clause(solver, &[!e.lit, b(rank[&e.a], rank[&e.b])]);
        }
        for (j, &x) in list.iter().enumerate().skip(1) {
            for i in 0..j {
                clause(solver, &[!b(i, j), !self.reps[x]]);
            }
        }
        for i in 0..c {
            if stop.load(Ordering::Relaxed) {
                return Err(TbnError::EarlyTermination { count: 0, k: 0 });
            }
            for j in i + 1..c {
                for l in j + 1..c {
                    let (ij, il, jl) = (b(i, j), b(i, l), b(j, l));
                    clause(solver, &[!ij, !jl, il]);
                    clause(solver, &[!ij, !il, jl]);
                    clause(solver, &[!il, !jl, ij]);
                }
            }
        }
        Ok(())
    }
}
