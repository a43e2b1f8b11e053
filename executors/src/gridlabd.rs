//! The `gridlabd` executor kind: runs a GridLAB-D model and keeps every file it writes.
//!
//! Params (JSON):
//! ```json
//! {"model": "feeder.glm", "inputs": ["weather.csv"], "options": {"AREA": 1500}}
//! {"model_text": "clock { ... } module residential; object house { ... }"}
//! ```
//! Exactly one of `model` (the name of an artifact of this job, uploaded with
//! `PUT /jobs/{id}/artifacts/{name}`) and `model_text` (the model itself, run as
//! `model.glm`). `inputs`: more artifacts of this job, copied next to the model. `options`:
//! global name -> value, passed as GridLAB-D's `-D name=value` (names `[A-Za-z_][\w.:]*`,
//! values a string, number or boolean without control characters). The interpreter that
//! has the `gridlabd` package is the executor's choice (`--python`, SLUICE_GRIDLABD_PYTHON,
//! else `python3`), never the job's: a client must not pick the program an executor runs.
//!
//! GridLAB-D here is the PyPI package `gridlabd` (6.0.0): the engine behind a Python API,
//! with no `gridlabd` command. The executor runs [`LAUNCHER`] as
//! `python -c <launcher> <model> [-D name=value]...` (an argv list, never a shell string)
//! in a fresh working directory, in its own process group; stop, timeout and shutdown kill
//! the group at once. The launcher uses the in-process engine (`gridlabd.DirectGridLabD`):
//! the package's default `GridLabD` class runs the engine in a worker process in a new
//! session, which a kill of the launcher's group would miss, and which swallows the
//! engine's console.
//!
//! Output: every console line goes into the job's events (batched, see `output.rs`) and
//! the whole console into the artifact `gridlabd.attempt-<n>.log`. Afterwards every file
//! the run wrote in the working directory (recorders' CSVs, dumps, GridLAB-D's
//! `_checkpoint.json`) becomes an artifact of the job, under its own name (files in
//! subdirectories as `dir_file`). Exit 0 with no `ERROR`/`FATAL` line completes the job with
//! `{"exit_code": 0, "artifacts": [...], "log": ...}`; otherwise it fails for good with
//! the first `ERROR`/`FATAL` line (and the first `file(line): ...` model error, which
//! GridLAB-D prints without a prefix).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::runtime::{Executor, JobContext, JobError, JobFuture, JobInput};
use crate::staging::Workdir;

/// The launcher the executor runs with `python -c`: line-buffers C stdout (GridLAB-D
/// writes with stdio; a pipe would hold its lines back until exit), loads the model with
/// the arguments it was given, runs it, and finalizes it (recorders write nothing
/// otherwise). `exit_gld` ends the process with GridLAB-D's own exit code.
pub const LAUNCHER: &str = r#"
import ctypes, sys
try:
    _libc = ctypes.CDLL(None)
    _libc.setvbuf(ctypes.c_void_p.in_dll(_libc, "stdout"), None, 1, 0)
except Exception as e:
    print("sluice-gridlabd: cannot line-buffer stdout:", e, file=sys.stderr)
sys.stdout.reconfigure(line_buffering=True)
import gridlabd
print("sluice-gridlabd: gridlabd", gridlabd.__version__, "model", sys.argv[1], flush=True)
g = gridlabd.DirectGridLabD()
for step, call in (("load", lambda: g.load_glm(sys.argv[1:])),
                   ("run", lambda: g.run(None, None)),
                   ("finalize", lambda: g.exit_gld(""))):
    code = call()
    value = int(getattr(code, "value", code))
    if value != 0:
        print(f"ERROR    [sluice-gridlabd] : {step} returned {code}", file=sys.stderr, flush=True)
        sys.exit(3)
"#;

/// A gridlabd job's params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridlabdJob {
    /// The model: an artifact of this job.
    pub model: Option<String>,
    /// The model's text, run as `model.glm`.
    pub model_text: Option<String>,
    /// Artifacts of this job copied into the working directory.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Globals, as `-D name=value`.
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

/// The name the model gets in the working directory when it comes as `model_text`.
pub const INLINE_MODEL: &str = "model.glm";

