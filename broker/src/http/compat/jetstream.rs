//! The Jetstream Centro face (SEEDS.md section 3): `POST /api/v1/new-run/` with HTTP basic
//! auth and a pipeline run config. `pipeline` is `name@version`; the run goes to the
//! executor kind that registered its action (a `sluice-command` action, as Jetstream's
//! pipelines were commands): the one `jetstream_pipelines` maps `name@version` (or `name`) to,
//! else the one named `name`; the whole config is its params, plus `action` and `version`.
//! A malformed config is a 400 naming the field.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::Reply;

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::http::errors;

fn field<'a>(cfg: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Error> {
    cfg.get(name)
        .ok_or_else(|| Error::Invalid(format!("{name}: required")))
}

/// Checks a run config; returns the pipeline name and version.
///
/// # Errors
/// [`Error::Invalid`] naming the field.
pub fn check(cfg: &Map<String, Value>) -> Result<(String, String), Error> {
    match field(cfg, "project")? {
        Value::String(s) if !s.trim().is_empty() => {}
        _ => return Err(Error::Invalid("project: must be a non-empty string".into())),
    }
    let pipeline = field(cfg, "pipeline")?
        .as_str()
        .ok_or_else(|| Error::Invalid("pipeline: must be a string name@version".into()))?;
    let (name, version) = pipeline
        .split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "pipeline: {pipeline:?} must be name@version, e.g. tempe@latest"
            ))
        })?;
    match field(cfg, "dataFiles")? {
        Value::Array(files) => {
            for (i, f) in files.iter().enumerate() {
                if !f.is_object() {
                    return Err(Error::Invalid(format!("dataFiles[{i}]: must be an object")));
                }
            }
        }
        _ => return Err(Error::Invalid("dataFiles: must be an array".into())),
    }
    for (name, want) in [
        ("email", "a string"),
        ("study", "a string"),
        ("hpcAccount", "a string"),
        ("isilonPath", "a string"),
    ] {
        if cfg.get(name).is_some_and(|v| !v.is_string()) {
            return Err(Error::Invalid(format!("{name}: must be {want}")));
        }
    }
    if cfg.get("cram").is_some_and(|v| !v.is_boolean()) {
        return Err(Error::Invalid("cram: must be true or false".into()));
    }
    Ok((name.to_string(), version.to_string()))
}

/// The action that runs pipeline `name@version`: the operator's mapping for `name@version`,
/// then for `name`, else the action named `name`.
fn action_for(map: &[(String, String)], name: &str, version: &str) -> String {
    let exact = format!("{name}@{version}");
    map.iter()
        .find(|(p, _)| *p == exact)
        .or_else(|| map.iter().find(|(p, _)| p == name))
        .map_or_else(|| name.to_string(), |(_, a)| a.clone())
}

async fn submit(b: &Broker, who: &Account, body: &Bytes) -> Result<Value, Error> {
    let cfg: Value = crate::http::parse_body(body)?;
    let Value::Object(mut cfg) = cfg else {
        return Err(Error::Invalid(
            "body: must be a JSON object (a pipeline config.json)".into(),
        ));
    };
    let (name, version) = check(&cfg)?;
    let action = action_for(&b.config().jetstream_pipelines, &name, &version);
    let kind = b.action_kind(&action).await?.ok_or_else(|| {
        Error::Invalid(format!(
            "pipeline: no executor runs pipeline {name}@{version} (action {action:?}; map it with jetstream_pipelines)"
        ))
    })?;
    cfg.insert("action".into(), Value::String(action));
    cfg.insert("version".into(), Value::String(version));
    let job = b.face_job("jetstream", who, &kind, Value::Object(cfg))?;
    let (id, status) = b.submit(&job).await?;
    Ok(json!({
        "id": id, "status": status, "url": format!("/jobs/{id}"), "events": format!("/jobs/{id}/events"),
        "message": format!("run {id} submitted; follow it with GET /jobs/{id} or GET /jobs/{id}/events"),
    }))
}

/// `POST /api/v1/new-run/`: 201 with the run's job id and where to follow it.
#[utoipa::path(post, path = "/api/v1/new-run/", tag = "jetstream",
    request_body(content = Object, description = "A pipeline config.json: project, pipeline (name@version), dataFiles[], ..."),
    responses(
        (status = 201, description = "{id, status, url, events, message}", body = Object),
        (status = 400, description = "Malformed config, naming the field", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "No valid basic auth", body = crate::http::openapi::ErrorBody)))]
pub async fn new_run(
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, warp::Rejection> {
    Ok(match submit(&b, &who, &body).await {
        Ok(v) => {
            let location = format!("/jobs/{}", v["id"]);
            let reply = warp::reply::with_status(warp::reply::json(&v), StatusCode::CREATED);
            warp::reply::with_header(reply, "location", location).into_response()
        }
        Err(e) => errors::from_error(&e),
    })
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // jetstream
        warp::path!("api" / "v1" / "new-run")
            .and(warp::post())
            .and(c.caller())
            .and(c.json_body())
            .and_then(new_run)
            .boxed(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn pipelines_map_to_actions_exact_version_first() {
        let map = vec![
            ("tempe@latest".to_string(), "tempe_v3".to_string()),
            ("tempe".to_string(), "tempe_any".to_string()),
        ];
        assert_eq!(action_for(&map, "tempe", "latest"), "tempe_v3");
        assert_eq!(action_for(&map, "tempe", "1.2"), "tempe_any");
        assert_eq!(action_for(&map, "rnaseq", "1"), "rnaseq");
        assert_eq!(action_for(&[], "tempe", "latest"), "tempe");
    }

    #[test]
    fn configs_are_checked_field_by_field() {
        let good = json!({"project": "P1", "pipeline": "tempe@latest", "dataFiles": [{"fastqPath": "/x"}], "cram": true});
        assert_eq!(
            check(&cfg(good)).ok(),
            Some(("tempe".into(), "latest".into()))
        );
        for (bad, field) in [
            (json!({"pipeline": "a@1", "dataFiles": []}), "project"),
            (
                json!({"project": "P", "pipeline": "tempe", "dataFiles": []}),
                "pipeline",
            ),
            (
                json!({"project": "P", "pipeline": 3, "dataFiles": []}),
                "pipeline",
            ),
            (json!({"project": "P", "pipeline": "a@1"}), "dataFiles"),
            (
                json!({"project": "P", "pipeline": "a@1", "dataFiles": [1]}),
                "dataFiles[0]",
            ),
            (
                json!({"project": "P", "pipeline": "a@1", "dataFiles": [], "cram": "yes"}),
                "cram",
            ),
        ] {
            let e = check(&cfg(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(field), "{e} should name {field}");
        }
    }
}
