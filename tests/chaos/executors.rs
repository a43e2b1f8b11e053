//! Faults of executor processes: `kill -9` of random executors under load, SIGTERM drains,
//! a SIGSTOPped executor that comes back after its lease, a poison job that kills its
//! executor. Each prints its figures and runs the checker over the whole history.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use broker::{JobId, Status};
use nix::sys::signal::Signal;
use serde_json::json;

use super::checker::Durability;
use super::cluster::{children, median_max, size, Client, Cluster, Exec, Rng, LEASE};
use super::history::{now_us, Event};
use crate::harness::alive;

/// Redis without persistence: these scenarios never crash it.
pub const NO_PERSIST: [&str; 4] = ["--save", "", "--appendonly", "no"];

/// Reaper pass period of every executor (`runtime.rs`, tick_forever).
const TICK: Duration = Duration::from_secs(1);

/// Submits `n` jobs spread over `over`: four in five take 50 ms, one in five 1-2 s.
async fn submit_load(client: Client, n: usize, over: Duration, mut rng: Rng) -> Vec<JobId> {
    let gap = over / (n.max(1) as u32);
    let mut ids = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let secs = if rng.below(5) == 0 {
            1.0 + rng.below(1000) as f64 / 1000.0
        } else {
            0.05
        };
        if let Some(id) = client.submit(client.work(secs, 10)).await {
            ids.push(id);
        }
        let due = start + gap * (i as u32 + 1);
        tokio::time::sleep_until(due.into()).await;
    }
    ids
}

/// Stops every executor with SIGTERM and waits for them (a drain writes its hand-backs).
fn drain(execs: &mut Vec<Exec>) {
    for e in execs.iter() {
        e.signal(Signal::SIGTERM);
    }
    for e in execs.iter_mut() {
        let _ = e.proc.wait();
    }
    execs.clear();
}

/// For each kill (pid, unix ms): the jobs its executor held (last event before the kill a
/// claim by it) and how long until each was claimed again or ended by the reaper.
fn recoveries(events: &[Event], kills: &[(u32, u64)]) -> (Vec<Duration>, Vec<u64>) {
    let mut by_job: HashMap<u64, Vec<&Event>> = HashMap::new();
    for e in events.iter().filter(|e| e.event != "progress") {
        by_job.entry(e.job).or_default().push(e);
    }
    let (mut took, mut stuck) = (Vec::new(), Vec::new());
    for &(pid, at) in kills {
        let name = format!("command-{pid}-");
        for (job, evs) in &by_job {
            let before = evs.iter().rev().find(|e| e.ms <= at);
            let held = before.is_some_and(|e| {
                e.event == "claimed" && e.worker.as_deref().is_some_and(|w| w.starts_with(&name))
            });
            if !held {
                continue;
            }
            match evs
                .iter()
                .find(|e| e.ms > at && (e.event == "claimed" || e.status == "FAILED"))
            {
                Some(e) => took.push(Duration::from_millis(e.ms - at)),
                None => stuck.push(*job),
            }
        }
    }
    (took, stuck)
}

/// `kill -9` of a random executor every 1-2 s while jobs run. Orphaned jobs are claimed
/// again within lease + reaper tick; nothing is lost or completed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_random_executors_loses_no_job() {
    let (jobs, window) = size(600, 8);
    let mut c = Cluster::start(&NO_PERSIST).await;
    let mut rng = Rng::new("kill -9");
    let mut execs: Vec<Exec> = (0..4).map(|_| c.executor(8, &[])).collect();
    let started = Instant::now();
    let load = tokio::spawn(submit_load(
        c.client.clone(),
        jobs,
        window,
        Rng::new("kill -9 load"),
    ));
    let mut kills = Vec::new();
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(1000))).await;
        let i = rng.below(execs.len() as u64) as usize;
        execs[i].signal(Signal::SIGKILL);
        let _ = execs[i].proc.wait();
        // The moment it is surely dead: a job it completed between the signal and its death
        // was not orphaned (its last event before this is its completion).
        let at = now_us() / 1000;
        kills.push((execs[i].pid, at));
        execs[i] = c.executor(8, &[]);
    }
    let ids = load.await.expect("submitter");
    // The backlog drains at the executors' pace (32 slots, 0.34 s per job on average, some
    // capacity lost to each kill): long runs get time in proportion to their size.
    let drain_for = Duration::from_secs(90.max(ids.len() as u64 / 20));
    let left = c.client.wait_ended(&ids, drain_for).await;
    assert!(
        left.is_empty(),
        "{} of {} not ended within {drain_for:?}: {:?}\n{}",
        left.len(),
        ids.len(),
        &left[..left.len().min(20)],
        c.executor_log()
    );
    drain(&mut execs);
    let (report, tailed) = c.check(Durability::Strict).await;
    let (took, stuck) = recoveries(&tailed.events, &kills);
    let (med, max) = median_max(took.clone());
    println!(
        "[kill -9] {} kills over {:?}; {} orphaned jobs re-claimed: median {med:?}, max {max:?} \
         (lease {LEASE:?} + tick {TICK:?}); total {:?}\n[kill -9] {report}",
        kills.len(),
        window,
        took.len(),
        started.elapsed()
    );
    report.assert_clean();
    assert!(stuck.is_empty(), "orphans never re-claimed: {stuck:?}");
    assert!(
        !took.is_empty(),
        "the kills orphaned no job: the scenario tested nothing"
    );
    assert!(
        max <= LEASE + TICK + Duration::from_millis(1500),
        "an orphan waited {max:?}"
    );
}

