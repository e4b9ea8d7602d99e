//! Opaque access tokens in the token service: issued as the claims sealed with a key
//! only the IdP holds (nothing stored), checked with the one cache call of a JWT
//! (the revocation marks), revoked by their own client only, and killed with their
//! grant.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::cache::MemoryCache;
use crate::client::{ClientAuthMethod, ClientId, NewClient};
use crate::keys::{KeySettings, SigningAlgorithm};
use crate::store::sql::SqlStore;

const ISSUER: &str = "https://iam.example.it";

/// A memory cache that counts the calls that would be Redis round trips.
#[derive(Default)]
struct CountingCache {
    inner: MemoryCache,
    gets: AtomicUsize,
    puts: AtomicUsize,
    exists: AtomicUsize,
}

impl CountingCache {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.gets.load(Ordering::SeqCst),
            self.puts.load(Ordering::SeqCst),
            self.exists.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl Cache for CountingCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn mark(&self, key: &str, ttl: Duration) -> Result<()> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.mark(key, ttl).await
    }
    async fn any_marked(&self, keys: &[&str]) -> Result<bool> {
        self.exists.fetch_add(1, Ordering::SeqCst);
        self.inner.any_marked(keys).await
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, value, ttl).await
    }
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_if_absent(key, value, ttl).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn increment(&self, key: &str, window: Duration) -> Result<u64> {
        self.inner.increment(key, window).await
    }
    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        self.inner.time_to_live(key).await
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.inner.set_add(key, member, ttl).await
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.inner.set_remove(key, member).await
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        self.inner.set_members(key).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

async fn service() -> (TokenService, Arc<CountingCache>) {
    let store = SqlStore::connect("sqlite::memory:", 1)
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrations");
    let store: Arc<SqlStore> = Arc::new(store);
    let keys = KeyRing::load(
        store.clone(),
        KeySettings {
            algorithms: vec![SigningAlgorithm::Es256],
            ..KeySettings::default()
        },
    )
    .await
    .expect("keys");
    let cache = Arc::new(CountingCache::default());
    let tokens = TokenService::new(
        ISSUER.into(),
        TokenSettings::default(),
        keys,
        store,
        cache.clone(),
    );
    (tokens, cache)
}

fn client(id: &str, format: AccessTokenFormat) -> Client {
    let new = NewClient {
        id: ClientId::parse(id).expect("id"),
        name: "Back office".into(),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::ClientCredentials],
        jwks: None,
        service: None,
        enablement_uri: None,
        access_token_format: format,
    };
    Client::register(new).expect("registers").0
}

fn grant_for(client: &Client) -> Grant {
    let at = now();
    Grant {
        id: "grant-1".into(),
        account_id: "account-1".into(),
        client_id: client.id.to_string(),
        scope: "openid profile".into(),
        sid: Some("sid-1".into()),
        auth_time: at - 10,
        acr: super::super::ACR_PASSWORD.into(),
        amr: vec!["pwd".into()],
        created_at: at,
        expires_at: at + 3600,
        revoked_at: None,
    }
}

fn claims_of(client: &str, exp: i64) -> AccessClaims {
    let at = now();
    AccessClaims {
        iss: ISSUER.into(),
        sub: client.into(),
        aud: client.into(),
        exp,
        iat: at - 301,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: client.into(),
        scope: String::new(),
        auth_time: None,
        acr: None,
        sid: None,
        gid: None,
    }
}

/// A `client_credentials` access token of `client`, no scope.
async fn issued(tokens: &TokenService, client: &Client) -> String {
    tokens
        .client_credentials(client, None)
        .await
        .expect("issued")
        .access_token
}

fn sealed(tokens: &TokenService, claims: &AccessClaims) -> String {
    tokens
        .keys
        .seal(&serde_json::to_vec(claims).expect("json"))
        .expect("sealed")
}

#[tokio::test]
async fn an_opaque_client_gets_sealed_claims_that_nothing_stores_and_no_one_reads() {
    let (tokens, cache) = service().await;
    let back_office = client("back-office-7", AccessTokenFormat::Opaque);
    let response = tokens
        .client_credentials(&back_office, Some("api"))
        .await
        .expect("issued");
    let token = response.access_token.clone();
    assert!(is_opaque_shaped(&token) && !is_jwt(&token), "{token}");
    assert_eq!(cache.counts(), (0, 0, 0), "no cache write");
    // The claims are not readable in the token, encoded or not.
    let bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64url");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("back-office-7") && !text.contains(ISSUER),
        "{text}"
    );
    assert!(!token.contains(&URL_SAFE_NO_PAD.encode("back-office-7")));
    // Two tokens with the same claims but the jti differ entirely.
    let again = tokens
        .client_credentials(&back_office, Some("api"))
        .await
        .expect("issued")
        .access_token;
    assert_ne!(token, again);
    let claims = tokens.verify_access_token(&token).await.expect("valid");
    assert_eq!(claims.client_id, "back-office-7");
    assert_eq!(claims.sub, "back-office-7");
    assert_eq!(claims.scope, "api");
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.gid.is_none());
    assert!(!format!("{response:?}").contains(&token), "{response:?}");

    // A JWT client still gets a JWT, and writes nothing to the cache either.
    let jwt_client = client("jwt-client", AccessTokenFormat::Jwt);
    let jwt = issued(&tokens, &jwt_client).await;
    assert_eq!(jwt.split('.').count(), 3);
    assert_eq!(cache.counts().1, 0);
}

