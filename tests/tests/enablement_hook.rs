//! The enablement hook, IdP side: the signed request to the service's enablement page,
//! `PUT /enablements/{service}/{sub}` authorised per client, resume, and the
//! `enablement` claim. On both backends.

use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId as IdpClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, TestIdp, query_param};
use serde_json::{Value, json};

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ENABLEMENT: &str = "http://127.0.0.1:9/abilitazione";
const PASSWORD: &str = "Scuola-2026!Test";

fn client(id: &str, service: Option<&str>) -> ClientSeed {
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
        service: service.map(str::to_string),
        enablement_uri: service.map(|_| ENABLEMENT.to_string()),
        access_token_format: AccessTokenFormat::Jwt,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http")
}

fn authorize_url(idp: &TestIdp, client: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20profile&state=s1&nonce=n1",
        idp.base,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

async fn start(backend: Backend) -> (TestIdp, String) {
    let idp = TestIdp::start(
        backend,
        vec![
            client("istanze-online", Some("istanze-online")),
            client("governance", Some("governance")),
            client("pago-in-rete", None),
        ],
    )
    .await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    (idp, account.id.as_str().to_string())
}

/// Signs in for Istanze OnLine and returns where the IdP sent the browser.
async fn sign_in(idp: &TestIdp, browser: &Browser) -> String {
    let first = browser
        .follow(&authorize_url(idp, "istanze-online"), &idp.base)
        .await;
    let after = if first.body.contains("name=\"password\"") {
        browser.sign_in(idp, &first, "anna.bianchi", PASSWORD).await
    } else {
        first
    };
    after.url
}

async fn verify_request(idp: &TestIdp, jws: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(idp.url("/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(jws).expect("header");
    assert_eq!(header.typ.as_deref(), Some("enablement+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("published key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["istanze-online"]);
    validation.set_issuer(&[idp.base.as_str()]);
    jsonwebtoken::decode::<Value>(
        jws,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("a valid enablement request")
    .claims
}

async fn put(
    idp: &TestIdp,
    as_client: &str,
    service: &str,
    sub: &str,
    body: Value,
) -> (u16, Value) {
    let r = http()
        .put(idp.url(&format!("/enablements/{service}/{sub}")))
        .basic_auth(as_client, Some(SECRET))
        .json(&body)
        .send()
        .await
        .expect("put");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn exchange(idp: &TestIdp, code: &str) -> Value {
    http()
        .post(idp.url("/token"))
        .basic_auth("istanze-online", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json")
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).expect("payload"))
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

async fn a_person_without_enablement_goes_through_the_service_step(backend: Backend) {
    let (idp, sub) = start(backend).await;
    let browser = Browser::new();
    let sent_to = sign_in(&idp, &browser).await;
    assert!(sent_to.starts_with(ENABLEMENT), "{sent_to}");
    let request = verify_request(&idp, &query_param(&sent_to, "request").expect("request")).await;
    assert_eq!(request["sub"], sub.as_str());
    assert_eq!(request["service"], "istanze-online");
    assert_eq!(request["assurance"], idp_core::oidc::ACR_PASSWORD);
    assert!(request["jti"].is_string());
    let resume = request["resume"].as_str().expect("resume").to_string();
    assert!(resume.starts_with(&format!("{}/authorize/resume?req=", idp.base)));

    let (status, body) = put(
        &idp,
        "istanze-online",
        "istanze-online",
        &sub,
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let back = browser.follow(&resume, &idp.base).await;
    let code = query_param(&back.url, "code").unwrap_or_else(|| panic!("a code: {}", back.url));
    let tokens = exchange(&idp, &code).await;
    let claims = payload(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(
        claims["enablement"],
        json!({"service": "istanze-online", "status": "active"})
    );
    let info: Value = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["enablement"]["status"], "active");

    // The resume URL is single use.
    let again = browser.follow(&resume, &idp.base).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("Richiesta scaduta"), "{}", again.body);

    // Once enabled, the next login goes straight to the service.
    let next = browser
        .follow(&authorize_url(&idp, "istanze-online"), &idp.base)
        .await;
    assert!(query_param(&next.url, "code").is_some(), "{}", next.url);
    idp.stop().await;
}

async fn a_pending_enablement_ends_in_an_error_the_service_can_show(backend: Backend) {
    let (idp, sub) = start(backend).await;
    let browser = Browser::new();
    let sent_to = sign_in(&idp, &browser).await;
    let request = verify_request(&idp, &query_param(&sent_to, "request").expect("request")).await;
    let (status, _) = put(
        &idp,
        "istanze-online",
        "istanze-online",
        &sub,
        json!({"status": "pending"}),
    )
    .await;
    assert_eq!(status, 200);
    let back = browser
        .follow(request["resume"].as_str().expect("resume"), &idp.base)
        .await;
    assert!(back.url.starts_with(REDIRECT));
    assert_eq!(
        query_param(&back.url, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&back.url, "error_description").as_deref(),
        Some("the enablement for istanze-online is pending")
    );
    assert_eq!(query_param(&back.url, "state").as_deref(), Some("s1"));
    idp.stop().await;
}

async fn a_client_writes_only_its_own_service(backend: Backend) {
    let (idp, sub) = start(backend).await;
    let (status, body) = put(
        &idp,
        "governance",
        "istanze-online",
        &sub,
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        body["error_description"],
        "client governance may only manage enablements of its own service"
    );
    let (status, _) = put(
        &idp,
        "pago-in-rete",
        "istanze-online",
        &sub,
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(status, 403, "a client without a service writes nothing");
    let r = http()
        .put(idp.url(&format!("/enablements/istanze-online/{sub}")))
        .basic_auth("istanze-online", Some("wrong"))
        .json(&json!({"status": "active"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 401);
    let (status, body) = put(
        &idp,
        "istanze-online",
        "istanze-online",
        &sub,
        json!({"status": "enabled"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "status must be active, pending or revoked"
    );
    let (status, _) = put(
        &idp,
        "istanze-online",
        "istanze-online",
        "no-such-account",
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(status, 404);
    // Nothing was recorded by the refused calls.
    let r: Value = http()
        .get(idp.url(&format!("/enablements/istanze-online/{sub}")))
        .basic_auth("istanze-online", Some(SECRET))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(r["status"], "none");
    idp.stop().await;
}

async fn other_services_see_no_enablement_step(backend: Backend) {
    let (idp, _) = start(backend).await;
    let browser = Browser::new();
    let first = browser
        .follow(&authorize_url(&idp, "pago-in-rete"), &idp.base)
        .await;
    let back = browser
        .sign_in(&idp, &first, "anna.bianchi", PASSWORD)
        .await;
    let code = query_param(&back.url, "code").expect("code");
    let tokens: Value = http()
        .post(idp.url("/token"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let claims = payload(tokens["id_token"].as_str().expect("id token"));
    assert!(
        claims.get("enablement").is_none(),
        "no enablement claim for pago-in-rete"
    );
    idp.stop().await;
}

async fn granted_roles_reach_the_services(backend: Backend) {
    let idp = TestIdp::start(backend, vec![client("pago-in-rete", None)]).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    idp.grant_role(&account, "school_operator").await;
    let browser = Browser::new();
    let first = browser
        .follow(&authorize_url(&idp, "pago-in-rete"), &idp.base)
        .await;
    let back = browser
        .sign_in(&idp, &first, "anna.bianchi", PASSWORD)
        .await;
    let code = query_param(&back.url, "code").expect("code");
    let tokens: Value = http()
        .post(idp.url("/token"))
        .basic_auth("pago-in-rete", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let claims = payload(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(claims["roles"], json!(["school_operator"]));
    let info: Value = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["roles"], json!(["school_operator"]));
    assert!(
        idp_core::role::check_role("superuser").is_err(),
        "unknown roles are refused"
    );
    idp.stop().await;
}

idp_tests::on_both_backends!(
    a_person_without_enablement_goes_through_the_service_step,
    a_pending_enablement_ends_in_an_error_the_service_can_show,
    a_client_writes_only_its_own_service,
    other_services_see_no_enablement_step,
    granted_roles_reach_the_services,
);
