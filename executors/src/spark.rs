//! The `spark` executor kind: runs `spark-submit` for a job, against the Stand cluster the
//! job names (`cluster` field; none means `local[*]`).
//!
//! Params (JSON):
//! ```json
//! {"app": "/data/wordcount.py", "args": ["/data/in.txt"], "main_class": "org.x.Main",
//!  "conf": {"spark.sql.shuffle.partitions": "2"}, "py_files": [], "jars": [], "files": [],
//!  "name": "wordcount", "driver_memory": "1g"}
//! ```
//! Only `app` is required. The argv is built as a list (never a shell string): `--master`
//! and `--conf` from the cluster record (`broker::clusters`), then the job's own `--conf`s,
//! which win. spark-submit runs in its own process group; stop, timeout and shutdown kill
//! the group (spark-submit's JVM and the Python driver with it).
//!
//! Output: every line of stdout and stderr goes, in batches of at most a fifth of a second,
//! into the job's events (`lua/log.lua`), and the whole log into the artifact
//! `spark-submit.attempt-<n>.log`. Exit 0 completes the job with the tail of stdout (and
//! `output`, the last stdout line when it is JSON); any other exit fails it for good with
//! Spark's own error line (the last `...Exception: ...` or `...Error: ...` line).
//! [`params_schema`] is the schema `sluice-spark` publishes for the params.

use std::path::PathBuf;

use crate::runtime::{Executor, JobContext, JobError, JobFuture, JobInput};
use crate::staging::Workdir;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The executor's variables spark-submit may inherit (its environment is otherwise
/// cleared): where Java, Spark, Hadoop and Python are.
const PASS_ENV: [&str; 12] = [
    "JAVA_HOME",
    "SPARK_HOME",
    "SPARK_CONF_DIR",
    "SPARK_LOCAL_IP",
    "HADOOP_CONF_DIR",
    "YARN_CONF_DIR",
    "PYSPARK_PYTHON",
    "PYSPARK_DRIVER_PYTHON",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "KUBECONFIG",
];

/// A spark job's params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparkJob {
    /// The application: a .py file or a jar.
    pub app: String,
    /// Arguments after the application.
    #[serde(default)]
    pub args: Vec<String>,
    /// `--class` for a jar.
    pub main_class: Option<String>,
    /// Extra `--conf` settings; they override the cluster's.
    #[serde(default)]
    pub conf: Map<String, Value>,
    /// `--py-files`.
    #[serde(default)]
    pub py_files: Vec<String>,
    /// `--jars`.
    #[serde(default)]
    pub jars: Vec<String>,
    /// `--files`.
    #[serde(default)]
    pub files: Vec<String>,
    /// `--name` (default `sluice-job-<id>`).
    pub name: Option<String>,
    /// `--driver-memory`.
    pub driver_memory: Option<String>,
}

/// The JSON Schema of a `spark` job's params ([`SparkJob`]): what `sluice-spark`
/// publishes. `workflow`, `app_configs` and `persist` are let through because the Stand
/// face puts Stand's fields of the same names in the params.
pub fn params_schema() -> Value {
    let files = |what: &str| json!({"type": "array", "items": {"type": "string", "minLength": 1}, "description": what});
    let stand = json!({"description": "Stand's, put in the params by the Stand face."});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "spark params",
        "description": "A spark-submit run, on the Stand cluster the job names (none: local[*]).",
        "type": "object",
        "required": ["app"],
        "additionalProperties": false,
        "properties": {
            "app": {"type": "string", "pattern": "\\S",
                "description": "The application: a .py file or a jar (a path, or a file of the job)."},
            "args": {"type": "array", "items": {"type": "string"},
                "description": "Arguments after the application."},
            "main_class": {"type": "string", "minLength": 1,
                "description": "--class, the main class of a jar."},
            "conf": {"type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "More --conf settings (name -> value); they override the cluster's."},
            "py_files": files("--py-files."),
            "jars": files("--jars."),
            "files": files("--files."),
            "name": {"type": "string", "minLength": 1,
                "description": "--name (default sluice-job-<id>)."},
            "driver_memory": {"type": "string", "pattern": "^[0-9]+([kKmMgGtTpP]?[bB]?)$",
                "description": "--driver-memory, e.g. 1g or 512m."},
            "workflow": stand.clone(),
            "app_configs": stand.clone(),
            "persist": stand,
        },
    })
}

