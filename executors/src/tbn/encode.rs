//! The CNF encoding of "a saturated configuration with at least k polymers".
//!
//! # Variables
//! * `Pair(s, t)` for every normal site `s` and complementary site `t` of
//!   the same type (exactly the original's `Pair` variables).
//! * `Edge(m, n)`, `m < n`, for every two monomers that have a potential
//!   pair: `Edge(m, n) <-> OR Pair(s, t)` over the pairs joining them. These
//!   are the bonds of the configuration.
//! * `Optional(m, n)`: a "merge without bond", created only where a
//!   `TOGETHER` or `NOTFREE` constraint can use it, and forced false unless
//!   the constraint activation literal `act` is true.
//! * `Self(m)`, only when counting as the original ([`Counting::Original`]),
//!   for a monomer that carries both `a` and `a*`: true when one of its own
//!   sites pairs with another (the original's `Bind(m, m)`).
//! * `Rep(m)`: m is the representative of its polymer; at most one per
//!   polymer (see below); the number of true `Rep`s is the polymer count.
//! * `Label(x)`: binary component labels (below), and the
//!   sequential-counter variables `Sum(i, k)`.
//!
//! # What is counted
//! A configuration is a saturated pairing; its polymers are the classes of
//! monomers joined by bonds (pairs between two monomers). A pair inside one
//! monomer joins nothing. The optimum is
//!
//! > max over saturated pairings (plus constraint-allowed merges) of the
//! > number of polymers.
//!
//! The original (`stableconfigs/encoder/Encoder.py`) has a `Bind(m, n)`
//! variable for every two monomers of one *potential component* (monomers
//! joined by a chain of possible pairs), closes `Bind` under transitivity
//! (O(n³) clauses), and says `Bind(m, n) -> !Rep(max(m, n))`. A pair inside
//! one monomer makes `Bind(m, m)`, so a self-bound monomer can never be a
//! representative and its polymer is not counted when it is the lowest one:
//! the original under-counts (`a* a a / a* / a a`: 1 polymer; the answer is
//! 2). [`Counting::Original`] reproduces that with `Rep(m) -> !Self(m)` for
//! people comparing with old results; the default counts exactly.
//!
//! `Bind` may be set true without any pair, but merging classes never raises
//! the count, so it only matters for constraints that *want* a merge:
//! `TOGETHER` (forced merges) and `NOTFREE` (some merge). Those get
//! `Optional` edges here, to every monomer of the component, which reaches
//! every equivalence relation the original can use for them.
//!
//! Instead of transitivity, this encoding says what `Rep(m)` needs directly:
//! m is the lowest monomer connected to it (through true `Edge`/`Optional`
//! literals). Each monomer x of a component with members `c_0 < c_1 < ...`
//! gets a binary *label* of ⌈log2(size)⌉ bits with
//!
//! * `label(x) <= rank(x)` (rank = position of x in its component),
//! * `Edge(x, y) -> label(x) == label(y)` (so a polymer has one label),
//! * `Rep(x) -> label(x) == rank(x)`.
//!
//! If `Rep(m)`, every monomer x of m's polymer has `rank(m) = label(x) <=
//! rank(x)`, so m is the lowest and there is at most one `Rep` per polymer;
//! conversely labelling each polymer with the rank of its lowest monomer
//! satisfies everything. So the polymer count is exact, at O(edges × log
//! size) clauses instead of O(size³). `NOTTOGETHER(m, n)` uses a
//! least-fixpoint reachability from m (forced along true edges;
//! over-approximating it never helps the solver); `FREE(m)` forces every
//! edge at m false (and, counting as the original, `Self(m)`).
//!
//! Constraints are guarded by `act`: the first (entropy) search assumes
//! `!act`, the constrained searches assume `act`, so one incremental solver
//! serves every search. "At least k polymers" is an assumption on the
//! counter output `Sum(n, k)`, whose layers are added on demand.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use batsat::Lit;

use super::error::TbnError;
use super::parse::Problem;
use super::polymers::RepMode;
use super::sink::{clause, var, Sink};
use super::symmetry::break_symmetry;
use super::Counting;

/// Sites with at most this many partners get pairwise at-most-one clauses
/// (as the original); larger ones a sequential (ladder) encoding.
const PAIRWISE_AMO_LIMIT: usize = 6;

/// One `Pair(normal, complement)` variable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PairVar {
    /// The normal (`a`) site.
    pub normal: usize,
    /// The complementary (`a*`) site.
    pub complement: usize,
    /// The variable.
    pub lit: Lit,
}

/// One monomer-to-monomer edge of the polymer graph.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    /// Lower monomer.
    pub a: usize,
    /// Higher monomer.
    pub b: usize,
    /// The variable.
    pub lit: Lit,
    /// `true` for a constraint-only merge without bond.
    pub optional: bool,
}

