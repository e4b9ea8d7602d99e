//! "Registrati" over HTTP: four steps on one address, the draft kept in the cache
//! under a random cookie (so nothing the person typed travels back and forth in hidden
//! fields), then the confirmation link. The rules are in `idp_core::registration`.

use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::cache::{get_json, put_json};
use idp_core::directory::Account;
use idp_core::password::Password;
use idp_core::rate_limit::{MAIL_FORM_ADDRESS, MAIL_FORM_TARGET, REGISTRATION_ADDRESS};
use idp_core::registration::{
    ALREADY_REGISTERED_IT, Confirmation, Draft, FieldErrors, PRIVACY_VERSION, Step,
    check_fiscal_code, check_personal_data, parse_date,
};
use idp_core::secret::{TokenHash, generate_token};
use idp_core::security_check;
use serde::Deserialize;

use super::{ClientIp, Field, MessagePage, csrf, mail, over_limit, urlencode};
use crate::error::AppError;
use crate::oidc::session_cookie;
use crate::state::AppState;
use crate::web::page;

const DRAFT_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Template)]
#[template(path = "registration.html")]
struct RegistrationPage {
    step: u8,
    step_labels: [&'static str; 4],
    csrf: String,
    error: Option<String>,
    fields: Vec<Field>,
    check_id: String,
    draft: Draft,
    birth_date_it: String,
    sex_error: Option<String>,
    privacy_error: Option<String>,
    processing_error: Option<String>,
    privacy_version: &'static str,
}

fn draft_cookie(state: &AppState) -> &'static str {
    if session_cookie::secure(state) {
        "__Host-idp_registration"
    } else {
        "idp_registration"
    }
}

fn draft_key(token: &str) -> String {
    format!("registration:{}", TokenHash::of(token).as_str())
}

/// The browser's draft (a new one, with its cookie, when it has none).
async fn load(state: &AppState, jar: CookieJar) -> Result<(CookieJar, String, Draft), AppError> {
    if let Some(token) = jar.get(draft_cookie(state)).map(|c| c.value().to_string())
        && let Some(draft) = get_json::<Draft>(&*state.cache, &draft_key(&token)).await?
    {
        return Ok((jar, token, draft));
    }
    let token = generate_token().expose().to_string();
    let jar = jar.add(session_cookie::build(
        state,
        draft_cookie(state),
        token.clone(),
    ));
    Ok((jar, token, Draft::default()))
}

async fn save(state: &AppState, token: &str, draft: &Draft) -> Result<(), AppError> {
    put_json(&*state.cache, &draft_key(token), draft, DRAFT_TTL).await?;
    Ok(())
}

fn field(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    value: &str,
    errors: &FieldErrors,
    autocomplete: &'static str,
) -> Field {
    Field {
        name,
        label,
        kind,
        value: value.to_string(),
        error: errors.get(name).cloned(),
        autocomplete,
        hint: String::new(),
    }
}

async fn render(
    state: &AppState,
    jar: CookieJar,
    draft: Draft,
    errors: FieldErrors,
    error: Option<String>,
) -> Result<Response, AppError> {
    let (jar, csrf) = csrf::token(state, jar);
    let mut fields = Vec::new();
    let mut check_id = String::new();
    match draft.step {
        Step::FiscalCode => {
            let challenge = security_check::new_challenge(&*state.cache).await?;
            check_id = challenge.id;
            fields.push(field(
                "fiscal_code",
                "Codice fiscale",
                "text",
                &draft.fiscal_code,
                &errors,
                "off",
            ));
            let mut check = field(
                "check_answer",
                "Domanda di controllo",
                "text",
                "",
                &errors,
                "off",
            );
            check.hint = format!(
                "{} Scrivi il risultato in cifre o in lettere.",
                challenge.question
            );
            fields.push(check);
        }
        Step::PersonalData => {
            fields.push(field(
                "given_name",
                "Nome",
                "text",
                &draft.given_name,
                &errors,
                "given-name",
            ));
            fields.push(field(
                "family_name",
                "Cognome",
                "text",
                &draft.family_name,
                &errors,
                "family-name",
            ));
            fields.push(field(
                "birth_date",
                "Data di nascita",
                "date",
                &draft.birth_date,
                &errors,
                "bday",
            ));
            fields.push(field(
                "birth_place",
                "Luogo di nascita (comune o stato estero)",
                "text",
                &draft.birth_place,
                &errors,
                "off",
            ));
            fields.push(field(
                "email",
                "Email personale",
                "email",
                &draft.email,
                &errors,
                "email",
            ));
            fields.push(field(
                "email_repeat",
                "Ripeti l'email personale",
                "email",
                &draft.email_repeat,
                &errors,
                "email",
            ));
        }
        Step::Review | Step::Done => {}
    }
    let birth_date_it = parse_date(&draft.birth_date)
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_default();
    let body = page(&RegistrationPage {
        step: draft.step.number(),
        step_labels: ["Codice fiscale", "Dati personali", "Riepilogo", "Fine"],
        csrf,
        error,
        fields,
        check_id,
        sex_error: errors.get("sex").cloned(),
        privacy_error: errors.get("privacy").cloned(),
        processing_error: errors.get("data_processing").cloned(),
        draft,
        birth_date_it,
        privacy_version: PRIVACY_VERSION,
    });
    Ok((jar, body).into_response())
}

