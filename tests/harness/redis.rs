//! A redis-server owned by one test: its own unix socket and temp dir, no persistence
//! unless asked, killed and cleaned up on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running redis-server for one test.
pub struct TestRedis {
    child: Child,
    args: Vec<String>,
    dir: TempDir,
    /// `unix:///.../redis.sock`
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
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let this = Self {
            child: spawn(&args),
            args,
            url: format!("unix://{}", socket.display()),
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        self.child = spawn(&self.args);
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

    /// Runs redis-cli against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
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
