//! The checker: reads a run's operations, its events and the final audit, and proves (or
//! refutes) Sluice's promises:
//!
//! 1. every acknowledged submit has a job that is either live or in exactly one terminal
//!    state (a missing hash is a lost job);
//! 2. no terminal state changes except by an explicit retry (a second terminal event is a
//!    double completion / double end);
//! 3. every accepted heartbeat, progress, log, complete, fail, timeout, cancel or release carries
//!    the token of the newest claim (no claim of another token ended before it began);
//! 4. no CANCELED job is claimed after its cancel (nor after a stop that answered CANCELED);
//! 5. attempts grow by one per claim (a graceful hand-back does not count) and never exceed
//!    max_attempts;
//! 6. every live job sits in exactly the one structure its status says (PENDING: its queue,
//!    SCHEDULED: delayed unless waiting for workflow parents, RUNNING: leases), and nothing
//!    there points to a missing hash;
//! 7. every accepted terminal write of an executor left its event in the stream.
//!
//! Everything it counts goes into a [`Report`]; every breach is a line of
//! [`Report::breaches`], and [`Report::assert_clean`] fails the test on any.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::audit::Audit;
use super::history::{Event, Op, Tailed};

/// Statuses that end a job.
pub const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"];

/// Writes made for a running attempt; accepted ones must carry the newest claim's token.
const FENCED: [&str; 8] = [
    "heartbeat",
    "progress",
    "log",
    "complete",
    "fail",
    "timeout",
    "cancel",
    "release",
];

/// What may be missing after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing acknowledged may be lost (AOF `always`, or no crash of Redis).
    Strict,
    /// Redis was killed with AOF `everysec`: acknowledged submits and writes of the last
    /// second may be gone; they are counted, not breaches.
    FsyncWindow,
}

/// The figures of one check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Submits attempted by the test.
    pub submits: usize,
    /// Submits Redis acknowledged.
    pub acked: usize,
    /// Jobs per final status.
    pub statuses: BTreeMap<String, usize>,
    /// Acknowledged submits whose job is gone.
    pub lost: Vec<u64>,
    /// Jobs with two `completed` events in one life.
    pub double_completed: Vec<u64>,
    /// Claims in the executors' logs.
    pub claims: usize,
    /// Claims of a job claimed before (a retry, a hand-back or a lost run).
    pub reclaims: usize,
    /// Accepted fenced writes checked against the claims.
    pub writes_checked: usize,
    /// Fenced writes Redis refused (stale token, job moved on).
    pub refused: usize,
    /// Accepted executor writes with no event (only under [`Durability::FsyncWindow`]).
    pub lost_writes: usize,
    /// Stream entries read / entries the stream ever took.
    pub events: (usize, u64),
    /// Every breach, one line each.
    pub breaches: Vec<String>,
}

impl Report {
    /// Panics listing the breaches, if any.
    pub fn assert_clean(&self) {
        if !self.breaches.is_empty() {
            let shown: Vec<&String> = self.breaches.iter().take(40).collect();
            panic!("{} breach(es):\n{:#?}\n{self}", self.breaches.len(), shown);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "submitted {} acked {} lost {} double-completed {} | final {:?} | claims {} (re-claims {}) | \
             fenced writes accepted {} refused {} lost-in-window {} | events read {} of {} | breaches {}",
            self.submits,
            self.acked,
            self.lost.len(),
            self.double_completed.len(),
            self.statuses,
            self.claims,
            self.reclaims,
            self.writes_checked,
            self.refused,
            self.lost_writes,
            self.events.0,
            self.events.1,
            self.breaches.len()
        )
    }
}

/// One job's life as the stream tells it.
#[derive(Debug, Default)]
struct Life {
    terminal: Option<(String, u64)>,
    completed: usize,
    last_attempt: u32,
    released: bool,
    submitted: bool,
    last_status: String,
    ended: usize,
}

