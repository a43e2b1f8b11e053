//! The OpenAPI 3 document of the native API, generated from the handlers' annotations and the
//! types they exchange (utoipa), served at `/openapi.json`; `/apidocs` is a small page that
//! renders it without fetching anything from the internet.

use serde::Serialize;
use utoipa::OpenApi;
use warp::Reply;

use crate::job::{JobId, Status};

/// `{id, status}`: the answer to a submit or an action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Moved {
    /// The job.
    pub id: JobId,
    /// Its status after the request.
    pub status: Status,
}

/// `{"error": {"code", "message"}}`: every failure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: bad_request, unauthorized, forbidden, not_found, illegal_transition,
    /// locked, stale_lease, payload_too_large, unavailable, internal, ...
    pub code: String,
    /// For people.
    pub message: String,
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// ok, unavailable, or degraded (fewer replicas than `min_replicas_ack`: writes answer 503).
    pub status: String,
    /// ok, or why Redis cannot be reached.
    pub redis: String,
    /// With `min_replicas_ack` set: replicas online now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// With `min_replicas_ack` set: the replicas writes wait for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas_ack: Option<u32>,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice", description = "A Redis-native job broker: the native /jobs API and the faces of the systems it replaces (wumai's POST /, Jetstream's new-run, StableConfigs' /task, the Workflow Service's /v1; Stand's answers share the /jobs paths, chosen by its X-Auth-Token header)."),
    paths(
        crate::http::jobs::submit,
        crate::http::jobs::list,
        crate::http::jobs::get,
        crate::http::jobs::act,
        crate::http::events::follow,
        crate::http::ops::healthz,
        crate::http::ops::metrics,
        openapi_json,
        apidocs,
        crate::http::compat::wumai::post,
        crate::http::compat::wumai::banner,
        crate::http::compat::stableconfigs::task,
        crate::http::compat::stableconfigs::status,
        crate::http::compat::stableconfigs::terminate,
        crate::http::compat::workflow_service::create,
        crate::http::compat::workflow_service::list,
        crate::http::compat::workflow_service::get,
        crate::http::compat::workflow_service::put,
        crate::http::compat::workflow_service::delete,
        crate::http::compat::workflow_service::search,
        crate::http::compat::workflow_service::start_run,
        crate::http::compat::workflow_service::list_runs,
        crate::http::compat::workflow_service::get_run,
        crate::http::compat::workflow_service::delete_run,
        crate::http::compat::workflow_service::put_state,
        crate::http::compat::workflow_service::console,
        crate::http::artifacts::upload,
        crate::http::compat::jetstream::new_run,
        crate::http::schedules::list,
        crate::http::schedules::put,
        crate::http::schedules::delete,
        crate::http::ops::executors,
        crate::http::ratelimits::list,
        crate::http::ratelimits::put,
        crate::http::ratelimits::delete,
        crate::http::artifacts::list,
        crate::http::clusters::list,
        crate::http::clusters::get,
        crate::http::clusters::put,
        crate::http::clusters::delete,
        crate::http::workflows::create,
        crate::http::workflows::get,
        crate::http::workflows::stop,
    ),
    components(schemas(Moved, ErrorBody, crate::ratelimits::KindLimit, ErrorDetail, Health, crate::inputs::Input,
        crate::pipelines::PipelineBody,
        crate::workflows::WorkflowBody, crate::workflows::NodeBody, crate::workflows::OnFailure)),
    modifiers(&BearerAuth, &UniqueOperationIds)
)]
pub struct ApiDoc;

struct BearerAuth;

/// Makes every operationId unique, as OpenAPI requires (client generators name methods and
/// models after it): `<tag>_<handler>`, e.g. `schedules_list`, `rate_limits_list`.
struct UniqueOperationIds;

impl utoipa::Modify for UniqueOperationIds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
            ];
            for op in ops.into_iter().flatten() {
                let tag = op
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .map_or("api".to_string(), |t| t.replace([' ', '-'], "_"));
                if let Some(id) = op.operation_id.as_mut() {
                    *id = format!("{tag}_{id}");
                }
            }
        }
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Result<warp::reply::Response, warp::Rejection> {
    Ok(warp::reply::json(&ApiDoc::openapi()).into_response())
}

/// `GET /apidocs`.
#[utoipa::path(get, path = "/apidocs", tag = "ops", responses((status = 200, description = "A page that renders /openapi.json", content_type = "text/html", body = String)))]
pub async fn apidocs() -> Result<warp::reply::Response, warp::Rejection> {
    Ok(warp::reply::html(APIDOCS).into_response())
}

/// A dependency-free viewer: lists every operation with its parameters, body and responses.
const APIDOCS: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Sluice API</title>
<style>body{font:14px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}
h2{margin-top:2em}code,pre{background:#f4f4f4;padding:0 .3em}pre{padding:.6em;overflow:auto}
.m{display:inline-block;width:4.5em;font-weight:bold}.get{color:#06c}.post{color:#080}</style></head>
<body><h1>Sluice API</h1><p>From <a href="/openapi.json">/openapi.json</a>. Auth: <code>Authorization: Bearer &lt;key&gt;</code> or basic auth.</p>
<div id="ops">loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(doc => {
  const out = [];
  const esc = s => String(s ?? '').replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  for (const [path, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops)) {
    out.push(`<h2><span class="m ${m}">${m.toUpperCase()}</span><code>${esc(path)}</code></h2><p>${esc(op.description || op.summary)}</p>`);
    for (const p of op.parameters || []) out.push(`<div>param <code>${esc(p.name)}</code> (${esc(p.in)}): ${esc(p.description)}</div>`);
    if (op.requestBody) out.push(`<div>body:</div><pre>${esc(JSON.stringify(op.requestBody.content, null, 1))}</pre>`);
    for (const [code, r] of Object.entries(op.responses)) out.push(`<div><b>${esc(code)}</b> ${esc(r.description)}</div>`);
  }
  out.push(`<h2>Schemas</h2><pre>${esc(JSON.stringify(doc.components.schemas, null, 1))}</pre>`);
  document.getElementById('ops').innerHTML = out.join('\n');
});
</script></body></html>"#;

/// This module's routes, in the order they are tried (see [`crate::http::routes`]).
pub fn routes(_: &crate::http::Ctx) -> Vec<crate::http::Route> {
    use warp::Filter;
    vec![
        // openapi
        warp::path!("openapi.json")
            .and(warp::get())
            .and_then(openapi_json)
            .boxed(),
        // apidocs
        warp::path!("apidocs")
            .and(warp::get())
            .and_then(apidocs)
            .boxed(),
    ]
}
