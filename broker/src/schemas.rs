//! Params schemas: each executor kind publishes the JSON Schema of its jobs' `params` when
//! it starts (the hash `schemas`: kind -> schema text), and every submit path (the native
//! API, bulk and multipart submits, the faces, workflows, the CLI) checks a job's params
//! against its kind's schema before the job reaches Redis, so a bad submit is refused at
//! once, naming the field, instead of failing on an executor later. A kind with no schema
//! takes any params.
//!
//! Refusals are [`Error::Invalid`] whose message lists up to [`MAX_ERRORS`] errors, each
//! `<path>: <what is wrong>`, joined by `"; "`; the path starts at `params` and goes on
//! with `.name` for a key (`["a.b"]` for a key that is not a plain name) and `[i]` for an
//! index: `params.monomers[0]: "x" is not of type "array"`, `params.n: is required`.
//! [`field_errors`] gives the same errors as `(path, message)` pairs, for a form that
//! shows them at its fields.
//!
//! The API compiles a kind's schema once and keeps it for [`CACHE_FOR`] (a kind without a
//! schema too), so a submit costs no Redis round trip; a schema published meanwhile is
//! seen within that time. The last executor of a kind to start publishes its schema: the
//! executors of one kind are expected to run the same config.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use redis::AsyncCommands;
use serde_json::Value;

use crate::client::Broker;
use crate::error::Error;
use crate::keys::validate_executor;

/// Largest schema text a kind may publish.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Most errors a refusal lists.
pub const MAX_ERRORS: usize = 5;
/// Longest message of one error (the validator quotes the value).
const MAX_MESSAGE: usize = 300;
/// Most errors [`field_errors`] returns.
const MAX_FIELD_ERRORS: usize = 100;
/// How long the API keeps a kind's compiled schema (or its absence).
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// Kinds the cache holds before it drops expired entries (then all, if still full).
const CACHE_KINDS: usize = 256;

/// A compiled schema, or None for a kind without one, as of a time.
type Entry = (Instant, Option<Arc<Validator>>);

/// The compiled schemas of the kinds submitted to lately (shared by a Broker's clones).
#[derive(Clone, Default)]
pub(crate) struct Cache(Arc<Mutex<HashMap<String, Entry>>>);

impl Cache {
    /// The cached validator of `kind` (`Some(None)`: known to have no schema), if fresh.
    fn get(&self, kind: &str) -> Option<Option<Arc<Validator>>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(kind)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, kind: &str, validator: Option<Arc<Validator>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_KINDS && !map.contains_key(kind) {
            map.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
            if map.len() >= CACHE_KINDS {
                map.clear();
            }
        }
        map.insert(kind.to_string(), (Instant::now(), validator));
    }
}

/// Checks that `schema` can be published: its text at most [`MAX_SCHEMA_BYTES`], and it
/// compiles (a valid JSON Schema, draft 2020-12 unless its `$schema` names another, with no
/// reference to fetch).
///
/// # Errors
/// [`Error::Invalid`] saying why.
pub fn check_schema(schema: &Value) -> Result<(), Error> {
    compile(schema).map(drop)
}

fn compile(schema: &Value) -> Result<Validator, Error> {
    let size = schema.to_string().len();
    if size > MAX_SCHEMA_BYTES {
        return Err(Error::Invalid(format!(
            "schema: {size} bytes; at most {MAX_SCHEMA_BYTES} (64 KiB)"
        )));
    }
    jsonschema::validator_for(schema)
        .map_err(|e| Error::Invalid(format!("schema does not compile: {e}")))
}

/// The errors of `params` against `schema`, as `(path, message)` pairs (at most 100), in the
/// order the validator finds them; none when the params are valid. A schema that does not
/// compile gives one pair, `("schema", why)`.
pub fn field_errors(schema: &Value, params: &Value) -> Vec<(String, String)> {
    match compile(schema) {
        Ok(v) => errors_of(&v, params, MAX_FIELD_ERRORS),
        Err(Error::Invalid(why)) => vec![("schema".into(), why)],
        Err(e) => vec![("schema".into(), e.to_string())],
    }
}

/// Up to `limit` errors of `params` against `v`, as `(path, message)` pairs.
fn errors_of(v: &Validator, params: &Value, limit: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in v.iter_errors(params) {
        let at = field_path(e.instance_path.as_str(), params);
        match &e.kind {
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), String::from);
                out.push((format!("{at}{}", segment(&name)), "is required".into()));
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    out.push((format!("{at}{}", segment(name)), "is not allowed".into()));
                }
            }
            ValidationErrorKind::FalseSchema => out.push((at, "is not allowed".into())),
            _ => out.push((at, shortened(e.to_string()))),
        }
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}