/// Checks a run. `tailed` is the event stream as read; `audit` the final Redis state.
pub fn check(ops: &[Op], tailed: &Tailed, audit: &Audit, durability: Durability) -> Report {
    let mut r = Report {
        events: (tailed.events.len(), tailed.entries_added),
        ..Report::default()
    };
    let stream_complete = tailed.events.len() as u64 >= tailed.entries_added;
    if !stream_complete && durability == Durability::Strict {
        r.breaches.push(format!(
            "history incomplete: read {} of {} stream entries (trimmed unread)",
            tailed.events.len(),
            tailed.entries_added
        ));
    }
    let lives = replay(&tailed.events, audit, &mut r);
    check_submits(ops, audit, &lives, stream_complete, durability, &mut r);
    check_fencing(ops, &mut r);
    check_writes_landed(ops, &tailed.events, durability, &mut r);
    check_structures(audit, &mut r);
    for j in audit.jobs.values() {
        *r.statuses.entry(j.status.clone()).or_default() += 1;
    }
    r
}

/// Promises 2, 4, 5 from the stream; returns each job's life.
fn replay(events: &[Event], audit: &Audit, r: &mut Report) -> HashMap<u64, Life> {
    let mut lives: HashMap<u64, Life> = HashMap::new();
    for e in events {
        let l = lives.entry(e.job).or_default();
        if e.event == "submitted" {
            if l.submitted {
                r.breaches.push(format!("job {} submitted twice", e.job));
            }
            l.submitted = true;
        }
        if let Some((end, _)) = &l.terminal {
            if e.event == "retried" {
                l.terminal = None;
                l.completed = 0;
                l.last_attempt = 0;
            } else {
                r.breaches.push(format!(
                    "job {}: terminal {end} changed by `{}` (-> {}) at {}",
                    e.job, e.event, e.status, e.id
                ));
                if e.event == "completed" && end == "COMPLETED" {
                    r.double_completed.push(e.job);
                }
                continue;
            }
        }
        if e.event == "claimed" {
            let a = e.attempt.unwrap_or(0);
            let want = if l.released {
                l.last_attempt
            } else {
                l.last_attempt + 1
            };
            if a != want {
                r.breaches.push(format!(
                    "job {}: claimed as attempt {a} after attempt {} (released: {})",
                    e.job, l.last_attempt, l.released
                ));
            }
            if let Some(max) = audit.jobs.get(&e.job).map(|j| j.max_attempts) {
                if a > max && max > 0 {
                    r.breaches
                        .push(format!("job {}: attempt {a} > max_attempts {max}", e.job));
                }
            }
            l.last_attempt = a;
            l.released = false;
        }
        if e.event == "released" || e.event == "lost" {
            l.released = true;
        }
        if TERMINAL.contains(&e.status.as_str()) {
            l.terminal = Some((e.status.clone(), e.ms));
            l.ended += 1;
            if e.event == "completed" {
                l.completed += 1;
            }
        }
        l.last_status = e.status.clone();
    }
    lives
}

