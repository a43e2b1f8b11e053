//! The k-search and configuration generation of
//! `stableconfigs/StableConfig.py`, on incremental SAT solvers (batsat, a
//! MiniSat descendant in pure Rust).
//!
//! 1. With constraints or `gen > 1`, encode the whole problem once
//!    (`Encoding::new`); constraint errors surface here, before any solve.
//! 2. Entropy (progress count 1), constraints off. Polymer counts add up
//!    over potential components (no pair, constraint-free bond or polymer
//!    crosses them), so each component gets its own small solver: test k,
//!    and while satisfiable with r polymers test r + 1; the last r is the
//!    component's maximum. The sum is the entropy, and the union of the
//!    component models the stable configuration. If the sum is below
//!    `init_k` (or 0) the original's first test at `init_k` would fail:
//!    [`TbnError::MinPolymersExceedEntropy`].
//! 3. Without constraints, that configuration is the first answer; with
//!    `gen > 1` its pair set is blocked and more are searched on the whole
//!    problem, each from k = `init_k` as the original does.
//! 4. With constraints, up to `gen` constrained configurations are searched
//!    (count 1, 2, ...), each from k = `init_k` again and each blocked after
//!    it is found; an unsatisfiable first test ends generation silently.
//!
//! The original rebuilds a Glucose instance for every k and adds layer k of
//! the counter as unit clauses. Here the counter output is an assumption,
//! so learnt clauses carry over between tests, and a model with r > k
//! polymers skips the tests for k + 1..=r (the answers are the same because
//! "at least k polymers" is monotone in k), and a k above the cheap upper
//! bound of [`super::bound`] is known unsatisfiable without a solve.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use batsat::{lbool, Callbacks, SolverInterface, SolverOpts};
use serde::Serialize;

use std::collections::HashMap;

use super::blocks::{self, partition_dp, Blocks, DP_MAX};
use super::bound::upper_bound;
use super::decode::{decode, Config, Snapshot};
use super::encode::{find, Bound, Encoding};
use super::error::TbnError;
use super::mip::{partition_mip, MipError};
use super::parse::Problem;
use super::polymers::RepMode;
use super::Counting;

/// Fewest time between two progress reports of the same configuration, so
/// tiny problems do not flood the caller (at most ~200 reports a second).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(5);

/// The answer of [`solve`], as the original server returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The configurations found.
    pub configs: Vec<Config>,
    /// `configs.len()`.
    pub count: usize,
    /// Polymer count of the unconstrained stable configuration.
    pub entropy: usize,
}

/// Conflicts the pair encoding's SAT search may spend on one block component of the
/// entropy search before the MIP takes over ([`super::blocks`]): structured TBNs finish
/// well within it; random ones with few site types would spend seconds on the last proof.
const SAT_BUDGET: u64 = 2_000;

/// Lets batsat poll the caller's stop flag at every conflict and restart, and gives up
/// once it has learnt `budget` clauses (one per conflict), if a budget is set.
struct StopFlag<'a> {
    stop: &'a AtomicBool,
    budget: Option<u64>,
    conflicts: u64,
}

impl StopFlag<'_> {
    /// The conflict budget ran out (the stop flag was not the cause).
    fn out_of_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.conflicts >= b)
    }
}

impl Callbacks for StopFlag<'_> {
    fn on_new_clause(&mut self, _clause: &[batsat::Lit], kind: batsat::clause::Kind) {
        if matches!(kind, batsat::clause::Kind::Learnt) {
            self.conflicts += 1;
        }
    }

    fn stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.out_of_budget()
    }
}

/// Rate-limited progress reporting, and the stop flag.
struct Reporter<'a> {
    sink: &'a mut dyn FnMut(usize, usize),
    last: Option<(Instant, usize)>,
    stop: &'a AtomicBool,
}

