//! A child program's console, as the process-running executor kinds (`spark`, `gridlabd`)
//! handle it: every line of stdout and stderr goes into the log file (kept as an artifact)
//! and, in batches of at most a fifth of a second, into the job's events (`lua/log.lua`);
//! the tails are kept for the result and for the error message.
//!
//! Lines end at `\n`, and also at a lone `\r` (progress counters such as GridLAB-D's
//! `Processing ...` or Spark's stage bar rewrite one terminal line with `\r`, and would
//! otherwise reach the events only when the program ends).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use broker::artifacts::Artifacts;
use broker::JobId;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use crate::runtime::{JobContext, JobError, JobInput};

/// Lines of stdout kept for the result.
pub(crate) const STDOUT_TAIL_LINES: usize = 200;
/// Lines of output (both streams) kept to find an error line.
pub(crate) const ERROR_TAIL_LINES: usize = 400;
/// How often collected lines are flushed to the job's events.
const LOG_FLUSH: Duration = Duration::from_millis(200);
/// A line longer than this is cut there (a program printing without newlines).
const MAX_LINE: usize = 64 * 1024;
/// Lines matching [`Console::start`]'s `notable` predicate that are kept, first ones first.
const NOTABLE_LINES: usize = 20;

/// What the console kept once the program is done.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// The last [`STDOUT_TAIL_LINES`] lines of stdout.
    pub stdout_tail: Vec<String>,
    /// The last [`ERROR_TAIL_LINES`] lines of both streams.
    pub tail: Vec<String>,
    /// The first lines (of both streams) the `notable` predicate picked.
    pub notable: Vec<String>,
}

#[derive(Default)]
struct Shared {
    pending: Vec<String>,
    stdout_tail: VecDeque<String>,
    tail: VecDeque<String>,
    notable: Vec<String>,
}

fn push_tail(q: &mut VecDeque<String>, line: &str, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(line.to_string());
}

/// A running child's console: readers, the collector and the flusher.
pub(crate) struct Console {
    shared: Arc<Mutex<Shared>>,
    collector: JoinHandle<()>,
    flusher: JoinHandle<()>,
}

impl Console {
    /// Starts reading `child`'s piped stdout and stderr into `log_file` and the events of
    /// `ctx`'s job. `notable` picks lines worth keeping from the start (error lines).
    pub(crate) fn start(
        child: &mut tokio::process::Child,
        log_file: tokio::fs::File,
        ctx: &JobContext,
        notable: fn(&str) -> bool,
    ) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(bool, String)>();
        let pipes = [
            (
                true,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
            ),
            (
                false,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
            ),
        ];
        for (is_stdout, pipe) in pipes {
            let Some(pipe) = pipe else { continue };
            let tx = line_tx.clone();
            tokio::spawn(read_lines(pipe, move |line| {
                tx.send((is_stdout, line)).is_ok()
            }));
        }
        drop(line_tx);
        // One task collects lines: log file, tails, and the batch for the events.
        let collector = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut file = tokio::io::BufWriter::new(log_file);
                while let Some((is_stdout, line)) = line_rx.recv().await {
                    let _ = file.write_all(line.as_bytes()).await;
                    let _ = file.write_all(b"\n").await;
                    let mut o = shared.lock().await;
                    if is_stdout {
                        push_tail(&mut o.stdout_tail, &line, STDOUT_TAIL_LINES);
                    }
                    push_tail(&mut o.tail, &line, ERROR_TAIL_LINES);
                    if o.notable.len() < NOTABLE_LINES && notable(&line) {
                        o.notable.push(line.clone());
                    }
                    o.pending.push(line);
                }
                let _ = file.flush().await;
            })
        };
        let flusher = {
            let shared = shared.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOG_FLUSH).await;
                    flush(&shared, &ctx).await;
                }
            })
        };
        Self {
            shared,
            collector,
            flusher,
        }
    }

    /// Waits for the pipes to close (call it after the child's group is gone), flushes the
    /// last lines to the log file and the events, and returns what was kept.
    pub(crate) async fn finish(self, ctx: &JobContext) -> Lines {
        let _ = self.collector.await;
        self.flusher.abort();
        flush(&self.shared, ctx).await;
        let mut o = self.shared.lock().await;
        Lines {
            stdout_tail: o.stdout_tail.drain(..).collect(),
            tail: o.tail.drain(..).collect(),
            notable: std::mem::take(&mut o.notable),
        }
    }
}

/// Sends the lines collected since the last flush as one `log` event.
async fn flush(shared: &Mutex<Shared>, ctx: &JobContext) {
    let lines = std::mem::take(&mut shared.lock().await.pending);
    if !lines.is_empty() {
        ctx.log(&lines.join("\n")).await;
    }
}

