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
pub mod spid;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::util::MapResponseLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    // What answers from memory only (no store behind it) needs no request deadline,
    // and the busiest of them (discovery, JWKS) are spared its timer.
    let from_memory = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::serve))
        .route("/assets/{*path}", get(web::serve_asset))
        .merge(oidc::routes_from_memory());
    let mut app = Router::new()
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
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(state.config.server.request_timeout_secs),
            web::deadline,
        ))
        .merge(from_memory)
        .fallback(|| async { error::AppError::not_found() })
        .layer(MapResponseLayer::new({
            let hsts = tls::hsts(state.config.server.tls.as_ref());
            move |response| security_headers(response, hsts.as_ref())
        }));
    // The request and response events of the trace layer are DEBUG: under the usual
    // `info` it would still read the clock and build a span for every request, to log
    // nothing (without it, /jwks answered 9% more requests per second in alternating
    // runs). It is there when `RUST_LOG` (or `[log] level`) shows `tower_http=debug`:
    // the filter is set before the router is built.
    let app = if tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        app.layer(TraceLayer::new_for_http())
    } else {
        app
    };
    // `Router::layer` wraps each route (and the fallback) after matching, so the
    // middleware sees the matched route pattern.
    app.layer(axum::middleware::from_fn_with_state(
        state.metrics.clone(),
        metrics::track,
    ))
    .with_state(state)
}

/// The security headers of every answer, in one pass: the ones a handler set stay, HSTS
/// (when the server speaks TLS) always wins. One layer instead of one per header: every
/// layer is cloned and its future nested into each request's, which showed in profiles
/// of the busiest endpoints (clones, allocations and moves of the nested futures).
fn security_headers(mut response: Response, hsts: Option<&HeaderValue>) -> Response {
    const CSP: &str = "default-src 'self'; img-src 'self' data:; font-src 'self' data:; \
         style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'";
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

/// A server bound to its address, ready to run.
pub struct BoundServer {
    pub local_addr: SocketAddr,
    listener: TcpListener,
    app: Router,
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
            app: router(state),
        })
    }

    /// A server on a listener the caller already bound (tests bind port 0 first, to
    /// know the issuer URL before the state is built).
    pub fn from_listener(state: AppState, listener: TcpListener) -> BoundServer {
        BoundServer {
            local_addr: listener.local_addr().unwrap_or(state.config.server.listen),
            listener,
            tls: state.config.server.tls.clone(),
            app: router(state),
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
        // The peer address feeds the abuse limits (see `pages::ClientIp`).
        let app = self.app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_gets_the_security_headers_and_keeps_its_own() {
        let plain = security_headers(Response::new(axum::body::Body::empty()), None);
        let h = plain.headers();
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            "default-src 'self'; img-src 'self' data:; font-src 'self' data:; \
             style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'"
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_none());

        // A page that sets its own policy (a form posted on to another site) keeps it;
        // HSTS, when the server speaks TLS, replaces whatever was there.
        let mut own = Response::new(axum::body::Body::empty());
        own.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("form-action https://sp.example"),
        );
        own.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=1"),
        );
        let hsts = HeaderValue::from_static("max-age=31536000; includeSubDomains");
        let own = security_headers(own, Some(&hsts));
        assert_eq!(
            own.headers()[header::CONTENT_SECURITY_POLICY],
            "form-action https://sp.example"
        );
        assert_eq!(own.headers()[header::STRICT_TRANSPORT_SECURITY], hsts);
        assert_eq!(own.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
