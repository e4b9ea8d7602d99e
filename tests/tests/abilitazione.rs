//! Istanze OnLine's abilitazione end to end, with the three services in-process as real
//! OIDC clients of a real IdP: a person registers (Registrati), signs in at Istanze
//! OnLine with the temporary password and changes it, fills the form, accepts, reads the
//! CPT from the service's outbox, asks for it again, checks it, waits for the school
//! operator's recognition, changes the CPT, reaches the Istanze OnLine home, changes the
//! contact data, then Pago in rete and the governance portal without a new login; one
//! logout ends all three. A second person is recognised through a delegate. Plus the
//! refusals. On both backends.

use std::time::Duration;

use base64::Engine as _;
use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, Page, TestIdp, hidden};
use idp_tests::registration::{self, Person};
use idp_tests::spid;
use relying_parties::{BoundRp, Service};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SECRET: &str = "relying-party-secret-for-the-abilitazione-0";
const PASSWORD: &str = "Scuola-2026!Test";
const FISCAL_CODE: &str = "RSSMRA85T10A562S";
const EMAIL: &str = "mario.rossi@example.org";

struct Federation {
    idp: TestIdp,
    rps: Vec<BoundRp>,
}

impl Federation {
    async fn start(backend: Backend) -> Federation {
        Self::start_on(backend, false).await
    }

    /// The federation with SPID on and the local SPID test IdP as identity provider.
    async fn start_with_spid(backend: Backend) -> Federation {
        Self::start_on(backend, true).await
    }

    async fn start_on(backend: Backend, spid: bool) -> Federation {
        let mut bound = Vec::new();
        for service in Service::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!(
                "http://127.0.0.1:{}",
                listener.local_addr().expect("addr").port()
            );
            bound.push((service, listener, base));
        }
        let seeds = bound.iter().map(|(s, _, base)| seed(*s, base)).collect();
        let idp = if spid {
            TestIdp::start_with_spid(backend, seeds, |_| {}).await
        } else {
            TestIdp::start(backend, seeds).await
        };
        let mut rps = Vec::new();
        for (service, listener, base) in bound {
            let config = service.config(&idp.base, SECRET, &base, 0);
            rps.push(
                relying_parties::serve_on(config, listener)
                    .await
                    .expect("rp starts"),
            );
        }
        Federation { idp, rps }
    }

    fn istanze(&self) -> &BoundRp {
        &self.rps[0]
    }

    async fn stop(self) {
        for rp in self.rps {
            rp.stop().await;
        }
        self.idp.stop().await;
    }
}

fn seed(service: Service, base: &str) -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(service.id()).expect("client id"),
        name: service.display_name().into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![format!("{base}/callback")],
        post_logout_redirect_uris: vec![format!("{base}/")],
        backchannel_logout_uri: Some(format!("{base}/backchannel-logout")),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        jwks_file: None,
        service: service.needs_enablement().then(|| service.id().to_string()),
        enablement_uri: service
            .needs_enablement()
            .then(|| format!("{base}/abilitazione")),
        access_token_format: AccessTokenFormat::Jwt,
    }
}

async fn visit(browser: &Browser, url: &str) -> Page {
    browser.visit(url).await
}

async fn post(browser: &Browser, url: &str, fields: &[(&str, &str)]) -> Page {
    browser.post_form(url, fields).await
}

/// GETs without following redirects; returns the Location.
async fn location(browser: &Browser, url: &str) -> String {
    let r = browser.http.get(url).send().await.expect("GET");
    r.headers()
        .get("location")
        .map(|l| l.to_str().expect("location").to_string())
        .unwrap_or_default()
}

fn signed_in(page: &Page) -> bool {
    page.status == 200 && page.body.contains("id=\"dati-personali\"")
}

fn signed_out(page: &Page) -> bool {
    page.status == 200
        && page.body.contains("id=\"accedi\"")
        && !page.body.contains("id=\"user-menu\"")
}

