//! The web console under `/ui/`: server-rendered pages (askama templates in
//! `broker/templates/ui`, compiled in) with a little plain JavaScript
//! (`broker/assets/ui/app.js`) that follows jobs live over the same API any client uses.
//!
//! Sign-in stores the API key in an HttpOnly, SameSite=Strict cookie ([`auth::COOKIE`]);
//! every page reads as that key's account, and every button calls the native API with it
//! (the auth filter accepts the cookie, with the page's CSRF token for anything that
//! changes something), so the console can do exactly what the key can do through the API.
//! With auth off the console opens as the local admin, under a banner saying so.
//!
//! - this file: routes, sign-in and sign-out, the compiled-in assets;
//! - `pages.rs`: overview, jobs, job, workflows; `graph.rs`: a workflow drawn as SVG;
//! - `forms.rs`: the submit form, one field per property of the kind's params schema;
//! - `records.rs`: pipelines and their runs, schedules, Stand's clusters.

mod forms;
mod graph;
mod pages;
mod records;

use askama::Template;
use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::apikeys::Account;
use crate::client::Broker;
use crate::error::Error;
use crate::http::auth::{csrf_token, COOKIE};

/// How long a sign-in lasts in the browser (the key itself may be revoked any time).
const SESSION_SECS: u64 = 12 * 3600;

/// Largest sign-in or sign-out form.
const FORM_LIMIT: u64 = 4096;

/// What every page's frame shows: who is signed in, and the CSRF token its scripts send.
pub struct Chrome {
    /// The account's owner name.
    pub owner: String,
    /// Its role, as a word.
    pub role: String,
    /// An admin sees the admin parts (executors, Redis, every owner's jobs).
    pub admin: bool,
    /// Auth is off: everyone is the local admin (a banner says so).
    pub auth_off: bool,
    /// The CSRF token of the signed-in key ("" with auth off).
    pub csrf: String,
}

/// The account a page is for: the cookie's key (None: not signed in), or the local admin
/// with auth off.
async fn session(b: &Broker, cookie: Option<String>) -> Result<Option<(Account, Chrome)>, Error> {
    let chrome = |who: &Account, csrf: String| Chrome {
        owner: who.owner.clone(),
        role: who.role.to_string(),
        admin: who.role == crate::apikeys::Role::Admin,
        auth_off: !b.config().auth,
        csrf,
    };
    if !b.config().auth {
        let who = Account::local();
        let c = chrome(&who, String::new());
        return Ok(Some((who, c)));
    }
    let Some(key) = cookie.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    Ok(b.key_account(&key).await?.map(|who| {
        let c = chrome(&who, csrf_token(&key));
        (who, c)
    }))
}

/// A 303 to `to`.
fn see_other(to: &str) -> warp::reply::Response {
    warp::reply::with_header(
        warp::reply::with_status(warp::reply::reply(), StatusCode::SEE_OTHER),
        header::LOCATION,
        to,
    )
    .into_response()
}

