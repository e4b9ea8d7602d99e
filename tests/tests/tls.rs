//! TLS terminated by the server itself: a client that trusts the development
//! certificate reaches `/healthz` over https and is told to stay on https (HSTS); a
//! plain-http server sends no HSTS.

use idp_server::config::TlsConfig;
use idp_tests::harness::{Backend, TestIdp};

fn certs_dev(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../certs-dev")
        .join(file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_certificate_gets_health_over_https_with_hsts() {
    let idp = TestIdp::start_with(Backend::Embedded, vec![], |c| {
        c.server.public_url = format!("https://localhost:{}", c.server.listen.port());
        c.server.tls = Some(TlsConfig {
            cert: certs_dev("tls-dev.crt"),
            key: certs_dev("tls-dev.key"),
        });
    })
    .await;
    let pem = std::fs::read(certs_dev("tls-dev.crt")).expect("certificate");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .resolve("localhost", idp.addr)
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/healthz", idp.addr.port());
    let r = client.get(&url).send().await.expect("https GET");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(r.text().await.expect("body"), "ok");

    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::new();
    assert!(untrusting.get(&url).send().await.is_err());
    // Plain http on the TLS port gets no answer.
    let plain = format!("http://127.0.0.1:{}/healthz", idp.addr.port());
    assert!(
        reqwest::get(&plain)
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );
    idp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_sends_no_hsts() {
    let idp = TestIdp::start(Backend::Embedded, vec![]).await;
    let r = reqwest::get(idp.url("/healthz")).await.expect("GET");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("strict-transport-security").is_none());
    idp.stop().await;
}
