//! A redis-server owned by one test: its own unix socket and temp dir, no persistence
//! unless asked, killed and cleaned up on drop. It runs with Sluice's ACL users
//! (`broker::acl`): every process a test starts connects as its class's user
//! ([`TestRedis::url_for`]), so the tests run with the rights production has; the `default`
//! user, which only the harness' redis-cli uses, is a superuser with a password.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running redis-server for one test.
pub struct TestRedis {
    child: Child,
    args: Vec<String>,
    dir: TempDir,
    /// `unix:///.../redis.sock?user=sluice-admin&pass=...`: the admin CLI's user, which the
    /// tests' own brokers use.
    pub url: String,
    /// The socket path, for redis-cli.
    pub socket: PathBuf,
}

impl TestRedis {
    /// Starts redis-server without persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts redis-server with extra arguments (e.g. AOF settings).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("redis.sock");
        let d = dir.path().display();
        let acl = dir.path().join("users.acl");
        let users = broker::acl::file(&broker::keys::Keys::new(""), &passwords())
            .expect("ACL file")
            .replace(
                "user default off\n",
                &format!("user default on >{SUPERUSER} ~* &* +@all\n"),
            );
        std::fs::write(&acl, users).expect("write users.acl");
        let mut args: Vec<String> = vec![
            "--port".into(),
            "0".into(),
            "--unixsocket".into(),
            socket.display().to_string(),
            "--unixsocketperm".into(),
            "700".into(),
            "--dir".into(),
            d.to_string(),
            "--logfile".into(),
            format!("{d}/redis.log"),
            "--aclfile".into(),
            acl.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let this = Self {
            child: spawn(&args),
            args,
            url: user_url(&socket, "admin"),
            socket,
            dir,
        };
        this.wait_ready();
        this
    }

    /// Kills the server with SIGKILL and leaves it down until [`TestRedis::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server with SIGKILL and starts it again on the same socket and dir (its AOF,
    /// if it has one, is replayed). Scripts are gone afterwards, as after any restart.
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// [`TestRedis::restart`] with `extra` arguments for this start only.
    pub fn restart_with(&mut self, extra: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        self.child = spawn(&args);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.socket.exists() && self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start:\n{log}");
    }

    /// The URL of ACL user class `class` (exec, api, admin).
    pub fn url_for(&self, class: &str) -> String {
        user_url(&self.socket, class)
    }

    /// Runs redis-cli (as the superuser) against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(["--no-auth-warning", "-a", SUPERUSER])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The temp dir the server runs in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// The harness' own superuser password (the `default` user's).
pub const SUPERUSER: &str = "harness-superuser";

/// The test passwords of the ACL users, by class.
fn passwords() -> Vec<(&'static str, String)> {
    broker::acl::USERS
        .iter()
        .map(|(class, _)| (*class, format!("test-{class}")))
        .collect()
}

/// `base` (any Redis URL) with the ACL user of `class` and its test password in it.
pub fn with_user(base: &str, class: &str) -> String {
    let user = broker::acl::USERS
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, u)| *u)
        .expect("a user class");
    broker::acl::url_for(base, user, &format!("test-{class}")).expect("a URL")
}

fn user_url(socket: &std::path::Path, class: &str) -> String {
    with_user(&format!("unix://{}", socket.display()), class)
}

fn spawn(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (apt-get install redis-server)")
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
