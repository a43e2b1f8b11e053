//! Run inputs: the files a job starts with, as the Workflow Service's runs had them. Each
//! is fetched by the executor runtime before the job runs and stored as an artifact of the
//! job under its `name` (so every executor kind finds it the same way):
//! `{"name": "weather.csv", "url": "https://..."}` downloads a URL;
//! `{"name": "model.glm", "job": 12, "artifact": "feeder.glm"}` copies another job's
//! artifact (`artifact` defaults to `name`). A workflow member also gets every artifact of
//! its parents (their console logs excepted) once they have completed.
//! Kept in the job hash as the JSON text of field `inputs`.

use serde::{Deserialize, Serialize};

use crate::artifacts::validate_name;
use crate::error::Error;
use crate::outbound::Outbound;

/// Most inputs one job may name.
const MAX_INPUTS: usize = 1000;

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The artifact name it becomes.
    pub name: String,
    /// Where to download it from (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The job whose artifact it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
    /// That job's artifact name (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// Is `name` an executor's console log (`<kind>.attempt-<n>.log`)? Those are not handed
/// on to a workflow member as inputs.
pub fn is_console_log(name: &str) -> bool {
    name.strip_suffix(".log")
        .and_then(|n| n.rsplit_once(".attempt-"))
        .is_some_and(|(kind, n)| {
            !kind.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        })
}

impl Input {
    /// Checks one input: a good artifact name, and exactly one source; a URL passes the
    /// outbound policy's static rules (its addresses are checked again when it is fetched).
    ///
    /// # Errors
    /// [`Error::Invalid`] saying what is wrong.
    pub fn validate(&self, policy: &Outbound) -> Result<(), Error> {
        validate_name(&self.name)?;
        match (&self.url, self.job) {
            (Some(url), None) if self.artifact.is_none() => policy
                .check(&format!("input {:?}", self.name), url)
                .map(|_| ()),
            (None, Some(_)) => self.artifact.as_deref().map_or(Ok(()), validate_name),
            _ => Err(Error::Invalid(format!(
                "input {:?}: give either url, or job (and optionally artifact)",
                self.name
            ))),
        }
    }

    /// The artifact of `job` this input copies.
    pub fn artifact_name(&self) -> &str {
        self.artifact.as_deref().unwrap_or(&self.name)
    }
}

/// Checks a list of inputs and encodes it for the job's `inputs` field (None when empty).
///
/// # Errors
/// [`Error::Invalid`] for a bad input, a name given twice or too many inputs.
pub fn encode(inputs: &[Input], policy: &Outbound) -> Result<Option<String>, Error> {
    if inputs.len() > MAX_INPUTS {
        return Err(Error::Invalid(format!("at most {MAX_INPUTS} inputs")));
    }
    let mut names = std::collections::HashSet::new();
    for input in inputs {
        input.validate(policy)?;
        if !names.insert(input.name.as_str()) {
            return Err(Error::Invalid(format!(
                "input {:?} given twice",
                input.name
            )));
        }
    }
    if inputs.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(inputs)
        .map(Some)
        .map_err(|e| Error::Codec(e.to_string()))
}

/// The inputs stored in a job's `inputs` field (none when absent).
///
/// # Errors
/// [`Error::Codec`] when the field is not what [`encode`] wrote.
pub fn decode(field: Option<&str>) -> Result<Vec<Input>, Error> {
    match field {
        None | Some("") => Ok(Vec::new()),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| Error::Codec(format!("job field inputs: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Result<Input, String> {
        serde_json::from_str::<Input>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_input_has_one_source_and_a_safe_name() {
        let ok = [
            r#"{"name": "a.csv", "url": "https://example.org/a.csv"}"#,
            r#"{"name": "a.csv", "job": 3}"#,
            r#"{"name": "a.csv", "job": 3, "artifact": "out.csv"}"#,
        ];
        for j in ok {
            assert!(
                input(j).map(|i| i.validate(&Outbound::default()).is_ok()) == Ok(true),
                "{j}"
            );
        }
        let bad = [
            r#"{"name": "a.csv"}"#,
            r#"{"name": "a.csv", "url": "https://x/a", "job": 3}"#,
            r#"{"name": "../a.csv", "job": 3}"#,
            r#"{"name": "a.csv", "url": "file:///etc/passwd"}"#,
            r#"{"name": "a.csv", "url": "http://127.0.0.1:6379/"}"#,
            r#"{"name": "a.csv", "url": "https://x/a", "artifact": "b"}"#,
            r#"{"name": "a.csv", "job": 3, "artifact": "../b"}"#,
        ];
        for j in bad {
            assert!(
                input(j).map(|i| i.validate(&Outbound::default()).is_err()) == Ok(true),
                "{j}"
            );
        }
        assert!(input(r#"{"name": "a", "path": "/x"}"#).is_err());
    }

    #[test]
    fn console_logs_are_told_apart() {
        assert!(is_console_log("spark-submit.attempt-1.log"));
        assert!(is_console_log("gridlabd.attempt-12.log"));
        for other in [
            "out.log",
            "a.attempt-.log",
            ".attempt-1.log",
            "x.attempt-1a.log",
            "x.csv",
        ] {
            assert!(!is_console_log(other), "{other}");
        }
    }

    #[test]
    fn inputs_round_trip_and_names_are_unique() {
        let list = vec![
            Input {
                name: "a".into(),
                url: Some("http://h/a".into()),
                job: None,
                artifact: None,
            },
            Input {
                name: "b".into(),
                url: None,
                job: Some(4),
                artifact: Some("c".into()),
            },
        ];
        let text = encode(&list, &Outbound::default())
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(decode(Some(&text)).ok(), Some(list.clone()));
        assert_eq!(encode(&[], &Outbound::default()).ok(), Some(None));
        let twice = vec![list[0].clone(), list[0].clone()];
        assert!(encode(&twice, &Outbound::default()).is_err());
    }
}
