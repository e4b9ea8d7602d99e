//! After the activation: the mandatory change of the CPT into a personal code, its
//! resend, the recovery of a lost personal code through the recovery question, the
//! "Variazione dati di recapito" and a sample application that asks for the code.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::abilitazione::{resend_during_visit, send_cpt};
use super::store::{Enrolment, status};
use super::{Errors, Istanze, MAX_CODE_ATTEMPTS, MAX_RECOVERY_ATTEMPTS, codes, page, session_of};
use crate::rp::pages::Layout;
use crate::rp::{Enablement, Session};

/// `/`: the RP's home, except that an enabled person still holding the CPT must
/// change it first.
pub async fn home(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    if let Some((_, s)) = session_of(&ist, &jar)
        && let Some(signed) = &s.signed_in
        && Enablement::from_claim(signed.person.enablement.as_ref(), &ist.rp.config().service)
            == Enablement::Active
        && let Ok(Some(e)) = ist.store.enrolment(&signed.person.sub).await
        && e.code_is_temporary == 1
    {
        return Redirect::to("/codice-personale").into_response();
    }
    crate::rp::pages::home(State(ist.rp.clone()), jar).await
}

/// The signed-in, enabled person and their row; or the page that says why not.
#[allow(clippy::result_large_err)]
async fn enabled(ist: &Istanze, jar: &CookieJar) -> Result<(Session, Enrolment), Response> {
    let Some((_, s)) = session_of(ist, jar) else {
        return Err(Redirect::to("/accedi").into_response());
    };
    let Some(signed) = &s.signed_in else {
        return Err(Redirect::to("/accedi").into_response());
    };
    match ist.store.enrolment(&signed.person.sub).await {
        Ok(Some(e)) if e.status == status::ACTIVE => Ok((s, e)),
        Ok(_) => Err(ist.message(
            StatusCode::FORBIDDEN,
            Some(&s),
            "Abilitazione non completata",
            "Per usare questa funzione è necessaria l'abilitazione al servizio.",
            ("/", "Torna alla pagina iniziale"),
        )),
        Err(err) => Err(ist.failure(Some(&s), err)),
    }
}

#[derive(Template)]
#[template(path = "istanze/codice.html")]
struct ChangePage {
    layout: Layout,
    csrf: String,
    temporary: bool,
    errors: Errors,
}

