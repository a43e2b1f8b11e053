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
//! [`params_schema`] is the schema `sluice-gridlabd` publishes for these params.
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

/// The JSON Schema of a `gridlabd` job's params ([`GridlabdJob`], checked as [`plan`]
/// does): what `sluice-gridlabd` publishes.
pub fn params_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gridlabd params",
        "description": "A GridLAB-D run: exactly one of model and model_text.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "model": {"type": "string", "minLength": 1,
                "description": "The model: the name of an artifact of this job (not with model_text)."},
            "model_text": {"type": "string", "pattern": "\\S",
                "description": "The model itself, run as model.glm (not with model)."},
            "inputs": {"type": "array", "items": {"type": "string", "minLength": 1},
                "description": "More artifacts of this job, copied next to the model."},
            "options": {
                "type": "object",
                "description": "Globals, passed as -D name=value.",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_.:]{0,127}$"},
                "additionalProperties": {
                    "type": ["string", "number", "boolean"],
                    "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
                },
            },
        },
        // One of model and model_text: without model, model_text is required; with it,
        // model_text is not allowed.
        "if": {"not": {"required": ["model"]}},
        "then": {"required": ["model_text"]},
        "dependentSchemas": {"model": {"properties": {"model_text": false}}},
    })
}

/// The executor's variables the engine may inherit (its environment is otherwise cleared).
const PASS_ENV: [&str; 5] = [
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "GLPATH",
    "GLD_ETC",
];

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

/// GLM macros that run a command, set the engine's environment, download or read outside
/// the working directory (GridLAB-D 6.0's loader): refused unless the executor opts in.
const UNSAFE_MACROS: [&str; 9] = [
    "system", "start", "exec", "wget", "setenv", "option", "python", "on_exit", "insert",
];
/// GLM statements that compile or load code (`extern "C"` blocks are compiled with the host
/// compiler, `link` loads a shared object, `intrinsic` is inline C++ in a class) or run a
/// command (`script`, `gui`, `instance`).
const UNSAFE_STATEMENTS: [&str; 6] = ["extern", "link", "script", "gui", "instance", "intrinsic"];

/// The first line of `text` (a model or a file it includes) that would make GridLAB-D run
/// code the job chose, with its number: a macro of [`UNSAFE_MACROS`], an `#include` of a URL
/// (`[...]`), an absolute path or `..`, or a statement of [`UNSAFE_STATEMENTS`].
pub fn unsafe_glm(text: &str) -> Option<(usize, String)> {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        let word = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let bad = if let Some(rest) = t.strip_prefix('#') {
            let name = word(rest);
            let arg = rest.trim_start()[name.len()..].trim();
            UNSAFE_MACROS.contains(&name.as_str())
                || (name == "include"
                    && (arg.contains('[')
                        || arg.trim_matches(['"', '<', '>']).starts_with('/')
                        || arg.contains("..")))
        } else {
            UNSAFE_STATEMENTS.contains(&word(t).as_str())
                || t.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| w == "intrinsic")
        };
        if bad {
            return Some((i + 1, t.chars().take(80).collect()));
        }
    }
    None
}

/// The `gridlabd` executor.
#[derive(Debug, Clone)]
pub struct GridlabdExecutor {
    python: String,
    unsafe_glm: bool,
}

impl GridlabdExecutor {
    /// Runs the launcher with `python`; models that run commands or code
    /// ([`unsafe_glm`]) are refused unless `allow_unsafe`.
    pub fn new(python: String, allow_unsafe: bool) -> Self {
        Self {
            python,
            unsafe_glm: allow_unsafe,
        }
    }
}

impl Executor for GridlabdExecutor {
    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture {
        let python = self.python.clone();
        let allow_unsafe = self.unsafe_glm;
        Box::pin(async move {
            let dir = Workdir::create("gridlabd", job.id, job.attempt, false).await?;
            let r = run_gridlabd(python, allow_unsafe, &dir.root, job, ctx).await;
            dir.remove().await;
            r
        })
    }

    fn params_schema(&self) -> Option<Value> {
        Some(params_schema())
    }
}

/// Refuses a placed file that could make the engine run the job's code: a shared object
/// (GridLAB-D loads `module`s and `link` targets from the working directory first), or a
/// text with an unsafe directive.
async fn check_placed(dir: &Path, name: &str) -> Result<(), JobError> {
    if name.ends_with(".so") || name.contains(".so.") {
        return Err(JobError::Fatal(format!(
            "{name}: shared objects are refused (GridLAB-D would load them as modules)"
        )));
    }
    let bytes = tokio::fs::read(dir.join(name))
        .await
        .map_err(|e| JobError::Retry(format!("cannot read {name}: {e}")))?;
    if let Some((line, text)) = unsafe_glm(&String::from_utf8_lossy(&bytes)) {
        return Err(JobError::Fatal(format!(
            "{name}({line}): {text:?} runs a command or code, which this executor refuses (sluice-gridlabd --allow-unsafe-glm opts in)"
        )));
    }
    Ok(())
}

