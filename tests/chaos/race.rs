//! Stop racing claim: every job is stopped a few milliseconds after its submit, while idle
//! executors pick jobs up within a millisecond. A stop that answered CANCELED must never be
//! followed by a claim; a stop that found the job RUNNING ends it CANCELED (or COMPLETED, if
//! the work finished before its executor saw the request).

use std::time::{Duration, Instant};

use broker::Status;

use super::checker::Durability;
use super::cluster::{size, Cluster, Exec, Rng};
use super::executors::NO_PERSIST;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_racing_claim_never_runs_a_canceled_job() {
    let (jobs, _) = size(1000, 0);
    let mut c = Cluster::start(&NO_PERSIST).await;
    let mut execs: Vec<Exec> = (0..2).map(|_| c.executor(32, &[])).collect();
    let started = Instant::now();
    let lanes = 4;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let client = c.client.clone();
        let mut rng = Rng::new(&format!("stop vs claim, lane {lane}"));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..jobs / lanes {
                let Some(id) = client.submit(client.work(1.0, 3)).await else {
                    continue;
                };
                let wait = rng.below(3000);
                if wait > 0 {
                    tokio::time::sleep(Duration::from_micros(wait)).await;
                }
                out.push((id, client.stop(id).await));
            }
            out
        }));
    }
    let mut stopped = Vec::new();
    for t in tasks {
        stopped.extend(t.await.expect("lane"));
    }
    let ids: Vec<_> = stopped.iter().map(|(id, _)| *id).collect();
    let left = c.client.wait_ended(&ids, Duration::from_secs(60)).await;
    assert!(left.is_empty(), "not ended: {left:?}");
    for e in execs.iter() {
        e.signal(nix::sys::signal::Signal::SIGTERM);
    }
    for e in execs.iter_mut() {
        let _ = e.proc.wait();
    }
    let (report, _) = c.check(Durability::Strict).await;
    let at_once = stopped
        .iter()
        .filter(|(_, s)| *s == Some(Status::Canceled))
        .count();
    let requested = stopped
        .iter()
        .filter(|(_, s)| *s == Some(Status::Running))
        .count();
    let mut ended_completed = 0;
    for (id, s) in &stopped {
        if *s == Some(Status::Running)
            && c.client.broker.get(*id).await.map(|j| j.status).ok() == Some(Status::Completed)
        {
            ended_completed += 1;
        }
    }
    println!(
        "[stop vs claim] {} jobs in {:?}: {at_once} canceled before any claim, {requested} stopped \
         while running ({ended_completed} of those finished first)\n[stop vs claim] {report}",
        stopped.len(),
        started.elapsed()
    );
    report.assert_clean();
    assert_eq!(at_once + requested, stopped.len(), "every stop answered");
    assert!(
        at_once > 0 && requested > 0,
        "the race went one way only: nothing was raced"
    );
}
