//! TLS for the deployments where the server terminates it itself (`[server.tls]`):
//! rustls through axum-server, with the same graceful shutdown as plain HTTP, and
//! HSTS on every answer. Behind a reverse proxy that terminates TLS, leave it out.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderValue, header};
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeader;

use crate::App;
use crate::config::TlsConfig;

/// One year, the subdomains included: an IdP is never meant to be reached over http.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// How long in-flight requests get to finish once shutdown starts.
const GRACE: Duration = Duration::from_secs(30);

/// `service` with HSTS on every answer, replacing whatever a handler set.
pub(crate) fn with_hsts<S>(service: S) -> SetResponseHeader<S, HeaderValue> {
    SetResponseHeader::overriding(
        service,
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    )
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (up to 30 s). Every answer gets HSTS, replacing whatever a handler set.
pub async fn serve(
    listener: TcpListener,
    app: App,
    tls: &TlsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // ring, as the rest of the workspace uses; a second call finds it installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .with_context(|| {
            format!(
                "server.tls: cannot load {} / {}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(crate::with_peer_address(with_hsts(app)))
        .await?;
    Ok(())
}
