//! Redis failover: a primary, a replica and three sentinels (`harness::sentinel`), every
//! Sluice process given the Sentinel URL. The primary is `kill -9`ed under submit load; the
//! sentinels promote the replica; the API, the executors and the test's client carry on
//! without a restart (their pools ask the sentinels again). The old primary then comes back
//! (as supervisord would restart it) as the new primary's replica.
//!
//! The replica is made to lag [`LAG`] behind when the primary dies (its link holds what the
//! primary sends, `harness::sentinel::Link`). With `min_replicas_ack = 1` nothing
//! acknowledged may be lost (the checker runs strict): writes made during the lag are not
//! acknowledged. Without it they are, and they are gone: the test counts them, and they
//! must be more than none and less than the lag's worth, as README says.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::checker::{Durability, Report};
use super::cluster::{size, Cluster, Exec};
use super::executors::NO_PERSIST;
use super::redis::{drain, end_lanes, first_acked_submit_after, submit_lanes};
use crate::harness::sentinel::TestSentinels;

/// Most jobs a run submits: its check reads the whole event stream (about 3 entries per
/// job), which must stay under the stream's cap.
const JOBS_CAP: usize = 3000;

/// How far behind the replica is when the primary dies.
const LAG: Duration = Duration::from_millis(300);

/// What one failover run measured.
struct Figures {
    report: Report,
    /// Kill to the sentinels naming the new primary.
    promoted: Duration,
    /// Kill to the first acknowledged submit sent after it (the test's client).
    first_submit: Option<Duration>,
    /// Kill to the first `POST /jobs` answered 200 by the API process.
    first_http: Duration,
}

/// POSTs a short job until the API answers 201; returns when it did. (It runs like the
/// others: a failover that loses acknowledged jobs hands their ids out again, so the probe
/// may carry the id of a lost job the test waits for.)
async fn first_http_submit(base: &str, within: Duration) -> Instant {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    let job = json!({"executor": "command", "params": {"action": "work", "secs": "0.01"}});
    crate::harness::submit_until_taken(&http, base, &job, within, Duration::from_millis(20)).await;
    Instant::now()
}

async fn failover_under_load(ack: u32, durability: Durability) -> Figures {
    let (jobs, window) = size(1000, 3);
    let set = tokio::task::block_in_place(|| TestSentinels::start(1, true, &NO_PERSIST));
    let ack_env = ack.to_string();
    let settings = [
        ("SLUICE_MIN_REPLICAS_ACK", ack_env.as_str()),
        ("SLUICE_REPLICA_ACK_TIMEOUT", "500ms"),
    ];
    let mut c = Cluster::on(set, |cfg| {
        cfg.min_replicas_ack = ack;
        cfg.replica_ack_timeout = Duration::from_millis(500);
    });
    let mut api = crate::harness::serve_at(&c.redis.url_for("api"));
    api.cmd.envs(settings);
    let (_api, base) = api.start().await;
    let mut execs: Vec<Exec> = (0..2).map(|_| c.executor_with(8, &[], &settings)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let lanes = submit_lanes(&c.client, jobs.min(JOBS_CAP), stop.clone());
    tokio::time::sleep(window / 2).await;

    let old = c.redis.primary_port().expect("a primary");
    // The replica falls behind (its link holds what the primary sends) for LAG, then the
    // primary dies: what it acknowledged meanwhile exists nowhere else.
    c.redis.link.as_ref().expect("a relayed replica").hold();
    tokio::time::sleep(LAG).await;
    let kill_us = super::history::now_us();
    let killed = Instant::now();
    tokio::task::block_in_place(|| c.redis.node(old).redis.stop());
    let http = tokio::spawn({
        let base = base.clone();
        async move { first_http_submit(&base, Duration::from_secs(60)).await }
    });
    tokio::task::block_in_place(|| {
        c.redis
            .wait(Duration::from_secs(30), "a replica promoted", |s| {
                s.primary_port().is_some_and(|p| p != old)
            })
    });
    let promoted = killed.elapsed();
    let new = c.redis.primary_port().expect("the new primary");
    // Back after the failover, as supervisord restarts it, and as `bin/sluice-run redis`
    // starts it: the sentinels name another primary, so it joins that one as its replica.
    // (Until then min_replicas_ack = 1 has no replica to ask; left to the sentinels, the
    // old primary is turned into a replica only at their next INFO round, up to 10 s.)
    let new_port = new.to_string();
    tokio::task::block_in_place(|| {
        c.redis
            .node(old)
            .redis
            .restart_with(&["--replicaof", "127.0.0.1", &new_port]);
        c.redis
            .wait(Duration::from_secs(30), "the old primary a replica", |s| {
                s.nodes.iter().find(|n| n.port == new).is_some_and(|n| {
                    n.redis
                        .cli(&["INFO", "replication"])
                        .contains("connected_slaves:1")
                })
            })
    });
    let first_http = http.await.expect("http probe") - killed;
    tokio::time::sleep(window / 2).await;
    end_lanes(&c, &stop, lanes).await;
    drain(&mut execs);
    let first_submit = first_acked_submit_after(&c.client, kill_us);
    let (report, _) = c.check_from_redis(durability).await;
    Figures {
        report,
        promoted,
        first_submit,
        first_http,
    }
}

fn print(what: &str, f: &Figures) {
    println!(
        "[failover, {what}] replica promoted {:?} after the kill; first acked submit {:?} \
         after it, first API submit {:?}\n[failover, {what}] {}",
        f.promoted, f.first_submit, f.first_http, f.report
    );
}

/// `kill -9` of the primary under load with `min_replicas_ack = 1`: the sentinels promote
/// the replica, everything carries on through the Sentinel URL, and no acknowledged submit
/// or completion is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_9_with_replica_ack_loses_nothing_acknowledged() {
    let f = failover_under_load(1, Durability::Strict).await;
    print("min_replicas_ack 1", &f);
    f.report.assert_clean();
    assert_eq!(f.report.lost.len(), 0);
    assert!(f.report.acked > 50, "too little load to mean anything");
    assert!(
        f.first_submit.is_some(),
        "no submit was acknowledged after the failover"
    );
}

