//! The entropy as a partition problem, when counting exactly.
//!
//! In a saturated configuration every site of a type's limiting side is bound, and a bond
//! never leaves its polymer. So a polymer P needs, for every type t, at least as many sites of
//! t's other side as of its limiting side. Give every monomer m the vector
//!
//! > `v(m)[t]` = sites of t on m on the non-limiting side − sites on the limiting side
//!
//! and a group of monomers can be one or more polymers exactly when its vectors sum to `>= 0`
//! in every type (pair the sites inside the group in any way). Any saturated pairing inside
//! such a group joins it into at most as many polymers as groups it splits into, and every
//! part of that split is again such a group. Hence:
//!
//! > entropy = the most *blocks* (groups with a sum `>= 0`) a partition of the monomers has,
//!
//! and in a partition with the most blocks, any saturated pairing inside a block connects it
//! (otherwise its parts would be blocks too). This model has none of the pair variables'
//! symmetry (which `a*` binds which `a`), which is what makes the last "no more polymers"
//! proof hard for a SAT solver on random TBNs.
//!
//! A block stays inside one *block component* (monomers joined by types in which both have
//! a non-zero entry): its part in each component would be a block of its own. A monomer whose
//! vector is zero (its own sites saturate each other, or it has none that can pair) is a
//! polymer alone. Each component is solved by one of three engines, cheapest first:
//! [`partition_dp`] (an exact dynamic program over subsets, for small ones), the pair
//! encoding's SAT search with a conflict budget (fast on structured TBNs), and a MIP on the
//! block model ([`super::mip`], HiGHS) when the budget runs out.

use std::collections::{BTreeSet, HashMap};

use super::decode::Snapshot;
use super::encode::find;
use super::parse::Problem;

/// Components up to this many monomers go to [`partition_dp`]: it visits about 3^n / 2
/// (block, rest) pairs, 2.4 million at 14 (a few milliseconds).
pub(crate) const DP_MAX: usize = 14;

/// The block model of a problem: each monomer's vector and the block components.
#[derive(Debug, Clone)]
pub(crate) struct Blocks {
    /// Per monomer, its non-zero entries `(type, value)`, by type.
    pub vectors: Vec<Vec<(usize, i32)>>,
    /// Block components with two or more monomers or a non-zero vector, each sorted, in
    /// order of their lowest monomer. Monomers with a zero vector are in none.
    pub components: Vec<Vec<usize>>,
}

impl Blocks {
    /// Builds the model of `problem`.
    pub(crate) fn new(problem: &Problem) -> Blocks {
        let n = problem.monomers.len();
        let mut vectors: Vec<Vec<(usize, i32)>> = vec![Vec::new(); n];
        for (kind, t) in problem.types.iter().enumerate() {
            if t.normal.is_empty() || t.complement.is_empty() {
                continue; // nothing of this type can pair
            }
            let (limiting, _) = t.limiting();
            let mut sum: HashMap<usize, i32> = HashMap::new();
            for &s in t.normal.iter().chain(&t.complement) {
                let one = if limiting.contains(&s) { -1 } else { 1 };
                *sum.entry(problem.sites[s].monomer).or_default() += one;
            }
            for (m, value) in sum {
                if value != 0 {
                    vectors[m].push((kind, value));
                }
            }
        }
        for v in &mut vectors {
            v.sort_unstable();
        }
        let mut parent: Vec<usize> = (0..n).collect();
        let mut holder: HashMap<usize, usize> = HashMap::new();
        for (m, v) in vectors.iter().enumerate() {
            for &(kind, _) in v {
                let first = *holder.entry(kind).or_insert(m);
                let (a, b) = (find(&mut parent, first), find(&mut parent, m));
                parent[b] = a;
            }
        }
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut components: Vec<Vec<usize>> = Vec::new();
        for m in (0..n).filter(|&m| !vectors[m].is_empty()) {
            let root = find(&mut parent, m);
            let i = *index.entry(root).or_insert_with(|| {
                components.push(Vec::new());
                components.len() - 1
            });
            components[i].push(m);
        }
        Blocks {
            vectors,
            components,
        }
    }

    /// Monomers that are polymers alone whatever happens: a zero vector.
    pub(crate) fn alone(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.vectors.len()).filter(|&m| self.vectors[m].is_empty())
    }

    /// Whether `members` sum to `>= 0` in every type.
    pub(crate) fn is_block(&self, members: &[usize]) -> bool {
        let mut sum: HashMap<usize, i32> = HashMap::new();
        for &m in members {
            for &(kind, value) in &self.vectors[m] {
                *sum.entry(kind).or_default() += value;
            }
        }
        sum.values().all(|&v| v >= 0)
    }
}