fn pdf_text(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("abilitazione-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("modulo.pdf");
    std::fs::write(&file, bytes).expect("write");
    let out = std::process::Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn outbox(rp: &BoundRp) -> Vec<Value> {
    reqwest::get(rp.url("/dev/outbox.json"))
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json")
}

fn cpt_of(mail: &Value) -> String {
    let body = mail["body"].as_str().expect("body");
    let at = body.find("Codice Personale Temporaneo: ").expect("a CPT") + 29;
    body[at..]
        .split_whitespace()
        .next()
        .expect("cpt")
        .to_string()
}

fn form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("given_name", "Mario"),
        ("family_name", "Rossi"),
        ("fiscal_code", FISCAL_CODE),
        ("email", EMAIL),
        ("address", "Via Roma 1"),
        ("country", "Italia"),
        ("province", "PI"),
        ("municipality", "San Giuliano Terme"),
        ("mobile_phone", "3331234567"),
        ("home_phone", "050123456"),
        ("document_type", "Carta d'identità"),
        ("document_number", "CA12345AB"),
        ("document_issuer", "Comune di Pisa"),
        ("document_date", "2020-05-04"),
        ("recovery_question", "Cognome da nubile della madre"),
        ("recovery_answer", "Niccolò"),
    ]
}

/// Fiscal code + CPT on the check page.
async fn check_cpt(
    f: &Federation,
    browser: &Browser,
    csrf: &str,
    fiscal_code: &str,
    cpt: &str,
) -> Page {
    post(
        browser,
        &f.istanze().url("/abilitazione/cpt"),
        &[("csrf", csrf), ("fiscal_code", fiscal_code), ("cpt", cpt)],
    )
    .await
}

/// "Esci" during the abilitazione.
async fn leave(f: &Federation, browser: &Browser, csrf: &str) {
    post(
        browser,
        &f.istanze().url("/abilitazione/esci"),
        &[("csrf", csrf)],
    )
    .await;
}

/// Olga Operatrice: a school operator, enabled on Istanze OnLine (sign in as
/// `olga.operatrice` with PASSWORD).
async fn school_operator(f: &Federation) -> String {
    let idp = &f.idp;
    let operator = idp.account("Olga", "Operatrice", PASSWORD).await;
    idp.grant_role(&operator, "school_operator").await;
    let put = reqwest::Client::new()
        .put(idp.url(&format!(
            "/enablements/istanze-online/{}",
            operator.id.as_str()
        )))
        .basic_auth("istanze-online", Some(SECRET))
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("put");
    assert_eq!(
        put.status().as_u16(),
        200,
        "the operator is an enabled user"
    );
    operator.id.as_str().to_string()
}

