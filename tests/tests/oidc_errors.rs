//! What the provider refuses, each with its exact error: the protocol's error codes
//! and descriptions, on both backends.

use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId as IdpClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, TestIdp, query_param};
use serde_json::Value;

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "Scuola-2026!Test";
// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn confidential(id: &str) -> ClientSeed {
    ClientSeed {
        id: IdpClientId::parse(id).expect("id"),
        name: id.into(),
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

fn public(id: &str) -> ClientSeed {
    ClientSeed {
        secret: None,
        auth_method: ClientAuthMethod::None,
        ..confidential(id)
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http")
}

fn authorize_url(idp: &TestIdp, client: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20profile&state=s1&nonce=n1{extra}",
        idp.base,
        urlencode(REDIRECT)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn code_for(idp: &TestIdp, browser: &Browser, client: &str, extra: &str) -> String {
    let first = browser
        .follow(&authorize_url(idp, client, extra), &idp.base)
        .await;
    // With a session already open, single sign-on answers at once.
    let back = if first.url.starts_with(REDIRECT) {
        first
    } else {
        browser.sign_in(idp, &first, "anna.bianchi", PASSWORD).await
    };
    query_param(&back.url, "code").unwrap_or_else(|| panic!("no code in {}", back.url))
}

async fn exchange(
    idp: &TestIdp,
    code: &str,
    verifier: Option<&str>,
    secret: &str,
) -> (u16, Value, Option<String>) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let r = http()
        .post(idp.url("/token"))
        .basic_auth("rp", Some(secret))
        .form(&form)
        .send()
        .await
        .expect("token");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    (status, r.json().await.expect("json"), challenge)
}

async fn started(backend: Backend) -> TestIdp {
    let idp = TestIdp::start(backend, vec![confidential("rp"), public("spa")]).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    idp
}

async fn an_unregistered_redirect_uri_gets_a_page_not_a_redirect(backend: Backend) {
    let idp = started(backend).await;
    let url = format!(
        "{}/authorize?response_type=code&client_id=rp&redirect_uri={}&scope=openid&state=x",
        idp.base,
        urlencode("https://evil.example/callback")
    );
    let r = http().get(&url).send().await.expect("authorize");
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.headers().get("location").is_none(),
        "never redirect to an unverified URI"
    );
    let body = r.text().await.expect("body");
    assert!(
        body.contains("non è registrato per questo servizio"),
        "{body}"
    );
    let unknown = http()
        .get(authorize_url(&idp, "nobody", ""))
        .send()
        .await
        .expect("authorize");
    assert_eq!(unknown.status().as_u16(), 400);
    assert!(
        unknown
            .text()
            .await
            .expect("body")
            .contains("non è registrato")
    );
    idp.stop().await;
}

async fn bad_requests_go_back_to_the_client_with_the_error(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    let cases = [
        (
            authorize_url(&idp, "rp", "").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            authorize_url(&idp, "rp", "").replace("scope=openid%20profile", "scope=profile"),
            "invalid_scope",
        ),
        (authorize_url(&idp, "spa", ""), "invalid_request"),
        (
            authorize_url(
                &idp,
                "rp",
                &format!("&code_challenge={CHALLENGE}&code_challenge_method=plain"),
            ),
            "invalid_request",
        ),
        (
            authorize_url(&idp, "rp", "&prompt=none%20login"),
            "invalid_request",
        ),
        (authorize_url(&idp, "rp", "&prompt=none"), "login_required"),
    ];
    for (url, expected) in cases {
        let page = browser.follow(&url, &idp.base).await;
        assert!(page.url.starts_with(REDIRECT), "{url} -> {}", page.url);
        assert_eq!(
            query_param(&page.url, "error").as_deref(),
            Some(expected),
            "{url}"
        );
        assert_eq!(query_param(&page.url, "state").as_deref(), Some("s1"));
    }
    let spa = browser
        .follow(&authorize_url(&idp, "spa", ""), &idp.base)
        .await;
    assert_eq!(
        query_param(&spa.url, "error_description").as_deref(),
        Some("public clients must use PKCE (code_challenge with S256)")
    );
    idp.stop().await;
}

async fn a_pkce_verifier_that_does_not_match_is_refused(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    let pkce = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256");
    let code = code_for(&idp, &browser, "rp", &pkce).await;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
    let (status, body, _) = exchange(&idp, &code, Some(wrong), SECRET).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "PKCE verification failed: code_verifier does not match code_challenge"
    );
    let code = code_for(&idp, &browser, "rp", &pkce).await;
    let (_, body, _) = exchange(&idp, &code, None, SECRET).await;
    assert_eq!(body["error_description"], "code_verifier is required");
    let code = code_for(&idp, &browser, "rp", &pkce).await;
    let (status, body, _) = exchange(&idp, &code, Some(VERIFIER), SECRET).await;
    assert_eq!(status, 200, "{body}");
    idp.stop().await;
}