/// The partition of `component` (at most [`DP_MAX`] monomers) with the most blocks, by
/// dynamic programming over subsets: `best(S)` = the most blocks of a partition of S, taking
/// the block that holds S's first member over every subset of the rest. Blocks come back as
/// monomer lists.
pub(crate) fn partition_dp(blocks: &Blocks, component: &[usize]) -> Vec<Vec<usize>> {
    let s = component.len();
    debug_assert!(s <= DP_MAX && s > 0);
    // Dense vectors over the component's types.
    let mut kinds: Vec<usize> = component
        .iter()
        .flat_map(|&m| blocks.vectors[m].iter().map(|&(k, _)| k))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let width = kinds.len();
    let dense: Vec<Vec<i32>> = component
        .iter()
        .map(|&m| {
            let mut d = vec![0; width];
            for &(k, v) in &blocks.vectors[m] {
                if let Ok(i) = kinds.binary_search(&k) {
                    d[i] = v;
                }
            }
            d
        })
        .collect();
    let full = (1usize << s) - 1;
    // feasible[S]: S's vectors sum to >= 0 everywhere; sums built from S minus its low bit.
    let mut sums = vec![0i32; (full + 1) * width];
    let mut feasible = vec![false; full + 1];
    feasible[0] = true;
    for set in 1..=full {
        let low = set.trailing_zeros() as usize;
        let rest = set & (set - 1);
        let mut ok = true;
        for i in 0..width {
            let v = sums[rest * width + i] + dense[low][i];
            sums[set * width + i] = v;
            ok &= v >= 0;
        }
        feasible[set] = ok;
    }
    drop(sums);
    // best[S] = most blocks of S (-1: none), choice[S] = the block holding S's low bit.
    let mut best = vec![-1i16; full + 1];
    let mut choice = vec![0u32; full + 1];
    best[0] = 0;
    for set in 1..=full {
        let low = set & set.wrapping_neg();
        let rest = set ^ low;
        let mut sub = rest;
        loop {
            let block = low | sub;
            if feasible[block] {
                let left = best[set ^ block];
                if left >= 0 && left + 1 > best[set] {
                    best[set] = left + 1;
                    choice[set] = block as u32;
                }
            }
            if sub == 0 {
                break;
            }
            sub = (sub - 1) & rest;
        }
    }
    let mut out = Vec::new();
    let mut set = full;
    while set != 0 && best[set] > 0 {
        let block = choice[set] as usize;
        out.push(
            (0..s)
                .filter(|&i| block >> i & 1 == 1)
                .map(|i| component[i])
                .collect(),
        );
        set ^= block;
    }
    out
}

/// A saturated pairing that keeps every bond inside its block, as a [`Snapshot`]: in each
/// block and type, the limiting side's sites are paired in order with the other side's;
/// monomers outside `partition` (zero vectors) pair their own sites. `reps` are the lowest
/// monomer of each resulting polymer.
pub(crate) fn snapshot(problem: &Problem, partition: &[Vec<usize>]) -> Snapshot {
    let n = problem.monomers.len();
    let mut block_of: Vec<Option<usize>> = vec![None; n];
    for (b, members) in partition.iter().enumerate() {
        for &m in members {
            block_of[m] = Some(b);
        }
    }
    // Monomers in no block form their own.
    let group = |m: usize| block_of[m].unwrap_or(partition.len() + m);
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for t in problem
        .types
        .iter()
        .filter(|t| !t.normal.is_empty() && !t.complement.is_empty())
    {
        let (limiting, other) = t.limiting();
        let mut free: HashMap<usize, Vec<usize>> = HashMap::new();
        for &s in other.iter().rev() {
            free.entry(group(problem.sites[s].monomer))
                .or_default()
                .push(s);
        }
        for &s in limiting {
            let partner = free
                .get_mut(&group(problem.sites[s].monomer))
                .and_then(Vec::pop);
            if let Some(o) = partner {
                let key = if problem.sites[s].complement {
                    (o, s)
                } else {
                    (s, o)
                };
                pairs.push(key);
            }
        }
    }
    pairs.sort_unstable();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &(a, b) in &pairs {
        let (x, y) = (problem.sites[a].monomer, problem.sites[b].monomer);
        if x != y {
            edges.insert((x.min(y), x.max(y)));
            let (rx, ry) = (find(&mut parent, x), find(&mut parent, y));
            parent[rx] = ry;
        }
    }
    let mut seen = BTreeSet::new();
    let reps = (0..n)
        .filter(|&m| seen.insert(find(&mut parent, m)))
        .collect();
    Snapshot {
        pairs,
        edges: edges.into_iter().map(|(a, b)| (a, b, false)).collect(),
        self_bound: Vec::new(),
        reps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(lines: &[&str]) -> Problem {
        Problem::from_lines(lines, [""; 0]).expect("parses")
    }

    #[test]
    fn vectors_count_the_non_limiting_side_up() {
        // a: 2 normal, 3 complement -> normal limiting; b: 1 vs 1 -> normal limiting.
        let p = problem(&["a a*", "a b", "a* a*", "b*", "c"]);
        let b = Blocks::new(&p);
        assert_eq!(b.vectors[0], []); // a a*: saturates itself
        assert_eq!(b.vectors[1], [(0, -1), (1, -1)]);
        assert_eq!(b.vectors[2], [(0, 2)]);
        assert_eq!(b.vectors[3], [(1, 1)]);
        assert_eq!(b.vectors[4], []); // c cannot pair
        assert_eq!(b.components, [vec![1, 2, 3]]);
        assert_eq!(b.alone().collect::<Vec<_>>(), [0, 4]);
    }

    #[test]
    fn dp_finds_the_most_blocks() {
        // See: issue 14. {m0} alone, {m1, m2}: 2.
        let p = problem(&["a* a a", "a*", "a a"]);
        let b = Blocks::new(&p);
        let mut total = b.alone().count();
        for c in &b.components {
            let parts = partition_dp(&b, c);
            assert!(parts.iter().all(|g| b.is_block(g)));
            total += parts.len();
        }
        assert_eq!(total, 2);
        let p = problem(&["a b*", "a* b", "a", "a* b", "b", "b"]); // SEEDS B1: 4
        let b = Blocks::new(&p);
        let parts: usize = b.components.iter().map(|c| partition_dp(&b, c).len()).sum();
        assert_eq!(parts + b.alone().count(), 4);
    }

    #[test]
    fn a_snapshot_pairs_inside_blocks_only() {
        let p = problem(&["a* a a", "a*", "a a"]);
        let snap = snapshot(&p, &[vec![1, 2]]);
        assert_eq!(snap.reps, [0, 1]);
        assert_eq!(snap.edges, [(1, 2, false)]);
        assert_eq!(snap.pairs.len(), 2);
    }
}
