//! The connection loop of `sluice serve`: hyper's HTTP/1 server around the warp routes, with
//! the bounds warp's own `serve` leaves out.
//!
//! - A request's header must arrive whole within `header_timeout` (a socket that sends
//!   half a header, or idles between keep-alive requests, is closed).
//! - A request body may pause at most `body_timeout` between two reads.
//! - Bodies read whole into memory (JSON) share one budget of `max_content_length` bytes: a
//!   request with a large Content-Length waits for room (at most [`BUDGET_WAIT`], then 503),
//!   so that many concurrent large bodies are parsed one after another and memory stays
//!   near what one costs. Small bodies (under [`SMALL_BODY`]) never wait; artifact uploads
//!   (streamed to the store) are not counted.
//! - Graceful shutdown: no new connections; requests in flight finish.
//! - The client's address is in the request's extensions as [`ClientAddr`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutBody;
use tower_service::Service;
use warp::filters::BoxedFilter;

/// How long a large body waits for room in the shared budget before a 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(20);

/// Bodies below this many bytes do not count against the budget.
pub const SMALL_BODY: u64 = 64 * 1024;

/// The client's socket address, for filters: `warp::ext::get::<ClientAddr>()`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The budget of bytes held by bodies in flight, counted in KiB permits.
#[derive(Clone)]
struct Budget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    fn new(max_content_length: u64) -> Budget {
        let total_kib = u32::try_from(max_content_length.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        Budget {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Room for a body of `len` bytes, or None when none came within [`BUDGET_WAIT`].
    /// A body larger than the whole budget is refused later by its route (413); it takes
    /// the whole budget meanwhile.
    async fn reserve(&self, len: u64) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        if len < SMALL_BODY {
            return Some(None);
        }
        let kib = u32::try_from(len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        let permit = self.permits.clone().acquire_many_owned(kib);
        match tokio::time::timeout(BUDGET_WAIT, permit).await {
            Ok(Ok(p)) => Some(Some(p)),
            _ => None,
        }
    }
}

/// The bytes a request will hold in memory: its Content-Length, but nothing for an artifact
/// upload or a multipart submit (streamed to the store, never held whole; a multipart body's
/// request part is capped at [`crate::http::uploads::REQUEST_PART_LIMIT`]).
fn content_length(req: &http::Request<Incoming>) -> u64 {
    let multipart = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::http::uploads::is_multipart);
    if multipart || req.uri().path().contains("/artifacts/") {
        return 0;
    }
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Serves `filter` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the connections in flight to finish their requests.
pub async fn serve<R: warp::Reply + 'static>(
    listener: TcpListener,
    filter: BoxedFilter<(R,)>,
    config: &crate::config::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let budget = Budget::new(config.max_content_length);
    let (header_timeout, body_timeout) = (config.header_timeout, config.body_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, as hyper did.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let routes = warp::service(filter.clone());
        let budget = budget.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let mut routes = routes.clone();
            let budget = budget.clone();
            async move {
                req.extensions_mut().insert(ClientAddr(addr));
                let Some(_held) = budget.reserve(content_length(&req)).await else {
                    return Ok::<_, Infallible>(crate::http::errors::reply(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "too many large request bodies in flight; try again",
                    ));
                };
                let req = req.map(|body| TimeoutBody::new(body_timeout, body));
                routes.call(req).await
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %addr, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
