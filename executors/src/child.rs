//! How an executor starts the programs its jobs run (command actions, `spark-submit`,
//! GridLAB-D), so that job code, which a client chose, holds none of the broker's power:
//!
//! 1. **A cleared environment.** The child gets only an allow-list of the executor's
//!    variables ([`BASE_ENV`], the kind's own names, the `child_env` setting, an action's
//!    `pass_env`) plus what the kind sets itself; never `SLUICE_REDIS_URL` or any other
//!    credential of the executor.
//! 2. **A sandbox where the host allows** ([bubblewrap](https://github.com/containers/bubblewrap),
//!    Debian's `bubblewrap`): new user, pid, ipc, uts and network namespaces (no network
//!    unless the action or kind declares it), all capabilities dropped, the whole filesystem
//!    read-only, a private `/tmp`, the job's own working directory writable, and the paths
//!    that hold secrets or other jobs' files hidden: the artifact directory, the config file,
//!    and the `sandbox_hide` setting. The executor's own process is invisible (pid namespace),
//!    so its environment cannot be read through `/proc`. `sandbox = auto` (default) uses it
//!    when `bwrap` works here and says at start-up when it does not; `required` refuses to
//!    start without it; `off` never uses it.
//! 3. The executor itself is not dumpable ([`harden_self`]): another process of the same
//!    user cannot read its memory or `/proc/<pid>/environ`.
//!
//! This is the one module below `bin/` that reads the process environment: to copy the
//! allowed variables into children.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use broker::Config;

/// Variables every child may inherit from the executor's environment.
pub const BASE_ENV: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM",
];

/// Whether job children run in a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// When `bwrap` works on this host.
    Auto,
    /// Never.
    Off,
    /// Always; the executor refuses to start without it.
    Required,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "off" => Ok(SandboxMode::Off),
            "required" => Ok(SandboxMode::Required),
            _ => Err(format!("sandbox: {s:?} must be auto, off or required")),
        }
    }
}

/// One program to start for a job.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// The program (a path, or a name found on PATH).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// Variables set for it.
    pub env: Vec<(OsString, OsString)>,
    /// Names of the executor's variables it may inherit, besides [`BASE_ENV`].
    pub pass: Vec<String>,
    /// Whether it may use the network (in the sandbox).
    pub network: bool,
    /// Directories it may write (in the sandbox): its working directory and the like.
    pub writable: Vec<PathBuf>,
    /// Files or directories the job names that it must read although they are in the
    /// sandbox's private `/tmp` (never another job's directory or a hidden path).
    pub readable: Vec<PathBuf>,
}

/// How this executor starts children: the sandbox (if any) and the allow-lists.
#[derive(Debug, Clone)]
pub struct Jail {
    bwrap: Option<PathBuf>,
    hide: Vec<PathBuf>,
    pass: Vec<String>,
}

/// Whether `bwrap` runs a sandbox here (probed once per process).
fn bwrap_works() -> Result<PathBuf, String> {
    static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let out = std::process::Command::new("bwrap")
                .args(["--die-with-parent", "--unshare-user", "--unshare-ipc"])
                .args(["--unshare-pid", "--unshare-uts", "--unshare-net"])
                .args(["--cap-drop", "ALL"])
                .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .args(["--tmpfs", "/tmp", "--", "true"])
                .env_clear()
                .output();
            match out {
                Ok(o) if o.status.success() => Ok(PathBuf::from("bwrap")),
                Ok(o) => Err(format!(
                    "bwrap cannot make a sandbox here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!(
                    "bwrap is not installed ({e}); apt-get install bubblewrap"
                )),
            }
        })
        .clone()
}

impl Jail {
    /// The jail of `config`'s `sandbox`, `sandbox_hide` and `child_env` settings.
    ///
    /// # Errors
    /// With `sandbox = required`, why there is no sandbox here.
    pub fn new(config: &Config) -> Result<Jail, String> {
        let mode: SandboxMode = config.sandbox.parse()?;
        let bwrap = match mode {
            SandboxMode::Off => None,
            SandboxMode::Auto => bwrap_works().ok(),
            SandboxMode::Required => Some(bwrap_works()?),
        };
        let mut hide = vec![config.artifact_dir.clone()];
        hide.extend(config.config_file.iter().cloned());
        hide.extend(config.sandbox_hide.iter().cloned());
        Ok(Jail {
            bwrap,
            hide,
            pass: config.child_env.clone(),
        })
    }