impl Reporter<'_> {
    /// Fails if the stop flag is set, else reports `(count, k)` unless the
    /// same count was reported very recently.
    fn step(&mut self, count: usize, k: usize) -> Result<(), TbnError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(TbnError::EarlyTermination { count, k });
        }
        let now = Instant::now();
        if let Some((at, c)) = self.last {
            if c == count && now.duration_since(at) < PROGRESS_INTERVAL {
                return Ok(());
            }
        }
        self.last = Some((now, count));
        (self.sink)(count, k);
        Ok(())
    }
}

/// One encoded problem on its own solver.
struct Search<'a, 'p> {
    problem: &'p Problem,
    solver: batsat::Solver<StopFlag<'a>>,
    enc: Encoding,
    /// No configuration has more polymers than this ([`upper_bound`]).
    bound: usize,
}

impl<'a, 'p> Search<'a, 'p> {
    /// Encodes `problem` on a fresh solver that gives up after `budget` conflicts, if any
    /// ([`Search::out_of_budget`]).
    fn new(
        problem: &'p Problem,
        stop: &'a AtomicBool,
        mode: RepMode,
        budget: Option<u64>,
    ) -> Result<Self, TbnError> {
        let flag = StopFlag {
            stop,
            budget,
            conflicts: 0,
        };
        let mut solver = batsat::Solver::new(SolverOpts::default(), flag);
        let enc = Encoding::new(problem, &mut solver, stop, mode)?;
        Ok(Search {
            problem,
            solver,
            enc,
            bound: upper_bound(problem),
        })
    }

    /// The k-search for configuration `count` from `init_k`: the largest
    /// polymer count with its model, or `None` if the first test fails.
    /// `symmetry` enables symmetry breaking (entropy search only); progress
    /// reports k plus `offset`.
    fn k_search(
        &mut self,
        reporter: &mut Reporter<'_>,
        count: usize,
        init_k: usize,
        constrained: bool,
        symmetry: bool,
        offset: usize,
    ) -> Result<Option<(usize, Snapshot)>, TbnError> {
        let mut k = init_k;
        let mut best = None;
        loop {
            // The entropy search's k = 0 probe only fetches a model; it is
            // reported as the first real bound.
            let shown = if k == 0 && symmetry { 1 } else { k };
            reporter.step(count, offset + shown)?;
            if self.enc.exhausted() || k > self.bound {
                break;
            }
            let act = if constrained {
                self.enc.act
            } else {
                !self.enc.act
            };
            let sb = if symmetry { self.enc.sb } else { !self.enc.sb };
            let mut assumptions = vec![act, sb];
            match self.enc.at_least(&mut self.solver, k) {
                Bound::Impossible => break,
                Bound::Trivial => {}
                Bound::Assume(l) => assumptions.push(l),
            }
            let result = self.solver.solve_limited(&assumptions);
            if result == lbool::TRUE {
                let solver = &self.solver;
                let snap = Snapshot::take(&self.enc, |l| solver.value_lit(l) == lbool::TRUE);
                let r = snap.reps.len();
                best = Some((r, snap));
                k = r + 1;
            } else if result == lbool::FALSE {
                break;
            } else if self.out_of_budget() {
                return Ok(None);
            } else {
                return Err(TbnError::EarlyTermination {
                    count,
                    k: offset + k,
                });
            }
        }
        Ok(best)
    }

    /// The search stopped because its conflict budget ran out.
    fn out_of_budget(&self) -> bool {
        self.solver.cb().out_of_budget() && !self.solver.cb().stop.load(Ordering::Relaxed)
    }

    /// Searches more configurations until `total` exist, each from
    /// `init_k`, blocking each pair set found.
    fn generate(
        &mut self,
        reporter: &mut Reporter<'_>,
        configs: &mut Vec<Config>,
        total: usize,
        init_k: usize,
    ) -> Result<(), TbnError> {
        let constrained = !self.problem.constraints.is_empty();
        let mut counter = configs.len();
        while counter < total {
            let found = self.k_search(reporter, counter + 1, init_k, constrained, false, 0)?;
            let Some((_, snap)) = found.filter(|(r, _)| *r > 0) else {
                break;
            };
            self.enc.block(&mut self.solver, &snap.pairs);
            configs.push(decode(self.problem, &snap, constrained));
            counter += 1;
        }
        Ok(())
    }
}

