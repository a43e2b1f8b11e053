//! Brute force over every saturated pairing (and, with constraints, every
//! admissible grouping) of small random TBNs, compared with [`solve`].

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use super::super::constraints::Constraint;
use super::super::encode::find;
use super::super::polymers::RepMode;
use super::super::search::{solve_with, Engine};
use super::super::Counting;
use super::super::*;
use super::check;

/// xorshift64*: tiny deterministic PRNG for reproducible cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Pairing = Vec<(usize, usize)>;

/// Monomer lines of a random TBN: 2-6 monomers of 1-3 sites over 1-3
/// types, every site and monomer named. Half the monomers start with a site
/// and its complement (so they can bind themselves), and sites repeat often
/// (few types, and a site is copied from the one before a third of the time).
fn random_lines(rng: &mut Rng) -> Vec<String> {
    let types = 1 + rng.below(3);
    let monomers = 2 + rng.below(5);
    let mut site = 0;
    (0..monomers)
        .map(|m| {
            let mut kinds: Vec<(u8, bool)> = Vec::new();
            if rng.below(2) == 0 {
                let t = b'a' + rng.below(types) as u8;
                kinds.push((t, false));
                kinds.push((t, true));
            }
            while kinds.len() < 1 + rng.below(3) {
                let kind = match kinds.last() {
                    Some(&last) if rng.below(3) == 0 => last,
                    _ => (b'a' + rng.below(types) as u8, rng.below(2) == 0),
                };
                kinds.push(kind);
            }
            let mut tokens: Vec<String> = kinds
                .iter()
                .map(|&(t, star)| {
                    site += 1;
                    format!("{}{}:s{site}", t as char, if star { "*" } else { "" })
                })
                .collect();
            tokens.push(format!(">m{m}"));
            tokens.join(" ")
        })
        .collect()
}

/// Whether some monomer of `p` can pair with itself.
fn has_self_binder(p: &Problem) -> bool {
    p.monomers.iter().any(|m| {
        m.sites.iter().any(|&a| {
            m.sites.iter().any(|&b| {
                p.sites[a].kind == p.sites[b].kind && p.sites[a].complement != p.sites[b].complement
            })
        })
    })
}

/// Every saturated pairing: each limiting site mapped injectively.
fn pairings(p: &Problem) -> Vec<Pairing> {
    let mut slots: Vec<(usize, Vec<usize>)> = Vec::new();
    for t in &p.types {
        let (lim, other) = t.limiting();
        for &s in lim {
            slots.push((s, other.to_vec()));
        }
    }
    let mut out = Vec::new();
    let mut used = vec![false; p.sites.len()];
    let mut cur = Vec::new();
    fn rec(
        p: &Problem,
        slots: &[(usize, Vec<usize>)],
        i: usize,
        used: &mut [bool],
        cur: &mut Pairing,
        out: &mut Vec<Pairing>,
    ) {
        if i == slots.len() {
            let mut v = cur.clone();
            v.sort_unstable();
            out.push(v);
            return;
        }
        let (s, ref others) = slots[i];
        for &o in others {
            if used[o] {
                continue;
            }
            used[o] = true;
            let pair = if p.sites[s].complement {
                (o, s)
            } else {
                (s, o)
            };
            cur.push(pair);
            rec(p, slots, i + 1, used, cur, out);
            cur.pop();
            used[o] = false;
        }
    }
    rec(p, &slots, 0, &mut used, &mut cur, &mut out);
    out
}

/// Potential components and self-bond variables of the original encoding.
fn structure(p: &Problem) -> (Vec<usize>, Vec<bool>) {
    let n = p.monomers.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut self_var = vec![false; n];
    for t in &p.types {
        for &a in &t.normal {
            for &b in &t.complement {
                let (x, y) = (p.sites[a].monomer, p.sites[b].monomer);
                if x == y {
                    self_var[x] = true;
                }
                let (rx, ry) = (find(&mut parent, x), find(&mut parent, y));
                parent[rx] = ry;
            }
        }
    }
    let comp = (0..n).map(|m| find(&mut parent, m)).collect();
    (comp, self_var)
}