/// Promise 1: acknowledged submits are never lost; the stream agrees with the audit.
fn check_submits(
    ops: &[Op],
    audit: &Audit,
    lives: &HashMap<u64, Life>,
    stream_complete: bool,
    durability: Durability,
    r: &mut Report,
) {
    for op in ops.iter().filter(|o| o.op == "submit") {
        r.submits += 1;
        if !op.ok {
            continue;
        }
        r.acked += 1;
        let found = audit
            .jobs
            .get(&op.job)
            .filter(|j| op.tag.is_none() || j.tag == op.tag);
        match found {
            None => {
                r.lost.push(op.job);
                if durability == Durability::Strict {
                    r.breaches
                        .push(format!("job {}: acknowledged, then lost", op.job));
                }
            }
            Some(j) if stream_complete => {
                let last = lives.get(&op.job).map(|l| l.last_status.as_str());
                if last != Some(j.status.as_str()) {
                    r.breaches.push(format!(
                        "job {}: Redis says {}, its last event says {last:?}",
                        op.job, j.status
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for op in ops.iter().filter(|o| o.op == "stop" && o.ok) {
        if op.status.as_deref() != Some("CANCELED") {
            continue;
        }
        for c in ops.iter().filter(|c| c.op == "claim" && c.job == op.job) {
            if c.t0 > op.t1 {
                r.breaches.push(format!(
                    "job {}: claimed by {} after a stop answered CANCELED",
                    op.job, c.src
                ));
            }
        }
    }
}

/// Promise 3: accepted fenced writes carry the newest claim's token.
fn check_fencing(ops: &[Op], r: &mut Report) {
    let mut claims: HashMap<u64, Vec<&Op>> = HashMap::new();
    for c in ops.iter().filter(|o| o.op == "claim") {
        r.claims += 1;
        let before = claims.entry(c.job).or_default();
        if !before.is_empty() {
            r.reclaims += 1;
        }
        before.push(c);
    }
    for w in ops.iter().filter(|o| FENCED.contains(&o.op.as_str())) {
        if !w.ok {
            let e = w.err.as_deref().unwrap_or("");
            if e == "STALE_LEASE" || e.starts_with("ILLEGAL") || e == "NOT_FOUND" {
                r.refused += 1;
            }
            continue;
        }
        r.writes_checked += 1;
        let mine = claims.get(&w.job).map(Vec::as_slice).unwrap_or_default();
        let Some(own) = mine.iter().find(|c| c.token == w.token) else {
            r.breaches.push(format!(
                "job {}: {} by {} accepted with a token no claim handed out",
                w.job, w.op, w.src
            ));
            continue;
        };
        if let Some(newer) = mine
            .iter()
            .find(|c| c.token != w.token && c.t0 > own.t1 && c.t1 < w.t0)
        {
            r.breaches.push(format!(
                "job {}: stale {} by {} (attempt {}) accepted after {} claimed attempt {}",
                w.job, w.op, w.src, own.attempt, newer.src, newer.attempt
            ));
        }
    }
}

/// Promise 7: every accepted complete or fail of an executor is in the stream.
fn check_writes_landed(ops: &[Op], events: &[Event], durability: Durability, r: &mut Report) {
    let mut seen: HashMap<(u64, &str), usize> = HashMap::new();
    for e in events {
        let kind = match e.event.as_str() {
            "completed" => "complete",
            "failed" | "retried" | "retry_scheduled" => "fail",
            _ => continue,
        };
        *seen.entry((e.job, kind)).or_default() += 1;
    }
    let mut wrote: HashMap<(u64, &str), usize> = HashMap::new();
    for w in ops
        .iter()
        .filter(|o| o.ok && (o.op == "complete" || o.op == "fail"))
    {
        *wrote.entry((w.job, w.op.as_str())).or_default() += 1;
    }
    for ((job, kind), n) in wrote {
        let got = seen.get(&(job, kind)).copied().unwrap_or(0);
        if got < n {
            r.lost_writes += n - got;
            if durability == Durability::Strict {
                r.breaches.push(format!(
                    "job {job}: {n} accepted {kind}(s), {got} in the event stream"
                ));
            }
        }
    }
}

/// Promise 6: live jobs sit where their status says; structures point to real hashes.
fn check_structures(audit: &Audit, r: &mut Report) {
    let mut places: HashMap<u64, Vec<String>> = HashMap::new();
    for (executor, ids) in &audit.queues {
        for id in ids {
            places
                .entry(*id)
                .or_default()
                .push(format!("queue:{executor}"));
        }
    }
    for id in &audit.delayed {
        places.entry(*id).or_default().push("delayed".into());
    }
    for id in &audit.leases {
        places.entry(*id).or_default().push("leases".into());
    }
    for (id, at) in &places {
        if !audit.jobs.contains_key(id) {
            r.breaches
                .push(format!("{at:?} point(s) to job {id}, which has no hash"));
        }
    }
    for (id, j) in &audit.jobs {
        let want: Vec<String> = match j.status.as_str() {
            "PENDING" => vec![format!("queue:{}", j.executor)],
            // A workflow member waiting for its parents sits nowhere until released.
            "SCHEDULED" if j.waiting => vec![],
            "SCHEDULED" => vec!["delayed".into()],
            "RUNNING" => vec!["leases".into()],
            _ => vec![],
        };
        let got = places.get(id).cloned().unwrap_or_default();
        if got != want {
            r.breaches.push(format!(
                "job {id} is {} but sits in {got:?} (want {want:?})",
                j.status
            ));
        }
    }
}
