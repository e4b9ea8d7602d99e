//! The authorization code flow end to end with the `openidconnect` crate as the
//! client: discovery, login, code exchange with PKCE, ID token validation, userinfo,
//! refresh rotation and reuse detection, introspection after revocation, prompt=none,
//! and logout with a verified back-channel logout token. Each body runs on the
//! embedded default and on PostgreSQL + Redis.

use std::sync::{Arc, Mutex};

use axum::Form;
use axum::routing::post;
use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId as IdpClientId, GrantType};
use idp_core::keys::SigningAlgorithm;
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, TestIdp, hidden, query_param};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse as _,
};
use serde_json::Value;

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "Scuola-2026!Test";

fn seed(id: &str, backchannel: Option<String>) -> ClientSeed {
    ClientSeed {
        id: IdpClientId::parse(id).expect("client id"),
        name: format!("Servizio {id}"),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:9/signed-out".into()],
        backchannel_logout_uri: backchannel,
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

fn oidc_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http")
}

type Rp = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn relying_party(idp: &TestIdp, id: &str) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(idp.base.clone()).expect("issuer"),
        &oidc_http(),
    )
    .await
    .expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.into()),
        Some(ClientSecret::new(SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect"))
}

/// The code exchange, PKCE verifier included, by the `openidconnect` client.
async fn exchange(
    rp: &Rp,
    code: String,
    verifier: openidconnect::PkceCodeVerifier,
) -> openidconnect::core::CoreTokenResponse {
    rp.exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&oidc_http())
        .await
        .expect("code exchange")
}

/// A plain authorization request of `rp` with PKCE: its URL, `state` and code verifier.
fn code_request(
    rp: &Rp,
) -> (
    openidconnect::url::Url,
    CsrfToken,
    openidconnect::PkceCodeVerifier,
) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    (url, csrf, verifier)
}

/// Runs the browser part of the flow and returns the code.
async fn sign_in_for_code(
    idp: &TestIdp,
    browser: &Browser,
    rp: &Rp,
    username: &str,
) -> (String, Nonce, openidconnect::PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let login = browser.follow(url.as_str(), &idp.base).await;
    assert_eq!(login.status, 200, "the login page is shown");
    assert!(login.body.contains("Accedi"), "{}", login.body);
    let back = browser.sign_in(idp, &login, username, PASSWORD).await;
    assert!(
        back.url.starts_with(REDIRECT),
        "redirected to the client: {}",
        back.url
    );
    assert_eq!(
        query_param(&back.url, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        query_param(&back.url, "iss").as_deref(),
        Some(idp.base.as_str())
    );
    (
        query_param(&back.url, "code").expect("code"),
        nonce,
        verifier,
    )
}

async fn the_whole_code_flow_works_with_a_certified_client(backend: Backend) {
    let idp = TestIdp::start(backend, vec![seed("pago-in-rete", None)]).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let rp = relying_party(&idp, "pago-in-rete").await;
    let browser = Browser::new();
    let (code, nonce, verifier) = sign_in_for_code(&idp, &browser, &rp, "anna.bianchi").await;

    let tokens = exchange(&rp, code, verifier).await;
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid ID token");
    assert_eq!(claims.subject().as_str(), account.id.as_str());
    assert_eq!(
        claims.auth_context_ref().map(|a| a.as_str()),
        Some(idp_core::oidc::ACR_PASSWORD)
    );
    assert!(claims.auth_time().is_some());
    let at_hash = claims.access_token_hash().expect("at_hash");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(at_hash, &expected);

    // userinfo
    let info: Value = oidc_http()
        .get(idp.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"], account.id.as_str());
    assert_eq!(info["given_name"], "Anna");
    assert_eq!(info["email"], "anna.bianchi@example.org");

    // refresh rotation, then reuse detection revokes the family
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let rotated = rp
        .exchange_refresh_token(&first_refresh)
        .expect("token endpoint")
        .request_async(&oidc_http())
        .await
        .expect("refresh");
    let second_refresh = rotated.refresh_token().expect("rotated").clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let reuse = token_request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first_refresh.secret()),
        ],
    )
    .await;
    assert_eq!(reuse.0, 400);
    assert_eq!(reuse.1["error"], "invalid_grant");
    let after = token_request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", second_refresh.secret()),
        ],
    )
    .await;
    assert_eq!(
        after.1["error"], "invalid_grant",
        "the whole family is revoked: {}",
        after.1
    );
    let introspected = introspect(&idp, rotated.access_token().secret()).await;
    assert_eq!(
        introspected["active"], false,
        "access tokens of the revoked family"
    );

    idp.stop().await;
}

