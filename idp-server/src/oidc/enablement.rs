//! The enablement hook, IdP side. During `/authorize`, once the person is signed in,
//! a client that declares a `service` and an `enablement_uri` gets the person sent to
//! that URI with a signed request when the account has no active enablement for the
//! service; the service runs its own steps, records the result with
//! `PUT /enablements/{service}/{sub}` and sends the browser to `resume`. The login then
//! ends with a code if the enablement is active, or an `access_denied` error the
//! service can show.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use idp_core::account::AccountId;
use idp_core::client::{Client, ClientAuthError, PresentedCredentials, authenticate_client};
use idp_core::directory::now;
use idp_core::enablement::{Enablement, EnablementRequest, EnablementStatus, valid_service};
use idp_core::oidc::OAuthError;
use idp_core::sso::SsoSession;
use serde::Deserialize;
use serde_json::json;

use super::authorize::AuthorizationRequest;
use crate::state::AppState;

/// How long the service has to use the signed request (its steps may take longer:
/// the resume URL lives as long as the parked request).
const REQUEST_TTL_SECS: i64 = 300;

pub enum Gate {
    /// Nothing to do, or already active: issue the code.
    Proceed,
    /// Send the browser to the service's enablement page.
    Redirect(Response),
}

/// Decides whether the login must pass through the client's enablement step.
pub async fn gate(
    state: &AppState,
    client: &Client,
    request: &mut AuthorizationRequest,
    session: &SsoSession,
) -> Result<Gate, OAuthError> {
    let (Some(service), Some(uri)) = (client.service.as_deref(), client.enablement_uri.as_deref())
    else {
        return Ok(Gate::Proceed);
    };
    let found = state.store.enablement(&session.account_id, service).await?;
    let status = found.as_ref().map(|e| e.status);
    if status == Some(EnablementStatus::Active) {
        return Ok(Gate::Proceed);
    }
    if request.enablement_sent {
        let what = status
            .map(EnablementStatus::as_str)
            .unwrap_or("not completed");
        return Err(OAuthError::access_denied(format!(
            "the enablement for {service} is {what}"
        )));
    }
    request.enablement_sent = true;
    super::authorize::park_only(state, request).await?;
    let issuer = state.tokens.issuer();
    let at = now();
    let claims = EnablementRequest {
        iss: issuer.to_string(),
        aud: client.id.as_str().to_string(),
        sub: session.account_id.clone(),
        service: service.to_string(),
        assurance: session.acr.clone(),
        amr: session.amr.clone(),
        resume: format!("{issuer}/authorize/resume?req={}", request.id),
        iat: at,
        exp: at + REQUEST_TTL_SECS,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let jws = state.keys.sign(&claims, Some("enablement+jwt"), None)?;
    let mut target = url::Url::parse(uri)
        .map_err(|_| OAuthError::server_error("the client's enablement_uri is not a URL"))?;
    target.query_pairs_mut().append_pair("request", &jws);
    tracing::info!(client = %client.id, service, account = %session.account_id, "sent to the enablement step");
    Ok(Gate::Redirect(
        Redirect::to(target.as_str()).into_response(),
    ))
}

#[derive(Deserialize)]
pub struct EnablementBody {
    status: String,
    /// When the service enables the person after an in-person recognition, who
    /// recognised them and how: recorded in the IdP's audit log (`recognition`).
    #[serde(default)]
    recognition: Option<RecognitionReport>,
}

/// A service's account of an in-person recognition. The document number and the
/// delegate's identity stay with the service; the IdP keeps who, how and on what.
#[derive(Deserialize)]
pub struct RecognitionReport {
    /// The operator's `sub` at this IdP.
    operator: String,
    /// `in_person` or `delegate`.
    method: String,
    /// The type of the document presented (e.g. "Carta d'identità").
    document_type: String,
}

impl RecognitionReport {
    fn problem(&self, status: EnablementStatus) -> Option<&'static str> {
        if status != EnablementStatus::Active {
            return Some("a recognition can only come with status active");
        }
        if self.operator.trim().is_empty() || self.document_type.trim().is_empty() {
            return Some("recognition.operator and recognition.document_type are required");
        }
        if !matches!(self.method.as_str(), "in_person" | "delegate") {
            return Some("recognition.method must be in_person or delegate");
        }
        None
    }
}

fn api_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description.into() })),
    )
        .into_response()
}

