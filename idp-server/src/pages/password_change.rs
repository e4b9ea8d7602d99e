//! Choosing a new password. The forced change after a temporary password happens
//! before any SSO session exists: the login only leaves a pending change in the cache
//! (named by a random cookie) with the parked request, and only a password that meets
//! the policy turns it into a session and resumes the request. "Modifica password" in
//! the Area riservata needs the current password and ends the other sessions.

use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::account::AccountId;
use idp_core::cache::{get_json, put_json};
use idp_core::directory::{Account, SignIn};
use idp_core::password::Password;
use idp_core::password_change::{PendingChange, problems};
use idp_core::rate_limit::{LOGIN_ACCOUNT, wait_message_it};
use idp_core::secret::{TokenHash, generate_token};
use serde::Deserialize;

use super::{continue_after_sign_in, csrf, end_other_sessions, limiter, signed_in, start_session};
use crate::error::AppError;
use crate::oidc::session_cookie;
use crate::state::AppState;
use crate::web::page;

/// How long the person has to choose the new password after signing in.
const PENDING_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Template)]
#[template(path = "password_form.html")]
pub struct PasswordForm {
    pub title: &'static str,
    pub intro: String,
    pub action: &'static str,
    pub csrf: String,
    pub token: String,
    pub rules: Vec<String>,
    pub show_current: bool,
    pub current_error: Option<String>,
    pub problems: Vec<String>,
    pub error: Option<String>,
    pub submit_label: &'static str,
    pub done: Option<String>,
    pub done_href: String,
    pub done_label: &'static str,
    pub area: bool,
    pub user_name: Option<String>,
    pub initials: String,
}

impl PasswordForm {
    pub fn new(state: &AppState, title: &'static str, action: &'static str, csrf: String) -> Self {
        PasswordForm {
            title,
            intro: String::new(),
            action,
            csrf,
            token: String::new(),
            rules: state.directory.policy().rules_it(),
            show_current: false,
            current_error: None,
            problems: Vec::new(),
            error: None,
            submit_label: "Salva la nuova password",
            done: None,
            done_href: "/login".into(),
            done_label: "Torna alla login",
            area: false,
            user_name: None,
            initials: String::new(),
        }
    }

    pub fn signed_in_as(mut self, account: &Account) -> Self {
        self.user_name = Some(account.full_name());
        self.initials = initials(account);
        self
    }
}

pub fn initials(account: &Account) -> String {
    account
        .given_name
        .chars()
        .take(1)
        .chain(account.family_name.chars().take(1))
        .flat_map(char::to_uppercase)
        .collect()
}

fn pending_cookie(state: &AppState) -> &'static str {
    if session_cookie::secure(state) {
        "__Host-idp_pwchange"
    } else {
        "idp_pwchange"
    }
}

fn pending_key(token: &str) -> String {
    format!("pwchange:{}", TokenHash::of(token).as_str())
}

/// Called by the login for a correct temporary password: no session, only a pending
/// change, then the change page.
pub async fn begin_forced(
    state: &AppState,
    jar: CookieJar,
    account: &Account,
    req: &str,
) -> Result<Response, AppError> {
    let token = generate_token();
    let pending = PendingChange {
        account_id: account.id.as_str().to_string(),
        req: req.to_string(),
    };
    put_json(
        &*state.cache,
        &pending_key(token.expose()),
        &pending,
        PENDING_TTL,
    )
    .await?;
    tracing::info!(account = %account.id, "temporary password: change required");
    let jar = jar.add(session_cookie::build(
        state,
        pending_cookie(state),
        token.expose().to_string(),
    ));
    Ok((jar, Redirect::to("/cambio-password")).into_response())
}

