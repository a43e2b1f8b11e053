//! The scripts' headers agree with what the wrappers send and the key schema.

use super::*;

fn header(src: &str) -> &str {
    let start = src.find("--[[").unwrap_or(0);
    let end = src[start..].find("]]").map_or(src.len(), |e| start + e);
    &src[start..end]
}

fn numbers_after(text: &str, marker: &str) -> Vec<i64> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// A connection that answers every command with `{-1}` and records, per script SHA,
/// the KEYS count each EVALSHA sent: what the wrappers actually pass.
#[derive(Default)]
struct Recorder {
    sent: std::collections::HashMap<String, usize>,
}

impl Recorder {
    fn record(&mut self, cmd: &redis::Cmd) {
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        if args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"EVALSHA"))
        {
            let sha = String::from_utf8_lossy(&args[1]).into_owned();
            let n = String::from_utf8_lossy(&args[2])
                .parse()
                .unwrap_or(usize::MAX);
            self.sent.insert(sha, n);
        }
    }
}

impl ConnectionLike for Recorder {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        self.record(cmd);
        Box::pin(async { Ok(Value::Array(vec![Value::Int(-1)])) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        _offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        for c in cmd.cmd_iter() {
            self.record(c);
        }
        Box::pin(async move { Ok(vec![Value::Array(vec![Value::Int(-1)]); count]) })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The KEYS count each script's wrapper sends, by script name: every wrapper called once
/// against a [`Recorder`].
fn wrapper_keys() -> std::collections::HashMap<&'static str, usize> {
    let s = Scripts::new(Keys::new(""), 10);
    let mut r = Recorder::default();
    let job = NewJob {
        executor: "x".into(),
        params: serde_json::json!({}),
        max_attempts: 1,
        backoff: Duration::ZERO,
        timeout: Duration::ZERO,
        result_ttl: Duration::ZERO,
        run_at: None,
        owner: String::new(),
        extra: Vec::new(),
    };
    let id = JobId(1);
    let actor = Actor {
        owner: "o",
        guard: "",
        kinds: "*".into(),
    };
    let wf = crate::workflows::NewWorkflow {
        name: "w".into(),
        owner: String::new(),
        on_failure: crate::workflows::OnFailure::All,
        result_ttl: Duration::ZERO,
        inputs: "[]".into(),
        nodes: vec![crate::workflows::NewNode {
            name: "a".into(),
            parents: Vec::new(),
            job: job.clone(),
        }],
    };
    futures::executor::block_on(async {
        let c = &mut r;
        let _ = s.fire(c, "n", 1, 2, &job).await;
        let _ = s.submit(c, &job).await;
        let _ = s.claim(c, "x", "w", 1, Duration::from_secs(1)).await;
        let _ = s.heartbeat(c, id, "t", Duration::from_secs(1)).await;
        let _ = s.progress(c, id, "t", &serde_json::json!({})).await;
        let _ = s.log(c, id, "t", "line").await;
        let _ = s.complete(c, id, "t", b"").await;
        let _ = s.fail(c, id, "t", "e", true).await;
        let _ = s.timeout(c, id, "t", "e").await;
        let _ = s.cancel(c, id, "t").await;
        let _ = s.release(c, id, "t").await;
        let _ = s.stop(c, id).await;
        let _ = s.lock(c, id, "h", false).await;
        let _ = s.unlock(c, id).await;
        let _ = s.retry(c, id).await;
        let _ = s.reap(c, 1, 5, Duration::from_secs(2)).await;
        let p = crate::presence::Presence {
            worker: "w",
            kind: "x",
            slots: 1,
            running: 0,
            ttl: Duration::from_secs(2),
            leaving: false,
            jobs: &[],
        };
        let _ = s.presence(c, &p, Duration::from_secs(1)).await;
        let _ = s.promote(c, 1).await;
        let _ = s.prune(c, 1).await;
        let _ = s
            .list(c, &crate::client::ListFilter::default(), 0, 1, 1)
            .await;
        let _ = s.unhold(c, id, None).await;
        let _ = s.seq_floor(c, 1).await;
        let _ = s.cluster_put(c, 1, &[("name", "n".into())]).await;
        let _ = s.cluster_rm(c, 1).await;
        let _ = s.workflow_create(c, &wf).await;
        let _ = s.workflow_stop(c, 1).await;
        let _ = s.pipeline_put(c, Some(1), "o", "", &[]).await;
        let _ = s.pipeline_rm(c, 1, "").await;
        let _ = s.pipeline_run(c, 1, &actor, "", "", &job).await;
    });
    s.hashes()
        .into_iter()
        .filter_map(|(name, sha)| Some((name, *r.sent.get(sha)?)))
        .collect()
}

#[test]
fn keys_documented_used_and_passed_agree() {
    let sent = wrapper_keys();
    for (name, src) in SOURCES {
        let documented = numbers_after(header(src), "KEYS[");
        let n = documented.len();
        assert_eq!(
            documented,
            (1..=n as i64).collect::<Vec<_>>(),
            "{name}.lua: header KEYS must be numbered 1..n"
        );
        let body = &src[header(src).len()..];
        let used = numbers_after(body, "KEYS[").into_iter().max().unwrap_or(0);
        assert_eq!(
            used as usize, n,
            "{name}.lua: body uses KEYS up to {used}, header documents {n}"
        );
        assert_eq!(
            sent.get(name).copied(),
            Some(n),
            "{name}.lua: its Rust wrapper sends a different KEYS count (None: not called)"
        );
    }
}

#[test]
fn every_returned_code_is_documented_and_mapped() {
    let mapped = [
        code::NOT_FOUND,
        code::LOCKED,
        code::ILLEGAL,
        code::STALE_LEASE,
        code::CLUSTER,
        code::FORBIDDEN,
        code::CONFLICT,
    ];
    for (name, src) in SOURCES {
        let doc = header(src);
        let returns = &doc[doc.find("Returns:").unwrap_or(0)..];
        let expanded = expand(src);
        let body = &expanded[header(&expanded).len()..];
        for c in numbers_after(body, "{-") {
            assert!(
                returns.contains(&format!("{{-{c}")),
                "{name}.lua can return -{c} but its header does not say so"
            );
        }
        for c in numbers_after(returns, "{-") {
            assert!(
                mapped.contains(&-c),
                "{name}.lua documents -{c}, which error.rs does not map"
            );
        }
    }
}

#[test]
fn keys_are_made_only_by_the_key_schema_and_it_agrees_with_keys_rs() {
    let lua = include_str!("../../../lua/includes/keys.lua");
    for (name, src) in SOURCES.iter().chain(INCLUDES.iter()) {
        if *name == "keys" {
            continue;
        }
        let body = &src[header(src).len()..];
        assert!(
            !body.contains("prefix .."),
            "{name}.lua builds a key by hand; use includes/keys"
        );
    }
    let k = Keys::new("t:");
    let id = JobId(7);
    for (f, rust) in [
        ("job", k.job(id)),
        ("history", k.history(id)),
        ("workflow", k.workflow(7)),
        ("pipeline", k.pipeline(7)),
        ("cluster", k.cluster(7)),
        ("queue", k.queue("7")),
        ("wake", k.wake("7")),
        ("schedule", k.schedule("7")),
        ("levels", k.levels("7")),
        ("starts", k.starts("7", None)),
        ("executor", k.executor("7")),
    ] {
        let line = lua
            .lines()
            .find(|l| l.starts_with(&format!("local function key_{f}(")))
            .unwrap_or_default();
        let literal = line.split('\'').nth(1).unwrap_or("?");
        assert_eq!(
            format!("t:{literal}7"),
            rust,
            "key_{f} and Keys::{f} disagree"
        );
    }
}

#[test]
fn no_include_survives_expansion() {
    for (name, src) in SOURCES {
        assert!(
            !expand(src).contains("@include"),
            "{name}.lua keeps an unexpanded include"
        );
    }
}

#[test]
fn every_lua_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    files.retain(|f| f.ends_with(".lua"));
    files.sort();
    let mut names: Vec<String> = SOURCES.iter().map(|(n, _)| format!("{n}.lua")).collect();
    names.sort();
    assert_eq!(files, names);
}
