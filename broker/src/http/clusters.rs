//! `/clusters`: Stand's cluster records. Anyone with a key reads them (Stand's
//! `GET /clusters/{id}` answers the record itself); admins write and delete them.

use bytes::Bytes;
use serde_json::json;
use warp::{Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::clusters::Cluster;
use crate::error::Error;
use crate::http::access::admin;
use crate::http::parse_body;

fn cluster_id(raw: &str) -> Result<u64, Error> {
    raw.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::Invalid(format!(
            "cluster id must be a positive integer, got {raw:?}"
        ))
    })
}

/// `GET /clusters`.
#[utoipa::path(get, path = "/clusters", tag = "clusters",
    responses((status = 200, description = "Every cluster record, by id", body = Object)))]
pub async fn list(b: Broker, _who: Account) -> Result<warp::reply::Response, Rejection> {
    Ok(warp::reply::json(&json!({"data": b.clusters().await?})).into_response())
}

/// `GET /clusters/{id}`: the record, as Stand answered it.
#[utoipa::path(get, path = "/clusters/{id}", tag = "clusters",
    params(("id" = u64, Path, description = "Cluster id")),
    responses((status = 200, description = "The cluster", body = Cluster),
              (status = 404, description = "No such cluster", body = crate::http::openapi::ErrorBody)))]
pub async fn get(
    raw: String,
    b: Broker,
    _who: Account,
) -> Result<warp::reply::Response, Rejection> {
    let id = cluster_id(&raw)?;
    Ok(warp::reply::json(&b.cluster(id).await?).into_response())
}

/// `PUT /clusters/{id}`: creates or replaces the record (admin).
#[utoipa::path(put, path = "/clusters/{id}", tag = "clusters", request_body = Cluster,
    params(("id" = u64, Path, description = "Cluster id")),
    responses((status = 200, description = "Replaced", body = Cluster),
              (status = 201, description = "Created", body = Cluster),
              (status = 400, description = "Bad record", body = crate::http::openapi::ErrorBody),
              (status = 403, description = "Not an admin", body = crate::http::openapi::ErrorBody)))]
pub async fn put(
    raw: String,
    b: Broker,
    who: Account,
    body: Bytes,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "clusters")?;
    let id = cluster_id(&raw)?;
    let mut cluster: Cluster = parse_body(&body)?;
    if cluster.id != 0 && cluster.id != id {
        return Err(
            Error::Invalid(format!("body id {} differs from path id {id}", cluster.id)).into(),
        );
    }
    cluster.id = id;
    let created = b.put_cluster(&cluster).await?;
    let stored = b.cluster(id).await?;
    let status = if created {
        warp::http::StatusCode::CREATED
    } else {
        warp::http::StatusCode::OK
    };
    Ok(warp::reply::with_status(warp::reply::json(&stored), status).into_response())
}

/// `DELETE /clusters/{id}` (admin).
#[utoipa::path(delete, path = "/clusters/{id}", tag = "clusters",
    params(("id" = u64, Path, description = "Cluster id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such cluster", body = crate::http::openapi::ErrorBody)))]
pub async fn delete(
    raw: String,
    b: Broker,
    who: Account,
) -> Result<warp::reply::Response, Rejection> {
    admin(&who, "clusters")?;
    b.remove_cluster(cluster_id(&raw)?).await?;
    Ok(warp::http::StatusCode::NO_CONTENT.into_response())
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // clusters list
        warp::path!("clusters")
            .and(warp::get())
            .and(c.caller())
            .and_then(list)
            .boxed(),
        // cluster get
        warp::path!("clusters" / String)
            .and(warp::get())
            .and(c.caller())
            .and_then(get)
            .boxed(),
        // cluster put
        warp::path!("clusters" / String)
            .and(warp::put())
            .and(c.caller())
            .and(c.json_body())
            .and_then(put)
            .boxed(),
        // cluster delete
        warp::path!("clusters" / String)
            .and(warp::delete())
            .and(c.caller())
            .and_then(delete)
            .boxed(),
    ]
}
