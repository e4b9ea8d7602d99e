//! Flows several end-to-end tests drive the same way: a confidential client, the
//! authorization code flow with PKCE, and Registrati cut into the pieces a failure
//! test takes apart (the whole flow is in `crate::registration`).

use base64::Engine as _;
use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use serde_json::Value;
use sha2::Digest as _;

use crate::harness::{Browser, Page, TestIdp, hidden, query_param};
use crate::registration::{self, text_of};

pub const CLIENT_ID: &str = "pago-in-rete";
pub const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// A confidential client with the code and refresh grants.
pub fn client() -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(CLIENT_ID).expect("client id"),
        name: "Pago in rete".into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = idp_core::secret::generate_token().expose().to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization request of `client()`, with `extra` query parameters appended.
pub fn authorize_url(idp: &TestIdp, challenge: &str, extra: &str) -> String {
    format!(
        "{}?client_id={CLIENT_ID}&redirect_uri={REDIRECT}&response_type=code&scope=openid%20offline_access&state=s1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        idp.url("/authorize"),
    )
}

/// Signs in through the authorization endpoint; returns the code and its verifier.
pub async fn sign_in_for_code(
    idp: &TestIdp,
    browser: &Browser,
    username: &str,
    password: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let login = browser
        .follow(&authorize_url(idp, &challenge, ""), &idp.base)
        .await;
    let back = browser.sign_in(idp, &login, username, password).await;
    assert!(back.url.starts_with(REDIRECT), "{} {}", back.url, back.body);
    (query_param(&back.url, "code").expect("code"), verifier)
}

/// POSTs a grant to /token with the client's credentials; the status and JSON body.
pub async fn token_request(idp: &TestIdp, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(idp.url("/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("token response is JSON"))
}

/// Exchanges a code; panics unless the IdP issues tokens.
pub async fn exchange(idp: &TestIdp, code: &str, verifier: &str) -> Value {
    let (status, body) = token_request(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Registrati steps 1 and 2 for a man born on 10 December 1985 in Roma (see
/// `fiscal_code`); returns step 3 (the summary to confirm).
pub async fn registration_summary(
    idp: &TestIdp,
    browser: &Browser,
    fiscal_code: &str,
    given: &str,
    family: &str,
    email: &str,
) -> Page {
    let two = registration::step_one(idp, browser, fiscal_code).await;
    assert!(text_of(&two).contains("Passaggio 2 di 4"), "{}", two.body);
    let person = registration::Person {
        fiscal_code,
        given_name: given,
        family_name: family,
        birth_date: "1985-12-10",
        birth_place: "Roma",
        sex: "M",
        email,
    };
    let three = registration::step_two(idp, browser, &two, &person).await;
    assert!(
        text_of(&three).contains("Passaggio 3 di 4"),
        "{}",
        three.body
    );
    three
}

/// Step 3 confirmed ("conferma"): the page answered, whatever it is (step 4 when all
/// went well; `registration::confirm_summary` insists on step 4).
pub async fn submit_summary(idp: &TestIdp, browser: &Browser, summary: &Page) -> Page {
    browser
        .submit(
            &idp.url("/registrati"),
            &[
                ("csrf", &hidden(&summary.body, "csrf").expect("csrf")),
                ("action", "conferma"),
            ],
            &idp.base,
        )
        .await
}

/// Opens the confirmation link; returns the form fields that confirm it.
pub async fn open_confirmation(browser: &Browser, link: &str, base: &str) -> Vec<(String, String)> {
    let page = browser.follow(link, base).await;
    assert!(
        text_of(&page).contains("Conferma la registrazione"),
        "{}",
        page.body
    );
    vec![
        ("csrf".into(), hidden(&page.body, "csrf").expect("csrf")),
        ("token".into(), hidden(&page.body, "token").expect("token")),
    ]
}

/// POSTs the confirmation form.
pub async fn post_confirmation(
    idp: &TestIdp,
    browser: &Browser,
    fields: &[(String, String)],
) -> Page {
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser
        .submit(&idp.url("/registrati/conferma"), &fields, &idp.base)
        .await
}

/// A valid fiscal code of a man born on 10 December 1985, distinct for each `n` below
/// 1000 (the place code varies; the check character is found by the parser).
pub fn fiscal_code(n: u32) -> String {
    let prefix = format!("RSSMRA85T10Z{:03}", n % 1000);
    ('A'..='Z')
        .map(|c| format!("{prefix}{c}"))
        .find(|code| idp_core::fiscal_code::FiscalCode::parse(code).is_ok())
        .expect("one check character fits")
}

/// An authorization request answered from the browser's session (no login page);
/// returns the redirect to the client, with a code and its verifier when it succeeds.
pub async fn authorize_in_session(idp: &TestIdp, browser: &Browser, extra: &str) -> (Page, String) {
    let (verifier, challenge) = pkce();
    let page = browser
        .follow(&authorize_url(idp, &challenge, extra), &idp.base)
        .await;
    (page, verifier)
}
