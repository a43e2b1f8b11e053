//! From a satisfying assignment to a [`Config`], as
//! `stableconfigs/decoder/Decoder.py` does it.
//!
//! Every true `Rep` starts a polymer; the monomers connected to it by true
//! edges join it (representative first, then input order). Polymers come in
//! representative order. Counting exactly, every polymer has one. Counting
//! as the original, a polymer whose lowest monomer is self-bound has no
//! representative and is left out of the output, as the original's decoder
//! does, so `polymers_count` is always the number of polymers the search
//! proved.

use serde::Serialize;

use super::encode::{find, Encoding};
use super::parse::Problem;

/// One configuration as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Polymers; each a list of monomers; each monomer its site strings
    /// (`"a*:name"` for a named site) then `">name"` if named.
    pub polymers: Vec<Vec<Vec<String>>>,
    /// `polymers.len()`.
    pub polymers_count: usize,
    /// What the configuration is made of, for validation; not serialized.
    #[serde(skip)]
    pub detail: ConfigDetail,
}

/// The raw content of a [`Config`]: indices into the [`Problem`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDetail {
    /// Bound site pairs `(normal, complement)`, sorted.
    pub pairs: Vec<(usize, usize)>,
    /// Monomer indices of each output polymer, in output order.
    pub polymers: Vec<Vec<usize>>,
    /// Merges without a bond (`TOGETHER`/`NOTFREE`), `(lower, higher)`.
    pub merges: Vec<(usize, usize)>,
    /// Monomers marked self-bound (the original's true `Bind(m, m)`; empty
    /// when counting exactly).
    pub self_bound: Vec<usize>,
    /// Whether the constraints applied to this configuration.
    pub constrained: bool,
}

/// The parts of a model the decoder needs, copied out of the solver, in
/// [`Problem`] indices (so models of sub-problems can be merged).
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// True pairs `(normal, complement)`, sorted.
    pub pairs: Vec<(usize, usize)>,
    /// True edges `(lower, higher, optional)`.
    pub edges: Vec<(usize, usize, bool)>,
    /// Monomers with a true `Self`.
    pub self_bound: Vec<usize>,
    /// Monomers with a true `Rep`.
    pub reps: Vec<usize>,
}

impl Snapshot {
    /// Reads the relevant variables through `value`.
    pub(crate) fn take(enc: &Encoding, value: impl Fn(batsat::Lit) -> bool) -> Snapshot {
        let mut pairs: Vec<(usize, usize)> = enc
            .pairs
            .iter()
            .filter(|p| value(p.lit))
            .map(|p| (p.normal, p.complement))
            .collect();
        pairs.sort_unstable();
        Snapshot {
            pairs,
            edges: enc
                .edges
                .iter()
                .filter(|e| value(e.lit))
                .map(|e| (e.a, e.b, e.optional))
                .collect(),
            self_bound: (0..enc.self_flag.len())
                .filter(|&m| enc.self_flag[m].is_some_and(&value))
                .collect(),
            reps: (0..enc.reps.len())
                .filter(|&m| value(enc.reps[m]))
                .collect(),
        }
    }

    /// Adds a snapshot of a sub-problem whose monomer i is `monomers[i]`
    /// and site j is `sites[j]` here.
    pub(crate) fn absorb(&mut self, sub: &Snapshot, monomers: &[usize], sites: &[usize]) {
        self.pairs
            .extend(sub.pairs.iter().map(|&(a, b)| (sites[a], sites[b])));
        self.pairs.sort_unstable();
        self.edges.extend(
            sub.edges
                .iter()
                .map(|&(a, b, o)| (monomers[a], monomers[b], o)),
        );
        self.self_bound
            .extend(sub.self_bound.iter().map(|&m| monomers[m]));
        self.self_bound.sort_unstable();
        self.reps.extend(sub.reps.iter().map(|&m| monomers[m]));
        self.reps.sort_unstable();
    }
}

/// Builds the [`Config`] of a snapshot.
pub(crate) fn decode(problem: &Problem, snap: &Snapshot, constrained: bool) -> Config {
    let n = problem.monomers.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut merges = Vec::new();
    for &(a, b, optional) in &snap.edges {
        if optional {
            merges.push((a, b));
        }
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
    }
    let mut groups = Vec::with_capacity(snap.reps.len());
    for &rep in &snap.reps {
        let root = find(&mut parent, rep);
        let mut group = vec![rep];
        group.extend((0..n).filter(|&m| m != rep && find(&mut parent, m) == root));
        groups.push(group);
    }
    let polymers: Vec<Vec<Vec<String>>> = groups
        .iter()
        .map(|g| g.iter().map(|&m| problem.monomer_json(m)).collect())
        .collect();
    Config {
        polymers_count: polymers.len(),
        polymers,
        detail: ConfigDetail {
            pairs: snap.pairs.clone(),
            polymers: groups,
            merges,
            self_bound: snap.self_bound.clone(),
            constrained,
        },
    }
}