/// A rendered page (or the error page when rendering failed).
fn html<T: Template>(page: &T, status: StatusCode) -> warp::reply::Response {
    match page.render() {
        Ok(body) => warp::reply::with_status(warp::reply::html(body), status).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            warp::reply::with_status(
                warp::reply::html("<p>The page could not be drawn; see the server log.</p>"),
                StatusCode::INTERNAL_SERVER_ERROR,
            )
            .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct Login {
    error: Option<String>,
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

#[derive(Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

/// The Set-Cookie of a sign-in (`key`), or of a sign-out (empty, expired).
fn cookie(key: &str, max_age: u64) -> String {
    format!("{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// `POST /ui/login`: a known key gets its cookie and goes to the overview; anything else
/// sees the form again with why.
async fn sign_in(b: Broker, form: SignIn) -> Result<warp::reply::Response, Rejection> {
    let key = form.key.trim();
    let known = !key.is_empty()
        && key.len() <= 256
        && key.chars().all(|c| c.is_ascii_graphic())
        && b.key_account(key).await?.is_some();
    if !known {
        let page = Login {
            error: Some("That key is not known here (or was revoked).".into()),
        };
        return Ok(html(&page, StatusCode::UNAUTHORIZED));
    }
    let to = see_other("/ui/");
    Ok(warp::reply::with_header(to, header::SET_COOKIE, cookie(key, SESSION_SECS)).into_response())
}

/// `POST /ui/logout`: forgets the cookie (only from the console's own form: its CSRF token).
async fn sign_out(
    cookie_key: Option<String>,
    form: SignOut,
) -> Result<warp::reply::Response, Rejection> {
    let ok = cookie_key.is_some_and(|k| csrf_token(&k) == form.csrf);
    if !ok {
        return Err(warp::reject::custom(
            crate::http::errors::Denied::Forbidden("sign out from the console's own page".into()),
        ));
    }
    let to = see_other("/ui/login");
    Ok(warp::reply::with_header(to, header::SET_COOKIE, cookie("", 0)).into_response())
}

/// A compiled-in asset.
fn asset(body: &'static str, mime: &'static str) -> warp::reply::Response {
    let r = warp::reply::with_header(body, header::CONTENT_TYPE, mime);
    warp::reply::with_header(r, header::CACHE_CONTROL, "no-cache").into_response()
}

/// `GET /` from a browser (Accept: text/html) goes to the console; anything else (wumai's
/// `POST /`, API clients) is not matched here.
fn root_redirect() -> crate::http::Route {
    warp::path::end()
        .and(warp::get())
        .and(warp::header::<String>("accept"))
        .and_then(|accept: String| async move {
            if accept.contains("text/html") {
                Ok(see_other("/ui/"))
            } else {
                Err(warp::reject::not_found())
            }
        })
        .boxed()
}

/// A small url-encoded form body.
fn form<T: serde::de::DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(FORM_LIMIT).and(warp::body::form())
}

/// A page handler's inputs: the broker and the session (None: not signed in).
type Session = Option<(Account, Chrome)>;

fn with_session(c: &crate::http::Ctx) -> warp::filters::BoxedFilter<(Broker, Session)> {
    c.broker()
        .and(warp::cookie::optional::<String>(COOKIE))
        .and_then(|b: Broker, cookie: Option<String>| async move {
            let s = session(&b, cookie).await.map_err(Rejection::from)?;
            Ok::<_, Rejection>((b, s))
        })
        .untuple_one()
        .boxed()
}

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(c: &crate::http::Ctx) -> Vec<crate::http::Route> {
    let mut all = vec![
        root_redirect(),
        warp::path!("ui" / "assets" / "app.css")
            .and(warp::get())
            .map(|| {
                asset(
                    include_str!("../../../assets/ui/app.css"),
                    "text/css; charset=utf-8",
                )
            })
            .boxed(),
        warp::path!("ui" / "assets" / "app.js")
            .and(warp::get())
            .map(|| {
                asset(
                    include_str!("../../../assets/ui/app.js"),
                    "text/javascript; charset=utf-8",
                )
            })
            .boxed(),
        warp::path!("ui" / "login")
            .and(warp::get())
            .map(|| html(&Login { error: None }, StatusCode::OK))
            .boxed(),
        warp::path!("ui" / "login")
            .and(warp::post())
            .and(c.broker())
            .and(form::<SignIn>())
            .and_then(sign_in)
            .boxed(),
        warp::path!("ui" / "logout")
            .and(warp::post())
            .and(warp::cookie::optional::<String>(COOKIE))
            .and(form::<SignOut>())
            .and_then(sign_out)
            .boxed(),
    ];
    all.extend(pages::routes(with_session(c)));
    all.extend(forms::routes(with_session(c)));
    all.extend(records::routes(with_session(c)));
    all
}

/// Not signed in: to the sign-in page.
fn sign_in_first() -> warp::reply::Response {
    see_other("/ui/login")
}

/// An error as a page: the API's message and status, in the console's frame.
fn error_page(chrome: Chrome, e: &Error) -> warp::reply::Response {
    let body = crate::http::errors::body(e);
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("error")
        .to_string();
    html(
        &pages::Problem { c: chrome, message },
        crate::http::errors::status(e),
    )
}
