//! Attacks are tests (STYLE.md G19): one file per class of attack a holder of a client key
//! could try, each against real processes (redis-server, `sluice serve` in process, executor
//! binaries), each showing the attack refused and that nothing stored changed.

mod acl; // each process class is its own Redis ACL user: no key minting, no anonymous access
mod arguments; // params cannot become options or reserved placeholders; the params file is private
mod bounds; // durations, sizes, slow sockets, large bodies, streams and metric labels are bounded
mod callbacks; // failure texts are escaped for Slack; a silent callback receiver delays only its own
mod job_code; // job code reaches neither the executor's credentials nor Redis
mod owners; // a client acts only on its own things and submits only to granted kinds
mod ssrf; // job inputs, callbacks and webhooks cannot reach loopback or private addresses
mod uploads; // a job and its files in one request: held until stored, bounded, owners and grants

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use broker::apikeys::Role;
use serde_json::Value;

use crate::harness::{TestApi, TestRedis};

/// A Redis, an API with auth on, and three keys: two clients and an admin.
pub struct Stack {
    pub redis: TestRedis,
    pub api: TestApi,
    pub alice: String,
    pub bob: String,
    pub admin: String,
}

impl Stack {
    pub async fn start(tweak: impl FnOnce(&mut broker::Config)) -> Stack {
        let redis = TestRedis::start();
        let api = TestApi::start(&redis, |c| {
            c.auth = true;
            tweak(c);
        })
        .await;
        let b = &api.broker;
        // Both may run every code-running kind: the attacks test what a granted client
        // still cannot do (attacks/owners.rs tests the grants themselves).
        let code = ["command", "gridlabd", "spark", "solver"].map(String::from);
        let alice = b
            .create_key_granted("alice", Role::Client, Some(&code))
            .await
            .unwrap();
        let bob = b
            .create_key_granted("bob", Role::Client, Some(&code))
            .await
            .unwrap();
        let admin = b.create_key("root", Role::Admin).await.unwrap();
        Stack {
            redis,
            api,
            alice,
            bob,
            admin,
        }
    }

    /// One request as `key`.
    pub async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api.call(method, path, Some(key), body).await
    }

    /// `GET /jobs/{id}/artifacts` as `key`: (status, reply).
    pub async fn artifacts(&self, key: &str, id: impl std::fmt::Display) -> (u16, Value) {
        let path = format!("/jobs/{id}/artifacts");
        self.call(key, reqwest::Method::GET, &path, None).await
    }

    /// Every `apikey:*` key in Redis, sorted.
    pub fn api_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .redis
            .cli(&["KEYS", "apikey:*"])
            .lines()
            .map(String::from)
            .collect();
        keys.sort();
        keys
    }

    /// Submits a small solver job (the open kind: no executor runs it here) as `key`; its id.
    pub async fn solver_job(&self, key: &str) -> u64 {
        let body = serde_json::json!({"executor": "solver", "params": {"monomers": [["a"]]}});
        let (status, made) = self
            .call(key, reqwest::Method::POST, "/jobs", Some(body))
            .await;
        assert_eq!(status, 201, "{made}");
        made["id"].as_u64().expect("an id")
    }

    /// The ids handed out so far (`job_seq`).
    pub fn job_seq(&self) -> String {
        self.redis.cli(&["GET", "job_seq"]).trim().to_string()
    }
}

/// A tiny HTTP server on `addr` that answers every request with `reply` (a whole HTTP
/// response) and counts the requests it saw.
pub struct Server {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start(addr: &str, reply: String) -> Server {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut sock, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { addr, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An HTTP response with `status` and `headers` (each "Name: value") and a text body.
pub fn response(status: &str, headers: &[String], body: &str) -> String {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}
