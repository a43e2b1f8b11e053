//! The gridlabd executor against the real thing: `sluice-gridlabd` (the binary) runs
//! GridLAB-D models with the PyPI package `gridlabd` 6.0.0 (`pip install gridlabd==6.0.0`,
//! see .ci/run; SLUICE_GRIDLABD_PYTHON may name another interpreter); jobs are submitted
//! and their artifacts fetched over HTTP as a user would.
use std::process::Stdio;
use std::time::{Duration, Instant};

use broker::artifacts::StoreKind;
use broker::{Broker, JobId, Status};
use reqwest::Client;
use serde_json::{json, Value};

use crate::harness::{job, logged, processes, wait_for, Proc, TestApi, TestRedis, TestStore};

/// Six hours of a house, recorded hourly; its floor area comes from the job's options.
const HOUSE: &str = r#"
clock {
  timezone PST+8PDT;
  starttime '2020-01-01 00:00:00';
  stoptime '2020-01-01 06:00:00';
}
module tape;
module residential { implicit_enduses NONE; }
object house {
  name house1;
  floor_area ${AREA};
  heating_system_type HEAT_PUMP;
  object recorder {
    property air_temperature,outdoor_temperature,floor_area;
    interval 3600;
    file house1.csv;
  };
}
"#;

const BROKEN: &str = r#"
clock { starttime '2020-01-01 00:00:00'; stoptime '2020-01-01 01:00:00'; }
module residential;
object house { name h; no_such_property 12; }
"#;

/// Three hours of a house that prints, warns and asserts its floor area equals ${VALUE}.
const ASSERTS: &str = r#"
clock {
  timezone PST+8PDT;
  starttime '2020-01-01 00:00:00';
  stoptime '2020-01-01 03:00:00';
}
module tape;
module assert;
module residential { implicit_enduses NONE; }
#print writing house1.csv
#warning this is only a warning
object house {
  name house1;
  floor_area 1000;
  heating_system_type HEAT_PUMP;
  object assert {
    target "floor_area";
    relation "==";
    value ${VALUE};
  };
  object recorder {
    property air_temperature,floor_area;
    interval 3600;
    file house1.csv;
  };
}
"#;

/// A year at one-second steps (a recorder every second forces them): hours of work.
const YEAR: &str = r#"
clock {
  timezone PST+8PDT;
  starttime '2020-01-01 00:00:00';
  stoptime '2021-01-01 00:00:00';
}
module tape;
module residential { implicit_enduses NONE; }
object house {
  name house1;
  object recorder { property air_temperature; interval 1; file year.csv; };
}
"#;

/// Redis, the API (auth off), a real `sluice-gridlabd` process and their artifact store.
struct Stack {
    _redis: TestRedis,
    api: TestApi,
    _executor: Proc,
    store: TestStore,
}

async fn stack() -> Stack {
    stack_on(StoreKind::Local).await
}

async fn stack_on(kind: StoreKind) -> Stack {
    let store = TestStore::start(kind).await;
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| store.apply(c)).await;
    let executor = crate::harness::command(env!("CARGO_BIN_EXE_sluice-gridlabd"))
        .env("SLUICE_REDIS_URL", redis.url_for("exec"))
        .envs(store.env())
        .env("SLUICE_LEASE", "10s")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice-gridlabd");
    Stack {
        _redis: redis,
        api,
        _executor: Proc(executor),
        store,
    }
}

