use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::*;
use crate::store::sql::SqlStore;

const ISSUER: &str = "https://iam.example.it";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
}

fn claims() -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "mario.rossi".into(),
        aud: "istanze-online".into(),
        exp: now() + 300,
    }
}

fn check() -> VerifyOptions {
    VerifyOptions::new(ISSUER).audience("istanze-online")
}

async fn store() -> Arc<SqlStore> {
    let store = SqlStore::connect("sqlite::memory:", 1).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn settings(rotation_delay_secs: i64) -> KeySettings {
    KeySettings {
        rotation_delay_secs,
        ..KeySettings::default()
    }
}

fn header(token: &str) -> Header {
    jsonwebtoken::decode_header(token).unwrap()
}

fn kids(ring: &KeyRing) -> Vec<String> {
    ring.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A ring (rotation delay 0) over a store holding one ES256 key that has been signing
/// for ten minutes.
async fn ring_with_an_old_key() -> (Arc<SqlStore>, SigningKey, KeySettings, KeyRing) {
    let store = store().await;
    let old = SigningKey::generate(SigningAlgorithm::Es256, now() - 600).unwrap();
    store.insert_key(&old).await.unwrap();
    let settings = settings(0);
    let ring = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    (store, old, settings, ring)
}

/// Moves `kid`'s retire_at into the past (time passing beyond it) and reloads `ring`.
async fn retire(store: &SqlStore, kid: &str, ring: &KeyRing) {
    sqlx::query("UPDATE signing_keys SET retire_at = $1 WHERE kid = $2")
        .bind(now() - 1)
        .bind(kid)
        .execute(store.pool())
        .await
        .unwrap();
    ring.reload().await.unwrap();
}

#[tokio::test]
async fn the_first_start_creates_one_key_per_algorithm_and_publishes_both() {
    let store = store().await;
    let ring = KeyRing::load(store.clone(), KeySettings::default())
        .await
        .unwrap();
    let stored = store.list_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    let jwks: serde_json::Value = serde_json::from_slice(&ring.jwks_json()).unwrap();
    assert_eq!(jwks, ring.jwks());
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algs, ["ES256", "RS256"]);
    for key in jwks["keys"].as_array().unwrap() {
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "no private member published");
    }
    // A second start finds them and creates none.
    KeyRing::load(store.clone(), KeySettings::default())
        .await
        .unwrap();
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn tokens_signed_with_es256_and_rs256_verify_and_carry_kid_and_typ() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    for (algorithm, name) in [
        (None, jsonwebtoken::Algorithm::ES256),
        (
            Some(SigningAlgorithm::Es256),
            jsonwebtoken::Algorithm::ES256,
        ),
        (
            Some(SigningAlgorithm::Rs256),
            jsonwebtoken::Algorithm::RS256,
        ),
    ] {
        // One set of claims for the token and the comparison: two calls to `claims()`
        // can fall on both sides of a second and differ in `exp`.
        let signed = claims();
        let token = ring.sign(&signed, Some("at+jwt"), algorithm).unwrap();
        let h = header(&token);
        assert_eq!(h.alg, name);
        assert_eq!(h.typ.as_deref(), Some("at+jwt"));
        assert!(kids(&ring).contains(h.kid.as_ref().unwrap()));
        let back: Claims = ring.verify(&token, &check().typ("at+jwt")).unwrap();
        assert_eq!(back, signed);
        // typ compares without case and without the application/ prefix.
        let back: Claims = ring
            .verify(&token, &check().typ("application/AT+JWT"))
            .unwrap();
        assert_eq!(back.sub, "mario.rossi");
    }
    let plain = ring.sign(&claims(), None, None).unwrap();
    assert_eq!(header(&plain).typ, None);
    assert!(ring.verify::<Claims>(&plain, &check()).is_ok());
}