/// Every set partition of the monomers of `p` (as block labels, restricted
/// growth) whose blocks stay inside potential components: no bond or merge
/// can join monomers of two components.
fn partitions(p: &Problem) -> Vec<Vec<usize>> {
    let (comp, _) = structure(p);
    let mut out = Vec::new();
    let mut cur = vec![0; p.monomers.len()];
    fn rec(i: usize, max: usize, comp: &[usize], cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if i == cur.len() {
            out.push(cur.clone());
            return;
        }
        for b in 0..=max {
            if (0..i).any(|x| cur[x] == b && comp[x] != comp[i]) {
                continue;
            }
            cur[i] = b;
            rec(i + 1, max.max(b + 1), comp, cur, out);
        }
    }
    if !cur.is_empty() {
        rec(1, 1, &comp, &mut cur, &mut out);
    }
    out
}

/// The best objective of one pairing under `p.counting`, or `None` when no
/// choice satisfies the constraints.
fn value(p: &Problem, pairing: &Pairing, constrained: bool, parts: &Parts) -> Option<usize> {
    match p.counting {
        Counting::Exact => exact_value(p, pairing, constrained, &parts.blocks),
        Counting::Original => original_value(p, pairing, constrained, parts),
    }
}

/// The groupings [`partitions`] and which monomers may bind themselves,
/// computed once per problem.
struct Parts {
    blocks: Vec<Vec<usize>>,
    self_var: Vec<bool>,
}

impl Parts {
    fn of(p: &Problem) -> Parts {
        Parts {
            blocks: partitions(p),
            self_var: structure(p).1,
        }
    }
}

/// Whether the site constraints (`PAIRED` and its kin) hold for `pairing`.
fn sites_ok(p: &Problem, pairing: &Pairing) -> bool {
    let paired = |s: usize, t: usize| pairing.contains(&(s, t)) || pairing.contains(&(t, s));
    let bound = |s: usize| pairing.iter().any(|&(a, b)| a == s || b == s);
    p.constraints.iter().all(|c| match *c {
        Constraint::Paired(s, t) => paired(s, t),
        Constraint::NotPaired(s, t) => !paired(s, t),
        Constraint::AnyPaired(s) => bound(s),
        Constraint::NotAnyPaired(s) => !bound(s),
        _ => true,
    })
}

/// The model's objective for one pairing: the most polymers over every
/// grouping of the monomers that keeps bonded monomers (a pair between two
/// monomers; a pair inside one joins nothing) together and stays inside
/// potential components (where `TOGETHER` and `NOTFREE` may merge without a
/// bond), and, if `constrained`, satisfies every constraint. A polymer is a
/// block of the grouping, so the count is the number of blocks.
fn exact_value(
    p: &Problem,
    pairing: &Pairing,
    constrained: bool,
    parts: &[Vec<usize>],
) -> Option<usize> {
    let n = p.monomers.len();
    if constrained && !sites_ok(p, pairing) {
        return None;
    }
    let bonds: Vec<(usize, usize)> = pairing
        .iter()
        .map(|&(a, b)| (p.sites[a].monomer, p.sites[b].monomer))
        .filter(|(x, y)| x != y)
        .collect();
    let mut best = None;
    for block in parts {
        let same = |x: usize, y: usize| block[x] == block[y];
        if bonds.iter().any(|&(x, y)| !same(x, y)) {
            continue;
        }
        let ok = !constrained
            || p.constraints.iter().all(|c| match *c {
                Constraint::Together(ref ms) => ms.iter().all(|&m| same(m, ms[0])),
                Constraint::NotTogether(a, b) => a == b || !same(a, b),
                Constraint::Free(m) => (0..n).all(|x| x == m || !same(x, m)),
                Constraint::NotFree(m) => (0..n).any(|x| x != m && same(x, m)),
                _ => true,
            });
        if ok {
            let blocks = (0..n).filter(|&m| (0..m).all(|x| !same(x, m))).count();
            best = best.max(Some(blocks));
        }
    }
    best
}

