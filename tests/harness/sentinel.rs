//! A Redis Sentinel set-up owned by one test, all real processes on loopback: a primary,
//! `replicas` replicas (each a [`TestRedis`] listening on its own TCP port as well) and
//! three `redis-server --sentinel`s watching master name [`MASTER`] with quorum 2, which
//! declare the primary down after [`DOWN_AFTER`] of silence. Everything is killed on drop.
//!
//! The first replica may replicate through a [`Link`], a TCP relay the test can make hold
//! back what the primary sends: replication lag on demand, to show what a failover loses.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::redis::{with_user, SUPERUSER};
use super::{free_port, Proc, TestRedis};

/// The master name the sentinels watch.
pub const MASTER: &str = "sluice";

/// How long the sentinels wait before they call a silent primary down.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

/// A node of the set-up: its server and the TCP port the others know it by.
pub struct Node {
    /// The server.
    pub redis: TestRedis,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// A TCP relay from a replica to its primary that forwards the replica's bytes at once and
/// the primary's unless held: while held they pile up in the relay, and when the primary's
/// side closes they are dropped, as if the network had lost them.
pub struct Link {
    /// The relay's port (the replica's `replicaof`).
    pub port: u16,
    held: Arc<AtomicBool>,
}

impl Link {
    fn start(primary: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().expect("relay address").port();
        let held = Arc::new(AtomicBool::new(false));
        let flag = held.clone();
        std::thread::spawn(move || {
            for replica in listener.incoming().flatten() {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", primary)) else {
                    continue;
                };
                relay(replica, upstream, flag.clone());
            }
        });
        Link { port, held }
    }

    /// Holds back what the primary sends from now on.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }
}

fn relay(replica: TcpStream, primary: TcpStream, held: Arc<AtomicBool>) {
    let (Ok(mut replica_in), Ok(mut primary_out)) = (replica.try_clone(), primary.try_clone())
    else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut replica_in, &mut primary_out);
        let _ = primary_out.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (primary, replica);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) if held.load(Ordering::SeqCst) => {} // lost with the primary
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A primary, its replicas and three sentinels.
pub struct TestSentinels {
    /// Every data node, the primary of the start first.
    pub nodes: Vec<Node>,
    /// The first replica's relay, when asked for.
    pub link: Option<Link>,
    sentinels: Vec<(Proc, u16)>,
    dir: tempfile::TempDir,
}

fn node(port: u16, replica_of: Option<u16>, extra: &[&str]) -> Node {
    let port_s = port.to_string();
    let mut args: Vec<String> = vec![
        "--port".into(),
        port_s,
        "--bind".into(),
        "127.0.0.1".into(),
        // Any node may become a replica after a failover: it authenticates to the primary
        // as the harness' superuser (the `default` user).
        "--masterauth".into(),
        SUPERUSER.into(),
        // A replica that (re)joins syncs at once, not after the default 5 s wait for others.
        "--repl-diskless-sync-delay".into(),
        "0".into(),
    ];
    if let Some(p) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Node {
        redis: TestRedis::start_with(&refs),
        port,
    }
}

fn sentinel(dir: &Path, n: usize, primary: u16) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.join(format!("sentinel-{n}.conf"));
    // failover-timeout also bounds how soon sentinels "fix" a replica whose master address
    // is not the primary's (a relayed one's): long, so they leave the relay in place.
    // The file is the sentinel's own state: it rewrites it as it learns the topology.
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel-{n}.log\n\
             sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
             sentinel auth-pass {MASTER} {SUPERUSER}\n\
             sentinel down-after-milliseconds {MASTER} {down}\n\
             sentinel failover-timeout {MASTER} 60000\n\
             sentinel parallel-syncs {MASTER} 2\n",
            dir = dir.display(),
            down = DOWN_AFTER.as_millis()
        ),
    )
    .expect("sentinel.conf");
    let child = Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server --sentinel");
    (Proc(child), port)
}

impl TestSentinels {
    /// Starts the primary (with `extra` redis-server arguments, as every node), `replicas`
    /// replicas (the first through a [`Link`] if `link`), and three sentinels; returns once
    /// the sentinels know every replica.
    pub fn start(replicas: usize, link: bool, extra: &[&str]) -> Self {
        let primary = free_port();
        let mut nodes = vec![node(primary, None, extra)];
        let link = link.then(|| Link::start(primary));
        for n in 0..replicas {
            let upstream = match &link {
                Some(l) if n == 0 => l.port,
                _ => primary,
            };
            nodes.push(node(free_port(), Some(upstream), extra));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let sentinels = (0..3).map(|n| sentinel(dir.path(), n, primary)).collect();
        let this = Self {
            nodes,
            link,
            sentinels,
            dir,
        };
        this.wait(Duration::from_secs(20), "replicas in sync and known", |s| {
            s.nodes[1..].iter().all(|n| {
                n.redis
                    .cli(&["INFO", "replication"])
                    .contains("master_link_status:up")
            }) && s.sentinels.iter().all(|(_, p)| {
                let entries = |what: &str| {
                    sentinel_cli(*p, &["SENTINEL", what, MASTER])
                        .lines()
                        .filter(|l| *l == "name")
                        .count()
                };
                entries("REPLICAS") >= replicas && entries("SENTINELS") >= 2
            })
        });
        this
    }

    /// The Sentinel `redis_url` of ACL user class `class` (exec, api, admin).
    pub fn url_for(&self, class: &str) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        with_user(
            &format!("redis+sentinel://{}/{MASTER}", hosts.join(",")),
            class,
        )
    }

    /// The port the sentinels currently name primary (the first sentinel that answers).
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|(_, p)| {
            let out = sentinel_cli(*p, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
            out.lines().nth(1).and_then(|l| l.trim().parse().ok())
        })
    }

    /// The node listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// Polls `done` every 50 ms; panics naming `what` (and the sentinels' logs) after `within`.
    pub fn wait(&self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what}: not after {within:?}\n{}", self.logs());
    }

    /// A directory for the test's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The tail of every sentinel's log.
    pub fn logs(&self) -> String {
        (0..self.sentinels.len())
            .map(|n| {
                let text =
                    std::fs::read_to_string(self.dir.path().join(format!("sentinel-{n}.log")))
                        .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "sentinel {n}:\n{}",
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// redis-cli against the sentinel on `port`.
pub fn sentinel_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