/// Checks the params; returns the model's file name and the arguments after it.
///
/// # Errors
/// [`JobError::Fatal`] saying what is wrong.
pub fn plan(job: &GridlabdJob) -> Result<(String, Vec<String>), JobError> {
    let bad = |why: String| Err(JobError::Fatal(format!("gridlabd params: {why}")));
    let model = match (&job.model, &job.model_text) {
        (Some(name), None) => {
            if let Err(e) = broker::artifacts::validate_name(name) {
                return bad(format!("model: {e}"));
            }
            name.clone()
        }
        (None, Some(text)) if !text.trim().is_empty() => INLINE_MODEL.to_string(),
        (None, Some(_)) => return bad("model_text is empty".into()),
        _ => return bad("give exactly one of model (an artifact name) and model_text".into()),
    };
    for name in &job.inputs {
        if let Err(e) = broker::artifacts::validate_name(name) {
            return bad(format!("inputs: {e}"));
        }
        if *name == model {
            return bad(format!("inputs: {name:?} is the model"));
        }
    }
    let mut args = Vec::new();
    for (name, value) in &job.options {
        let mut chars = name.chars();
        let name_ok = name.len() <= 128
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'));
        if !name_ok {
            return bad(format!(
                "options: {name:?} is not a global name ([A-Za-z_][A-Za-z0-9_.:]*, at most 128)"
            ));
        }
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return bad(format!("options.{name}: {other} is not a string or number")),
        };
        if value.chars().any(char::is_control) {
            return bad(format!("options.{name}: control characters"));
        }
        args.push("-D".to_string());
        args.push(format!("{name}={value}"));
    }
    Ok((model, args))
}

/// Is `line` one of GridLAB-D's error lines (`ERROR    [...] : ...`, `FATAL ...`)?
pub fn is_error_line(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("ERROR ") || l.starts_with("FATAL ") || l.starts_with("ERROR[")
}

/// Is `line` a model error GridLAB-D prints without a prefix (`model.glm(3): ...`)?
pub fn is_model_error_line(line: &str) -> bool {
    let Some((file, rest)) = line.split_once("): ") else {
        return false;
    };
    let Some((file, number)) = file.rsplit_once('(') else {
        return false;
    };
    !file.is_empty()
        && !file.contains(' ')
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
        && !rest.is_empty()
}

/// The readable reason of a failed run, from the lines the console kept.
pub fn failure(notable: &[String]) -> Option<String> {
    let error = notable.iter().find(|l| is_error_line(l)).map(|l| l.trim());
    let model = notable
        .iter()
        .find(|l| is_model_error_line(l))
        .map(|l| l.trim());
    match (error, model) {
        (Some(e), Some(m)) => Some(format!("{e} ({m})")),
        (Some(e), None) => Some(e.to_string()),
        (None, Some(m)) => Some(m.to_string()),
        (None, None) => None,
    }
}

/// The `gridlabd` executor.
#[derive(Debug, Clone)]
pub struct GridlabdExecutor {
    python: String,
}

impl GridlabdExecutor {
    /// Runs the launcher with `python` unless a job names its own.
    pub fn new(python: String) -> Self {
        Self { python }
    }
}

impl Executor for GridlabdExecutor {
    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture {
        let python = self.python.clone();
        Box::pin(async move {
            let dir = Workdir::create("gridlabd", job.id, job.attempt, false).await?;
            let r = run_gridlabd(python, &dir.root, job, ctx).await;
            dir.remove().await;
            r
        })
    }
}