    /// A jail whose every child fails to start (no `bwrap` to run it in): what a caller
    /// gets that asked for `sandbox = required` where there is none.
    pub fn refusing() -> Jail {
        Jail {
            bwrap: Some(PathBuf::from(
                "/nonexistent/bwrap (sandbox required but unavailable)",
            )),
            hide: Vec::new(),
            pass: Vec::new(),
        }
    }

    /// What start-up logs about the sandbox.
    pub fn describe(&self) -> String {
        match (&self.bwrap, bwrap_works()) {
            (Some(_), _) => "job programs run sandboxed (bwrap: no network unless declared, read-only filesystem, private /tmp)".into(),
            (None, Err(why)) => format!("job programs run WITHOUT a sandbox: {why}; they can read what this executor's user can read"),
            (None, Ok(_)) => "job programs run WITHOUT a sandbox (sandbox = off)".into(),
        }
    }

    /// Whether children run in the sandbox.
    pub fn sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The command that starts `spec`: its own process group, killed on drop, a cleared
    /// environment with the allowed variables, inside the sandbox when there is one.
    pub fn command(&self, spec: &Spec) -> tokio::process::Command {
        let mut cmd = match &self.bwrap {
            None => {
                let mut c = tokio::process::Command::new(&spec.program);
                c.args(&spec.args);
                if let Some(cwd) = &spec.cwd {
                    c.current_dir(cwd);
                }
                c
            }
            Some(bwrap) => {
                let mut c = tokio::process::Command::new(bwrap);
                c.args(self.bwrap_args(spec))
                    .arg("--")
                    .arg(&spec.program)
                    .args(&spec.args);
                c
            }
        };
        cmd.env_clear();
        let names = BASE_ENV
            .iter()
            .copied()
            .chain(self.pass.iter().map(String::as_str))
            .chain(spec.pass.iter().map(String::as_str));
        for name in names {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    fn bwrap_args(&self, spec: &Spec) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&OsStr]| a.extend(parts.iter().map(|p| p.to_os_string()));
        push(&["--die-with-parent".as_ref(), "--new-session".as_ref()]);
        // Not the cgroup namespace: the JVM's container detection fails inside one.
        for ns in [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
        ] {
            push(&[ns.as_ref()]);
        }
        if !spec.network {
            push(&["--unshare-net".as_ref()]);
        }
        push(&["--cap-drop".as_ref(), "ALL".as_ref()]);
        push(&["--ro-bind".as_ref(), "/".as_ref(), "/".as_ref()]);
        push(&[
            "--dev".as_ref(),
            "/dev".as_ref(),
            "--proc".as_ref(),
            "/proc".as_ref(),
        ]);
        push(&["--tmpfs".as_ref(), "/tmp".as_ref()]);
        for path in &self.hide {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            let p = canonical(path);
            if meta.is_dir() {
                push(&["--tmpfs".as_ref(), p.as_os_str()]);
            } else {
                push(&["--ro-bind".as_ref(), "/dev/null".as_ref(), p.as_os_str()]);
            }
        }
        let tmp = canonical(&std::env::temp_dir());
        for path in &spec.readable {
            let p = canonical(path);
            let others = p.starts_with(&tmp)
                && p.strip_prefix(&tmp)
                    .ok()
                    .and_then(|r| r.iter().next())
                    .is_some_and(|first| first.to_string_lossy().starts_with("sluice-"));
            let hidden = self.hide.iter().any(|h| p.starts_with(canonical(h)));
            if p.starts_with(&tmp) && !others && !hidden {
                push(&["--ro-bind".as_ref(), p.as_os_str(), p.as_os_str()]);
            }
        }
        for dir in spec.writable.iter().chain(spec.cwd.iter()) {
            let p = canonical(dir);
            push(&["--bind".as_ref(), p.as_os_str(), p.as_os_str()]);
        }
        if let Some(cwd) = &spec.cwd {
            push(&["--chdir".as_ref(), canonical(cwd).as_os_str()]);
        }
        a
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Makes this process non-dumpable: another process of the same user can then neither read
/// its memory nor its `/proc/<pid>/environ` (where the Redis URL of its ACL user is), nor
/// ptrace it. Children start dumpable again (exec resets it), which is why they get a
/// cleared environment.
pub fn harden_self() {
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "could not make the executor non-dumpable");
    }
}