#[tokio::test]
async fn a_token_from_a_key_this_server_does_not_publish_is_refused() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    let other = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    let token = other.sign(&claims(), None, None).unwrap();
    assert_eq!(
        ring.verify::<Claims>(&token, &check()),
        Err(TokenError::UnknownKid)
    );
    // No kid at all.
    let stripped = {
        let mut h = header(&ring.sign(&claims(), None, None).unwrap());
        h.kid = None;
        let parsed = ring.loaded();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let message = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&h).unwrap()),
            b64(&serde_json::to_vec(&claims()).unwrap())
        );
        let signature = parsed.keys[0]
            .parsed
            .signing
            .sign(message.as_bytes())
            .unwrap();
        format!("{message}.{}", b64(&signature))
    };
    assert_eq!(
        ring.verify::<Claims>(&stripped, &check()),
        Err(TokenError::UnknownKid)
    );
    assert_eq!(
        ring.verify::<Claims>("not a token", &check()),
        Err(TokenError::Malformed)
    );
}

#[tokio::test]
async fn a_tampered_payload_or_signature_is_refused() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    for algorithm in SigningAlgorithm::ALL {
        let token = ring.sign(&claims(), None, Some(algorithm)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims();
        forged.sub = "luigi.verdi".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            ring.verify::<Claims>(&tampered, &check()),
            Err(TokenError::InvalidSignature),
            "{algorithm}"
        );
        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[5] ^= 1;
        let bad_signature = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(signature)
        );
        assert_eq!(
            ring.verify::<Claims>(&bad_signature, &check()),
            Err(TokenError::InvalidSignature),
            "{algorithm}"
        );
    }
}

