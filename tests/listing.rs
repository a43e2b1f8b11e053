//! The listing indexes (lua/includes/index.lua): every state change keeps each job in
//! exactly the index of its status, pages come newest first, complete and without repeats
//! while jobs keep arriving, and a client's listing holds its own jobs only.

use std::collections::HashSet;
use std::time::Duration;

use broker::{Broker, ListFilter, Status};
use serde_json::json;

use crate::harness::{broker, submit_as, TestRedis};

/// Every job is in exactly one index of its kind: `ix:<kind>:active` while it has not
/// ended, `ix:<kind>:<STATUS>` once it has; and in its owner's `ixo:<owner>`.
fn assert_indexed(redis: &TestRedis, kinds: &[&str]) {
    let seq: u64 = redis.cli(&["GET", "job_seq"]).trim().parse().unwrap();
    for id in 1..=seq {
        let f = redis.cli(&["HMGET", &format!("job_{id}"), "status", "executor", "owner"]);
        let f: Vec<&str> = f.lines().collect();
        let (status, kind, owner) = (f[0], f[1], f[2]);
        let ended = ["COMPLETED", "FAILED", "TIMED_OUT", "CANCELED"];
        let home = if ended.contains(&status) {
            status
        } else {
            "active"
        };
        for k in kinds {
            for what in ended.iter().chain(&["active"]) {
                let index = format!("ix:{k}:{what}");
                let score = redis.cli(&["ZSCORE", &index, &id.to_string()]);
                assert_eq!(
                    !score.trim().is_empty(),
                    *k == kind && *what == home,
                    "job_{id} ({status}, {kind}) in {index}: {score:?}"
                );
            }
        }
        let score = redis.cli(&["ZSCORE", &format!("ixo:{owner}"), &id.to_string()]);
        assert_eq!(score.trim(), id.to_string(), "job_{id} in ixo:{owner}");
    }
}

async fn submit(b: &Broker, kind: &str, owner: &str) -> broker::JobId {
    submit_as(b, kind, owner, json!({})).await
}

/// Every path into and out of an ended status moves the job between indexes: submit, delay, claim, complete,
/// a retried failure, a final failure, timeout, stop while pending and while running,
/// release, retry of a failed job, a lost lease re-queued by reap, a workflow whose
/// failure cancels its waiting members.
#[tokio::test]
async fn every_state_change_keeps_a_job_in_its_status_index_only() {
    let redis = TestRedis::start();
    let b = broker(&redis, |c| c.lease = Duration::from_millis(300));
    for i in 0..12 {
        submit(
            &b,
            if i % 2 == 0 { "a" } else { "b" },
            ["ana", "bob"][i / 2 % 2],
        )
        .await;
    }
    let mut later = b.new_job("a", json!({}));
    later.run_at = Some(std::time::SystemTime::now() + Duration::from_secs(3600));
    b.submit(&later).await.unwrap();
    let stopped_pending = submit(&b, "a", "ana").await;
    b.stop(stopped_pending).await.unwrap();
    assert_indexed(&redis, &["a", "b"]);

    let a = b.claim("a", "w", 6).await.unwrap();
    let bb = b.claim("b", "w", 6).await.unwrap();
    assert_indexed(&redis, &["a", "b"]);
    b.complete(a[0].id, &a[0].token, &json!(1)).await.unwrap();
    b.fail(a[1].id, &a[1].token, "again", true).await.unwrap(); // retried
    b.fail(a[2].id, &a[2].token, "no", false).await.unwrap(); // FAILED
    b.timeout(a[3].id, &a[3].token, "slow").await.unwrap();
    b.stop(a[4].id).await.unwrap();
    b.cancel(a[4].id, &a[4].token).await.unwrap();
    b.release(a[5].id, &a[5].token).await.unwrap();
    b.retry(a[2].id).await.unwrap();
    for c in &bb[..3] {
        b.complete(c.id, &c.token, &json!(2)).await.unwrap();
    }
    assert_indexed(&redis, &["a", "b"]);
    // bb[3..] lose their lease: reap puts them back on the queue.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (reaped, _) = b.tick().await.unwrap();
    assert_eq!(reaped.requeued, 3, "{reaped:?}");
    assert_indexed(&redis, &["a", "b"]);

    let (_, members) = crate::workflows::plan(
        &b,
        json!({"name": "w", "on_failure": "all", "nodes": [
            {"name": "x", "executor": "c", "params": {}, "max_attempts": 1},
            {"name": "y", "executor": "c", "params": {}, "depends_on": ["x"]},
        ]}),
    )
    .await;
    assert_indexed(&redis, &["a", "b", "c"]);
    let x = b.claim("c", "w", 1).await.unwrap().remove(0);
    assert_eq!(x.id, members[0]);
    b.fail(x.id, &x.token, "broken", false).await.unwrap();
    let y = b.get(members[1]).await.unwrap();
    assert_eq!(
        y.status,
        Status::Canceled,
        "the waiting member was canceled"
    );
    assert_indexed(&redis, &["a", "b", "c"]);
}

