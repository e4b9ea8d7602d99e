//! Each reason to refuse a back-channel logout token, one test each, against a token
//! that is valid in every other respect.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "http://127.0.0.1:8080";
const CLIENT: &str = "pago-in-rete";
const NOW: i64 = 1_800_000_000;

struct Idp {
    encoding: EncodingKey,
    keys: Keys,
}

/// A fresh ES256 key published as `kid-1`, like the IdP's.
fn idp() -> Idp {
    let secret = p256::SecretKey::random(&mut OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
    jwk["kid"] = json!("kid-1");
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    let set: JwkSet = serde_json::from_value(json!({ "keys": [jwk] })).expect("jwk set");
    Idp {
        encoding: EncodingKey::from_ec_pem(pem.as_bytes()).expect("key"),
        keys: Keys::new(set),
    }
}

fn good_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "account-1",
        "sid": "session-1",
        "iat": NOW - 2,
        "exp": NOW + 118,
        "jti": "jti-1",
        "events": { LOGOUT_EVENT: {} },
    })
}

fn sign_with(idp: &Idp, claims: &Value, typ: Option<&str>, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_owned);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &idp.encoding).expect("sign")
}

fn sign(idp: &Idp, claims: &Value) -> String {
    sign_with(idp, claims, Some("logout+jwt"), Some("kid-1"))
}

fn check(idp: &Idp, token: &str) -> Result<LogoutClaims, Refusal> {
    verify(
        token,
        &idp.keys,
        &Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            now: NOW,
        },
        &JtiCache::default(),
    )
}

fn refused_with(change: impl FnOnce(&mut Value)) -> Refusal {
    let idp = idp();
    let mut claims = good_claims();
    change(&mut claims);
    check(&idp, &sign(&idp, &claims)).expect_err("refused")
}

#[test]
fn a_valid_logout_token_names_the_session_to_end() {
    let idp = idp();
    let claims = check(&idp, &sign(&idp, &good_claims())).expect("accepted");
    assert_eq!(claims.sid, "session-1");
    assert_eq!(claims.sub.as_deref(), Some("account-1"));
    let with_prefix = sign_with(
        &idp,
        &good_claims(),
        Some("application/logout+jwt"),
        Some("kid-1"),
    );
    assert!(
        check(&idp, &with_prefix).is_ok(),
        "typ may carry application/"
    );
    let mut list_aud = good_claims();
    list_aud["aud"] = json!(["other", CLIENT]);
    assert!(
        check(&idp, &sign(&idp, &list_aud)).is_ok(),
        "aud may be a list"
    );
}

#[test]
fn a_token_that_is_not_a_jws_is_refused() {
    let idp = idp();
    assert_eq!(check(&idp, "not-a-token"), Err(Refusal::Malformed));
}

#[test]
fn an_id_token_or_any_other_typ_is_refused() {
    let idp = idp();
    assert_eq!(
        check(
            &idp,
            &sign_with(&idp, &good_claims(), Some("JWT"), Some("kid-1"))
        ),
        Err(Refusal::WrongType)
    );
    assert_eq!(
        check(&idp, &sign_with(&idp, &good_claims(), None, Some("kid-1"))),
        Err(Refusal::WrongType)
    );
}

#[test]
fn a_key_the_idp_does_not_publish_is_refused() {
    let idp = idp();
    assert_eq!(
        check(
            &idp,
            &sign_with(&idp, &good_claims(), Some("logout+jwt"), Some("kid-9"))
        ),
        Err(Refusal::UnknownKey)
    );
    assert_eq!(
        check(
            &idp,
            &sign_with(&idp, &good_claims(), Some("logout+jwt"), None)
        ),
        Err(Refusal::UnknownKey)
    );
}

#[test]
fn a_token_signed_by_someone_else_under_the_idps_kid_is_refused() {
    let idp = idp();
    let forger = self::idp();
    let forged = sign(&forger, &good_claims());
    assert_eq!(check(&idp, &forged), Err(Refusal::BadSignature));
}

#[test]
fn a_tampered_token_is_refused() {
    let idp = idp();
    let token = sign(&idp, &good_claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut other = good_claims();
    other["sid"] = json!("someone-elses-session");
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&other).expect("json"),
    );
    parts[1] = &payload;
    assert_eq!(check(&idp, &parts.join(".")), Err(Refusal::BadSignature));
}

#[test]
fn a_token_from_another_issuer_is_refused() {
    assert_eq!(
        refused_with(|c| c["iss"] = json!("https://elsewhere.example")),
        Refusal::WrongIssuer
    );
}

#[test]
fn a_token_for_another_client_is_refused() {
    assert_eq!(
        refused_with(|c| c["aud"] = json!("governance")),
        Refusal::WrongAudience
    );
    assert_eq!(
        refused_with(|c| {
            c.as_object_mut().expect("object").remove("aud");
        }),
        Refusal::WrongAudience
    );
}

#[test]
fn an_expired_token_is_refused() {
    assert_eq!(
        refused_with(|c| c["exp"] = json!(NOW - 120)),
        Refusal::Expired
    );
}

#[test]
fn a_token_without_the_logout_event_is_refused() {
    assert_eq!(
        refused_with(|c| c["events"] = json!({"http://example.org/other": {}})),
        Refusal::NotALogoutEvent
    );
    assert_eq!(
        refused_with(|c| c["events"] = json!({ LOGOUT_EVENT: "yes" })),
        Refusal::NotALogoutEvent
    );
}

#[test]
fn a_token_without_sid_is_refused() {
    assert_eq!(
        refused_with(|c| {
            c.as_object_mut().expect("object").remove("sid");
        }),
        Refusal::NoSid
    );
}

#[test]
fn a_token_with_a_nonce_is_refused() {
    assert_eq!(
        refused_with(|c| c["nonce"] = json!("n-1")),
        Refusal::HasNonce
    );
}

#[test]
fn a_token_issued_long_ago_or_in_the_future_is_refused() {
    assert_eq!(
        refused_with(|c| c["iat"] = json!(NOW - MAX_AGE_SECS - 1)),
        Refusal::Stale
    );
    assert_eq!(
        refused_with(|c| c["iat"] = json!(NOW + 600)),
        Refusal::Stale
    );
    assert_eq!(
        refused_with(|c| {
            c.as_object_mut().expect("object").remove("iat");
        }),
        Refusal::Stale
    );
}

#[test]
fn a_token_without_jti_is_refused() {
    assert_eq!(
        refused_with(|c| {
            c.as_object_mut().expect("object").remove("jti");
        }),
        Refusal::NoJti
    );
}

#[test]
fn a_replayed_token_is_refused() {
    let idp = idp();
    let token = sign(&idp, &good_claims());
    let seen = JtiCache::default();
    let expected = Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        now: NOW,
    };
    assert!(verify(&token, &idp.keys, &expected, &seen).is_ok());
    assert_eq!(
        verify(&token, &idp.keys, &expected, &seen),
        Err(Refusal::Replayed)
    );
}

#[test]
fn a_refused_token_does_not_burn_its_jti() {
    let idp = idp();
    let seen = JtiCache::default();
    let expected = Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        now: NOW,
    };
    let mut bad = good_claims();
    bad["aud"] = json!("governance");
    let _ = verify(&sign(&idp, &bad), &idp.keys, &expected, &seen);
    assert!(verify(&sign(&idp, &good_claims()), &idp.keys, &expected, &seen).is_ok());
}