/// `message` cut to [`MAX_MESSAGE`] bytes: the validator's messages quote the value, which
/// may be a whole model.
fn shortened(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The readable path of a value of `params` from its JSON pointer (`/monomers/0` ->
/// `params.monomers[0]`): `.name` for a key, `["a.b"]` for a key that is not a plain name,
/// `[i]` for an array index.
pub fn field_path(pointer: &str, params: &Value) -> String {
    let mut path = String::from("params");
    let mut at = Some(params);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                let i = seg.parse::<usize>().ok();
                match i {
                    Some(i) => path.push_str(&format!("[{i}]")),
                    None => path.push_str(&segment(&seg)),
                }
                at = i.and_then(|i| items.get(i));
            }
            Some(Value::Object(map)) => {
                path.push_str(&segment(&seg));
                at = map.get(&seg);
            }
            _ => {
                if seg.parse::<usize>().is_ok() {
                    path.push_str(&format!("[{seg}]"));
                } else {
                    path.push_str(&segment(&seg));
                }
                at = None;
            }
        }
    }
    path
}

/// `.name` for a plain name (`[A-Za-z_][A-Za-z0-9_-]*`), else `["the key"]`.
fn segment(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!(".{name}")
    } else {
        format!("[{}]", Value::String(name.to_string()))
    }
}

/// The refusal text of `errors`: at most [`MAX_ERRORS`] `path: message`, joined by "; ".
fn refusal(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .take(MAX_ERRORS)
        .map(|(path, message)| format!("{path}: {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Broker {
    /// Publishes `schema` as the JSON Schema of executor kind `kind`'s params (HSET
    /// `schemas`), replacing the one before; this process' submits see it at once, other
    /// processes' within [`CACHE_FOR`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad kind, a schema that does not compile or whose text is
    /// over [`MAX_SCHEMA_BYTES`]; Redis errors.
    pub async fn publish_schema(&self, kind: &str, schema: &Value) -> Result<(), Error> {
        validate_executor(kind)?;
        let validator = compile(schema).map_err(|e| match e {
            Error::Invalid(why) => Error::Invalid(format!("the params schema of {kind:?}: {why}")),
            e => e,
        })?;
        let mut c = self.conn().await?;
        let () = c
            .hset(self.keys().schemas(), kind, schema.to_string())
            .await?;
        self.schema_cache().put(kind, Some(Arc::new(validator)));
        Ok(())
    }

    /// The params schema kind `kind` published, if any (a stored text that is not JSON
    /// counts as none).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad kind; Redis errors.
    pub async fn schema(&self, kind: &str) -> Result<Option<Value>, Error> {
        validate_executor(kind)?;
        let mut c = self.conn().await?;
        let text: Option<String> = c.hget(self.keys().schemas(), kind).await?;
        Ok(text.and_then(|t| parse_stored(kind, &t)))
    }

    /// Every published params schema, by kind.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn schemas(&self) -> Result<BTreeMap<String, Value>, Error> {
        let mut c = self.conn().await?;
        let all: HashMap<String, String> = c.hgetall(self.keys().schemas()).await?;
        Ok(all
            .into_iter()
            .filter_map(|(kind, t)| parse_stored(&kind, &t).map(|s| (kind, s)))
            .collect())
    }

    /// Checks `params` of a job of kind `kind` against the kind's schema (none: any params
    /// pass). See the module doc for the message.
    ///
    /// # Errors
    /// [`Error::Invalid`] listing what is wrong, each error led by its field's path; Redis
    /// errors when the schema is not cached.
    pub async fn check_params(&self, kind: &str, params: &Value) -> Result<(), Error> {
        let Some(validator) = self.validator(kind).await? else {
            return Ok(());
        };
        let errors = errors_of(&validator, params, MAX_ERRORS);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(refusal(&errors)))
        }
    }

    /// Kind `kind`'s compiled schema, from the cache or Redis (then cached).
    async fn validator(&self, kind: &str) -> Result<Option<Arc<Validator>>, Error> {
        if let Some(hit) = self.schema_cache().get(kind) {
            return Ok(hit);
        }
        let stored = match self.schema(kind).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => return Err(e),
            // Not transient (an ACL from before `schemas` existed: NOPERM): the executor
            // still checks its params; submits must not fail for it.
            Err(e) => {
                tracing::warn!(kind, error = %e, "params schema unreadable; not checked");
                None
            }
        };
        let validator = match stored {
            None => None,
            Some(schema) => match compile(&schema) {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    // Published schemas compile; one written by other means must not block
                    // the kind's submits.
                    tracing::warn!(kind, error = %e, "stored params schema ignored");
                    None
                }
            },
        };
        self.schema_cache().put(kind, validator.clone());
        Ok(validator)
    }
}

