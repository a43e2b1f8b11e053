//! A client's params reaching a command's arguments: a param may not become an option, may not
//! fill a placeholder Sluice reserves for itself, and the params file is private and new.

use std::time::Duration;

use broker::Status;
use reqwest::Method;
use serde_json::{json, Value};

use super::Stack;
use crate::harness::{executor, wait_for};

const ACTIONS: &str = r#"
[actions.show]
argv = ["echo", "{value}"]
params = "none"

[actions.show_options]
argv = ["echo", "{value}"]
params = "none"
options = true

[actions.read_stdin]
argv = ["cat", "{params_file}"]

[actions.file_mode]
argv = ["stat", "-c", "%a %F %U", "{params_file}"]
params = "file"
"#;

async fn run(s: &Stack, params: Value) -> broker::Job {
    let body = json!({"executor": "command", "params": params, "max_attempts": 1});
    let (status, made) = s.call(&s.alice, Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    let id = broker::JobId(made["id"].as_u64().unwrap());
    wait_for(
        &s.api.broker,
        id,
        |j| j.status.is_terminal(),
        Duration::from_secs(20),
    )
    .await
}

// See: issue 15, finding 6 (options injection, {params_file}, the params file).
#[tokio::test]
async fn params_cannot_become_options_or_reserved_placeholders() {
    let s = Stack::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let actions = dir.path().join("actions.toml");
    std::fs::write(&actions, ACTIONS).unwrap();
    let _exec = executor(
        env!("CARGO_BIN_EXE_sluice-command"),
        &s.redis,
        &["--config", &actions.display().to_string()],
        [("SLUICE_SANDBOX", "auto")],
    );

    // A value where the action expects one is a value, never an option.
    for value in ["--version", "-n", "-e"] {
        let j = run(&s, json!({"action": "show", "value": value})).await;
        assert_eq!(j.status, Status::Failed, "{value}: {j:?}");
        assert!(
            j.error.as_deref().unwrap_or_default().contains("option"),
            "{value}: {j:?}"
        );
    }
    let j = run(&s, json!({"action": "show", "value": "plain -- text"})).await;
    assert_eq!(j.result, Some(json!("plain -- text\n")));
    // An action that says it takes options from params does.
    let j = run(&s, json!({"action": "show_options", "value": "-n"})).await;
    assert_eq!(j.status, Status::Completed, "{j:?}");

    // {params_file} is Sluice's: a param of that name does not fill it.
    let j = run(
        &s,
        json!({"action": "read_stdin", "params_file": "/etc/passwd"}),
    )
    .await;
    assert_eq!(j.status, Status::Failed, "{j:?}");
    assert!(!format!("{j:?}").contains("root:"), "{j:?}");
    assert!(
        j.error
            .as_deref()
            .unwrap_or_default()
            .contains("not set for this action"),
        "{j:?}"
    );

    // The params file is a new regular file only the executor's user may read.
    let j = run(&s, json!({"action": "file_mode", "x": 1})).await;
    assert_eq!(j.status, Status::Completed, "{j:?}");
    let text = j
        .result
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(text.starts_with("600 regular file"), "{text}");
}
