//! The client registry's storage and client authentication, run on SQLite and on
//! PostgreSQL: JSON lists, optional columns, conflicts and the registry cache.

use std::sync::Arc;

use idp_core::CoreError;
use idp_core::cache::MemoryCache;
use idp_core::client::{
    AccessTokenFormat, Client, ClientAuthError, ClientAuthMethod, ClientId, ClientRegistry,
    GrantType, NewClient, PresentedCredentials, authenticate_client,
};
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;
use idp_tests::TestDatabase;
use serde_json::json;

fn istanze_online() -> NewClient {
    NewClient {
        id: ClientId::parse("istanze-online").expect("id"),
        name: "Istanze OnLine".into(),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![
            "https://istanze.example.it/callback".into(),
            "http://localhost:8081/callback".into(),
        ],
        post_logout_redirect_uris: vec!["https://istanze.example.it/".into()],
        backchannel_logout_uri: Some("https://istanze.example.it/backchannel-logout".into()),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        service: Some("istanze-online".into()),
        enablement_uri: Some("https://istanze.example.it/abilitazione".into()),
        access_token_format: AccessTokenFormat::Jwt,
    }
}

fn keyed_back_office() -> NewClient {
    NewClient {
        id: ClientId::parse("back-office").expect("id"),
        name: "Back office".into(),
        auth_method: ClientAuthMethod::PrivateKeyJwt,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::ClientCredentials],
        jwks: Some(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "bo-1",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }]})),
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Opaque,
    }
}

async fn clients_read_back_as_they_were_written(store: Arc<dyn Store>) {
    let (istanze, _) = Client::register(istanze_online()).expect("registers");
    let (office, _) = Client::register(keyed_back_office()).expect("registers");
    store.insert_client(&istanze).await.expect("insert");
    store.insert_client(&office).await.expect("insert");
    assert_eq!(
        store.client_by_id(&istanze.id).await.expect("read"),
        Some(istanze.clone())
    );
    assert_eq!(
        store.client_by_id(&office.id).await.expect("read"),
        Some(office.clone())
    );
    let all = store.list_clients().await.expect("list");
    assert_eq!(all, vec![office.clone(), istanze.clone()]);

    let e = store.insert_client(&istanze).await.expect_err("taken");
    assert!(matches!(e, CoreError::Conflict("client_id")), "{e:?}");

    let mut changed = istanze.clone();
    changed.redirect_uris.pop();
    changed.backchannel_logout_uri = None;
    changed.service = None;
    changed.enablement_uri = None;
    changed.access_token_format = AccessTokenFormat::Opaque;
    store.update_client(&changed).await.expect("update");
    assert_eq!(
        store.client_by_id(&istanze.id).await.expect("read"),
        Some(changed)
    );
    assert!(store.delete_client(&office.id).await.expect("delete"));
    assert!(
        store
            .client_by_id(&office.id)
            .await
            .expect("read")
            .is_none()
    );
    let e = store.update_client(&office).await.expect_err("gone");
    assert!(matches!(e, CoreError::NotFound("client")), "{e:?}");
}

async fn a_relying_party_authenticates_through_the_registry(store: Arc<dyn Store>) {
    let (istanze, secret) = Client::register(istanze_online()).expect("registers");
    let secret = secret.expect("generated").expose().to_string();
    store.insert_client(&istanze).await.expect("insert");
    let registry = ClientRegistry::new(store.clone());
    let cache = MemoryCache::new();
    let audience = ["https://iam.example.it/token".to_string()];
    let presented = |secret: &str| PresentedCredentials {
        basic: Some(("istanze-online".into(), secret.to_string())),
        ..Default::default()
    };
    let client = authenticate_client(&registry, &presented(&secret), &audience, &cache)
        .await
        .expect("authenticates");
    assert_eq!(client.id, istanze.id);
    assert!(client.has_redirect_uri("http://localhost:8081/callback"));
    let e = authenticate_client(&registry, &presented("wrong"), &audience, &cache)
        .await
        .expect_err("wrong secret");
    assert!(matches!(
        e,
        ClientAuthError::InvalidClient("wrong client secret")
    ));

    // A removed client stops authenticating once the registry forgets it.
    store.delete_client(&istanze.id).await.expect("delete");
    registry.invalidate(&istanze.id);
    let e = authenticate_client(&registry, &presented(&secret), &audience, &cache)
        .await
        .expect_err("removed");
    assert!(matches!(
        e,
        ClientAuthError::InvalidClient("unknown client")
    ));
}

/// Runs each body on a fresh in-memory SQLite and on a throwaway PostgreSQL database.
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
    clients_read_back_as_they_were_written,
    a_relying_party_authenticates_through_the_registry,
);
