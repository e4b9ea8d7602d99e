//! The per-request trace (tower-http's, at DEBUG): logged when the log filter shows
//! `tower_http=debug`, and not even built otherwise (it would read the clock and make a
//! span for every request, to log nothing).

use std::io::Write;
use std::sync::{Arc, Mutex};

use idp_tests::harness::{Backend, TestIdp};
use tracing_subscriber::EnvFilter;

/// What the server logs on this thread under `filter`, while it starts and answers one
/// GET /jwks. The test runs on one thread, so the server's tasks log to this subscriber.
async fn logged_while_serving_jwks(filter: &str) -> String {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(move || Sink(sink.clone()))
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let idp = TestIdp::start(Backend::Embedded, vec![]).await;
    let response = reqwest::get(idp.url("/jwks")).await.expect("GET /jwks");
    assert_eq!(response.status(), 200);
    idp.stop().await;
    let bytes = lines.lock().expect("lock").clone();
    String::from_utf8(bytes).expect("utf-8")
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_is_traced_when_the_filter_shows_tower_http_debug() {
    let logged = logged_while_serving_jwks("info,tower_http=debug").await;
    assert!(
        logged.contains("finished processing request") && logged.contains("/jwks"),
        "{logged}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn requests_are_not_traced_under_info() {
    let logged = logged_while_serving_jwks("info").await;
    assert!(!logged.contains("processing request"), "{logged}");
    assert!(!logged.is_empty(), "the server logs at info all the same");
}