/// SIGSTOP an executor past its lease, let another take its jobs, SIGCONT it: its late
/// heartbeats and writes are refused (STALE_LEASE), and it kills its own children within
/// one heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_executor_back_after_its_lease_changes_nothing() {
    let mut c = Cluster::start(&NO_PERSIST).await;
    let a = c.executor(4, &[]);
    let mut ids = Vec::new();
    for i in 0..4 {
        // Two finish while A is stopped (their late completes race the stale heartbeats),
        // two still run when A comes back (A must kill them).
        let secs = if i % 2 == 0 { 1.0 } else { 6.0 };
        ids.push(
            c.client
                .submit(c.client.work(secs, 3))
                .await
                .expect("submit"),
        );
    }
    let b = &c.client.broker;
    wait_for(Duration::from_secs(10), "A runs all four", || async {
        all(b, &ids, |j| j.status == Status::Running).await && children(a.pid).len() == 4
    })
    .await;
    let kids = children(a.pid);
    a.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let other = c.executor(4, &[]);
    wait_for(Duration::from_secs(10), "B re-claims all four", || async {
        all(b, &ids, |j| j.status == Status::Running && j.lost == 1).await
    })
    .await;
    let reclaimed = stopped.elapsed();
    let cont = now_us();
    a.signal(Signal::SIGCONT);
    let resumed = Instant::now();
    let kids: Vec<u32> = kids.into_iter().filter(|k| alive(*k)).collect();
    wait_for(Duration::from_secs(5), "A kills its children", || async {
        !kids.iter().any(|k| alive(*k))
    })
    .await;
    let killed = resumed.elapsed();
    let left = c.client.wait_ended(&ids, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "not ended: {left:?}");
    let mut execs = vec![a, other];
    let a_name = format!("command-{}-", execs[0].pid);
    drain(&mut execs);
    let (report, _) = c.check(Durability::Strict).await;
    let late: Vec<_> = c
        .client
        .rec
        .read()
        .into_iter()
        .filter(|o| o.src.starts_with(&a_name) && o.t0 >= cont)
        .collect();
    let refused = late.iter().filter(|o| !o.ok).count();
    println!(
        "[SIGSTOP] re-claimed {reclaimed:?} after SIGSTOP (lease {LEASE:?}); after SIGCONT the \
         stale executor made {} calls, {refused} refused ({:?}); its children died {killed:?} \
         after SIGCONT\n[SIGSTOP] {report}",
        late.len(),
        late.iter()
            .map(|o| format!("{}:{}", o.op, o.err.as_deref().unwrap_or("ok")))
            .collect::<Vec<_>>()
    );
    report.assert_clean();
    assert!(
        refused > 0,
        "the stale executor wrote nothing: nothing was tested"
    );
    assert_eq!(
        refused,
        late.len(),
        "a late call of the stale executor was accepted"
    );
    assert!(
        killed < Duration::from_secs(4), // a heartbeat after SIGCONT; generous for a busy CI
        "children lived {killed:?} after SIGCONT"
    );
    for id in &ids {
        let j = c.client.broker.get(*id).await.expect("job");
        // The lost run spent no attempt.
        assert_eq!(
            (j.status, j.attempt, j.lost),
            (Status::Completed, 1, 1),
            "job {id}"
        );
    }
}

