//! `idp-server demo`: the whole federation on localhost with embedded defaults
//! (SQLite file, in-process cache, dev keys, mail outbox page) and one ready account.

use std::path::{Path, PathBuf};

use idp_core::CoreError;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::NewAccount;
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::password::Password;

use crate::state::AppState;

/// The demo's ready account. Development only: the password is printed at start.
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
                fiscal_code: Some(FiscalCode::parse("RSSMRA85T10A562S")?),
                given_name: "Mario".into(),
                family_name: "Rossi".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10),
                birth_place: Some("San Giuliano Terme".into()),
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
        use idp_core::client::{ClientAuthMethod, ClientId, GrantType};
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

/// The `rp` binary next to this executable, when it was built.
pub fn rp_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let rp = exe.with_file_name(format!("rp{}", std::env::consts::EXE_SUFFIX));
    rp.is_file().then_some(rp)
}