/// The original's objective for one pairing: the best number of polymers
/// (classes of an equivalence `Bind` containing the bonds, within potential
/// components, whose lowest monomer has `Bind(m, m)` false), or `None` when
/// no choice satisfies the constraints.
fn original_value(
    p: &Problem,
    pairing: &Pairing,
    constrained: bool,
    parts: &Parts,
) -> Option<usize> {
    let n = p.monomers.len();
    let self_var = &parts.self_var;
    let mut self_paired = vec![false; n];
    let mut bonds = Vec::new();
    for &(a, b) in pairing {
        let (x, y) = (p.sites[a].monomer, p.sites[b].monomer);
        if x == y {
            self_paired[x] = true;
        } else {
            bonds.push((x, y));
        }
    }
    if constrained && !sites_ok(p, pairing) {
        return None;
    }
    let selfs: Vec<usize> = (0..n).filter(|&m| self_var[m] && !self_paired[m]).collect();
    let mut best = None;
    for block in &parts.blocks {
        if bonds.iter().any(|&(x, y)| block[x] != block[y]) {
            continue;
        }
        for mask in 0..1usize << selfs.len() {
            let mut s = self_paired.clone();
            for (i, &m) in selfs.iter().enumerate() {
                s[m] = mask >> i & 1 == 1;
            }
            if !constrained && mask != 0 {
                continue;
            }
            let same = |x: usize, y: usize| block[x] == block[y];
            let ok = !constrained
                || p.constraints.iter().all(|c| match *c {
                    Constraint::Together(ref ms) => {
                        let mut seen: Vec<usize> = Vec::new();
                        let mut ok = true;
                        for &m in ms {
                            for &o in &seen {
                                ok &= if m == o { s[m] } else { same(m, o) };
                            }
                            if !seen.contains(&m) {
                                seen.push(m);
                            }
                        }
                        ok
                    }
                    Constraint::NotTogether(a, b) if a == b => !s[a],
                    Constraint::NotTogether(a, b) => !same(a, b),
                    Constraint::Free(m) => !s[m] && (0..n).all(|x| x == m || !same(x, m)),
                    Constraint::NotFree(m) => s[m] || (0..n).any(|x| x != m && same(x, m)),
                    _ => true,
                });
            if !ok {
                continue;
            }
            let count = (0..n)
                .filter(|&m| !s[m] && (0..m).all(|x| !same(x, m)))
                .count();
            best = best.max(Some(count));
        }
    }
    best
}

/// A random constraint the encoder accepts.
fn random_constraint(rng: &mut Rng, p: &Problem, counting: Counting) -> Option<String> {
    let n = p.monomers.len();
    let (comp, self_var) = structure(p);
    let mname = |m: usize| p.monomers[m].name.clone().unwrap_or_default();
    let sname = |s: usize| p.sites[s].name.clone().unwrap_or_default();
    let sites = p.sites.len();
    let partners = |s: usize| {
        p.types[p.sites[s].kind]
            .partners(p.sites[s].complement)
            .to_vec()
    };
    Some(match rng.below(8) {
        0 => {
            let m = rng.below(n);
            let mates: Vec<usize> = (0..n).filter(|&x| x != m && comp[x] == comp[m]).collect();
            if mates.is_empty() {
                return None;
            }
            let second = rng.below(mates.len());
            let mut line = format!("TOGETHER {} {}", mname(m), mname(mates[second]));
            let third = rng.below(mates.len());
            if third != second {
                line += &format!(" {}", mname(mates[third]));
            }
            line
        }
        1 => format!(
            "NOTTOGETHER {} {}",
            mname(rng.below(n)),
            mname(rng.below(n))
        ),
        2 => format!("FREE {}", mname(rng.below(n))),
        3 => {
            let m = rng.below(n);
            let alone = (0..n).all(|x| x == m || comp[x] != comp[m]);
            if alone && (counting == Counting::Exact || !self_var[m]) {
                return None;
            }
            format!("NOTFREE {}", mname(m))
        }
        4 => {
            let s = rng.below(sites);
            let ps = partners(s);
            if ps.is_empty() {
                return None;
            }
            format!("PAIRED {} {}", sname(s), sname(ps[rng.below(ps.len())]))
        }
        5 => format!(
            "NOTPAIRED {} {}",
            sname(rng.below(sites)),
            sname(rng.below(sites))
        ),
        6 => {
            let s = rng.below(sites);
            if partners(s).is_empty() {
                return None;
            }
            format!("ANYPAIRED {}", sname(s))
        }
        _ => format!("NOTANYPAIRED {}", sname(rng.below(sites))),
    })
}

