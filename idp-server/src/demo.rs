//! `idp-server demo`: the whole federation on localhost with embedded defaults
//! (SQLite file, in-process cache, dev keys, mail outbox page) and one ready account.

use std::path::{Path, PathBuf};

use idp_core::CoreError;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::NewAccount;
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::password::Password;

use crate::state::AppState;

/// The demo's ready account. Development only: the password is printed at start. Its
/// fiscal code is the SPID test IdP's Mario Rossi, so "Entra con SPID" as him signs in
/// to this same account (linked by the fiscal code).
pub const DEMO_USERNAME: &str = "mario.rossi";
pub const DEMO_PASSWORD: &str = "Demo-Scuola-2026!";

/// Creates the demo account on first start, and resets its password on every start so
/// that what is printed always works.
pub async fn seed_account(state: &AppState) -> anyhow::Result<()> {
    let username = Username::parse(DEMO_USERNAME)?;
    let account = match state.store.account_by_username(&username).await? {
        Some(a) => a,
        None => {
            let new = NewAccount {
                kind: AccountKind::Registered,
                fiscal_code: Some(FiscalCode::parse("RSSMRA80A01H501U")?),
                given_name: "Mario".into(),
                family_name: "Rossi".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
                birth_place: Some("Roma".into()),
                sex: Some(Sex::Male),
                personal_email: Some(Email::parse("mario.rossi@example.org")?),
                institutional_email: None,
                username: Some(username),
            };
            match state.directory.create_account(new).await {
                Ok(a) => a,
                Err(CoreError::Conflict(what)) => {
                    anyhow::bail!("demo account: {what} already taken by another account")
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    state
        .directory
        .set_password(&account, Password::new(DEMO_PASSWORD.to_string()))
        .await?;
    Ok(())
}

/// The three services the demo starts next to the IdP, on the ports after its own.
/// idp-server does not link the relying-parties crate (dependencies point one way): it
/// runs its `rp` binary when that sits next to this executable (same target dir).
pub struct DemoService {
    pub id: &'static str,
    pub name: &'static str,
    pub port: u16,
}

/// Development only: the secret the demo registers for its three services.
pub const DEMO_RP_SECRET: &str = "demo-relying-party-secret-not-for-production";

pub fn services(idp_port: u16) -> Vec<DemoService> {
    [
        ("istanze-online", "Istanze OnLine"),
        ("pago-in-rete", "Pago in rete"),
        ("governance", "Portale della governance della formazione"),
    ]
    .into_iter()
    .zip(1u16..)
    .map(|((id, name), offset)| DemoService {
        id,
        name,
        port: idp_port.saturating_add(offset),
    })
    .collect()
}

impl DemoService {
    pub fn base_url(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// The service as a `[[clients]]` seed: its redirect, post-logout and back-channel
    /// URIs, and for Istanze OnLine the service whose enablement the IdP reports.
    pub fn client_seed(&self) -> anyhow::Result<crate::admin::clients::ClientSeed> {
        use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
        let base = self.base_url();
        Ok(crate::admin::clients::ClientSeed {
            id: ClientId::parse(self.id)?,
            name: self.name.into(),
            secret: Some(DEMO_RP_SECRET.into()),
            auth_method: ClientAuthMethod::ClientSecretBasic,
            redirect_uris: vec![format!("{base}/callback")],
            post_logout_redirect_uris: vec![format!("{base}/")],
            backchannel_logout_uri: Some(format!("{base}/backchannel-logout")),
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            jwks: None,
            jwks_file: None,
            service: (self.id == "istanze-online").then(|| self.id.to_string()),
            enablement_uri: (self.id == "istanze-online").then(|| format!("{base}/abilitazione")),
            access_token_format: AccessTokenFormat::Jwt,
        })
    }

    /// Starts the service as a child process, stopped when the handle is dropped.
    pub fn spawn(&self, rp_binary: &Path, issuer: &str) -> std::io::Result<tokio::process::Child> {
        tokio::process::Command::new(rp_binary)
            .args(["--service", self.id, "--issuer", issuer, "--port"])
            .arg(self.port.to_string())
            .env("RP_CLIENT_SECRET", DEMO_RP_SECRET)
            .env("RP_DEV_OUTBOX", "true")
            .kill_on_drop(true)
            .spawn()
    }
}

/// The development keys and certificates (`certs-dev/`): in the current folder when it
/// has one (the root of a clone), else the folder of the source tree this binary was
/// built from, so that the demo starts from any folder of the clone.
pub fn certs_dir() -> PathBuf {
    let here = PathBuf::from("certs-dev");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("certs-dev"))
        .filter(|dir| dir.is_dir())
        .unwrap_or(here)
}

/// The `rp` binary next to this executable, when it was built.
pub fn rp_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let rp = exe.with_file_name(format!("rp{}", std::env::consts::EXE_SUFFIX));
    rp.is_file().then_some(rp)
}

/// The local SPID test IdP (`spid_bridge::test_idp`), run in-process next to the IdP by
/// `idp-server demo` and by the tests. Development only: it signs with the key in
/// `certs-dev/` and lets anyone be any of its test identities.
pub struct SpidTestIdp {
    pub base_url: String,
    listener: tokio::net::TcpListener,
    config: spid_bridge::test_idp::TestIdpConfig,
}

/// The test IdP's logo (development only).
const TEST_IDP_LOGO: &[u8] = include_bytes!("../dev/spid-test-idp-logo.svg");

impl SpidTestIdp {
    /// Binds its port; `base_url` is where browsers reach it.
    pub async fn bind(
        listen: std::net::SocketAddr,
        host: &str,
        certs_dir: &Path,
    ) -> anyhow::Result<SpidTestIdp> {
        use anyhow::Context;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("SPID test IdP: cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        let base_url = format!("http://{host}:{port}");
        let read = |name: &str| {
            let path = certs_dir.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("SPID test IdP: cannot read {}", path.display()))
        };
        let config = spid_bridge::test_idp::TestIdpConfig {
            base_url: base_url.clone(),
            key_pem: read("spid-test-idp.key")?,
            cert_pem: read("spid-test-idp.crt")?,
            sp_metadata_xml: Vec::new(),
        };
        Ok(SpidTestIdp {
            base_url,
            listener,
            config,
        })
    }

    /// Writes the test IdP's metadata to `metadata_file` and turns on `[spid]` in
    /// `config` with development values, the SP key in `certs_dir` and that metadata.
    pub fn configure(
        &self,
        config: &mut crate::config::Config,
        certs_dir: &Path,
        metadata_file: &Path,
    ) -> anyhow::Result<()> {
        let xml = spid_bridge::test_idp::metadata_xml(&self.config)
            .map_err(|e| anyhow::anyhow!("SPID test IdP metadata: {e}"))?;
        std::fs::write(metadata_file, &xml)?;
        // Its logo in the chooser, served by the IdP like a production IdP's logo file.
        let entity_id = spid_bridge::IdpRegistry::from_metadata_xml(&[xml])
            .map_err(|e| anyhow::anyhow!("SPID test IdP metadata: {e}"))?
            .all()
            .first()
            .map(|idp| idp.entity_id.clone())
            .ok_or_else(|| anyhow::anyhow!("SPID test IdP metadata names no identity provider"))?;
        let logo = metadata_file.with_file_name("spid-test-idp-logo.svg");
        std::fs::write(&logo, TEST_IDP_LOGO)?;
        let spid = &mut config.spid;
        spid.idp_logos = [(entity_id, logo)].into_iter().collect();
        spid.enabled = true;
        spid.key = certs_dir.join("spid-sp.key");
        spid.cert = certs_dir.join("spid-sp.crt");
        spid.ipa_code = "m_pi".into();
        spid.organization_name = "Ministero dell'Istruzione e del Merito".into();
        spid.organization_display_name = "Ministero dell'Istruzione e del Merito".into();
        spid.organization_url = "https://www.mim.gov.it".into();
        spid.contact_email = "spid-sviluppo@example.it".into();
        spid.idp_metadata = vec![metadata_file.to_path_buf()];
        Ok(())
    }

    /// Serves the test IdP for the SP of `state` until the process ends.
    pub fn serve(mut self, state: &AppState) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let spid = state
            .spid
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("SPID is not enabled"))?;
        self.config.sp_metadata_xml = vec![spid.sp.metadata_xml().to_string()];
        let router = spid_bridge::test_idp::router(self.config)
            .map_err(|e| anyhow::anyhow!("SPID test IdP: {e}"))?;
        let listener = self.listener;
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "SPID test IdP stopped");
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dev_certificates_are_found_outside_the_root_of_the_clone() {
        // `cargo test` runs in idp-server/, which has no certs-dev/ of its own.
        let dir = super::certs_dir();
        assert!(dir.join("spid-test-idp.key").is_file(), "{}", dir.display());
        assert!(dir.join("spid-sp.crt").is_file(), "{}", dir.display());
    }
}
