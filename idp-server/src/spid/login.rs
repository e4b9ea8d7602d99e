//! The SPID sign-in: `/spid/login` sends the browser to the chosen identity provider
//! with an AuthnRequest at the level the parked request needs; `/spid/acs` receives
//! the Response, has the bridge validate it, finds or creates the account and starts
//! (or steps up) the SSO session, then resumes the parked authorization request.
//!
//! The flow is bound to the browser that started it: a random value in a cookie is
//! kept with the AuthnRequest and must come back with the Response, so nobody can make
//! a victim's browser deliver a Response obtained for the attacker (login CSRF).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use idp_core::audit::{AuditEvent, AuditKind};
use idp_core::secret::generate_token;
use idp_core::spid_link::{SpidAccount, SpidAttributes, link_or_create};
use idp_core::sso::{SessionStart, SignInMethod, SpidSessionInfo};
use serde::{Deserialize, Serialize};
use spid_bridge::{Rejection, SpidLogin};
use subtle::ConstantTimeEq;

use super::{CacheSamlState, enabled, needed_level, send};
use crate::error::AppError;
use crate::oidc::{authorize, session_cookie};
use crate::pages::ClientIp;
use crate::state::AppState;
use crate::web::ErrorPage;

const TITLE: &str = "Accesso con SPID non riuscito";

#[derive(Deserialize)]
pub struct StartParams {
    #[serde(default)]
    idp: String,
    /// The parked authorization request (empty: sign in to the IdP itself).
    #[serde(default)]
    request: String,
}

/// What idp-server keeps with the AuthnRequest (the bridge's `relay`).
#[derive(Serialize, Deserialize)]
struct Relay {
    /// The value of the browser's binding cookie.
    nonce: String,
    /// The parked authorization request.
    req: String,
}

pub fn binding_cookie_name(state: &AppState) -> &'static str {
    if session_cookie::secure(state) {
        "__Host-idp_spid"
    } else {
        "idp_spid"
    }
}

/// The Response comes back as a cross-site POST from the identity provider: over
/// https the cookie must be `SameSite=None` to come with it. Over plain http (the demo
/// on localhost, where the test IdP is on the same site) browsers refuse `None`
/// without `Secure`, and `Lax` is enough.
fn binding_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let mut c = session_cookie::build(state, binding_cookie_name(state), value);
    if session_cookie::secure(state) {
        c.set_same_site(SameSite::None);
    }
    c
}

fn bad_request(message: &str) -> Response {
    ErrorPage::response(StatusCode::BAD_REQUEST, TITLE, message)
}

/// `GET /spid/login?idp=…&request=…`: the AuthnRequest to the chosen identity provider.
pub async fn start(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<StartParams>,
) -> Result<Response, AppError> {
    let spid = enabled(&state)?;
    if spid.sp.registry().get(&p.idp).is_none() {
        return Ok(bad_request(
            "Il gestore di identità SPID scelto non è tra quelli disponibili. Torna alla pagina di accesso e scegline uno dall'elenco.",
        ));
    }
    let needed = if p.request.is_empty() {
        None
    } else {
        match authorize::parked(&state, &p.request).await? {
            Some(request) => needed_level(&request.acr_values),
            None => {
                return Ok(bad_request(
                    "La richiesta di accesso è scaduta o è già stata completata. Torna al servizio e riprova.",
                ));
            }
        }
    };
    let level = spid.level_for(needed);
    let nonce = generate_token().expose().to_string();
    let relay = serde_json::to_string(&Relay {
        nonce: nonce.clone(),
        req: p.request,
    })
    .map_err(|e| AppError::from(idp_core::CoreError::Invalid(e.to_string())))?;
    let saml_state = CacheSamlState(state.cache.clone());
    let message = match spid
        .sp
        .start_login(&saml_state, &p.idp, level, spid.binding(), &relay)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(idp = %p.idp, error = %e, "cannot start the SPID sign-in");
            return Ok(ErrorPage::response(
                StatusCode::BAD_GATEWAY,
                TITLE,
                "Non è stato possibile avviare l'accesso con il gestore SPID scelto. Riprova più tardi.",
            ));
        }
    };
    tracing::info!(idp = %p.idp, level = level.acr(), "SPID sign-in started");
    let jar = jar.add(binding_cookie(&state, nonce));
    Ok((jar, send(message)).into_response())
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse", default)]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `POST /spid/acs`: the identity provider's Response.
pub async fn acs(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    form: Result<Form<AcsForm>, FormRejection>,
) -> Result<Response, AppError> {
    let spid = enabled(&state)?;
    let form = match form {
        Ok(Form(f)) if !f.saml_response.is_empty() => f,
        other => {
            let detail = match other {
                Err(e) => e.body_text(),
                Ok(_) => "no SAMLResponse in the form".into(),
            };
            let rejection = Rejection {
                reason: "malformed",
                message_it: "La risposta del gestore SPID è assente o illeggibile.".into(),
                detail,
            };
            return Ok(reject(&state, &ip, &rejection).await);
        }
    };
    let saml_state = CacheSamlState(state.cache.clone());
    let login = match spid
        .sp
        .finish_login(
            &saml_state,
            &form.saml_response,
            form.relay_state.as_deref(),
        )
        .await
    {
        Ok(l) => l,
        Err(rejection) => return Ok(reject(&state, &ip, &rejection).await),
    };
    let Some(relay) = bound_relay(&state, &jar, &login) else {
        return Ok(reject(
            &state,
            &ip,
            &Rejection {
                reason: "browser_binding",
                message_it: "L'accesso con SPID non è stato avviato da questo browser. Torna alla pagina di accesso e riprova.".into(),
                detail: "the binding cookie does not match the request".into(),
            },
        )
        .await);
    };
    sign_in(&state, jar, &ip, login, relay).await
}