async fn run_gridlabd(
    python: String,
    allow_unsafe: bool,
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

    if !allow_unsafe {
        for name in &placed {
            check_placed(workdir, name).await?;
        }
    }
    let log_name = format!("gridlabd.attempt-{}.log", job.attempt);
    tracing::info!(job = %job.id, %python, %model, ?options, dir = %workdir.display(), "gridlabd");
    let spec = crate::child::Spec {
        program: python.clone().into(),
        args: ["-c", LAUNCHER, &model]
            .iter()
            .map(Into::into)
            .chain(options.iter().map(Into::into))
            .collect(),
        cwd: Some(workdir.to_path_buf()),
        env: vec![("PYTHONUNBUFFERED".into(), "1".into())],
        pass: PASS_ENV.iter().map(|s| s.to_string()).collect(),
        network: false,
        writable: vec![workdir.to_path_buf()],
        readable: Vec::new(),
    };
    let cmd = ctx.jail().command(&spec);
    let (status, lines) = crate::output::run(cmd, &python, &job, &log_name, &ctx, |l| {
        is_error_line(l) || is_model_error_line(l)
    })
    .await?;

    let artifacts =
        crate::staging::keep_outputs(&store, job.id, workdir, &placed, &log_name).await?;
    // Success is the engine's own word: exit 0 and no ERROR or FATAL line. A model's
    // `#print` and `#warning` lines (`model.glm(128): text`) only explain a failure.
    let engine_error = lines.notable.iter().any(|l| is_error_line(l));
    let why = failure(&lines.notable);
    match (status.code(), why) {
        (Some(0), _) if !engine_error => Ok(json!({
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

    // See: issue 15, finding 1.
    #[test]
    fn models_that_run_commands_or_code_are_told_apart() {
        let safe = "clock { starttime '2020-01-01 0:00:00'; }\n#print writing\n#include \"feeder.glm\"\n#define X=1\nmodule residential;\n// #system ignored in a comment\nclass house { double area; }\n";
        assert_eq!(unsafe_glm(safe), None);
        for (bad, line) in [
            ("#system env > out.txt", 1),
            ("clock {}\n  #exec redis-cli HSET apikey:x role admin", 2),
            ("# system id", 1),
            ("#start sleep 100", 1),
            ("#wget http://127.0.0.1/x x.glm", 1),
            ("#setenv LD_PRELOAD=./x.so", 1),
            ("#option server", 1),
            ("#include [http://example.com/m.glm]", 1),
            ("#include \"/etc/passwd\"", 1),
            ("#include \"../../secret.glm\"", 1),
            ("extern \"C\" lib:f { int f() { return 0; } }", 1),
            ("link x.link;", 1),
            (
                "class x {\n  intrinsic create(object parent) { system(\"id\"); };\n}",
                2,
            ),
        ] {
            assert_eq!(unsafe_glm(bad).map(|(n, _)| n), Some(line), "{bad}");
        }
    }

    #[test]
    fn the_schema_refuses_what_plan_would() {
        let schema = params_schema();
        let errors = |p: Value| broker::schemas::field_errors(&schema, &p);
        for good in [
            json!({"model": "feeder.glm", "inputs": ["weather.csv"], "options": {"AREA": 1500, "x.y:z": "a b", "ok": true}}),
            json!({"model_text": "clock { }"}),
        ] {
            assert!(
                errors(good.clone()).is_empty(),
                "{good}: {:?}",
                errors(good.clone())
            );
            assert!(plan(&job(good)).is_ok());
        }
        assert_eq!(
            errors(json!({})),
            vec![("params.model_text".into(), "is required".into())]
        );
        assert_eq!(
            errors(json!({"model": "m.glm", "model_text": "clock {}"})),
            vec![("params.model_text".into(), "is not allowed".into())]
        );
        assert_eq!(
            errors(json!({"model_text": "  \n"}))[0].0,
            "params.model_text"
        );
        assert_eq!(
            errors(json!({"model": "m.glm", "options": {"1x": 1}}))[0].0,
            "params.options"
        );
        assert_eq!(
            errors(json!({"model": "m.glm", "options": {"X": "a\u{7}b"}}))[0].0,
            "params.options.X"
        );
        assert_eq!(
            errors(json!({"model": "m.glm", "options": {"X": [1]}}))[0].0,
            "params.options.X"
        );
        assert_eq!(
            errors(json!({"model": "m.glm", "python": "/bin/sh"})),
            vec![("params.python".into(), "is not allowed".into())]
        );
    }
}