/// Expected polymer counts of successive configurations: each the best
/// value among pairings not yet returned (checked against what `solve`
/// actually returned, since ties may be broken differently).
fn check_sequence(
    p: &Problem,
    answer: &Answer,
    constrained: bool,
    blocked: &mut BTreeSet<Pairing>,
    gen: usize,
) {
    let all = pairings(p);
    let parts = Parts::of(p);
    let start = answer.configs.len().min(if constrained { 0 } else { 1 });
    for (i, c) in answer.configs.iter().enumerate().skip(start) {
        let best = all
            .iter()
            .filter(|x| !blocked.contains(*x))
            .filter_map(|x| value(p, x, constrained, &parts))
            .max();
        assert_eq!(Some(c.polymers_count), best, "config {i} of {p:?}");
        assert_eq!(
            value(p, &c.detail.pairs, constrained, &parts),
            best,
            "config {i} pairs"
        );
        blocked.insert(c.detail.pairs.clone());
    }
    if answer.configs.len() < gen {
        let best = all
            .iter()
            .filter(|x| !blocked.contains(*x))
            .filter_map(|x| value(p, x, constrained, &parts))
            .max();
        assert!(
            best.unwrap_or(0) == 0,
            "stopped early: {best:?} left for {p:?}"
        );
    }
}

#[test]
fn random_tbns_match_brute_force() {
    // Transitive encoding for every component, then labels for every one; and each engine
    // of the exact entropy search.
    for mode in [RepMode::Transitive, RepMode::Labels, RepMode::Auto] {
        random_unconstrained((mode, Engine::Sat), Counting::Exact, 200);
        random_unconstrained((mode, Engine::Auto), Counting::Original, 300);
    }
    random_unconstrained((RepMode::Auto, Engine::Dp), Counting::Exact, 300);
    random_unconstrained((RepMode::Auto, Engine::Mip), Counting::Exact, 300);
}

#[test]
fn random_constrained_tbns_match_brute_force() {
    for mode in [RepMode::Transitive, RepMode::Labels, RepMode::Auto] {
        random_constrained((mode, Engine::Auto), Counting::Exact);
        random_constrained((mode, Engine::Auto), Counting::Original);
    }
}

// See: issue 14. The original counted a polymer whose lowest monomer pairs
// with itself as no polymer at all; on random TBNs with self-binding
// monomers it was wrong on about three cases in four.
#[test]
fn a_thousand_self_binding_tbns_match_brute_force() {
    let checked = random_unconstrained((RepMode::Auto, Engine::Auto), Counting::Exact, 1000);
    assert_eq!(checked, 1000);
}

