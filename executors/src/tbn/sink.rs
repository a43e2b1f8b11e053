//! Where clauses go: the batsat solver, or a DIMACS recorder for trying
//! other SAT solvers on the same encoding.

use std::sync::atomic::AtomicBool;

use batsat::{lbool, Callbacks, Lit, SolverInterface, Var};

use super::encode::{Bound, Encoding};
use super::error::TbnError;
use super::parse::Problem;
use super::polymers::RepMode;

/// A fresh variable as a positive literal.
pub(crate) fn var<S: Sink>(solver: &mut S) -> Lit {
    solver.new_lit(false)
}

/// Adds one clause.
pub(crate) fn clause<S: Sink>(solver: &mut S, lits: &[Lit]) {
    solver.add(lits);
}

/// Where the encoding goes: the SAT solver, or a [`Dimacs`] recorder.
pub(crate) trait Sink {
    /// A fresh variable as a positive literal; `prefer_true` asks the
    /// solver to branch on it as true first.
    fn new_lit(&mut self, prefer_true: bool) -> Lit;
    /// Adds a clause.
    fn add(&mut self, clause: &[Lit]);
}

impl<C: Callbacks> Sink for batsat::Solver<C> {
    fn new_lit(&mut self, prefer_true: bool) -> Lit {
        let pol = if prefer_true {
            lbool::TRUE
        } else {
            lbool::UNDEF
        };
        Lit::new(self.new_var(pol, true), true)
    }
    fn add(&mut self, clause: &[Lit]) {
        let mut c = clause.to_vec();
        self.add_clause_reuse(&mut c);
    }
}

/// Records the encoding as DIMACS CNF, to try other SAT solvers on it.
#[derive(Debug, Default)]
pub struct Dimacs {
    vars: u32,
    clauses: Vec<Vec<Lit>>,
}

impl Sink for Dimacs {
    fn new_lit(&mut self, _prefer_true: bool) -> Lit {
        self.vars += 1;
        Lit::new(Var::unsafe_from_idx(self.vars - 1), true)
    }
    fn add(&mut self, clause: &[Lit]) {
        self.clauses.push(clause.to_vec());
    }
}

impl Dimacs {
    /// The unconstrained "at least `k` polymers" test of `problem` as DIMACS
    /// text (assumptions written as unit clauses).
    ///
    /// # Errors
    /// The constraint errors of SEEDS §1.6 raised while encoding.
    pub fn at_least(problem: &Problem, k: usize) -> Result<String, TbnError> {
        let mut d = Dimacs::default();
        let mut enc = Encoding::new(problem, &mut d, &AtomicBool::new(false), RepMode::Auto)?;
        let (act, sb) = (enc.act, enc.sb);
        d.add(&[!act]);
        d.add(&[sb]);
        match enc.at_least(&mut d, k) {
            Bound::Assume(l) => d.add(&[l]),
            Bound::Impossible => d.add(&[]),
            Bound::Trivial => {}
        }
        let num = |l: &Lit| {
            let v = i64::from(l.var().idx()) + 1;
            if l.sign() {
                v
            } else {
                -v
            }
        };
        let mut out = format!("p cnf {} {}\n", d.vars, d.clauses.len());
        for c in &d.clauses {
            for l in c {
                out.push_str(&num(l).to_string());
                out.push(' ');
            }
            out.push_str("0\n");
        }
        Ok(out)
    }
}
