//! The security headers of every answer, the router's own 404s and 405s included: a
//! content security policy, `nosniff`, no referrer, no framing. A header the handler set
//! stays (a page that posts a form on to another site sets its own policy).
//!
//! One function over the answer (tower's `MapResponse`) sets the four, rather than four
//! of tower-http's `SetResponseHeader`: those are a layer, a clone and a future each per
//! request, and on `/jwks`, where the rest of a request is little more than hyper and
//! the kernel, the four were about 3% of the server's CPU (profile; README,
//! *Benchmarks*).

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower::util::MapResponse;

/// The content security policy of every page that does not set its own: everything
/// from this origin, nothing inline, no frames.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; font-src 'self' data:; \
     style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Each header, set when the answer has none of that name.
const HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
];

/// `S` with the security headers on its answers.
pub type SecurityHeaders<S> = MapResponse<S, fn(Response) -> Response>;

/// `service` with the security headers on its answers.
pub fn with_security_headers<S>(service: S) -> SecurityHeaders<S> {
    MapResponse::new(service, secure as fn(Response) -> Response)
}

/// Sets each of [`HEADERS`] that `response` lacks.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls;
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tower::ServiceExt;

    /// The headers of the answer to `path`, served over TLS (with HSTS) or not.
    async fn headers_of(path: &str, over_tls: bool) -> axum::http::HeaderMap {
        // A page with nothing of its own, and one that sets its own policy (a form
        // posted on to another site) and its own HSTS; any other path is the router's
        // own 404.
        let router = Router::new().route("/plain", get(|| async { "ok" })).route(
            "/own",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_SECURITY_POLICY,
                            "form-action https://sp.example",
                        ),
                        (header::STRICT_TRANSPORT_SECURITY, "max-age=1"),
                    ],
                    "ok",
                )
                    .into_response()
            }),
        );
        let request = Request::get(path).body(Body::empty()).expect("request");
        let app = with_security_headers(router);
        let response = if over_tls {
            tls::with_hsts(app).oneshot(request).await
        } else {
            app.oneshot(request).await
        };
        response.expect("answer").headers().clone()
    }

    #[tokio::test]
    async fn every_answer_gets_the_security_headers_and_keeps_its_own() {
        for path in ["/plain", "/missing"] {
            let h = headers_of(path, false).await;
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{path}");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{path}");
            assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_none(), "{path}");
        }
        // Over TLS, HSTS replaces whatever the handler set; the page's own policy stays.
        let own = headers_of("/own", true).await;
        assert_eq!(
            own[header::CONTENT_SECURITY_POLICY],
            "form-action https://sp.example"
        );
        assert_eq!(
            own[header::STRICT_TRANSPORT_SECURITY],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(own[header::X_FRAME_OPTIONS], "DENY");
    }
}
