//! The spark executor against the real thing: `sluice-spark` (the binary) runs PySpark
//! applications with pyspark's own spark-submit (`pip install pyspark`, see .ci/run) on a
//! SPARK_LOCAL cluster registered over HTTP; jobs are submitted with HTTP as a user would.
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use broker::{Broker, JobId, Status};
use reqwest::Client;
use serde_json::{json, Value};

use crate::harness::{job, logged, processes, wait_for, Proc, TestApi, TestRedis};

const WORDCOUNT: &str = r#"
import json, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
lines = spark.sparkContext.textFile(sys.argv[1])
counts = dict(lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect())
spark.stop()
print(json.dumps(counts, sort_keys=True))
"#;

const FAILING: &str = r#"
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize([1, 2, 3]).count()
raise ValueError("bad input row 7")
"#;

const SLOW: &str = r#"
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("spark session up", flush=True)
spark.sparkContext.parallelize(range(4), 2).map(lambda x: time.sleep(600)).count()
"#;

/// Redis, the API (auth off), a local cluster 1, and a real `sluice-spark` process.
struct Stack {
    redis: TestRedis,
    api: TestApi,
    _executor: Proc,
    dir: tempfile::TempDir,
}

async fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let redis = TestRedis::start();
    let api = TestApi::start(&redis, |c| c.artifact_dir = artifacts.clone()).await;
    let cluster = json!({
        "name": "laptop", "type": "SPARK_LOCAL", "address": "local[2]",
        "general_parameters": json!({
            "spark": {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"},
            "environment": {"SPARK_LOCAL_IP": "127.0.0.1"}
        }).to_string()
    });
    let r = Client::new()
        .put(api.url("/clusters/1"))
        .json(&cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let executor = crate::harness::command(env!("CARGO_BIN_EXE_sluice-spark"))
        .env("SLUICE_REDIS_URL", redis.url_for("exec"))
        .env("SLUICE_ARTIFACT_DIR", &artifacts)
        .env("SLUICE_LEASE", "10s")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice-spark");
    Stack {
        redis,
        api,
        _executor: Proc(executor),
        dir,
    }
}

impl Stack {
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    async fn submit(&self, params: Value) -> JobId {
        let r = Client::new()
            .post(self.api.url("/jobs"))
            .json(
                &json!({"executor": "spark", "cluster": "1", "params": params, "max_attempts": 1}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        JobId(v["id"].as_u64().unwrap())
    }

    fn broker(&self) -> &Broker {
        &self.api.broker
    }
}

#[tokio::test]
async fn a_pyspark_wordcount_runs_on_a_local_cluster_with_its_log_streamed_and_kept() {
    let s = stack().await;
    let input = s.write("in.txt", "to be or not to be\nthat is the question\n");
    let app = s.write("wordcount.py", WORDCOUNT);
    let id = s.submit(json!({"app": app, "args": [input]})).await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let out = &j.result.as_ref().unwrap()["output"];
    assert_eq!(
        (
            out["to"].as_u64(),
            out["be"].as_u64(),
            out["question"].as_u64()
        ),
        (Some(2), Some(2), Some(1)),
        "{out}"
    );

    let log = logged(s.broker(), id).await;
    assert!(
        log.contains("SparkContext"),
        "spark-submit's own lines reach the job's events"
    );
    let list: Value = Client::new()
        .get(s.api.url(&format!("/jobs/{id}/artifacts")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["artifacts"][0]["name"], "spark-submit.attempt-1.log",
        "{list}"
    );
    let r = Client::new()
        .get(
            s.api
                .url(&format!("/jobs/{id}/artifacts/spark-submit.attempt-1.log")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        list["artifacts"][0]["size"].to_string()
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("SparkContext") && text.contains("\"question\": 1"),
        "the whole log, stdout included"
    );
    let r = Client::new()
        .get(
            s.api
                .url(&format!("/jobs/{id}/artifacts/..%2F..%2Fetc%2Fpasswd")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a traversal name is refused");
    assert_eq!(
        s.redis
            .cli(&["HGET", &format!("job_{id}"), "cluster"])
            .trim(),
        "1"
    );
}

#[tokio::test]
async fn a_failing_application_ends_failed_with_sparks_error_text() {
    let s = stack().await;
    let app = s.write("failing.py", FAILING);
    let id = s.submit(json!({"app": app})).await;
    let j = wait_for(
        s.broker(),
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    let error = j.error.unwrap_or_default();
    assert!(error.contains("ValueError: bad input row 7"), "{error}");
    assert!(
        error.starts_with("spark-submit exited with code 1"),
        "{error}"
    );
}

#[tokio::test]
async fn stop_kills_spark_submit_and_its_jvm_within_a_second() {
    let s = stack().await;
    let app = s.write("slow.py", SLOW);
    let name = format!("slow-{}", std::process::id());
    let id = s.submit(json!({"app": app, "name": name})).await;
    let b = s.broker();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !logged(b, id).await.contains("spark session up") {
        assert!(
            Instant::now() < deadline,
            "the app never started: {:?}",
            job(b, id).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // spark-submit passes `--name` on to the JVM's command line.
    assert!(
        processes(&format!("{name}( |$)")) >= 1,
        "a JVM runs the job"
    );
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
    while processes(&format!("{name}( |$)")) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "JVMs of job {id} still alive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = t0.elapsed();
    // The loop above bounds it (3 s, generous for a busy CI); the figure is reported.
    println!("stop -> CANCELED and JVM gone in {gone:?} ({:?})", j.status);
    assert!(Path::new(&s.dir.path().join(format!(
        "artifacts/{id}/artifacts/spark-submit.attempt-1.log"
    )))
    .is_file());
}
