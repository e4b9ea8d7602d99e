//! The request metrics: `idp_http_requests_total` (method, route, status) and
//! `idp_http_request_duration_seconds` (method, route), recorded by one service around
//! the whole router.
//!
//! The route label is the pattern a request matched (`/assets/{*path}`), never its raw
//! path, so that what clients send cannot create series. Inside the router axum says
//! which pattern matched (`MatchedPath`), but only to a layer of the router, which axum
//! puts around every route: per request that is one more boxed service and future, and
//! the labelled lookups cost as much again (together about a seventh of what `/jwks`
//! cost; see README, *Benchmarks*). So the patterns the router was given (collected by
//! [`crate::web::Routes`]) are matched here again, by the same matcher axum uses
//! (`matchit`), and each route's series are looked up once and kept.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::http::{Method, Request, Response, StatusCode};
use prometheus::{Histogram, IntCounter};
use tower::{Layer, Service};

use super::Metrics;

/// Label of requests that matched no route (a scanner's guesses all land here).
const UNMATCHED: &str = "unmatched";

/// The methods labelled by name; any other (extension methods are free-form tokens)
/// is labelled `other`, so that a client cannot create series with made-up methods.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];
const OTHER_METHOD: &str = "other";
/// The named methods and `other`.
const METHOD_LABELS: usize = METHODS.len() + 1;

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHODS.len())
}

fn method_label(index: usize) -> &'static str {
    METHODS.get(index).map_or(OTHER_METHOD, Method::as_str)
}

/// The route patterns of the router, matched as axum matches them.
struct RoutePatterns {
    matcher: matchit::Router<usize>,
    /// Index → pattern; one past the last is [`UNMATCHED`].
    patterns: Vec<&'static str>,
}

impl RoutePatterns {
    /// `patterns` as given to the router (axum has already refused malformed ones; a
    /// pattern given twice, for two methods, is one route).
    fn new(patterns: &[&'static str]) -> RoutePatterns {
        let mut matcher = matchit::Router::new();
        let mut kept = Vec::with_capacity(patterns.len());
        for &pattern in patterns {
            if kept.contains(&pattern) {
                continue;
            }
            match matcher.insert(pattern, kept.len()) {
                Ok(()) => kept.push(pattern),
                // Cannot happen for a pattern axum's own matcher took; labelled
                // `unmatched` rather than failing the server.
                Err(e) => tracing::error!(pattern, error = %e, "metrics: route not labelled"),
            }
        }
        RoutePatterns {
            matcher,
            patterns: kept,
        }
    }

    /// The index of the route `path` matches, or of [`UNMATCHED`].
    fn index(&self, path: &str) -> usize {
        self.matcher
            .at(path)
            .map_or(self.patterns.len(), |m| *m.value)
    }

    fn label(&self, index: usize) -> &'static str {
        self.patterns.get(index).copied().unwrap_or(UNMATCHED)
    }

    /// The routes and [`UNMATCHED`].
    fn len(&self) -> usize {
        self.patterns.len() + 1
    }
}

/// The series of one route and method, looked up in the registry when first used.
#[derive(Default)]
struct Series {
    latency: OnceLock<Histogram>,
    /// Few statuses per route and method: a short list read far more than written.
    by_status: RwLock<Vec<(StatusCode, IntCounter)>>,
}

/// Records each request under its route and method.
struct Recorder {
    metrics: Metrics,
    routes: RoutePatterns,
    /// Route-major: `route * METHOD_LABELS + method`.
    series: Box<[Series]>,
}

impl Recorder {
    fn new(metrics: Metrics, patterns: &[&'static str]) -> Recorder {
        let routes = RoutePatterns::new(patterns);
        let series = (0..routes.len() * METHOD_LABELS)
            .map(|_| Series::default())
            .collect();
        Recorder {
            metrics,
            routes,
            series,
        }
    }

    /// Where a request's figures go.
    fn slot(&self, method: &Method, path: &str) -> usize {
        self.routes.index(path) * METHOD_LABELS + method_index(method)
    }

    fn labels(&self, slot: usize) -> (&'static str, &'static str) {
        (
            method_label(slot % METHOD_LABELS),
            self.routes.label(slot / METHOD_LABELS),
        )
    }

    fn record(&self, slot: usize, status: StatusCode, started: Instant) {
        let Some(series) = self.series.get(slot) else {
            return;
        };
        let (method, route) = self.labels(slot);
        // The router's own 404 is the only answer a request that matched no pattern
        // gets; anything else means a route reached the router without going through
        // `Routes`, and is counted as unmatched.
        debug_assert!(
            route != UNMATCHED || status == StatusCode::NOT_FOUND,
            "a route answered {status} but is not among the metrics' patterns"
        );
        let inner = &self.metrics.inner;
        series
            .latency
            .get_or_init(|| inner.latency.with_label_values(&[method, route]))
            .observe(started.elapsed().as_secs_f64());
        {
            let by_status = series
                .by_status
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((_, counter)) = by_status.iter().find(|(s, _)| *s == status) {
                counter.inc();
                return;
            }
        }
        let counter = inner
            .requests
            .with_label_values(&[method, route, status.as_str()]);
        counter.inc();
        let mut by_status = series
            .by_status
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !by_status.iter().any(|(s, _)| *s == status) {
            by_status.push((status, counter));
        }
    }
}

/// Counts and times every request of the service it wraps, by method and route
/// pattern (`patterns`: those the wrapped router was given).
#[derive(Clone)]
pub struct RequestMetricsLayer {
    recorder: Arc<Recorder>,
}

impl RequestMetricsLayer {
    pub fn new(metrics: Metrics, patterns: &[&'static str]) -> RequestMetricsLayer {
        RequestMetricsLayer {
            recorder: Arc::new(Recorder::new(metrics, patterns)),
        }
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            recorder: Arc::clone(&self.recorder),
        }
    }
}

/// See [`RequestMetricsLayer`].
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    recorder: Arc<Recorder>,
}

