//! The three linked school services (Istanze OnLine, Pago in rete, the governance
//! portal) as real OpenID Connect clients of the IdP. They share one small RP library
//! (`rp`) and talk to the IdP over HTTP only: no dependency on the IdP's crates.

pub mod istanze;
pub mod rp;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use rp::{Rp, RpConfig, router};

/// The three services of the federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    IstanzeOnline,
    PagoInRete,
    Governance,
}

impl Service {
    pub const ALL: [Service; 3] = [
        Service::IstanzeOnline,
        Service::PagoInRete,
        Service::Governance,
    ];

    /// The service name, also its client_id in the demo and the tests.
    pub fn id(self) -> &'static str {
        match self {
            Service::IstanzeOnline => "istanze-online",
            Service::PagoInRete => "pago-in-rete",
            Service::Governance => "governance",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Service::IstanzeOnline => "Istanze OnLine",
            Service::PagoInRete => "Pago in rete",
            Service::Governance => "Portale della governance della formazione",
        }
    }

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.id() == name)
    }

    /// Whether the service needs its own enablement (abilitazione) before use.
    pub fn needs_enablement(self) -> bool {
        self == Service::IstanzeOnline
    }

    /// The configuration of this service as a client of `issuer`, served at `base_url`.
    pub fn config(self, issuer: &str, client_secret: &str, base_url: &str, port: u16) -> RpConfig {
        RpConfig {
            service: self.id().into(),
            display_name: self.display_name().into(),
            issuer: issuer.trim_end_matches('/').into(),
            client_id: self.id().into(),
            client_secret: client_secret.into(),
            base_url: base_url.trim_end_matches('/').into(),
            port,
            istanze: istanze::Settings::default(),
        }
    }
}

/// A relying party serving on its own port; dropping it does not stop it, `stop` does.
pub struct BoundRp {
    pub local_addr: SocketAddr,
    pub base_url: String,
    pub rp: Rp,
    /// Istanze OnLine's own part, for that service only.
    pub istanze: Option<istanze::Istanze>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BoundRp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Stops serving and waits for the server task to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until `signal` completes.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Binds `127.0.0.1:{config.port}`, discovers the IdP and serves the RP's pages.
pub async fn serve(config: RpConfig) -> anyhow::Result<BoundRp> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port)))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot listen on port {}: {e}",
                config.service,
                config.port
            )
        })?;
    serve_on(config, listener).await
}

/// Like `serve`, on a listener bound in advance (tests bind port 0 first so that they
/// know the RP's URLs before the IdP that must register them starts).
pub async fn serve_on(config: RpConfig, listener: TcpListener) -> anyhow::Result<BoundRp> {
    let local_addr = listener.local_addr()?;
    let base_url = config.base_url.clone();
    let istanze_settings = config.istanze.clone();
    let rp = Rp::discover(config).await?;
    let (app, istanze) = if rp.config().service == Service::IstanzeOnline.id() {
        let istanze = istanze::Istanze::open(rp.clone(), &istanze_settings).await?;
        (istanze::router(istanze.clone()), Some(istanze))
    } else {
        (router(rp.clone()), None)
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "relying party stopped");
        }
    });
    Ok(BoundRp {
        local_addr,
        base_url,
        rp,
        istanze,
        shutdown: Some(tx),
        task: Some(task),
    })
}
