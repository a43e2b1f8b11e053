//! The block model of [`super::blocks`] as a mixed-integer program, solved by HiGHS (the
//! `highs` crate, which builds HiGHS from source): the engine for block components too big
//! for the dynamic program on which the pair encoding's SAT search ran out of its budget.
//! A MIP solver's linear relaxation and cuts see the counting argument behind "no partition
//! has more blocks" that a SAT solver has to rediscover clause by clause.
//!
//! Monomers are ordered deficient first (a negative entry somewhere), then suppliers (none):
//! a block with a deficient member is named after its first member, which is then deficient,
//! and a supplier is never the first of a bigger block (a block of suppliers only splits into
//! more blocks). Variables `A(x, r)`, "x is in the block of r", for `r <= x` with r deficient,
//! and `A(r, r)` for every r:
//!
//! ```text
//! maximise  Σ_r A(r, r)
//! each x:   Σ_r A(x, r) = 1
//! x > r:    A(x, r) <= A(r, r)
//! r, type:  Σ_x v(x)[type] · A(x, r) >= 0      (r deficient, a negative entry in reach)
//! ```
//!
//! The objective is an integer, so an absolute gap below 1 already proves optimality.
//! A stop request interrupts HiGHS through its interrupt callbacks (the only unsafe code
//! in Sluice: a C callback that reads the stop flag).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use highs::{RowProblem, Sense};

use super::blocks::Blocks;

/// Why the MIP gave no partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MipError {
    /// The stop flag was raised.
    Stopped,
    /// HiGHS ended without a proven optimum (the caller falls back to the SAT search).
    Unsolved(String),
}

/// HiGHS' interrupt callback: asks it to stop once the flag passed as `user` is raised.
///
/// # Safety
/// HiGHS calls it with the `user` pointer given to `Highs_setCallback` (an `&AtomicBool`
/// that outlives the solve) and a valid or null `data_in`.
unsafe extern "C" fn interrupt(
    _kind: c_int,
    _message: *const c_char,
    _out: *const highs_sys::HighsCallbackDataOut,
    data_in: *mut highs_sys::HighsCallbackDataIn,
    user: *mut c_void,
) {
    // SAFETY: see the function's contract.
    let stop = unsafe { &*(user as *const AtomicBool) };
    if stop.load(Ordering::Relaxed) && !data_in.is_null() {
        // SAFETY: non-null and owned by HiGHS for the duration of the call.
        unsafe { (*data_in).user_interrupt = 1 };
    }
}

/// The partition of `component` with the most blocks, as monomer lists.
///
/// # Errors
/// [`MipError::Stopped`] when `stop` was raised, [`MipError::Unsolved`] when HiGHS did not
/// prove an optimum.
pub(crate) fn partition_mip(
    blocks: &Blocks,
    component: &[usize],
    stop: &AtomicBool,
) -> Result<Vec<Vec<usize>>, MipError> {
    let deficient = |m: usize| blocks.vectors[m].iter().any(|&(_, v)| v < 0);
    let mut order: Vec<usize> = component
        .iter()
        .copied()
        .filter(|&m| deficient(m))
        .collect();
    let first_supplier = order.len();
    order.extend(component.iter().copied().filter(|&m| !deficient(m)));
    let s = order.len();

    let mut p = RowProblem::new();
    let mut cols: HashMap<(usize, usize), highs::Col> = HashMap::new();
    for x in 0..s {
        for r in (0..=x).filter(|&r| r == x || r < first_supplier) {
            let objective = if r == x { 1.0 } else { 0.0 };
            cols.insert((x, r), p.add_integer_column(objective, 0..=1));
        }
    }
    for x in 0..s {
        let row: Vec<(highs::Col, f64)> = (0..=x)
            .filter_map(|r| cols.get(&(x, r)).map(|&c| (c, 1.0)))
            .collect();
        p.add_row(1.0..=1.0, row);
        for r in 0..x {
            if let Some(&c) = cols.get(&(x, r)) {
                p.add_row(..=0.0, [(c, 1.0), (cols[&(r, r)], -1.0)]);
            }
        }
    }
    for r in 0..first_supplier {
        let mut rows: HashMap<usize, Vec<(highs::Col, f64)>> = HashMap::new();
        let mut negative: HashMap<usize, bool> = HashMap::new();
        for (x, &m) in order.iter().enumerate().skip(r) {
            let Some(&c) = cols.get(&(x, r)) else {
                continue;
            };
            for &(kind, v) in &blocks.vectors[m] {
                rows.entry(kind).or_default().push((c, f64::from(v)));
                *negative.entry(kind).or_default() |= v < 0;
            }
        }
        for (kind, row) in rows {
            if negative.get(&kind).copied().unwrap_or(false) {
                p.add_row(0.0.., row);
            }
        }
    }

    let mut model = p.optimise(Sense::Maximise);
    model.make_quiet();
    model.set_option("threads", 1);
    model.set_option("mip_rel_gap", 0.0);
    model.set_option("mip_abs_gap", 0.5);
    let handle = model.as_mut_ptr();
    let user = stop as *const AtomicBool as *mut c_void;
    // SAFETY: `handle` is the live model; `user` is `stop`, which outlives `solve` below.
    unsafe {
        highs_sys::Highs_setCallback(handle, Some(interrupt), user);
        highs_sys::Highs_startCallback(handle, highs_sys::kHighsCallbackMipInterrupt);
        highs_sys::Highs_startCallback(handle, highs_sys::kHighsCallbackSimplexInterrupt);
    }
    if stop.load(Ordering::Relaxed) {
        return Err(MipError::Stopped);
    }
    let solved = model.solve();
    // Read directly: the `highs` crate's `status()` panics on statuses newer than it
    // (an interrupt is one).
    // SAFETY: the pointer is the solved model's own, alive for this call.
    let status = unsafe { highs_sys::Highs_getModelStatus(solved.as_ptr()) };
    if status != highs_sys::MODEL_STATUS_OPTIMAL {
        if stop.load(Ordering::Relaxed) {
            return Err(MipError::Stopped);
        }
        return Err(MipError::Unsolved(format!("HiGHS model status {status}")));
    }
    let solution = solved.get_solution();
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for (&(x, r), &c) in &cols {
        if solution[c] > 0.5 {
            members.entry(r).or_default().push(order[x]);
        }
    }
    let mut out: Vec<Vec<usize>> = members
        .into_values()
        .map(|mut g| {
            g.sort_unstable();
            g
        })
        .collect();
    out.sort_unstable();
    let covered: usize = out.iter().map(Vec::len).sum();
    if covered != s || !out.iter().all(|g| blocks.is_block(g)) {
        return Err(MipError::Unsolved("not a partition into blocks".into()));
    }
    Ok(out)
}