pub async fn get(State(state): State<AppState>, jar: CookieJar) -> Result<Response, AppError> {
    let (jar, token, draft) = load(&state, jar).await?;
    if draft.step == Step::Done {
        // Shown once; a reload starts a new registration.
        state.cache.delete(&draft_key(&token)).await?;
    }
    render(&state, jar, draft, FieldErrors::new(), None).await
}

#[derive(Deserialize, Default)]
pub struct StepForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    fiscal_code: Option<String>,
    #[serde(default)]
    check_id: String,
    #[serde(default)]
    check_answer: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    birth_place: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_repeat: String,
    #[serde(default)]
    privacy: Option<String>,
    #[serde(default)]
    data_processing: Option<String>,
}

pub async fn post(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    Form(f): Form<StepForm>,
) -> Result<Response, AppError> {
    let (jar, token, mut draft) = load(&state, jar).await?;
    if !csrf::verify(&state, &jar, &f.csrf) {
        return render(
            &state,
            jar,
            draft,
            FieldErrors::new(),
            Some(csrf::EXPIRED_IT.into()),
        )
        .await;
    }
    if let Some(wait) = over_limit(&state, &[(&REGISTRATION_ADDRESS, &ip)]).await? {
        return render(&state, jar, draft, FieldErrors::new(), Some(wait)).await;
    }
    let mut errors = FieldErrors::new();
    // The step is the server's, never the form's.
    match draft.step {
        Step::FiscalCode => {
            draft.fiscal_code = f.fiscal_code.unwrap_or_default().trim().to_uppercase();
            let check_ok =
                security_check::verify(&*state.cache, &f.check_id, &f.check_answer).await?;
            if !check_ok {
                errors.insert(
                    "check_answer",
                    "La risposta alla domanda di controllo non è corretta: rispondi alla nuova domanda".into(),
                );
            }
            match check_fiscal_code(&draft.fiscal_code) {
                Err(e) => {
                    errors.insert("fiscal_code", e);
                }
                Ok(fc) if check_ok => {
                    if state.store.account_by_fiscal_code(&fc).await?.is_some() {
                        errors.insert("fiscal_code", ALREADY_REGISTERED_IT.into());
                    } else {
                        draft.fiscal_code = fc.as_str().to_string();
                    }
                }
                Ok(_) => {}
            }
            if errors.is_empty() {
                draft.step = Step::PersonalData;
            }
        }
        Step::PersonalData => {
            draft.given_name = f.given_name.trim().to_string();
            draft.family_name = f.family_name.trim().to_string();
            draft.birth_date = f.birth_date.trim().to_string();
            draft.birth_place = f.birth_place.trim().to_string();
            draft.sex = f.sex.trim().to_string();
            draft.email = f.email.trim().to_string();
            draft.email_repeat = f.email_repeat.trim().to_string();
            draft.privacy = f.privacy.is_some();
            draft.data_processing = f.data_processing.is_some();
            match check_personal_data(&draft) {
                Ok(_) => draft.step = Step::Review,
                Err(e) => errors = e,
            }
        }
        Step::Review if f.action == "modifica" => draft.step = Step::PersonalData,
        Step::Review => match check_personal_data(&draft) {
            Err(e) => {
                draft.step = Step::PersonalData;
                errors = e;
            }
            Ok(application) => {
                if state
                    .store
                    .account_by_fiscal_code(&application.fiscal_code)
                    .await?
                    .is_some()
                {
                    draft.step = Step::FiscalCode;
                    errors.insert("fiscal_code", ALREADY_REGISTERED_IT.into());
                } else if let Some(wait) = over_limit(
                    &state,
                    &[
                        (&MAIL_FORM_ADDRESS, &ip),
                        (&MAIL_FORM_TARGET, application.email.as_str()),
                    ],
                )
                .await?
                {
                    save(&state, &token, &draft).await?;
                    return render(&state, jar, draft, errors, Some(wait)).await;
                } else {
                    let public_url = &state.config.server.public_url;
                    idp_core::registration::submit_and_mail(&*state.store, &application, |link| {
                        let url = format!(
                            "{public_url}/registrati/conferma?token={}",
                            urlencode(link.expose())
                        );
                        mail(
                            &application.email,
                            "Conferma la registrazione",
                            format!(
                                "Gentile {} {},\n\nper completare la registrazione ai servizi del Ministero \
                                 dell'Istruzione e del Merito apri questo link entro 24 ore:\n\n{url}\n\n\
                                 Il link si può usare una sola volta. Se non hai chiesto tu la registrazione, \
                                 ignora questo messaggio.\n",
                                application.given_name, application.family_name
                            ),
                        )
                    })
                    .await?;
                    state.wake_mail_sender();
                    tracing::info!("registration submitted: confirmation link queued");
                    draft.step = Step::Done;
                }
            }
        },
        Step::Done => {}
    }
    save(&state, &token, &draft).await?;
    if errors.is_empty() {
        return Ok((jar, Redirect::to("/registrati")).into_response());
    }
    render(&state, jar, draft, errors, None).await
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

pub async fn confirm_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<TokenParam>,
) -> Result<Response, AppError> {
    let link = idp_core::link::check(
        &*state.store,
        idp_core::link::LinkPurpose::Registration,
        &p.token,
    )
    .await?;
    let (jar, csrf) = csrf::token(&state, jar);
    let mut msg = MessagePage::back_to_login("Conferma la registrazione");
    if matches!(link, idp_core::link::LinkState::Valid(_)) {
        msg.paragraphs = vec![
            "Per completare la registrazione scegli «Conferma la registrazione». Riceverai un'email con lo username e una password provvisoria.".into(),
        ];
        msg.action = "/registrati/conferma";
        msg.action_label = "Conferma la registrazione";
        msg.csrf = csrf;
        msg.token = p.token;
        msg.link_href = "";
    } else {
        msg.error = Some(link.refusal_it().into());
    }
    Ok((jar, page(&msg)).into_response())
}

