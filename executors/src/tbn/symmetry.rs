//! Symmetry breaking for the entropy search.

use std::collections::HashMap;

use batsat::Lit;

use super::encode::PairVar;
use super::parse::Problem;
use super::sink::{clause, var, Sink};

/// Symmetry breaking between identical monomers (same sequence of site
/// types and sides), guarded by `sb`. The polymer count is the number of
/// connected components of the bonds, which permuting identical monomers
/// keeps, so sorting identical monomers by the partner of their first site
/// loses no polymer count. A group whose monomers carry both sides of a
/// type is left alone: their first site's partners may lie inside the group,
/// so a permutation moves the partners too. Counting as the original, the
/// caller uses this only when no monomer can bind itself (there a
/// monomer's index decides whether its polymer counts). It is only assumed
/// in the entropy search, where no constraint or blocking clause
/// distinguishes the monomers (later searches must see every pair set).
pub(crate) fn break_symmetry<S: Sink>(
    problem: &Problem,
    solver: &mut S,
    sb: Lit,
    pairs: &[PairVar],
    pair_of: &HashMap<(usize, usize), usize>,
) {
    let mut groups: HashMap<Vec<(usize, bool)>, Vec<usize>> = HashMap::new();
    for (m, mono) in problem.monomers.iter().enumerate() {
        let key = mono
            .sites
            .iter()
            .map(|&s| (problem.sites[s].kind, problem.sites[s].complement))
            .collect();
        groups.entry(key).or_default().push(m);
    }
    let binds_itself =
        |key: &[(usize, bool)]| key.iter().any(|&(kind, side)| key.contains(&(kind, !side)));
    for (_, members) in groups
        .iter()
        .filter(|(key, g)| g.len() > 1 && !binds_itself(key))
    {
        let first = |m: usize| problem.monomers[m].sites[0];
        let site = &problem.sites[first(members[0])];
        let partners = problem.types[site.kind].partners(site.complement);
        if partners.is_empty() {
            continue;
        }
        // p[i][q]: the first site of members[i] pairs with partners[q].
        let lit = |s: usize, o: usize| -> Lit {
            let key = if problem.sites[s].complement {
                (o, s)
            } else {
                (s, o)
            };
            pairs[pair_of[&key]].lit
        };
        let mut prefix_prev: Option<Vec<Lit>> = None;
        for &m in members {
            let s = first(m);
            // prefix[q]: some partner <= q is taken by this first site.
            let mut prefix = Vec::with_capacity(partners.len());
            for (q, &o) in partners.iter().enumerate() {
                let pre = var(solver);
                let mut c = vec![!pre, lit(s, o)];
                if q > 0 {
                    c.push(prefix[q - 1]);
                }
                clause(solver, &c);
                prefix.push(pre);
                if let Some(prev) = &prefix_prev {
                    // The lower identical monomer takes an earlier partner.
                    let mut c = vec![!sb, !lit(s, o)];
                    if q > 0 {
                        c.push(prev[q - 1]);
                    }
                    clause(solver, &c);
                }
            }
            prefix_prev = Some(prefix);
        }
    }
}
