//! The signing keys' storage and the key ring, run on SQLite and on PostgreSQL: a
//! rotation done through one ring (or the CLI) reaches another after its reload.

use std::sync::Arc;

use idp_core::CoreError;
use idp_core::directory::now;
use idp_core::keys::{KeyRing, KeySettings, KeyStore, SigningAlgorithm, TokenError, VerifyOptions};
use idp_core::store::sql::SqlStore;
use idp_tests::TestDatabase;
use serde_json::{Value, json};

const ISSUER: &str = "https://iam.example.it";

fn claims() -> Value {
    json!({ "iss": ISSUER, "sub": "mario.rossi", "aud": "pago-in-rete", "exp": now() + 300 })
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

async fn keys_read_back_and_retire_as_written(store: Arc<SqlStore>) {
    let key = idp_core::keys::SigningKey::generate(SigningAlgorithm::Rs256, 10).expect("key");
    store.insert_key(&key).await.expect("insert");
    assert!(matches!(
        store.insert_key(&key).await,
        Err(CoreError::Conflict("kid"))
    ));
    let stored = store.list_keys().await.expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].public_jwk, key.public_jwk);
    assert_eq!(stored[0].private_pem, key.private_pem);
    assert_eq!(stored[0].retire_at, None);
    store
        .retire_keys_before(11, 500, SigningAlgorithm::Rs256)
        .await
        .expect("retire");
    assert_eq!(
        store.list_keys().await.expect("list")[0].retire_at,
        Some(500)
    );
    assert_eq!(store.delete_retired_keys(499).await.expect("delete"), 0);
    assert_eq!(store.delete_retired_keys(500).await.expect("delete"), 1);
    assert!(store.list_keys().await.expect("list").is_empty());
}

async fn two_instances_share_keys_and_follow_a_rotation(store: Arc<SqlStore>) {
    let settings = KeySettings {
        rotation_delay_secs: 0,
        ..KeySettings::default()
    };
    let a = KeyRing::load(store.clone(), settings.clone())
        .await
        .expect("load a");
    let b = KeyRing::load(store.clone(), settings.clone())
        .await
        .expect("load b");
    assert_eq!(
        a.jwks_json(),
        b.jwks_json(),
        "the second start creates no keys"
    );

    let check = VerifyOptions::new(ISSUER).audience("pago-in-rete");
    for algorithm in SigningAlgorithm::ALL {
        let token = a.sign(&claims(), None, Some(algorithm)).expect("sign");
        let back: Value = b.verify(&token, &check).expect("b verifies a's token");
        assert_eq!(back["sub"], "mario.rossi");
    }

    let before = a.sign(&claims(), None, None).expect("sign");
    // Make the first key older than the rotation, so the new one takes over at once.
    sqlx::query("UPDATE signing_keys SET sign_from = sign_from - 60")
        .execute(store.pool())
        .await
        .expect("age the keys");
    let new = KeyRing::rotate(store.as_ref(), &settings, None)
        .await
        .expect("rotate");
    assert_eq!(new.algorithm, SigningAlgorithm::Es256);
    assert_eq!(
        kid_of(&a.sign(&claims(), None, None).expect("sign")),
        kid_of(&before),
        "until its reload a ring still signs with the old key"
    );
    a.reload().await.expect("reload a");
    let after = a.sign(&claims(), None, None).expect("sign");
    assert_eq!(kid_of(&after), new.kid);
    assert_eq!(
        b.verify::<Value>(&after, &check),
        Err(TokenError::UnknownKid),
        "b has not reloaded yet"
    );
    b.reload().await.expect("reload b");
    assert!(b.verify::<Value>(&after, &check).is_ok());
    assert!(
        b.verify::<Value>(&before, &check).is_ok(),
        "the old key stays published until retire_at"
    );
    assert_eq!(a.jwks_json(), b.jwks_json());
}

macro_rules! on_both_databases {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $body() {
                    let store = super::SqlStore::connect("sqlite::memory:", 1)
                        .await
                        .expect("sqlite");
                    store.migrate().await.expect("migrate");
                    super::$body(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $body() {
                    let db = super::TestDatabase::create().await;
                    let store = super::SqlStore::connect(&db.url, 4).await.expect("postgres");
                    store.migrate().await.expect("migrate");
                    super::$body(std::sync::Arc::new(store.clone())).await;
                    store.close().await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

on_both_databases!(
    keys_read_back_and_retire_as_written,
    two_instances_share_keys_and_follow_a_rotation,
);