/// On the abilitazione: the form for `who` (the other fields from `form()`), "Conferma"
/// (the summary with its warnings), "Accetto" (the CPT mail with the two forms);
/// returns the page's CSRF token and the CPT.
async fn fill_in_and_accept(
    f: &Federation,
    browser: &Browser,
    enablement: &str,
    who: &Person<'_>,
) -> (String, String) {
    let istanze = f.istanze();
    let form_page = visit(browser, enablement).await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    assert!(
        form_page.body.contains("id=\"passi\""),
        "{}",
        form_page.body
    );
    let csrf = hidden(&form_page.body, "csrf").expect("csrf");
    let mut fields: Vec<(&str, &str)> = form()
        .into_iter()
        .map(|(k, v)| match k {
            "given_name" => (k, who.given_name),
            "family_name" => (k, who.family_name),
            "fiscal_code" => (k, who.fiscal_code),
            "email" => (k, who.email),
            _ => (k, v),
        })
        .collect();
    fields.push(("csrf", csrf.as_str()));
    let summary = post(browser, &istanze.url("/abilitazione/modulo"), &fields).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert!(
        summary.body.contains("id=\"avvertenze\""),
        "{}",
        summary.body
    );
    let sent = post(
        browser,
        &istanze.url("/abilitazione/accetto"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert!(sent.body.contains("Ti abbiamo inviato"), "{}", sent.body);
    let mails = outbox(istanze).await;
    let mail = mails.last().expect("the CPT mail");
    assert_eq!(mail["to"], who.email);
    assert_eq!(mail["attachments"].as_array().map(Vec::len), Some(2));
    let cpt = cpt_of(mail);
    (csrf, cpt)
}

/// The one `recognition` event in the IdP's audit log (Istanze OnLine reports who
/// recognised the person, how and on which document when it activates them).
async fn recognition_event(f: &Federation) -> idp_core::audit::AuditEvent {
    let events = f
        .idp
        .audit(idp_core::audit::AuditKind::Recognition, None)
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events.into_iter().next().expect("one event");
    assert_eq!(event.client_id.as_deref(), Some("istanze-online"));
    event
}

/// The operator signs in at Istanze OnLine; returns the browser and the search page for
/// `fiscal_code`.
async fn operator_search(f: &Federation, fiscal_code: &str) -> (Browser, Page) {
    let op = Browser::new();
    let login = visit(&op, &f.istanze().url("/accedi")).await;
    let back = op
        .sign_in(&f.idp, &login, "olga.operatrice", PASSWORD)
        .await;
    visit(&op, &back.url).await;
    let search = visit(
        &op,
        &f.istanze()
            .url(&format!("/operatore?codice_fiscale={fiscal_code}")),
    )
    .await;
    assert_eq!(search.status, 200, "{}", search.body);
    (op, search)
}

/// Mario Rossi registers through Registrati; returns the mailed credentials.
async fn register(f: &Federation, person: &Person<'_>) -> registration::Credentials {
    let credentials = registration::register(&f.idp, person).await;
    assert!(!credentials.temporary_password.is_empty());
    credentials
}

fn mario() -> Person<'static> {
    Person {
        fiscal_code: FISCAL_CODE,
        given_name: "Mario",
        family_name: "Rossi",
        birth_date: "1985-12-10",
        birth_place: "San Giuliano Terme",
        sex: "M",
        email: EMAIL,
    }
}

/// The first sign-in of a newly registered person, from Istanze OnLine's "Accedi": the
/// IdP asks for the temporary password to be changed first, then sends the browser to
/// the abilitazione; returns that enablement URL.
async fn first_login_after_registration(
    f: &Federation,
    browser: &Browser,
    credentials: &registration::Credentials,
) -> String {
    let login = visit(browser, &f.istanze().url("/accedi")).await;
    let change = browser
        .sign_in(
            &f.idp,
            &login,
            &credentials.username,
            &credentials.temporary_password,
        )
        .await;
    assert!(change.url.ends_with("/cambio-password"), "{}", change.url);
    let back = registration::change_temporary_password(&f.idp, browser, PASSWORD).await;
    enablement_url(f, back)
}

/// Where the IdP sent the browser after the sign-in: Istanze OnLine's abilitazione.
fn enablement_url(f: &Federation, back: Page) -> String {
    assert!(
        back.url
            .starts_with(&f.istanze().url("/abilitazione?request=")),
        "{}",
        back.url
    );
    back.url
}

/// The person signs in at Istanze OnLine and lands on the abilitazione; returns the
/// enablement URL the IdP sent the browser to.
async fn first_login(f: &Federation, browser: &Browser) -> String {
    let login = visit(browser, &f.istanze().url("/accedi")).await;
    let back = browser
        .sign_in(&f.idp, &login, "mario.rossi", PASSWORD)
        .await;
    enablement_url(f, back)
}

async fn a_password_user_is_enabled_after_the_recognition_and_uses_all_three(backend: Backend) {
    let f = Federation::start(backend).await;
    let credentials = register(&f, &mario()).await;
    assert_eq!(credentials.username, "mario.rossi");
    let operator = school_operator(&f).await;
    let [istanze, pago, governance] = [&f.rps[0], &f.rps[1], &f.rps[2]];
    let browser = Browser::new();

    // 1. the form, with the proposed recovery question and the step indicator
    let enablement = first_login_after_registration(&f, &browser, &credentials).await;
    let form_page = visit(&browser, &enablement).await;
    assert_eq!(form_page.status, 200, "{}", form_page.body);
    assert!(form_page.body.contains("id=\"passi\""));
    assert!(form_page.body.contains("Cognome da nubile della madre"));
    let csrf = hidden(&form_page.body, "csrf").expect("csrf");
    let mut fields = form();
    fields.retain(|(k, _)| *k != "document_number");
    fields.push(("document_number", "12"));
    fields.push(("csrf", csrf.as_str()));
    let refused = post(&browser, &istanze.url("/abilitazione/modulo"), &fields).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("document_number-errore"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"Via Roma 1\""), "values kept");
    let mut fields = form();
    fields.push(("csrf", csrf.as_str()));
    let summary = post(&browser, &istanze.url("/abilitazione/modulo"), &fields).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert!(
        summary.body.contains("id=\"avvertenze\""),
        "{}",
        summary.body
    );
    let pdf = browser
        .http
        .get(istanze.url("/abilitazione/modulo-adesione.pdf"))
        .send()
        .await
        .expect("pdf")
        .bytes()
        .await
        .expect("bytes");
    let text = pdf_text(&pdf);
    for expected in [
        FISCAL_CODE,
        "Mario",
        "Rossi",
        "CA12345AB",
        "Via Roma 1",
        "San Giuliano Terme",
    ] {
        assert!(
            text.contains(expected),
            "{expected} in the modulo di adesione: {text}"
        );
    }

    // 2. Accetto: the CPT and the two forms by mail
    let sent = post(
        &browser,
        &istanze.url("/abilitazione/accetto"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert!(sent.body.contains("Ti abbiamo inviato"), "{}", sent.body);
    let mails = outbox(istanze).await;
    let mail = mails.last().expect("a mail");
    assert_eq!(mail["to"], EMAIL);
    let attachments = mail["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 2);
    let delega = base64::engine::general_purpose::STANDARD
        .decode(attachments[1]["base64"].as_str().expect("b64"))
        .expect("base64");
    assert!(pdf_text(&delega).contains(FISCAL_CODE));
    let first_cpt = cpt_of(mail);
    leave(&f, &browser, &csrf).await;

    // "Ripetizione invio Codice Personale Temporaneo": a new CPT replaces the first
    let check = visit(&browser, &istanze.url("/accedi")).await;
    let check_csrf = hidden(&check.body, "csrf").expect("csrf");
    let resent = post(
        &browser,
        &istanze.url("/codice-personale/ripetizione-invio"),
        &[("csrf", check_csrf.as_str())],
    )
    .await;
    assert!(
        resent.body.contains("Codice Personale Temporaneo inviato"),
        "{}",
        resent.body
    );
    let mails = outbox(istanze).await;
    let cpt = cpt_of(mails.last().expect("the resent CPT"));
    assert_ne!(cpt, first_cpt, "a new CPT");

    // 3. "Accedi" again: fiscal code + CPT; a wrong CPT is refused
    let check = visit(&browser, &istanze.url("/accedi")).await;
    assert!(check.body.contains("name=\"cpt\""), "{}", check.body);
    let wrong = check_cpt(&f, &browser, &csrf, FISCAL_CODE, "sbagliato1").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("non sono corretti"), "{}", wrong.body);
    let replaced = check_cpt(&f, &browser, &csrf, FISCAL_CODE, first_cpt.as_str()).await;
    assert_eq!(replaced.status, 400, "the first CPT no longer works");
    let pending = check_cpt(&f, &browser, &csrf, FISCAL_CODE, cpt.as_str()).await;
    assert!(
        pending.body.contains("id=\"in-attesa\""),
        "{}",
        pending.body
    );
    leave(&f, &browser, &csrf).await;

    // 4. the operator's recognition: a document that does not match is refused
    let (op, search) = operator_search(&f, FISCAL_CODE).await;
    assert!(
        search.body.contains("CA12345AB"),
        "the declared document: {}",
        search.body
    );
    let op_csrf = hidden(&search.body, "csrf").expect("csrf");
    let mismatch = post(
        &op,
        &istanze.url("/operatore/riconoscimento"),
        &[
            ("csrf", op_csrf.as_str()),
            ("fiscal_code", FISCAL_CODE),
            ("document_type", "Carta d'identità"),
            ("document_number", "XX99999"),
            ("method", "in_person"),
        ],
    )
    .await;
    assert_eq!(mismatch.status, 400);
    assert!(
        mismatch.body.contains("non corrisponde"),
        "{}",
        mismatch.body
    );
    let recognised = post(
        &op,
        &istanze.url("/operatore/riconoscimento"),
        &[
            ("csrf", op_csrf.as_str()),
            ("fiscal_code", FISCAL_CODE),
            ("document_type", "Carta d'identità"),
            ("document_number", "ca12345ab"),
            ("method", "in_person"),
        ],
    )
    .await;
    assert_eq!(recognised.status, 200, "{}", recognised.body);
    assert!(recognised.body.contains("Riconoscimento registrato"));
    let event = recognition_event(&f).await;
    assert_eq!(event.detail["method"], "in_person");
    assert_eq!(event.detail["document_type"], "Carta d'identità");
    assert_eq!(event.detail["operator"], operator.as_str());
    let mails = outbox(istanze).await;
    assert!(
        mails.last().expect("mail")["subject"]
            .as_str()
            .expect("s")
            .contains("attivazione dell'utenza")
    );
    // A person who is not an operator is refused.
    let not_op = visit(&browser, &istanze.url("/operatore")).await;
    assert!(not_op.status == 401 || not_op.status == 403);

    // 5. next access: the mandatory CPT change, then the home page
    let change = visit(&browser, &istanze.url("/accedi")).await;
    assert!(change.url.ends_with("/codice-personale"), "{}", change.url);
    let csrf = hidden(&change.body, "csrf").expect("csrf");
    let weak = post(
        &browser,
        &istanze.url("/codice-personale"),
        &[
            ("csrf", csrf.as_str()),
            ("current", cpt.as_str()),
            ("new_code", "corto"),
            ("repeat", "corto"),
        ],
    )
    .await;
    assert_eq!(weak.status, 400);
    let done = post(
        &browser,
        &istanze.url("/codice-personale"),
        &[
            ("csrf", csrf.as_str()),
            ("current", cpt.as_str()),
            ("new_code", "Scuola2026x"),
            ("repeat", "Scuola2026x"),
        ],
    )
    .await;
    assert!(
        done.body.contains("Codice personale modificato"),
        "{}",
        done.body
    );
    let home = visit(&browser, &istanze.url("/")).await;
    assert!(signed_in(&home), "{}", home.body);
    assert!(
        home.body
            .contains("la tua home page personale di Istanze OnLine"),
        "{}",
        home.body
    );

    // a sample application with the personal code
    let sent = post(
        &browser,
        &istanze.url("/istanze/nuova"),
        &[
            ("csrf", csrf.as_str()),
            ("subject", "Domanda di mobilità"),
            ("code", "Scuola2026x"),
        ],
    )
    .await;
    assert!(sent.body.contains("IOL-"), "{}", sent.body);

    // "Variazione dati di recapito": a bad phone is refused with its message, values
    // kept; good values are stored and shown next time
    let contacts = visit(&browser, &istanze.url("/recapiti")).await;
    assert!(
        contacts.body.contains("value=\"3331234567\""),
        "{}",
        contacts.body
    );
    let new_contacts = |mobile: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("mobile_phone", mobile.to_string()),
            ("home_phone", String::new()),
            ("address", "Via Garibaldi 7".to_string()),
            ("country", "Italia".to_string()),
            ("province", "LU".to_string()),
            ("municipality", "Lucca".to_string()),
        ]
    };
    let fields = new_contacts("12");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = post(&browser, &istanze.url("/recapiti"), &fields).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("numero di cellulare valido"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"Via Garibaldi 7\""),
        "values kept"
    );
    let fields = new_contacts("3479876543");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = post(&browser, &istanze.url("/recapiti"), &fields).await;
    assert!(
        saved.body.contains("Dati di recapito aggiornati"),
        "{}",
        saved.body
    );
    let contacts = visit(&browser, &istanze.url("/recapiti")).await;
    for shown in ["3479876543", "Via Garibaldi 7", "Lucca"] {
        assert!(
            contacts.body.contains(&format!("value=\"{shown}\"")),
            "{shown}: {}",
            contacts.body
        );
    }

    // 6. Pago in rete and the governance portal: no new login
    for rp in [pago, governance] {
        let page = visit(&browser, &rp.url("/accedi")).await;
        assert!(page.url.starts_with(&rp.base_url), "{}", page.url);
        assert!(signed_in(&page), "{}", page.body);
        assert!(page.body.contains(FISCAL_CODE));
    }

    // 7. the recovery question: case and accents do not matter; wrong answers lock it
    let right = post(
        &browser,
        &istanze.url("/codice-personale/recupero"),
        &[("csrf", csrf.as_str()), ("answer", "  NICCOLO ")],
    )
    .await;
    assert!(
        right.body.contains("Codice personale recuperato"),
        "{}",
        right.body
    );
    for attempt in 1..=3 {
        let wrong = post(
            &browser,
            &istanze.url("/codice-personale/recupero"),
            &[("csrf", csrf.as_str()), ("answer", "Bianchi")],
        )
        .await;
        if attempt < 3 {
            assert_eq!(wrong.status, 400);
            assert!(wrong.body.contains("non è corretta"), "{}", wrong.body);
        } else {
            assert_eq!(wrong.status, 403);
            assert!(wrong.body.contains("Recupero bloccato"), "{}", wrong.body);
        }
    }

    // 8. sign out from the governance portal: all three are signed out
    let gov_home = visit(&browser, &governance.url("/")).await;
    let gov_csrf = hidden(&gov_home.body, "csrf").expect("sign-out form");
    let after = post(
        &browser,
        &governance.url("/esci"),
        &[("csrf", gov_csrf.as_str())],
    )
    .await;
    assert!(signed_out(&after), "{}", after.body);
    for rp in [pago, istanze] {
        let mut page = visit(&browser, &rp.url("/")).await;
        for _ in 0..50 {
            if signed_out(&page) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            page = visit(&browser, &rp.url("/")).await;
        }
        assert!(
            signed_out(&page),
            "{} still signed in: {}",
            rp.base_url,
            page.body
        );
    }
    f.stop().await;
}

