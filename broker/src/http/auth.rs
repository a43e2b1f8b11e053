//! The auth filter: bearer API keys (`Authorization: Bearer sk_...`), HTTP basic auth with
//! the owner as user name and the key as password (the Jetstream style), or the key alone in
//! Stand's `X-Auth-Token` header or the GridLAB-D Workflow Service's `Workflow-API-Key`
//! header (its PIPELINES_CLIENT / PIPELINES_WORKER keys are the `client` / `worker` roles).
//! With auth off every caller is the local admin.

use base64::Engine;
use warp::{Filter, Rejection};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::http::errors::Denied;

/// Extracts the calling [`Account`] or rejects with 401.
pub fn account(broker: Broker) -> impl Filter<Extract = (Account,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("x-auth-token"))
        .and(warp::header::optional::<String>("workflow-api-key"))
        .and_then(
            move |header: Option<String>, token: Option<String>, workflow: Option<String>| {
                let broker = broker.clone();
                async move {
                    if !broker.config().auth {
                        return Ok(Account::local());
                    }
                    let (key, user) = match (header, token.or(workflow)) {
                        (Some(h), _) => parse(&h),
                        (None, Some(t)) => Some((t.trim().to_string(), None)),
                        (None, None) => None,
                    }
                    .ok_or_else(|| warp::reject::custom(Denied::Unauthenticated))?;
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
