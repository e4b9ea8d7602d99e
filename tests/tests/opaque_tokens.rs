//! Opaque access tokens, chosen per client (`access_token_format = "opaque"`): a client
//! so configured gets sealed tokens (claims encrypted with a key only the IdP holds)
//! instead of JWTs from every grant, and they work wherever a JWT works (introspection,
//! userinfo), are revoked by their client and die with their grant (refresh-token
//! reuse, logout). A client left on the default still gets JWTs. Each body runs on the
//! embedded default and on PostgreSQL + Redis; one more runs two instances sharing
//! PostgreSQL and Redis.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idp_core::client::{AccessTokenFormat, ClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::eventually;
use idp_tests::flows::{self, CLIENT_ID, SECRET};
use idp_tests::harness::{Backend, Browser, TestIdp};
use serde_json::Value;
use sha2::Digest as _;

const PASSWORD: &str = "Quaderno-Blu!2026";
/// A client left on the default format, with the same secret.
const JWT_CLIENT: &str = "governance";
const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";

/// `flows::client()` (pago-in-rete) with opaque access tokens and every grant.
fn opaque_client() -> ClientSeed {
    ClientSeed {
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ],
        post_logout_redirect_uris: vec![SIGNED_OUT.into()],
        access_token_format: AccessTokenFormat::Opaque,
        ..flows::client()
    }
}

fn jwt_client() -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(JWT_CLIENT).expect("client id"),
        name: "Portale della governance".into(),
        grant_types: vec![GrantType::ClientCredentials],
        redirect_uris: vec![],
        access_token_format: AccessTokenFormat::Jwt,
        ..flows::client()
    }
}

async fn started(backend: Backend) -> TestIdp {
    TestIdp::start(backend, vec![opaque_client(), jwt_client()]).await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http")
}

/// POSTs a form to an endpoint authenticated as `client`; the status and JSON body
/// (`null` for an empty body).
async fn post_as(idp: &TestIdp, client: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(idp.url(path))
        .basic_auth(client, Some(SECRET))
        .form(form)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("body");
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("a JSON body")
    };
    (status, json)
}

async fn client_credentials(idp: &TestIdp, client: &str, scope: &str) -> Value {
    let (status, body) = post_as(
        idp,
        client,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn introspect(idp: &TestIdp, client: &str, token: &str) -> Value {
    let (status, body) = post_as(idp, client, "/introspect", &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn revoke(idp: &TestIdp, client: &str, token: &str) {
    let (status, body) = post_as(idp, client, "/revoke", &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
}

/// GET /userinfo with the bearer token: the status, the JSON body and the challenge.
async fn userinfo(idp: &TestIdp, token: &str) -> (u16, Value, Option<String>) {
    let r = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo");
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, r.json().await.expect("json"), challenge)
}

fn token_of(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_string()
}

/// base64url only, not a JWT, and nothing a client could read: neither the client's id
/// nor the issuer, encoded or not.
fn assert_opaque(token: &str) {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .unwrap_or_else(|e| panic!("not base64url ({e}): {token}"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("pago-in-rete") && !text.contains("http"),
        "{text}"
    );
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token}"
    );
    assert!(
        !token.contains('.'),
        "an opaque token is not a JWT: {token}"
    );
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Signs in anna.bianchi for the opaque client and exchanges the code.
async fn signed_in(idp: &TestIdp, browser: &Browser) -> Value {
    let (code, verifier) = flows::sign_in_for_code(idp, browser, "anna.bianchi", PASSWORD).await;
    flows::exchange(idp, &code, &verifier).await
}

async fn an_opaque_client_credentials_token_introspects_and_is_revoked_by_its_client(
    backend: Backend,
) {
    let idp = started(backend).await;
    let before = chrono::Utc::now().timestamp();
    let body = client_credentials(&idp, CLIENT_ID, "api").await;
    let token = token_of(&body, "access_token");
    assert_opaque(&token);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "api");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let second = token_of(
        &client_credentials(&idp, CLIENT_ID, "api").await,
        "access_token",
    );
    assert_ne!(second, token, "every token is new");

    let info = introspect(&idp, CLIENT_ID, &token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], CLIENT_ID);
    assert_eq!(info["sub"], CLIENT_ID);
    assert_eq!(info["aud"], CLIENT_ID);
    assert_eq!(info["iss"], idp.base.as_str());
    assert_eq!(info["scope"], "api");
    assert_eq!(info["token_type"], "Bearer");
    let iat = info["iat"].as_i64().expect("iat");
    let exp = info["exp"].as_i64().expect("exp");
    assert!(iat >= before && iat <= before + 5, "{info}");
    assert_eq!(exp - iat, 300);
    assert!(info["jti"].is_string(), "{info}");
    // The same fields as a JWT's introspection.
    let jwt = token_of(
        &client_credentials(&idp, JWT_CLIENT, "api").await,
        "access_token",
    );
    let jwt_info = introspect(&idp, JWT_CLIENT, &jwt).await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&info), keys(&jwt_info));

    // Another client cannot revoke it; its own client can.
    revoke(&idp, JWT_CLIENT, &token).await;
    assert_eq!(introspect(&idp, CLIENT_ID, &token).await["active"], true);
    revoke(&idp, CLIENT_ID, &token).await;
    assert_eq!(
        introspect(&idp, CLIENT_ID, &token).await,
        serde_json::json!({ "active": false })
    );
    // The other token of the same client is untouched.
    assert_eq!(introspect(&idp, CLIENT_ID, &second).await["active"], true);
    idp.stop().await;
}