/// Pages are newest first across kinds and statuses, the counts add up, and paging with the
/// cursor while new jobs arrive lists every job present at the start once.
#[tokio::test]
async fn pages_are_newest_first_complete_and_counted() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    let mut ids = Vec::new();
    for i in 0..45 {
        ids.push(submit(&b, ["a", "b", "c"][i % 3], "ana").await);
    }
    let claimed = b.claim("b", "w", 5).await.unwrap();
    for c in &claimed[..2] {
        b.complete(c.id, &c.token, &json!(null)).await.unwrap();
    }
    let all = ListFilter::default();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = b.list(&all, cursor.as_deref(), 10).await.unwrap();
        assert_eq!(
            page.counts[&Status::Pending],
            40 + 5 * (seen.len() / 10) as u64
        );
        assert_eq!(page.counts[&Status::Running], 3);
        assert_eq!(page.counts[&Status::Completed], 2);
        seen.extend(page.jobs.iter().map(|j| j.id));
        // Five more arrive between pages: they are newer than the cursor, so not listed.
        for _ in 0..5 {
            submit(&b, "a", "ana").await;
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every job once, newest first");

    let running = ListFilter {
        status: Some(Status::Running),
        executor: Some("b".into()),
        ..Default::default()
    };
    let page = b.list(&running, None, 50).await.unwrap();
    let mut want: Vec<_> = claimed[2..].iter().map(|c| c.id).collect();
    want.sort();
    want.reverse();
    assert_eq!(page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), want);
    assert!(page.next.is_none());
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
}

/// A client's listing, through the API, holds its own jobs only, whatever it asks for;
/// an admin may filter by any owner.
#[tokio::test]
async fn a_client_lists_only_its_own_jobs() {
    let redis = TestRedis::start();
    let api = crate::harness::TestApi::start(&redis, |c| c.auth = true).await;
    let b = &api.broker;
    for i in 0..6 {
        submit(b, "a", ["ana", "bob"][i % 2]).await;
    }
    let ana = b
        .create_key("ana", broker::apikeys::Role::Client)
        .await
        .unwrap();
    let admin = b
        .create_key("root", broker::apikeys::Role::Admin)
        .await
        .unwrap();
    let owners = |v: &serde_json::Value| -> HashSet<String> {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["owner"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for q in [
        "",
        "?executor=a",
        "?status=PENDING",
        "?owner=ana",
        "?owner=",
        "?finished=false",
    ] {
        let (s, v) = api
            .call(reqwest::Method::GET, &format!("/jobs{q}"), Some(&ana), None)
            .await;
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(owners(&v), HashSet::from(["ana".to_string()]), "{q}: {v}");
        assert_eq!(v["counts"]["PENDING"], 3, "{q}: {v}");
    }
    for q in ["?owner=bob", "?owner=ana%20"] {
        let (s, v) = api
            .call(reqwest::Method::GET, &format!("/jobs{q}"), Some(&ana), None)
            .await;
        assert_eq!(s, 403, "{q}: {v}");
    }
    let (s, v) = api
        .call(reqwest::Method::GET, "/jobs?owner=bob", Some(&admin), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(owners(&v), HashSet::from(["bob".to_string()]));
    let (s, v) = api
        .call(reqwest::Method::GET, "/jobs?limit=2", Some(&admin), None)
        .await;
    assert_eq!((s, v["jobs"].as_array().unwrap().len()), (200, 2), "{v}");
    assert_eq!(v["counts"]["PENDING"], 6, "{v}");
    for bad in ["?cursor=x", "?executor=a:b", "?status=DONE", "?limit=x"] {
        let (s, v) = api
            .call(
                reqwest::Method::GET,
                &format!("/jobs{bad}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"]["message"].is_string(), "{bad}: {v}");
    }
}

/// An owner's counts are kept between pages (ix:owner_counts) but never outlive a change:
/// a claim, an end, a new job or an expired job pruned away is in the very next page's
/// counts, while a repeated page with nothing changed reads the kept ones.
#[tokio::test]
async fn an_owners_kept_counts_follow_every_change() {
    let redis = TestRedis::start();
    let b = broker(&redis, |_| {});
    for _ in 0..3 {
        submit(&b, "a", "ana").await;
    }
    let mine = ListFilter {
        owner: Some("ana".into()),
        ..Default::default()
    };
    let counts = |page: broker::Page| {
        [Status::Pending, Status::Running, Status::Completed].map(|s| page.counts[&s])
    };
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [3, 0, 0]);
    let kept = redis.cli(&["HGET", "ix:owner_counts", "|ana"]);
    assert!(kept.ends_with("/3,0,3,0,0,0,0,0,1\n"), "kept: {kept:?}");
    // Nothing changed: the kept field is read, not rewritten.
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [3, 0, 0]);
    assert_eq!(redis.cli(&["HGET", "ix:owner_counts", "|ana"]), kept);

    let c = b.claim("a", "w", 1).await.unwrap().remove(0);
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [2, 1, 0]);
    b.complete(c.id, &c.token, &json!(null)).await.unwrap();
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [2, 0, 1]);
    submit(&b, "a", "ana").await;
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [3, 0, 1]);
    // bob's job is not hers, but changes nothing she is shown either.
    submit(&b, "a", "bob").await;
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [3, 0, 1]);
    // Her completed job expires (no event): once pruned, it leaves her counts.
    redis.cli(&["DEL", &format!("job_{}", c.id)]);
    b.prune().await.unwrap();
    assert_eq!(counts(b.list(&mine, None, 10).await.unwrap()), [3, 0, 0]);
}
