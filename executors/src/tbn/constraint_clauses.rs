//! The clauses of the constraints (`stableconfigs/encoder/Encoder.py`
//! `encode_constraints_clauses`), all guarded by the activation literal
//! `act`, and the errors raised when a constraint can never hold.

use std::collections::HashMap;

use batsat::Lit;

use super::constraints::Constraint;
use super::encode::Encoding;
use super::error::TbnError;
use super::parse::Problem;
use super::sink::{clause, var, Sink};
use super::Counting;

impl Encoding {
    /// Constraint pass 1, in input order: the errors of SEEDS §1.6, the
    /// optional edges, and every clause that does not need connectivity.
    /// `NOTTOGETHER` and `FREE` are finished in [`Self::encode_exclusions`],
    /// once every edge exists.
    pub(crate) fn encode_constraint<S: Sink>(
        &mut self,
        problem: &Problem,
        solver: &mut S,
        constraint: &Constraint,
        pair_of: &HashMap<(usize, usize), usize>,
        component: &[usize],
        optional_of: &mut HashMap<(usize, usize), Lit>,
    ) -> Result<(), TbnError> {
        let act = self.act;
        let pair = |s: usize, t: usize| -> Option<Lit> {
            let (normal, complement) = if problem.sites[s].complement {
                (t, s)
            } else {
                (s, t)
            };
            pair_of
                .get(&(normal, complement))
                .map(|&i| self.pairs[i].lit)
        };
        let site_pairs = |s: usize| -> Vec<Lit> {
            let t = &problem.types[problem.sites[s].kind];
            t.partners(problem.sites[s].complement)
                .iter()
                .filter_map(|&o| pair(s, o))
                .collect()
        };
        match constraint {
            Constraint::Together(monomers) => {
                // The original iterates a set; duplicates collapse.
                let mut visited: Vec<usize> = Vec::new();
                for &m in monomers {
                    for &o in &visited {
                        if m == o {
                            // A monomer is always with itself; the original
                            // asks for its `Bind(m, m)` (a pair inside m).
                            match (problem.counting, self.self_flag[m]) {
                                (Counting::Exact, _) => {}
                                (Counting::Original, Some(s)) => clause(solver, &[!act, s]),
                                (Counting::Original, None) => return Err(together(problem, m, o)),
                            }
                        } else if component[m] == component[o] {
                            let e = self.optional_edge(solver, optional_of, m, o);
                            clause(solver, &[!act, e]);
                        } else {
                            return Err(together(problem, m, o));
                        }
                    }
                    if !visited.contains(&m) {
                        visited.push(m);
                    }
                }
            }
            Constraint::NotTogether(m, n) if m == n => {
                if let Some(s) = self.self_flag[*m] {
                    clause(solver, &[!act, !s]);
                }
            }
            Constraint::NotTogether(..) | Constraint::Free(_) => {}
            Constraint::NotFree(m) => {
                let m = *m;
                let mut c = vec![!act];
                c.extend(self.self_flag[m]);
                for o in (0..component.len()).filter(|&o| o != m && component[o] == component[m]) {
                    c.push(self.optional_edge(solver, optional_of, m, o));
                }
                if c.len() == 1 {
                    return Err(TbnError::NotFree(problem.monomer_label(m)));
                }
                clause(solver, &c);
            }
            Constraint::Paired(s, t) => match pair(*s, *t) {
                Some(p) => clause(solver, &[!act, p]),
                None => {
                    return Err(TbnError::Paired(
                        problem.site_label(*s),
                        problem.site_label(*t),
                    ));
                }
            },
            Constraint::NotPaired(s, t) => {
                if let Some(p) = pair(*s, *t) {
                    clause(solver, &[!act, !p]);
                }
            }
            Constraint::AnyPaired(s) => {
                let lits = site_pairs(*s);
                if lits.is_empty() {
                    return Err(TbnError::AnyPaired(problem.site_label(*s)));
                }
                let mut c = vec![!act];
                c.extend(lits);
                clause(solver, &c);
            }
            Constraint::NotAnyPaired(s) => {
                for p in site_pairs(*s) {
                    clause(solver, &[!act, !p]);
                }
            }
        }
        Ok(())
    }

    /// Constraint pass 2: `FREE(m)` (no edge at m, no self-bond) and
    /// `NOTTOGETHER(m, n)` (n not reachable from m), over all edges.
    pub(crate) fn encode_exclusions<S: Sink>(
        &mut self,
        problem: &Problem,
        solver: &mut S,
        component: &[usize],
    ) {
        let act = self.act;
        for c in &problem.constraints {
            match *c {
                Constraint::Free(m) => {
                    if let Some(s) = self.self_flag[m] {
                        clause(solver, &[!act, !s]);
                    }
                    for e in self.edges.iter().filter(|e| e.a == m || e.b == m) {
                        clause(solver, &[!act, !e.lit]);
                    }
                }
                Constraint::NotTogether(m, n) if m != n && component[m] == component[n] => {
                    // reach[x]: x is connected to m (forced along edges).
                    let mut reach: HashMap<usize, Lit> = HashMap::new();
                    for x in
                        (0..component.len()).filter(|&x| x != m && component[x] == component[m])
                    {
                        reach.insert(x, var(solver));
                    }
                    for e in &self.edges {
                        for (x, y) in [(e.a, e.b), (e.b, e.a)] {
                            if component[x] != component[m] || y == m {
                                continue;
                            }
                            let ry = reach[&y];
                            if x == m {
                                clause(solver, &[!e.lit, ry]);
                            } else {
                                clause(solver, &[!e.lit, !reach[&x], ry]);
                            }
                        }
                    }
                    clause(solver, &[!act, !reach[&n]]);
                }
                _ => {}
            }
        }
    }
}

/// The error for a `TOGETHER` that no bond path can satisfy.
fn together(problem: &Problem, m: usize, o: usize) -> TbnError {
    TbnError::Together {
        first: problem.monomer_label(m),
        second: problem.monomer_label(o),
    }
}
