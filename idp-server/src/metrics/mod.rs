//! Prometheus metrics, served at `/metrics`: requests and latency by matched route,
//! sign-ins by method and outcome, tokens by grant, mail sent and failed, SAML
//! rejections by reason, and what password hashing has cost (argon2 computations and
//! their CPU time). One registry per `AppState` (no global recorder), so two servers in
//! one process (the tests) keep their own counts.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idp_core::cache::RedisCache;
use idp_core::mail::{Mailer, OutgoingMail};
use idp_core::password::PasswordHasher;
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::state::AppState;

mod http;

pub use http::{RequestMetrics, RequestMetricsLayer};

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    logins: IntCounterVec,
    tokens: IntCounterVec,
    emails: IntCounterVec,
    mail_queued: IntGauge,
    saml_rejections: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

/// `metric`, registered in `registry` (a handle to the same series).
fn registered<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("idp".into()), None).expect("registry");
        let requests = counter(
            &registry,
            "http_requests_total",
            "HTTP requests by method, matched route and status.",
            &["method", "route", "status"],
        );
        let latency = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time to answer an HTTP request, by method and matched route.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["method", "route"],
            )
            .expect("valid metric definition"),
        );
        let logins = counter(
            &registry,
            "logins_total",
            "Sign-in attempts by method (password, spid) and outcome.",
            &["method", "outcome"],
        );
        let tokens = counter(
            &registry,
            "tokens_issued_total",
            "Token responses issued by the token endpoint, by grant type.",
            &["grant"],
        );
        let emails = counter(
            &registry,
            "emails_total",
            "Outgoing mail by outcome: sent; failed (one delivery attempt, retried later); \
             abandoned (given up after the last attempt).",
            &["outcome"],
        );
        let mail_queued = registered(
            &registry,
            IntGauge::new(
                "mail_queued",
                "Mails waiting in the shared queue (the same value on every instance).",
            )
            .expect("valid metric definition"),
        );
        let saml_rejections = counter(
            &registry,
            "saml_rejections_total",
            "SAML responses refused by the SPID bridge, by reason.",
            &["reason"],
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                logins,
                tokens,
                emails,
                mail_queued,
                saml_rejections,
            }),
        }
    }

    /// A sign-in attempt: `method` is `password` or `spid`; `outcome` a short word
    /// (`success`, `invalid_credentials`, …).
    pub fn login(&self, method: &str, outcome: &str) {
        self.inner
            .logins
            .with_label_values(&[method, outcome])
            .inc();
    }

    pub fn token_issued(&self, grant: &str) {
        self.inner.tokens.with_label_values(&[grant]).inc();
    }

    /// For the SPID bridge: a SAML response refused, with a short stable reason
    /// (`signature`, `replay`, `audience`, `expired`, …).
    pub fn saml_rejected(&self, reason: &str) {
        self.inner
            .saml_rejections
            .with_label_values(&[reason])
            .inc();
    }

    fn email(&self, outcome: &str) {
        self.inner.emails.with_label_values(&[outcome]).inc();
    }

    /// A queued mail given up on after its last attempt.
    pub fn email_abandoned(&self) {
        self.email("abandoned");
    }

    pub fn set_mail_queued(&self, n: i64) {
        self.inner.mail_queued.set(n);
    }

    /// Exposes what `hasher` (and its clones: the one the directory signs in with) has
    /// spent on argon2, read at each scrape. Call once per registry.
    pub fn count_password_hashing(&self, hasher: Arc<PasswordHasher>) {
        if let Err(e) = self
            .inner
            .registry
            .register(Box::new(HashingCollector::new(hasher)))
        {
            tracing::error!(error = %e, "metrics: cannot count password hashing");
        }
    }

    /// Exposes whether `redis` is subscribed to the announcements of revocation marks
    /// (`idp_revocation_marks_listening`, read at each scrape): 0 means every
    /// introspection and userinfo call asks Redis, slower but never wrong. Call once
    /// per registry, in production mode.
    pub fn watch_revocation_listener(&self, redis: RedisCache) {
        if let Err(e) = self
            .inner
            .registry
            .register(Box::new(ListenerCollector::new(redis)))
        {
            tracing::error!(error = %e, "metrics: cannot watch the revocation-mark listener");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `idp_password_hashes_total` and `idp_password_hash_cpu_seconds_total`: the argon2
/// computations of the password hasher and the CPU time of the threads that ran them.
/// Beside the process's own CPU time (`process_cpu_seconds_total` from the node, or
/// `/proc`), it says how much of a login storm is the hash itself.
struct HashingCollector {
    hasher: Arc<PasswordHasher>,
    computations: Opts,
    cpu: Opts,
    descs: Vec<Desc>,
}

impl HashingCollector {
    fn new(hasher: Arc<PasswordHasher>) -> Self {
        let computations = Opts::new(
            "password_hashes_total",
            "Argon2 computations: password hashes, verifications, and the verifications \
             made for unknown usernames so that timing tells nothing.",
        );
        let cpu = Opts::new(
            "password_hash_cpu_seconds_total",
            "CPU time of the threads while they computed argon2.",
        );
        let descs = [&computations, &cpu]
            .into_iter()
            .filter_map(|o| o.describe().ok())
            .collect();
        Self {
            hasher,
            computations,
            cpu,
            descs,
        }
    }
}

impl Collector for HashingCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let work = self.hasher.work_done();
        let mut families = Vec::with_capacity(2);
        if let Ok(c) = IntCounter::with_opts(self.computations.clone()) {
            c.inc_by(work.computations);
            families.extend(c.collect());
        }
        if let Ok(c) = Counter::with_opts(self.cpu.clone()) {
            c.inc_by(work.cpu.as_secs_f64());
            families.extend(c.collect());
        }
        families
    }
}

