//! The username and password login page. A parked authorization request (`req`) is
//! resumed after a successful sign-in. The form is bound to the browser that opened
//! it with a double-submit cookie, so a third-party site cannot sign a victim into
//! the attacker's account (login CSRF).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::directory::SignIn;
use idp_core::oidc::ACR_PASSWORD;
use idp_core::password::Password;
use idp_core::secret::generate_token;
use serde::Deserialize;
use subtle::ConstantTimeEq;

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

async fn client_name(state: &AppState, req: &str) -> Result<Option<String>, AppError> {
    let Some(request) = authorize::parked(state, req).await? else {
        return Ok(None);
    };
    let Ok(id) = idp_core::client::ClientId::parse(&request.client_id) else {
        return Ok(None);
    };
    Ok(state.clients.get(&id).await?.map(|c| c.name.clone()))
}

/// A fresh form token, set as a cookie and echoed in the form.
fn form_token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(existing) = jar.get(session_cookie::login_name(state)) {
        let value = existing.value().to_string();
        return (jar, value);
    }
    let token = generate_token().expose().to_string();
    let jar = jar.add(session_cookie::build(
        state,
        session_cookie::login_name(state),
        token.clone(),
    ));
    (jar, token)
}

pub async fn page_handler(
    state: &AppState,
    jar: CookieJar,
    req: String,
    username: String,
    error: Option<String>,
) -> Result<Response, AppError> {
    let client_name = client_name(state, &req).await?;
    let (jar, csrf) = form_token(state, jar);
    let body = page(&LoginPage {
        req,
        csrf,
        username,
        client_name,
        error,
    });
    Ok((jar, body).into_response())
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
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let cookie = jar
        .get(session_cookie::login_name(&state))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let csrf_ok = !cookie.is_empty() && bool::from(cookie.as_bytes().ct_eq(form.csrf.as_bytes()));
    if !csrf_ok {
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
    let outcome = state
        .directory
        .sign_in(&username, Password::new(form.password))
        .await?;
    let refusal = match outcome {
        SignIn::Authenticated(account) => {
            let (token, session) = state
                .sessions
                .start(account.id.as_str(), ACR_PASSWORD, vec!["pwd".into()])
                .await?;
            tracing::info!(account = %account.id, sid = %session.sid, "password sign-in");
            let jar = jar.add(session_cookie::build(
                &state,
                session_cookie::session_name(&state),
                token.expose().to_string(),
            ));
            let next = if form.req.is_empty() {
                "/".to_string()
            } else {
                format!("/authorize/resume?req={}", form.req)
            };
            return Ok((jar, Redirect::to(&next)).into_response());
        }
        SignIn::MustChangePassword(_) => {
            "La password è provvisoria: è necessario modificarla prima di accedere ai servizi."
        }
        SignIn::TemporaryPasswordExpired => {
            "La password provvisoria è scaduta. Usa «Password dimenticata?» per riceverne una nuova."
        }
        SignIn::Disabled => "L'utenza è disabilitata. Contatta l'assistenza.",
        SignIn::InvalidCredentials | SignIn::NoPassword => "Username o password non corretti.",
    };
    tracing::info!(username = %username, "password sign-in refused");
    page_handler(&state, jar, form.req, username, Some(refusal.into())).await
}

/// The home page: who is signed in, and a way out.
pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    let session = session_cookie::current(&state, &jar).await?;
    let name = match session {
        Some((_, s)) => state
            .store
            .account_by_id(&idp_core::account::AccountId::from_string(s.account_id))
            .await?
            .map(|a| a.full_name()),
        None => None,
    };
    let (jar, csrf) = form_token(&state, jar);
    Ok((jar, page(&HomePage { name, csrf })).into_response())
}
