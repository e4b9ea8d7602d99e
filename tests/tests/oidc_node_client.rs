//! A second, independent OpenID Certified client against the IdP, unchanged: panva's
//! `openid-client` (Node) runs `tests/node/flow.mjs`, which does everything a relying
//! party does (discovery, code flow with PKCE S256, ID token checks, userinfo, refresh
//! rotation and reuse detection, introspection, revocation, prompt=none, RP-initiated
//! logout) and verifies the back-channel logout token with `jose`. Runs on the
//! embedded default and on PostgreSQL + Redis.
//!
//! Needs Node 20+ and `npm ci --prefix tests/node` (the test fails, saying so, without).

use std::path::{Path, PathBuf};
use std::time::Duration;

use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, TestIdp};

const CLIENT: &str = "governance-node";
const SECRET: &str = "node-test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:9/signed-out";
const PASSWORD: &str = "Scuola-2026!Node";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// A loopback port free right now, for the relying party's back-channel receiver: the
/// client must be registered with its URI before the IdP starts, and flow.mjs listens
/// on it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn seed(backchannel: String) -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(CLIENT).expect("client id"),
        name: "Servizio di prova (openid-client)".into(),
        secret: Some(SECRET.into()),
        // openid-client's default when given a secret.
        auth_method: ClientAuthMethod::ClientSecretPost,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT.into()],
        backchannel_logout_uri: Some(backchannel),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

async fn openid_client_passes_the_whole_flow(backend: Backend) {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/openid-client/package.json")
            .is_file()
            && dir.join("node_modules/jose/package.json").is_file(),
        "{}/node_modules is missing or incomplete: run `npm ci --prefix tests/node` \
         (Node 20+ and npm are needed) from the workspace root",
        dir.display()
    );
    let port = free_port();
    let idp = TestIdp::start(
        backend,
        vec![seed(format!("http://127.0.0.1:{port}/backchannel-logout"))],
    )
    .await;
    let account = idp.account("Carla", "Verdi", PASSWORD).await;

    let run = tokio::process::Command::new("node")
        .arg(dir.join("flow.mjs"))
        .current_dir(&dir)
        .env("IDP_ISSUER", &idp.base)
        .env("IDP_CLIENT_ID", CLIENT)
        .env("IDP_CLIENT_SECRET", SECRET)
        .env("IDP_REDIRECT_URI", REDIRECT)
        .env("IDP_POST_LOGOUT_URI", POST_LOGOUT)
        .env("IDP_BACKCHANNEL_PORT", port.to_string())
        .env("IDP_USERNAME", account.username.to_string())
        .env("IDP_PASSWORD", PASSWORD)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("flow.mjs finished within 2 minutes")
        .unwrap_or_else(|e| panic!("cannot run `node` (Node 20+ must be on PATH): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    idp.stop().await;
    assert!(
        output.status.success(),
        "flow.mjs failed ({}) on {backend:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("steps passed"),
        "flow.mjs did not finish\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

idp_tests::on_both_backends!(openid_client_passes_the_whole_flow);