/// The relay of a Response delivered to the browser that started the sign-in.
fn bound_relay(state: &AppState, jar: &CookieJar, login: &SpidLogin) -> Option<Relay> {
    let relay: Relay = serde_json::from_str(&login.relay).ok()?;
    let cookie = jar.get(binding_cookie_name(state))?.value().to_string();
    bool::from(cookie.as_bytes().ct_eq(relay.nonce.as_bytes())).then_some(relay)
}

/// A refused Response: logged with its reason, counted, audited, and answered with
/// the bridge's Italian message and a 4xx status.
async fn reject(state: &AppState, ip: &str, rejection: &Rejection) -> Response {
    tracing::warn!(reason = rejection.reason, detail = %rejection.detail, "SPID response refused");
    state.metrics.saml_rejected(rejection.reason);
    state.metrics.login("spid", "rejected");
    state
        .audit(
            AuditEvent::new(AuditKind::LoginFailure)
                .ip(ip)
                .detail(serde_json::json!({
                    "method": "spid",
                    "outcome": "rejected",
                    "reason": rejection.reason,
                })),
        )
        .await;
    // The identity provider refused or the person cancelled: not a malformed request.
    let status =
        if rejection.reason == "status_not_success" || rejection.reason == "browser_binding" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
    ErrorPage::response(status, TITLE, &rejection.message_it)
}

/// A verified SPID identity: its account, the session, and back to the client.
async fn sign_in(
    state: &AppState,
    jar: CookieJar,
    ip: &str,
    login: SpidLogin,
    relay: Relay,
) -> Result<Response, AppError> {
    let identity = &login.identity;
    let attrs = SpidAttributes {
        fiscal_code: identity.fiscal_number.clone(),
        given_name: identity.name.clone(),
        family_name: identity.family_name.clone(),
        email: identity.email.clone(),
        birth_date: identity.date_of_birth.clone(),
        sex: identity.gender.clone(),
    };
    let (account, created) = match link_or_create(&state.directory, &attrs).await? {
        SpidAccount::Linked(a) => (a, false),
        SpidAccount::Created(a) => (a, true),
        SpidAccount::Disabled => {
            return Ok(refuse_account(
                state,
                ip,
                "disabled",
                "L'utenza associata a questa identità SPID è disabilitata. Contatta l'assistenza.",
            )
            .await);
        }
        SpidAccount::Unusable(message) => {
            return Ok(refuse_account(state, ip, "unusable_attributes", message).await);
        }
    };
    let how = SessionStart {
        acr: identity.level.acr().to_string(),
        amr: vec!["spid".into()],
        method: SignInMethod::Spid,
        spid: Some(SpidSessionInfo {
            idp_entity_id: login.session.idp_entity_id.clone(),
            name_id: login.session.name_id.clone(),
            name_id_qualifier: login.session.name_id_qualifier.clone(),
            session_index: login.session.session_index.clone(),
        }),
    };
    // The same person signing in again (a step-up) keeps the session and its
    // clients; someone else's session in this browser ends first.
    let current = session_cookie::current(state, &jar).await?;
    let (jar, sid) = match current {
        Some((_, s)) if s.account_id == account.id.as_str() => {
            match state.sessions.reauthenticate(&s.sid, how.clone()).await? {
                Some(s) => (jar, s.sid),
                None => start_session(state, jar, account.id.as_str(), how).await?,
            }
        }
        Some((token, s)) => {
            state.sessions.forget_cookie(&token).await?;
            crate::oidc::backchannel::end_session(state, &s.sid).await?;
            start_session(state, jar, account.id.as_str(), how).await?
        }
        None => start_session(state, jar, account.id.as_str(), how).await?,
    };
    tracing::info!(account = %account.id, sid = %sid, level = identity.level.acr(), created, "SPID sign-in");
    state.metrics.login("spid", "success");
    state
        .audit(
            AuditEvent::new(AuditKind::SpidLogin)
                .account(account.id.as_str())
                .ip(ip)
                .detail(serde_json::json!({
                    "idp": login.session.idp_entity_id,
                    "level": identity.level.acr(),
                    "account_created": created,
                    "sid": sid,
                })),
        )
        .await;
    let jar = jar.add(session_cookie::removal(state, binding_cookie_name(state)));
    // 303: the browser follows a POST's redirect with a GET.
    let next = crate::pages::after_sign_in(&relay.req);
    Ok((jar, Redirect::to(&next)).into_response())
}

async fn start_session(
    state: &AppState,
    jar: CookieJar,
    account_id: &str,
    how: SessionStart,
) -> Result<(CookieJar, String), AppError> {
    let (token, session) = state.sessions.start_with(account_id, how).await?;
    let jar = jar.add(session_cookie::build(
        state,
        session_cookie::session_name(state),
        token.expose().to_string(),
    ));
    Ok((jar, session.sid))
}

async fn refuse_account(state: &AppState, ip: &str, outcome: &str, message: &str) -> Response {
    tracing::info!(outcome, "SPID identity verified but no account can be used");
    state.metrics.login("spid", outcome);
    state
        .audit(
            AuditEvent::new(AuditKind::LoginFailure)
                .ip(ip)
                .detail(serde_json::json!({ "method": "spid", "outcome": outcome })),
        )
        .await;
    ErrorPage::response(StatusCode::FORBIDDEN, TITLE, message)
}
