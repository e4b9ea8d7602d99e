//! Istanze OnLine's own part: the abilitazione al servizio, answering the IdP's signed
//! enablement request (`request`), with its own SQLite tables (`store`), mailer
//! (`mail`), the PDFs (`pdf`) and the secrets (`codes`). The pages: `abilitazione`
//! (form, summary, Accetto, CPT check), `operator` (the school's recognition) and
//! `account` (CPT change, resend, recovery, contacts, a sample application).

mod abilitazione;
mod account;
pub mod codes;
pub mod mail;
mod operator;
pub mod pdf;
pub mod request;
pub mod store;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;

use crate::rp::logout_token::JtiCache;
use crate::rp::pages::{Layout, MessagePage, current_session, render};
use crate::rp::{Rp, Session};

/// The role the IdP releases (`roles` claim) to school operators.
pub const OPERATOR_ROLE: &str = "school_operator";
/// Wrong CPTs or personal codes before the code is blocked (a new CPT unblocks).
pub const MAX_CODE_ATTEMPTS: i64 = 5;
/// Wrong recovery answers before the recovery is locked.
pub const MAX_RECOVERY_ATTEMPTS: i64 = 3;

/// Istanze OnLine's storage and mail settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `sqlite://istanze.db` or `sqlite::memory:`.
    pub database_url: String,
    /// lettre's SMTP URL; none: the mails stay in the outbox table only.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// `/dev/outbox.json` (development only: it shows the CPTs).
    pub dev_outbox: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite::memory:".into(),
            smtp_url: None,
            mail_from: "Istanze OnLine <istanze-online@localhost>".into(),
            dev_outbox: true,
        }
    }
}

#[derive(Clone)]
pub struct Istanze {
    pub rp: Rp,
    pub store: store::Store,
    pub mailer: mail::Mailer,
    dev_outbox: bool,
    seen_requests: Arc<JtiCache>,
}

impl Istanze {
    pub async fn open(rp: Rp, settings: &Settings) -> anyhow::Result<Istanze> {
        let store = store::Store::open(&settings.database_url).await?;
        let mailer = mail::Mailer::new(
            store.clone(),
            settings.mail_from.clone(),
            settings.smtp_url.as_deref(),
        )?;
        Ok(Istanze {
            rp,
            store,
            mailer,
            dev_outbox: settings.dev_outbox,
            seen_requests: Arc::new(JtiCache::default()),
        })
    }

    /// Records the enablement at the IdP (`PUT /enablements/{service}/{sub}`, HTTP
    /// Basic with our own client credentials).
    pub async fn put_enablement(&self, sub: &str, status: &str) -> anyhow::Result<()> {
        self.record_enablement(sub, serde_json::json!({ "status": status }))
            .await
    }

    /// Activates an enablement after a school operator's recognition, telling the IdP
    /// who recognised the person, how and on which kind of document (its audit log).
    pub async fn put_recognised(
        &self,
        sub: &str,
        operator_sub: &str,
        method: &str,
        document_type: &str,
    ) -> anyhow::Result<()> {
        self.record_enablement(
            sub,
            serde_json::json!({
                "status": "active",
                "recognition": {
                    "operator": operator_sub,
                    "method": method,
                    "document_type": document_type,
                },
            }),
        )
        .await
    }

    async fn record_enablement(&self, sub: &str, body: serde_json::Value) -> anyhow::Result<()> {
        let config = self.rp.config();
        let url = format!(
            "{}/enablements/{}/{}",
            config.issuer,
            config.service,
            url::form_urlencoded::byte_serialize(sub.as_bytes()).collect::<String>()
        );
        let response = self
            .rp
            .http()
            .put(&url)
            .basic_auth(&config.client_id, Some(&config.client_secret))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            let code = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("PUT {url}: {code} {body}");
        }
        tracing::info!(sub, status = %body["status"], "enablement recorded at the IdP");
        Ok(())
    }

    fn layout(&self, session: Option<&Session>) -> Layout {
        Layout::new(&self.rp, session)
    }

    /// A page with a title, a sentence and a link, with the given status.
    fn message(
        &self,
        status: StatusCode,
        session: Option<&Session>,
        title: &str,
        message: &str,
        link: (&str, &str),
    ) -> Response {
        let page = MessagePage {
            layout: self.layout(session),
            title: title.into(),
            message: message.into(),
            link_href: link.0.into(),
            link_text: link.1.into(),
        };
        (status, render(&page)).into_response()
    }

    fn failure(&self, session: Option<&Session>, e: impl std::fmt::Display) -> Response {
        tracing::error!(error = %e, "istanze-online");
        self.message(
            StatusCode::INTERNAL_SERVER_ERROR,
            session,
            "Servizio non disponibile",
            "Si è verificato un errore. Riprova più tardi.",
            ("/", "Torna alla pagina iniziale"),
        )
    }
}

/// Istanze OnLine's pages on top of the RP's own.
pub fn router(istanze: Istanze) -> Router {
    let mut own = Router::new()
        .route("/", get(account::home))
        .route("/abilitazione", get(abilitazione::start))
        .route("/abilitazione/passo", get(abilitazione::step))
        .route("/abilitazione/modulo", post(abilitazione::confirm))
        .route(
            "/abilitazione/modulo-adesione.pdf",
            get(abilitazione::modulo_adesione),
        )
        .route(
            "/abilitazione/modulo-delega.pdf",
            get(abilitazione::modulo_delega),
        )
        .route("/abilitazione/accetto", post(abilitazione::accept))
        .route("/abilitazione/cpt", post(abilitazione::check_cpt))
        .route("/abilitazione/esci", post(abilitazione::leave))
        .route("/operatore", get(operator::search))
        .route("/operatore/riconoscimento", post(operator::recognise))
        .route(
            "/codice-personale",
            get(account::change_form).post(account::change),
        )
        .route(
            "/codice-personale/ripetizione-invio",
            post(account::resend_cpt),
        )
        .route(
            "/codice-personale/recupero",
            get(account::recovery_form).post(account::recover),
        )
        .route(
            "/recapiti",
            get(account::contacts_form).post(account::contacts),
        )
        .route(
            "/istanze/nuova",
            get(account::application_form).post(account::application),
        );
    if istanze.dev_outbox {
        own = own.route("/dev/outbox.json", get(dev_outbox));
    }
    own.with_state(istanze.clone())
        .merge(crate::rp::pages::router_without_home(istanze.rp.clone()))
}

/// Development only: the mails sent, with their attachments (base64).
async fn dev_outbox(State(ist): State<Istanze>) -> Response {
    match ist.store.outbox().await {
        Ok(mails) => {
            let listed: Vec<_> = mails
                .into_iter()
                .map(|m| {
                    let attachments: serde_json::Value =
                        serde_json::from_str(&m.attachments).unwrap_or_default();
                    serde_json::json!({
                        "id": m.id, "to": m.to, "subject": m.subject, "body": m.body,
                        "sent_at": m.sent_at, "attachments": attachments,
                    })
                })
                .collect();
            axum::Json(listed).into_response()
        }
        Err(e) => ist.failure(None, e),
    }
}

/// The session this browser holds (cookie value, session).
fn session_of(ist: &Istanze, jar: &CookieJar) -> Option<(String, Session)> {
    current_session(&ist.rp, jar)
}

/// Errors beside the fields of a form.
#[derive(Default)]
pub struct Errors(Vec<(&'static str, String)>);

impl Errors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }
    pub fn get(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
            .unwrap_or("")
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn page(template: &impl Template, status: StatusCode) -> Response {
    (status, render(template)).into_response()
}
