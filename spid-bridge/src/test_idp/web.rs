//! The test IdP's pages (Italian, no inline scripts: the auto-POST uses a served JS file
//! and keeps a visible button).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;

use super::{IdpState, ResponseSpec, SpInfo, build_response, test_identities};
use crate::binding::{decode_post, decode_redirect};
use crate::response::{parse_document, verify_and_reduce_with};
use crate::xml::{
    self, ALLOWED_SIGNATURE_METHODS, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, child, esc, text,
};
use crate::{Binding, OutgoingMessage, SpidLevel};

const AUTOPOST_JS: &str = "document.addEventListener('DOMContentLoaded', function () {\n  var f = document.getElementById('saml-form');\n  if (f) { f.submit(); }\n});\n";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'";

/// An AuthnRequest shown on the page, waiting for the tester's choice.
#[derive(Clone, Debug)]
pub(crate) struct ShownRequest {
    sp: SpInfo,
    request_id: String,
    level: SpidLevel,
    relay_state: Option<String>,
}

/// A session the IdP opened at an SP (for IdP-initiated logout).
#[derive(Clone, Debug)]
pub(crate) struct IssuedSession {
    sp: SpInfo,
    person: String,
    name_id: String,
    session_index: String,
}

type Shared = Arc<IdpState>;

pub(crate) fn routes(state: Shared) -> Router {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/sso", get(sso_redirect).post(sso_post))
        .route("/sso/answer", post(answer))
        .route("/slo", get(slo_redirect).post(slo_post))
        .route("/logout", get(logout_page).post(logout_start))
        .route("/static/autopost.js", get(autopost_js))
        .with_state(state)
}

fn page(status: StatusCode, title: &str, body: &str, autopost: bool) -> Response {
    let script = if autopost {
        r#"<script src="/static/autopost.js" defer></script>"#
    } else {
        ""
    };
    let html = format!(
        concat!(
            "<!doctype html><html lang=\"it\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>{title} - IdP di test SPID</title>{script}</head><body><main>",
            "<p><strong>IdP di test SPID: solo per lo sviluppo.</strong></p>",
            "<h1>{title}</h1>{body}</main></body></html>"
        ),
        title = esc(title),
        script = script,
        body = body
    );
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::response::Html(html),
    )
        .into_response()
}

fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Richiesta non valida",
        &format!("<p>{}</p>", esc(message)),
        false,
    )
}

async fn metadata(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        s.metadata.clone(),
    )
        .into_response()
}

async fn autopost_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        AUTOPOST_JS,
    )
        .into_response()
}

/// Reads and verifies a signed message from a known SP; returns its XML (the signed part)
/// and RelayState.
fn receive(
    s: &IdpState,
    xml_text: String,
    relay_state: Option<String>,
    redirect: Option<crate::binding::RedirectMessage>,
    root_name: &str,
) -> Result<(SpInfo, String, Option<String>), String> {
    let doc = parse_document(&xml_text)
        .map_err(|r| format!("Messaggio SAML non leggibile ({}).", r.reason))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_PROTOCOL, root_name)) {
        return Err(format!("Atteso un messaggio {root_name}."));
    }
    let issuer = child(root, NS_ASSERTION, "Issuer")
        .map(text)
        .unwrap_or_default();
    let sp = s
        .sps
        .iter()
        .find(|sp| sp.entity_id == issuer)
        .ok_or_else(|| {
            format!("Il service provider «{issuer}» non è registrato presso questo IdP.")
        })?
        .clone();
    let signed = match redirect {
        Some(m) => {
            let alg = m.sig_alg.unwrap_or_default();
            let ok = ALLOWED_SIGNATURE_METHODS.contains(&alg.as_str())
                && m.signature.is_some_and(|sig| {
                    xml::verify_redirect_signature(&m.signed, &alg, &sig, &sp.signing_certs)
                });
            if !ok {
                return Err("La firma della richiesta non è valida.".into());
            }
            xml_text
        }
        None => {
            let signed_by_root = child(root, NS_DSIG, "Signature").is_some();
            if !signed_by_root {
                return Err("La richiesta non è firmata.".into());
            }
            let reduced = verify_and_reduce_with(&xml_text, &sp.signing_certs)
                .map_err(|_| "La firma della richiesta non è valida.".to_string())?;
            let rdoc = parse_document(&reduced)
                .map_err(|_| "Messaggio firmato non leggibile.".to_string())?;
            if rdoc.root_element().attribute("ID") != root.attribute("ID") {
                return Err("La firma non copre la richiesta.".into());
            }
            reduced
        }
    };
    Ok((sp, signed, relay_state))
}

