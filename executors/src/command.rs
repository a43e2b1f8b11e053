//! The `command` executor kind: runs programs named by a config of actions (wumai's routes,
//! Jetstream's pipelines) without writing Rust.
//!
//! A job's params are a JSON object whose `action` names an `[actions.NAME]` table:
//!
//! ```toml
//! [actions.align]
//! argv = ["bwa", "mem", "-t", "{threads}", "{reference}", "{reads}"]  # never a shell
//! cwd = "/data/work"                 # optional (default: a fresh private directory)
//! env = { LANG = "C" }               # optional: variables set for the program
//! pass_env = ["BWA_HOME"]            # optional: the executor's variables it may inherit
//! network = true                     # optional: may use the network (in the sandbox)
//! writable = ["/data/out"]           # optional: more directories it may write (sandbox)
//! options = false                    # optional: may a param be a whole "-x" argument?
//! timeout = "2h"                     # optional: the action's own limit (TIMED_OUT)
//! params = "stdin"                   # stdin (default) | file ({params_file}) | none
//! files = true                       # optional: a fresh working directory with input/, output/
//! schema = { required = ["threads"], properties = { threads = { type = "integer", minimum = 1 } } }
//!                                    # optional: JSON Schema of the params (default: from argv)
//! ```
//!
//! The executor publishes one JSON Schema for its kind's params when it starts
//! ([`CommandConfig::schema`], `broker::schemas`), so the API refuses a job that names no
//! configured action or lacks a param an argv needs (400, naming the field). An action's
//! part is its `schema` (a TOML table, or a string holding JSON: a JSON Schema of the whole
//! params object, `action` included and always allowed), else every `{name}` its argv uses
//! (Sluice's own excepted) as a required param of any type.
//!
//! `{name}` in an argv element is replaced by the job's param `name` (strings as they are,
//! other values as JSON); `{job_id}`, `{attempt}`, `{params_file}`, `{input_dir}` and
//! `{output_dir}` are Sluice's own (a param of that name never fills them), and `{{` / `}}`
//! are literal braces. Each element stays one argument: a param can never add an argument or
//! reach a shell, and a param that makes a whole argument may not start with `-` (it would
//! be read as an option) unless the action says `options = true`. The program starts from a
//! cleared environment, in a fresh private directory, sandboxed where the host allows
//! (`crate::child`), in its own process group, killed as a group on stop or timeout. Exit 0:
//! stdout is the result, parsed as JSON when it is JSON, else kept as text. Non-zero exit:
//! the job fails with the exit status and the tail of stderr, and is retried while attempts
//! are left.
//!
//! With `files = true` (the Workflow Service's pipelines) each attempt runs in a fresh
//! directory (unless `cwd` is set) holding `input/`, with every artifact of the job (its
//! uploads, its inputs, a workflow member's parents' outputs; console logs excepted), and
//! `output/`, whose files become artifacts of the job when the program exits 0. Both are
//! `{input_dir}` / `{output_dir}` in templates and `SLUICE_INPUT_DIR` / `SLUICE_OUTPUT_DIR`
//! (and the service's `OPENFIDO_INPUT` / `OPENFIDO_OUTPUT`) in the environment. The
//! directory is removed afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::runtime::{Executor, JobContext, JobError, JobFuture, JobInput};
use crate::staging::Workdir;

/// Most stdout kept as the result.
const STDOUT_LIMIT: usize = 16 * 1024 * 1024;
/// Most stderr kept (its tail) as the error.
const STDERR_TAIL: usize = 4 * 1024;

/// How the params reach the program.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamsVia {
    /// As JSON on stdin.
    #[default]
    Stdin,
    /// As a JSON file whose path is `{params_file}` and `$SLUICE_PARAMS_FILE`.
    File,
    /// Only through argv templates.
    None,
}