async fn an_opaque_token_from_a_sign_in_works_at_userinfo_until_its_family_is_revoked(
    backend: Backend,
) {
    let idp = started(backend).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let tokens = signed_in(&idp, &browser).await;
    let access = token_of(&tokens, "access_token");
    assert_opaque(&access);
    let first_refresh = token_of(&tokens, "refresh_token");
    // The ID token is still a JWT, and its at_hash covers the opaque token.
    let id_token = token_of(&tokens, "id_token");
    let claims = jwt_part(&id_token, 1);
    let digest = sha2::Sha256::digest(access.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    let (status, info, _) = userinfo(&idp, &access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], account.id.as_str());
    let described = introspect(&idp, CLIENT_ID, &access).await;
    assert_eq!(described["active"], true);
    assert_eq!(described["sub"], account.id.as_str());
    assert_eq!(described["scope"], "openid offline_access");
    assert_eq!(described["acr"], idp_core::oidc::ACR_PASSWORD);
    assert!(described["auth_time"].is_i64(), "{described}");

    // A refresh gives another opaque token; both work.
    let (status, rotated) = flows::token_request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let refreshed_access = token_of(&rotated, "access_token");
    assert_opaque(&refreshed_access);
    assert_ne!(refreshed_access, access);
    assert_eq!(userinfo(&idp, &refreshed_access).await.0, 200);

    // Presenting the spent refresh token again revokes the family: every access token
    // of the grant stops working at once.
    let (status, reuse) = flows::token_request(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(reuse["error"], "invalid_grant");
    for token in [&access, &refreshed_access] {
        let (status, body, challenge) = userinfo(&idp, token).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "the access token was revoked");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
            "a Bearer challenge"
        );
        assert_eq!(introspect(&idp, CLIENT_ID, token).await["active"], false);
    }
    idp.stop().await;
}

