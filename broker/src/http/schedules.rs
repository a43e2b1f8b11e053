//! `/schedules`: periodic jobs over HTTP (admin only), the same as `sluice schedules`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::http::access::admin;
use crate::http::parse_body;
use crate::schedules::Spec;

/// Body of `PUT /schedules/{name}`: give `cron` or `every`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// Executor kind of the jobs.
    pub executor: String,
    /// Params of the jobs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Value,
    /// Cron expression, UTC ("*/5 * * * *").
    pub cron: Option<String>,
    /// Interval ("30s", "1h").
    pub every: Option<String>,
}

/// `GET /schedules`.
#[utoipa::path(get, path = "/schedules", tag = "schedules",
    responses((status = 200, description = "Every schedule with its next and last tick", body = Object),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody)))]
pub async fn list(b: Broker, who: Account) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "schedules")?;
    Ok(warp::reply::json(&json!({"schedules": b.schedules().await?})).into_response())
}

/// `PUT /schedules/{name}`.
#[utoipa::path(put, path = "/schedules/{name}", tag = "schedules", request_body = ScheduleBody,
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "Added or replaced", body = Object),
              (status = 400, description = "Bad spec", body = crate::http::openapi::ErrorBody),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody)))]
pub async fn put(
    name: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "schedules")?;
    let req: ScheduleBody = parse_body(&body)?;
    let spec = match (req.cron, req.every) {
        (Some(c), None) => Spec::Cron(c),
        (None, Some(e)) => Spec::Every(
            humantime::parse_duration(&e)
                .map_err(|err| Error::Invalid(format!("every: {e:?}: {err}")))?,
        ),
        _ => return Err(Error::Invalid("give exactly one of cron and every".into()).into()),
    };
    b.add_schedule(&name, &req.executor, &req.params, &spec)
        .await?;
    Ok(warp::reply::json(&json!({"name": name, "status": "scheduled"})).into_response())
}

/// `DELETE /schedules/{name}`.
#[utoipa::path(delete, path = "/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "Removed", body = Object),
              (status = 404, description = "No such schedule", body = crate::http::openapi::ErrorBody)))]
pub async fn delete(
    name: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "schedules")?;
    if !b.remove_schedule(&name).await? {
        return Ok(crate::http::errors::reply(
            warp::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no schedule named {name:?}"),
        ));
    }
    Ok(warp::reply::json(&json!({"name": name, "status": "removed"})).into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // schedules list
        warp::path!("schedules")
            .and(warp::get())
            .and(c.caller())
            .and_then(list)
            .boxed(),
        // schedules put
        warp::path!("schedules" / String)
            .and(warp::put())
            .and(c.caller())
            .and(c.json_body())
            .and_then(put)
            .boxed(),
        // schedules delete
        warp::path!("schedules" / String)
            .and(warp::delete())
            .and(c.caller())
            .and_then(delete)
            .boxed(),
    ]
}
