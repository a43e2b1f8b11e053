//! The auth filter: bearer API keys (`Authorization: Bearer sk_...`), HTTP basic auth with
//! the owner as user name and the key as password (the Jetstream style), or the key alone in
//! Stand's `X-Auth-Token` header or the GridLAB-D Workflow Service's `Workflow-API-Key`
//! header (its PIPELINES_CLIENT / PIPELINES_WORKER keys are the `client` / `worker` roles),
//! or the web console's sign-in cookie ([`COOKIE`], HttpOnly, SameSite=Strict). A request
//! that carries only the cookie and changes something (any method but GET, HEAD) must also
//! carry [`CSRF_HEADER`] with [`csrf_token`] of its key, which only the console's own pages
//! know, and an `Origin`, if any, of this server: no other site can act with a signed-in
//! browser. With auth off every caller is the local admin.

use base64::Engine;
use sha2::Digest;
use warp::{Filter, Rejection};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::http::errors::Denied;

/// The web console's sign-in cookie: the API key itself, HttpOnly and SameSite=Strict.
pub const COOKIE: &str = "sluice_key";

/// The header a cookie-signed request that changes something must carry: [`csrf_token`].
pub const CSRF_HEADER: &str = "x-sluice-csrf";

/// The CSRF token of a signed-in key: a hash of it, put in the console's pages (never the
/// key itself, which stays in the HttpOnly cookie).
pub fn csrf_token(key: &str) -> String {
    let digest = sha2::Sha256::digest(format!("sluice-csrf\0{key}"));
    hex::encode(&digest[..16])
}

/// Where a request's key came from.
enum Credential {
    /// A header the client set itself (bearer, basic, X-Auth-Token, Workflow-API-Key).
    Header(String, Option<String>),
    /// The console's cookie, which a browser sends by itself.
    Cookie(String),
}

/// The credential of a request: its headers first, then the cookie.
fn credential(
    header: Option<String>,
    token: Option<String>,
    cookie: Option<String>,
) -> Option<Credential> {
    match (header, token, cookie) {
        (Some(h), _, _) => parse(&h).map(|(k, u)| Credential::Header(k, u)),
        (None, Some(t), _) => Some(Credential::Header(t.trim().to_string(), None)),
        (None, None, Some(c)) if !c.is_empty() => Some(Credential::Cookie(c)),
        _ => None,
    }
}

/// Refuses a cookie-signed request that changes something without the page's CSRF token,
/// or from another origin.
fn cookie_guard(
    key: &str,
    method: &warp::http::Method,
    csrf: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(), Rejection> {
    if matches!(*method, warp::http::Method::GET | warp::http::Method::HEAD) {
        return Ok(());
    }
    let same_origin = match (origin, host) {
        (None, _) => true,
        (Some(o), Some(h)) => o.split_once("://").is_some_and(|(_, rest)| rest == h),
        (Some(_), None) => false,
    };
    if same_origin && csrf == Some(csrf_token(key).as_str()) {
        return Ok(());
    }
    Err(warp::reject::custom(Denied::Forbidden(format!(
        "a request signed by the console's cookie must come from the console's own page \
         (same origin, with its {CSRF_HEADER} header)"
    ))))
}

/// Extracts the calling [`Account`] or rejects with 401.
pub fn account(broker: Broker) -> impl Filter<Extract = (Account,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("x-auth-token"))
        .and(warp::header::optional::<String>("workflow-api-key"))
        .and(warp::cookie::optional::<String>(COOKIE))
        .and(warp::method())
        .and(warp::header::optional::<String>(CSRF_HEADER))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and_then(
            move |header: Option<String>,
                  token: Option<String>,
                  workflow: Option<String>,
                  cookie: Option<String>,
                  method: warp::http::Method,
                  csrf: Option<String>,
                  origin: Option<String>,
                  host: Option<String>| {
                let broker = broker.clone();
                async move {
                    if !broker.config().auth {
                        return Ok(Account::local());
                    }
                    let (key, user) = match credential(header, token.or(workflow), cookie) {
                        Some(Credential::Header(k, u)) => (k, u),
                        Some(Credential::Cookie(k)) => {
                            cookie_guard(
                                &k,
                                &method,
                                csrf.as_deref(),
                                origin.as_deref(),
                                host.as_deref(),
                            )?;
                            (k, None)
                        }
                        None => return Err(warp::reject::custom(Denied::Unauthenticated)),
                    };
                    match broker.key_account(&key).await.map_err(Rejection::from)? {
                        Some(acct) if user.as_deref().is_none_or(|u| u == acct.owner) => Ok(acct),
                        _ => Err(warp::reject::custom(Denied::Unauthenticated)),
                    }
                }
            },
        )
}

/// The key (and, for basic auth, the user name) in an Authorization header.
fn parse(header: &str) -> Option<(String, Option<String>)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some((rest.trim().to_string(), None));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        return Some((pass.to_string(), Some(user.to_string())));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_bearer_and_basic() {
        assert_eq!(parse("Bearer sk_1"), Some(("sk_1".into(), None)));
        // "ana:sk_2"
        assert_eq!(
            parse("Basic YW5hOnNrXzI="),
            Some(("sk_2".into(), Some("ana".into())))
        );
        assert_eq!(parse("Basic !!!"), None);
        assert_eq!(parse("Token x"), None);
        assert_eq!(parse(""), None);
    }
}