pub async fn confirm_post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<TokenForm>,
) -> Result<Response, AppError> {
    let mut msg = MessagePage::back_to_login("Conferma la registrazione");
    if !csrf::verify(&state, &jar, &f.csrf) {
        msg.error = Some(csrf::EXPIRED_IT.into());
        return Ok(page(&msg));
    }
    let public_url = state.config.server.public_url.clone();
    let credentials = move |account: &Account, temporary_password: &Password, expires_at: i64| {
        let until = chrono::DateTime::from_timestamp(expires_at, 0)
            .map(|d| d.format("%d/%m/%Y").to_string())
            .unwrap_or_default();
        account.reference_email().map(|to| {
            mail(
                to,
                "Le tue credenziali di accesso",
                format!(
                    "Gentile {},\n\nla registrazione è completata. Queste sono le tue credenziali:\n\n\
                     Username: {}\nPassword provvisoria: {}\n\n\
                     La password provvisoria vale fino al {until}: al primo accesso ti verrà chiesto \
                     di sceglierne una nuova.\n\nAccedi da {public_url}/login\n",
                    account.full_name(),
                    account.username,
                    temporary_password.expose(),
                ),
            )
        })
    };
    let outcome = idp_core::registration::confirm(
        &state.directory,
        &*state.store,
        &*state.store,
        &f.token,
        state.config.passwords.temporary_validity_days,
        &credentials,
    )
    .await?;
    match outcome {
        Confirmation::Created { account, .. } => {
            state.wake_mail_sender();
            tracing::info!(account = %account.id, "registration confirmed; credentials mail queued");
            msg.title = "Registrazione completata";
            msg.paragraphs = vec![
                "La registrazione è confermata. Ti abbiamo inviato un'email con lo username e una password provvisoria: al primo accesso ti verrà chiesto di cambiarla.".into(),
            ];
        }
        Confirmation::AlreadyRegistered => msg.error = Some(ALREADY_REGISTERED_IT.into()),
        Confirmation::Refused(state) => msg.error = Some(state.refusal_it().into()),
    }
    Ok(page(&msg))
}