/// One action of the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Program and arguments (templates).
    pub argv: Vec<String>,
    /// Working directory (default: the attempt's fresh private directory).
    pub cwd: Option<PathBuf>,
    /// Variables set for the program (its environment is otherwise cleared).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the executor's variables the program may inherit.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The program may use the network (it has none in the sandbox otherwise).
    #[serde(default)]
    pub network: bool,
    /// More directories the program may write in the sandbox.
    #[serde(default)]
    pub writable: Vec<PathBuf>,
    /// A param may make a whole argument starting with `-` (an option).
    #[serde(default)]
    pub options: bool,
    /// The action's own time limit (humantime).
    pub timeout: Option<String>,
    /// How params are passed.
    #[serde(default)]
    pub params: ParamsVia,
    /// A fresh working directory with the job's artifacts in `input/` and `output/` kept.
    #[serde(default)]
    pub files: bool,
    /// The JSON Schema of the params of a job of this action (a table, or a string holding
    /// JSON; default: the argv's placeholders, required).
    pub schema: Option<Value>,
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Actions by name.
    pub actions: BTreeMap<String, Action>,
}

impl CommandConfig {
    /// Reads and checks a config file.
    ///
    /// # Errors
    /// A message naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks config text.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut c: CommandConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, a) in &mut c.actions {
            if let Some(Value::String(json)) = &a.schema {
                let parsed = serde_json::from_str(json)
                    .map_err(|e| format!("action {name}: schema is not JSON: {e}"))?;
                a.schema = Some(parsed);
            }
            if let Some(schema) = &a.schema {
                broker::schemas::check_schema(schema).map_err(|e| format!("action {name}: {e}"))?;
            }
        }
        for (name, a) in &c.actions {
            if a.argv.is_empty() || a.argv[0].is_empty() {
                return Err(format!("action {name}: argv must name a program"));
            }
            let dirs = a
                .argv
                .iter()
                .any(|t| t.contains("{input_dir}") || t.contains("{output_dir}"));
            if dirs && !a.files {
                return Err(format!(
                    "action {name}: {{input_dir}} and {{output_dir}} need files = true"
                ));
            }
            if let Some(t) = &a.timeout {
                humantime::parse_duration(t)
                    .map_err(|e| format!("action {name}: timeout {t:?}: {e}"))?;
            }
        }
        // Compiled only with a schema of the config's own (a derived one always compiles):
        // the first compile costs an executor's start tens of milliseconds in a debug build.
        let schema = c.schema();
        let size = schema.to_string().len();
        if c.actions.values().any(|a| a.schema.is_some()) {
            broker::schemas::check_schema(&schema)
        } else if size > broker::schemas::MAX_SCHEMA_BYTES {
            Err(broker::Error::Invalid(format!(
                "{size} bytes; at most {} (64 KiB)",
                broker::schemas::MAX_SCHEMA_BYTES
            )))
        } else {
            Ok(())
        }
        .map_err(|e| format!("the params schema of these actions: {e}"))?;
        Ok(c)
    }

    /// The JSON Schema of the params of a job of action `name` (None for no such action):
    /// its `schema`, with `action` allowed, or else every param its argv uses, required.
    pub fn action_schema(&self, name: &str) -> Option<Value> {
        let action = self.actions.get(name)?;
        if let Some(schema) = &action.schema {
            let mut schema = schema.clone();
            if let Value::Object(s) = &mut schema {
                if let Value::Object(props) = s.entry("properties").or_insert_with(|| json!({})) {
                    props.entry("action").or_insert_with(|| json!({}));
                }
            }
            return Some(schema);
        }
        let names = action
            .argv
            .iter()
            .flat_map(|t| placeholders(t))
            .filter(|n| !RESERVED.contains(&n.as_str()))
            .fold(Vec::<String>::new(), |mut seen, n| {
                if !seen.contains(&n) {
                    seen.push(n);
                }
                seen
            });
        let properties: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    json!({"description": format!("fills {{{n}}} in argv")}),
                )
            })
            .collect();
        Some(json!({"required": names, "properties": properties}))
    }

    /// The JSON Schema of this config's params, which the executor publishes for its kind:
    /// an object whose `action` is one of the configured actions, and then what that
    /// action's [`CommandConfig::action_schema`] says.
    pub fn schema(&self) -> Value {
        let names: Vec<&String> = self.actions.keys().collect();
        let each: Vec<Value> = self
            .actions
            .keys()
            .filter_map(|name| {
                let then = self.action_schema(name)?;
                Some(json!({
                    "if": {"required": ["action"], "properties": {"action": {"const": name}}},
                    "then": then,
                }))
            })
            .collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "command params",
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": {"enum": names, "description": "The action to run: one of the executor's configured actions."},
            },
            "allOf": each,
        })
    }
}

