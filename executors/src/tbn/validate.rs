//! An independent check of a returned [`Config`], used by the tests and
//! available to callers: it re-derives everything from the pairs and the
//! merges recorded in [`super::ConfigDetail`], without looking at the solver.

use super::constraints::Constraint;
use super::decode::Config;
use super::encode::find;
use super::parse::Problem;
use super::Counting;

/// Checks `config` against `problem`:
/// * the pairs are complementary, each site is in at most one pair and
///   every site of the limiting side of its type is bound (saturation);
/// * polymers are the connected components of bonds plus recorded merges
///   (a pair inside one monomer joins nothing); every component is output
///   once, representative first, in representative order, and
///   `polymers_count` matches; counting as the original, exactly the
///   components whose lowest monomer is not self-bound are output, and the
///   self-bound marks cover every monomer with an internal pair;
/// * the JSON matches the monomers;
/// * if the configuration is constrained, every constraint holds.
///
/// # Errors
/// A description of the first violation.
pub fn validate(problem: &Problem, config: &Config) -> Result<(), String> {
    let d = &config.detail;
    let n = problem.monomers.len();
    let mut used = vec![false; problem.sites.len()];
    for &(s, t) in &d.pairs {
        let (a, b) = (&problem.sites[s], &problem.sites[t]);
        if a.kind != b.kind || a.complement || !b.complement {
            return Err(format!("pair ({s}, {t}) is not complementary"));
        }
        for x in [s, t] {
            if std::mem::replace(&mut used[x], true) {
                return Err(format!("site {x} is in two pairs"));
            }
        }
    }
    for t in &problem.types {
        if let Some(&s) = t.limiting().0.iter().find(|&&s| !used[s]) {
            return Err(format!("limiting site {s} of type {} is unbound", t.name));
        }
    }
    let mut self_paired = vec![false; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let bonds = d
        .pairs
        .iter()
        .map(|&(s, t)| (problem.sites[s].monomer, problem.sites[t].monomer));
    for (a, b) in bonds.chain(d.merges.iter().copied()) {
        if a == b {
            self_paired[a] = true;
        }
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
    }
    let original = problem.counting == Counting::Original;
    let marked = |m: usize| d.self_bound.contains(&m);
    if original {
        if let Some(m) = (0..n).find(|&m| self_paired[m] && !marked(m)) {
            return Err(format!("monomer {m} pairs with itself but is not marked"));
        }
    } else if !d.self_bound.is_empty() {
        return Err("self-bound marks while counting exactly".into());
    }
    // Expected output: every component (counting as the original, those
    // with an unmarked lowest monomer).
    let mut expected: Vec<Vec<usize>> = Vec::new();
    for m in 0..n {
        let root = find(&mut parent, m);
        let lowest = (0..n).find(|&x| find(&mut parent, x) == root) == Some(m);
        if lowest && !marked(m) {
            expected.push((0..n).filter(|&x| find(&mut parent, x) == root).collect());
        }
    }
    let mut got: Vec<Vec<usize>> = d.polymers.clone();
    for g in &mut got {
        g.sort_unstable();
    }
    if got != expected {
        return Err(format!("polymers {got:?}, expected {expected:?}"));
    }
    if d.polymers.iter().any(|g| g.first() != g.iter().min()) {
        return Err("a polymer does not start with its representative".into());
    }
    if config.polymers_count != d.polymers.len() || config.polymers.len() != d.polymers.len() {
        return Err("polymers_count does not match".into());
    }
    for (g, json) in d.polymers.iter().zip(&config.polymers) {
        let want: Vec<Vec<String>> = g.iter().map(|&m| problem.monomer_json(m)).collect();
        if &want != json {
            return Err(format!("JSON {json:?} does not match monomers {g:?}"));
        }
    }
    if !d.constrained {
        if !d.merges.is_empty() || (0..n).any(|m| marked(m) && !self_paired[m]) {
            return Err("unconstrained configuration with constraint-only merges".into());
        }
        return Ok(());
    }
    let mut same = |a: usize, b: usize| find(&mut parent, a) == find(&mut parent, b);
    let paired = |s: usize, t: usize| d.pairs.contains(&(s, t)) || d.pairs.contains(&(t, s));
    for c in &problem.constraints {
        let ok = match *c {
            Constraint::Together(ref ms) => ms.iter().all(|&m| same(m, ms[0])),
            Constraint::NotTogether(a, b) if a == b => !marked(a),
            Constraint::NotTogether(a, b) => !same(a, b),
            Constraint::Free(m) => !marked(m) && (0..n).all(|x| x == m || !same(x, m)),
            Constraint::NotFree(m) => marked(m) || (0..n).any(|x| x != m && same(x, m)),
            Constraint::Paired(s, t) => paired(s, t),
            Constraint::NotPaired(s, t) => !paired(s, t),
            Constraint::AnyPaired(s) => used[s],
            Constraint::NotAnyPaired(s) => !used[s],
        };
        if !ok {
            return Err(format!("constraint {c:?} does not hold"));
        }
    }
    Ok(())
}