/// `idp_revocation_marks_listening`: 1 while the Redis cache is subscribed to the
/// announcements of new revocation marks (and so remembers the keys it found unmarked),
/// 0 while it is not.
struct ListenerCollector {
    redis: RedisCache,
    opts: Opts,
    descs: Vec<Desc>,
}

impl ListenerCollector {
    fn new(redis: RedisCache) -> Self {
        let opts = Opts::new(
            "revocation_marks_listening",
            "1 while this instance is subscribed to the announcements of new revocation \
             marks in Redis; 0 while every revocation check asks Redis.",
        );
        let descs = opts.describe().into_iter().collect();
        Self { redis, opts, descs }
    }
}

impl Collector for ListenerCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match IntGauge::with_opts(self.opts.clone()) {
            Ok(g) => {
                g.set(i64::from(self.redis.is_listening_for_marks()));
                g.collect()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> Response {
    let mut r = (StatusCode::OK, state.metrics.render()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A `Mailer` that counts what the wrapped one sent and failed to send.
pub struct CountingMailer {
    inner: Arc<dyn Mailer>,
    metrics: Metrics,
}

impl CountingMailer {
    pub fn new(inner: Arc<dyn Mailer>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Mailer for CountingMailer {
    async fn send(&self, mail: OutgoingMail) -> idp_core::Result<()> {
        let result = self.inner.send(mail).await;
        self.metrics
            .email(if result.is_ok() { "sent" } else { "failed" });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.login("password", "success");
        m.token_issued("authorization_code");
        m.saml_rejected("signature");
        let text = m.render();
        assert!(text.contains(r#"idp_logins_total{method="password",outcome="success"} 1"#));
        assert!(text.contains(r#"idp_tokens_issued_total{grant="authorization_code"} 1"#));
        assert!(text.contains(r#"idp_saml_rejections_total{reason="signature"} 1"#));
    }

    #[test]
    fn given_up_mail_and_the_queue_length_appear_in_the_exposition() {
        let m = Metrics::new();
        m.email_abandoned();
        m.set_mail_queued(7);
        let text = m.render();
        assert!(text.contains(r#"idp_emails_total{outcome="abandoned"} 1"#));
        assert!(text.contains("idp_mail_queued 7"));
    }
}
