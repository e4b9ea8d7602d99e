//! The OpenID Connect endpoints. Each handler reads as a list of named checks that
//! return the precise protocol error; the work is done by `idp_core::oidc`.

pub mod authorize;
pub mod backchannel;
pub mod discovery;
pub mod enablement;
pub mod login;
pub mod logout;
pub mod session_cookie;
pub mod token;
pub mod userinfo;

use crate::web::Routes;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use idp_core::oidc::OAuthError;

/// Discovery and the JWKS: answered from memory (pre-serialised bytes), never from a
/// store, so they need no request deadline.
pub fn routes_from_memory() -> Routes {
    Routes::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route("/jwks", get(discovery::jwks))
}

pub fn routes() -> Routes {
    Routes::new()
        .route("/authorize", get(authorize::get).post(authorize::post))
        .route("/authorize/resume", get(authorize::resume))
        .route("/login", get(login::page_get).post(login::submit))
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::get).post(userinfo::post))
        .route("/introspect", post(token::introspect))
        .route("/revoke", post(token::revoke))
        .route("/logout", get(logout::get).post(logout::post))
        .route(
            "/enablements/{service}/{sub}",
            get(enablement::get).put(enablement::put),
        )
}

/// A JSON protocol error with the status RFC 6749 gives it; never cached.
pub fn json_error(e: &OAuthError) -> Response {
    let status = match e.code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "invalid_token" => StatusCode::UNAUTHORIZED,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    if !matches!(e.code, "server_error" | "temporarily_unavailable") {
        tracing::info!(error = e.code, description = %e.description, "oauth request refused");
    }
    no_store(
        (
            status,
            Json(serde_json::json!({ "error": e.code, "error_description": e.description })),
        )
            .into_response(),
    )
}

/// Token responses and errors must not be cached (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
