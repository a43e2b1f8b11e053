//! An S3-compatible server owned by one test (moto's, `pip install "moto[server]"`, run as
//! `python3 -m moto.server`: any key and secret are accepted), and [`TestStore`], the
//! artifact store a test runs against: a temp directory or a fresh bucket.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use broker::artifacts::{Artifacts, S3Settings, StoreKind};
use broker::Config;
use tempfile::TempDir;

use super::free_port;

/// A moto S3 server on 127.0.0.1:<own port>, killed on drop.
pub struct TestS3 {
    child: Child,
    dir: TempDir,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

impl TestS3 {
    /// Starts the server and waits until it answers.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("python3 must be installed");
        let mut this = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = this.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(this.dir.path().join("moto.log"));
                panic!(
                    "moto's S3 server did not start (pip install 'moto[server]'): {exited:?}\n{}",
                    log.unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        this
    }

    /// Creates a fresh bucket and returns the settings that reach it.
    pub async fn bucket(&self) -> S3Settings {
        let bucket = format!("sluice-test-{}", uuid::Uuid::new_v4().simple());
        let r = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("moto answers");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            bucket,
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..S3Settings::default()
        }
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The artifact store of one test: a temp directory, or a fresh bucket on its own moto.
pub struct TestStore {
    /// Which kind.
    pub kind: StoreKind,
    dir: TempDir,
    s3: Option<(TestS3, S3Settings)>,
}

impl TestStore {
    /// A store of `kind`.
    pub async fn start(kind: StoreKind) -> Self {
        let s3 = match kind {
            StoreKind::Local => None,
            StoreKind::S3 => {
                let server = TestS3::start();
                let settings = server.bucket().await;
                Some((server, settings))
            }
        };
        Self {
            kind,
            dir: tempfile::tempdir().expect("temp dir"),
            s3,
        }
    }

    /// Points `c` at this store.
    pub fn apply(&self, c: &mut Config) {
        c.artifact_store = self.kind;
        c.artifact_dir = self.dir.path().join("artifacts");
        if let Some((_, s)) = &self.s3 {
            c.s3 = s.clone();
        }
    }

    /// The environment that points a Sluice process at this store.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SLUICE_ARTIFACT_STORE".into(), self.kind.to_string()),
            (
                "SLUICE_ARTIFACT_DIR".into(),
                self.dir.path().join("artifacts").display().to_string(),
            ),
        ];
        if let Some((_, s)) = &self.s3 {
            let pairs = [
                ("S3_ENDPOINT_URL", s.endpoint.clone()),
                ("S3_BUCKET", Some(s.bucket.clone())),
                ("S3_REGION_NAME", Some(s.region.clone())),
                ("S3_ACCESS_KEY_ID", s.access_key_id.clone()),
                ("S3_SECRET_ACCESS_KEY", s.secret_access_key.clone()),
            ];
            env.extend(
                pairs
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v))),
            );
        }
        env
    }

    /// A handle on the same store, to look at what the processes under test left there.
    pub fn artifacts(&self) -> Artifacts {
        let mut c = Config::default();
        self.apply(&mut c);
        Artifacts::from_config(&c).expect("the test store's settings")
    }
}