fn parse_stored(kind: &str, text: &str) -> Option<Value> {
    serde_json::from_str(text)
        .map_err(|e| tracing::warn!(kind, error = %e, "stored params schema is not JSON"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_as_keys_and_indexes() {
        let p = json!({"monomers": [["a"], "x"], "conf": {"spark.x": 1}, "a/b": {"0": [1]}});
        assert_eq!(field_path("", &p), "params");
        assert_eq!(field_path("/monomers", &p), "params.monomers");
        assert_eq!(field_path("/monomers/1", &p), "params.monomers[1]");
        assert_eq!(field_path("/monomers/0/0", &p), "params.monomers[0][0]");
        assert_eq!(field_path("/conf/spark.x", &p), r#"params.conf["spark.x"]"#);
        assert_eq!(field_path("/a~1b/0/0", &p), r#"params["a/b"]["0"][0]"#);
        assert_eq!(field_path("/missing/3", &p), "params.missing[3]");
        assert_eq!(field_path("/under_score-x", &p), "params.under_score-x");
        assert_eq!(field_path("/~0t", &p), r#"params["~t"]"#);
    }

    #[test]
    fn errors_name_their_fields() {
        let schema = json!({
            "type": "object",
            "required": ["n", "monomers"],
            "additionalProperties": false,
            "properties": {
                "n": {"type": "integer", "minimum": 1},
                "monomers": {"type": "array", "items": {"type": "array"}},
                "conf": {"type": "object", "additionalProperties": {"type": "string"}},
            }
        });
        let errors = field_errors(&schema, &json!({"monomers": [["a"], "x"]}));
        assert!(
            errors.contains(&("params.n".into(), "is required".into())),
            "{errors:?}"
        );
        assert!(
            errors.contains(&(
                "params.monomers[1]".into(),
                r#""x" is not of type "array""#.into()
            )),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        let errors = field_errors(
            &schema,
            &json!({"n": 0, "monomers": [], "extra": 1, "conf": {"a.b": 2}}),
        );
        assert!(
            errors.contains(&("params.extra".into(), "is not allowed".into())),
            "{errors:?}"
        );
        assert!(errors.iter().any(|(p, _)| p == "params.n"), "{errors:?}");
        assert!(
            errors.iter().any(|(p, _)| p == r#"params.conf["a.b"]"#),
            "{errors:?}"
        );
        assert!(field_errors(&schema, &json!({"n": 2, "monomers": [[]]})).is_empty());
        assert_eq!(
            field_errors(&json!({"type": 12}), &json!({}))[0].0,
            "schema",
            "a schema that does not compile"
        );
    }

    #[test]
    fn a_refusal_lists_at_most_five_errors() {
        let schema = json!({"type": "array", "items": {"type": "integer"}});
        let v = compile(&schema).expect("a valid schema");
        let errors = errors_of(&v, &json!(["a", "b", "c", "d", "e", "f", "g"]), MAX_ERRORS);
        let text = refusal(&errors);
        assert!(
            text.starts_with(r#"params[0]: "a" is not of type "integer"; params[1]: "#),
            "{text}"
        );
        assert_eq!(text.matches("; ").count(), 4, "{text}");
        assert!(!text.contains("params[5]"), "{text}");
    }

    #[test]
    fn a_long_value_is_not_quoted_whole() {
        let schema = json!({"properties": {"m": {"type": "integer"}, "x": false}});
        let errors = field_errors(&schema, &json!({"m": "é".repeat(10_000), "x": 1}));
        assert!(
            errors.iter().all(|(_, m)| m.len() <= MAX_MESSAGE + 3),
            "{errors:?}"
        );
        assert!(
            errors.contains(&("params.x".into(), "is not allowed".into())),
            "{errors:?}"
        );
    }

    #[test]
    fn big_or_broken_schemas_are_refused() {
        assert!(check_schema(&json!({"type": "object"})).is_ok());
        assert!(check_schema(&json!({"type": "nope"})).is_err());
        assert!(check_schema(&json!({"$ref": "https://example.com/s.json"})).is_err());
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(check_schema(&big).is_err_and(|e| e.to_string().contains("64 KiB")));
    }
}
