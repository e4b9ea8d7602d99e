//! `/metrics`: after a refused and a successful sign-in, a token request and a mail,
//! the Prometheus exposition counts each of them, and requests by matched route.

use idp_core::account::Email;
use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
use idp_core::mail::OutgoingMail;
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, TestIdp};

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const PASSWORD: &str = "Scuola-2026!Test";

fn backend_client() -> ClientSeed {
    ClientSeed {
        id: ClientId::parse("governance").expect("client id"),
        name: "Portale della governance della formazione".into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::ClientCredentials],
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

async fn scrape(idp: &TestIdp) -> String {
    let r = reqwest::get(idp.url("/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    r.text().await.expect("body")
}

/// The value of one series (`name{labels}`) in an exposition, 0 when absent.
fn value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_tokens_mail_and_routes_are_counted() {
    let idp = TestIdp::start(Backend::Embedded, vec![backend_client()]).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();

    let before = scrape(&idp).await;
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    let refused = browser
        .sign_in(&idp, &login, "anna.bianchi", "Wrong-password-1!")
        .await;
    assert_eq!(refused.status, 200, "the login page again");
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    browser
        .sign_in(&idp, &login, "anna.bianchi", PASSWORD)
        .await;

    let token = reqwest::Client::new()
        .post(idp.url("/token"))
        .basic_auth("governance", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 200);

    idp.state
        .mailer
        .send(OutgoingMail {
            to: Email::parse("anna.bianchi@example.org").unwrap(),
            subject: "Prova".into(),
            body_text: "Prova".into(),
            attachments: vec![],
        })
        .await
        .expect("kept in the outbox");
    let _ = reqwest::get(idp.url("/no/such/page")).await.expect("GET");

    let m = scrape(&idp).await;
    // The two sign-ins are one argon2 verification each, and their CPU time is counted.
    let hashes = "idp_password_hashes_total";
    assert_eq!(value(&m, hashes) - value(&before, hashes), 2.0, "{m}");
    let cpu = "idp_password_hash_cpu_seconds_total";
    assert!(value(&m, cpu) > value(&before, cpu), "{m}");
    assert_eq!(
        value(
            &m,
            r#"idp_logins_total{method="password",outcome="success"}"#
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            r#"idp_logins_total{method="password",outcome="invalid_credentials"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&m, r#"idp_tokens_issued_total{grant="client_credentials"}"#),
        1.0
    );
    assert_eq!(value(&m, r#"idp_emails_total{outcome="sent"}"#), 1.0);
    assert_eq!(
        value(
            &m,
            r#"idp_http_requests_total{method="POST",route="/login",status="200"}"#
        ),
        1.0,
        "the refused sign-in answered the page"
    );
    assert_eq!(
        value(
            &m,
            r#"idp_http_requests_total{method="POST",route="/token",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"idp_http_request_duration_seconds_count{method="POST",route="/token"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"idp_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        1.0,
        "unknown paths share one series"
    );
    assert!(!m.contains("/no/such/page"));
    idp.stop().await;
}

/// In production mode `/metrics` says whether the instance is subscribed to the
/// announcements of revocation marks (1 once its listener is up); the embedded default
/// has no such listener and no such series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revocation_listener_is_watched_in_production() {
    const SERIES: &str = "idp_revocation_marks_listening";
    let idp = TestIdp::start(Backend::Production, vec![backend_client()]).await;
    idp_tests::eventually(
        "the revocation-mark listener is up",
        std::time::Duration::from_secs(5),
        || async { value(&scrape(&idp).await, SERIES) == 1.0 },
    )
    .await;
    idp.stop().await;
    let embedded = TestIdp::start(Backend::Embedded, vec![backend_client()]).await;
    assert!(!scrape(&embedded).await.contains(SERIES));
    embedded.stop().await;
}
