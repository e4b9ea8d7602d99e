//! `/userinfo` (GET and POST) with a bearer access token (header, or form body on POST).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use idp_core::oidc::OAuthError;

use super::{json_error, no_store};
use crate::state::AppState;

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(|t| t.trim().to_string())
}

pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(&state, bearer(&headers)).await
}

pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // RFC 6750 §2.2: the token may come in a form-encoded body instead.
    let from_body = || {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    };
    let token = bearer(&headers).or_else(from_body);
    answer(&state, token).await
}

async fn answer(state: &AppState, token: Option<String>) -> Response {
    let result = async {
        let token =
            token.ok_or_else(|| OAuthError::invalid_token("a bearer access token is required"))?;
        let claims = state.tokens.verify_access_token(&token).await?;
        let service = match idp_core::client::ClientId::parse(&claims.client_id) {
            Ok(id) => state
                .clients
                .get(&id)
                .await?
                .and_then(|c| c.service.clone()),
            Err(_) => None,
        };
        state
            .tokens
            .userinfo(&claims, service.as_deref(), state.directory.claims())
            .await
    }
    .await;
    match result {
        Ok(body) => no_store(Json(body).into_response()),
        Err(e) => {
            let mut r = json_error(&e);
            let challenge = format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                e.code,
                e.description.replace('"', "'")
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
    }
}
