//! A cheap upper bound on the number of polymers of any saturated
//! configuration, so the k-search can stop without the (often hardest)
//! final unsatisfiable test.
//!
//! A site is *must-bind* when every saturated configuration binds it: the
//! limiting side of its type, and both sides when the sides are equal. If
//! all possible partners of a must-bind site lie in one group of monomers
//! that are already known to share a polymer, its monomer joins that group.
//! Closing this rule gives groups that every saturated configuration keeps
//! together, so there are at most `groups` polymers. A group whose own
//! sites cannot bind all its must-bind sites must share its polymer with
//! another group, and one merge fixes at most two such groups, so
//! `groups - ceil(deficient / 2)` is still an upper bound.
//!
//! The bound holds with constraints and blocking clauses too (they only
//! remove configurations, and merges without bond only lower the count).

use std::collections::HashMap;

use super::encode::find;
use super::parse::Problem;

/// An upper bound on the polymer count of `problem`.
pub(crate) fn upper_bound(problem: &Problem) -> usize {
    let n = problem.monomers.len();
    // Per must-bind site: its monomer and the monomers of its partners.
    let mut rules: Vec<(usize, Vec<usize>)> = Vec::new();
    for t in &problem.types {
        if t.normal.is_empty() || t.complement.is_empty() {
            continue;
        }
        let mut sides = vec![(t.limiting().0, t.limiting().1)];
        if t.normal.len() == t.complement.len() {
            sides.push((t.limiting().1, t.limiting().0));
        }
        for (must, other) in sides {
            let mut partners: Vec<usize> =
                other.iter().map(|&s| problem.sites[s].monomer).collect();
            partners.sort_unstable();
            partners.dedup();
            for &s in must {
                rules.push((problem.sites[s].monomer, partners.clone()));
            }
        }
    }
    let mut parent: Vec<usize> = (0..n).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for (m, partners) in &rules {
            let Some((&first, rest)) = partners.split_first() else {
                continue;
            };
            let g = find(&mut parent, first);
            if rest.iter().all(|&p| find(&mut parent, p) == g) {
                let r = find(&mut parent, *m);
                if r != g {
                    parent[r] = g;
                    changed = true;
                }
            }
        }
    }
    // Per group and type: must-bind sites against available partner sites.
    let mut need: HashMap<(usize, usize, bool), usize> = HashMap::new();
    let mut have: HashMap<(usize, usize, bool), usize> = HashMap::new();
    for t in &problem.types {
        if t.normal.is_empty() || t.complement.is_empty() {
            continue;
        }
        let balanced = t.normal.len() == t.complement.len();
        let (lim, _) = t.limiting();
        for (side, sites) in [(false, &t.normal), (true, &t.complement)] {
            let must = balanced || std::ptr::eq(lim.as_ptr(), sites.as_ptr());
            for &s in sites.iter() {
                let g = find(&mut parent, problem.sites[s].monomer);
                let kind = problem.sites[s].kind;
                *have.entry((g, kind, side)).or_default() += 1;
                if must {
                    *need.entry((g, kind, side)).or_default() += 1;
                }
            }
        }
    }
    let mut deficient: Vec<usize> = need
        .iter()
        .filter(|&(&(g, kind, side), &count)| {
            have.get(&(g, kind, !side)).copied().unwrap_or(0) < count
        })
        .map(|(&(g, _, _), _)| g)
        .collect();
    deficient.sort_unstable();
    deficient.dedup();
    let groups = (0..n).filter(|&m| find(&mut parent, m) == m).count();
    groups - deficient.len().div_ceil(2)
}
