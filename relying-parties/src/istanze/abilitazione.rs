//! The abilitazione as the person lives it: the IdP's signed request, the form
//! (domicile, phones, document, recovery question), "Conferma" → the summary with the
//! warnings and the modulo di adesione, "Accetto" → the CPT by mail, then (on the next
//! "Accedi") the fiscal code + CPT check: SPID users are enabled, password users wait
//! for the recognition at a school.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::request::{self, Expected, Refusal};
use super::store::{Enrolment, status};
use super::{Errors, Istanze, MAX_CODE_ATTEMPTS, codes, mail::Attachment, page, pdf, session_of};
use crate::rp::pages::{Layout, session_cookie};
use crate::rp::session::now;
use crate::rp::{EnrolmentVisit, Session};

pub const DEFAULT_QUESTION: &str = "Cognome da nubile della madre";

#[derive(Deserialize)]
pub struct RequestQuery {
    request: Option<String>,
}

fn refusal_italian(r: Refusal) -> &'static str {
    match r {
        Refusal::Expired => {
            "La richiesta di abilitazione è scaduta. Torna alla pagina iniziale e fai di nuovo clic su \"Accedi\"."
        }
        Refusal::Replayed => {
            "La richiesta di abilitazione è già stata usata. Torna alla pagina iniziale e fai di nuovo clic su \"Accedi\"."
        }
        _ => "La richiesta di abilitazione non è valida.",
    }
}

/// `GET /abilitazione?request=JWS`: checks the IdP's request, keeps it in the session
/// and sends the browser to the step where the person stands.
pub async fn start(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Query(q): Query<RequestQuery>,
) -> Response {
    let found = session_of(&ist, &jar);
    let session = found.as_ref().map(|(_, s)| s);
    let Some(token) = q.request else {
        return ist.message(
            StatusCode::BAD_REQUEST,
            session,
            "Richiesta non valida",
            "Manca la richiesta di abilitazione.",
            ("/", "Torna alla pagina iniziale"),
        );
    };
    let verified = match verify(&ist, &token) {
        Err(Refusal::UnknownKey) => {
            ist.rp.reload_keys().await;
            verify(&ist, &token)
        }
        other => other,
    };
    let request = match verified {
        Ok(r) => r,
        Err(refusal) => {
            tracing::warn!(%refusal, "enablement request refused");
            return ist.message(
                StatusCode::BAD_REQUEST,
                session,
                "Richiesta di abilitazione non valida",
                refusal_italian(refusal),
                ("/", "Torna alla pagina iniziale"),
            );
        }
    };
    let (id, mut session) = found.unwrap_or_else(|| ist.rp.sessions().create());
    session.enrolment = Some(EnrolmentVisit {
        spid: request.is_spid(),
        sub: request.sub,
        assurance: request.assurance,
        resume: request.resume,
    });
    ist.rp.sessions().put(&id, session);
    let jar = jar.add(session_cookie(&ist.rp, id));
    (jar, Redirect::to("/abilitazione/passo")).into_response()
}

fn verify(ist: &Istanze, token: &str) -> Result<request::EnablementRequest, Refusal> {
    let config = ist.rp.config();
    request::verify(
        token,
        &ist.rp.idp_keys(),
        &Expected {
            issuer: &config.issuer,
            client_id: &config.client_id,
            service: &config.service,
            now: now(),
        },
        &ist.seen_requests,
    )
}

/// The visit in progress, or the "start again" page.
#[allow(clippy::result_large_err)]
fn visit(ist: &Istanze, jar: &CookieJar) -> Result<(String, Session, EnrolmentVisit), Response> {
    match session_of(ist, jar) {
        Some((id, s)) => match s.enrolment.clone() {
            Some(v) => Ok((id, s, v)),
            None => Err(no_visit(ist, Some(&s))),
        },
        None => Err(no_visit(ist, None)),
    }
}