/// Which engine the exact entropy search gives a block component (tests force each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))] // the forced engines are for tests
pub(crate) enum Engine {
    /// The dynamic program if small, else SAT within a budget, else the MIP.
    Auto,
    /// The dynamic program if small, else SAT without a budget.
    Dp,
    /// The pair encoding's SAT search, without a budget.
    Sat,
    /// The MIP.
    Mip,
}

/// The entropy search: the stable configuration's polymer count and a model of it.
fn entropy(
    problem: &Problem,
    reporter: &mut Reporter<'_>,
    stop: &AtomicBool,
    (mode, engine): (RepMode, Engine),
) -> Result<(usize, Snapshot), TbnError> {
    match problem.counting {
        Counting::Exact => exact_entropy(problem, reporter, stop, mode, engine),
        Counting::Original => original_entropy(problem, reporter, stop, mode),
    }
}

/// Counting exactly: the most blocks of the block model ([`super::blocks`]), per block
/// component by the cheapest engine that finishes: the dynamic program for small ones, else
/// the pair encoding's SAT search within [`SAT_BUDGET`] conflicts, else the MIP (and if
/// HiGHS fails, the SAT search without a budget). Every engine yields blocks; the
/// configuration pairs sites inside them.
fn exact_entropy(
    problem: &Problem,
    reporter: &mut Reporter<'_>,
    stop: &AtomicBool,
    mode: RepMode,
    engine: Engine,
) -> Result<(usize, Snapshot), TbnError> {
    let blocks = Blocks::new(problem);
    let mut partition: Vec<Vec<usize>> = Vec::new();
    let mut total = blocks.alone().count();
    for component in &blocks.components {
        reporter.step(1, total + 1)?;
        let small = component.len() <= DP_MAX;
        let parts = if small && matches!(engine, Engine::Auto | Engine::Dp) {
            partition_dp(&blocks, component)
        } else {
            let (sub, _) = problem.restrict(component)?;
            let sat = |budget| -> Result<Option<Vec<Vec<usize>>>, TbnError> {
                let mut search = Search::new(&sub, stop, mode, budget)?;
                let found = search.k_search(
                    &mut Reporter {
                        sink: &mut |_, _| {},
                        last: None,
                        stop,
                    },
                    1,
                    0,
                    false,
                    true,
                    total,
                )?;
                if search.out_of_budget() {
                    return Ok(None);
                }
                let (_, snap) = found.ok_or(TbnError::EarlyTermination { count: 1, k: total })?;
                Ok(Some(polymers(&snap, component)))
            };
            let first = match engine {
                Engine::Auto => sat(Some(SAT_BUDGET))?,
                Engine::Dp | Engine::Sat => sat(None)?,
                Engine::Mip => None,
            };
            match first {
                Some(parts) => parts,
                None => match partition_mip(&blocks, component, stop) {
                    Ok(parts) => parts,
                    Err(MipError::Stopped) => {
                        return Err(TbnError::EarlyTermination {
                            count: 1,
                            k: total + 1,
                        })
                    }
                    Err(MipError::Unsolved(why)) => {
                        tracing::warn!(%why, "the MIP did not solve a component; SAT search instead");
                        sat(None)?.ok_or(TbnError::EarlyTermination { count: 1, k: total })?
                    }
                },
            }
        };
        total += parts.len();
        partition.extend(parts);
    }
    let snap = blocks::snapshot(problem, &partition);
    debug_assert_eq!(
        snap.reps.len(),
        total,
        "a block of an optimal partition split"
    );
    Ok((snap.reps.len(), snap))
}