/// The calling client: HTTP Basic (its secret), or a bearer access token it obtained
/// with `client_credentials` (for clients that authenticate with private_key_jwt).
async fn calling_client(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<Client>, Response> {
    let unauthorized = |d: &str| {
        let mut r = api_error(StatusCode::UNAUTHORIZED, "invalid_client", d);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"idp\""),
        );
        r
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized("client authentication is required"));
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        let claims = state
            .tokens
            .verify_access_token(token.trim())
            .await
            .map_err(|e| unauthorized(&e.description))?;
        if claims.gid.is_some() || claims.sub != claims.client_id {
            return Err(unauthorized("the token is not a client_credentials token"));
        }
        let id = idp_core::client::ClientId::parse(&claims.client_id)
            .map_err(|_| unauthorized("unknown client"))?;
        return match state.clients.get(&id).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(unauthorized("unknown client")),
            Err(e) => Err(super::json_error(&OAuthError::from(e))),
        };
    }
    let basic = idp_core::client::decode_basic_authorization(value).map_err(|e| match e {
        ClientAuthError::InvalidClient(reason) => unauthorized(reason),
        ClientAuthError::Internal(e) => super::json_error(&OAuthError::from(e)),
    })?;
    let presented = PresentedCredentials {
        basic: Some(basic),
        ..Default::default()
    };
    authenticate_client(&state.clients, &presented, &[], &*state.cache)
        .await
        .map_err(|e| match e {
            ClientAuthError::InvalidClient(reason) => unauthorized(reason),
            ClientAuthError::Internal(e) => super::json_error(&OAuthError::from(e)),
        })
}

/// Checks shared by GET and PUT: the client writes (and reads) only its own service,
/// about an account that exists.
async fn authorised(
    state: &AppState,
    headers: &HeaderMap,
    service: &str,
    sub: &str,
) -> Result<std::sync::Arc<Client>, Response> {
    let client = calling_client(state, headers).await?;
    if !valid_service(service) || client.service.as_deref() != Some(service) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "client {} may only manage enablements of its own service",
                client.id
            ),
        ));
    }
    match state
        .store
        .account_by_id(&AccountId::from_string(sub.to_string()))
        .await
    {
        Ok(Some(_)) => Ok(client),
        Ok(None) => Err(api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such account",
        )),
        Err(e) => Err(super::json_error(&OAuthError::from(e))),
    }
}

pub async fn put(
    State(state): State<AppState>,
    Path((service, sub)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<EnablementBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let client = match authorised(&state, &headers, &service, &sub).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(Json(body)) = body else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON: {\"status\": \"active\" | \"pending\" | \"revoked\"}",
        );
    };
    let Some(status) = EnablementStatus::parse(&body.status) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "status must be active, pending or revoked",
        );
    };
    if let Some(problem) = body.recognition.as_ref().and_then(|r| r.problem(status)) {
        return api_error(StatusCode::BAD_REQUEST, "invalid_request", problem);
    }
    let enablement = Enablement {
        account_id: sub,
        service,
        status,
        updated_by: client.id.as_str().to_string(),
        updated_at: now(),
    };
    // The previous status, for the audit log (a read failure fails the request: the
    // database is the one the write needs too).
    let previous = match state
        .store
        .enablement(&enablement.account_id, &enablement.service)
        .await
    {
        Ok(found) => found.map(|e| e.status),
        Err(e) => return super::json_error(&OAuthError::from(e)),
    };
    if let Err(e) = state.store.put_enablement(&enablement).await {
        return super::json_error(&OAuthError::from(e));
    }
    tracing::info!(client = %client.id, service = %enablement.service, account = %enablement.account_id, status = status.as_str(), "enablement recorded");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::EnablementChange)
                .account(enablement.account_id.clone())
                .client(client.id.as_str())
                .detail(json!({
                    "service": enablement.service,
                    "status": status.as_str(),
                    "previous": previous.map(EnablementStatus::as_str),
                })),
        )
        .await;
    if let Some(r) = &body.recognition {
        state
            .audit(
                idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::Recognition)
                    .account(enablement.account_id.clone())
                    .client(client.id.as_str())
                    .detail(json!({
                        "service": enablement.service,
                        "operator": r.operator.trim(),
                        "method": r.method,
                        "document_type": r.document_type.trim(),
                    })),
            )
            .await;
    }
    Json(enablement).into_response()
}

pub async fn get(
    State(state): State<AppState>,
    Path((service, sub)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorised(&state, &headers, &service, &sub).await {
        return r;
    }
    match state.store.enablement(&sub, &service).await {
        Ok(found) => Json(idp_core::enablement::claim(&service, found.as_ref())).into_response(),
        Err(e) => super::json_error(&OAuthError::from(e)),
    }
}
