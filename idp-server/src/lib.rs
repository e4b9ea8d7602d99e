//! The identity provider's HTTP application: the OIDC endpoints, the web pages, the
//! admin commands and the `demo` that starts the whole federation on localhost.
//! Handlers are thin: they translate HTTP to calls on `idp-core` and back.

pub mod admin;
pub mod config;
pub mod demo;
pub mod dev_outbox;
pub mod error;
pub mod health;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod security_headers;
pub mod spid;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::trace::TraceLayer;

use crate::metrics::{RequestMetrics, RequestMetricsLayer};
use crate::security_headers::{SecurityHeaders, with_security_headers};
use crate::state::AppState;
use crate::web::Routes;

/// The whole application as served: the router inside the request metrics, and around
/// both the security headers of every answer (the router's own 404s and 405s included).
pub type App = SecurityHeaders<RequestMetrics<Router>>;

/// The application: [`router`] inside the request metrics and the security headers.
/// Both wrap the router once, from outside: a layer given to the `Router` itself wraps
/// each of its routes, and costs a boxed service and future per request and layer
/// (moved out, `/jwks` answered 16% more requests per second for the metrics and 2-3%
/// for the headers, and 3% more again for one function over tower's `MapResponse` in
/// place of tower-http's four layers, in alternating runs).
pub fn app(state: AppState) -> App {
    let metrics = state.metrics.clone();
    let (router, patterns) = router(state);
    with_security_headers(RequestMetricsLayer::new(metrics, &patterns).layer(router))
}

/// Every route, with the request deadline, and the patterns of the routes (for the
/// request metrics, which label requests with the route they matched).
fn router(state: AppState) -> (Router, Vec<&'static str>) {
    // What answers from memory only (no store behind it) needs no request deadline,
    // and the busiest of them (discovery, JWKS) are spared its timer.
    let from_memory = Routes::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::serve))
        .route("/assets/{*path}", get(web::serve_asset))
        .merge(oidc::routes_from_memory());
    let mut app = Routes::new()
        .route("/readyz", get(health::readyz))
        .route("/", get(oidc::login::home))
        .merge(oidc::routes())
        .merge(pages::routes())
        .merge(spid::routes());
    if state.config.server.dev_pages {
        app = app
            .route("/dev/outbox", get(dev_outbox::list))
            .route("/dev/outbox.json", get(dev_outbox::list_json))
            .route("/dev/outbox/{id}/{index}", get(dev_outbox::attachment));
    }
    let deadline = std::time::Duration::from_secs(state.config.server.request_timeout_secs);
    let (router, patterns) = app
        .layered(|router| {
            router.layer(axum::middleware::from_fn_with_state(
                deadline,
                web::deadline,
            ))
        })
        .merge(from_memory)
        .into_parts();
    let router = router.fallback(|| async { error::AppError::not_found() });
    // The request and response events of the trace layer are DEBUG: under the usual
    // `info` it would still read the clock and build a span for every request, to log
    // nothing (without it, /jwks answered 9% more requests per second in alternating
    // runs). It is there when `RUST_LOG` (or `[log] level`) shows `tower_http=debug`:
    // the filter is set before the router is built.
    let router = if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        router.layer(TraceLayer::new_for_http())
    } else {
        router
    };
    (router.with_state(state), patterns)
}

/// A server bound to its address, ready to run.
pub struct BoundServer {
    pub local_addr: SocketAddr,
    listener: TcpListener,
    app: App,
    tls: Option<config::TlsConfig>,
}

impl BoundServer {
    pub async fn bind(state: AppState) -> anyhow::Result<BoundServer> {
        let addr = state.config.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("server.listen: cannot listen on {addr}: {e}"))?;
        let local_addr = listener.local_addr()?;
        Ok(BoundServer {
            local_addr,
            listener,
            tls: state.config.server.tls.clone(),
            app: app(state),
        })
    }

    /// A server on a listener the caller already bound (tests bind port 0 first, to
    /// know the issuer URL before the state is built).
    pub fn from_listener(state: AppState, listener: TcpListener) -> BoundServer {
        BoundServer {
            local_addr: listener.local_addr().unwrap_or(state.config.server.listen),
            listener,
            tls: state.config.server.tls.clone(),
            app: app(state),
        }
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        if let Some(tls) = &self.tls {
            return tls::serve(self.listener, self.app, tls, shutdown).await;
        }
        axum::serve(self.listener, with_peer_address(self.app))
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// `service` as it is served, each request carrying the peer's address, which feeds the
/// abuse limits (see `pages::ClientIp`).
pub(crate) fn with_peer_address<S>(service: S) -> IntoMakeServiceWithConnectInfo<S, SocketAddr>
where
    S: tower::Service<axum::extract::Request>,
{
    axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info(service)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
