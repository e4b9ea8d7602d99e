//! Page rendering helpers and the static assets (Bootstrap Italia and our stylesheet),
//! compiled into the binary so that a deployment is one file and no CDN is involved.

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::state::AppState;

/// Routes as axum's `Router`, with the patterns they were given: the request metrics
/// label each request with the pattern it matched, from outside the router (see
/// `metrics::RequestMetricsLayer`), so every route goes through here.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    patterns: Vec<&'static str>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// `Router::route`.
    pub fn route(mut self, pattern: &'static str, handler: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(pattern, handler);
        self.patterns.push(pattern);
        self
    }

    /// `Router::merge`.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.patterns.extend(other.patterns);
        self
    }

    /// `Router::layer`, around each of these routes (the routes merged later are not
    /// wrapped); `layered` may only add layers.
    pub fn layered(mut self, layered: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
        self.router = layered(self.router);
        self
    }

    /// The router, and the patterns of its routes.
    pub fn into_parts(self) -> (Router<AppState>, Vec<&'static str>) {
        (self.router, self.patterns)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

impl ErrorPage<'_> {
    pub fn response(status: StatusCode, title: &str, message: &str) -> Response {
        match (ErrorPage { title, message }).render() {
            Ok(html) => (status, Html(html)).into_response(),
            // The error page itself failing to render must still answer something.
            Err(_) => (status, format!("{title}: {message}")).into_response(),
        }
    }
}

/// Renders a page template, mapping a rendering failure to the error page.
pub fn page<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::error::AppError::from(e).into_response(),
    }
}

const BI: &str = "vendor/bootstrap-italia";

fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let found: (&str, &[u8]) = match path {
        "site.css" => ("text/css", include_bytes!("../assets/site.css")),
        "js/autopost.js" => (
            "text/javascript",
            include_bytes!("../assets/js/autopost.js"),
        ),
        p if p == format!("{BI}/css/bootstrap-italia.min.css") => (
            "text/css",
            include_bytes!("../assets/vendor/bootstrap-italia/css/bootstrap-italia.min.css"),
        ),
        p if p == format!("{BI}/svg/sprites.svg") => (
            "image/svg+xml",
            include_bytes!("../assets/vendor/bootstrap-italia/svg/sprites.svg"),
        ),
        p if p == format!("{BI}/fonts/titillium-web-v10-latin-ext_latin-regular.woff2") => (
            "font/woff2",
            include_bytes!(
                "../assets/vendor/bootstrap-italia/fonts/titillium-web-v10-latin-ext_latin-regular.woff2"
            ),
        ),
        p if p == format!("{BI}/fonts/titillium-web-v10-latin-ext_latin-italic.woff2") => (
            "font/woff2",
            include_bytes!(
                "../assets/vendor/bootstrap-italia/fonts/titillium-web-v10-latin-ext_latin-italic.woff2"
            ),
        ),
        p if p == format!("{BI}/fonts/titillium-web-v10-latin-ext_latin-600.woff2") => (
            "font/woff2",
            include_bytes!(
                "../assets/vendor/bootstrap-italia/fonts/titillium-web-v10-latin-ext_latin-600.woff2"
            ),
        ),
        p if p == format!("{BI}/fonts/titillium-web-v10-latin-ext_latin-700.woff2") => (
            "font/woff2",
            include_bytes!(
                "../assets/vendor/bootstrap-italia/fonts/titillium-web-v10-latin-ext_latin-700.woff2"
            ),
        ),
        _ => return None,
    };
    Some(found)
}

/// The static assets. They are public and the relying parties' pages (other origins)
/// link the stylesheet, whose fonts browsers fetch in CORS mode: without
/// `Access-Control-Allow-Origin` the services' pages lose their fonts.
pub async fn serve_asset(Path(path): Path<String>) -> Response {
    match asset(&path) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => crate::error::AppError::not_found().into_response(),
    }
}

/// Bounds every request by `server.request_timeout_secs`: a database or cache that
/// stops answering without closing its connections (a network partition, a frozen
/// process) must not hold requests forever. Past the deadline a browser gets the 503
/// page, any other client the OAuth-style JSON error.
pub async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    // A cheap reference-counted copy, for the log line of a request that times out.
    let uri = request.uri().clone();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(path = uri.path(), ?limit, "request timed out");
            if wants_html {
                ErrorPage::response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Servizio momentaneamente non disponibile",
                    "Il servizio non ha risposto in tempo. Riprova tra qualche minuto.",
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({
                        "error": "temporarily_unavailable",
                        "error_description": "the request took longer than the server allows; retry later",
                    })),
                )
                    .into_response()
            }
        }
    }
}