async fn logout_ends_the_opaque_access_tokens_of_the_session(backend: Backend) {
    let idp = started(backend).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let tokens = signed_in(&idp, &browser).await;
    let access = token_of(&tokens, "access_token");
    assert_eq!(userinfo(&idp, &access).await.0, 200);
    let out = browser
        .follow(
            &format!(
                "{}?id_token_hint={}&post_logout_redirect_uri={SIGNED_OUT}&state=bye",
                idp.url("/logout"),
                token_of(&tokens, "id_token"),
            ),
            &idp.base,
        )
        .await;
    assert_eq!(out.url, format!("{SIGNED_OUT}?state=bye"));
    let (status, body, _) = userinfo(&idp, &access).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(introspect(&idp, CLIENT_ID, &access).await["active"], false);
    idp.stop().await;
}

async fn a_token_never_issued_is_invalid_at_userinfo_and_inactive_at_introspection(
    backend: Backend,
) {
    let idp = started(backend).await;
    let never_issued = idp_core::secret::generate_token().expose().to_string();
    let forged = URL_SAFE_NO_PAD.encode([1u8; 200]);
    for token in [
        never_issued.as_str(),
        "not-a-token",
        &"A".repeat(43),
        &forged,
    ] {
        let (status, body, challenge) = userinfo(&idp, token).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_eq!(body["error"], "invalid_token");
        assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
        assert_eq!(
            introspect(&idp, CLIENT_ID, token).await,
            serde_json::json!({ "active": false })
        );
        // Revoking what does not exist is answered like any revocation (RFC 7009).
        revoke(&idp, CLIENT_ID, token).await;
    }
    let (_, body, _) = userinfo(&idp, &never_issued).await;
    assert_eq!(
        body["error_description"],
        "the access token is unknown or expired"
    );
    idp.stop().await;
}

async fn a_client_on_the_default_still_gets_jwts(backend: Backend) {
    let idp = started(backend).await;
    let token = token_of(
        &client_credentials(&idp, JWT_CLIENT, "").await,
        "access_token",
    );
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["client_id"], JWT_CLIENT);
    assert_eq!(introspect(&idp, JWT_CLIENT, &token).await["active"], true);
    idp.stop().await;
}

idp_tests::on_both_backends!(
    an_opaque_client_credentials_token_introspects_and_is_revoked_by_its_client,
    an_opaque_token_from_a_sign_in_works_at_userinfo_until_its_family_is_revoked,
    logout_ends_the_opaque_access_tokens_of_the_session,
    a_token_never_issued_is_invalid_at_userinfo_and_inactive_at_introspection,
    a_client_on_the_default_still_gets_jwts,
);

/// Two instances sharing PostgreSQL and Redis (and the public URL, as behind one load
/// balancer): a token issued by one opens on the other, and a revocation made on one
/// holds on the other, even where the token was already seen (its claims remembered,
/// and its revocation marks remembered as absent): at once on the revoking instance,
/// on the other as soon as Redis's announcement reaches it, well within the 5 s an
/// absent mark is remembered at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_issued_by_one_instance_resolves_and_is_revoked_on_another() {
    let a = TestIdp::start(Backend::Production, vec![opaque_client(), jwt_client()]).await;
    let issuer = a.base.clone();
    let b = TestIdp::start_sharing(&a, vec![opaque_client(), jwt_client()], |config| {
        config.server.public_url = issuer;
    })
    .await;
    let token = token_of(
        &client_credentials(&a, CLIENT_ID, "api").await,
        "access_token",
    );
    assert_opaque(&token);
    let on_b = introspect(&b, CLIENT_ID, &token).await;
    assert_eq!(on_b["active"], true, "{on_b}");
    assert_eq!(on_b["client_id"], CLIENT_ID);
    assert_eq!(introspect(&a, CLIENT_ID, &token).await["active"], true);
    revoke(&b, CLIENT_ID, &token).await;
    assert_eq!(introspect(&b, CLIENT_ID, &token).await["active"], false);
    eventually(
        "the revocation made on b holds on a",
        Duration::from_secs(1),
        || async { introspect(&a, CLIENT_ID, &token).await["active"] == false },
    )
    .await;
    b.stop().await;
    a.stop().await;
}
