//! The docs run as written: every ```` ```console ```` block of README.md and the folder
//! READMEs is run, in order, by one bash session per file, and each command's output is
//! checked against the lines the doc shows under it.
//!
//! The format is a terminal's: `$ command`, continuation lines as `> ...` (or a trailing
//! `\`), then the output. In shown output `[..]` stands for any text within a line and a
//! line `...` for any number of lines; a command with no output shown may print anything,
//! but must exit 0 like every other. ```` ```sh ```` blocks are shown, not run (building,
//! long-running soaks, settings for another host).
//!
//! The session runs in a scratch copy of the repository (symlinks, with `target/release`
//! pointing at this test build's binaries, and a fresh `run/`), inside a private network
//! and pid namespace (bubblewrap) where the documented default ports (Redis 6379, the API
//! 3323) are free and every process dies with the session. Without user namespaces it runs
//! on the host's ports, one file at a time. `SLUICE_DOCS_PRINT=1 cargo test --test integration docs:: --
//! --nocapture` prints what every example printed (for writing the docs).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long one file's examples may take in all.
const FILE_LIMIT: Duration = Duration::from_secs(300);

/// One command of a doc and the output it shows.
#[derive(Debug)]
struct Example {
    /// Where it is: `file:line`.
    at: String,
    command: String,
    shown: Vec<String>,
}

/// The examples of every ```` ```console ```` block of `text`, in order.
fn examples(file: &str, text: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut in_block = false;
    let mut continued = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if !in_block {
            in_block = trimmed.trim_start() == "```console";
            continue;
        }
        if trimmed.trim_start().starts_with("```") {
            in_block = false;
            continue;
        }
        if let Some(cmd) = trimmed.strip_prefix("$ ") {
            out.push(Example {
                at: format!("{file}:{}", n + 1),
                command: cmd.to_string(),
                shown: Vec::new(),
            });
            continued = cmd.ends_with('\\');
        } else if let Some(last) = out.last_mut() {
            let more = trimmed
                .strip_prefix("> ")
                .or((trimmed == ">").then_some(""));
            match more {
                Some(rest) if last.shown.is_empty() => {
                    last.command.push('\n');
                    last.command.push_str(rest);
                }
                _ if continued => {
                    last.command.push('\n');
                    last.command.push_str(trimmed);
                }
                _ => last.shown.push(trimmed.to_string()),
            }
            continued = continued && trimmed.ends_with('\\');
        }
    }
    out
}

/// Whether `line` matches `pattern`, where `[..]` is any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether `lines` match `shown`, where a line `...` is any number of lines.
fn output_matches(shown: &[String], lines: &[&str]) -> bool {
    match shown.split_first() {
        None => lines.is_empty(),
        Some((p, rest)) if p == "..." => {
            (0..=lines.len()).any(|skip| output_matches(rest, &lines[skip..]))
        }
        Some((p, rest)) => {
            lines.first().is_some_and(|l| line_matches(p, l)) && output_matches(rest, &lines[1..])
        }
    }
}

/// A scratch copy of the repository: each top-level entry linked (`supervisor/` mirrored),
/// `target/release` the test build's binaries, no `run/` or `data/`.
fn checkout() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("scratch dir");
    for entry in std::fs::read_dir(repo).expect("repo") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if ["target", "run", "data", ".git"].iter().any(|n| name == *n) {
            continue;
        }
        if name == "supervisor" {
            // Its config names `%(here)s/../run`: the directory must really be here.
            mirror(&entry.path(), &dir.path().join(&name));
        } else {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).expect("link");
        }
    }
    let bins = Path::new(env!("CARGO_BIN_EXE_sluice"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    std::fs::create_dir(dir.path().join("target")).expect("target");
    std::os::unix::fs::symlink(bins, dir.path().join("target/release")).expect("link");
    dir
}

/// `to` as a tree of real directories whose files link to those of `from`.
fn mirror(from: &Path, to: &Path) {
    std::fs::create_dir(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            mirror(&entry.path(), &target);
        } else {
            std::os::unix::fs::symlink(entry.path(), target).expect("link");
        }
    }
}

/// The bash script that runs `examples` in `dir`, each one's output in `out/<n>` and its
/// exit status in `out/<n>.rc`; the first that fails ends the session.
fn script(examples: &[Example], out: &Path) -> String {
    // As after README's build line: the release binaries (here: this build's) on PATH.
    let mut s = String::from(
        "shopt -s expand_aliases\nset +e\nexport PATH=\"$PWD/target/release:$PATH\"\n",
    );
    for (i, e) in examples.iter().enumerate() {
        let o = out.join(i.to_string());
        s.push_str(&format!(
            "{{\n{}\n}} > {o} 2>&1 < /dev/null\nrc=$?; echo $rc > {o}.rc; [ $rc = 0 ] || exit 1\n",
            e.command,
            o = o.display()
        ));
    }
    s
}

