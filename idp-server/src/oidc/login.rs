//! The username and password login page. A parked authorization request (`req`) is
//! resumed after a successful sign-in. The form is bound to the browser that opened
//! it with a double-submit cookie, so a third-party site cannot sign a victim into
//! the attacker's account (login CSRF).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::audit::{AuditEvent, AuditKind};
use idp_core::directory::SignIn;
use idp_core::password::Password;
use idp_core::rate_limit::{LOGIN_ACCOUNT, LOGIN_ADDRESS, wait_message_it};
use serde::Deserialize;

use super::{authorize, session_cookie};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    req: String,
    csrf: String,
    username: String,
    client_name: Option<String>,
    error: Option<String>,
    /// "Entra con SPID" and its identity providers, when SPID is on.
    spid: Option<crate::spid::Chooser>,
    /// False when the client needs a SPID level: only SPID is offered then.
    password_allowed: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    name: Option<String>,
    csrf: String,
}

#[derive(Deserialize)]
pub struct PageParams {
    #[serde(default)]
    req: String,
}

/// The name of the client of a parked request, and the `acr_values` it asked for.
async fn parked_request(
    state: &AppState,
    req: &str,
) -> Result<(Option<String>, Vec<String>), AppError> {
    let Some(request) = authorize::parked(state, req).await? else {
        return Ok((None, Vec::new()));
    };
    let Ok(id) = idp_core::client::ClientId::parse(&request.client_id) else {
        return Ok((None, request.acr_values));
    };
    let name = state.clients.get(&id).await?.map(|c| c.name.clone());
    Ok((name, request.acr_values))
}

pub async fn page_handler(
    state: &AppState,
    jar: CookieJar,
    req: String,
    username: String,
    error: Option<String>,
) -> Result<Response, AppError> {
    let (client_name, acr_values) = parked_request(state, &req).await?;
    Ok(render(
        state,
        jar,
        req,
        client_name,
        &acr_values,
        username,
        error,
    ))
}

/// The login page for the request just parked by `/authorize`, shown in its response
/// (no redirect to `/login`): its client and `acr_values` are at hand.
pub fn page_for_request(
    state: &AppState,
    jar: CookieJar,
    request: &authorize::AuthorizationRequest,
    client: &idp_core::client::Client,
) -> Response {
    render(
        state,
        jar,
        request.id.clone(),
        Some(client.name.clone()),
        &request.acr_values,
        String::new(),
        None,
    )
}

/// The login page; never cached.
fn render(
    state: &AppState,
    jar: CookieJar,
    req: String,
    client_name: Option<String>,
    acr_values: &[String],
    username: String,
    error: Option<String>,
) -> Response {
    let spid = crate::spid::chooser(state, &req, acr_values);
    let password_allowed = spid.as_ref().is_none_or(|c| c.required_level.is_none());
    let (jar, csrf) = crate::pages::csrf::token(state, jar);
    let body = page(&LoginPage {
        req,
        csrf,
        username,
        client_name,
        error,
        spid,
        password_allowed,
    });
    // The form names a parked request and carries a token bound to this browser.
    super::no_store((jar, body).into_response())
}