/// A job whose program kills its executor (`kill -9 $PPID`) is FAILED once it has lost more
/// than `max_lost_leases` executors (2 here), never looping; the executors (restarted as a
/// supervisor would) and the other jobs go on. Its lost runs spend no attempt.
// See: issue 14.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_job_fails_after_max_lost_leases() {
    let mut c = Cluster::start(&NO_PERSIST).await;
    let lost_env = [("SLUICE_MAX_LOST_LEASES", "2")];
    let mut execs: Vec<Exec> = (0..2).map(|_| c.executor_with(4, &[], &lost_env)).collect();
    let mut poison = c.client.work(0.0, 3);
    poison.params = json!({"action": "poison"});
    let started = Instant::now();
    let id = c.client.submit(poison).await.expect("submit");
    let mut others = Vec::new();
    for _ in 0..30 {
        others.push(
            c.client
                .submit(c.client.work(0.2, 10))
                .await
                .expect("submit"),
        );
    }
    let mut deaths = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        for e in execs.iter_mut() {
            if e.proc.try_wait().ok().flatten().is_some() {
                deaths += 1;
                *e = c.executor_with(4, &[], &lost_env);
            }
        }
        let j = c.client.broker.get(id).await.expect("poison job");
        if j.status == Status::Failed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "poison job still {} after 40 s",
            j.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_after = started.elapsed();
    let left = c.client.wait_ended(&others, Duration::from_secs(30)).await;
    assert!(left.is_empty(), "not ended: {left:?}");
    drain(&mut execs);
    let (report, _) = c.check(Durability::Strict).await;
    let j = c.client.broker.get(id).await.expect("poison job");
    println!(
        "[poison] FAILED after {failed_after:?}, {deaths} executor deaths, attempt {}, error {:?}\n[poison] {report}",
        j.attempt, j.error
    );
    report.assert_clean();
    assert_eq!((j.attempt, j.lost), (1, 3));
    assert_eq!(deaths, 3, "each run killed one executor");
    assert!(
        j.error
            .as_deref()
            .is_some_and(|e| e.contains("lease expired on attempt 1")
                && e.contains("lost its executor 3 times, more than max_lost_leases (2)")),
        "{:?}",
        j.error
    );
}

/// SIGTERM drains: the executor stops claiming, lets short jobs finish, hands the long ones
/// back within its grace period (attempt not counted) and exits 0; another executor runs
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_hands_back_without_loss() {
    let mut c = Cluster::start(&NO_PERSIST).await;
    let mut a = c.executor(8, &["--grace", "1s"]);
    let mut ids = Vec::new();
    for i in 0..8 {
        let secs = if i % 2 == 0 { 0.3 } else { 4.0 };
        ids.push(
            c.client
                .submit(c.client.work(secs, 3))
                .await
                .expect("submit"),
        );
    }
    let b = &c.client.broker;
    wait_for(Duration::from_secs(10), "A runs all eight", || async {
        all(b, &ids, |j| j.status == Status::Running).await
    })
    .await;
    let other = c.executor(8, &[]);
    let term = Instant::now();
    a.signal(Signal::SIGTERM);
    let status = a.proc.wait().expect("wait A");
    let exited = term.elapsed();
    let left = c.client.wait_ended(&ids, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "not ended: {left:?}");
    let mut execs = vec![other];
    drain(&mut execs);
    let (report, tailed) = c.check(Durability::Strict).await;
    let released = tailed
        .events
        .iter()
        .filter(|e| e.event == "released")
        .count();
    println!(
        "[SIGTERM] exited {status} {exited:?} after SIGTERM (grace 1s); {released} jobs handed \
         back and run elsewhere\n[SIGTERM] {report}"
    );
    report.assert_clean();
    assert!(status.success());
    assert!(exited < Duration::from_secs(3), "drain took {exited:?}");
    assert_eq!(released, 4, "the four long jobs are handed back");
    for id in &ids {
        let j = c.client.broker.get(*id).await.expect("job");
        assert_eq!(
            (j.status, j.attempt),
            (Status::Completed, 1),
            "job {id}: hand-back is not an attempt"
        );
    }
}

/// Polls `cond` every 20 ms until it holds, panicking with `what` after `within`.
pub async fn wait_for<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True when every job of `ids` satisfies `f`.
pub async fn all(b: &broker::Broker, ids: &[JobId], f: impl Fn(&broker::Job) -> bool) -> bool {
    for id in ids {
        match b.get(*id).await {
            Ok(j) if f(&j) => {}
            _ => return false,
        }
    }
    true
}