pub async fn change_form(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    page(
        &ChangePage {
            layout: ist.layout(Some(&s)),
            csrf: s.csrf.clone(),
            temporary: e.code_is_temporary == 1,
            errors: Errors::default(),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new_code: String,
    #[serde(default)]
    repeat: String,
}

/// Checks the personal code (or CPT) against the stored hash, counting wrong ones.
async fn check_code(ist: &Istanze, e: &Enrolment, code: &str) -> Result<(), String> {
    if e.code_attempts >= MAX_CODE_ATTEMPTS {
        return Err("Troppi tentativi errati: il codice è bloccato. Usa \"Ripetizione invio Codice Personale Temporaneo\" o il recupero del codice personale.".into());
    }
    if e.code_hash
        .as_deref()
        .is_some_and(|h| codes::verify(code.trim(), h))
    {
        let _ = ist.store.reset_code_attempts(&e.sub).await;
        return Ok(());
    }
    let attempts = ist
        .store
        .wrong_code(&e.sub)
        .await
        .unwrap_or(MAX_CODE_ATTEMPTS);
    Err(format!(
        "Il codice non è corretto. Tentativi rimasti: {}.",
        (MAX_CODE_ATTEMPTS - attempts).max(0)
    ))
}

pub async fn change(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<ChangeForm>,
) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !s.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    let mut errors = Errors::default();
    if let Err(m) = check_code(&ist, &e, &form.current).await {
        errors.add("current", m);
    } else if let Err(m) = codes::check_policy(&form.new_code) {
        errors.add("new_code", m);
    } else if form.new_code != form.repeat {
        errors.add("repeat", "I due codici non coincidono.");
    } else if codes::verify(&form.new_code, e.code_hash.as_deref().unwrap_or("")) {
        errors.add(
            "new_code",
            "Il nuovo codice deve essere diverso da quello attuale.",
        );
    }
    if !errors.is_empty() {
        return page(
            &ChangePage {
                layout: ist.layout(Some(&s)),
                csrf: s.csrf.clone(),
                temporary: e.code_is_temporary == 1,
                errors,
            },
            StatusCode::BAD_REQUEST,
        );
    }
    if let Err(err) = ist
        .store
        .set_code(&e.sub, &codes::hash(&form.new_code), false)
        .await
    {
        return ist.failure(Some(&s), err);
    }
    ist.message(
        StatusCode::OK,
        Some(&s),
        "Codice personale modificato",
        "Il codice personale è stato modificato: sei abilitato ad accedere a Istanze OnLine.",
        ("/", "Vai a Istanze OnLine"),
    )
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// "Ripetizione invio Codice Personale Temporaneo": during the abilitazione (CPT
/// check) or once enabled; the new CPT must be changed at the next access.
pub async fn resend_cpt(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let Some((_, s)) = session_of(&ist, &jar) else {
        return Redirect::to("/accedi").into_response();
    };
    if !s.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    if let Some(visit) = &s.enrolment {
        let sub = visit.sub.clone();
        return resend_during_visit(&ist, &s, &sub).await;
    }
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match send_cpt(&ist, &e).await {
        Ok(()) => ist.message(
            StatusCode::OK,
            Some(&s),
            "Codice Personale Temporaneo inviato",
            &format!(
                "Ti abbiamo inviato un nuovo Codice Personale Temporaneo all'indirizzo {}: dovrai modificarlo.",
                e.email
            ),
            ("/codice-personale", "Modifica il codice"),
        ),
        Err(err) => ist.failure(Some(&s), err),
    }
}

#[derive(Template)]
#[template(path = "istanze/recupero.html")]
struct RecoveryPage {
    layout: Layout,
    csrf: String,
    question: String,
    error: String,
}

pub async fn recovery_form(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if e.recovery_locked == 1 {
        return locked(&ist, &s);
    }
    page(
        &RecoveryPage {
            layout: ist.layout(Some(&s)),
            csrf: s.csrf.clone(),
            question: e.recovery_question,
            error: String::new(),
        },
        StatusCode::OK,
    )
}

fn locked(ist: &Istanze, s: &Session) -> Response {
    ist.message(
        StatusCode::FORBIDDEN,
        Some(s),
        "Recupero bloccato",
        "Troppe risposte errate: il recupero del codice personale è bloccato. Rivolgiti a una scuola.",
        ("/", "Torna alla pagina iniziale"),
    )
}

#[derive(Deserialize)]
pub struct RecoveryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    answer: String,
}

/// The right answer mails a new CPT (to change at the next access); wrong answers
/// count, and lock the recovery at `MAX_RECOVERY_ATTEMPTS`.
pub async fn recover(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<RecoveryForm>,
) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !s.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    if e.recovery_locked == 1 {
        return locked(&ist, &s);
    }
    if codes::verify(
        &codes::normalise_answer(&form.answer),
        &e.recovery_answer_hash,
    ) {
        let _ = ist.store.reset_recovery_attempts(&e.sub).await;
        return match send_cpt(&ist, &e).await {
            Ok(()) => ist.message(
                StatusCode::OK,
                Some(&s),
                "Codice personale recuperato",
                &format!(
                    "Risposta corretta: ti abbiamo inviato un nuovo Codice Personale Temporaneo all'indirizzo {}.",
                    e.email
                ),
                ("/codice-personale", "Modifica il codice"),
            ),
            Err(err) => ist.failure(Some(&s), err),
        };
    }
    let attempts = match ist.store.wrong_answer(&e.sub, MAX_RECOVERY_ATTEMPTS).await {
        Ok(a) => a,
        Err(err) => return ist.failure(Some(&s), err),
    };
    if attempts >= MAX_RECOVERY_ATTEMPTS {
        return locked(&ist, &s);
    }
    page(
        &RecoveryPage {
            layout: ist.layout(Some(&s)),
            csrf: s.csrf.clone(),
            question: e.recovery_question,
            error: format!(
                "La risposta non è corretta. Tentativi rimasti: {}.",
                MAX_RECOVERY_ATTEMPTS - attempts
            ),
        },
        StatusCode::BAD_REQUEST,
    )
}

#[derive(Template)]
#[template(path = "istanze/recapiti.html")]
struct ContactsPage {
    layout: Layout,
    csrf: String,
    e: Enrolment,
    errors: Errors,
}