/// The polymers of a sub-problem's model (monomer `i` of the sub-problem is `members[i]`).
fn polymers(snap: &Snapshot, members: &[usize]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..members.len()).collect();
    for &(a, b, _) in &snap.edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        parent[ra] = rb;
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, &m) in members.iter().enumerate() {
        groups.entry(find(&mut parent, i)).or_default().push(m);
    }
    groups.into_values().collect()
}

/// Counting as the original: each potential component on its own solver, from k = 0, with
/// symmetry breaking. Returns the total and the merged model.
fn original_entropy(
    problem: &Problem,
    reporter: &mut Reporter<'_>,
    stop: &AtomicBool,
    mode: RepMode,
) -> Result<(usize, Snapshot), TbnError> {
    let mut total = 0;
    let mut merged = Snapshot::default();
    for members in problem.components() {
        let (sub, sites) = problem.restrict(&members)?;
        let mut search = Search::new(&sub, stop, mode, None)?;
        let (r, snap) = search
            .k_search(reporter, 1, 0, false, true, total)?
            .ok_or(TbnError::EarlyTermination { count: 1, k: total })?;
        total += r;
        merged.absorb(&snap, &members, &sites);
    }
    Ok((total, merged))
}

/// Computes the stable configuration(s) of `problem`, as the original's
/// `get_stable_config(tbn, constraints, gen, init_k)`.
///
/// `progress(count, k)` is called before each SAT test (count = 1-based
/// configuration index, k = polymer bound tested), at most about 200 times
/// a second for the same configuration. `stop` is polled before each test
/// and during it (at every solver conflict).
///
/// # Errors
/// The constraint errors of SEEDS §1.6, [`TbnError::MinPolymersExceedEntropy`]
/// when the stable configuration has fewer than `init_k` polymers (or none),
/// and [`TbnError::EarlyTermination`] when `stop` is raised.
pub fn solve(
    problem: &Problem,
    gen: usize,
    init_k: usize,
    progress: &mut dyn FnMut(usize, usize),
    stop: &AtomicBool,
) -> Result<Answer, TbnError> {
    solve_with(
        problem,
        gen,
        init_k,
        progress,
        stop,
        (RepMode::Auto, Engine::Auto),
    )
}

/// [`solve`] with a chosen representative encoding and entropy engine (tests run each).
pub(crate) fn solve_with(
    problem: &Problem,
    gen: usize,
    init_k: usize,
    progress: &mut dyn FnMut(usize, usize),
    stop: &AtomicBool,
    (mode, engine): (RepMode, Engine),
) -> Result<Answer, TbnError> {
    let mut reporter = Reporter {
        sink: progress,
        last: None,
        stop,
    };
    if stop.load(Ordering::Relaxed) {
        return Err(TbnError::EarlyTermination { count: 0, k: 0 });
    }
    let constrained = !problem.constraints.is_empty();
    // The whole problem is encoded first, so constraint errors come before
    // any search, as in the original.
    let mut global = if constrained || gen > 1 {
        Some(Search::new(problem, stop, mode, None)?)
    } else {
        None
    };
    let (entropy, original) = entropy(problem, &mut reporter, stop, (mode, engine))?;
    if let Some(search) = global.as_mut() {
        // No configuration has more polymers than the stable one.
        search.bound = search.bound.min(entropy);
    }
    if entropy == 0 || entropy < init_k {
        // Where the original's first test (at init_k) fails.
        reporter.step(1, init_k.max(entropy + 1))?;
        return Err(TbnError::MinPolymersExceedEntropy(init_k));
    }
    let mut configs = Vec::new();
    if !constrained {
        configs.push(decode(problem, &original, false));
    }
    if let Some(search) = global.as_mut() {
        if !constrained {
            search.enc.block(&mut search.solver, &original.pairs);
        }
        search.generate(&mut reporter, &mut configs, gen, init_k)?;
    }
    Ok(Answer {
        count: configs.len(),
        configs,
        entropy,
    })
}
