//! The Area riservata: "I tuoi dati personali" (the personal email changes only once
//! the new address follows a link; the institutional one is shown, never edited) and
//! the way to "Modifica password" (in `password_change`).

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::account::Email;
use idp_core::directory::Account;
use idp_core::email_change;
use idp_core::link::{self, LinkPurpose, LinkState};
use idp_core::rate_limit::{MAIL_FORM_ADDRESS, MAIL_FORM_TARGET};
use serde::Deserialize;

use super::password_change::initials;
use super::{ClientIp, Field, MessagePage, csrf, mail, over_limit, signed_in, urlencode};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page;

#[derive(Template)]
#[template(path = "account_area.html")]
struct AreaPage {
    account: Account,
    user_name: Option<String>,
    initials: String,
    csrf: String,
    fiscal_code: String,
    birth_date: String,
    birth_place: String,
    sex: String,
    institutional_email: String,
    personal_email: String,
    has_personal: bool,
    reference_is_institutional: bool,
    fields: Vec<Field>,
    notice: Option<String>,
    error: Option<String>,
}

const NOT_GIVEN: &str = "non indicato";

fn area_page(
    account: Account,
    csrf: String,
    new_email: &str,
    email_error: Option<String>,
) -> AreaPage {
    AreaPage {
        user_name: Some(account.full_name()),
        initials: initials(&account),
        csrf,
        fiscal_code: account
            .fiscal_code
            .as_ref()
            .map_or(NOT_GIVEN.into(), |f| f.as_str().to_string()),
        birth_date: account
            .birth_date
            .map_or(NOT_GIVEN.into(), |d| d.format("%d/%m/%Y").to_string()),
        birth_place: account
            .birth_place
            .clone()
            .unwrap_or_else(|| NOT_GIVEN.into()),
        sex: match account.sex {
            Some(idp_core::fiscal_code::Sex::Female) => "Femmina".into(),
            Some(idp_core::fiscal_code::Sex::Male) => "Maschio".into(),
            None => NOT_GIVEN.into(),
        },
        institutional_email: account
            .institutional_email
            .as_ref()
            .map_or("nessuna".into(), |e| e.to_string()),
        personal_email: account
            .personal_email
            .as_ref()
            .map_or("nessuna".into(), |e| e.to_string()),
        has_personal: account.personal_email.is_some(),
        reference_is_institutional: account.institutional_email.is_some(),
        fields: vec![Field {
            name: "email",
            label: "Nuova email personale",
            kind: "email",
            value: new_email.to_string(),
            error: email_error,
            autocomplete: "email",
            hint: String::new(),
        }],
        notice: None,
        error: None,
        account,
    }
}

pub async fn show(State(state): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    let Some((account, _)) = signed_in(&state, &jar).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (jar, csrf) = csrf::token(&state, jar);
    Ok((jar, page(&area_page(account, csrf, "", None))).into_response())
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn email_post(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Form(f): Form<EmailForm>,
) -> Result<Response, AppError> {
    let Some((account, _)) = signed_in(&state, &jar).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let csrf_ok = csrf::verify(&state, &jar, &f.csrf);
    let (jar, csrf) = csrf::token(&state, jar);
    let typed = f.email.trim().to_string();
    if !csrf_ok {
        let mut p = area_page(account, csrf, &typed, None);
        p.error = Some(csrf::EXPIRED_IT.into());
        return Ok((jar, page(&p)).into_response());
    }
    let email = match Email::parse(&typed) {
        Ok(e) => e,
        Err(e) => {
            let message = if typed.is_empty() {
                "Inserisci il nuovo indirizzo email".to_string()
            } else {
                e.message_it()
            };
            return Ok(
                (jar, page(&area_page(account, csrf, &typed, Some(message)))).into_response(),
            );
        }
    };
    if account.personal_email.as_ref() == Some(&email) {
        let message = "È già la tua email personale".to_string();
        return Ok((jar, page(&area_page(account, csrf, &typed, Some(message)))).into_response());
    }
    if let Some(wait) = over_limit(
        &state,
        &[
            (&MAIL_FORM_ADDRESS, &ip),
            (&MAIL_FORM_TARGET, &format!("email-change:{}", account.id)),
        ],
    )
    .await?
    {
        let mut p = area_page(account, csrf, &typed, None);
        p.error = Some(wait);
        return Ok((jar, page(&p)).into_response());
    }
    let public_url = &state.config.server.public_url;
    email_change::request(&*state.store, &account, &email, |token| {
        let url = format!(
            "{public_url}/area-riservata/email/conferma?token={}",
            urlencode(token.expose())
        );
        mail(
            &email,
            "Conferma il nuovo indirizzo email",
            format!(
                "Gentile {},\n\nper usare questo indirizzo come email personale dell'utenza {} apri \
                 questo link entro 24 ore:\n\n{url}\n\nSe non hai fatto tu la richiesta, ignora questo \
                 messaggio.\n",
                account.full_name(),
                account.username
            ),
        )
    })
    .await?;
    state.wake_mail_sender();
    tracing::info!(account = %account.id, "email change requested");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::EmailChange)
                .account(account.id.as_str())
                .ip(ip.as_str())
                .detail(serde_json::json!({ "step": "requested" })),
        )
        .await;
    let mut p = area_page(account, csrf, "", None);
    p.notice = Some(format!(
        "Ti abbiamo inviato un link all'indirizzo {email}: l'email personale cambierà quando lo avrai aperto."
    ));
    Ok((jar, page(&p)).into_response())
}

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

fn confirm_page() -> MessagePage {
    MessagePage {
        title: "Conferma il nuovo indirizzo email",
        link_href: "/area-riservata",
        link_label: "Vai all'Area riservata",
        ..Default::default()
    }
}

pub async fn email_confirm_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<TokenParam>,
) -> Result<Response, AppError> {
    let state_of_link = link::check(&*state.store, LinkPurpose::EmailChange, &p.token).await?;
    let (jar, csrf) = csrf::token(&state, jar);
    let mut msg = confirm_page();
    if matches!(state_of_link, LinkState::Valid(_)) {
        msg.paragraphs =
            vec!["Scegli «Conferma l'indirizzo» per usarlo come email personale.".into()];
        msg.action = "/area-riservata/email/conferma";
        msg.action_label = "Conferma l'indirizzo";
        msg.csrf = csrf;
        msg.token = p.token;
    } else {
        msg.error = Some(state_of_link.refusal_it().into());
    }
    Ok((jar, page(&msg)).into_response())
}

pub async fn email_confirm_post(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Form(f): Form<TokenForm>,
) -> Result<Response, AppError> {
    let mut msg = confirm_page();
    if !csrf::verify(&state, &jar, &f.csrf) {
        msg.error = Some(csrf::EXPIRED_IT.into());
        return Ok(page(&msg));
    }
    match email_change::confirm(&state.directory, &*state.store, &f.token).await? {
        Ok((account, email)) => {
            tracing::info!(account = %account.id, "personal email changed");
            state
                .audit(
                    idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::EmailChange)
                        .account(account.id.as_str())
                        .ip(ip.as_str())
                        .detail(serde_json::json!({ "step": "confirmed" })),
                )
                .await;
            msg.paragraphs = vec![format!("La tua email personale ora è {email}.")];
        }
        Err(refusal) => msg.error = Some(refusal.refusal_it().into()),
    }
    Ok(page(&msg))
}