async fn a_reused_code_revokes_what_it_gave(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    let code = code_for(&idp, &browser, "rp", "").await;
    let (status, first, _) = exchange(&idp, &code, None, SECRET).await;
    assert_eq!(status, 200);
    let (status, second, _) = exchange(&idp, &code, None, SECRET).await;
    assert_eq!(status, 400);
    assert_eq!(second["error"], "invalid_grant");
    assert_eq!(
        second["error_description"],
        "the code was already used; the tokens issued with it are revoked"
    );
    let introspection: Value = http()
        .post(idp.url("/introspect"))
        .basic_auth("rp", Some(SECRET))
        .form(&[("token", first["access_token"].as_str().expect("token"))])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(introspection["active"], false);
    let refresh: Value = http()
        .post(idp.url("/token"))
        .basic_auth("rp", Some(SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first["refresh_token"].as_str().expect("refresh"),
            ),
        ])
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    assert_eq!(
        refresh["error_description"],
        "the grant was revoked or expired"
    );
    idp.stop().await;
}

async fn an_expired_code_is_refused(backend: Backend) {
    let idp = TestIdp::start_with(backend, vec![confidential("rp")], |c| {
        c.tokens.code_ttl_secs = 1;
    })
    .await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let code = code_for(&idp, &browser, "rp", "").await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (status, body, _) = exchange(&idp, &code, None, SECRET).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "the code is unknown or expired");
    idp.stop().await;
}

async fn a_wrong_client_secret_is_refused(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    let code = code_for(&idp, &browser, "rp", "").await;
    let (status, body, challenge) = exchange(&idp, &code, None, "not-the-secret").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
    let (status, _, _) = exchange(&idp, &code, None, SECRET).await;
    assert_eq!(
        status, 200,
        "a request that failed client authentication does not spend the code"
    );
    idp.stop().await;
}

async fn tampered_and_foreign_tokens_are_refused(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    let code = code_for(&idp, &browser, "rp", "").await;
    let (_, tokens, _) = exchange(&idp, &code, None, SECRET).await;
    let access = tokens["access_token"].as_str().expect("token").to_string();
    // Flip one character of the payload.
    let mut parts: Vec<String> = access.split('.').map(str::to_string).collect();
    let mut payload: Vec<char> = parts[1].chars().collect();
    let i = payload.len() / 2;
    payload[i] = if payload[i] == 'A' { 'B' } else { 'A' };
    parts[1] = payload.into_iter().collect();
    let tampered = parts.join(".");
    let r = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(&tampered)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(
        body["error_description"],
        "the access token signature is invalid"
    );

    // A token signed by a key the provider never published.
    let foreign = idp_core::keys::SigningKey::generate(idp_core::keys::SigningAlgorithm::Es256, 0)
        .expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("not-a-published-kid".into());
    header.typ = Some("at+jwt".into());
    let claims: Value =
        serde_json::from_slice(&base64_decode(access.split('.').nth(1).expect("payload")))
            .expect("claims");
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(foreign.private_pem.expose().as_bytes())
            .expect("pem"),
    )
    .expect("sign");
    let r = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["error_description"],
        "the access token is signed by an unknown key"
    );
    let intro: Value = http()
        .post(idp.url("/introspect"))
        .basic_auth("rp", Some(SECRET))
        .form(&[("token", forged.as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(intro["active"], false);
    idp.stop().await;
}

async fn acr_values_beyond_the_session_ask_for_one_new_sign_in(backend: Backend) {
    let idp = started(backend).await;
    let browser = Browser::new();
    code_for(&idp, &browser, "rp", "").await;
    let l2 = format!("&acr_values={}", urlencode(idp_core::oidc::ACR_SPID_L2));
    let silent = browser
        .follow(
            &authorize_url(&idp, "rp", &format!("{l2}&prompt=none")),
            &idp.base,
        )
        .await;
    assert_eq!(
        query_param(&silent.url, "error").as_deref(),
        Some("login_required")
    );
    // Interactive: the login page again, then a code with the acr actually reached.
    let page = browser
        .follow(&authorize_url(&idp, "rp", &l2), &idp.base)
        .await;
    assert!(
        page.body.contains("name=\"password\""),
        "the login page is shown again"
    );
    let back = browser.sign_in(&idp, &page, "anna.bianchi", PASSWORD).await;
    let code = query_param(&back.url, "code").expect("a code after the new sign-in");
    let (_, tokens, _) = exchange(&idp, &code, None, SECRET).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    let claims: Value =
        serde_json::from_slice(&base64_decode(id_token.split('.').nth(1).expect("payload")))
            .expect("claims");
    assert_eq!(claims["acr"], idp_core::oidc::ACR_PASSWORD);
    idp.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

idp_tests::on_both_backends!(
    an_unregistered_redirect_uri_gets_a_page_not_a_redirect,
    bad_requests_go_back_to_the_client_with_the_error,
    a_pkce_verifier_that_does_not_match_is_refused,
    a_reused_code_revokes_what_it_gave,
    an_expired_code_is_refused,
    a_wrong_client_secret_is_refused,
    tampered_and_foreign_tokens_are_refused,
    acr_values_beyond_the_session_ask_for_one_new_sign_in,
);