/// Solves `count` random TBNs that have a self-binding monomer (gen 3) and
/// compares every configuration with the brute force; returns how many.
fn random_unconstrained(mode: (RepMode, Engine), counting: Counting, count: usize) -> usize {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    let mut seed = 0;
    while checked < count {
        seed += 1;
        let lines = random_lines(&mut rng);
        let mut problem = Problem::from_lines(&lines, [""; 0]).expect("parses");
        if !has_self_binder(&problem) {
            continue;
        }
        problem.counting = counting;
        checked += 1;
        let parts = Parts::of(&problem);
        let entropy = pairings(&problem)
            .iter()
            .filter_map(|x| value(&problem, x, false, &parts))
            .max()
            .unwrap_or(0);
        let stop = AtomicBool::new(false);
        let gen = 3;
        match solve_with(&problem, gen, 1, &mut |_, _| {}, &stop, mode) {
            Err(TbnError::MinPolymersExceedEntropy(1)) => assert_eq!(entropy, 0, "seed {seed}"),
            Err(e) => panic!("seed {seed}: {e}"),
            Ok(answer) => {
                check(&problem, &answer);
                assert_eq!(
                    answer.entropy, entropy,
                    "seed {seed} {counting:?} {lines:?}"
                );
                assert_eq!(answer.configs[0].polymers_count, entropy);
                let mut blocked: BTreeSet<Pairing> = BTreeSet::new();
                blocked.insert(answer.configs[0].detail.pairs.clone());
                check_sequence(&problem, &answer, false, &mut blocked, gen);
            }
        }
    }
    checked
}

fn random_constrained(mode: (RepMode, Engine), counting: Counting) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut solved = 0;
    for seed in 0..400 {
        let lines = random_lines(&mut rng);
        let base = Problem::from_lines(&lines, [""; 0]).expect("parses");
        let constraints: Vec<String> = (0..1 + rng.below(2))
            .filter_map(|_| random_constraint(&mut rng, &base, counting))
            .collect();
        if constraints.is_empty() {
            continue;
        }
        let mut problem = Problem::from_lines(&lines, &constraints).expect("parses");
        problem.counting = counting;
        let stop = AtomicBool::new(false);
        let gen = 2;
        match solve_with(&problem, gen, 1, &mut |_, _| {}, &stop, mode) {
            Err(TbnError::MinPolymersExceedEntropy(1)) => {}
            Err(e) => panic!("seed {seed}: {e} {lines:?} {constraints:?}"),
            Ok(answer) => {
                check(&problem, &answer);
                let mut blocked = BTreeSet::new();
                check_sequence(&problem, &answer, true, &mut blocked, gen);
                solved += 1;
            }
        }
    }
    assert!(solved > 100, "only {solved} constrained cases ran");
}

/// Monomer lines of a random mid-size TBN: `n` monomers of 1-3 sites over `types` types,
/// a third of them carrying a site and its complement.
fn mid_lines(rng: &mut Rng, n: usize, types: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut tokens = Vec::new();
            if rng.below(3) == 0 {
                let t = rng.below(types);
                tokens.push(format!("t{t}"));
                tokens.push(format!("t{t}*"));
            }
            for _ in 0..1 + rng.below(3 - tokens.len().min(2)) {
                let star = if rng.below(2) == 0 { "*" } else { "" };
                tokens.push(format!("t{}{star}", rng.below(types)));
            }
            tokens.join(" ")
        })
        .collect()
}

// Too big for the brute force and the dynamic program: the SAT search (no budget), the
// MIP and the automatic choice must agree on every entropy, with valid configurations.
#[test]
fn the_engines_agree_on_mid_size_tbns() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let stop = AtomicBool::new(false);
    for seed in 0..30 {
        let n = 15 + rng.below(6);
        let types = 3 + rng.below(4);
        let lines = mid_lines(&mut rng, n, types);
        let problem = Problem::from_lines(&lines, [""; 0]).expect("parses");
        let mut entropies = Vec::new();
        for engine in [Engine::Sat, Engine::Mip, Engine::Auto] {
            let answer = solve_with(
                &problem,
                1,
                1,
                &mut |_, _| {},
                &stop,
                (RepMode::Auto, engine),
            )
            .unwrap_or_else(|e| panic!("seed {seed} {engine:?}: {e}"));
            check(&problem, &answer);
            entropies.push(answer.entropy);
        }
        assert!(
            entropies.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {entropies:?} for {lines:?}"
        );
    }
}
