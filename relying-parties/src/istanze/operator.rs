//! The school operator's pages (the `school_operator` role in the `roles` claim): find
//! a pending person by fiscal code, check the presented document against the declared
//! one, record who recognised whom, when and how; then activate and mail the person.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::abilitazione::DOCUMENT_TYPES;
use super::store::{Enrolment, Recognition, status};
use super::{Istanze, OPERATOR_ROLE, page, session_of};
use crate::rp::Session;
use crate::rp::pages::Layout;

#[derive(Template)]
#[template(path = "istanze/operatore.html")]
struct OperatorPage {
    layout: Layout,
    csrf: String,
    fiscal_code: String,
    found: Option<Enrolment>,
    error: String,
    document_types: [&'static str; 3],
}

/// The operator's session, or a refusal (sign in first, or not an operator).
#[allow(clippy::result_large_err)]
fn operator(ist: &Istanze, jar: &CookieJar) -> Result<Session, Response> {
    match session_of(ist, jar) {
        Some((_, s)) => match &s.signed_in {
            Some(signed) if signed.person.has_role(OPERATOR_ROLE) => Ok(s),
            Some(_) => Err(ist.message(
                StatusCode::FORBIDDEN,
                Some(&s),
                "Accesso non consentito",
                "Questa funzione è riservata agli operatori delle scuole.",
                ("/", "Torna alla pagina iniziale"),
            )),
            None => Err(ist.message(
                StatusCode::UNAUTHORIZED,
                Some(&s),
                "Accesso richiesto",
                "Accedi con l'utenza di operatore della scuola.",
                ("/accedi", "Accedi"),
            )),
        },
        None => Err(ist.message(
            StatusCode::UNAUTHORIZED,
            None,
            "Accesso richiesto",
            "Accedi con l'utenza di operatore della scuola.",
            ("/accedi", "Accedi"),
        )),
    }
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    codice_fiscale: String,
}

fn operator_page(
    ist: &Istanze,
    session: &Session,
    fiscal_code: String,
    found: Option<Enrolment>,
    error: String,
) -> OperatorPage {
    OperatorPage {
        layout: ist.layout(Some(session)),
        csrf: session.csrf.clone(),
        fiscal_code,
        found,
        error,
        document_types: DOCUMENT_TYPES,
    }
}

/// `GET /operatore[?codice_fiscale=…]`
pub async fn search(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Query(q): Query<SearchQuery>,
) -> Response {
    let session = match operator(&ist, &jar) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let fiscal_code = q.codice_fiscale.trim().to_uppercase();
    if fiscal_code.is_empty() {
        return page(
            &operator_page(&ist, &session, fiscal_code, None, String::new()),
            StatusCode::OK,
        );
    }
    match ist.store.by_fiscal_code(&fiscal_code).await {
        Ok(Some(e)) if e.status == status::PENDING => page(
            &operator_page(&ist, &session, fiscal_code, Some(e), String::new()),
            StatusCode::OK,
        ),
        Ok(_) => page(
            &operator_page(
                &ist,
                &session,
                fiscal_code,
                None,
                "Nessuna richiesta di abilitazione in attesa di riconoscimento per questo codice fiscale.".into(),
            ),
            StatusCode::NOT_FOUND,
        ),
        Err(e) => ist.failure(Some(&session), e),
    }
}

#[derive(Deserialize)]
pub struct RecognitionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    fiscal_code: String,
    #[serde(default)]
    document_type: String,
    #[serde(default)]
    document_number: String,
    /// `in_person` or `delegate`
    #[serde(default)]
    method: String,
    #[serde(default)]
    delegate_name: String,
    #[serde(default)]
    delegate_document_type: String,
    #[serde(default)]
    delegate_document_number: String,
}