/// Environment variables for spark-submit, from the cluster record.
pub type Env = Vec<(String, String)>;

/// Builds the spark-submit argv (without the program) for `job` on `cluster`.
///
/// # Errors
/// [`JobError::Fatal`] for a bad cluster record or params.
pub fn argv(
    id: broker::JobId,
    job: &SparkJob,
    cluster: Option<&broker::clusters::Cluster>,
) -> Result<(Vec<String>, Env), JobError> {
    if job.app.trim().is_empty() {
        return Err(JobError::Fatal(
            "params.app must name a .py file or a jar".into(),
        ));
    }
    let mut args = vec!["--master".to_string()];
    let mut env = Vec::new();
    let mut conf = std::collections::BTreeMap::new();
    match cluster {
        Some(c) => {
            args.push(c.master());
            let settings = c
                .spark_settings()
                .map_err(|e| JobError::Fatal(format!("cluster {}: {e}", c.id)))?;
            conf.extend(settings.conf);
            env.extend(settings.env);
        }
        None => args.push("local[*]".into()),
    }
    for (k, v) in &job.conf {
        let v = v.as_str().map_or_else(|| v.to_string(), String::from);
        conf.insert(k.clone(), v);
    }
    args.push("--name".into());
    args.push(
        job.name
            .clone()
            .unwrap_or_else(|| format!("sluice-job-{id}")),
    );
    for (k, v) in conf {
        args.push("--conf".into());
        args.push(format!("{k}={v}"));
    }
    for (flag, list) in [
        ("--py-files", &job.py_files),
        ("--jars", &job.jars),
        ("--files", &job.files),
    ] {
        if !list.is_empty() {
            args.push(flag.into());
            args.push(list.join(","));
        }
    }
    if let Some(m) = &job.driver_memory {
        args.push("--driver-memory".into());
        args.push(m.clone());
    }
    if let Some(c) = &job.main_class {
        args.push("--class".into());
        args.push(c.clone());
    }
    args.push(job.app.clone());
    args.extend(job.args.iter().cloned());
    Ok((args, env.into_iter().collect()))
}

/// Spark's own error line in a failed run's output: the last line that names an exception
/// or error (a Python traceback's last line, `org.apache.spark.SparkException: ...`).
pub fn error_line(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .rev()
        .map(|l| l.trim().trim_start_matches([':', ' ']))
        .find(|l| {
            !l.is_empty()
                && (l.contains("Exception: ") || l.contains("Error: ") || l.starts_with("Error"))
                && !l.starts_with("at ")
        })
        .map(String::from)
}

/// Is `line` Spark's own log4j line (`26/11/28 11:00:00 INFO ShutdownHookManager: ...`)?
fn is_spark_log(line: &str) -> bool {
    let l = line.trim_start();
    let b = l.as_bytes();
    b.len() > 18
        && b[2] == b'/'
        && b[5] == b'/'
        && b[11] == b':'
        && ["INFO", "WARN", "DEBUG", "TRACE"].iter().any(|lvl| {
            l.get(18..)
                .is_some_and(|rest| rest.trim_start().starts_with(lvl))
        })
}

/// The last line of a failed run's output that is not Spark's own INFO/WARN log: what the
/// application said last (`sys.exit("bad input")`, `SystemExit: ...`), when no line reads
/// as an error.
pub fn last_own_line(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !is_spark_log(l))
        .map(String::from)
}

/// The `spark` executor.
#[derive(Debug, Clone)]
pub struct SparkExecutor {
    spark_submit: PathBuf,
}

impl SparkExecutor {
    /// Runs `spark_submit` (a path, or a name looked up on PATH).
    pub fn new(spark_submit: PathBuf) -> Self {
        Self { spark_submit }
    }

    /// spark-submit's location: `$SPARK_HOME/bin/spark-submit` when SPARK_HOME is set, else
    /// `spark-submit` on PATH (pip's `pyspark` installs one there).
    pub fn locate() -> PathBuf {
        match std::env::var_os("SPARK_HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join("bin/spark-submit"),
            _ => PathBuf::from("spark-submit"),
        }
    }
}

impl Executor for SparkExecutor {
    fn run(&self, job: JobInput, ctx: JobContext) -> JobFuture {
        let program = self.spark_submit.clone();
        Box::pin(async move { run_spark(program, job, ctx).await })
    }