/// Reads `pipe` to its end, handing each line (without its ending) to `emit`; stops early
/// when `emit` returns false. `\n`, `\r\n` and a lone `\r` end a line; a `\r`-ended line
/// that is blank is dropped (a counter clearing itself).
pub(crate) async fn read_lines(pipe: impl AsyncRead + Unpin, mut emit: impl FnMut(String) -> bool) {
    let mut reader = BufReader::new(pipe);
    let mut line: Vec<u8> = Vec::new();
    let mut after_cr = false;
    let mut send = |line: &mut Vec<u8>, blank_ok: bool| -> bool {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        line.clear();
        if text.is_empty() && !blank_ok {
            return true;
        }
        emit(text)
    };
    loop {
        let buf = match reader.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => break,
        };
        let mut start = 0;
        let mut open = true;
        for (i, &c) in buf.iter().enumerate() {
            match c {
                b'\n' => {
                    line.extend_from_slice(&buf[start..i]);
                    start = i + 1;
                    // "\r\n": the line went out at the '\r' already.
                    if !(after_cr && line.is_empty()) {
                        open = send(&mut line, true);
                    }
                    after_cr = false;
                }
                b'\r' => {
                    line.extend_from_slice(&buf[start..i]);
                    start = i + 1;
                    open = send(&mut line, false);
                    after_cr = true;
                }
                _ => after_cr = false,
            }
            if !open {
                return;
            }
        }
        line.extend_from_slice(&buf[start..]);
        let n = buf.len();
        reader.consume(n);
        if line.len() >= MAX_LINE && !send(&mut line, false) {
            return;
        }
    }
    if !line.is_empty() {
        send(&mut line, false);
    }
}

/// Where a run's console is written: in place in a local store, where it can be downloaded
/// while it grows; otherwise (a bucket takes whole files) a temp file stored as the
/// artifact when the program is done, and deleted.
struct LogFile {
    path: PathBuf,
    /// True when `path` is a temp file to store and delete afterwards.
    aside: bool,
}

impl LogFile {
    /// Creates the log of job `id` (artifact `name`).
    async fn create(
        store: &Artifacts,
        id: JobId,
        name: &str,
    ) -> Result<(Self, tokio::fs::File), JobError> {
        let live = store
            .live_path(id, name)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let log = match live {
            Some(path) => Self { path, aside: false },
            None => Self {
                path: std::env::temp_dir().join(format!(
                    "sluice-{id}-{}-{name}",
                    uuid::Uuid::new_v4().simple()
                )),
                aside: true,
            },
        };
        let file = tokio::fs::File::create(&log.path)
            .await
            .map_err(|e| JobError::Retry(format!("cannot write {}: {e}", log.path.display())))?;
        Ok((log, file))
    }

    /// Stores a log written aside as artifact `name` of job `id` (best effort, as the live
    /// writes are: a store that fails is logged, the job's outcome stands) and deletes it.
    async fn finish(self, store: &Artifacts, id: JobId, name: &str) {
        if !self.aside {
            return;
        }
        if let Err(e) = store.put_file(id, name, &self.path).await {
            tracing::warn!(job = %id, artifact = name, error = %e, "cannot store the log");
        }
        self.discard().await;
    }

    /// Deletes a log written aside.
    async fn discard(self) {
        if self.aside {
            let _ = tokio::fs::remove_file(&self.path).await;
        }
    }
}

/// Runs `cmd` for `job` as the process-running kinds do: its console goes to the artifact
/// `log_name` and the job's events ([`Console`]); it runs in its own process group, with
/// piped output and no stdin; a stop (request, timeout, shutdown) kills the group at once,
/// and the group is killed in any case once the child is gone (no grandchild outlives it).
/// `label` names the program in errors. With a local store the log artifact grows as the
/// program writes; with a bucket it is stored when the program is done ([`LogFile`]), and
/// until then the lines are in the job's events.
///
/// # Errors
/// [`JobError::Retry`] when the log cannot be written or the program cannot be started or
/// waited for; [`JobError::Stopped`] when it was stopped.
pub(crate) async fn run(
    mut cmd: tokio::process::Command,
    label: &str,
    job: &JobInput,
    log_name: &str,
    ctx: &JobContext,
    notable: fn(&str) -> bool,
) -> Result<(std::process::ExitStatus, Lines), JobError> {
    let store = ctx.broker().artifacts();
    let (log, log_file) = LogFile::create(&store, job.id, log_name).await?;
    cmd.env("SLUICE_JOB_ID", job.id.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            log.discard().await;
            return Err(JobError::Retry(format!("cannot start {label}: {e}")));
        }
    };
    let pid = child.id();
    let console = Console::start(&mut child, log_file, ctx, notable);
    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        _ = ctx.stop.cancelled() => Err(JobError::Stopped),
    };
    crate::command::kill_group(pid);
    if ended.is_err() {
        let _ = child.wait().await;
    }
    let lines = console.finish(ctx).await;
    log.finish(&store, job.id, log_name).await;
    let status = ended?.map_err(|e| JobError::Retry(format!("waiting for {label}: {e}")))?;
    Ok((status, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, |l| {
            out.push(l);
            true
        })
        .await;
        out
    }

    #[tokio::test]
    async fn lines_end_at_newlines_and_lone_carriage_returns() {
        assert_eq!(
            lines_of(b"a\nb\r\n\nProcessing 1...   \rProcessing 2...\r   \rdone\nlast").await,
            [
                "a",
                "b",
                "",
                "Processing 1...",
                "Processing 2...",
                "done",
                "last"
            ]
        );
        assert_eq!(lines_of(b"").await, Vec::<String>::new());
    }
}