/// The names of the `{name}` placeholders of one argv template, in order (Sluice's own
/// included; `{{` and `}}` are literal braces); a malformed rest is ignored (running the
/// action refuses it).
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            break;
        }
        let Some(end) = tail.find('}') else { break };
        names.push(tail[1..end].to_string());
        rest = &tail[end + 1..];
    }
    names
}

/// Placeholders Sluice fills itself; a client's param never does.
pub const RESERVED: [&str; 5] = [
    "job_id",
    "attempt",
    "params_file",
    "input_dir",
    "output_dir",
];

/// Fills `{name}` placeholders of one argv element: Sluice's own (`known`) or the job's
/// params. An element that is one param alone may not start with `-` unless `options`.
///
/// # Errors
/// A fatal job error naming a missing param, a reserved name this action does not have, an
/// option-looking param or an unclosed brace.
pub fn render(
    template: &str,
    params: &serde_json::Map<String, Value>,
    known: &BTreeMap<&str, String>,
    options: bool,
) -> Result<String, JobError> {
    let whole = template
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .filter(|n| !n.contains(['{', '}']) && !RESERVED.contains(n));
    let filled = fill(template, params, known)?;
    if let Some(name) = whole {
        if filled.starts_with('-') && !options {
            return Err(JobError::Fatal(format!(
                "param {name:?} starts with '-' and would be read as an option; the action does not take options from params"
            )));
        }
    }
    Ok(filled)
}

fn fill(
    template: &str,
    params: &serde_json::Map<String, Value>,
    known: &BTreeMap<&str, String>,
) -> Result<String, JobError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(JobError::Fatal(format!(
                "argv {template:?}: lone '}}' (write '}}}}')"
            )));
        }
        let end = tail
            .find('}')
            .ok_or_else(|| JobError::Fatal(format!("argv {template:?}: unclosed '{{'")))?;
        let name = &tail[1..end];
        let value = match (known.get(name), params.get(name)) {
            (Some(v), _) => v.clone(),
            (None, _) if RESERVED.contains(&name) => {
                return Err(JobError::Fatal(format!(
                    "{{{name}}} is not set for this action (argv {template:?})"
                )))
            }
            (None, Some(Value::String(s))) => s.clone(),
            (None, Some(v)) => v.to_string(),
            (None, None) => {
                return Err(JobError::Fatal(format!(
                    "missing parameter {name:?} (used by argv {template:?})"
                )))
            }
        };
        out.push_str(&value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `command` executor.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    config: Arc<CommandConfig>,
}