impl Stack {
    async fn submit(&self, params: Value) -> JobId {
        let r = Client::new()
            .post(self.api.url("/jobs"))
            .json(&json!({"executor": "gridlabd", "params": params, "max_attempts": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        JobId(v["id"].as_u64().unwrap())
    }

    async fn download(&self, id: JobId, name: &str) -> String {
        let r = Client::new()
            .get(self.api.url(&format!("/jobs/{id}/artifacts/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "artifact {name} of job {id}");
        r.text().await.unwrap()
    }

    fn broker(&self) -> &Broker {
        &self.api.broker
    }
}

#[tokio::test]
async fn a_house_model_runs_end_to_end_with_its_recorder_csv_downloadable() {
    let s = stack().await;
    let t0 = Instant::now();
    let id = s
        .submit(json!({"model_text": HOUSE, "options": {"AREA": 1234}}))
        .await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(60),
    )
    .await;
    println!(
        "house model: submit to {:?} in {:?}",
        j.status,
        t0.elapsed()
    );
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let result = j.result.clone().unwrap();
    assert_eq!(result["exit_code"], 0, "{result}");
    assert_eq!(result["log"], "gridlabd.attempt-1.log", "{result}");
    let written: Vec<&str> = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(written.contains(&"house1.csv"), "{result}");
    assert!(
        !written.contains(&"model.glm"),
        "the model is an input, not an output: {result}"
    );

    let csv = s.download(id, "house1.csv").await;
    assert!(
        csv.contains("# timestamp,air_temperature,outdoor_temperature,floor_area"),
        "{csv}"
    );
    let rows: Vec<&str> = csv
        .lines()
        .filter(|l| l.starts_with("2020-01-01 "))
        .collect();
    assert!(rows.len() >= 6, "hourly rows over six hours: {csv}");
    for row in &rows {
        let cols: Vec<&str> = row.split(',').collect();
        let air: f64 = cols[1].trim_start_matches('+').parse().unwrap();
        assert!(
            (40.0..100.0).contains(&air),
            "indoor temperature {air} F: {row}"
        );
        assert!(
            cols[3].starts_with("+1234"),
            "options.AREA reached the model: {row}"
        );
    }

    let listed: Value = Client::new()
        .get(s.api.url(&format!("/jobs/{id}/artifacts")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"house1.csv") && names.contains(&"gridlabd.attempt-1.log"),
        "{listed}"
    );
    let log = s.download(id, "gridlabd.attempt-1.log").await;
    assert!(log.contains("sluice-gridlabd: gridlabd 6."), "{log}");
    assert!(
        logged(s.broker(), id).await.contains("WARNING"),
        "GridLAB-D's own console lines reach the job's events"
    );
}

#[tokio::test]
async fn an_uploaded_model_runs_with_its_uploaded_input_file() {
    uploaded_model_runs(StoreKind::Local).await;
}

/// The executor fetches its model and input from the bucket and puts its outputs and log
/// there; the API serves them from it.
#[tokio::test]
async fn an_uploaded_model_runs_with_its_outputs_landing_in_the_bucket() {
    let t0 = Instant::now();
    let (s, id) = uploaded_model_runs(StoreKind::S3).await;
    let names: Vec<String> = s
        .store
        .artifacts()
        .list(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    for name in [
        "house.glm",
        "settings.glm",
        "house1.csv",
        "gridlabd.attempt-1.log",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} in the bucket: {names:?}"
        );
    }
    let log = s.download(id, "gridlabd.attempt-1.log").await;
    assert!(log.contains("sluice-gridlabd: gridlabd 6."), "{log}");

    let id = s.submit(json!({"model": "missing.glm"})).await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    assert!(
        j.error
            .as_deref()
            .unwrap_or_default()
            .contains("no artifact \"missing.glm\""),
        "{j:?}"
    );
    println!("gridlabd with the S3 store: {:?}", t0.elapsed());
}

async fn uploaded_model_runs(kind: StoreKind) -> (Stack, JobId) {
    let s = stack_on(kind).await;
    // One multipart request: the job, then its model and the file the model includes. The
    // job is claimable only once both are stored (no delay, no race with the executor).
    let form = reqwest::multipart::Form::new()
        .text(
            "job",
            json!({"executor": "gridlabd", "max_attempts": 1,
                   "params": {"model": "house.glm", "inputs": ["settings.glm"]}})
            .to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::text(format!("#include \"settings.glm\"\n{HOUSE}"))
                .file_name("house.glm"),
        )
        .part(
            "file",
            reqwest::multipart::Part::text("#define AREA=777\n").file_name("settings.glm"),
        );
    let r = Client::new()
        .post(s.api.url("/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "PENDING", "{v}");
    assert_eq!(
        v["files"][1],
        json!({"name": "settings.glm", "size": 17}),
        "{v}"
    );
    let id = JobId(v["id"].as_u64().unwrap());
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let result = j.result.unwrap();
    assert_eq!(result["model"], "house.glm", "{result}");
    let csv = s.download(id, "house1.csv").await;
    assert!(
        csv.lines()
            .filter(|l| l.starts_with("2020-01-01 "))
            .all(|l| l.ends_with(",+777")),
        "the included settings set the area: {csv}"
    );
    (s, id)
}

#[tokio::test]
async fn a_broken_model_ends_failed_with_gridlabds_error_text() {
    let s = stack().await;
    let id = s.submit(json!({"model_text": BROKEN})).await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    let error = j.error.unwrap_or_default();
    assert!(error.starts_with("gridlabd exited with code "), "{error}");
    assert!(
        error.contains(": ERROR    [INIT] : unable to load 'model.glm'"),
        "GridLAB-D's first ERROR line: {error}"
    );
    assert!(
        error.contains("property no_such_property is not defined in class house"),
        "{error}"
    );
    let log = s.download(id, "gridlabd.attempt-1.log").await;
    assert!(log.contains("FATAL"), "{log}");

    let id = s.submit(json!({"model": "missing.glm"})).await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    assert!(
        j.error
            .as_deref()
            .unwrap_or_default()
            .contains("no artifact \"missing.glm\""),
        "{j:?}"
    );
}

#[tokio::test]
async fn stop_kills_a_year_long_simulation_within_a_second() {
    let s = stack().await;
    let mark = format!("SLUICE_TEST_MARK=year-{}", std::process::id());
    let (name, value) = mark.split_once('=').unwrap();
    let id = s
        .submit(json!({"model_text": YEAR, "options": {name: value}}))
        .await;
    let b = s.broker();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logged(b, id).await.contains("Processing 2020-01") {
        assert!(
            Instant::now() < deadline,
            "the simulation never started: {:?}",
            job(b, id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One python process runs the model (and, sandboxed, the bwrap that started it).
    assert!(processes(&mark) >= 1, "a python process runs the model");
    let t0 = Instant::now();
    let r = Client::new()
        .post(s.api.url(&format!("/jobs/{id}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let j = wait_for(
        b,
        id,
        |j| j.status == Status::Canceled,
        Duration::from_secs(5),
    )
    .await;
    let canceled = t0.elapsed();
    while processes(&mark) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the simulation of job {id} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = t0.elapsed();
    println!(
        "stop -> CANCELED in {canceled:?}, python gone in {gone:?} ({:?})",
        j.status
    );
    assert!(
        gone < Duration::from_secs(1),
        "stop to CANCELED with the python child gone took {gone:?}"
    );
}

// See: issue 21, part 1 (`#print` failed good runs).
#[tokio::test]
async fn prints_warnings_and_passing_asserts_complete_and_a_failing_assert_fails_naming_it() {
    let s = stack().await;
    let passing = s
        .submit(json!({"model_text": ASSERTS, "options": {"VALUE": 1000}}))
        .await;
    let failing = s
        .submit(json!({"model_text": ASSERTS, "options": {"VALUE": 5}}))
        .await;
    let done = |id| {
        wait_for(
            s.broker(),
            id,
            |j| j.status.is_terminal(),
            Duration::from_secs(60),
        )
    };
    let j = done(passing).await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let log = s.download(passing, "gridlabd.attempt-1.log").await;
    assert!(
        log.contains("writing house1.csv"),
        "the #print line is in the log: {log}"
    );
    assert!(log.contains("this is only a warning"), "{log}");
    assert!(s
        .download(passing, "house1.csv")
        .await
        .contains("floor_area"));
    let j = done(failing).await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    let error = j.error.clone().unwrap_or_default();
    assert!(
        error.contains("assert failed on") && error.contains("floor_area"),
        "{error}"
    );
}

/// `sluice submit --file`: the CLI stores the model and its include file, then the job runs.
#[tokio::test]
async fn the_cli_submits_a_model_with_its_include_file_in_one_command() {
    let s = stack().await;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("house.glm");
    let settings = dir.path().join("settings.glm");
    std::fs::write(&model, format!("#include \"settings.glm\"\n{HOUSE}")).unwrap();
    std::fs::write(&settings, "#define AREA=555\n").unwrap();
    let out = tokio::process::Command::from(crate::harness::command(env!("CARGO_BIN_EXE_sluice")))
        .env("SLUICE_REDIS_URL", &s._redis.url)
        .envs(s.store.env())
        .args([
            "submit",
            "gridlabd",
            "--max-attempts",
            "1",
            "--wait",
            "--file",
        ])
        .arg(&model)
        .arg("--file")
        .arg(&settings)
        .arg(r#"{"model": "house.glm", "inputs": ["settings.glm"]}"#)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "COMPLETED", "{job}");
    let id = JobId(job["id"].as_u64().unwrap());
    let csv = s.download(id, "house1.csv").await;
    assert!(
        csv.lines()
            .filter(|l| l.starts_with("2020-01-01 "))
            .all(|l| l.ends_with(",+555")),
        "the included settings set the area: {csv}"
    );
}