fn read_authn(
    s: &IdpState,
    xml_text: String,
    relay: Option<String>,
    redirect: Option<crate::binding::RedirectMessage>,
) -> Result<ShownRequest, String> {
    let (sp, signed, relay_state) = receive(s, xml_text, relay, redirect, "AuthnRequest")?;
    let doc = parse_document(&signed).map_err(|_| "Richiesta non leggibile.".to_string())?;
    let root = doc.root_element();
    let request_id = root
        .attribute("ID")
        .filter(|v| !v.is_empty())
        .ok_or("Richiesta senza ID.")?
        .to_string();
    let level = child(root, NS_PROTOCOL, "RequestedAuthnContext")
        .and_then(|r| child(r, NS_ASSERTION, "AuthnContextClassRef"))
        .map(text)
        .map(|c| {
            SpidLevel::from_saml_class_ref(&c).ok_or("Livello SPID richiesto non riconosciuto.")
        })
        .transpose()?
        .unwrap_or(SpidLevel::L1);
    Ok(ShownRequest {
        sp,
        request_id,
        level,
        relay_state,
    })
}

async fn sso_redirect(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let m = match decode_redirect(q.as_deref().unwrap_or_default(), "SAMLRequest") {
        Ok(m) => m,
        Err(r) => return error_page(&format!("Richiesta SAML non valida ({}).", r.reason)),
    };
    let (x, rs) = (m.xml.clone(), m.relay_state.clone());
    show(&s, read_authn(&s, x, rs, Some(m)))
}

async fn sso_post(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let Some(req) = f.get("SAMLRequest") else {
        return error_page("Manca SAMLRequest.");
    };
    let x = match decode_post(req) {
        Ok(x) => x,
        Err(r) => return error_page(&format!("Richiesta SAML non valida ({}).", r.reason)),
    };
    show(&s, read_authn(&s, x, f.get("RelayState").cloned(), None))
}

fn level_label(l: SpidLevel) -> &'static str {
    match l {
        SpidLevel::L1 => "SPID livello 1",
        SpidLevel::L2 => "SPID livello 2",
        SpidLevel::L3 => "SPID livello 3",
    }
}

fn show(s: &IdpState, req: Result<ShownRequest, String>) -> Response {
    let req = match req {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let token = xml::random_token();
    let mut identities = String::new();
    for (i, id) in test_identities().iter().enumerate() {
        identities.push_str(&format!(
            r#"<div><input type="radio" name="identity" id="identity-{i}" value="{i}"{checked}> <label for="identity-{i}">{n} {f} ({cf})</label></div>"#,
            checked = if i == 0 { " checked" } else { "" },
            n = esc(id.name),
            f = esc(id.family_name),
            cf = esc(&id.fiscal_number),
        ));
    }
    let mut levels = String::new();
    for l in SpidLevel::ALL {
        let note = if l < req.level {
            " (inferiore al richiesto: il servizio deve rifiutarlo)"
        } else {
            ""
        };
        levels.push_str(&format!(
            r#"<option value="{v}"{sel}>{label}{note}</option>"#,
            v = l.saml_class_ref(),
            sel = if l == req.level { " selected" } else { "" },
            label = level_label(l),
        ));
    }
    let body = format!(
        concat!(
            "<p>Il servizio <strong>{sp}</strong> ({eid}) chiede un'autenticazione di livello <strong>{level}</strong>.</p>",
            r#"<form method="post" action="/sso/answer"><input type="hidden" name="request" value="{token}">"#,
            "<fieldset><legend>Identità di test</legend>{identities}</fieldset>",
            r#"<p><label for="level">Livello con cui rispondere</label> <select id="level" name="level">{levels}</select></p>"#,
            r#"<p><button type="submit" name="action" value="login">Entra</button> "#,
            r#"<button type="submit" name="action" value="cancel">Annulla</button></p></form>"#
        ),
        sp = esc(&req.sp.name),
        eid = esc(&req.sp.entity_id),
        level = level_label(req.level),
        token = token,
        identities = identities,
        levels = levels,
    );
    if let Ok(mut p) = s.pending.lock() {
        // Keeps the map bounded: a dev tool, but it should not grow without limit.
        if p.len() > 1000 {
            p.clear();
        }
        p.insert(token, req);
    }
    page(StatusCode::OK, "Accesso con SPID", &body, false)
}

fn autopost(action: &str, fields: &[(String, String)], title: &str) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                esc(k),
                esc(v)
            )
        })
        .collect();
    let body = format!(
        r#"<form id="saml-form" method="post" action="{}">{inputs}<p><button type="submit">Continua</button></p></form>"#,
        esc(action)
    );
    page(StatusCode::OK, title, &body, true)
}