impl CommandExecutor {
    /// An executor for these actions.
    pub fn new(config: CommandConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl CommandExecutor {
    /// Publishes this config's params schema for `kind` ([`CommandConfig::schema`]) and
    /// registers its action names for it (see `Broker::register_actions`).
    ///
    /// # Errors
    /// Redis errors (a schema Redis refuses for good, such as an ACL older than `schemas`,
    /// is only logged); [`broker::Error::Invalid`] for a bad kind or schema.
    pub async fn register(&self, b: &broker::Broker, kind: &str) -> Result<(), broker::Error> {
        // The schema first: once an action routes here, its jobs are checked.
        match b.publish_schema(kind, &self.config.schema()).await {
            Ok(()) => {}
            Err(e @ broker::Error::Invalid(_)) => return Err(e),
            Err(e) if e.is_transient() => return Err(e),
            // An ACL from before `schemas` (NOPERM): run unchecked rather than not at all.
            Err(e) => tracing::warn!(kind, error = %e, "params schema not published"),
        }
        let names: Vec<String> = self.config.actions.keys().cloned().collect();
        b.register_actions(kind, &names).await
    }
}

impl Executor for CommandExecutor {
    /// Built from its actions ([`CommandConfig::schema`]).
    fn params_schema(&self) -> Option<Value> {
        Some(self.config.schema())
    }

    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture {
        let config = self.config.clone();
        Box::pin(async move {
            let (name, action) = resolve(&config, &job)?;
            // Every attempt gets a fresh private directory: its working directory (unless the
            // action names one), where a params file goes, and with `files` its input/output.
            let dir = Workdir::create("command", job.id, job.attempt, action.files).await?;
            let store = ctx.broker().artifacts().clone();
            let id = job.id;
            let ran = async {
                if action.files {
                    crate::staging::artifacts_into(&store, id, &dir.input).await?;
                }
                let result = run_action(name, action, job, ctx, &dir).await?;
                if action.files {
                    crate::staging::keep_outputs(&store, id, &dir.output, &[], "").await?;
                }
                Ok(result)
            }
            .await;
            dir.remove().await;
            ran
        })
    }
}

/// The action a job names.
fn resolve<'c>(
    config: &'c CommandConfig,
    job: &JobInput,
) -> Result<(&'c str, &'c Action), JobError> {
    let Value::Object(params) = &job.params else {
        return Err(JobError::Fatal(
            "params must be a JSON object with an \"action\"".into(),
        ));
    };
    let name = params
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            JobError::Fatal("params need \"action\": the name of a configured action".into())
        })?;
    config
        .actions
        .get_key_value(name)
        .map(|(n, a)| (n.as_str(), a))
        .ok_or_else(|| {
            let known: Vec<&str> = config.actions.keys().map(String::as_str).collect();
            JobError::Fatal(format!(
                "unknown action {name:?}; configured: {}",
                known.join(", ")
            ))
        })
}

async fn read_all(mut r: impl AsyncRead + Unpin, limit: usize, keep_tail: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > limit {
                    if keep_tail {
                        buf.drain(..buf.len() - limit);
                    } else {
                        buf.truncate(limit);
                    }
                }
            }
        }
    }
}

