//! `simdb serve`: a local, read-only web dashboard over a simdb database
//! (feature `serve`).
//!
//! Every page is HTML rendered on the server ([`maud`] escapes every string
//! it interpolates) with a small script of simdb's own that polls the JSON
//! API for live updates; every page has a JSON twin under `/api`, documented
//! in the README. Charts are SVG drawn by plotters and shown as images, so
//! nothing inside a chart can run. Database calls run on tokio's blocking
//! pool, on the connections of the given [`SimulationService`] — open it
//! read-only (as `simdb serve` does) and the dashboard cannot write.

mod agent;
mod api;
mod chart;
mod chart_cache;
mod compare;
mod pages;
mod step;
mod token;

pub use token::AccessToken;

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{Error, Result};
use crate::service::SimulationService;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) svc: SimulationService,
    /// Drawn charts, shared between viewers.
    pub(crate) charts: std::sync::Arc<chart_cache::ChartCache>,
}

/// The dashboard's routes over `svc`, to serve as is or to nest in a host
/// application's own axum router. No access token: for this machine only,
/// or behind the host's own authentication.
pub fn router(svc: SimulationService) -> Router {
    router_with(svc, None)
}

/// As [`router`], every request required to carry `token` when one is
/// given ([`AccessToken`]: `?token=`, then a session cookie, or
/// `Authorization: Bearer`); without it, 401.
pub fn router_with(svc: SimulationService, token: Option<AccessToken>) -> Router {
    let routes = Router::new()
        .route("/", get(pages::index))
        .route("/simulations/{id}", get(pages::simulation))
        .route("/experiments/{id}", get(pages::experiment))
        .route("/simulations/{id}/agents/{agent}", get(agent::page))
        .route("/simulations/{id}/steps", get(step::page))
        .route("/compare", get(compare::page))
        .route("/charts/{id}/{field}", get(chart::chart))
        .route("/charts/{id}/agents/{agent}/{field}", get(agent::chart))
        .route("/charts/{id}/steps/{step}/scatter", get(step::scatter))
        .route("/compare/charts/{field}", get(compare::chart))
        .route("/live.js", get(pages::live_script))
        .route("/api/experiments", get(api::experiments))
        .route("/api/replicas", get(api::replicas))
        .route("/api/simulations", get(api::simulations))
        .route("/api/simulations/{id}", get(api::simulation))
        .route("/api/simulations/{id}/progress", get(api::progress))
        .route("/api/simulations/{id}/aggregates", get(api::aggregates))
        .route("/api/simulations/{id}/agents", get(api::agents))
        .route("/api/simulations/{id}/events", get(api::events))
        .route("/api/experiments/{id}/compare", get(api::compare))
        .route("/api/experiments/{id}/leaderboard", get(api::leaderboard))
        .with_state(AppState {
            svc,
            charts: std::sync::Arc::default(),
        });
    let routes = match token {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(token),
            token::require,
        )),
        None => routes,
    };
    routes.layer(axum::middleware::map_response(security_headers))
}

/// Every response — pages, the API, charts, the script, errors and paths
/// that match no route — says `nosniff` and carries the pages'
/// Content-Security-Policy (a response that sets its own keeps it).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(pages::PAGE_POLICY));
    response
}

/// Serves the dashboard on `addr`, a loopback address, without an access
/// token; see [`serve_with`].
///
/// # Errors
/// As [`serve_with`].
pub fn serve(
    svc: SimulationService,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    serve_with(svc, addr, None, ready)
}

/// Serves the dashboard on `addr` until the process is interrupted
/// (Ctrl-C), every request required to carry `token` if one is given;
/// `ready` is told the bound address first (port 0 picks one).
///
/// # Errors
/// [`Error::InvalidInput`] for an address other machines can reach
/// without a token; [`Error::Io`] if the address cannot be bound or
/// serving fails.
pub fn serve_with(
    svc: SimulationService,
    addr: SocketAddr,
    token: Option<AccessToken>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(Error::invalid(
            "bind",
            format!("{addr} can be reached from other machines: the dashboard needs an access token there"),
        ));
    }
    let io = |e: std::io::Error| Error::Io {
        path: addr.to_string(),
        source: e,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
        ready(listener.local_addr().map_err(io)?);
        axum::serve(listener, router_with(svc, token))
            .with_graceful_shutdown(async {
                // No signal handler means no graceful stop: serve until killed.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await
            .map_err(io)
    })
}

/// An error as an HTTP response: 404 for what does not exist, 400 for bad
/// input, 500 otherwise; the text is simdb's message (which never holds a
/// password).
pub(crate) struct Failure(pub(crate) Error);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.0.to_string()).into_response()
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(e)
    }
}

/// Runs a database call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::result::Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Failure),
        Err(e) => Err(Failure(Error::InvalidInput {
            field: "request",
            reason: format!("the handler stopped: {e}"),
        })),
    }
}
