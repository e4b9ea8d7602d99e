//! Each reason to refuse the IdP's enablement request, against a request valid in every
//! other respect.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{EncodingKey, Header};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use super::*;

const ISSUER: &str = "http://127.0.0.1:8080";
const NOW: i64 = 1_800_000_000;

fn key() -> (EncodingKey, Keys) {
    let secret = p256::SecretKey::random(&mut OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
    jwk["kid"] = json!("kid-1");
    jwk["alg"] = json!("ES256");
    let set: JwkSet = serde_json::from_value(json!({ "keys": [jwk] })).expect("set");
    (
        EncodingKey::from_ec_pem(pem.as_bytes()).expect("key"),
        Keys::new(set),
    )
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": "istanze-online", "sub": "account-1",
        "service": "istanze-online", "assurance": "urn:istruzione:iam:acr:password",
        "amr": ["pwd"], "resume": format!("{ISSUER}/authorize/resume?req=abc"),
        "iat": NOW - 5, "exp": NOW + 295, "jti": "jti-1",
    })
}

fn sign(key: &EncodingKey, claims: &Value, typ: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(typ.into());
    header.kid = Some("kid-1".into());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn check(token: &str, keys: &Keys, seen: &JtiCache) -> Result<EnablementRequest, Refusal> {
    let expected = Expected {
        issuer: ISSUER,
        client_id: "istanze-online",
        service: "istanze-online",
        now: NOW,
    };
    verify(token, keys, &expected, seen)
}

fn refused_with(change: impl FnOnce(&mut Value)) -> Refusal {
    let (key, keys) = key();
    let mut c = claims();
    change(&mut c);
    check(
        &sign(&key, &c, "enablement+jwt"),
        &keys,
        &JtiCache::default(),
    )
    .expect_err("refused")
}

#[test]
fn a_valid_request_is_accepted_once() {
    let (key, keys) = key();
    let seen = JtiCache::default();
    let token = sign(&key, &claims(), "enablement+jwt");
    let request = check(&token, &keys, &seen).expect("accepted");
    assert_eq!(request.sub, "account-1");
    assert!(!request.is_spid());
    assert_eq!(check(&token, &keys, &seen), Err(Refusal::Replayed));
}

#[test]
fn a_request_of_another_type_is_refused() {
    let (key, keys) = key();
    let token = sign(&key, &claims(), "logout+jwt");
    assert_eq!(
        check(&token, &keys, &JtiCache::default()),
        Err(Refusal::WrongType)
    );
}

#[test]
fn a_tampered_or_foreign_request_is_refused() {
    let (key, keys) = key();
    let (forger, _) = self::key();
    assert_eq!(
        check(
            &sign(&forger, &claims(), "enablement+jwt"),
            &keys,
            &JtiCache::default()
        ),
        Err(Refusal::BadSignature)
    );
    let token = sign(&key, &claims(), "enablement+jwt");
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut other = claims();
    other["sub"] = json!("someone-else");
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&other).expect("json"),
    );
    parts[1] = &payload;
    assert_eq!(
        check(&parts.join("."), &keys, &JtiCache::default()),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn each_claim_is_checked() {
    assert_eq!(
        refused_with(|c| c["iss"] = json!("https://elsewhere")),
        Refusal::WrongIssuer
    );
    assert_eq!(
        refused_with(|c| c["aud"] = json!("pago-in-rete")),
        Refusal::WrongAudience
    );
    assert_eq!(
        refused_with(|c| c["exp"] = json!(NOW - 61)),
        Refusal::Expired
    );
    assert_eq!(
        refused_with(|c| c["service"] = json!("governance")),
        Refusal::WrongService
    );
    assert_eq!(
        refused_with(|c| c["resume"] = json!("https://evil.example/authorize/resume")),
        Refusal::ForeignResume
    );
    assert_eq!(
        refused_with(|c| c["resume"] = json!(format!("{ISSUER}.evil.example/x"))),
        Refusal::ForeignResume
    );
    assert_eq!(
        refused_with(|c| {
            c.as_object_mut().expect("object").remove("jti");
        }),
        Refusal::Malformed
    );
}

#[test]
fn a_spid_assurance_is_recognised() {
    let (key, keys) = key();
    let mut c = claims();
    c["assurance"] = json!("https://www.spid.gov.it/SpidL2");
    let request = check(
        &sign(&key, &c, "enablement+jwt"),
        &keys,
        &JtiCache::default(),
    )
    .expect("ok");
    assert!(request.is_spid());
}