/// SIGKILLs the process group led by `pid` (a child started with `process_group(0)`).
pub(crate) fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn run_action(
    name: &str,
    action: &Action,
    job: JobInput,
    ctx: JobContext,
    dir: &Workdir,
) -> Result<Value, JobError> {
    let Value::Object(params) = &job.params else {
        return Err(JobError::Fatal("params must be a JSON object".into()));
    };
    let params_json =
        serde_json::to_vec(&job.params).map_err(|e| JobError::Fatal(e.to_string()))?;
    let params_file = match action.params {
        ParamsVia::File => Some(write_private(&dir.root.join("params.json"), &params_json).await?),
        _ => None,
    };
    let mut known = BTreeMap::new();
    known.insert("job_id", job.id.to_string());
    known.insert("attempt", job.attempt.to_string());
    if let Some(p) = &params_file {
        known.insert("params_file", p.display().to_string());
    }
    if action.files {
        known.insert("input_dir", dir.input.display().to_string());
        known.insert("output_dir", dir.output.display().to_string());
    }
    let argv = action
        .argv
        .iter()
        .map(|t| render(t, params, &known, action.options))
        .collect::<Result<Vec<_>, _>>()?;

    let mut spec = crate::child::Spec {
        program: argv[0].clone().into(),
        args: argv[1..].iter().map(Into::into).collect(),
        cwd: Some(action.cwd.clone().unwrap_or_else(|| dir.root.clone())),
        pass: action.pass_env.clone(),
        network: action.network,
        writable: std::iter::once(dir.root.clone())
            .chain(action.writable.iter().cloned())
            .collect(),
        ..Default::default()
    };
    let mut set = |k: &str, v: &std::ffi::OsStr| spec.env.push((k.into(), v.into()));
    for (k, v) in &action.env {
        set(k, v.as_ref());
    }
    set("SLUICE_JOB_ID", job.id.to_string().as_ref());
    set("SLUICE_ATTEMPT", job.attempt.to_string().as_ref());
    if let Some(p) = &params_file {
        set("SLUICE_PARAMS_FILE", p.as_os_str());
    }
    if action.files {
        set("SLUICE_INPUT_DIR", dir.input.as_os_str());
        set("SLUICE_OUTPUT_DIR", dir.output.as_os_str());
        set("OPENFIDO_INPUT", dir.input.as_os_str());
        set("OPENFIDO_OUTPUT", dir.output.as_os_str());
    }
    let mut cmd = ctx.jail().command(&spec);
    cmd.stdin(if action.params == ParamsVia::Stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| JobError::Retry(format!("cannot start {:?}: {e}", argv[0])))?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read stdin must not block the job: write in the background.
        tokio::spawn(async move {
            let _ = stdin.write_all(&params_json).await;
        });
    }
    let stdout = child
        .stdout
        .take()
        .map(|o| tokio::spawn(read_all(o, STDOUT_LIMIT, false)));
    let stderr = child
        .stderr
        .take()
        .map(|e| tokio::spawn(read_all(e, STDERR_TAIL, true)));
    let limit = action
        .timeout
        .as_deref()
        .and_then(|t| humantime::parse_duration(t).ok());

    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        _ = ctx.stop.cancelled() => Err(JobError::Stopped),
        _ = async { match limit { Some(d) => tokio::time::sleep(d).await, None => futures::future::pending().await } } => {
            Err(JobError::TimedOut(format!("action {name} timed out after {}", humantime::format_duration(limit.unwrap_or(Duration::ZERO)))))
        }
    };
    if ended.is_err() {
        kill_group(pid);
        let _ = child.wait().await;
    }
    // Grandchildren may hold the pipes open; the group is gone once the child is.
    kill_group(pid);
    let status = ended?.map_err(|e| JobError::Retry(format!("waiting for {:?}: {e}", argv[0])))?;
    let out = match stdout {
        Some(t) => t.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let err = match stderr {
        Some(t) => t.await.unwrap_or_default(),
        None => Vec::new(),
    };
    if !status.success() {
        let tail = String::from_utf8_lossy(&err).trim().to_string();
        return Err(JobError::Retry(format!(
            "{:?} exited with {status}{}{tail}",
            argv[0],
            if tail.is_empty() { "" } else { ": " }
        )));
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Writes `bytes` to a new file at `path` that only this user may read (never through an
/// existing file or a planted symlink: `create_new`).
async fn write_private(path: &Path, bytes: &[u8]) -> Result<PathBuf, JobError> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| JobError::Retry(format!("cannot write params file: {e}")))?;
    f.write_all(bytes)
        .await
        .map_err(|e| JobError::Retry(format!("cannot write params file: {e}")))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn templates_fill_params_and_never_split_arguments() {
        let p = params(json!({"name": "a b; rm -rf /", "n": 3, "list": [1, 2]}));
        let known = BTreeMap::from([("job_id", "7".to_string())]);
        assert_eq!(
            render("{name}", &p, &known, false).ok().as_deref(),
            Some("a b; rm -rf /")
        );
        assert_eq!(
            render("--n={n}", &p, &known, false).ok().as_deref(),
            Some("--n=3")
        );
        assert_eq!(
            render("{list}", &p, &known, false).ok().as_deref(),
            Some("[1,2]")
        );
        assert_eq!(
            render("job-{job_id}", &p, &known, false).ok().as_deref(),
            Some("job-7")
        );
        assert_eq!(
            render("{{literal}}", &p, &known, false).ok().as_deref(),
            Some("{literal}")
        );
        assert!(matches!(
            render("{missing}", &p, &known, false),
            Err(JobError::Fatal(_))
        ));
        assert!(matches!(
            render("{open", &p, &known, false),
            Err(JobError::Fatal(_))
        ));
        // See: issue 15. Options injection and reserved names.
        let p = params(json!({"file": "--version", "params_file": "/etc/shadow", "n": "-5"}));
        assert!(matches!(
            render("{file}", &p, &known, false),
            Err(JobError::Fatal(_))
        ));
        assert_eq!(
            render("{file}", &p, &known, true).ok().as_deref(),
            Some("--version")
        );
        assert_eq!(
            render("--x={file}", &p, &known, false).ok().as_deref(),
            Some("--x=--version")
        );
        assert!(matches!(
            render("{params_file}", &p, &known, false),
            Err(JobError::Fatal(_))
        ));
        assert!(matches!(
            render("{n}", &p, &known, false),
            Err(JobError::Fatal(_))
        ));
    }

    #[test]
    fn config_is_checked() {
        assert!(
            CommandConfig::parse("[actions.a]\nargv = [\"cp\", \"{input_dir}/x\", \".\"]")
                .is_err_and(|e| e.contains("files = true"))
        );
        assert!(CommandConfig::parse(
            "[actions.a]\nargv = [\"cp\", \"{input_dir}/x\", \"{output_dir}\"]\nfiles = true"
        )
        .is_ok());
        assert!(CommandConfig::parse("[actions.a]\nargv = [\"true\"]\n").is_ok());
        assert!(CommandConfig::parse("[actions.a]\nargv = []\n").is_err());
        assert!(CommandConfig::parse("[actions.a]\nargv = [\"x\"]\ntimeout = \"soon\"\n").is_err());
        assert!(CommandConfig::parse("[actions.a]\nargv = [\"x\"]\nshell = true\n").is_err());
        assert!(CommandConfig::parse(
            "[actions.a]\nargv = [\"x\"]\nschema = { type = \"nope\" }\n"
        )
        .is_err_and(|e| e.contains("action a") && e.contains("schema")));
        assert!(
            CommandConfig::parse("[actions.a]\nargv = [\"x\"]\nschema = '{\"type\": '\n")
                .is_err_and(|e| e.contains("not JSON"))
        );
    }

    const SCHEMA_ACTIONS: &str = r#"
[actions.align]
argv = ["bwa", "-t", "{threads}", "{reference}", "--out={{x}}", "{job_id}", "{reference}"]

[actions.plain]
argv = ["true"]

[actions.typed]
argv = ["echo", "{n}"]
schema = { required = ["n"], additionalProperties = false, properties = { n = { type = "integer", minimum = 1 } } }

[actions.json]
argv = ["echo"]
schema = '{"required": ["s"], "properties": {"s": {"type": "string"}}}'
"#;

    #[test]
    fn action_schemas_come_from_the_config_or_the_argv() {
        let c = CommandConfig::parse(SCHEMA_ACTIONS).expect("config");
        assert_eq!(
            c.action_schema("align").map(|s| s["required"].clone()),
            Some(json!(["threads", "reference"])),
            "argv placeholders, once each, Sluice's own and literal braces left out"
        );
        assert_eq!(
            c.action_schema("plain"),
            Some(json!({"required": [], "properties": {}}))
        );
        let typed = c.action_schema("typed").expect("typed");
        assert_eq!(
            typed["properties"]["action"],
            json!({}),
            "action always allowed"
        );
        assert_eq!(typed["properties"]["n"]["minimum"], json!(1));
        assert_eq!(
            c.action_schema("json").map(|s| s["required"].clone()),
            Some(json!(["s"]))
        );
        assert_eq!(c.action_schema("nope"), None);
    }

    #[test]
    fn the_kind_schema_checks_the_action_then_its_params() {
        let c = CommandConfig::parse(SCHEMA_ACTIONS).expect("config");
        let schema = c.schema();
        let errors = |p: Value| broker::schemas::field_errors(&schema, &p);
        assert!(errors(json!({"action": "align", "threads": 4, "reference": "r.fa"})).is_empty());
        assert!(errors(json!({"action": "plain", "anything": [1]})).is_empty());
        assert!(errors(json!({"action": "typed", "n": 2})).is_empty());
        assert_eq!(
            errors(json!({"action": "align", "threads": 4})),
            vec![("params.reference".to_string(), "is required".to_string())]
        );
        assert_eq!(
            errors(json!({})),
            vec![("params.action".to_string(), "is required".to_string())],
            "no noise from the actions' parts"
        );
        let e = errors(json!({"action": "nope"}));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "params.action");
        assert!(e[0].1.contains("align"), "{e:?}");
        let e = errors(json!({"action": "typed", "n": 0, "x": 1}));
        assert!(e.iter().any(|(p, _)| p == "params.n"), "{e:?}");
        assert!(
            e.contains(&("params.x".into(), "is not allowed".into())),
            "{e:?}"
        );
        assert_eq!(errors(json!({"action": "json", "s": 1}))[0].0, "params.s");
        assert_eq!(errors(json!([1]))[0].0, "params");
    }
}