impl ContactsPage {
    fn fields(&self) -> Vec<(&'static str, &'static str, String)> {
        let e = &self.e;
        vec![
            ("mobile_phone", "Telefono cellulare", e.mobile_phone.clone()),
            ("home_phone", "Telefono fisso", e.home_phone.clone()),
            ("address", "Indirizzo", e.address.clone()),
            ("country", "Paese", e.country.clone()),
            ("province", "Provincia", e.province.clone()),
            ("municipality", "Comune", e.municipality.clone()),
        ]
    }
}

pub async fn contacts_form(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    page(
        &ContactsPage {
            layout: ist.layout(Some(&s)),
            csrf: s.csrf.clone(),
            e,
            errors: Errors::default(),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct ContactsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mobile_phone: String,
    #[serde(default)]
    home_phone: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    province: String,
    #[serde(default)]
    municipality: String,
}

/// "Variazione dati di recapito".
pub async fn contacts(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<ContactsForm>,
) -> Response {
    let (s, mut e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !s.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    e.mobile_phone = form.mobile_phone.trim().into();
    e.home_phone = form.home_phone.trim().into();
    e.address = form.address.trim().into();
    e.country = form.country.trim().into();
    e.province = form.province.trim().into();
    e.municipality = form.municipality.trim().into();
    let mut errors = Errors::default();
    let digits = |p: &str| {
        let d: String = p.chars().filter(|c| c.is_ascii_digit()).collect();
        (6..=15).contains(&d.len())
    };
    if !digits(&e.mobile_phone) {
        errors.add("mobile_phone", "Indica un numero di cellulare valido.");
    }
    if !e.home_phone.is_empty() && !digits(&e.home_phone) {
        errors.add("home_phone", "Il numero di telefono fisso non è valido.");
    }
    for (field, value, message) in [
        ("address", &e.address, "Indica l'indirizzo del domicilio."),
        ("country", &e.country, "Indica il paese del domicilio."),
        (
            "province",
            &e.province,
            "Indica la provincia del domicilio.",
        ),
        (
            "municipality",
            &e.municipality,
            "Indica il comune del domicilio.",
        ),
    ] {
        if value.is_empty() {
            errors.add(field, message);
        }
    }
    if !errors.is_empty() {
        return page(
            &ContactsPage {
                layout: ist.layout(Some(&s)),
                csrf: s.csrf.clone(),
                e,
                errors,
            },
            StatusCode::BAD_REQUEST,
        );
    }
    if let Err(err) = ist.store.update_contacts(&e).await {
        return ist.failure(Some(&s), err);
    }
    ist.message(
        StatusCode::OK,
        Some(&s),
        "Dati di recapito aggiornati",
        "I tuoi dati di recapito sono stati aggiornati.",
        ("/", "Torna alla pagina iniziale"),
    )
}

#[derive(Template)]
#[template(path = "istanze/istanza.html")]
struct ApplicationPage {
    layout: Layout,
    csrf: String,
    subject: String,
    error: String,
}

pub async fn application_form(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    let (s, _) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    page(
        &ApplicationPage {
            layout: ist.layout(Some(&s)),
            csrf: s.csrf.clone(),
            subject: String::new(),
            error: String::new(),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct ApplicationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    code: String,
}

/// "Invia un'istanza": the personal code signs the submission.
pub async fn application(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<ApplicationForm>,
) -> Response {
    let (s, e) = match enabled(&ist, &jar).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !s.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    if e.code_is_temporary == 1 {
        return Redirect::to("/codice-personale").into_response();
    }
    let subject = form.subject.trim().to_string();
    let refuse = |error: String| {
        page(
            &ApplicationPage {
                layout: ist.layout(Some(&s)),
                csrf: s.csrf.clone(),
                subject: subject.clone(),
                error,
            },
            StatusCode::BAD_REQUEST,
        )
    };
    if subject.is_empty() {
        return refuse("Indica l'oggetto dell'istanza.".into());
    }
    if let Err(m) = check_code(&ist, &e, &form.code).await {
        return refuse(m);
    }
    match ist.store.add_application(&e.sub, &subject).await {
        Ok(id) => ist.message(
            StatusCode::OK,
            Some(&s),
            "Istanza inviata",
            &format!("La tua istanza \"{subject}\" è stata inoltrata con numero di protocollo IOL-{id:06}."),
            ("/", "Torna alla pagina iniziale"),
        ),
        Err(err) => ist.failure(Some(&s), err),
    }
}
