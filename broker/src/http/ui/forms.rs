//! The submit form: one field per property of the kind's params schema (published by its
//! executors, `crate::schemas`), with the schema's rules as the browser's own constraints
//! (required, min, max, pattern, a select for an enum), so most mistakes are shown at their
//! field before anything is sent; the API checks the same schema and its 400 names the
//! field, which the page shows there too. A command kind's form is per action: the action's
//! branch of the kind's schema.

use askama::Template;
use serde::Deserialize;
use serde_json::Value;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::{error_page, html, sign_in_first, Chrome, Session};
use crate::client::Broker;
use crate::error::Error;

/// One input of the form.
pub(super) struct Field {
    pub(super) name: String,
    /// text, number, select, checkbox or json (a textarea).
    pub(super) kind: &'static str,
    /// The JSON type the value is sent as: string, integer, number, boolean, json.
    pub(super) json_type: &'static str,
    pub(super) required: bool,
    pub(super) description: String,
    pub(super) options: Vec<String>,
    pub(super) min: String,
    pub(super) max: String,
    pub(super) pattern: String,
    pub(super) placeholder: String,
}

#[derive(Template)]
#[template(path = "ui/submit.html")]
struct SubmitPage {
    c: Chrome,
    kinds: Vec<String>,
    executor: String,
    actions: Vec<String>,
    action: String,
    fields: Vec<Field>,
    /// No schema: one JSON textarea for the whole params.
    raw: bool,
}

#[derive(Debug, Default, Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    executor: String,
    #[serde(default)]
    action: String,
}

/// The action names of a command kind's schema (`properties.action.enum`).
fn actions(schema: &Value) -> Vec<String> {
    schema["properties"]["action"]["enum"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The branch of `schema` for `action` (`allOf[].if.properties.action.const == action`).
fn action_branch<'a>(schema: &'a Value, action: &str) -> Option<&'a Value> {
    schema["allOf"].as_array()?.iter().find_map(|b| {
        (b["if"]["properties"]["action"]["const"].as_str() == Some(action)).then(|| &b["then"])
    })
}

fn number_text(v: &Value) -> String {
    v.as_f64().map(|n| n.to_string()).unwrap_or_default()
}

/// The form's fields for an object schema's properties, required ones first.
pub(super) fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out: Vec<Field> = schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .filter(|(name, _)| name.as_str() != "action")
                .map(|(name, p)| field(name, p, required.contains(&name.as_str())))
                .collect()
        })
        .unwrap_or_default();
    for name in &required {
        if *name != "action" && !out.iter().any(|f| f.name == *name) {
            out.push(field(name, &Value::Null, true));
        }
    }
    out.sort_by_key(|f| !f.required);
    out
}

fn field(name: &str, p: &Value, required: bool) -> Field {
    let ty = p["type"].as_str().unwrap_or("");
    let options: Vec<String> = p["enum"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect()
        })
        .unwrap_or_default();
    let (kind, json_type) = match ty {
        _ if !options.is_empty() => (
            "select",
            if ty == "string" || ty.is_empty() {
                "string"
            } else {
                "json"
            },
        ),
        "string" => ("text", "string"),
        "integer" => ("number", "integer"),
        "number" => ("number", "number"),
        "boolean" => ("checkbox", "boolean"),
        _ => ("json", "json"),
    };
    let example = p.get("default").or_else(|| p["examples"].get(0));
    Field {
        name: name.to_string(),
        kind,
        json_type,
        required,
        description: p["description"].as_str().unwrap_or("").to_string(),
        options,
        min: number_text(&p["minimum"]),
        max: number_text(&p["maximum"]),
        pattern: p["pattern"].as_str().unwrap_or("").to_string(),
        placeholder: example
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .unwrap_or_default(),
    }
}

async fn submit_form(
    b: Broker,
    s: Session,
    q: SubmitQuery,
) -> Result<warp::reply::Response, Rejection> {
    let Some((_who, c)) = s else {
        return Ok(sign_in_first());
    };
    let found = async {
        let mut kinds = b.kinds().await?;
        kinds.extend(b.schemas().await?.into_keys());
        kinds.sort();
        kinds.dedup();
        let schema = if q.executor.is_empty() {
            None
        } else {
            crate::keys::validate_executor(&q.executor)?;
            b.schema(&q.executor).await?
        };
        Ok::<_, Error>((kinds, schema))
    }
    .await;
    let (kinds, schema) = match found {
        Ok(v) => v,
        Err(e) => return Ok(error_page(c, &e)),
    };
    let actions = schema.as_ref().map(actions).unwrap_or_default();
    let fields = match (&schema, actions.is_empty()) {
        (Some(s), true) => fields(s),
        (Some(s), false) => action_branch(s, &q.action).map(fields).unwrap_or_default(),
        (None, _) => Vec::new(),
    };
    let page = SubmitPage {
        c,
        kinds,
        raw: schema.is_none() && !q.executor.is_empty(),
        executor: q.executor,
        action: if actions.is_empty() {
            String::new()
        } else {
            q.action
        },
        actions,
        fields,
    };
    Ok(html(&page, StatusCode::OK))
}

/// The form's route.
pub(super) fn routes(session: BoxedFilter<(Broker, Session)>) -> Vec<crate::http::Route> {
    vec![warp::path!("ui" / "submit")
        .and(warp::get())
        .and(session)
        .and(warp::query::<SubmitQuery>())
        .and_then(submit_form)
        .boxed()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_schema_becomes_constrained_fields_required_first() {
        let schema = json!({
            "type": "object",
            "required": ["n"],
            "properties": {
                "mode": {"enum": ["fast", "exact"]},
                "n": {"type": "integer", "minimum": 1, "maximum": 9, "description": "how many"},
                "tags": {"type": "array"},
                "action": {"const": "x"}
            }
        });
        let f = super::fields(&schema);
        assert_eq!(f[0].name, "n");
        assert_eq!(
            (f[0].kind, f[0].json_type, f[0].required),
            ("number", "integer", true)
        );
        assert_eq!((f[0].min.as_str(), f[0].max.as_str()), ("1", "9"));
        let mode = f.iter().find(|f| f.name == "mode").expect("a mode field");
        assert_eq!((mode.kind, mode.options.len()), ("select", 2));
        assert_eq!(
            f.iter()
                .find(|f| f.name == "tags")
                .expect("a tags field")
                .kind,
            "json"
        );
        assert!(f.iter().all(|f| f.name != "action"));
    }

    #[test]
    fn a_command_schema_gives_one_actions_branch() {
        let schema = json!({
            "properties": {"action": {"enum": ["a", "b"]}},
            "allOf": [
                {"if": {"properties": {"action": {"const": "a"}}}, "then": {"required": ["x"]}},
                {"if": {"properties": {"action": {"const": "b"}}}, "then": {"required": ["y"]}}
            ]
        });
        assert_eq!(super::actions(&schema), ["a", "b"]);
        let b = super::action_branch(&schema, "b").expect("the branch of b");
        assert_eq!(super::fields(b)[0].name, "y");
        assert!(super::action_branch(&schema, "z").is_none());
    }
}
