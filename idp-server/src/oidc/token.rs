//! `/token`, `/introspect` and `/revoke`: parse the form, authenticate the client,
//! hand the grant to the token service, and answer with no-store JSON.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idp_core::client::{
    Client, ClientAuthError, PresentedCredentials, authenticate_client, decode_basic_authorization,
};
use idp_core::oidc::OAuthError;
use serde::Deserialize;

use super::{json_error, no_store};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    token: Option<String>,
    token_type_hint: Option<String>,
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
    if !text
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("basic "))
    {
        return Ok(None);
    }
    decode_basic_authorization(text)
        .map(Some)
        .map_err(client_auth_error)
}

fn client_auth_error(e: ClientAuthError) -> OAuthError {
    match e {
        ClientAuthError::InvalidClient(reason) => OAuthError::invalid_client(reason),
        ClientAuthError::Internal(e) => OAuthError::from(e),
    }
}

async fn client_of(
    state: &AppState,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Arc<Client>, OAuthError> {
    let presented = PresentedCredentials {
        basic: basic_credentials(headers)?,
        form_client_id: form.client_id.clone(),
        form_client_secret: form.client_secret.clone(),
        assertion_type: form.client_assertion_type.clone(),
        assertion: form.client_assertion.clone(),
    };
    let issuer = state.tokens.issuer();
    let audience = [issuer.to_string(), format!("{issuer}/token")];
    authenticate_client(&state.clients, &presented, &audience, &*state.cache)
        .await
        .map_err(client_auth_error)
}

fn invalid_client_response(headers: &HeaderMap, e: &OAuthError) -> Response {
    let mut r = json_error(e);
    if headers.contains_key(header::AUTHORIZATION) {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"idp\""),
        );
    }
    r
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = match client_of(&state, &headers, &form).await {
        Ok(c) => c,
        Err(e) => return invalid_client_response(&headers, &e),
    };
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => match required(&form.code, "code") {
            Ok(code) => {
                state
                    .tokens
                    .exchange_code(
                        &client,
                        code,
                        form.redirect_uri.as_deref(),
                        form.code_verifier.as_deref(),
                    )
                    .await
            }
            Err(e) => Err(e),
        },
        Some("refresh_token") => match required(&form.refresh_token, "refresh_token") {
            Ok(rt) => {
                state
                    .tokens
                    .refresh(&client, rt, form.scope.as_deref())
                    .await
            }
            Err(e) => Err(e),
        },
        Some("client_credentials") => {
            state
                .tokens
                .client_credentials(&client, form.scope.as_deref())
                .await
        }
        Some(other) => Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {other} is not supported"
        ))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    };
    match result {
        Ok(tokens) => {
            state
                .metrics
                .token_issued(form.grant_type.as_deref().unwrap_or_default());
            // Debug, not info: one line per token response costs ~8% of the token
            // endpoint's throughput; tokens_issued_total counts them, and refusals
            // are still logged at info.
            tracing::debug!(client = %client.id, grant = form.grant_type.as_deref().unwrap_or(""), "tokens issued");
            no_store(Json(tokens).into_response())
        }
        Err(e) => json_error(&e),
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = match client_of(&state, &headers, &form).await {
        Ok(c) => c,
        Err(e) => return invalid_client_response(&headers, &e),
    };
    if client.is_public() {
        return invalid_client_response(
            &headers,
            &OAuthError::invalid_client("public clients may not introspect"),
        );
    }
    let token = match required(&form.token, "token") {
        Ok(t) => t,
        Err(e) => return json_error(&e),
    };
    match state
        .tokens
        .introspect(&client, token, form.token_type_hint.as_deref())
        .await
    {
        Ok(body) => no_store(Json(body).into_response()),
        Err(e) => json_error(&OAuthError::from(e)),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let client = match client_of(&state, &headers, &form).await {
        Ok(c) => c,
        Err(e) => return invalid_client_response(&headers, &e),
    };
    let token = match required(&form.token, "token") {
        Ok(t) => t,
        Err(e) => return json_error(&e),
    };
    match state
        .tokens
        .revoke(&client, token, form.token_type_hint.as_deref())
        .await
    {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => json_error(&OAuthError::from(e)),
    }
}