/// Whether bubblewrap can give the session its own network and pid namespaces here.
fn namespaces_work() -> bool {
    std::process::Command::new("bwrap")
        .args([
            "--dev-bind",
            "/",
            "/",
            "--unshare-net",
            "--unshare-pid",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs the console examples of `file` (relative to the repository) and fails naming the
/// first whose output or exit status differs from what the doc shows.
async fn run_doc(file: &str) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join(file)).expect("doc");
    let examples = examples(file, &text);
    assert!(!examples.is_empty(), "{file} has no console examples");
    let dir = checkout();
    let out = tempfile::tempdir().expect("out dir");
    let path = out.path().join("examples.sh");
    std::fs::write(&path, script(&examples, out.path())).expect("script");

    let isolated = namespaces_work();
    // On the host's ports, one file's session at a time (each starts Redis on 6379).
    static HOST_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _host = if isolated {
        None
    } else {
        Some(HOST_PORTS.lock().await)
    };
    let mut cmd = if isolated {
        let mut c = crate::harness::command("bwrap");
        c.args(["--dev-bind", "/", "/", "--unshare-net", "--unshare-pid"])
            .args(["--die-with-parent", "--proc", "/proc", "--chdir"])
            .arg(dir.path())
            .arg("bash");
        c
    } else {
        eprintln!("{file}: no namespaces here; running on the host's ports");
        let mut c = crate::harness::command("bash");
        c.current_dir(dir.path());
        c
    };
    cmd.arg(&path).stdin(Stdio::null()).stdout(Stdio::null());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true).process_group(0);
    let mut child = cmd.spawn().expect("bash");
    let pid = child.id();
    let _ = tokio::time::timeout(FILE_LIMIT, child.wait()).await;
    // The whole session: bash and everything it left running (outside a pid namespace too;
    // a daemon that left the group is out of reach there).
    if let Some(pid) = pid {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut ran = 0;
    let mut differ = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let o = out.path().join(i.to_string());
        let got = std::fs::read_to_string(&o).unwrap_or_default();
        let lines: Vec<&str> = got.lines().map(str::trim_end).collect();
        if std::env::var_os("SLUICE_DOCS_PRINT").is_some() {
            println!("{}: $ {}\n{got}", e.at, e.command);
        }
        if !e.shown.is_empty() && !output_matches(&e.shown, &lines) {
            differ.push(format!(
                "{}: `{}` printed\n{got}\nbut the doc shows\n{}\n",
                e.at,
                e.command,
                e.shown.join("\n")
            ));
        }
        match std::fs::read_to_string(o.with_extension("rc")) {
            Ok(rc) if rc.trim() == "0" => ran += 1,
            Ok(rc) => {
                differ.push(format!(
                    "{}: `{}` exited {}:\n{got}",
                    e.at,
                    e.command,
                    rc.trim()
                ));
                break;
            }
            Err(_) => {
                differ.push(format!(
                    "{}: `{}` did not finish within {FILE_LIMIT:?} for the file",
                    e.at, e.command
                ));
                break;
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    drop(child);
    println!("{file}: {ran} examples ran as written");
}

#[tokio::test]
async fn readme_examples_run_as_written() {
    run_doc("README.md").await;
}

#[test]
fn the_format_is_read_as_a_terminal_shows_it() {
    let doc = "text\n```console\n$ echo a \\\n  b\na b\n$ curl -d '{\n>   \"x\": 1\n> }'\n...\n```\n```sh\n$ not run\n```\n";
    let ex = examples("d.md", doc);
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert_eq!(ex[0].command, "echo a \\\n  b");
    assert_eq!(ex[0].shown, ["a b"]);
    assert_eq!(ex[1].command, "curl -d '{\n  \"x\": 1\n}'");
    assert_eq!(ex[1].at, "d.md:6");
    assert!(line_matches(
        "id [..] at [..]Z",
        "id 7 at 2026-11-28T10:00:00Z"
    ));
    assert!(!line_matches("id [..] at", "id 7 in"));
    assert!(line_matches("[..]", ""));
    let shown: Vec<String> = ["a", "...", "z"].map(String::from).to_vec();
    assert!(output_matches(&shown, &["a", "z"]));
    assert!(output_matches(&shown, &["a", "b", "c", "z"]));
    assert!(!output_matches(&shown, &["a", "b"]));
    assert!(!output_matches(&shown[..1], &["a", "b"]));
}

#[tokio::test]
async fn broker_readme_examples_run_as_written() {
    run_doc("broker/README.md").await;
}

#[tokio::test]
async fn executors_readme_examples_run_as_written() {
    run_doc("executors/README.md").await;
}

#[tokio::test]
async fn supervisor_readme_examples_run_as_written() {
    run_doc("supervisor/README.md").await;
}