fn send(msg: OutgoingMessage, title: &str) -> Response {
    match msg {
        OutgoingMessage::Redirect { location } => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        OutgoingMessage::Post { action, fields } => autopost(&action, &fields, title),
    }
}

async fn answer(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let token = f.get("request").cloned().unwrap_or_default();
    let req = s.pending.lock().ok().and_then(|mut p| p.remove(&token));
    let Some(req) = req else {
        return error_page("Richiesta scaduta o già usata: riparti dal servizio.");
    };
    let identities = test_identities();
    let Some(identity) = f
        .get("identity")
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| identities.get(i))
    else {
        return error_page("Scegli un'identità di test.");
    };
    let level = f
        .get("level")
        .and_then(|l| SpidLevel::from_saml_class_ref(l))
        .unwrap_or(req.level);
    let mut spec = ResponseSpec::new(
        &s.base_url,
        &req.sp.entity_id,
        &req.sp.acs_url,
        &req.request_id,
        level,
        identity.attributes(),
    );
    if f.get("action").map(String::as_str) == Some("cancel") {
        spec.anomaly = Some(25);
    } else if let Ok(mut sessions) = s.sessions.lock() {
        if sessions.len() > 1000 {
            sessions.clear();
        }
        sessions.push(IssuedSession {
            sp: req.sp.clone(),
            person: format!("{} {}", identity.name, identity.family_name),
            name_id: spec.name_id.clone(),
            session_index: spec.session_index.clone(),
        });
    }
    let xml = match build_response(&s.signer, &spec) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "test IdP: cannot sign the response");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Errore",
                "<p>Impossibile firmare la risposta.</p>",
                false,
            );
        }
    };
    let mut fields = vec![("SAMLResponse".to_string(), xml::b64_encode(xml.as_bytes()))];
    if let Some(rs) = req.relay_state {
        fields.push(("RelayState".to_string(), rs));
    }
    autopost(&req.sp.acs_url, &fields, "Ritorno al servizio")
}

async fn slo_redirect(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let q = q.unwrap_or_default();
    if q.contains("SAMLResponse=") {
        return logout_done();
    }
    let m = match decode_redirect(&q, "SAMLRequest") {
        Ok(m) => m,
        Err(r) => return error_page(&format!("Richiesta di uscita non valida ({}).", r.reason)),
    };
    let (x, rs) = (m.xml.clone(), m.relay_state.clone());
    logout(&s, x, rs, Some(m), Binding::HttpRedirect)
}

async fn slo_post(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    if f.contains_key("SAMLResponse") {
        return logout_done();
    }
    let Some(req) = f.get("SAMLRequest") else {
        return error_page("Manca SAMLRequest.");
    };
    let x = match decode_post(req) {
        Ok(x) => x,
        Err(r) => return error_page(&format!("Richiesta di uscita non valida ({}).", r.reason)),
    };
    logout(&s, x, f.get("RelayState").cloned(), None, Binding::HttpPost)
}

fn logout_done() -> Response {
    page(
        StatusCode::OK,
        "Uscita completata",
        "<p>Sei uscito dal servizio.</p>",
        false,
    )
}