impl<S, B, RB> Service<Request<B>> for RequestMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Recording<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Recording<S::Future> {
        let slot = self.recorder.slot(request.method(), request.uri().path());
        let started = Instant::now();
        Recording {
            inner: self.inner.call(request),
            recorder: Arc::clone(&self.recorder),
            slot,
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's answer, recorded when it is ready (the time to the
    /// response's head, as before the body streams).
    pub struct Recording<F> {
        #[pin]
        inner: F,
        recorder: Arc<Recorder>,
        slot: usize,
        started: Instant,
    }
}

impl<F, RB, E> Future for Recording<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            this.recorder
                .record(*this.slot, response.status(), *this.started);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    const PATTERNS: [&str; 4] = ["/jwks", "/assets/{*path}", "/spid/logo/{n}", "/jwks"];

    #[test]
    fn paths_are_labelled_by_the_pattern_they_match() {
        let routes = RoutePatterns::new(&PATTERNS);
        let label = |path| routes.label(routes.index(path));
        assert_eq!(label("/jwks"), "/jwks");
        assert_eq!(label("/assets/site.css"), "/assets/{*path}");
        assert_eq!(label("/assets/vendor/a/b.woff2"), "/assets/{*path}");
        assert_eq!(label("/spid/logo/3"), "/spid/logo/{n}");
        for unmatched in [
            "/",
            "/jwks/",
            "/JWKS",
            "/spid/logo",
            "/spid/logo/3/x",
            "/wp-admin",
        ] {
            assert_eq!(label(unmatched), UNMATCHED, "{unmatched}");
        }
    }

    #[test]
    fn made_up_methods_are_labelled_other() {
        assert_eq!(method_label(method_index(&Method::GET)), "GET");
        assert_eq!(method_label(method_index(&Method::PATCH)), "PATCH");
        let brew = Method::from_bytes(b"BREW").expect("a valid extension method");
        assert_eq!(method_label(method_index(&brew)), OTHER_METHOD);
    }

    /// Requests through the layer around a router, as the server stacks them.
    #[tokio::test]
    async fn requests_are_counted_and_timed_under_their_route() {
        let metrics = Metrics::new();
        let router = Router::new()
            .route("/jwks", get(|| async { "keys" }))
            .route("/assets/{*path}", get(|| async { "asset" }))
            .route("/spid/logo/{n}", get(|| async { "logo" }));
        let app = RequestMetricsLayer::new(metrics.clone(), &PATTERNS).layer(router);
        for (method, path) in [
            ("GET", "/jwks"),
            ("GET", "/jwks"),
            ("POST", "/jwks"),
            ("GET", "/assets/site.css"),
            ("GET", "/assets/fonts/x.woff2"),
            ("GET", "/nothing-here"),
            ("BREW", "/nothing-here"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request");
            app.clone().oneshot(request).await.expect("answer");
        }
        let text = metrics.render();
        for expected in [
            r#"idp_http_requests_total{method="GET",route="/jwks",status="200"} 2"#,
            r#"idp_http_requests_total{method="POST",route="/jwks",status="405"} 1"#,
            r#"idp_http_requests_total{method="GET",route="/assets/{*path}",status="200"} 2"#,
            r#"idp_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"idp_http_requests_total{method="other",route="unmatched",status="404"} 1"#,
            r#"idp_http_request_duration_seconds_count{method="GET",route="/jwks"} 2"#,
            r#"idp_http_request_duration_seconds_count{method="GET",route="/assets/{*path}"} 2"#,
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert!(
            !text.contains("/spid/logo/{n}"),
            "an unused route has no series"
        );
        assert!(!text.contains("site.css") && !text.contains("nothing-here"));
    }

    /// A route that reached the router without going through `Routes` would be counted
    /// as unmatched: the debug builds (the tests) say so loudly.
    #[cfg(debug_assertions)]
    #[tokio::test]
    #[should_panic(expected = "not among the metrics' patterns")]
    async fn a_route_missing_from_the_patterns_fails_the_debug_builds() {
        let router = Router::new().route("/forgotten", get(|| async { "ok" }));
        let app = RequestMetricsLayer::new(Metrics::new(), &["/jwks"]).layer(router);
        let request = Request::get("/forgotten")
            .body(Body::empty())
            .expect("request");
        let _ = app.oneshot(request).await;
    }
}
