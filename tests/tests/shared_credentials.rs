//! Shared credentials end to end (issue 4): Registrati over HTTP with the mails read
//! from the outbox, the forced change of the temporary password before any code is
//! issued, a second login, Password dimenticata?, the Area riservata, the lockout, and
//! every bad input with its Italian message. Each body runs on both backends.

use base64::Engine as _;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId as IdpClientId, GrantType};
use idp_core::directory::NewAccount;
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, Page, TestIdp, hidden, query_param};
use idp_tests::registration::{
    self, Person, confirm_by_link, confirm_summary, credentials_mail, link_in, mail, step_one,
    text_of,
};
use serde_json::Value;
use sha2::Digest as _;

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const FISCAL_CODE: &str = "RSSMRA85T10A562S";
const NEW_PASSWORD: &str = "Lavagna-Nuova!2026";

fn client() -> ClientSeed {
    ClientSeed {
        id: IdpClientId::parse("pago-in-rete").expect("client id"),
        name: "Pago in rete".into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::AuthorizationCode],
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

/// A page's text as a person reads it (the templates escape apostrophes).
trait Text {
    fn text(&self) -> String;
}

impl Text for Page {
    fn text(&self) -> String {
        text_of(self)
    }
}

/// Mario Rossi, born on 10 December 1985 (the fiscal code's date and sex).
fn mario<'a>(birth_date: &'a str, sex: &'a str) -> Person<'a> {
    Person {
        fiscal_code: FISCAL_CODE,
        given_name: "Mario",
        family_name: "Rossi",
        birth_date,
        birth_place: "San Giuliano Terme",
        sex,
        email: "mario.rossi@example.org",
    }
}

async fn step_two(idp: &TestIdp, browser: &Browser, page: &Page, birth: &str, sex: &str) -> Page {
    registration::step_two(idp, browser, page, &mario(birth, sex)).await
}

/// Registers Mario Rossi, going back once with "Modifica" and trying the confirmation
/// link twice; returns the credentials mail's username and password.
async fn register(idp: &TestIdp) -> (String, String) {
    let browser = Browser::new();
    let two = step_one(idp, &browser, FISCAL_CODE).await;
    assert!(two.text().contains("Passaggio 2 di 4"), "{}", two.body);
    let three = step_two(idp, &browser, &two, "1985-12-10", "M").await;
    assert!(three.text().contains("Passaggio 3 di 4"), "{}", three.body);
    assert!(three.text().contains("10/12/1985") && three.text().contains("Modifica"));
    let csrf = hidden(&three.body, "csrf").expect("csrf");
    // "Modifica" goes back with the values kept, then forward again.
    let back = browser
        .submit(
            &idp.url("/registrati"),
            &[("csrf", &csrf), ("action", "modifica")],
            &idp.base,
        )
        .await;
    assert!(back.text().contains("Passaggio 2 di 4"));
    assert!(back.text().contains("value=\"San Giuliano Terme\""));
    let three = step_two(idp, &browser, &back, "1985-12-10", "M").await;
    let four = confirm_summary(idp, &browser, &three).await;
    assert!(four.text().contains("Torna alla login"));

    let (_, fields) = confirm_by_link(idp, &browser, "mario.rossi@example.org").await;
    // The link works once.
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let again = browser
        .submit(&idp.url("/registrati/conferma"), &fields, &idp.base)
        .await;
    assert!(
        again
            .text()
            .contains("Il link è già stato usato e non è più valido."),
        "{}",
        again.body
    );

    let credentials = credentials_mail(idp, "mario.rossi@example.org").await;
    (credentials.username, credentials.temporary_password)
}

fn pkce() -> (String, String) {
    let verifier = idp_core::secret::generate_token().expose().to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(idp: &TestIdp, challenge: &str) -> String {
    format!(
        "{}?client_id=pago-in-rete&redirect_uri={}&response_type=code&scope=openid&state=s1&code_challenge={challenge}&code_challenge_method=S256",
        idp.url("/authorize"),
        REDIRECT
    )
}

async fn exchange(idp: &TestIdp, code: &str, verifier: &str) -> Value {
    let r = reqwest::Client::new()
        .post(idp.url("/token"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn a_person_registers_changes_the_temporary_password_and_reaches_a_service(backend: Backend) {
    let idp = TestIdp::start(backend, vec![client()]).await;
    let (username, temporary) = register(&idp).await;
    assert_eq!(username, "mario.rossi");

    // First login from a service: the change comes before any code.
    let browser = Browser::new();
    let (verifier, challenge) = pkce();
    let login = browser
        .follow(&authorize_url(&idp, &challenge), &idp.base)
        .await;
    let change = browser.sign_in(&idp, &login, &username, &temporary).await;
    assert!(change.url.ends_with("/cambio-password"), "{}", change.url);
    assert!(change.text().contains("Cambia la password provvisoria"));
    for rule in idp.state.directory.policy().rules_it() {
        assert!(change.text().contains(&rule), "rule listed: {rule}");
    }
    // No session exists yet.
    let area = browser.follow(&idp.url("/area-riservata"), &idp.base).await;
    assert!(area.url.ends_with("/login"), "{}", area.url);

    // A weak password: every broken rule is listed.
    let change = browser
        .follow(&idp.url("/cambio-password"), &idp.base)
        .await;
    let csrf = hidden(&change.body, "csrf").expect("csrf");
    let weak = browser
        .submit(
            &idp.url("/cambio-password"),
            &[
                ("csrf", &csrf),
                ("new_password", "rossi"),
                ("repeat_password", "rosso"),
            ],
            &idp.base,
        )
        .await;
    for broken in [
        "La password deve contenere almeno 8 caratteri",
        "La password deve contenere almeno una lettera maiuscola",
        "La password deve contenere almeno una cifra",
        "La password deve contenere almeno un carattere speciale",
        "La password non deve contenere il nome o il cognome",
        "Le due password non coincidono",
    ] {
        assert!(weak.text().contains(broken), "{broken}: {}", weak.body);
    }
    let back = browser
        .submit(
            &idp.url("/cambio-password"),
            &[
                ("csrf", &csrf),
                ("new_password", NEW_PASSWORD),
                ("repeat_password", NEW_PASSWORD),
            ],
            &idp.base,
        )
        .await;
    assert!(back.url.starts_with(REDIRECT), "{}", back.url);
    let code = query_param(&back.url, "code").expect("code");
    let tokens = exchange(&idp, &code, &verifier).await;
    assert!(tokens["id_token"].is_string());

    // The temporary password no longer works; a second login with the new one does.
    let second = Browser::new();
    let (verifier, challenge) = pkce();
    let login = second
        .follow(&authorize_url(&idp, &challenge), &idp.base)
        .await;
    let refused = second.sign_in(&idp, &login, &username, &temporary).await;
    assert!(refused.text().contains("Username o password non corretti."));
    let login = second
        .follow(&authorize_url(&idp, &challenge), &idp.base)
        .await;
    let back = second.sign_in(&idp, &login, &username, NEW_PASSWORD).await;
    let code = query_param(&back.url, "code").expect("code on second login");
    assert!(exchange(&idp, &code, &verifier).await["access_token"].is_string());

    // Area riservata: the user menu and the personal data.
    let area = second.follow(&idp.url("/area-riservata"), &idp.base).await;
    assert!(area.text().contains("Mario Rossi") && area.text().contains("I tuoi dati personali"));
    assert!(area.text().contains(FISCAL_CODE));
    idp.stop().await;
}

async fn registration_refuses_bad_input_with_its_message(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    let browser = Browser::new();
    let page = step_one(&idp, &browser, "RSSMRA85T10A562X").await;
    assert!(page.text().contains("Passaggio 1 di 4"));
    assert!(
        page.text().contains(
            "Il codice fiscale non è corretto: verificare di averlo digitato correttamente"
        ),
        "{}",
        page.body
    );
    assert!(
        page.text().contains("value=\"RSSMRA85T10A562X\""),
        "the value is kept"
    );
    let page = step_one(&idp, &browser, "RSSMRA85").await;
    assert!(page.text().contains("16 caratteri"), "{}", page.body);

    // A wrong answer to the security check.
    let fresh = browser.follow(&idp.url("/registrati"), &idp.base).await;
    let wrong = browser
        .submit(
            &idp.url("/registrati"),
            &[
                ("csrf", &hidden(&fresh.body, "csrf").expect("csrf")),
                ("check_id", &hidden(&fresh.body, "check_id").expect("id")),
                ("fiscal_code", FISCAL_CODE),
                ("check_answer", "999"),
            ],
            &idp.base,
        )
        .await;
    assert!(
        wrong
            .text()
            .contains("La risposta alla domanda di controllo non è corretta")
    );

    // Birth date and sex must agree with the code.
    let two = step_one(&idp, &browser, FISCAL_CODE).await;
    let bad = step_two(&idp, &browser, &two, "1985-12-11", "M").await;
    assert!(
        bad.text()
            .contains("La data di nascita non corrisponde al codice fiscale")
    );
    assert!(
        bad.text().contains("value=\"mario.rossi@example.org\""),
        "values kept"
    );
    let bad = step_two(&idp, &browser, &bad, "1985-12-10", "F").await;
    assert!(
        bad.text()
            .contains("Il sesso non corrisponde al codice fiscale"),
        "{}",
        bad.body
    );

    // A fiscal code already registered: the message names nothing of the account.
    let other = Browser::new();
    idp.account_with_fiscal_code(FISCAL_CODE, NEW_PASSWORD)
        .await;
    let taken = step_one(&idp, &other, FISCAL_CODE).await;
    assert!(
        taken.text().contains("è già presente un'utenza"),
        "{}",
        taken.body
    );
    assert!(!taken.text().contains("mario.rossi") && !taken.text().contains("mario@example.org"));

    // An expired confirmation link.
    let application = idp_core::registration::check_personal_data(&idp_core::registration::Draft {
        fiscal_code: FISCAL_CODE.into(),
        given_name: "Mario".into(),
        family_name: "Rossi".into(),
        birth_date: "1985-12-10".into(),
        birth_place: "Pisa".into(),
        sex: "M".into(),
        email: "mario@example.org".into(),
        email_repeat: "mario@example.org".into(),
        privacy: true,
        data_processing: true,
        ..Default::default()
    });
    if let Ok(application) = application {
        let token = idp_core::registration::submit(&*idp.state.store, &application)
            .await
            .expect("link");
        sqlx::query("UPDATE email_links SET expires_at = 0")
            .execute(idp.state.sql.pool())
            .await
            .expect("expire");
        let page = browser
            .follow(
                &idp.url(&format!("/registrati/conferma?token={}", token.expose())),
                &idp.base,
            )
            .await;
        assert!(page.text().contains("Il link è scaduto"), "{}", page.body);
    } else {
        panic!("test data: {application:?}");
    }
    idp.stop().await;
}

async fn reset_request(idp: &TestIdp, browser: &Browser, username: &str) -> Page {
    let page = browser
        .follow(&idp.url("/password-dimenticata"), &idp.base)
        .await;
    browser
        .submit(
            &idp.url("/password-dimenticata"),
            &[
                ("csrf", &hidden(&page.body, "csrf").expect("csrf")),
                ("username", username),
            ],
            &idp.base,
        )
        .await
}

async fn password_dimenticata_tells_nothing_and_resets_by_link(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    let account = idp.account("Anna", "Bianchi", NEW_PASSWORD).await;
    // A session that the reset must end.
    let elsewhere = Browser::new();
    let login = elsewhere.follow(&idp.url("/login"), &idp.base).await;
    elsewhere
        .sign_in(&idp, &login, "anna.bianchi", NEW_PASSWORD)
        .await;
    assert!(
        elsewhere
            .follow(&idp.url("/area-riservata"), &idp.base)
            .await
            .text()
            .contains("Anna Bianchi")
    );

    let browser = Browser::new();
    let started = std::time::Instant::now();
    let unknown = reset_request(&idp, &browser, "nessuno.qui").await;
    let unknown_time = started.elapsed();
    let started = std::time::Instant::now();
    let known = reset_request(&idp, &browser, "anna.bianchi").await;
    let known_time = started.elapsed();
    assert_eq!(unknown.status, known.status);
    assert_eq!(
        unknown.body.replace("nessuno.qui", "X"),
        known.body.replace("anna.bianchi", "X")
    );
    assert!(
        known
            .text()
            .contains("Se lo username indicato corrisponde a un'utenza")
    );
    assert!(unknown_time.abs_diff(known_time) < std::time::Duration::from_millis(200));

    let body = mail(&idp, "anna.bianchi@example.org", "Reimposta la password").await;
    let link = link_in(&body);
    let page = browser.follow(&link, &idp.base).await;
    assert!(
        page.text().contains("Scegli una nuova password"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf").expect("csrf");
    let token = hidden(&page.body, "token").expect("token");
    let weak = browser
        .submit(
            &idp.url("/password-dimenticata/nuova"),
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("new_password", "bianchi1"),
                ("repeat_password", "bianchi1"),
            ],
            &idp.base,
        )
        .await;
    assert!(
        weak.text()
            .contains("La password deve contenere almeno una lettera maiuscola")
    );
    assert!(
        weak.text()
            .contains("La password non deve contenere il nome o il cognome")
    );
    let fresh = "Quaderno#Blu-77";
    let done = browser
        .submit(
            &idp.url("/password-dimenticata/nuova"),
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("new_password", fresh),
                ("repeat_password", fresh),
            ],
            &idp.base,
        )
        .await;
    assert!(
        done.text().contains("La password è stata reimpostata"),
        "{}",
        done.body
    );
    // Used once; and the other session is over.
    let again = browser.follow(&link, &idp.base).await;
    assert!(again.text().contains("Il link è già stato usato"));
    assert!(
        elsewhere
            .follow(&idp.url("/area-riservata"), &idp.base)
            .await
            .url
            .ends_with("/login")
    );
    assert!(
        idp.state
            .sessions
            .of_account(account.id.as_str())
            .await
            .expect("sessions")
            .is_empty()
    );
    idp.stop().await;
}

async fn a_ministry_account_gets_guidance_and_no_link(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    idp.state
        .directory
        .create_account(NewAccount {
            kind: AccountKind::Ministry,
            fiscal_code: None,
            given_name: "Luca".into(),
            family_name: "Verdi".into(),
            birth_date: None,
            birth_place: None,
            sex: None,
            personal_email: None,
            institutional_email: Some(Email::parse("luca.verdi@istruzione.it").expect("email")),
            username: Some(Username::parse("luca.verdi").expect("username")),
        })
        .await
        .expect("ministry account");
    let browser = Browser::new();
    let page = reset_request(&idp, &browser, "luca.verdi").await;
    assert!(
        page.text()
            .contains("Se lo username indicato corrisponde a un'utenza")
    );
    assert!(
        page.text()
            .contains("usa il portale SIDI oppure rivolgiti al referente della sicurezza")
    );
    let body = mail(
        &idp,
        "luca.verdi@istruzione.it",
        "Reimpostazione della password",
    )
    .await;
    assert!(
        body.contains("portale SIDI") && !body.contains("http"),
        "{body}"
    );
    idp.stop().await;
}

async fn repeated_wrong_passwords_lock_the_account(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    idp.account("Anna", "Bianchi", NEW_PASSWORD).await;
    let browser = Browser::new();
    for _ in 0..5 {
        let login = browser.follow(&idp.url("/login"), &idp.base).await;
        let page = browser
            .sign_in(&idp, &login, "anna.bianchi", "Sbagliata-1!")
            .await;
        assert!(page.text().contains("Username o password non corretti."));
    }
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    let page = browser
        .sign_in(&idp, &login, "anna.bianchi", NEW_PASSWORD)
        .await;
    assert!(page.text().contains("Troppi tentativi"), "{}", page.body);
    assert!(
        page.text().contains("Riprova tra 15 minuti."),
        "{}",
        page.body
    );
    idp.stop().await;
}

async fn the_area_riservata_changes_email_by_link_and_password_ending_other_sessions(
    backend: Backend,
) {
    let idp = TestIdp::start(backend, vec![]).await;
    let account = idp.account("Anna", "Bianchi", NEW_PASSWORD).await;
    let other = Browser::new();
    let login = other.follow(&idp.url("/login"), &idp.base).await;
    other
        .sign_in(&idp, &login, "anna.bianchi", NEW_PASSWORD)
        .await;
    let browser = Browser::new();
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    let home = browser
        .sign_in(&idp, &login, "anna.bianchi", NEW_PASSWORD)
        .await;
    assert!(home.url.ends_with("/area-riservata"), "{}", home.url);
    assert!(home.text().contains("I tuoi dati personali") && home.text().contains("Anna Bianchi"));

    let csrf = hidden(&home.body, "csrf").expect("csrf");
    let sent = browser
        .submit(
            &idp.url("/area-riservata/email"),
            &[("csrf", &csrf), ("email", "anna.nuova@example.org")],
            &idp.base,
        )
        .await;
    assert!(
        sent.text()
            .contains("Ti abbiamo inviato un link all'indirizzo anna.nuova@example.org")
    );
    let unchanged = browser.follow(&idp.url("/area-riservata"), &idp.base).await;
    assert!(unchanged.text().contains("anna.bianchi@example.org"));
    registration::confirm_email_change(&idp, &browser, "anna.nuova@example.org").await;
    let changed = browser.follow(&idp.url("/area-riservata"), &idp.base).await;
    assert!(
        changed.text().contains("anna.nuova@example.org"),
        "{}",
        changed.body
    );

    // Modifica password: the current one is required.
    let wrong = browser
        .submit(
            &idp.url("/area-riservata/password"),
            &[
                ("csrf", &csrf),
                ("current", "Sbagliata-1!"),
                ("new_password", "Gessetto!Rosso-9"),
                ("repeat_password", "Gessetto!Rosso-9"),
            ],
            &idp.base,
        )
        .await;
    assert!(wrong.text().contains("La password attuale non è corretta"));
    let done = browser
        .submit(
            &idp.url("/area-riservata/password"),
            &[
                ("csrf", &csrf),
                ("current", NEW_PASSWORD),
                ("new_password", "Gessetto!Rosso-9"),
                ("repeat_password", "Gessetto!Rosso-9"),
            ],
            &idp.base,
        )
        .await;
    assert!(
        done.text().contains("La password è stata modificata"),
        "{}",
        done.body
    );
    assert!(
        browser
            .follow(&idp.url("/area-riservata"), &idp.base)
            .await
            .text()
            .contains("Anna Bianchi")
    );
    assert!(
        other
            .follow(&idp.url("/area-riservata"), &idp.base)
            .await
            .url
            .ends_with("/login")
    );
    assert_eq!(
        idp.state
            .sessions
            .of_account(account.id.as_str())
            .await
            .expect("sessions")
            .len(),
        1
    );
    idp.stop().await;
}

async fn a_form_without_its_csrf_token_is_refused(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    let browser = Browser::new();
    browser
        .follow(&idp.url("/password-dimenticata"), &idp.base)
        .await;
    let page = browser
        .submit(
            &idp.url("/password-dimenticata"),
            &[("csrf", "forged"), ("username", "anna.bianchi")],
            &idp.base,
        )
        .await;
    assert!(page.text().contains("La pagina è scaduta"), "{}", page.body);
    idp.stop().await;
}

idp_tests::on_both_backends!(
    a_person_registers_changes_the_temporary_password_and_reaches_a_service,
    registration_refuses_bad_input_with_its_message,
    password_dimenticata_tells_nothing_and_resets_by_link,
    a_ministry_account_gets_guidance_and_no_link,
    repeated_wrong_passwords_lock_the_account,
    the_area_riservata_changes_email_by_link_and_password_ending_other_sessions,
    a_form_without_its_csrf_token_is_refused,
);