pub async fn page_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<PageParams>,
) -> Result<Response, AppError> {
    page_handler(&state, jar, p.req, String::new(), None).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    crate::pages::ClientIp(ip): crate::pages::ClientIp,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    if !crate::pages::csrf::verify(&state, &jar, &form.csrf) {
        return page_handler(
            &state,
            jar,
            form.req,
            form.username,
            Some("La pagina di accesso è scaduta: inserisci di nuovo le credenziali.".into()),
        )
        .await;
    }
    let username = form.username.trim().to_string();
    if username.is_empty() || form.password.is_empty() {
        return page_handler(
            &state,
            jar,
            form.req,
            username,
            Some("Inserisci username e password.".into()),
        )
        .await;
    }
    // Lockout: too many wrong passwords for this username or from this address.
    let limiter = crate::pages::limiter(&state);
    let account_key = username.to_lowercase();
    if let Some((limit, wait)) = limiter
        .locked_either(
            (&LOGIN_ACCOUNT, account_key.as_str()),
            (&LOGIN_ADDRESS, ip.as_str()),
        )
        .await?
    {
        tracing::info!(limit, "sign-in refused: locked");
        state.metrics.login("password", "locked");
        state
            .audit(
                AuditEvent::new(AuditKind::Lockout)
                    .ip(ip.as_str())
                    .detail(serde_json::json!({ "username": username, "limit": limit })),
            )
            .await;
        return page_handler(&state, jar, form.req, username, Some(wait_message_it(wait))).await;
    }
    let outcome = state
        .directory
        .sign_in(&username, Password::new(form.password))
        .await?;
    state.metrics.login("password", outcome_label(&outcome));
    let event = sign_in_event(&outcome, &username, &ip);
    let refusal = match outcome {
        SignIn::Authenticated(account) => {
            // The audit record, the end of the failure count, the new session and the
            // read of the parked request are independent: sent together, one round trip
            // to the database and one to the cache instead of four in a row.
            let ((), reset, started, request) = tokio::join!(
                state.audit(event),
                limiter.reset(&LOGIN_ACCOUNT, &account_key),
                crate::pages::start_session(&state, jar, &account),
                authorize::parked(&state, &form.req),
            );
            reset?;
            let (jar, session) = started?;
            return Ok(crate::pages::continue_after_sign_in(
                &state, jar, &form.req, request, session,
            )
            .await);
        }
        SignIn::MustChangePassword(account) => {
            state.audit(event).await;
            limiter.reset(&LOGIN_ACCOUNT, &account_key).await?;
            return crate::pages::password_change::begin_forced(&state, jar, &account, &form.req)
                .await;
        }
        SignIn::TemporaryPasswordExpired => {
            "La password provvisoria è scaduta. Usa «Password dimenticata?» per riceverne una nuova."
        }
        SignIn::Disabled => "L'utenza è disabilitata. Contatta l'assistenza.",
        SignIn::InvalidCredentials | SignIn::NoPassword => "Username o password non corretti.",
    };
    state.audit(event).await;
    tracing::info!(username = %username, "password sign-in refused");
    limiter.record(&LOGIN_ACCOUNT, &account_key).await?;
    limiter.record(&LOGIN_ADDRESS, &ip).await?;
    page_handler(&state, jar, form.req, username, Some(refusal.into())).await
}

/// The home page: the Area riservata when signed in, else the way in.
pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    if session_cookie::current(&state, &jar).await?.is_some() {
        return Ok(Redirect::to("/area-riservata").into_response());
    }
    let (jar, csrf) = crate::pages::csrf::token(&state, jar);
    Ok((jar, page(&HomePage { name: None, csrf })).into_response())
}

/// The audit record of a password sign-in: success (for a temporary password too: the
/// password was right) or failure, with the username as typed.
fn sign_in_event(outcome: &SignIn, username: &str, ip: &str) -> AuditEvent {
    let event = match outcome {
        SignIn::Authenticated(a) | SignIn::MustChangePassword(a) => {
            AuditEvent::new(AuditKind::LoginSuccess).account(a.id.as_str())
        }
        _ => AuditEvent::new(AuditKind::LoginFailure),
    };
    event.ip(ip).detail(serde_json::json!({
        "method": "password",
        "outcome": outcome_label(outcome),
        "username": username,
    }))
}

/// The `outcome` label of the sign-in metric (and of the audit record).
fn outcome_label(outcome: &SignIn) -> &'static str {
    match outcome {
        SignIn::Authenticated(_) => "success",
        SignIn::MustChangePassword(_) => "must_change_password",
        SignIn::TemporaryPasswordExpired => "temporary_password_expired",
        SignIn::Disabled => "disabled",
        SignIn::InvalidCredentials => "invalid_credentials",
        SignIn::NoPassword => "no_password",
    }
}
