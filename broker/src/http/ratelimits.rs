//! `/rate-limits`: executor kinds' rate limits (read by any key, set by admins), the same as
//! `sluice rate-limit`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::http::access::admin;
use crate::http::parse_body;
use crate::job::Rate;

/// Body of `PUT /rate-limits/{executor}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    /// "N/period": at most N job starts of the kind in any window of that length ("100/1s",
    /// "5/1m"; N 1-100 000, period 1 ms-1 day).
    pub limit: String,
}

/// `GET /rate-limits`.
#[utoipa::path(get, path = "/rate-limits", tag = "rate limits",
    responses((status = 200, description = "Every kind's limit and its starts in the current window", body = Object),
              (status = 401, description = "No valid key", body = crate::http::openapi::ErrorBody)))]
pub async fn list(b: Broker, _who: Account) -> Result<warp::reply::Response, Rejection> {
    Ok(warp::reply::json(&json!({"rate_limits": b.rate_limits().await?})).into_response())
}

/// `PUT /rate-limits/{executor}`.
#[utoipa::path(put, path = "/rate-limits/{executor}", tag = "rate limits", request_body = RateLimitBody,
    params(("executor" = String, Path, description = "Executor kind")),
    responses((status = 200, description = "Set", body = Object),
              (status = 400, description = "Bad limit or kind", body = crate::http::openapi::ErrorBody),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody)))]
pub async fn put(
    executor: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "rate limits")?;
    let req: RateLimitBody = parse_body(&body)?;
    let rate: Rate = req.limit.parse()?;
    b.set_rate_limit(&executor, Some(rate)).await?;
    Ok(warp::reply::json(&json!({"executor": executor, "limit": rate.human()})).into_response())
}

/// `DELETE /rate-limits/{executor}`.
#[utoipa::path(delete, path = "/rate-limits/{executor}", tag = "rate limits",
    params(("executor" = String, Path, description = "Executor kind")),
    responses((status = 200, description = "Lifted", body = Object),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody),
              (status = 404, description = "The kind has no limit", body = crate::http::openapi::ErrorBody)))]
pub async fn delete(
    executor: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "rate limits")?;
    if !b.set_rate_limit(&executor, None).await? {
        return Ok(crate::http::errors::reply(
            warp::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("{executor:?} has no rate limit"),
        ));
    }
    Ok(warp::reply::json(&json!({"executor": executor, "status": "lifted"})).into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // rate limits list
        warp::path!("rate-limits")
            .and(warp::get())
            .and(c.caller())
            .and_then(list)
            .boxed(),
        // rate limit put
        warp::path!("rate-limits" / String)
            .and(warp::put())
            .and(c.caller())
            .and(c.json_body())
            .and_then(put)
            .boxed(),
        // rate limit delete
        warp::path!("rate-limits" / String)
            .and(warp::delete())
            .and(c.caller())
            .and_then(delete)
            .boxed(),
    ]
}
