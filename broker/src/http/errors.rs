//! Every failure of the native API becomes `{"error": {"code", "message"}}` with the status
//! from one function, [`status`]. Infrastructure errors are logged and answered generically.

use std::convert::Infallible;

use serde_json::json;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

use crate::error::Error;

/// A broker error carried through warp's rejection path.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl Reject for ApiError {}

/// An auth failure: who is asking is unknown (401) or not allowed (403).
#[derive(Debug)]
pub enum Denied {
    /// No or unknown credentials.
    Unauthenticated,
    /// Known, but not allowed to do this.
    Forbidden(String),
}

impl Reject for Denied {}

/// No or unknown credentials on a face that answers them in its own shape: 401 with this
/// JSON body.
#[derive(Debug)]
pub struct FaceUnauthenticated(pub serde_json::Value);

impl Reject for FaceUnauthenticated {}

/// A body over the limit, found from its Content-Length before reading it.
#[derive(Debug)]
pub struct TooLarge;

impl Reject for TooLarge {}

impl From<Error> for Rejection {
    fn from(e: Error) -> Rejection {
        warp::reject::custom(ApiError(e))
    }
}

/// The status the native API returns for each broker error.
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::NotFound(_) | Error::Missing(_) => StatusCode::NOT_FOUND,
        Error::Cluster(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::IllegalTransition { .. }
        | Error::StaleLease(_)
        | Error::Locked { .. }
        | Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The machine-readable code for each broker error.
fn code(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) | Error::Missing(_) => "not_found",
        Error::Cluster(reason) if reason == "CLUSTER_DISABLED" => "cluster_disabled",
        Error::Cluster(_) => "cluster_not_found",
        Error::IllegalTransition { .. } => "illegal_transition",
        Error::StaleLease(_) => "stale_lease",
        Error::Locked { .. } => "locked",
        Error::Conflict(_) => "idempotency_conflict",
        Error::Invalid(_) => "bad_request",
        Error::Forbidden(_) => "forbidden",
        Error::TooMany(_) => "too_many_requests",
        Error::TooLarge(_) => "too_large",
        e if status(e) == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    }
}

/// The message shown for a broker error (5xx are generic; their detail is logged).
fn message(e: &Error) -> String {
    match status(e) {
        StatusCode::SERVICE_UNAVAILABLE => "redis is unavailable; try again".to_string(),
        StatusCode::INTERNAL_SERVER_ERROR => "internal error (logged)".to_string(),
        _ => e.to_string(),
    }
}

/// The JSON error body for a broker error, as [`from_error`] answers it (for one item of a
/// bulk answer).
pub fn body(e: &Error) -> serde_json::Value {
    json!({"error": {"code": code(e), "message": message(e)}})
}

/// The JSON error reply.
pub fn reply(status: StatusCode, code: &str, message: impl Into<String>) -> warp::reply::Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// The reply for a broker error (5xx are logged; their message is generic).
pub fn from_error(e: &Error) -> warp::reply::Response {
    let s = status(e);
    if s.is_server_error() {
        tracing::error!(error = %e, "request failed");
    }
    reply(s, code(e), message(e))
}

/// The one recover for the native API: turns every rejection into a JSON error.
pub async fn handle_rejection(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(ApiError(e)) = r.find() {
        return Ok(from_error(e));
    }
    if let Some(d) = r.find::<Denied>() {
        return Ok(match d {
            Denied::Unauthenticated => {
                let mut resp = reply(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "a valid API key is required (Authorization: Bearer <key>, or basic auth)",
                );
                resp.headers_mut().insert(
                    "www-authenticate",
                    warp::http::HeaderValue::from_static("Bearer, Basic realm=\"sluice\""),
                );
                resp
            }
            Denied::Forbidden(why) => reply(StatusCode::FORBIDDEN, "forbidden", why.clone()),
        });
    }
    if let Some(FaceUnauthenticated(body)) = r.find() {
        return Ok(
            warp::reply::with_status(warp::reply::json(body), StatusCode::UNAUTHORIZED)
                .into_response(),
        );
    }
    if r.is_not_found() {
        return Ok(reply(StatusCode::NOT_FOUND, "not_found", "no such route"));
    }
    if r.find::<warp::reject::PayloadTooLarge>().is_some() || r.find::<TooLarge>().is_some() {
        return Ok(reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is over the configured limit (max_content_length)",
        ));
    }
    if r.find::<warp::reject::LengthRequired>().is_some() {
        return Ok(reply(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        ));
    }
    // Before the method check: the route with this method matched and its query did not
    // (the other methods' routes of the path reject with 405 meanwhile).
    if let Some(e) = r.find::<warp::reject::InvalidQuery>() {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("bad query string: {e}"),
        ));
    }
    if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        ));
    }
    if let Some(e) = r.find::<warp::reject::InvalidHeader>() {
        return Ok(reply(StatusCode::BAD_REQUEST, "bad_request", e.to_string()));
    }
    if let Some(e) = r.find::<warp::reject::MissingHeader>() {
        return Ok(reply(StatusCode::BAD_REQUEST, "bad_request", e.to_string()));
    }
    if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        return Ok(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON",
        ));
    }
    tracing::error!(rejection = ?r, "unhandled rejection");
    Ok(reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (logged)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, Status};

    #[test]
    fn statuses_per_error() {
        let id = JobId(1);
        assert_eq!(status(&Error::NotFound(id)), StatusCode::NOT_FOUND);
        let illegal = Error::IllegalTransition {
            id,
            status: Status::Completed,
            action: "stop",
        };
        assert_eq!(status(&illegal), StatusCode::CONFLICT);
        assert_eq!(
            status(&Error::Locked { id, holder: None }),
            StatusCode::CONFLICT
        );
        assert_eq!(status(&Error::StaleLease(id)), StatusCode::CONFLICT);
        assert_eq!(status(&Error::Invalid("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(&Error::Unavailable("down".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(&Error::Codec("x".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
