//! SPID single logout. When a person whose session came from SPID signs out here, the
//! IdP sends a LogoutRequest to the SPID identity provider after the back-channel
//! logouts, and continues to the client's post-logout address on its LogoutResponse.
//! A LogoutRequest from the identity provider ends the SSO session it names (with the
//! back-channel logouts) and is answered with a LogoutResponse.

use std::time::Duration;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::cache::{put_json, take_json};
use idp_core::secret::generate_token;
use idp_core::sso::SsoSession;
use serde::{Deserialize, Serialize};
use spid_bridge::{Rejection, SamlMessage, SpidSession};

use super::{CacheSamlState, enabled, send};
use crate::error::AppError;
use crate::oidc::{backchannel, session_cookie};
use crate::state::AppState;
use crate::web::ErrorPage;

/// How long the IdP waits for the identity provider's LogoutResponse.
const PENDING_TTL: Duration = Duration::from_secs(10 * 60);

/// Where the sign-out continues once the identity provider has answered.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// The client's post-logout address (with its `state`), else our page.
    redirect: Option<String>,
}

fn pending_key(key: &str) -> String {
    format!("spid-slo:{key}")
}

/// After the local sign-out of a SPID session: the LogoutRequest to its identity
/// provider, or `None` when there is nothing to send (or it cannot be sent: the local
/// session is over either way, so that is logged and the sign-out goes on).
pub async fn start(
    state: &AppState,
    session: &SsoSession,
    redirect: Option<String>,
) -> Option<Response> {
    let spid = state.spid.as_deref()?;
    let info = session.spid.as_ref()?;
    let key = generate_token().expose().to_string();
    if let Err(e) = put_json(
        &*state.cache,
        &pending_key(&key),
        &Pending { redirect },
        PENDING_TTL,
    )
    .await
    {
        tracing::error!(error = %e, "cannot keep the pending SPID logout");
        return None;
    }
    let spid_session = SpidSession {
        idp_entity_id: info.idp_entity_id.clone(),
        name_id: info.name_id.clone(),
        name_id_qualifier: info.name_id_qualifier.clone(),
        session_index: info.session_index.clone(),
    };
    let saml_state = CacheSamlState(state.cache.clone());
    match spid
        .sp
        .start_logout(&saml_state, &spid_session, spid.binding(), &key)
        .await
    {
        Ok(message) => {
            tracing::info!(idp = %info.idp_entity_id, sid = %session.sid, "SPID single logout sent");
            Some(send(message))
        }
        Err(e) => {
            tracing::warn!(idp = %info.idp_entity_id, error = %e, "SPID single logout not sent");
            let _ = state.cache.delete(&pending_key(&key)).await;
            None
        }
    }
}

#[derive(Deserialize)]
pub struct SloForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `GET /spid/slo` (HTTP-Redirect binding).
pub async fn slo_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    enabled(&state)?;
    let raw_query = query.unwrap_or_default();
    let names: Vec<String> = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    let message = SamlMessage::Redirect { raw_query };
    if names.iter().any(|n| n == "SAMLResponse") {
        return Ok(logout_response(&state, &message).await);
    }
    if names.iter().any(|n| n == "SAMLRequest") {
        return logout_request(&state, jar, &message).await;
    }
    Ok(missing(&state))
}

/// `POST /spid/slo` (HTTP-POST binding).
pub async fn slo_post(
    State(state): State<AppState>,
    jar: CookieJar,
    form: Result<Form<SloForm>, FormRejection>,
) -> Result<Response, AppError> {
    enabled(&state)?;
    let Ok(Form(form)) = form else {
        return Ok(missing(&state));
    };
    match (form.saml_response, form.saml_request) {
        (Some(saml), _) => {
            let message = SamlMessage::Post {
                saml,
                relay_state: form.relay_state,
            };
            Ok(logout_response(&state, &message).await)
        }
        (None, Some(saml)) => {
            let message = SamlMessage::Post {
                saml,
                relay_state: form.relay_state,
            };
            logout_request(&state, jar, &message).await
        }
        (None, None) => Ok(missing(&state)),
    }
}

fn missing(state: &AppState) -> Response {
    refused(
        state,
        &Rejection {
            reason: "malformed",
            message_it: "La richiesta di uscita non contiene alcun messaggio SAML.".into(),
            detail: "neither SAMLRequest nor SAMLResponse".into(),
        },
    )
}

fn refused(state: &AppState, rejection: &Rejection) -> Response {
    tracing::warn!(reason = rejection.reason, detail = %rejection.detail, "SPID logout message refused");
    state.metrics.saml_rejected(rejection.reason);
    ErrorPage::response(
        StatusCode::BAD_REQUEST,
        "Uscita da SPID non riuscita",
        &rejection.message_it,
    )
}

/// The identity provider's answer to our LogoutRequest: on to where the sign-out goes.
async fn logout_response(state: &AppState, message: &SamlMessage) -> Response {
    let Ok(spid) = enabled(state) else {
        return AppError::not_found().into_response();
    };
    let saml_state = CacheSamlState(state.cache.clone());
    let key = match spid.sp.finish_logout(&saml_state, message).await {
        Ok(k) => k,
        Err(rejection) => return refused(state, &rejection),
    };
    let pending: Option<Pending> = match take_json(&*state.cache, &pending_key(&key)).await {
        Ok(p) => p,
        Err(e) => return AppError::from(e).into_response(),
    };
    tracing::info!("SPID single logout completed");
    match pending.and_then(|p| p.redirect) {
        Some(uri) => Redirect::to(&uri).into_response(),
        None => crate::oidc::logout::signed_out_page(),
    }
}

/// A LogoutRequest from the identity provider: the session it names ends here too.
async fn logout_request(
    state: &AppState,
    jar: CookieJar,
    message: &SamlMessage,
) -> Result<Response, AppError> {
    let spid = enabled(state)?;
    let saml_state = CacheSamlState(state.cache.clone());
    let (named, answer) = match spid.sp.handle_logout_request(&saml_state, message).await {
        Ok(x) => x,
        Err(rejection) => return Ok(refused(state, &rejection)),
    };
    let session = state
        .sessions
        .by_spid_name_id(&named.idp_entity_id, &named.name_id)
        .await?;
    let mut jar = jar;
    match session {
        Some(session) => {
            if let Some((token, current)) = session_cookie::current(state, &jar).await?
                && current.sid == session.sid
            {
                state.sessions.forget_cookie(&token).await?;
                jar = jar.add(session_cookie::removal(
                    state,
                    session_cookie::session_name(state),
                ));
            }
            backchannel::end_session(state, &session.sid).await?;
            tracing::info!(idp = %named.idp_entity_id, sid = %session.sid, "SSO session ended by the SPID identity provider");
        }
        None => {
            tracing::info!(idp = %named.idp_entity_id, "SPID logout request for no live session");
        }
    }
    Ok((jar, send(answer)).into_response())
}