#[tokio::test]
async fn an_opaque_token_costs_one_round_trip_like_a_jwt() {
    let (tokens, cache) = service().await;
    let back_office = client("back-office", AccessTokenFormat::Opaque);
    let token = issued(&tokens, &back_office).await;
    let claims = tokens.verify_access_token(&token).await.expect("valid");
    assert_eq!(claims.client_id, "back-office");
    assert_eq!(cache.counts(), (0, 0, 1), "the revocation marks only");
    tokens.verify_access_token(&token).await.expect("valid");
    assert_eq!(cache.counts(), (0, 0, 2));
}

#[tokio::test]
async fn unknown_changed_and_malformed_opaque_tokens_are_invalid() {
    let (tokens, cache) = service().await;
    let back_office = client("back-office", AccessTokenFormat::Opaque);
    let token = issued(&tokens, &back_office).await;
    // Every character changed in turn, at a few places: version, key tag, nonce,
    // ciphertext, tag.
    for at in [0, 3, 14, 30, token.len() / 2, token.len() - 2] {
        let mut changed = token.clone().into_bytes();
        changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).expect("ascii");
        let e = tokens
            .verify_access_token(&changed)
            .await
            .expect_err("changed");
        assert_eq!(
            e.description, "the access token is unknown or expired",
            "{at}"
        );
    }
    // Sealed by another key ring (another deployment, or a key since retired).
    let (elsewhere, _) = service().await;
    let foreign = issued(&elsewhere, &back_office).await;
    let e = tokens
        .verify_access_token(&foreign)
        .await
        .expect_err("not ours");
    assert_eq!(e.code, "invalid_token");
    let random = generate_token();
    for garbage in [
        "",
        "x",
        "not a token at all",
        random.expose(),
        &"a".repeat(64),
        &"a".repeat(5000),
        "é".repeat(40).as_str(),
    ] {
        let e = tokens
            .verify_access_token(garbage)
            .await
            .expect_err("garbage");
        assert_eq!(e.code, "invalid_token");
    }
    assert_eq!(
        cache.counts(),
        (0, 0, 0),
        "nothing is looked up for any of them"
    );
}

#[tokio::test]
async fn an_expired_or_foreign_issuer_sealed_token_is_not_honoured() {
    let (tokens, _cache) = service().await;
    let at = now();
    let expired = sealed(&tokens, &claims_of("back-office", at - 1));
    let e = tokens
        .verify_access_token(&expired)
        .await
        .expect_err("expired");
    assert_eq!(e.code, "invalid_token");
    // Sealed by our keys, but for another issuer sharing them.
    let mut other = claims_of("back-office", at + 300);
    other.iss = "https://elsewhere.example.it".into();
    let e = tokens
        .verify_access_token(&sealed(&tokens, &other))
        .await
        .expect_err("another issuer");
    assert_eq!(e.code, "invalid_token");
    let good = sealed(&tokens, &claims_of("back-office", at + 300));
    tokens.verify_access_token(&good).await.expect("valid");
}

#[tokio::test]
async fn only_its_own_client_revokes_an_opaque_token() {
    let (tokens, _cache) = service().await;
    let back_office = client("back-office", AccessTokenFormat::Opaque);
    let other = client("other", AccessTokenFormat::Opaque);
    let token = issued(&tokens, &back_office).await;
    // Seen once, so this instance remembers its claims: revocation must still show.
    tokens.verify_access_token(&token).await.expect("valid");
    tokens.revoke(&other, &token, None).await.expect("answered");
    tokens
        .verify_access_token(&token)
        .await
        .expect("still valid");
    tokens
        .revoke(&back_office, &token, None)
        .await
        .expect("revoked");
    let e = tokens
        .verify_access_token(&token)
        .await
        .expect_err("revoked");
    assert_eq!(e.code, "invalid_token");
    let answer = tokens
        .introspect(&back_office, &token, None)
        .await
        .expect("introspect");
    assert_eq!(answer, json!({ "active": false }));
}

#[tokio::test]
async fn revoking_the_grant_kills_its_opaque_access_tokens() {
    let (tokens, _cache) = service().await;
    let rp = client("rp", AccessTokenFormat::Opaque);
    let grant = grant_for(&rp);
    let token = tokens
        .access_token(&grant.account_id, &rp, &grant.scope, Some(&grant))
        .await
        .expect("issued");
    let claims = tokens.verify_access_token(&token).await.expect("valid");
    assert_eq!(claims.gid.as_deref(), Some("grant-1"));
    assert_eq!(claims.sid.as_deref(), Some("sid-1"));
    assert_eq!(claims.acr.as_deref(), Some(super::super::ACR_PASSWORD));
    assert_eq!(claims.aud, "rp");
    let active = tokens
        .introspect(&rp, &token, None)
        .await
        .expect("introspect");
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "rp");
    assert_eq!(active["sub"], "account-1");
    assert_eq!(active["scope"], "openid profile");
    assert_eq!(active["exp"], claims.exp);
    tokens.mark_grant_revoked("grant-1").await.expect("marked");
    let e = tokens
        .verify_access_token(&token)
        .await
        .expect_err("revoked");
    assert_eq!(e.description, "the access token was revoked");
}