/// What to assume for "at least k polymers".
pub(crate) enum Bound {
    /// k = 0: nothing to assume.
    Trivial,
    /// k exceeds the number of monomers.
    Impossible,
    /// Assume this literal.
    Assume(Lit),
}

/// The variables of an encoded [`Problem`], kept to add counter layers and
/// blocking clauses and to decode models.
pub(crate) struct Encoding {
    /// Every pair variable.
    pub pairs: Vec<PairVar>,
    /// Every edge (bond edges and optional merges).
    pub edges: Vec<Edge>,
    /// `Self(m)` where m has a potential self-pair, counting as the
    /// original only.
    pub self_flag: Vec<Option<Lit>>,
    /// `Rep(m)` for every monomer.
    pub reps: Vec<Lit>,
    /// Index into [`Self::pairs`] of `(normal, complement)`.
    pub pair_of: HashMap<(usize, usize), usize>,
    /// Activates the constraints.
    pub act: Lit,
    /// Activates the symmetry breaking (entropy search only).
    pub sb: Lit,
    /// `counter[k - 1][i]` = `Sum(i + 1, k)` (None where `i + 1 < k`).
    counter: Vec<Vec<Option<Lit>>>,
    /// Set once an empty blocking clause made the problem unsatisfiable.
    exhausted: bool,
}

/// At most one of `lits` is true.
fn at_most_one<S: Sink>(solver: &mut S, lits: &[Lit]) {
    if lits.len() <= PAIRWISE_AMO_LIMIT {
        for (i, &x) in lits.iter().enumerate() {
            for &y in &lits[i + 1..] {
                clause(solver, &[!x, !y]);
            }
        }
        return;
    }
    // Sinz's sequential encoding: s_i = "one of x_0..x_i is true".
    let mut prev: Option<Lit> = None;
    for (i, &x) in lits.iter().enumerate() {
        if let Some(p) = prev {
            clause(solver, &[!x, !p]);
        }
        if i + 1 < lits.len() {
            let s = var(solver);
            clause(solver, &[!x, s]);
            if let Some(p) = prev {
                clause(solver, &[!p, s]);
            }
            prev = Some(s);
        }
    }
}

