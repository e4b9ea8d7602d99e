//! Two idp-server instances on different ports sharing one PostgreSQL database and one
//! Redis namespace, as behind a load balancer: a session started on one is valid on
//! the other, a refresh token rotated on one is a reuse on the other, a key rotated on
//! one is published and used by both, a lockout on one holds on the other.

use std::time::{Duration, Instant};

use idp_core::keys::SigningAlgorithm;
use idp_tests::harness::{Backend, Browser, TestIdp, query_param};
use idp_tests::registration::text_of;
use idp_tests::{eventually, flows};
use serde_json::Value;

const PASSWORD: &str = "Lavagna-Nuova!2026";

/// Short key timings, so that a rotation is seen within seconds.
fn quick_keys(config: &mut idp_server::config::Config) {
    config.keys.algorithms = vec![SigningAlgorithm::Es256];
    config.keys.default_algorithm = SigningAlgorithm::Es256;
    config.keys.rotation_delay_secs = 3;
    config.keys.reload_interval_secs = 1;
}

async fn pair() -> (TestIdp, TestIdp) {
    let a = TestIdp::start_with(Backend::Production, vec![flows::client()], quick_keys).await;
    let b = TestIdp::start_sharing(&a, vec![flows::client()], quick_keys).await;
    assert_ne!(a.base, b.base);
    (a, b)
}

async fn stop(a: TestIdp, b: TestIdp) {
    b.stop().await;
    a.stop().await;
}

fn refresh(tokens: &Value) -> String {
    tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string()
}

async fn refresh_on(idp: &TestIdp, token: &str) -> (u16, Value) {
    flows::token_request(
        idp,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_on_one_instance_is_valid_on_the_other() {
    let (a, b) = pair().await;
    a.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    // Without a session, prompt=none is refused on B.
    let (page, _) = flows::authorize_in_session(&b, &browser, "&prompt=none").await;
    assert_eq!(
        query_param(&page.url, "error").as_deref(),
        Some("login_required"),
        "{}",
        page.url
    );
    flows::sign_in_for_code(&a, &browser, "anna.bianchi", PASSWORD).await;
    // The session cookie A set is honoured by B: a code without a login page.
    let (page, verifier) = flows::authorize_in_session(&b, &browser, "&prompt=none").await;
    assert!(page.url.starts_with(flows::REDIRECT), "{}", page.url);
    assert_eq!(query_param(&page.url, "error"), None, "{}", page.url);
    let code = query_param(&page.url, "code").expect("a code from B");
    let tokens = flows::exchange(&b, &code, &verifier).await;
    let claims = id_token_claims(&tokens);
    assert_eq!(claims["iss"], b.base.as_str());
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotated_on_one_instance_is_a_reuse_on_the_other() {
    let (a, b) = pair().await;
    a.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let (code, verifier) = flows::sign_in_for_code(&a, &browser, "anna.bianchi", PASSWORD).await;
    let first = refresh(&flows::exchange(&a, &code, &verifier).await);
    let (status, rotated) = refresh_on(&a, &first).await;
    assert_eq!(status, 200, "{rotated}");
    let second = refresh(&rotated);
    // B accepts and rotates what A issued.
    let (status, rotated) = refresh_on(&b, &second).await;
    assert_eq!(status, 200, "{rotated}");
    let third = refresh(&rotated);
    // The token A replaced, presented to B: a reuse, and the whole family is revoked.
    let (status, body) = refresh_on(&b, &first).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let (status, body) = refresh_on(&a, &third).await;
    assert_eq!(status, 400, "the family is revoked on A too: {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
    stop(a, b).await;
}

async fn jwks_kids(idp: &TestIdp) -> Vec<String> {
    let jwks: Value = reqwest::get(idp.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks JSON");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

fn id_token_claims(tokens: &Value) -> Value {
    use base64::Engine as _;
    let token = tokens["id_token"].as_str().expect("id token");
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims JSON")
}

/// The kid an instance signs a new ID token with (a fresh sign-in from its session).
async fn signing_kid(idp: &TestIdp, browser: &Browser) -> String {
    let (page, verifier) = flows::authorize_in_session(idp, browser, "").await;
    let code = query_param(&page.url, "code").expect("a code from the session");
    let tokens = flows::exchange(idp, &code, &verifier).await;
    let token = tokens["id_token"].as_str().expect("id token");
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_one_instance_is_published_and_used_by_both() {
    let (a, b) = pair().await;
    a.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    flows::sign_in_for_code(&a, &browser, "anna.bianchi", PASSWORD).await;
    let old = signing_kid(&a, &browser).await;
    assert_eq!(signing_kid(&b, &browser).await, old);

    // `idp-server keys rotate` against A's configuration (the same database).
    let said = idp_server::admin::keys::rotate(&a.state.config, Some(SigningAlgorithm::Es256))
        .await
        .expect("rotate");
    assert!(said.contains("within 1 s"), "{said}");
    let new = a
        .state
        .store
        .list_keys()
        .await
        .expect("keys")
        .into_iter()
        .find(|k| k.kid != old)
        .expect("the new key")
        .kid;
    // Published by both at once (after one reload), while the old one still signs.
    let rotated_at = Instant::now();
    for idp in [&a, &b] {
        eventually(
            "the new key in the JWKS",
            Duration::from_secs(3),
            || async { jwks_kids(idp).await.contains(&new) },
        )
        .await;
        assert!(jwks_kids(idp).await.contains(&old));
    }
    if rotated_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(signing_kid(&a, &browser).await, old, "not before the delay");
        assert_eq!(signing_kid(&b, &browser).await, old, "not before the delay");
    }
    // After the rotation delay, both sign with it.
    for idp in [&a, &b] {
        eventually(
            "signing with the new key",
            Duration::from_secs(10),
            || async { signing_kid(idp, &browser).await == new },
        )
        .await;
        assert!(jwks_kids(idp).await.contains(&old), "kept for verification");
    }
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_on_one_instance_holds_on_the_other() {
    let (a, b) = pair().await;
    a.account("Anna", "Bianchi", PASSWORD).await;
    // Five wrong passwords, spread over both instances, from separate browsers.
    for (i, idp) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let browser = Browser::new();
        let login = browser.follow(&idp.url("/login"), &idp.base).await;
        let page = browser
            .sign_in(idp, &login, "anna.bianchi", &format!("Sbagliata-{i}!"))
            .await;
        assert!(
            text_of(&page).contains("Username o password non corretti."),
            "{}",
            page.body
        );
    }
    for idp in [&b, &a] {
        let browser = Browser::new();
        let login = browser.follow(&idp.url("/login"), &idp.base).await;
        let page = browser.sign_in(idp, &login, "anna.bianchi", PASSWORD).await;
        assert!(text_of(&page).contains("Troppi tentativi"), "{}", page.body);
    }
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_job_runs_on_one_instance_per_period() {
    use idp_server::jobs::{self, links};
    let (a, b) = pair().await;
    for job in jobs::all() {
        assert!(
            jobs::run_once(&a.state, &job).await.is_some(),
            "{} ran on A",
            job.name
        );
        assert_eq!(
            jobs::run_once(&b.state, &job).await,
            None,
            "{}: B finds A's lease",
            job.name
        );
    }
    assert_eq!(jobs::run_once(&a.state, &links::JOB).await, None);
    stop(a, b).await;
}