/// Anna Bianchi of the SPID test IdP: no account has her fiscal code before her first
/// SPID sign-in, which creates it.
const SPID_FISCAL_CODE: &str = "BNCNNA85M41F205Q";
const SPID_EMAIL: &str = "anna.bianchi@example.org";

/// The enablement of Istanze OnLine for `sub` as the IdP reports it to the service.
async fn enablement_at_the_idp(f: &Federation, sub: &str) -> Value {
    let r = reqwest::Client::new()
        .get(f.idp.url(&format!("/enablements/istanze-online/{sub}")))
        .basic_auth("istanze-online", Some(SECRET))
        .send()
        .await
        .expect("get the enablement");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

async fn a_spid_user_is_enabled_without_a_recognition(backend: Backend) {
    let f = Federation::start_with_spid(backend).await;
    let [istanze, pago, governance] = [&f.rps[0], &f.rps[1], &f.rps[2]];
    let fiscal_code =
        idp_core::fiscal_code::FiscalCode::parse(SPID_FISCAL_CODE).expect("fiscal code");
    assert!(
        f.idp
            .state
            .store
            .account_by_fiscal_code(&fiscal_code)
            .await
            .expect("lookup")
            .is_none(),
        "no account before the first SPID sign-in"
    );
    let browser = Browser::new();

    // 1. "Accedi" at Istanze OnLine -> the IdP's login page -> SPID as Anna Bianchi: a
    // new account, sent on to the abilitazione with a SPID level as `assurance`.
    let login = visit(&browser, &istanze.url("/accedi")).await;
    assert!(login.url.starts_with(&f.idp.base), "{}", login.url);
    let back = spid::spid_sign_in(&f.idp, &browser, &login, SPID_FISCAL_CODE).await;
    let enablement = enablement_url(&f, back);
    let account = f
        .idp
        .state
        .store
        .account_by_fiscal_code(&fiscal_code)
        .await
        .expect("lookup")
        .expect("the SPID sign-in created the account");
    let sub = account.id.as_str().to_string();
    assert_eq!(enablement_at_the_idp(&f, &sub).await["status"], "none");

    // 2. the form, Conferma, Accetto: the CPT by mail
    let anna = Person {
        fiscal_code: SPID_FISCAL_CODE,
        given_name: "Anna",
        family_name: "Bianchi",
        birth_date: "",
        birth_place: "",
        sex: "F",
        email: SPID_EMAIL,
    };
    let (csrf, cpt) = fill_in_and_accept(&f, &browser, &enablement, &anna).await;
    leave(&f, &browser, &csrf).await;
    assert_eq!(
        enablement_at_the_idp(&f, &sub).await["status"],
        "none",
        "not enabled before the CPT check"
    );

    // 3. "Accedi" again (single sign-on: no SPID prompt): fiscal code + CPT. A wrong CPT
    // is refused; the right one enables her at once, without an operator.
    let check = visit(&browser, &istanze.url("/accedi")).await;
    assert!(check.body.contains("name=\"cpt\""), "{}", check.body);
    let wrong = check_cpt(&f, &browser, &csrf, SPID_FISCAL_CODE, "sbagliato1").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("non sono corretti"), "{}", wrong.body);
    let enabled = check_cpt(&f, &browser, &csrf, SPID_FISCAL_CODE, &cpt).await;
    assert!(
        !enabled.body.contains("id=\"in-attesa\""),
        "a SPID user does not wait for a school: {}",
        enabled.body
    );
    assert!(
        enabled.url.ends_with("/codice-personale"),
        "{} {}",
        enabled.url,
        enabled.body
    );
    assert!(
        enabled
            .body
            .contains("Modifica obbligatoria del Codice Personale Temporaneo"),
        "{}",
        enabled.body
    );
    assert_eq!(
        enablement_at_the_idp(&f, &sub).await["status"],
        "active",
        "active at the IdP without any operator"
    );

    // 4. the mandatory CPT change, then the Istanze OnLine home
    let csrf = hidden(&enabled.body, "csrf").expect("csrf");
    let done = post(
        &browser,
        &istanze.url("/codice-personale"),
        &[
            ("csrf", csrf.as_str()),
            ("current", cpt.as_str()),
            ("new_code", "Milano2026x"),
            ("repeat", "Milano2026x"),
        ],
    )
    .await;
    assert!(
        done.body.contains("Codice personale modificato"),
        "{}",
        done.body
    );
    let home = visit(&browser, &istanze.url("/accedi")).await;
    assert!(home.url.starts_with(&istanze.base_url), "{}", home.url);
    assert!(signed_in(&home), "{}", home.body);
    assert!(
        home.body
            .contains("la tua home page personale di Istanze OnLine"),
        "{}",
        home.body
    );
    assert!(home.body.contains(SPID_FISCAL_CODE), "{}", home.body);

    // 5. the other two services: signed in without a new login
    for rp in [pago, governance] {
        let page = visit(&browser, &rp.url("/accedi")).await;
        assert!(page.url.starts_with(&rp.base_url), "{}", page.url);
        assert!(signed_in(&page), "{}", page.body);
        assert!(page.body.contains(SPID_FISCAL_CODE));
    }
    f.stop().await;
}