async fn token_request(idp: &TestIdp, form: &[(&str, &str)]) -> (u16, Value) {
    let r = oidc_http()
        .post(idp.url("/token"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn introspect(idp: &TestIdp, token: &str) -> Value {
    introspect_hinted(idp, token, &[]).await
}

/// Introspection with extra form fields (a `token_type_hint`).
async fn introspect_hinted(idp: &TestIdp, token: &str, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("token", token)];
    form.extend_from_slice(extra);
    oidc_http()
        .post(idp.url("/introspect"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&form)
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json")
}

async fn introspection_reflects_revocation_at_once(backend: Backend) {
    let idp = TestIdp::start(backend, vec![seed("pago-in-rete", None)]).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let rp = relying_party(&idp, "pago-in-rete").await;
    let browser = Browser::new();
    let (code, _, verifier) = sign_in_for_code(&idp, &browser, &rp, "anna.bianchi").await;
    let tokens = exchange(&rp, code, verifier).await;
    let access = tokens.access_token().secret().clone();
    let refresh = tokens.refresh_token().expect("refresh").secret().clone();
    let active = introspect(&idp, &access).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "pago-in-rete");
    assert_eq!(introspect(&idp, &refresh).await["active"], true);
    // A wrong token_type_hint only changes where the search starts (RFC 7662 §2.1).
    let hinted = introspect_hinted(&idp, &access, &[("token_type_hint", "refresh_token")]).await;
    assert_eq!(hinted["active"], true, "{hinted}");
    assert_eq!(hinted["token_type"], "Bearer", "{hinted}");
    let hinted = introspect_hinted(&idp, &refresh, &[("token_type_hint", "access_token")]).await;
    assert_eq!(hinted["active"], true, "{hinted}");
    assert_eq!(hinted["token_type"], "refresh_token", "{hinted}");
    // revoke the access token, under a wrong hint (RFC 7009 §2.1: the search extends)
    let r = oidc_http()
        .post(idp.url("/revoke"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&[
            ("token", access.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(introspect(&idp, &access).await["active"], false);
    let userinfo = oidc_http()
        .get(idp.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status().as_u16(), 401);
    // revoke the refresh token: its grant goes
    let r = oidc_http()
        .post(idp.url("/revoke"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&[
            ("token", refresh.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(introspect(&idp, &refresh).await["active"], false);
    let refreshed = rp
        .exchange_refresh_token(&RefreshToken::new(refresh))
        .expect("endpoint")
        .request_async(&oidc_http())
        .await;
    assert!(
        refreshed.is_err(),
        "a revoked refresh token no longer works"
    );
    idp.stop().await;
}

async fn client_credentials_give_a_token_about_the_client(backend: Backend) {
    let idp = TestIdp::start(backend, vec![seed("pago-in-rete", None)]).await;
    let (status, body) = token_request(&idp, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("id_token").is_none());
    let info = introspect(&idp, body["access_token"].as_str().expect("token")).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], "pago-in-rete");
    idp.stop().await;
}

async fn prompt_none_needs_a_session(backend: Backend) {
    let idp = TestIdp::start(backend, vec![seed("pago-in-rete", None)]).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let rp = relying_party(&idp, "pago-in-rete").await;
    let browser = Browser::new();
    let silent = |rp: &Rp| {
        let (challenge, _) = PkceCodeChallenge::new_random_sha256();
        rp.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(openidconnect::core::CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url()
        .0
    };
    let without = browser.follow(silent(&rp).as_str(), &idp.base).await;
    assert!(without.url.starts_with(REDIRECT));
    assert_eq!(
        query_param(&without.url, "error").as_deref(),
        Some("login_required")
    );
    sign_in_for_code(&idp, &browser, &rp, "anna.bianchi").await;
    let with = browser.follow(silent(&rp).as_str(), &idp.base).await;
    assert!(query_param(&with.url, "code").is_some(), "{}", with.url);
    idp.stop().await;
}

/// A relying party's back-channel logout endpoint that keeps what it receives.
async fn logout_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let app = axum::Router::new().route(
        "/backchannel",
        post(
            move |Form(f): Form<std::collections::HashMap<String, String>>| {
                let store = store.clone();
                async move {
                    if let Some(t) = f.get("logout_token") {
                        store.lock().expect("lock").push(t.clone());
                    }
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/backchannel"), received)
}

async fn logout_reaches_every_client_of_the_session(backend: Backend) {
    let (uri_a, received_a) = logout_receiver().await;
    let (uri_b, received_b) = logout_receiver().await;
    let idp = TestIdp::start(
        backend,
        vec![
            seed("pago-in-rete", Some(uri_a)),
            seed("governance", Some(uri_b)),
        ],
    )
    .await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let pago = relying_party(&idp, "pago-in-rete").await;
    let (code, _, verifier) = sign_in_for_code(&idp, &browser, &pago, "anna.bianchi").await;
    let tokens = exchange(&pago, code, verifier).await;
    // single sign-on: the second service gets a code without a login page
    let gov = relying_party(&idp, "governance").await;
    let (url, _, _) = code_request(&gov);
    let sso = browser.follow(url.as_str(), &idp.base).await;
    assert!(query_param(&sso.url, "code").is_some(), "{}", sso.url);

    let id_token = tokens.id_token().expect("id token").to_string();
    let out = browser
        .follow(
            &format!(
                "{}?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
                idp.url("/logout"),
                id_token,
                "http://127.0.0.1:9/signed-out"
            ),
            &idp.base,
        )
        .await;
    assert_eq!(out.url, "http://127.0.0.1:9/signed-out?state=bye");

    // both clients receive a logout token; verify it with the JWKS
    for _ in 0..50 {
        if !received_a.lock().expect("lock").is_empty()
            && !received_b.lock().expect("lock").is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = received_a
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .expect("pago-in-rete notified");
    assert!(
        !received_b.lock().expect("lock").is_empty(),
        "governance notified"
    );
    let jwks: jsonwebtoken::jwk::JwkSet = oidc_http()
        .get(idp.url("/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("published key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["pago-in-rete"]);
    validation.set_issuer(&[idp.base.as_str()]);
    let data = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("a valid logout token");
    assert_eq!(data.claims["sub"], account.id.as_str());
    assert!(data.claims["sid"].is_string());
    assert!(
        data.claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object()
    );
    assert!(data.claims.get("nonce").is_none());

    // the session is gone: prompt=none fails again, and the tokens are revoked
    assert_eq!(
        introspect(&idp, tokens.access_token().secret()).await["active"],
        false
    );
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = gov
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(openidconnect::core::CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url();
    let after = browser.follow(url.as_str(), &idp.base).await;
    assert_eq!(
        query_param(&after.url, "error").as_deref(),
        Some("login_required")
    );
    idp.stop().await;
}

/// A password login is three requests: `/authorize` answers with the login form
/// itself, the form's POST goes straight back to the client with the code (no stop at
/// `/login` or `/authorize/resume`), and the code exchange. A wrong password shows the
/// form again with the request still parked, and the right one then completes it.
async fn a_password_login_is_three_requests(backend: Backend) {
    let idp = TestIdp::start(backend, vec![seed("pago-in-rete", None)]).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let rp = relying_party(&idp, "pago-in-rete").await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let (url, csrf, verifier) = code_request(&rp);
    let form = http.get(url.as_str()).send().await.expect("GET /authorize");
    assert_eq!(form.status(), 200, "/authorize shows the form, no redirect");
    assert!(form.headers().get("location").is_none());
    assert_eq!(
        form.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "the form is never cached"
    );
    let form = form.text().await.expect("body");
    assert!(form.contains(r#"action="/login""#), "{form}");
    assert!(
        form.contains("Servizio pago-in-rete"),
        "the client is named"
    );
    let req = hidden(&form, "req").expect("req");
    let token = hidden(&form, "csrf").expect("csrf");

    let post = |password: &'static str, csrf: String| {
        http.post(idp.url("/login"))
            .form(&[
                ("req", req.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "anna.bianchi"),
                ("password", password),
            ])
            .send()
    };
    let wrong = post("Not-the-Passw0rd!", token).await.expect("POST /login");
    assert_eq!(wrong.status(), 200);
    let wrong = wrong.text().await.expect("body");
    assert!(
        wrong.contains("Username o password non corretti."),
        "{wrong}"
    );
    assert_eq!(hidden(&wrong, "req").as_deref(), Some(req.as_str()));
    let token = hidden(&wrong, "csrf").expect("csrf");

    let back = post(PASSWORD, token).await.expect("POST /login");
    assert_eq!(back.status(), 303, "the sign-in answers with the way back");
    let location = back
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("location")
        .to_string();
    assert!(
        location.starts_with(REDIRECT),
        "straight to the client: {location}"
    );
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    let code = query_param(&location, "code").expect("code");
    let tokens = exchange(&rp, code, verifier).await;
    assert!(tokens.id_token().is_some());
    // The parked request is finished: resuming it again is refused.
    let again = http
        .get(idp.url(&format!("/authorize/resume?req={req}")))
        .send()
        .await
        .expect("GET /authorize/resume");
    assert_eq!(again.status(), 400);
    idp.stop().await;
}

/// A provider configured to keep only ES256 keys (`[keys] algorithms = ["ES256"]`) says
/// so in its discovery document, publishes only its EC keys, and signs with them.
async fn a_provider_with_only_es256_keys_advertises_and_publishes_only_those(backend: Backend) {
    let idp = TestIdp::start_with(backend, vec![seed("pago-in-rete", None)], |c| {
        c.keys.algorithms = vec![SigningAlgorithm::Es256];
    })
    .await;
    let get = |path: &str| {
        let url = idp.url(path);
        async move {
            let response = oidc_http().get(url).send().await.expect("GET");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let metadata = get("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let jwks = get("/jwks").await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(
            (&key["kty"], &key["alg"]),
            (&"EC".into(), &"ES256".into()),
            "{key}"
        );
    }
    let (status, body) = token_request(&idp, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    let header =
        jsonwebtoken::decode_header(body["access_token"].as_str().expect("token")).expect("JWT");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert!(
        keys.iter()
            .any(|k| k["kid"].as_str() == header.kid.as_deref())
    );
    idp.stop().await;
}

idp_tests::on_both_backends!(
    the_whole_code_flow_works_with_a_certified_client,
    introspection_reflects_revocation_at_once,
    client_credentials_give_a_token_about_the_client,
    prompt_none_needs_a_session,
    logout_reaches_every_client_of_the_session,
    a_password_login_is_three_requests,
    a_provider_with_only_es256_keys_advertises_and_publishes_only_those,
);
