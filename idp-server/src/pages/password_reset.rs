//! "Password dimenticata?" over HTTP. The request page answers the same thing, at
//! the same speed, for every username: the lookup and the mail happen in a background
//! task after the answer is decided. The reset page applies the policy, spends the
//! link, and ends every SSO session of the account (with back-channel logout).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::account::Email;
use idp_core::directory::Account;
use idp_core::password::Password;
use idp_core::password_change::problems;
use idp_core::password_reset::{self, MINISTRY_GUIDANCE_IT, Request};
use idp_core::rate_limit::{MAIL_FORM_ADDRESS, MAIL_FORM_TARGET};
use idp_core::secret::Secret;
use serde::Deserialize;

use super::password_change::{PasswordFields, PasswordForm};
use super::{
    ClientIp, Field, MessagePage, csrf, end_other_sessions, mail, over_limit, queue_mail, urlencode,
};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page;

#[derive(Template)]
#[template(path = "reset_request.html")]
struct RequestPage {
    csrf: String,
    fields: Vec<Field>,
    error: Option<String>,
    sent: bool,
    ministry_guidance: &'static str,
}

fn request_page(csrf: String, username: &str, field_error: Option<String>) -> RequestPage {
    RequestPage {
        csrf,
        fields: vec![Field {
            name: "username",
            label: "Username",
            kind: "text",
            value: username.to_string(),
            error: field_error,
            autocomplete: "username",
            hint: String::new(),
        }],
        error: None,
        sent: false,
        ministry_guidance: MINISTRY_GUIDANCE_IT,
    }
}

pub async fn request_get(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, AppError> {
    let (jar, csrf) = csrf::token(&state, jar);
    Ok((jar, page(&request_page(csrf, "", None))).into_response())
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
}

pub async fn request_post(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Form(f): Form<RequestForm>,
) -> Result<Response, AppError> {
    let username = f.username.trim().to_lowercase();
    let csrf_ok = csrf::verify(&state, &jar, &f.csrf);
    let (jar, csrf) = csrf::token(&state, jar);
    let mut form = request_page(csrf, &username, None);
    if !csrf_ok {
        form.error = Some(csrf::EXPIRED_IT.into());
        return Ok((jar, page(&form)).into_response());
    }
    if username.is_empty() {
        form.fields[0].error = Some("Inserisci lo username".into());
        return Ok((jar, page(&form)).into_response());
    }
    // Counted per username whether or not it exists, so the limit tells nothing either.
    if let Some(wait) = over_limit(
        &state,
        &[
            (&MAIL_FORM_ADDRESS, &ip),
            (&MAIL_FORM_TARGET, &format!("reset:{username}")),
        ],
    )
    .await?
    {
        form.error = Some(wait);
        return Ok((jar, page(&form)).into_response());
    }
    let background = state.clone();
    tokio::spawn(async move {
        if let Err(e) = send_reset(&background, &username).await {
            tracing::error!(error = %e, "password reset mail not sent");
        }
    });
    form.sent = true;
    Ok((jar, page(&form)).into_response())
}

async fn send_reset(state: &AppState, username: &str) -> idp_core::Result<()> {
    let public_url = state.config.server.public_url.clone();
    let reset_mail = move |to: &Email, account: &Account, token: &Secret| {
        let url = format!(
            "{public_url}/password-dimenticata/nuova?token={}",
            urlencode(token.expose())
        );
        mail(
            to,
            "Reimposta la password",
            format!(
                "Gentile {},\n\nabbiamo ricevuto una richiesta di reimpostare la password dell'utenza \
                 {}. Per scegliere una nuova password apri questo link entro un'ora:\n\n{url}\n\n\
                 Il link si può usare una sola volta. Se non hai fatto tu la richiesta, ignora questo \
                 messaggio: la password attuale resta valida.\n",
                account.full_name(),
                account.username
            ),
        )
    };
    match password_reset::request(&state.directory, &*state.store, username, &reset_mail).await? {
        Request::Link { account, .. } => {
            state.wake_mail_sender();
            tracing::info!(account = %account.id, "password reset link queued");
            Ok(())
        }
        Request::MinistryGuidance { to, account } => {
            tracing::info!(account = %account.id, "password reset refused: ministry account");
            queue_mail(
                state,
                &to,
                "Reimpostazione della password",
                format!(
                    "Gentile {},\n\nabbiamo ricevuto una richiesta di reimpostare la password dell'utenza \
                     {}. {MINISTRY_GUIDANCE_IT}\n",
                    account.full_name(),
                    account.username
                ),
            )
            .await
        }
        Request::Nothing => Ok(()),
    }
}

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

fn reset_form(state: &AppState, csrf: String, token: String) -> PasswordForm {
    let mut form = PasswordForm::new(
        state,
        "Scegli una nuova password",
        "/password-dimenticata/nuova",
        csrf,
    );
    form.token = token;
    form.intro = "Scegli la nuova password della tua utenza. Dopo il cambio, le sessioni aperte con la tua utenza verranno chiuse.".into();
    form
}

fn refused(error: &str) -> Response {
    let mut msg = MessagePage::back_to_login("Reimposta la password");
    msg.error = Some(error.to_string());
    msg.paragraphs = vec!["Puoi chiedere un nuovo link da «Password dimenticata?».".into()];
    page(&msg)
}

pub async fn reset_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<TokenParam>,
) -> Result<Response, AppError> {
    match password_reset::account_of_link(&state.directory, &*state.store, &p.token).await? {
        Err(link) => Ok(refused(link.refusal_it())),
        Ok(_) => {
            let (jar, csrf) = csrf::token(&state, jar);
            Ok((jar, page(&reset_form(&state, csrf, p.token))).into_response())
        }
    }
}

pub async fn reset_post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<PasswordFields>,
) -> Result<Response, AppError> {
    let account =
        match password_reset::account_of_link(&state.directory, &*state.store, &f.token).await? {
            Err(link) => return Ok(refused(link.refusal_it())),
            Ok(a) => a,
        };
    let csrf_ok = csrf::verify(&state, &jar, &f.csrf);
    let (jar, csrf) = csrf::token(&state, jar);
    let mut form = reset_form(&state, csrf, f.token.clone());
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
    if let Err(link) = password_reset::complete(
        &state.directory,
        &*state.store,
        &f.token,
        &account,
        Password::new(f.new_password),
    )
    .await?
    {
        return Ok(refused(link.refusal_it()));
    }
    end_other_sessions(&state, &account, None).await?;
    tracing::info!(account = %account.id, "password reset");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::PasswordReset)
                .account(account.id.as_str())
                .detail(serde_json::json!({ "via": "email_link" })),
        )
        .await;
    form.done =
        Some("La password è stata reimpostata. Ora puoi accedere con la nuova password.".into());
    Ok((jar, page(&form)).into_response())
}