fn logout(
    s: &IdpState,
    x: String,
    rs: Option<String>,
    m: Option<crate::binding::RedirectMessage>,
    binding: Binding,
) -> Response {
    let (sp, signed, relay_state) = match receive(s, x, rs, m, "LogoutRequest") {
        Ok(v) => v,
        Err(e) => return error_page(&e),
    };
    let Ok(doc) = parse_document(&signed) else {
        return error_page("Richiesta non leggibile.");
    };
    let request_id = doc
        .root_element()
        .attribute("ID")
        .unwrap_or_default()
        .to_string();
    let destination = match binding {
        Binding::HttpRedirect => sp.slo_redirect_url.clone(),
        Binding::HttpPost => sp.slo_post_url.clone(),
    };
    let Some(destination) = destination else {
        return error_page("Il servizio non ha un indirizzo di uscita.");
    };
    let id = xml::random_id();
    let now = Utc::now();
    let keys = &s.signer.0;
    let st = xml::STATUS_SUCCESS;
    let unsigned =
        crate::slo::logout_response_xml(&s.base_url, &id, &request_id, now, &destination, st, "");
    let templated = crate::slo::logout_response_xml(
        &s.base_url,
        &id,
        &request_id,
        now,
        &destination,
        st,
        &keys.signature_template(&id),
    );
    match crate::binding::encode(
        keys,
        binding,
        &destination,
        "SAMLResponse",
        &unsigned,
        &templated,
        relay_state.as_deref(),
    ) {
        Ok(msg) => send(msg, "Uscita in corso"),
        Err(e) => {
            tracing::error!(error = %e, "test IdP: cannot sign the logout response");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Errore",
                "<p>Impossibile firmare la risposta.</p>",
                false,
            )
        }
    }
}

async fn logout_page(State(s): State<Shared>) -> Response {
    let sessions = s.sessions.lock().map(|v| v.clone()).unwrap_or_default();
    if sessions.is_empty() {
        return page(
            StatusCode::OK,
            "Esci da SPID",
            "<p>Nessuna sessione aperta presso questo IdP.</p>",
            false,
        );
    }
    let mut items = String::new();
    for se in &sessions {
        items.push_str(&format!(
            r#"<li><form method="post" action="/logout"><input type="hidden" name="session" value="{sid}">{person} presso {sp} <button type="submit">Esci</button></form></li>"#,
            sid = esc(&se.session_index),
            person = esc(&se.person),
            sp = esc(&se.sp.name),
        ));
    }
    page(
        StatusCode::OK,
        "Esci da SPID",
        &format!("<p>Sessioni aperte:</p><ul>{items}</ul>"),
        false,
    )
}

/// IdP-initiated single logout: a signed LogoutRequest to the SP (HTTP-POST when the SP
/// offers it, else HTTP-Redirect).
async fn logout_start(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let sid = f.get("session").cloned().unwrap_or_default();
    let session = s.sessions.lock().ok().and_then(|mut v| {
        let i = v.iter().position(|se| se.session_index == sid)?;
        Some(v.remove(i))
    });
    let Some(se) = session else {
        return error_page("Sessione sconosciuta o già chiusa.");
    };
    let (binding, destination) = match (&se.sp.slo_post_url, &se.sp.slo_redirect_url) {
        (Some(p), _) => (Binding::HttpPost, p.clone()),
        (None, Some(r)) => (Binding::HttpRedirect, r.clone()),
        (None, None) => return error_page("Il servizio non ha un indirizzo di uscita."),
    };
    let spid_session = crate::SpidSession {
        idp_entity_id: s.base_url.clone(),
        name_id: se.name_id,
        name_id_qualifier: Some(s.base_url.clone()),
        session_index: Some(se.session_index),
    };
    let id = xml::random_id();
    let now = Utc::now();
    let keys = &s.signer.0;
    let unsigned =
        crate::slo::logout_request_xml(&s.base_url, &id, now, &destination, &spid_session, "");
    let templated = crate::slo::logout_request_xml(
        &s.base_url,
        &id,
        now,
        &destination,
        &spid_session,
        &keys.signature_template(&id),
    );
    match crate::binding::encode(
        keys,
        binding,
        &destination,
        "SAMLRequest",
        &unsigned,
        &templated,
        Some(&xml::random_token()),
    ) {
        Ok(msg) => send(msg, "Uscita in corso"),
        Err(e) => {
            tracing::error!(error = %e, "test IdP: cannot sign the logout request");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Errore",
                "<p>Impossibile firmare la richiesta.</p>",
                false,
            )
        }
    }
}