async fn pending(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<(String, PendingChange, Account)>, AppError> {
    let Some(token) = jar
        .get(pending_cookie(state))
        .map(|c| c.value().to_string())
    else {
        return Ok(None);
    };
    let Some(p) = get_json::<PendingChange>(&*state.cache, &pending_key(&token)).await? else {
        return Ok(None);
    };
    let account = state
        .store
        .account_by_id(&AccountId::from_string(p.account_id.clone()))
        .await?;
    Ok(account.map(|a| (token, p, a)))
}

fn forced_form(state: &AppState, csrf: String) -> PasswordForm {
    let mut form = PasswordForm::new(
        state,
        "Cambia la password provvisoria",
        "/cambio-password",
        csrf,
    );
    form.intro = "Stai usando una password provvisoria: prima di accedere ai servizi devi sceglierne una nuova.".into();
    form.submit_label = "Cambia password e accedi";
    form
}

fn back_to_login() -> Response {
    Redirect::to("/login").into_response()
}

pub async fn forced_get(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, AppError> {
    if pending(&state, &jar).await?.is_none() {
        return Ok(back_to_login());
    }
    let (jar, csrf) = csrf::token(&state, jar);
    Ok((jar, page(&forced_form(&state, csrf))).into_response())
}

#[derive(Deserialize)]
pub struct PasswordFields {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub current: String,
    #[serde(default)]
    pub new_password: String,
    #[serde(default)]
    pub repeat_password: String,
}

pub async fn forced_post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<PasswordFields>,
) -> Result<Response, AppError> {
    let Some((token, pending, account)) = pending(&state, &jar).await? else {
        return Ok(back_to_login());
    };
    let csrf_ok = csrf::verify(&state, &jar, &f.csrf);
    let (jar, csrf) = csrf::token(&state, jar);
    let mut form = forced_form(&state, csrf);
    if !csrf_ok {
        form.error = Some(csrf::EXPIRED_IT.into());
        return Ok((jar, page(&form)).into_response());
    }
    let found = problems(
        &state.directory,
        &account,
        &f.new_password,
        &f.repeat_password,
    )
    .await?;
    if !found.is_empty() {
        form.problems = found;
        return Ok((jar, page(&form)).into_response());
    }
    state
        .directory
        .set_password(&account, Password::new(f.new_password))
        .await?;
    state.cache.delete(&pending_key(&token)).await?;
    tracing::info!(account = %account.id, "temporary password replaced");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::PasswordChange)
                .account(account.id.as_str())
                .detail(serde_json::json!({ "via": "temporary_password" })),
        )
        .await;
    let jar = jar.add(session_cookie::removal(&state, pending_cookie(&state)));
    let (jar, session) = start_session(&state, jar, &account).await?;
    let request = crate::oidc::authorize::parked(&state, &pending.req).await;
    Ok(continue_after_sign_in(&state, jar, &pending.req, request, session).await)
}

fn area_form(state: &AppState, csrf: String, account: &Account) -> PasswordForm {
    let mut form = PasswordForm::new(state, "Modifica password", "/area-riservata/password", csrf)
        .signed_in_as(account);
    form.intro = "Per sicurezza inserisci la password attuale. Dopo la modifica, le altre sessioni aperte con la tua utenza verranno chiuse.".into();
    form.show_current = true;
    form.area = true;
    form.done_href = "/area-riservata".into();
    form.done_label = "Torna all'Area riservata";
    form
}

pub async fn area_get(State(state): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    let Some((account, _)) = signed_in(&state, &jar).await? else {
        return Ok(back_to_login());
    };
    let (jar, csrf) = csrf::token(&state, jar);
    Ok((jar, page(&area_form(&state, csrf, &account))).into_response())
}

pub async fn area_post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<PasswordFields>,
) -> Result<Response, AppError> {
    let Some((account, session)) = signed_in(&state, &jar).await? else {
        return Ok(back_to_login());
    };
    let csrf_ok = csrf::verify(&state, &jar, &f.csrf);
    let (jar, csrf) = csrf::token(&state, jar);
    let mut form = area_form(&state, csrf, &account);
    if !csrf_ok {
        form.error = Some(csrf::EXPIRED_IT.into());
        return Ok((jar, page(&form)).into_response());
    }
    let username = account.username.as_str();
    let limiter = limiter(&state);
    if let Some(wait) = limiter.locked(&LOGIN_ACCOUNT, username).await? {
        form.error = Some(wait_message_it(wait));
        return Ok((jar, page(&form)).into_response());
    }
    let current_ok = matches!(
        state
            .directory
            .sign_in(username, Password::new(f.current))
            .await?,
        SignIn::Authenticated(_)
    );
    if !current_ok {
        limiter.record(&LOGIN_ACCOUNT, username).await?;
        form.current_error = Some("La password attuale non è corretta".into());
    }
    let found = problems(
        &state.directory,
        &account,
        &f.new_password,
        &f.repeat_password,
    )
    .await?;
    if !current_ok || !found.is_empty() {
        form.problems = found;
        return Ok((jar, page(&form)).into_response());
    }
    limiter.reset(&LOGIN_ACCOUNT, username).await?;
    state
        .directory
        .set_password(&account, Password::new(f.new_password))
        .await?;
    end_other_sessions(&state, &account, Some(&session.sid)).await?;
    tracing::info!(account = %account.id, "password changed from the Area riservata");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::PasswordChange)
                .account(account.id.as_str())
                .detail(serde_json::json!({ "via": "area_riservata" })),
        )
        .await;
    form.done = Some("La password è stata modificata. Le altre sessioni aperte con la tua utenza sono state chiuse.".into());
    Ok((jar, page(&form)).into_response())
}