#[tokio::test]
async fn a_token_whose_alg_is_not_that_of_its_key_is_refused() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    let token = ring
        .sign(&claims(), None, Some(SigningAlgorithm::Es256))
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut h = header(&token);
    h.alg = jsonwebtoken::Algorithm::HS256;
    let forged_header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap());
    let forged = format!("{forged_header}.{}.{}", parts[1], parts[2]);
    assert_eq!(
        ring.verify::<Claims>(&forged, &check()),
        Err(TokenError::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_after_the_leeway() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    let mut old = claims();
    old.exp = now() - 120;
    let token = ring.sign(&old, None, None).unwrap();
    let mut strict = check();
    strict.leeway_secs = 0;
    assert_eq!(
        ring.verify::<Claims>(&token, &strict),
        Err(TokenError::Expired)
    );
    strict.leeway_secs = 300;
    assert!(ring.verify::<Claims>(&token, &strict).is_ok());
    let mut unchecked = check();
    unchecked.leeway_secs = 0;
    unchecked.validate_exp = false;
    assert!(ring.verify::<Claims>(&token, &unchecked).is_ok());
}

#[tokio::test]
async fn a_token_for_another_issuer_audience_or_type_is_refused() {
    let ring = KeyRing::load(store().await, KeySettings::default())
        .await
        .unwrap();
    let token = ring.sign(&claims(), Some("logout+jwt"), None).unwrap();
    assert_eq!(
        ring.verify::<Claims>(&token, &VerifyOptions::new("https://evil.example")),
        Err(TokenError::InvalidIssuer)
    );
    assert_eq!(
        ring.verify::<Claims>(&token, &VerifyOptions::new(ISSUER).audience("pago-in-rete")),
        Err(TokenError::InvalidAudience)
    );
    assert!(
        ring.verify::<Claims>(&token, &VerifyOptions::new(ISSUER))
            .is_ok(),
        "no audience asked: aud not checked"
    );
    assert_eq!(
        ring.verify::<Claims>(&token, &check().typ("at+jwt")),
        Err(TokenError::InvalidType)
    );
    let untyped = ring.sign(&claims(), None, None).unwrap();
    assert_eq!(
        ring.verify::<Claims>(&untyped, &check().typ("logout+jwt")),
        Err(TokenError::InvalidType)
    );

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NoIss {
        aud: String,
        exp: i64,
    }
    let no_iss = ring
        .sign(
            &NoIss {
                aud: "istanze-online".into(),
                exp: now() + 60,
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(
        ring.verify::<NoIss>(&no_iss, &check()),
        Err(TokenError::InvalidIssuer)
    );
}

#[tokio::test]
async fn after_a_rotation_the_new_key_is_published_at_once_but_signs_only_after_the_delay() {
    let store = store().await;
    let settings = settings(3600);
    let ring = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    let token_before = ring.sign(&claims(), None, None).unwrap();
    let old_kid = header(&token_before).kid.unwrap();

    let new = KeyRing::rotate(store.as_ref(), &settings, None)
        .await
        .unwrap();
    assert_eq!(new.algorithm, SigningAlgorithm::Es256);
    assert!(new.sign_from >= now() + 3600 - 1);
    ring.reload().await.unwrap();

    assert!(kids(&ring).contains(&new.kid), "published at once");
    assert!(kids(&ring).contains(&old_kid), "old key still published");
    let token_after = ring.sign(&claims(), None, None).unwrap();
    assert_eq!(
        header(&token_after).kid.unwrap(),
        old_kid,
        "the old key signs until the new key's sign_from"
    );
    assert!(ring.verify::<Claims>(&token_before, &check()).is_ok());

    // The old key is scheduled to leave the JWKS one token lifetime after the switch.
    let stored = store.list_keys().await.unwrap();
    let old = stored.iter().find(|k| k.kid == old_kid).unwrap();
    assert_eq!(
        old.retire_at,
        Some(new.sign_from + settings.max_token_lifetime_secs)
    );
    // The RS256 key is untouched by an ES256 rotation.
    assert!(
        stored
            .iter()
            .filter(|k| k.algorithm == SigningAlgorithm::Rs256)
            .all(|k| k.retire_at.is_none())
    );
}

#[tokio::test]
async fn with_no_delay_the_new_key_signs_at_once_and_the_old_one_still_verifies() {
    let (store, old, settings, ring) = ring_with_an_old_key().await;
    let token_old = ring.sign(&claims(), None, None).unwrap();
    assert_eq!(header(&token_old).kid.unwrap(), old.kid);

    let new = KeyRing::rotate(store.as_ref(), &settings, Some(SigningAlgorithm::Es256))
        .await
        .unwrap();
    ring.reload().await.unwrap();
    let token_new = ring.sign(&claims(), None, None).unwrap();
    assert_eq!(header(&token_new).kid.unwrap(), new.kid);
    assert!(ring.verify::<Claims>(&token_new, &check()).is_ok());
    assert!(
        ring.verify::<Claims>(&token_old, &check()).is_ok(),
        "the old key stays published until retire_at"
    );
    assert!(kids(&ring).contains(&old.kid));
}

#[tokio::test]
async fn a_key_past_retire_at_leaves_the_jwks_and_storage() {
    let store = store().await;
    let mut old = SigningKey::generate(SigningAlgorithm::Es256, now() - 600).unwrap();
    old.retire_at = Some(now() + 3600);
    store.insert_key(&old).await.unwrap();
    let ring = KeyRing::load(store.clone(), settings(0)).await.unwrap();
    let token = ring.sign(&claims(), None, None).unwrap();
    assert!(kids(&ring).contains(&old.kid));
    assert!(ring.verify::<Claims>(&token, &check()).is_ok());

    // Time passes beyond retire_at (simulated by moving retire_at into the past).
    retire(&store, &old.kid, &ring).await;
    assert!(!kids(&ring).contains(&old.kid));
    assert_eq!(
        ring.verify::<Claims>(&token, &check()),
        Err(TokenError::UnknownKid)
    );
    assert!(
        store
            .list_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.kid != old.kid),
        "deleted from storage"
    );
}

#[tokio::test]
async fn a_key_rotated_in_before_the_first_start_is_bridged_by_one_that_retires() {
    let store = store().await;
    let settings = settings(3600);
    let next = KeyRing::rotate(store.as_ref(), &settings, None)
        .await
        .unwrap();
    let ring = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    let token = ring.sign(&claims(), None, None).unwrap();
    let bridge = header(&token).kid.unwrap();
    assert_ne!(bridge, next.kid);
    let stored = store.list_keys().await.unwrap();
    let bridge = stored.iter().find(|k| k.kid == bridge).unwrap();
    assert_eq!(
        bridge.retire_at,
        Some(next.sign_from + settings.max_token_lifetime_secs)
    );
}

#[tokio::test]
async fn another_instance_sees_a_rotation_after_its_reload() {
    let store = store().await;
    let settings = settings(3600);
    let a = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    let b = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    assert_eq!(a.jwks(), b.jwks());
    let new = KeyRing::rotate(store.as_ref(), &settings, Some(SigningAlgorithm::Rs256))
        .await
        .unwrap();
    assert!(!kids(&b).contains(&new.kid), "not before a reload");
    b.reload().await.unwrap();
    assert!(kids(&b).contains(&new.kid));
    a.reload().await.unwrap();
    assert_eq!(a.jwks_json(), b.jwks_json());
}

#[tokio::test]
async fn only_configured_algorithms_are_kept_and_signed_with() {
    let store = store().await;
    let settings = KeySettings {
        algorithms: vec![SigningAlgorithm::Es256],
        ..KeySettings::default()
    };
    let ring = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    assert_eq!(kids(&ring).len(), 1);
    assert!(matches!(
        ring.sign(&claims(), None, Some(SigningAlgorithm::Rs256)),
        Err(CoreError::Crypto(_))
    ));
    assert!(matches!(
        KeyRing::rotate(store.as_ref(), &settings, Some(SigningAlgorithm::Rs256)).await,
        Err(CoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_reloader_picks_up_a_rotation_on_its_own() {
    let store = store().await;
    let settings = settings(3600);
    let ring = KeyRing::load(store.clone(), settings.clone())
        .await
        .unwrap();
    let reloader = ring.spawn_reloader(Duration::from_millis(50));
    let new = KeyRing::rotate(store.as_ref(), &settings, None)
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if kids(&ring).contains(&new.kid) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen);
    drop(ring);
    tokio::time::timeout(Duration::from_secs(5), reloader)
        .await
        .expect("the reloader stops once the ring is gone")
        .unwrap();
}

#[tokio::test]
async fn a_sealed_token_opens_on_every_ring_of_the_same_keys_and_only_there() {
    let store = store().await;
    let ring = KeyRing::load(store.clone(), settings(0)).await.unwrap();
    let token = ring.seal(b"{\"sub\":\"mario.rossi\"}").unwrap();
    assert!(!token.contains('.'), "never mistaken for a JWS: {token}");
    let decoded = URL_SAFE_NO_PAD.decode(&token).unwrap();
    assert!(!String::from_utf8_lossy(&decoded).contains("mario.rossi"));
    let (plaintext, kid) = ring.open(&token).unwrap();
    assert_eq!(plaintext, b"{\"sub\":\"mario.rossi\"}");
    assert_eq!(
        kid,
        header(&ring.sign(&claims(), None, None).unwrap())
            .kid
            .unwrap()
    );
    // Another instance on the same storage opens it; a ring of other keys does not.
    let other_instance = KeyRing::load(store.clone(), settings(0)).await.unwrap();
    assert_eq!(other_instance.open(&token).unwrap().0, plaintext);
    let elsewhere = KeyRing::load(self::store().await, settings(0))
        .await
        .unwrap();
    assert!(elsewhere.open(&token).is_none());
    // Each seal has its own nonce.
    assert_ne!(ring.seal(b"same").unwrap(), ring.seal(b"same").unwrap());
    // Any changed byte (version, key tag, nonce, ciphertext, tag) and it does not open.
    for at in 0..decoded.len() {
        let mut changed = decoded.clone();
        changed[at] ^= 0x01;
        assert!(
            ring.open(&URL_SAFE_NO_PAD.encode(&changed)).is_none(),
            "{at}"
        );
    }
    assert!(ring.open(&URL_SAFE_NO_PAD.encode(&decoded[..20])).is_none());
    assert!(ring.open("not base64url!").is_none());
}

#[tokio::test]
async fn a_sealed_token_opens_until_its_key_retires() {
    let (store, old, settings, ring) = ring_with_an_old_key().await;
    let sealed_old = ring.seal(b"old").unwrap();
    assert_eq!(ring.open(&sealed_old).unwrap().1, old.kid);
    let new = KeyRing::rotate(store.as_ref(), &settings, Some(SigningAlgorithm::Es256))
        .await
        .unwrap();
    ring.reload().await.unwrap();
    let sealed_new = ring.seal(b"new").unwrap();
    assert_eq!(ring.open(&sealed_new).unwrap().1, new.kid);
    assert_eq!(
        ring.open(&sealed_old).unwrap().0,
        b"old",
        "the old key still opens until retire_at"
    );
    retire(&store, &old.kid, &ring).await;
    assert!(ring.open(&sealed_old).is_none(), "retired with its key");
    assert!(ring.open(&sealed_new).is_some());
}