/// The same without `min_replicas_ack`: acknowledged writes the replica had not received
/// when the primary died are gone; the test counts them (and fails on any other breach).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_kill_9_without_replica_ack_loses_the_replication_lag() {
    let f = failover_under_load(0, Durability::FsyncWindow).await;
    print("min_replicas_ack 0", &f);
    f.report.assert_clean();
    let lost = f.report.lost.len();
    // Some of the 300 ms of submits (two lanes, a few hundred a second), not more.
    assert!(lost > 0 && lost < 300, "lost {lost}");
    assert!(f.first_submit.is_some());
}

/// `min_replicas_ack` without a replica to confirm: `/healthz` says `degraded` (503), the
/// submit is refused as "unavailable" (503) once the ack timeout passes, and the job is on
/// the primary all the same (a retry with the same Idempotency-Key finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_write_answers_unavailable() {
    let mut set = tokio::task::block_in_place(|| TestSentinels::start(1, false, &NO_PERSIST));
    let url = set.url_for("admin");
    let b = broker::Broker::new(broker::Config {
        redis_url: url,
        min_replicas_ack: 1,
        replica_ack_timeout: Duration::from_millis(300),
        ..broker::Config::default()
    })
    .expect("broker");
    let job = |key: &str| {
        let mut j = b.new_job("probe", json!({"n": 1}));
        j.idempotent(key, key.as_bytes());
        j
    };
    let made = b
        .submit_once(&job("first"))
        .await
        .expect("acked by the replica");
    assert!(made.created);
    let mut api = crate::harness::serve_at(&set.url_for("api"));
    api.cmd.env("SLUICE_MIN_REPLICAS_ACK", "1");
    let (_api, base) = api.start().await;
    let health = || async {
        let r = reqwest::get(format!("{base}/healthz"))
            .await
            .expect("healthz");
        let code = r.status().as_u16();
        (code, r.json::<serde_json::Value>().await.expect("json"))
    };
    assert_eq!(
        health().await,
        (
            200,
            json!({"status": "ok", "redis": "ok", "replicas": 1, "min_replicas_ack": 1})
        )
    );
    let replica = set.nodes[1].port;
    tokio::task::block_in_place(|| set.node(replica).redis.stop());
    // Health says so at once: load balancers stop sending writes that would be refused.
    assert_eq!(
        health().await,
        (
            503,
            json!({"status": "degraded", "redis": "ok", "replicas": 0, "min_replicas_ack": 1})
        )
    );
    let t = Instant::now();
    let e = b.submit_once(&job("second")).await.expect_err("no replica");
    let took = t.elapsed();
    assert!(e.is_unavailable(), "{e}");
    assert!(e.to_string().contains("0 of 1 replicas"), "{e}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Written all the same: the retry answers the same job without making another.
    let again = b.submit_once(&job("second")).await;
    let e = again.expect_err("still no replica");
    assert!(e.is_unavailable());
    let n = set.nodes[0].redis.cli(&["KEYS", "job_[0-9]*"]);
    assert_eq!(n.lines().count(), 2, "two jobs, not three: {n}");
}