async fn run_gridlabd(
    python: String,
    workdir: &Path,
    job: JobInput,
    ctx: JobContext,
) -> Result<Value, JobError> {
    let spec: GridlabdJob = serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::Fatal(format!("gridlabd params: {e}")))?;
    let (model, options) = plan(&spec)?;
    let store = ctx.broker().artifacts();
    // The files the executor puts there; everything else afterwards is the run's output.
    let mut placed = vec![model.clone()];
    match &spec.model_text {
        Some(text) => tokio::fs::write(workdir.join(&model), text)
            .await
            .map_err(|e| JobError::Retry(format!("cannot write the model: {e}")))?,
        None => crate::staging::copy_in(&store, job.id, &model, workdir).await?,
    }
    for name in &spec.inputs {
        crate::staging::copy_in(&store, job.id, name, workdir).await?;
        placed.push(name.clone());
    }

    let log_name = format!("gridlabd.attempt-{}.log", job.attempt);
    tracing::info!(job = %job.id, %python, %model, ?options, dir = %workdir.display(), "gridlabd");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg("-c")
        .arg(LAUNCHER)
        .arg(&model)
        .args(&options)
        .current_dir(workdir)
        .env("PYTHONUNBUFFERED", "1");
    let (status, lines) = crate::output::run(cmd, &python, &job, &log_name, &ctx, |l| {
        is_error_line(l) || is_model_error_line(l)
    })
    .await?;

    let artifacts =
        crate::staging::keep_outputs(&store, job.id, workdir, &placed, &log_name).await?;
    let why = failure(&lines.notable);
    match (status.code(), why) {
        (Some(0), None) => Ok(json!({
            "exit_code": 0,
            "model": model,
            "artifacts": artifacts,
            "log": log_name,
        })),
        (Some(code), why) => Err(JobError::Fatal(format!(
            "gridlabd exited with code {code}: {} (log: {log_name})",
            why.unwrap_or_else(|| "no ERROR line in its output".into())
        ))),
        (None, why) => Err(JobError::Retry(format!(
            "gridlabd was killed by a signal{} (log: {log_name})",
            why.map(|w| format!(" after: {w}")).unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(v: Value) -> GridlabdJob {
        serde_json::from_value(v).expect("valid gridlabd params")
    }

    #[test]
    fn plan_names_the_model_and_passes_options_as_defines() {
        let (model, args) = plan(&job(json!({
            "model": "feeder.glm", "inputs": ["w.csv"], "options": {"AREA": 1500, "b.c": "x y"}
        })))
        .expect("valid");
        assert_eq!(model, "feeder.glm");
        assert_eq!(args, ["-D", "AREA=1500", "-D", "b.c=x y"]);
        let (model, args) = plan(&job(json!({"model_text": "clock {}"}))).expect("valid");
        assert_eq!((model.as_str(), args.len()), (INLINE_MODEL, 0));
    }

    #[test]
    fn plan_refuses_bad_params() {
        for bad in [
            json!({}),
            json!({"model": "a.glm", "model_text": "x"}),
            json!({"model_text": "  "}),
            json!({"model": "../etc/passwd"}),
            json!({"model": "a.glm", "inputs": ["/abs"]}),
            json!({"model": "a.glm", "inputs": ["a.glm"]}),
            json!({"model": "a.glm", "options": {"-x": 1}}),
            json!({"model": "a.glm", "options": {"a b": 1}}),
            json!({"model": "a.glm", "options": {"a": {"x": 1}}}),
            json!({"model": "a.glm", "options": {"a": "x\ny"}}),
        ] {
            assert!(
                matches!(plan(&job(bad.clone())), Err(JobError::Fatal(_))),
                "{bad}"
            );
        }
        assert!(
            serde_json::from_value::<GridlabdJob>(json!({"model": "a", "shell": "x"})).is_err()
        );
    }

    #[test]
    fn finds_gridlabds_error_lines() {
        let lines: Vec<String> = [
            "bad.glm(3): property no_such_property is not defined in class house",
            "bad.glm(3): load failed at or near 'object house...'",
            "ERROR    [INIT] : unable to load 'bad.glm': No such file or directory",
            "FATAL    [INIT] : shutdown after command line rejected",
        ]
        .map(String::from)
        .into_iter()
        .filter(|l| is_error_line(l) || is_model_error_line(l))
        .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            failure(&lines).as_deref(),
            Some(
                "ERROR    [INIT] : unable to load 'bad.glm': No such file or directory \
                 (bad.glm(3): property no_such_property is not defined in class house)"
            )
        );
        assert!(!is_error_line("WARNING  [INIT] : no climate data"));
        assert!(!is_model_error_line(
            "Processing 2020-01-01 22:12:07 PST..."
        ));
        assert_eq!(failure(&[]), None);
    }
}
