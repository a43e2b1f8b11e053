//! The checker catches what it claims to: a clean history passes, and doctored ones (a
//! double completion, a lost job, a stale write accepted, a claim after cancel, a job in
//! two places) each fail with the breach named.

use super::audit::{Audit, JobState};
use super::checker::{check, Durability};
use super::history::{Event, Op, Tailed};

fn op(t: u64, src: &str, op: &str, job: u64, attempt: u32, token: &str, ok: bool) -> Op {
    Op {
        t0: t,
        t1: t + 1,
        src: src.into(),
        op: op.into(),
        job,
        attempt,
        token: token.into(),
        ok,
        err: (!ok).then(|| "STALE_LEASE".to_string()),
        status: None,
        tag: None,
    }
}

fn ev(ms: u64, job: u64, event: &str, status: &str, attempt: Option<u32>) -> Event {
    Event {
        ms,
        id: format!("{ms}-0"),
        job,
        event: event.into(),
        status: status.into(),
        attempt,
        worker: None,
    }
}

fn done(status: &str) -> JobState {
    JobState {
        status: status.into(),
        attempt: 2,
        max_attempts: 3,
        executor: "command".into(),
        tag: None,
        waiting: false,
    }
}

/// Job 1 runs, its executor stalls, the lease is reaped and attempt 2 completes; the stale
/// attempt's complete is refused. Job 2 completes at once.
fn clean() -> (Vec<Op>, Tailed, Audit) {
    let ops = vec![
        op(10, "client", "submit", 1, 0, "", true),
        op(11, "client", "submit", 2, 0, "", true),
        op(20, "w1", "claim", 1, 1, "A", true),
        op(21, "w1", "claim", 2, 1, "B", true),
        op(30, "w1", "complete", 2, 1, "B", true),
        op(40, "w2", "claim", 1, 2, "C", true),
        op(50, "w2", "complete", 1, 2, "C", true),
        op(60, "w1", "complete", 1, 1, "A", false),
    ];
    let events = vec![
        ev(10, 1, "submitted", "PENDING", None),
        ev(11, 2, "submitted", "PENDING", None),
        ev(20, 1, "claimed", "RUNNING", Some(1)),
        ev(21, 2, "claimed", "RUNNING", Some(1)),
        ev(30, 2, "completed", "COMPLETED", None),
        ev(35, 1, "retried", "PENDING", None),
        ev(40, 1, "claimed", "RUNNING", Some(2)),
        ev(50, 1, "completed", "COMPLETED", None),
    ];
    let tailed = Tailed {
        entries_added: events.len() as u64,
        events,
    };
    let mut audit = Audit::default();
    audit.jobs.insert(1, done("COMPLETED"));
    audit.jobs.insert(2, done("COMPLETED"));
    (ops, tailed, audit)
}

fn breaches(ops: &[Op], tailed: &Tailed, audit: &Audit) -> Vec<String> {
    let r = check(ops, tailed, audit, Durability::Strict);
    println!("{r}");
    r.breaches
}

#[test]
fn a_clean_history_passes() {
    let (ops, tailed, audit) = clean();
    let r = check(&ops, &tailed, &audit, Durability::Strict);
    r.assert_clean();
    assert_eq!((r.acked, r.claims, r.reclaims, r.refused), (2, 3, 1, 1));
}

#[test]
fn the_checker_catches_a_double_completion() {
    let (ops, mut tailed, audit) = clean();
    tailed
        .events
        .push(ev(70, 2, "completed", "COMPLETED", None));
    tailed.entries_added += 1;
    let r = check(&ops, &tailed, &audit, Durability::Strict);
    assert_eq!(r.double_completed, vec![2], "{:?}", r.breaches);
}

#[test]
fn the_checker_catches_a_lost_job() {
    let (ops, tailed, mut audit) = clean();
    audit.jobs.remove(&2);
    let b = breaches(&ops, &tailed, &audit);
    assert!(
        b.iter()
            .any(|b| b.contains("job 2: acknowledged, then lost")),
        "{b:?}"
    );
    let r = check(&ops, &tailed, &audit, Durability::FsyncWindow);
    assert_eq!(
        r.lost,
        vec![2],
        "counted, not a breach, inside the fsync window"
    );
}

#[test]
fn the_checker_catches_a_stale_write_accepted() {
    let (mut ops, tailed, audit) = clean();
    ops.last_mut().expect("ops").ok = true; // attempt 1's late complete "landed"
    let b = breaches(&ops, &tailed, &audit);
    assert!(
        b.iter().any(|b| b.contains("stale complete by w1")),
        "{b:?}"
    );
}

#[test]
fn the_checker_catches_a_claim_after_cancel_and_misplaced_jobs() {
    let (mut ops, mut tailed, mut audit) = clean();
    ops.push(op(12, "client", "submit", 3, 0, "", true));
    let mut stop = op(13, "client", "stop", 3, 0, "", true);
    stop.status = Some("CANCELED".into());
    ops.push(stop);
    ops.push(op(80, "w2", "claim", 3, 1, "D", true));
    tailed.events.push(ev(12, 3, "submitted", "PENDING", None));
    tailed.events.push(ev(13, 3, "canceled", "CANCELED", None));
    tailed.events.push(ev(80, 3, "claimed", "RUNNING", Some(1)));
    tailed.entries_added += 3;
    audit.jobs.insert(3, done("RUNNING"));
    audit.leases = vec![3, 9];
    audit.queues.insert("command".into(), vec![3]);
    let b = breaches(&ops, &tailed, &audit);
    for want in [
        "claimed by w2 after a stop answered CANCELED",
        "terminal CANCELED changed by `claimed`",
        "to job 9, which has no hash",
        "job 3 is RUNNING but sits in",
    ] {
        assert!(b.iter().any(|b| b.contains(want)), "{want}: {b:?}");
    }
}

#[test]
fn the_checker_catches_attempts_over_the_limit_and_trimmed_history() {
    let (ops, mut tailed, audit) = clean();
    tailed
        .events
        .insert(6, ev(38, 1, "claimed", "RUNNING", Some(4)));
    tailed.entries_added += 5; // entries the tail never read
    let b = breaches(&ops, &tailed, &audit);
    for want in [
        "attempt 4 > max_attempts 3",
        "history incomplete",
        "claimed as attempt",
    ] {
        assert!(b.iter().any(|b| b.contains(want)), "{want}: {b:?}");
    }
}

#[test]
fn a_workflow_member_waiting_for_its_parents_sits_nowhere() {
    let (mut ops, mut tailed, mut audit) = clean();
    ops.push(op(12, "client", "submit", 3, 0, "", true));
    tailed
        .events
        .push(ev(12, 3, "submitted", "SCHEDULED", None));
    tailed.entries_added += 1;
    let mut waiting = done("SCHEDULED");
    waiting.attempt = 0;
    waiting.waiting = true;
    audit.jobs.insert(3, waiting);
    check(&ops, &tailed, &audit, Durability::Strict).assert_clean();
    audit.delayed = vec![3];
    let b = breaches(&ops, &tailed, &audit);
    assert!(
        b.iter()
            .any(|b| b.contains("job 3 is SCHEDULED but sits in")),
        "{b:?}"
    );
}