    fn params_schema(&self) -> Option<Value> {
        Some(params_schema())
    }
}

async fn run_spark(program: PathBuf, job: JobInput, ctx: JobContext) -> Result<Value, JobError> {
    let spec: SparkJob = serde_json::from_value(job.params.clone())
        .map_err(|e| JobError::Fatal(format!("spark params: {e}")))?;
    let record = ctx
        .broker()
        .get(job.id)
        .await
        .map_err(|e| JobError::Retry(format!("cannot read job {}: {e}", job.id)))?;
    let cluster = match record.field("cluster") {
        Some(c) => {
            let cid: u64 = c
                .parse()
                .map_err(|_| JobError::Fatal(format!("cluster {c:?} is not a cluster id")))?;
            Some(ctx.broker().cluster(cid).await.map_err(|e| match e {
                broker::Error::Missing(_) => JobError::Fatal(format!("cluster {cid} is gone")),
                e => JobError::Retry(e.to_string()),
            })?)
        }
        None => None,
    };
    let (args, env) = argv(job.id, &spec, cluster.as_ref())?;
    let log_name = format!("spark-submit.attempt-{}.log", job.attempt);
    tracing::info!(job = %job.id, program = %program.display(), ?args, "spark-submit");
    let dir = Workdir::create("spark", job.id, job.attempt, false).await?;
    // The job's files (uploaded with it, inputs, a workflow parent's outputs) sit in the
    // working directory, so `app` and `args` may name them relative to it.
    let store = ctx.broker().artifacts();
    if let Err(e) = crate::staging::artifacts_into(&store, job.id, &dir.root).await {
        dir.remove().await;
        return Err(e);
    }
    // In the sandbox: the files the job names are readable, its directory writable, and the
    // network is there only for a cluster that is not local.
    let local = args.get(1).is_none_or(|m| m.starts_with("local"));
    let named = std::iter::once(&spec.app)
        .chain(&spec.py_files)
        .chain(&spec.jars)
        .chain(&spec.files)
        .chain(&spec.args)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.exists());
    let child = crate::child::Spec {
        program: program.clone().into(),
        args: args.iter().map(Into::into).collect(),
        cwd: Some(dir.root.clone()),
        env: env.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        pass: PASS_ENV.iter().map(|s| s.to_string()).collect(),
        network: !local,
        writable: vec![dir.root.clone()],
        readable: named.collect(),
    };
    let cmd = ctx.jail().command(&child);
    let label = program.display().to_string();
    let ran = crate::output::run(cmd, &label, &job, &log_name, &ctx, |_| false).await;
    dir.remove().await;
    let (status, o) = ran?;
    if status.success() {
        let stdout: Vec<&str> = o.stdout_tail.iter().map(String::as_str).collect();
        let output = stdout
            .last()
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null);
        return Ok(json!({
            "exit_code": 0,
            "output": output,
            "stdout": stdout.join("\n"),
            "log": log_name,
        }));
    }
    let why = error_line(&o.tail)
        .or_else(|| last_own_line(&o.tail))
        .unwrap_or_else(|| "no output".into());
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
    Err(JobError::Fatal(format!(
        "spark-submit exited with {code}: {why} (log: {log_name})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::clusters::Cluster;

    // See: issue 22 (a failed spark-submit said "no error line" while its log ended with
    // python's error, then Spark's shutdown lines).
    #[test]
    fn a_failure_names_what_the_app_said_last_before_sparks_shutdown_lines() {
        let out: Vec<String> = [
            "Traceback (most recent call last):",
            "  File \"/tmp/app.py\", line 3, in <module>",
            "    raise SystemExit(\"bad input: no rows\")",
            "SystemExit: bad input: no rows",
            "26/11/28 11:00:00 INFO ShutdownHookManager: Shutdown hook called",
            "26/11/28 11:00:00 INFO ShutdownHookManager: Deleting directory /tmp/spark-1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(error_line(&out), None);
        assert_eq!(
            last_own_line(&out).as_deref(),
            Some("SystemExit: bad input: no rows")
        );
    }

    fn job(v: Value) -> SparkJob {
        serde_json::from_value(v).expect("valid spark params")
    }

    #[test]
    fn argv_from_cluster_and_params_job_conf_wins() {
        let cluster: Cluster = serde_json::from_value(json!({
            "id": 2, "name": "c", "address": "spark://h:7077", "executors": 3,
            "general_parameters": "spark.ui.enabled=false,spark.x=1"
        }))
        .expect("test value");
        let j = job(
            json!({"app": "wc.py", "args": ["in.txt", "a b"], "conf": {"spark.x": 2},
                           "py_files": ["a.py", "b.py"]}),
        );
        let (argv, env) = argv(broker::JobId(9), &j, Some(&cluster)).expect("test value");
        let text = argv.join(" ");
        assert!(
            text.starts_with("--master spark://h:7077 --name sluice-job-9"),
            "{text}"
        );
        assert!(text.contains("--conf spark.cores.max=3"), "{text}");
        assert!(text.contains("--conf spark.ui.enabled=false"), "{text}");
        assert!(
            text.contains("--conf spark.x=2") && !text.contains("spark.x=1"),
            "{text}"
        );
        assert!(text.contains("--py-files a.py,b.py"), "{text}");
        assert_eq!(
            &argv[argv.len() - 3..],
            ["wc.py", "in.txt", "a b"],
            "args stay separate"
        );
        assert!(env.is_empty());
    }

    #[test]
    fn no_cluster_means_local_and_app_is_required() {
        let (argv, _) = argv(
            broker::JobId(1),
            &job(json!({"app": "x.jar", "main_class": "M"})),
            None,
        )
        .expect("test value");
        assert_eq!(argv[..2], ["--master", "local[*]"]);
        assert!(argv.join(" ").ends_with("--class M x.jar"));
        assert!(matches!(
            super::argv(broker::JobId(1), &job(json!({"app": " "})), None),
            Err(JobError::Fatal(_))
        ));
        assert!(
            serde_json::from_value::<SparkJob>(json!({"app": "a", "shell": "rm -rf /"})).is_err()
        );
    }

    #[test]
    fn finds_sparks_error_line() {
        let lines: Vec<String> = [
            "Traceback (most recent call last):",
            "  File \"/tmp/app.py\", line 3, in <module>",
            "ZeroDivisionError: division by zero",
            "24/11/23 INFO ShutdownHookManager: Shutdown hook called",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            error_line(&lines).as_deref(),
            Some("ZeroDivisionError: division by zero")
        );
        let java = vec![
            "Exception in thread \"main\" org.apache.spark.SparkException: Failed to get main class".to_string(),
            "\tat org.apache.spark.deploy.SparkSubmit.x(SparkSubmit.scala:1)".to_string(),
        ];
        assert!(error_line(&java)
            .expect("test value")
            .contains("SparkException: Failed"));
        assert_eq!(error_line(&["all good".to_string()]), None);
    }

    #[test]
    fn the_schema_refuses_what_the_executor_would() {
        let schema = params_schema();
        let errors = |p: Value| broker::schemas::field_errors(&schema, &p);
        let good = json!({"app": "a.py", "args": ["x"], "main_class": "org.x.Main",
            "conf": {"spark.sql.shuffle.partitions": "2", "spark.x": 3}, "py_files": [],
            "jars": ["a.jar"], "files": [], "name": "wc", "driver_memory": "512m"});
        assert!(
            errors(good.clone()).is_empty(),
            "{:?}",
            errors(good.clone())
        );
        let parsed: Result<SparkJob, _> = serde_json::from_value(good);
        assert!(parsed.is_ok(), "what the schema takes, the executor reads");
        assert!(errors(json!({"app": "a.py", "workflow": {"id": 1}, "persist": true})).is_empty());
        assert_eq!(
            errors(json!({})),
            vec![("params.app".into(), "is required".into())]
        );
        assert_eq!(errors(json!({"app": " "}))[0].0, "params.app");
        assert_eq!(
            errors(json!({"app": "a.py", "args": "x"}))[0].0,
            "params.args"
        );
        assert_eq!(
            errors(json!({"app": "a.py", "jars": [1]}))[0].0,
            "params.jars[0]"
        );
        assert_eq!(
            errors(json!({"app": "a.py", "driver_memory": "lots"}))[0].0,
            "params.driver_memory"
        );
        assert_eq!(
            errors(json!({"app": "a.py", "conf": {"spark.a": [1]}}))[0].0,
            r#"params.conf["spark.a"]"#
        );
        assert_eq!(
            errors(json!({"app": "a.py", "master": "yarn"})),
            vec![("params.master".into(), "is not allowed".into())]
        );
    }
}