async fn expired_tampered_and_replayed_requests_are_refused(backend: Backend) {
    let f = Federation::start(backend).await;
    let account = f.idp.account_with_fiscal_code(FISCAL_CODE, PASSWORD).await;
    let browser = Browser::new();
    let enablement = first_login(&f, &browser).await;

    // tampered: another sub in the payload, same signature
    let token = enablement
        .split("request=")
        .nth(1)
        .expect("request")
        .to_string();
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value =
        serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
    claims["sub"] = json!("someone-else");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    );
    let page = visit(
        &browser,
        &f.istanze().url(&format!("/abilitazione?request={forged}")),
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("non è valida"), "{}", page.body);

    // expired: signed by the IdP, but past its exp
    let mut old = claims.clone();
    old["sub"] = json!(account.id.as_str());
    old["jti"] = json!(uuid::Uuid::new_v4().to_string());
    old["iat"] = json!(chrono::Utc::now().timestamp() - 1000);
    old["exp"] = json!(chrono::Utc::now().timestamp() - 600);
    let expired = f
        .idp
        .state
        .keys
        .sign(&old, Some("enablement+jwt"), None)
        .expect("sign");
    let page = visit(
        &browser,
        &f.istanze().url(&format!("/abilitazione?request={expired}")),
    )
    .await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("è scaduta"), "{}", page.body);

    // replayed: the genuine request works once
    let first = visit(&browser, &enablement).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(location(&browser, &enablement).await.is_empty());
    let again = visit(&browser, &enablement).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("già stata usata"), "{}", again.body);
    f.stop().await;
}