fn no_visit(ist: &Istanze, session: Option<&Session>) -> Response {
    ist.message(
        StatusCode::BAD_REQUEST,
        session,
        "Sessione scaduta",
        "La procedura di abilitazione non è stata avviata da questo browser o è scaduta. Fai clic su \"Accedi\".",
        ("/", "Torna alla pagina iniziale"),
    )
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct EnrolmentForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub fiscal_code: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub municipality: String,
    #[serde(default)]
    pub mobile_phone: String,
    #[serde(default)]
    pub home_phone: String,
    #[serde(default)]
    pub document_type: String,
    #[serde(default)]
    pub document_number: String,
    #[serde(default)]
    pub document_issuer: String,
    #[serde(default)]
    pub document_date: String,
    #[serde(default)]
    pub recovery_question: String,
    #[serde(default)]
    pub recovery_answer: String,
}

pub const DOCUMENT_TYPES: [&str; 3] = ["Carta d'identità", "Passaporto", "Patente di guida"];

#[derive(Template)]
#[template(path = "istanze/form.html")]
struct FormPage {
    layout: Layout,
    step: u8,
    csrf: String,
    form: EnrolmentForm,
    errors: Errors,
    document_types: [&'static str; 3],
}

#[derive(Template)]
#[template(path = "istanze/riepilogo.html")]
struct SummaryPage {
    layout: Layout,
    step: u8,
    csrf: String,
    e: Enrolment,
}

#[derive(Template)]
#[template(path = "istanze/inviato.html")]
struct SentPage {
    layout: Layout,
    step: u8,
    csrf: String,
    email: String,
}

#[derive(Template)]
#[template(path = "istanze/cpt.html")]
struct CptPage {
    layout: Layout,
    step: u8,
    csrf: String,
    fiscal_code: String,
    error: String,
}

#[derive(Template)]
#[template(path = "istanze/attesa.html")]
struct PendingPage {
    layout: Layout,
    step: u8,
    csrf: String,
}

fn is_fiscal_code(s: &str) -> bool {
    s.len() == 16 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_phone(s: &str) -> bool {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '/' | '.'))
        .collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    (6..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

impl EnrolmentForm {
    fn trimmed(mut self) -> Self {
        for f in [
            &mut self.given_name,
            &mut self.family_name,
            &mut self.fiscal_code,
            &mut self.email,
            &mut self.address,
            &mut self.country,
            &mut self.province,
            &mut self.municipality,
            &mut self.mobile_phone,
            &mut self.home_phone,
            &mut self.document_type,
            &mut self.document_number,
            &mut self.document_issuer,
            &mut self.document_date,
            &mut self.recovery_question,
        ] {
            *f = f.trim().to_string();
        }
        self.fiscal_code = self.fiscal_code.to_uppercase();
        self.document_number = self.document_number.to_uppercase();
        self
    }

    fn check(&self) -> Errors {
        let mut e = Errors::default();
        let required = [
            ("given_name", &self.given_name, "Indica il nome."),
            ("family_name", &self.family_name, "Indica il cognome."),
            (
                "address",
                &self.address,
                "Indica l'indirizzo del domicilio.",
            ),
            ("country", &self.country, "Indica il paese del domicilio."),
            (
                "province",
                &self.province,
                "Indica la provincia del domicilio.",
            ),
            (
                "municipality",
                &self.municipality,
                "Indica il comune del domicilio.",
            ),
            (
                "document_issuer",
                &self.document_issuer,
                "Indica chi ha rilasciato il documento.",
            ),
            (
                "recovery_question",
                &self.recovery_question,
                "Indica la domanda per il recupero del codice personale.",
            ),
        ];
        for (field, value, message) in required {
            if value.is_empty() {
                e.add(field, message);
            }
        }
        if !is_fiscal_code(&self.fiscal_code) {
            e.add(
                "fiscal_code",
                "Il codice fiscale deve avere 16 caratteri, lettere e cifre.",
            );
        }
        let at = self.email.find('@');
        if !at.is_some_and(|i| i > 0 && self.email[i + 1..].contains('.')) {
            e.add("email", "Indica un indirizzo e-mail valido.");
        }
        if !is_phone(&self.mobile_phone) {
            e.add(
                "mobile_phone",
                "Indica un numero di cellulare valido (solo cifre).",
            );
        }
        if !self.home_phone.is_empty() && !is_phone(&self.home_phone) {
            e.add(
                "home_phone",
                "Il numero di telefono fisso non è valido (solo cifre).",
            );
        }
        if !DOCUMENT_TYPES.contains(&self.document_type.as_str()) {
            e.add("document_type", "Scegli il tipo di documento.");
        }
        if self.document_number.len() < 5
            || !self
                .document_number
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            e.add(
                "document_number",
                "Il numero del documento deve avere almeno 5 lettere o cifre.",
            );
        }
        match chrono::NaiveDate::parse_from_str(&self.document_date, "%Y-%m-%d") {
            Ok(d) if d <= chrono::Utc::now().date_naive() => {}
            Ok(_) => e.add(
                "document_date",
                "La data di rilascio non può essere futura.",
            ),
            Err(_) => e.add("document_date", "Indica la data di rilascio (aaaa-mm-gg)."),
        }
        if codes::normalise_answer(&self.recovery_answer).is_empty() {
            e.add("recovery_answer", "Indica la risposta alla domanda.");
        }
        e
    }
}

fn form_page(ist: &Istanze, session: &Session, form: EnrolmentForm, errors: Errors) -> FormPage {
    FormPage {
        layout: ist.layout(Some(session)),
        step: 1,
        csrf: session.csrf.clone(),
        form,
        errors,
        document_types: DOCUMENT_TYPES,
    }
}

/// `GET /abilitazione/passo`: the step where the person stands.
pub async fn step(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    let (_, session, visit) = match visit(&ist, &jar) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let found = match ist.store.enrolment(&visit.sub).await {
        Ok(f) => f,
        Err(e) => return ist.failure(Some(&session), e),
    };
    let Some(e) = found else {
        let form = EnrolmentForm {
            recovery_question: DEFAULT_QUESTION.into(),
            country: "Italia".into(),
            ..EnrolmentForm::default()
        };
        return page(
            &form_page(&ist, &session, form, Errors::default()),
            StatusCode::OK,
        );
    };
    match e.status.as_str() {
        status::DRAFT => page(
            &SummaryPage {
                layout: ist.layout(Some(&session)),
                step: 2,
                csrf: session.csrf.clone(),
                e,
            },
            StatusCode::OK,
        ),
        status::CPT_SENT => page(
            &cpt_page(&ist, &session, String::new(), String::new()),
            StatusCode::OK,
        ),
        status::PENDING => pending_page(&ist, &session),
        _ => finish(&ist, &session, &visit, status::ACTIVE).await,
    }
}

fn cpt_page(ist: &Istanze, session: &Session, fiscal_code: String, error: String) -> CptPage {
    CptPage {
        layout: ist.layout(Some(session)),
        step: 4,
        csrf: session.csrf.clone(),
        fiscal_code,
        error,
    }
}

fn pending_page(ist: &Istanze, session: &Session) -> Response {
    page(
        &PendingPage {
            layout: ist.layout(Some(session)),
            step: 5,
            csrf: session.csrf.clone(),
        },
        StatusCode::OK,
    )
}

/// Records the result at the IdP and sends the browser back to the login.
async fn finish(
    ist: &Istanze,
    session: &Session,
    visit: &EnrolmentVisit,
    status: &str,
) -> Response {
    if let Err(e) = ist.put_enablement(&visit.sub, status).await {
        return ist.failure(Some(session), e);
    }
    Redirect::to(&visit.resume).into_response()
}

/// `POST /abilitazione/modulo` ("Conferma"): errors beside the fields, values kept;
/// valid → saved as a draft → the summary.
pub async fn confirm(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<EnrolmentForm>,
) -> Response {
    let (_, session, visit) = match visit(&ist, &jar) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    let form = form.trimmed();
    let errors = form.check();
    if !errors.is_empty() {
        return page(
            &form_page(&ist, &session, form, errors),
            StatusCode::BAD_REQUEST,
        );
    }
    let answer_hash = codes::hash(&codes::normalise_answer(&form.recovery_answer));
    let e = Enrolment {
        sub: visit.sub.clone(),
        assurance: visit.assurance.clone(),
        status: status::DRAFT.into(),
        given_name: form.given_name,
        family_name: form.family_name,
        fiscal_code: form.fiscal_code,
        email: form.email,
        address: form.address,
        country: form.country,
        province: form.province,
        municipality: form.municipality,
        mobile_phone: form.mobile_phone,
        home_phone: form.home_phone,
        document_type: form.document_type,
        document_number: form.document_number,
        document_issuer: form.document_issuer,
        document_date: form.document_date,
        recovery_question: form.recovery_question,
        recovery_answer_hash: answer_hash,
        ..Enrolment::default()
    };
    if let Err(err) = ist.store.save_draft(&e).await {
        return ist.failure(Some(&session), err);
    }
    Redirect::to("/abilitazione/passo").into_response()
}

/// The person the PDF is about: the visit's, or the signed-in person's.
async fn enrolment_of(ist: &Istanze, jar: &CookieJar) -> Option<Enrolment> {
    let (_, session) = session_of(ist, jar)?;
    let sub = session
        .enrolment
        .as_ref()
        .map(|v| v.sub.clone())
        .or_else(|| session.signed_in.as_ref().map(|s| s.person.sub.clone()))?;
    ist.store.enrolment(&sub).await.ok().flatten()
}

fn pdf_response(bytes: Vec<u8>, filename: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

pub async fn modulo_adesione(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    match enrolment_of(&ist, &jar).await {
        Some(e) => pdf_response(pdf::modulo_adesione(&e), "modulo-di-adesione.pdf"),
        None => no_visit(&ist, None),
    }
}

pub async fn modulo_delega(State(ist): State<Istanze>, jar: CookieJar) -> Response {
    match enrolment_of(&ist, &jar).await {
        Some(e) => pdf_response(pdf::modulo_delega(&e), "modulo-di-delega.pdf"),
        None => no_visit(&ist, None),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Mails a new CPT with the two forms, and stores its hash.
pub async fn send_cpt(ist: &Istanze, e: &Enrolment) -> anyhow::Result<()> {
    let cpt = codes::new_cpt();
    ist.store.set_code(&e.sub, &codes::hash(&cpt), true).await?;
    let body = format!(
        "Gentile {},\n\nper completare l'abilitazione al servizio Istanze OnLine usa il tuo\n\nCodice Personale Temporaneo: {cpt}\n\nAl prossimo accesso ti saranno chiesti il codice fiscale e questo codice.\nIn allegato trovi il modulo di adesione e il modulo di delega: stampa il modulo di\nadesione e recati presso una scuola per il riconoscimento, con il documento indicato\ne il tesserino del codice fiscale (o incarica un delegato con il modulo di delega).\n\nIstanze OnLine",
        e.display_name()
    );
    ist.mailer
        .send(
            &e.email,
            "Istanze OnLine: Codice Personale Temporaneo",
            &body,
            vec![
                Attachment {
                    filename: "modulo-di-adesione.pdf".into(),
                    content_type: "application/pdf",
                    bytes: pdf::modulo_adesione(e),
                },
                Attachment {
                    filename: "modulo-di-delega.pdf".into(),
                    content_type: "application/pdf",
                    bytes: pdf::modulo_delega(e),
                },
            ],
        )
        .await
}

/// `POST /abilitazione/accetto`: the CPT by mail, then "Ti abbiamo inviato…".
pub async fn accept(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, session, visit) = match visit(&ist, &jar) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    let e = match ist.store.enrolment(&visit.sub).await {
        Ok(Some(e)) if e.status == status::DRAFT => e,
        Ok(_) => return Redirect::to("/abilitazione/passo").into_response(),
        Err(err) => return ist.failure(Some(&session), err),
    };
    if let Err(err) = send_cpt(&ist, &e).await {
        return ist.failure(Some(&session), err);
    }
    if let Err(err) = ist.store.set_status(&e.sub, status::CPT_SENT).await {
        return ist.failure(Some(&session), err);
    }
    page(
        &SentPage {
            layout: ist.layout(Some(&session)),
            step: 3,
            csrf: session.csrf.clone(),
            email: e.email,
        },
        StatusCode::OK,
    )
}

/// `POST /abilitazione/esci`: leaves the procedure; the next "Accedi" resumes it.
pub async fn leave(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some((id, session)) = session_of(&ist, &jar)
        && session.csrf_matches(&form.csrf)
    {
        ist.rp.sessions().update(&id, |s| s.enrolment = None);
    }
    Redirect::to("/").into_response()
}

#[derive(Deserialize)]
pub struct CptForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    fiscal_code: String,
    #[serde(default)]
    cpt: String,
}

/// `POST /abilitazione/cpt` ("Conferma"): fiscal code + CPT, attempts limited.
pub async fn check_cpt(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<CptForm>,
) -> Response {
    let (_, session, visit) = match visit(&ist, &jar) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    let e = match ist.store.enrolment(&visit.sub).await {
        Ok(Some(e)) if e.status == status::CPT_SENT => e,
        Ok(_) => return Redirect::to("/abilitazione/passo").into_response(),
        Err(err) => return ist.failure(Some(&session), err),
    };
    let fiscal_code = form.fiscal_code.trim().to_uppercase();
    let refuse = |message: &str| {
        page(
            &cpt_page(&ist, &session, fiscal_code.clone(), message.into()),
            StatusCode::BAD_REQUEST,
        )
    };
    if e.code_attempts >= MAX_CODE_ATTEMPTS {
        return refuse(
            "Troppi tentativi errati: il Codice Personale Temporaneo è bloccato. Richiedi un nuovo invio con \"Ripetizione invio Codice Personale Temporaneo\".",
        );
    }
    let right = fiscal_code == e.fiscal_code
        && e.code_hash
            .as_deref()
            .is_some_and(|h| codes::verify(form.cpt.trim(), h));
    if !right {
        let attempts = match ist.store.wrong_code(&e.sub).await {
            Ok(a) => a,
            Err(err) => return ist.failure(Some(&session), err),
        };
        let left = (MAX_CODE_ATTEMPTS - attempts).max(0);
        return refuse(&format!(
            "Il codice fiscale o il Codice Personale Temporaneo non sono corretti. Tentativi rimasti: {left}."
        ));
    }
    if let Err(err) = ist.store.reset_code_attempts(&e.sub).await {
        return ist.failure(Some(&session), err);
    }
    if visit.spid {
        // SPID: the identity is already verified; no recognition at a school.
        if let Err(err) = ist.store.set_status(&e.sub, status::ACTIVE).await {
            return ist.failure(Some(&session), err);
        }
        return finish(&ist, &session, &visit, "active").await;
    }
    if let Err(err) = ist.put_enablement(&e.sub, "pending").await {
        return ist.failure(Some(&session), err);
    }
    if let Err(err) = ist.store.set_status(&e.sub, status::PENDING).await {
        return ist.failure(Some(&session), err);
    }
    pending_page(&ist, &session)
}

/// Resends a CPT during the abilitazione (the CPT check step).
pub async fn resend_during_visit(ist: &Istanze, session: &Session, sub: &str) -> Response {
    match ist.store.enrolment(sub).await {
        Ok(Some(e)) if e.status != status::DRAFT => match send_cpt(ist, &e).await {
            Ok(()) => ist.message(
                StatusCode::OK,
                Some(session),
                "Codice Personale Temporaneo inviato",
                &format!(
                    "Ti abbiamo inviato un nuovo Codice Personale Temporaneo all'indirizzo {}.",
                    e.email
                ),
                ("/abilitazione/passo", "Continua"),
            ),
            Err(err) => ist.failure(Some(session), err),
        },
        Ok(_) => Redirect::to("/abilitazione/passo").into_response(),
        Err(err) => ist.failure(Some(session), err),
    }
}