/// Union-find root with path halving.
pub(crate) fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Encoding {
    /// Encodes `problem` into `solver`: saturation, bonds, polymers,
    /// representatives and (guarded by `act`) the constraints.
    ///
    /// # Errors
    /// The constraint errors of SEEDS §1.6 (`Together`, `NotFree`, `Paired`,
    /// `AnyPaired`), in constraint order, as the original raises them
    /// before any solve.
    pub(crate) fn new<S: Sink>(
        problem: &Problem,
        solver: &mut S,
        stop: &AtomicBool,
        mode: RepMode,
    ) -> Result<Encoding, TbnError> {
        let n = problem.monomers.len();
        let act = var(solver);

        // Pair variables and, per site, the pairs it can be in.
        let mut pairs = Vec::new();
        let mut pair_of: HashMap<(usize, usize), usize> = HashMap::new();
        let mut site_pairs: Vec<Vec<Lit>> = vec![Vec::new(); problem.sites.len()];
        for t in &problem.types {
            for &normal in &t.normal {
                for &complement in &t.complement {
                    let lit = var(solver);
                    pair_of.insert((normal, complement), pairs.len());
                    pairs.push(PairVar {
                        normal,
                        complement,
                        lit,
                    });
                    site_pairs[normal].push(lit);
                    site_pairs[complement].push(lit);
                }
            }
        }
        // Each site in at most one pair; each limiting site in at least one.
        for lits in &site_pairs {
            at_most_one(solver, lits);
        }
        for t in &problem.types {
            for &site in t.limiting().0 {
                clause(solver, &site_pairs[site]);
            }
        }

        // Bonds between monomers, and self-bonds.
        let mut joined: HashMap<(usize, usize), Vec<Lit>> = HashMap::new();
        let mut self_pairs: Vec<Vec<Lit>> = vec![Vec::new(); n];
        for p in &pairs {
            let a = problem.sites[p.normal].monomer;
            let b = problem.sites[p.complement].monomer;
            if a == b {
                self_pairs[a].push(p.lit);
            } else {
                joined.entry((a.min(b), a.max(b))).or_default().push(p.lit);
            }
        }
        let mut self_flag = vec![None; n];
        for (m, lits) in self_pairs.iter().enumerate() {
            if lits.is_empty() || problem.counting == Counting::Exact {
                continue;
            }
            let s = var(solver);
            for &p in lits {
                clause(solver, &[!p, s]);
            }
            // Self(m) -> act | OR self pairs: free only for constraints.
            let mut c = vec![!s, act];
            c.extend(lits);
            clause(solver, &c);
            self_flag[m] = Some(s);
        }
        let mut keys: Vec<(usize, usize)> = joined.keys().copied().collect();
        keys.sort_unstable();
        let mut edges = Vec::with_capacity(keys.len());
        let mut parent: Vec<usize> = (0..n).collect();
        for key in keys {
            let lits = &joined[&key];
            let e = var(solver);
            for &p in lits {
                clause(solver, &[!p, e]);
            }
            let mut c = vec![!e];
            c.extend(lits);
            clause(solver, &c);
            edges.push(Edge {
                a: key.0,
                b: key.1,
                lit: e,
                optional: false,
            });
            let (ra, rb) = (find(&mut parent, key.0), find(&mut parent, key.1));
            parent[ra] = rb;
        }
        let component: Vec<usize> = (0..n).map(|m| find(&mut parent, m)).collect();
        let sb = var(solver);
        // Counting as the original, a monomer's index decides whether its
        // polymer counts, so identical monomers are interchangeable only
        // when nothing can bind itself.
        if problem.counting == Counting::Exact || self_pairs.iter().all(Vec::is_empty) {
            break_symmetry(problem, solver, sb, &pairs, &pair_of);
        }

        let mut enc = Encoding {
            pairs,
            edges,
            self_flag,
            reps: Vec::with_capacity(n),
            pair_of: HashMap::new(),
            act,
            sb,
            counter: Vec::new(),
            exhausted: false,
        };
        let mut optional_of = HashMap::new();
        for c in &problem.constraints {
            enc.encode_constraint(problem, solver, c, &pair_of, &component, &mut optional_of)?;
        }
        enc.pair_of = pair_of;
        enc.encode_exclusions(problem, solver, &component);
        enc.encode_representatives(solver, &component, stop, mode)?;
        Ok(enc)
    }

    /// The optional merge edge between `a` and `b`, created on first use and
    /// false unless `act`.
    pub(crate) fn optional_edge<S: Sink>(
        &mut self,
        solver: &mut S,
        optional_of: &mut HashMap<(usize, usize), Lit>,
        a: usize,
        b: usize,
    ) -> Lit {
        let key = (a.min(b), a.max(b));
        if let Some(&lit) = optional_of.get(&key) {
            return lit;
        }
        let lit = var(solver);
        clause(solver, &[!lit, self.act]);
        optional_of.insert(key, lit);
        self.edges.push(Edge {
            a: key.0,
            b: key.1,
            lit,
            optional: true,
        });
        lit
    }

    /// What to assume for "at least `k` polymers", adding counter layers
    /// `Sum(., 1..=k)` as needed.
    pub(crate) fn at_least<S: Sink>(&mut self, solver: &mut S, k: usize) -> Bound {
        let n = self.reps.len();
        if k == 0 {
            return Bound::Trivial;
        }
        if k > n {
            return Bound::Impossible;
        }
        while self.counter.len() < k {
            let level = self.counter.len() + 1;
            let mut layer: Vec<Option<Lit>> = vec![None; n];
            for i in (level - 1)..n {
                // layer[i] = Sum(i + 1, level): level reps among the first i + 1.
                let s = var(solver);
                let same = if i >= level { layer[i - 1] } else { None };
                let rep = self.reps[i];
                if level == 1 {
                    let mut c = vec![!s, rep];
                    c.extend(same);
                    clause(solver, &c);
                } else {
                    let below = if i > 0 {
                        self.counter[level - 2][i - 1]
                    } else {
                        None
                    };
                    let mut c1 = vec![!s];
                    c1.extend(below);
                    c1.extend(same);
                    clause(solver, &c1);
                    let mut c2 = vec![!s, rep];
                    c2.extend(same);
                    clause(solver, &c2);
                }
                layer[i] = Some(s);
            }
            self.counter.push(layer);
        }
        match self.counter[k - 1][n - 1] {
            Some(l) => Bound::Assume(l),
            None => Bound::Impossible,
        }
    }

    /// Forbids the exact set of true pairs `true_pairs` (`(normal,
    /// complement)` sites) from appearing again, as `encode_unique_solution`.
    /// All saturated pairings have the same size, so this is "a different
    /// pair set". An empty set makes every later search unsatisfiable.
    pub(crate) fn block<S: Sink>(&mut self, solver: &mut S, true_pairs: &[(usize, usize)]) {
        if true_pairs.is_empty() {
            self.exhausted = true;
            return;
        }
        let c: Vec<Lit> = true_pairs
            .iter()
            .filter_map(|key| self.pair_of.get(key))
            .map(|&i| !self.pairs[i].lit)
            .collect();
        clause(solver, &c);
    }

    /// `true` once a blocking clause was empty.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }
}