const DELEGATED: &str = "BNCLRA90A41G702N";
const DELEGATED_EMAIL: &str = "laura.bianchi@example.org";

/// A person who cannot go to the school sends a delegate with the modulo di delega: the
/// operator must record the delegate's name and document, then the person is enabled and
/// asked to change the CPT at the next access.
async fn a_delegate_carries_the_modulo_di_delega(backend: Backend) {
    let f = Federation::start(backend).await;
    school_operator(&f).await;
    let laura = Person {
        fiscal_code: DELEGATED,
        given_name: "Laura",
        family_name: "Bianchi",
        birth_date: "1990-01-01",
        birth_place: "Pisa",
        sex: "F",
        email: DELEGATED_EMAIL,
    };
    let credentials = register(&f, &laura).await;
    assert_eq!(credentials.username, "laura.bianchi");
    let istanze = f.istanze();
    let browser = Browser::new();
    let enablement = first_login_after_registration(&f, &browser, &credentials).await;
    let (csrf, cpt) = fill_in_and_accept(&f, &browser, &enablement, &laura).await;
    leave(&f, &browser, &csrf).await;
    let check = visit(&browser, &istanze.url("/accedi")).await;
    assert!(check.body.contains("name=\"cpt\""), "{}", check.body);
    let pending = check_cpt(&f, &browser, &csrf, DELEGATED, cpt.as_str()).await;
    assert!(
        pending.body.contains("id=\"in-attesa\""),
        "{}",
        pending.body
    );

    let (op, search) = operator_search(&f, DELEGATED).await;
    let op_csrf = hidden(&search.body, "csrf").expect("csrf");
    let recognise = |delegate_name: &'static str, delegate_number: &'static str| {
        vec![
            ("csrf", op_csrf.clone()),
            ("fiscal_code", DELEGATED.to_string()),
            ("document_type", "Carta d'identità".to_string()),
            ("document_number", "CA12345AB".to_string()),
            ("method", "delegate".to_string()),
            ("delegate_name", delegate_name.to_string()),
            ("delegate_document_type", "Patente di guida".to_string()),
            ("delegate_document_number", delegate_number.to_string()),
        ]
    };
    // without the delegate's document the recognition is refused
    let fields = recognise("Giulia Verdi", "");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = post(&op, &istanze.url("/operatore/riconoscimento"), &fields).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body.contains("tramite delegato"),
        "{}",
        refused.body
    );
    let fields = recognise("Giulia Verdi", "PI1234567X");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = post(&op, &istanze.url("/operatore/riconoscimento"), &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Riconoscimento registrato"),
        "{}",
        done.body
    );
    let event = recognition_event(&f).await;
    assert_eq!(event.detail["method"], "delegate");
    // A recognition that does not come with an activation is refused.
    let refused = reqwest::Client::new()
        .put(f.idp.url(&format!(
            "/enablements/istanze-online/{}",
            event.account_id.as_deref().expect("the person")
        )))
        .basic_auth("istanze-online", Some(SECRET))
        .json(&json!({"status": "pending", "recognition": {
            "operator": "someone", "method": "in_person", "document_type": "Passaporto"}}))
        .send()
        .await
        .expect("put");
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request", "{body}");
    let mails = outbox(istanze).await;
    let activation = mails.last().expect("the activation mail");
    assert_eq!(activation["to"], DELEGATED_EMAIL);
    // a second recognition finds nothing pending
    let again = post(&op, &istanze.url("/operatore/riconoscimento"), &fields).await;
    assert_eq!(again.status, 404, "{}", again.body);

    // the person's next access asks for the CPT change
    let change = visit(&browser, &istanze.url("/accedi")).await;
    assert!(change.url.ends_with("/codice-personale"), "{}", change.url);
    f.stop().await;
}

idp_tests::on_both_backends!(
    a_password_user_is_enabled_after_the_recognition_and_uses_all_three,
    expired_tampered_and_replayed_requests_are_refused,
    a_delegate_carries_the_modulo_di_delega,
    a_spid_user_is_enabled_without_a_recognition,
);
