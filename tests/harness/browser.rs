//! A real headless Chromium for the web console's tests, driven over WebDriver (fantoccini).
//! Each [`Browser`] starts its own `chromedriver` on a free port of 127.0.0.1 (its output in
//! a temp dir, quoted when it fails) and one session of Debian's `chromium` with a fresh
//! profile in that dir: cookies, the console's HttpOnly session cookie among them, live
//! across that Browser's pages and in no other. Dropped or closed, the driver and every
//! browser process it started are killed. `bin/sluice-test` installs `chromium` and
//! `chromium-driver`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// One headless Chromium session and the chromedriver serving it.
pub struct Browser {
    /// The WebDriver session, for whatever the helpers below do not cover.
    pub client: Client,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver, waits (10 s at most) until its /status says ready, and opens a
    /// session of a 1280x900 headless Chromium (`--no-sandbox`: the tests run as root in CI,
    /// where Chromium's sandbox refuses to start).
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log file");
        let mut cmd = super::command("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // Its own process group, so that dropping kills the browsers it started too.
            .process_group(0);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let child = cmd
            .spawn()
            .expect("start chromedriver (bin/sluice-test installs chromium-driver)");
        let mut driver = Driver { child, dir };
        let url = format!("http://127.0.0.1:{port}");
        driver.wait_ready(&url).await;
        let profile = driver.dir.path().join("profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", driver.log()));
        Self { client, driver }
    }

    /// What chromedriver (and the Chromium it started) printed so far.
    pub fn log(&self) -> String {
        self.driver.log()
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("goto {url}: {e}");
        }
    }

    /// The first element matching the CSS selector `css`, now.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => panic!("find {css:?} on {}: {e}", self.url().await),
        }
    }

    /// The first element matching `css`, polled every 100 ms for up to `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let found = self
            .client
            .wait()
            .at_most(timeout)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(el) => el,
            Err(e) => panic!("no {css:?} on {} within {timeout:?}: {e}", self.url().await),
        }
    }

    /// Polls every 100 ms until the text of the first element matching `css` contains
    /// `needle`: that text. Panics after `timeout` with the last text seen.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    last = Some(text);
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} on {} had no {needle:?} within {timeout:?}; last text: {last:?}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the viewport as `target/ui-screenshots/<name>.png` (under the
    /// workspace) and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("screenshot {name}: {e}"),
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session (Chromium quits), then kills the driver.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// The current URL, for messages.
    async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map_or_else(|e| format!("<no url: {e}>"), String::from)
    }
}

/// The chromedriver process (its own process group) and its temp dir (log, profile).
struct Driver {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Driver {
    /// Polls chromedriver's /status until it is ready; panics with its log if it exits or
    /// stays silent for 10 s.
    async fn wait_ready(&mut self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return;
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("chromedriver exited ({exit}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready after 10 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    /// Kills chromedriver's process group: the driver and the Chromium processes it started,
    /// which outlive a driver killed alone.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The Chromium binary on PATH (`which chromium`).
fn chromium() -> String {
    let out = std::process::Command::new("which")
        .arg("chromium")
        .output()
        .expect("which");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "no chromium on PATH (bin/sluice-test installs it)"
    );
    path
}