/// `POST /operatore/riconoscimento`
pub async fn recognise(
    State(ist): State<Istanze>,
    jar: CookieJar,
    Form(form): Form<RecognitionForm>,
) -> Response {
    let session = match operator(&ist, &jar) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    let fiscal_code = form.fiscal_code.trim().to_uppercase();
    let e = match ist.store.by_fiscal_code(&fiscal_code).await {
        Ok(Some(e)) if e.status == status::PENDING => e,
        Ok(_) => {
            return page(
                &operator_page(&ist, &session, fiscal_code, None, "Nessuna richiesta di abilitazione in attesa di riconoscimento per questo codice fiscale.".into()),
                StatusCode::NOT_FOUND,
            );
        }
        Err(err) => return ist.failure(Some(&session), err),
    };
    let refuse = |message: &str| {
        page(
            &operator_page(
                &ist,
                &session,
                fiscal_code.clone(),
                Some(e.clone()),
                message.into(),
            ),
            StatusCode::BAD_REQUEST,
        )
    };
    let number = form.document_number.trim().to_uppercase();
    if form.document_type.trim() != e.document_type || number != e.document_number {
        return refuse(
            "Il documento presentato non corrisponde a quello indicato nella richiesta di abilitazione: riconoscimento non effettuato.",
        );
    }
    let delegate = match form.method.as_str() {
        "in_person" => None,
        "delegate" => {
            let name = form.delegate_name.trim();
            let doc_type = form.delegate_document_type.trim();
            let doc_number = form.delegate_document_number.trim().to_uppercase();
            if name.is_empty() || doc_type.is_empty() || doc_number.is_empty() {
                return refuse(
                    "Per il riconoscimento tramite delegato indica nome e cognome del delegato e il suo documento (tipo e numero), e ritira il modulo di delega firmato.",
                );
            }
            Some((name.to_string(), doc_type.to_string(), doc_number))
        }
        _ => {
            return refuse(
                "Indica come è avvenuto il riconoscimento: di persona o tramite delegato.",
            );
        }
    };
    let operator = session
        .signed_in
        .as_ref()
        .expect("an operator is signed in");
    let recognition = Recognition {
        sub: e.sub.clone(),
        operator_sub: operator.person.sub.clone(),
        operator_name: operator.person.display_name(),
        method: form.method.clone(),
        presented_document_type: e.document_type.clone(),
        presented_document_number: number,
        delegate_name: delegate.as_ref().map(|d| d.0.clone()),
        delegate_document_type: delegate.as_ref().map(|d| d.1.clone()),
        delegate_document_number: delegate.as_ref().map(|d| d.2.clone()),
    };
    if let Err(err) = ist
        .put_recognised(
            &e.sub,
            &recognition.operator_sub,
            &recognition.method,
            &recognition.presented_document_type,
        )
        .await
    {
        return ist.failure(Some(&session), err);
    }
    if let Err(err) = ist.store.record_recognition(&recognition).await {
        return ist.failure(Some(&session), err);
    }
    if let Err(err) = ist.store.set_status(&e.sub, status::ACTIVE).await {
        return ist.failure(Some(&session), err);
    }
    let body = format!(
        "Gentile {},\n\nil riconoscimento presso la scuola è stato effettuato: ti comunichiamo l'attivazione dell'utenza per Istanze OnLine.\nAl prossimo accesso ti sarà chiesto di modificare il Codice Personale Temporaneo in un codice personale.\n\nIstanze OnLine",
        e.display_name()
    );
    if let Err(err) = ist
        .mailer
        .send(
            &e.email,
            "Istanze OnLine: attivazione dell'utenza",
            &body,
            vec![],
        )
        .await
    {
        return ist.failure(Some(&session), err);
    }
    ist.message(
        StatusCode::OK,
        Some(&session),
        "Riconoscimento registrato",
        &format!(
            "Il riconoscimento di {} ({}) è stato registrato: l'utenza è attiva.",
            e.display_name(),
            e.fiscal_code
        ),
        ("/operatore", "Nuova ricerca"),
    )
}
