//! Registration rules, the store round trip, the registry and client authentication.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::json;

use super::*;
use crate::cache::MemoryCache;
use crate::store::ClientStore;
use crate::store::sql::SqlStore;

const TOKEN_ENDPOINT: &str = "https://iam.example.it/token";
const ISSUER: &str = "https://iam.example.it";

fn new_client(id: &str, method: ClientAuthMethod) -> NewClient {
    NewClient {
        id: ClientId::parse(id).expect("valid id"),
        name: "Istanze OnLine".into(),
        auth_method: method,
        redirect_uris: vec!["https://istanze.example.it/callback".into()],
        post_logout_redirect_uris: vec!["https://istanze.example.it/".into()],
        backchannel_logout_uri: Some("https://istanze.example.it/backchannel-logout".into()),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        service: Some("istanze-online".into()),
        enablement_uri: Some("https://istanze.example.it/abilitazione".into()),
        access_token_format: AccessTokenFormat::Jwt,
    }
}

fn refusal(new: NewClient) -> String {
    match Client::register(new) {
        Err(CoreError::Invalid(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// --- identifiers and names --------------------------------------------------------

#[test]
fn a_client_id_is_short_and_url_safe() {
    for good in ["istanze-online", "pago.in_rete-2", &"a".repeat(128)] {
        assert_eq!(ClientId::parse(good).expect("valid").as_str(), good);
    }
    for bad in ["", "con spazio", "a/b", "è", &"a".repeat(129)] {
        assert!(ClientId::parse(bad).is_err(), "{bad:?} accepted");
    }
    let id: ClientId = serde_json::from_str("\"governance\"").expect("deserializes");
    assert_eq!(id.to_string(), "governance");
    // Width and alignment apply, for the admin listing's columns.
    assert_eq!(
        format!("{id:<12}|{:>6}|", ClientAuthMethod::None),
        "governance  |  none|"
    );
    assert!(serde_json::from_str::<ClientId>("\"a b\"").is_err());
}

#[test]
fn methods_and_grants_have_their_oauth_names() {
    for m in ClientAuthMethod::ALL {
        assert_eq!(ClientAuthMethod::parse(m.as_str()).expect("parses"), m);
    }
    for g in GrantType::ALL {
        assert_eq!(GrantType::parse(g.as_str()).expect("parses"), g);
    }
    assert_eq!(ClientAuthMethod::None.as_str(), "none");
    assert_eq!(
        serde_json::to_string(&ClientAuthMethod::PrivateKeyJwt).expect("json"),
        "\"private_key_jwt\""
    );
    assert_eq!(
        serde_json::to_string(&GrantType::ClientCredentials).expect("json"),
        "\"client_credentials\""
    );
    assert!(ClientAuthMethod::parse("client_secret_jwt").is_err());
    assert!(GrantType::parse("password").is_err());
}

#[test]
fn an_access_token_format_is_jwt_unless_opaque_is_asked() {
    for f in AccessTokenFormat::ALL {
        assert_eq!(AccessTokenFormat::parse(f.as_str()).expect("parses"), f);
        assert_eq!(
            f.to_string().parse::<AccessTokenFormat>().expect("parses"),
            f
        );
    }
    assert_eq!(AccessTokenFormat::default(), AccessTokenFormat::Jwt);
    assert_eq!(
        serde_json::from_str::<AccessTokenFormat>("\"opaque\"").expect("json"),
        AccessTokenFormat::Opaque
    );
    assert_eq!(
        serde_json::to_string(&AccessTokenFormat::Jwt).expect("json"),
        "\"jwt\""
    );
    for bad in ["JWT", "reference", "", "opaque "] {
        match AccessTokenFormat::parse(bad) {
            Err(CoreError::Invalid(message)) => {
                assert!(
                    message.starts_with("access_token_format: unknown"),
                    "{message}"
                )
            }
            other => panic!("{bad:?} accepted: {other:?}"),
        }
    }
    assert!(serde_json::from_str::<AccessTokenFormat>("\"Opaque\"").is_err());
}

// --- registration -----------------------------------------------------------------

#[test]
fn a_confidential_client_gets_a_secret_once_and_only_its_hash_is_kept() {
    let (client, secret) = Client::register(new_client(
        "istanze-online",
        ClientAuthMethod::ClientSecretBasic,
    ))
    .expect("registers");
    let secret = secret.expect("a secret is generated");
    assert_eq!(secret.expose().len(), 43);
    assert_eq!(client.secret_hash, Some(TokenHash::of(secret.expose())));
    assert!(!format!("{client:?}").contains(secret.expose()));
    assert!(!client.is_public());
    assert!(client.allows_grant(GrantType::RefreshToken));
    assert!(!client.allows_grant(GrantType::ClientCredentials));
}

#[test]
fn a_public_client_gets_no_secret() {
    let (client, secret) =
        Client::register(new_client("app", ClientAuthMethod::None)).expect("registers");
    assert!(secret.is_none());
    assert!(client.secret_hash.is_none());
    assert!(client.is_public());
}

#[test]
fn redirect_uris_match_exactly() {
    let (client, _) =
        Client::register(new_client("c", ClientAuthMethod::ClientSecretPost)).expect("registers");
    assert!(client.has_redirect_uri("https://istanze.example.it/callback"));
    for near in [
        "https://istanze.example.it/callback/",
        "https://istanze.example.it/callback?x=1",
        "https://ISTANZE.example.it/callback",
        "https://istanze.example.it/callbac",
    ] {
        assert!(!client.has_redirect_uri(near), "{near} matched");
    }
    assert!(client.has_post_logout_redirect_uri("https://istanze.example.it/"));
    assert!(!client.has_post_logout_redirect_uri("https://istanze.example.it"));
}

#[test]
fn redirect_uris_must_be_absolute_https_without_fragment() {
    let with = |uri: &str| {
        let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
        n.redirect_uris = vec![uri.to_string()];
        n
    };
    let cases = [
        (
            "/callback",
            "redirect_uris: \"/callback\" is not an absolute URL",
        ),
        (
            "https://rp.example.it/cb#frag",
            "redirect_uris: \"https://rp.example.it/cb#frag\" has a fragment",
        ),
        (
            "https://rp.example.it/cb#",
            "redirect_uris: \"https://rp.example.it/cb#\" has a fragment",
        ),
        (
            "http://rp.example.it/cb",
            "redirect_uris: \"http://rp.example.it/cb\" uses http, allowed only for localhost \
             and 127.0.0.1",
        ),
        (
            "it.istruzione.app:/cb",
            "redirect_uris: \"it.istruzione.app:/cb\" must use https",
        ),
        (
            "https://user:pw@rp.example.it/cb",
            "redirect_uris: \"https://user:pw@rp.example.it/cb\" holds credentials",
        ),
    ];
    for (uri, message) in cases {
        assert_eq!(refusal(with(uri)), message);
    }
    for ok in [
        "http://localhost:8081/callback",
        "http://127.0.0.1:9000/cb?x=1",
        "https://rp.example.it/cb",
    ] {
        Client::register(with(ok)).unwrap_or_else(|e| panic!("{ok} refused: {e}"));
    }
}

#[test]
fn the_other_uris_follow_the_same_rules() {
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.post_logout_redirect_uris = vec!["http://rp.example.it/".into()];
    assert!(refusal(n).starts_with("post_logout_redirect_uris: "));
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.backchannel_logout_uri = Some("https://rp.example.it/logout#x".into());
    assert!(refusal(n).starts_with("backchannel_logout_uri: "));
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.enablement_uri = Some("ftp://rp.example.it/".into());
    assert!(refusal(n).starts_with("enablement_uri: "));
}

#[test]
fn grant_rules_are_enforced() {
    let mut n = new_client("c", ClientAuthMethod::None);
    n.grant_types.push(GrantType::ClientCredentials);
    assert_eq!(
        refusal(n),
        "grant_types: a public client (auth_method none) may not use client_credentials"
    );

    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.redirect_uris.clear();
    assert_eq!(
        refusal(n),
        "redirect_uris: at least one is required for authorization_code"
    );

    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.grant_types = vec![GrantType::RefreshToken];
    assert_eq!(
        refusal(n),
        "grant_types: refresh_token requires authorization_code"
    );

    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.grant_types.clear();
    assert_eq!(refusal(n), "grant_types: at least one is required");

    // A back-end-only client needs no redirect URI; repeated grants are kept once.
    let mut n = new_client("batch", ClientAuthMethod::ClientSecretBasic);
    n.redirect_uris.clear();
    n.grant_types = vec![GrantType::ClientCredentials, GrantType::ClientCredentials];
    let (client, _) = Client::register(n).expect("registers");
    assert_eq!(client.grant_types, vec![GrantType::ClientCredentials]);
}

#[test]
fn private_key_jwt_needs_public_keys() {
    let n = new_client("c", ClientAuthMethod::PrivateKeyJwt);
    assert_eq!(refusal(n), "jwks: required for private_key_jwt");

    let mut n = new_client("c", ClientAuthMethod::PrivateKeyJwt);
    n.jwks = Some(json!({"keys": []}));
    assert_eq!(refusal(n), "jwks: must hold at least one key");

    let mut n = new_client("c", ClientAuthMethod::PrivateKeyJwt);
    n.jwks = Some(json!({"nokeys": true}));
    assert!(refusal(n).starts_with("jwks: not a JWK set"));

    let (_, public_jwk) = test_key("k1");
    let mut n = new_client("c", ClientAuthMethod::PrivateKeyJwt);
    let mut leaked = public_jwk.clone();
    leaked["d"] = json!("c2VjcmV0");
    n.jwks = Some(json!({ "keys": [leaked] }));
    assert_eq!(
        refusal(n),
        "jwks: holds a private key (member d); register the public keys only"
    );

    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.jwks = Some(json!({ "keys": [public_jwk.clone()] }));
    assert_eq!(refusal(n), "jwks: only a private_key_jwt client has keys");

    let mut n = new_client("c", ClientAuthMethod::PrivateKeyJwt);
    n.jwks = Some(json!({ "keys": [public_jwk] }));
    let (client, secret) = Client::register(n).expect("registers");
    assert!(secret.is_none());
    assert!(client.secret_hash.is_none());
}

#[test]
fn name_and_service_are_checked() {
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.name = "  ".into();
    assert_eq!(refusal(n), "name: must be 1 to 200 characters");
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.service = Some("Istanze OnLine".into());
    assert_eq!(
        refusal(n),
        "service: must be 1 to 64 characters of a-z 0-9 -"
    );
    let mut n = new_client("c", ClientAuthMethod::ClientSecretBasic);
    n.service = None;
    assert_eq!(refusal(n), "enablement_uri: requires service");
}

#[test]
fn a_chosen_secret_is_stored_hashed_and_only_for_secret_methods() {
    let secret = Secret::new("demo-secret-istanze".into());
    let client =
        Client::register_with_secret(new_client("c", ClientAuthMethod::ClientSecretPost), &secret)
            .expect("registers");
    assert_eq!(client.secret_hash, Some(secret.hash()));
    let e = Client::register_with_secret(new_client("c", ClientAuthMethod::None), &secret)
        .expect_err("public clients have no secret");
    assert_eq!(
        e.to_string(),
        "invalid input: secret: a client using none has no secret"
    );
}

// --- store and registry -------------------------------------------------------------

async fn store() -> Arc<SqlStore> {
    let store = SqlStore::connect("sqlite::memory:", 1)
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrations");
    Arc::new(store)
}

#[tokio::test]
async fn a_client_reads_back_as_it_was_written() {
    let store = store().await;
    let mut n = new_client("istanze-online", ClientAuthMethod::ClientSecretBasic);
    n.redirect_uris
        .push("http://localhost:8081/callback".into());
    let (client, _) = Client::register(n).expect("registers");
    store.insert_client(&client).await.expect("insert");
    let read = store
        .client_by_id(&client.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(read, client);

    let e = store.insert_client(&client).await.expect_err("duplicate");
    assert!(matches!(e, CoreError::Conflict("client_id")), "{e:?}");

    let (key_client, _) = jwt_client("rp-jwt", "k1");
    store.insert_client(&key_client).await.expect("insert");
    let ids: Vec<String> = store
        .list_clients()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, vec!["istanze-online", "rp-jwt"]);
    assert_eq!(
        store
            .client_by_id(&key_client.id)
            .await
            .expect("read")
            .expect("found"),
        key_client
    );

    let mut changed = client.clone();
    changed.name = "Istanze OnLine (nuovo)".into();
    changed.grant_types = vec![GrantType::AuthorizationCode];
    changed.access_token_format = AccessTokenFormat::Opaque;
    store.update_client(&changed).await.expect("update");
    assert_eq!(
        store.client_by_id(&client.id).await.expect("read"),
        Some(changed)
    );

    assert!(store.delete_client(&client.id).await.expect("delete"));
    assert!(!store.delete_client(&client.id).await.expect("delete again"));
    assert!(
        store
            .client_by_id(&client.id)
            .await
            .expect("read")
            .is_none()
    );
    let e = store.update_client(&client).await.expect_err("gone");
    assert!(matches!(e, CoreError::NotFound("client")), "{e:?}");
}

#[tokio::test]
async fn the_registry_serves_from_memory_until_invalidated() {
    let store = store().await;
    let registry = ClientRegistry::new(store.clone());
    let (client, _) =
        Client::register(new_client("c", ClientAuthMethod::ClientSecretBasic)).expect("ok");
    assert!(registry.get(&client.id).await.expect("get").is_none());
    store.insert_client(&client).await.expect("insert");
    // The unknown id is remembered for a moment...
    assert!(registry.get(&client.id).await.expect("get").is_none());
    registry.invalidate(&client.id);
    let held = registry.get(&client.id).await.expect("get").expect("found");
    assert_eq!(held.name, "Istanze OnLine");

    // ...and a change in the store shows after invalidation, not before.
    let mut renamed = client.clone();
    renamed.name = "Rinominato".into();
    store.update_client(&renamed).await.expect("update");
    let held = registry.get(&client.id).await.expect("get").expect("found");
    assert_eq!(held.name, "Istanze OnLine");
    registry.invalidate(&client.id);
    let held = registry.get(&client.id).await.expect("get").expect("found");
    assert_eq!(held.name, "Rinominato");

    // With no refresh period every lookup reads the store.
    let eager = ClientRegistry::with_refresh(store.clone(), Duration::ZERO);
    assert!(eager.get(&client.id).await.expect("get").is_some());
    store.delete_client(&client.id).await.expect("delete");
    assert!(eager.get(&client.id).await.expect("get").is_none());
}

/// A client store whose reads are counted, each waiting for a permit of `gate`.
struct GatedStore {
    inner: Arc<SqlStore>,
    reads: std::sync::atomic::AtomicUsize,
    gate: tokio::sync::Semaphore,
}

impl GatedStore {
    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (up to 5 s) until `n` reads have started.
    async fn until_reads(&self, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while self.reads() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "{n} reads expected, {} started",
            self.reads()
        );
    }
}

#[async_trait::async_trait]
impl ClientStore for GatedStore {
    async fn insert_client(&self, client: &Client) -> crate::Result<()> {
        self.inner.insert_client(client).await
    }
    async fn client_by_id(&self, id: &ClientId) -> crate::Result<Option<Client>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.gate.acquire().await.expect("gate open").forget();
        self.inner.client_by_id(id).await
    }
    async fn list_clients(&self) -> crate::Result<Vec<Client>> {
        self.inner.list_clients().await
    }
    async fn delete_client(&self, id: &ClientId) -> crate::Result<bool> {
        self.inner.delete_client(id).await
    }
    async fn update_client(&self, client: &Client) -> crate::Result<()> {
        self.inner.update_client(client).await
    }
}

#[tokio::test]
async fn one_lookup_refreshes_a_held_client_while_the_others_answer_from_memory() {
    let sql = store().await;
    let (client, _) =
        Client::register(new_client("c", ClientAuthMethod::ClientSecretBasic)).expect("ok");
    sql.insert_client(&client).await.expect("insert");
    let store = Arc::new(GatedStore {
        inner: sql.clone(),
        reads: Default::default(),
        gate: tokio::sync::Semaphore::new(1),
    });
    // No refresh period: every lookup finds the held client due for a refresh.
    let registry = ClientRegistry::with_refresh(store.clone(), Duration::ZERO);
    let first = registry.get(&client.id).await.expect("get").expect("found");
    assert_eq!((first.name.as_str(), store.reads()), ("Istanze OnLine", 1));

    let mut renamed = client.clone();
    renamed.name = "Rinominato".into();
    sql.update_client(&renamed).await.expect("update");
    let refresher = tokio::spawn({
        let (registry, id) = (registry.clone(), client.id.clone());
        async move { registry.get(&id).await }
    });
    store.until_reads(2).await;
    // While that read waits, every other lookup answers at once with the held client.
    for _ in 0..10 {
        let held = tokio::time::timeout(Duration::from_secs(1), registry.get(&client.id))
            .await
            .expect("answered from memory")
            .expect("get")
            .expect("found");
        assert_eq!(held.name, "Istanze OnLine");
    }
    assert_eq!(store.reads(), 2, "one read for all of them");
    store.gate.add_permits(1);
    let fresh = refresher.await.expect("task").expect("get").expect("found");
    assert_eq!(fresh.name, "Rinominato");

    // A refresh given up halfway (its request dropped) does not stop the next one.
    let abandoned = tokio::spawn({
        let (registry, id) = (registry.clone(), client.id.clone());
        async move { registry.get(&id).await }
    });
    store.until_reads(3).await;
    abandoned.abort();
    let _ = abandoned.await;
    store.gate.add_permits(1);
    let next = registry.get(&client.id).await.expect("get").expect("found");
    assert_eq!((next.name.as_str(), store.reads()), ("Rinominato", 4));
}

// --- client authentication -------------------------------------------------------------

struct Fixture {
    registry: ClientRegistry,
    cache: MemoryCache,
    basic_secret: String,
    post_secret: String,
    key_pem: String,
}

async fn fixture() -> Fixture {
    let store = store().await;
    let (basic, basic_secret) =
        Client::register(new_client("rp-basic", ClientAuthMethod::ClientSecretBasic)).expect("ok");
    let (post, post_secret) =
        Client::register(new_client("rp-post", ClientAuthMethod::ClientSecretPost)).expect("ok");
    let (public, _) =
        Client::register(new_client("rp-public", ClientAuthMethod::None)).expect("ok");
    let (jwt, key_pem) = jwt_client("rp-jwt", "k1");
    for c in [&basic, &post, &public, &jwt] {
        store.insert_client(c).await.expect("insert");
    }
    Fixture {
        registry: ClientRegistry::new(store),
        cache: MemoryCache::new(),
        basic_secret: basic_secret.expect("secret").expose().to_string(),
        post_secret: post_secret.expect("secret").expose().to_string(),
        key_pem,
    }
}

impl Fixture {
    async fn auth(&self, p: &PresentedCredentials) -> Result<Arc<Client>, ClientAuthError> {
        let audience = [TOKEN_ENDPOINT.to_string(), ISSUER.to_string()];
        authenticate_client(&self.registry, p, &audience, &self.cache).await
    }

    async fn refused(&self, p: &PresentedCredentials) -> &'static str {
        match self.auth(p).await {
            Err(ClientAuthError::InvalidClient(reason)) => reason,
            other => panic!("expected invalid_client, got {other:?}"),
        }
    }

    fn basic(&self) -> PresentedCredentials {
        PresentedCredentials {
            basic: Some(("rp-basic".into(), self.basic_secret.clone())),
            ..Default::default()
        }
    }

    fn post(&self) -> PresentedCredentials {
        PresentedCredentials {
            form_client_id: Some("rp-post".into()),
            form_client_secret: Some(self.post_secret.clone()),
            ..Default::default()
        }
    }

    fn assertion(&self, claims: serde_json::Value) -> PresentedCredentials {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_ec_pem(self.key_pem.as_bytes()).expect("pem");
        PresentedCredentials {
            assertion_type: Some(JWT_BEARER_ASSERTION_TYPE.into()),
            assertion: Some(jsonwebtoken::encode(&header, &claims, &key).expect("signs")),
            ..Default::default()
        }
    }
}

/// A P-256 key pair: the private key as PKCS#8 PEM and the public JWK (with `kid`).
fn test_key(kid: &str) -> (String, serde_json::Value) {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pem")
        .to_string();
    let mut jwk: serde_json::Value =
        serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!("ES256");
    (pem, jwk)
}

fn jwt_client(id: &str, kid: &str) -> (Client, String) {
    let (pem, jwk) = test_key(kid);
    let mut n = new_client(id, ClientAuthMethod::PrivateKeyJwt);
    n.jwks = Some(json!({ "keys": [jwk] }));
    let (client, secret) = Client::register(n).expect("registers");
    assert!(secret.is_none());
    (client, pem)
}

fn good_claims() -> serde_json::Value {
    let now = now();
    json!({
        "iss": "rp-jwt", "sub": "rp-jwt", "aud": TOKEN_ENDPOINT,
        "exp": now + 60, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

#[tokio::test]
async fn a_client_authenticates_with_its_secret_in_the_header_or_the_form() {
    let f = fixture().await;
    assert_eq!(
        f.auth(&f.basic()).await.expect("basic").id.as_str(),
        "rp-basic"
    );
    assert_eq!(
        f.auth(&f.post()).await.expect("post").id.as_str(),
        "rp-post"
    );
    // The form may repeat the client_id of the header.
    let mut p = f.basic();
    p.form_client_id = Some("rp-basic".into());
    assert!(f.auth(&p).await.is_ok());
    p.form_client_id = Some("rp-post".into());
    assert_eq!(
        f.refused(&p).await,
        "client_id does not match the client credentials"
    );
}

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_client_is_invalid_client() {
    let f = fixture().await;
    let mut p = f.basic();
    p.basic = Some(("rp-basic".into(), format!("{}x", f.basic_secret)));
    assert_eq!(f.refused(&p).await, "wrong client secret");
    let mut p = f.post();
    p.form_client_secret = Some(String::new());
    assert_eq!(f.refused(&p).await, "wrong client secret");
    // Another client's secret is as wrong as any other.
    let mut p = f.basic();
    p.basic = Some(("rp-basic".into(), f.post_secret.clone()));
    assert_eq!(f.refused(&p).await, "wrong client secret");
    let mut p = f.basic();
    p.basic = Some(("nessuno".into(), f.basic_secret.clone()));
    assert_eq!(f.refused(&p).await, "unknown client");
    p.basic = Some(("non valido/".into(), f.basic_secret.clone()));
    assert_eq!(f.refused(&p).await, "unknown client");
}

#[tokio::test]
async fn a_client_must_use_the_method_it_registered() {
    let f = fixture().await;
    let post_as_basic = PresentedCredentials {
        basic: Some(("rp-post".into(), f.post_secret.clone())),
        ..Default::default()
    };
    let basic_as_post = PresentedCredentials {
        form_client_id: Some("rp-basic".into()),
        form_client_secret: Some(f.basic_secret.clone()),
        ..Default::default()
    };
    let confidential_without_secret = PresentedCredentials {
        form_client_id: Some("rp-basic".into()),
        ..Default::default()
    };
    for p in [post_as_basic, basic_as_post, confidential_without_secret] {
        assert_eq!(
            f.refused(&p).await,
            "authentication method is not the one registered for this client"
        );
    }
}

#[tokio::test]
async fn one_method_per_request() {
    let f = fixture().await;
    let mut p = f.basic();
    p.form_client_secret = Some(f.basic_secret.clone());
    assert_eq!(
        f.refused(&p).await,
        "multiple client authentication methods"
    );
    let mut p = f.post();
    p.assertion_type = Some(JWT_BEARER_ASSERTION_TYPE.into());
    assert_eq!(
        f.refused(&p).await,
        "multiple client authentication methods"
    );
    assert_eq!(
        f.refused(&PresentedCredentials::default()).await,
        "no client authentication"
    );
}

#[tokio::test]
async fn a_public_client_authenticates_with_its_id_alone() {
    let f = fixture().await;
    let p = PresentedCredentials {
        form_client_id: Some("rp-public".into()),
        ..Default::default()
    };
    assert!(f.auth(&p).await.expect("public").is_public());
    // A public client presenting a secret is using a method it did not register.
    let p = PresentedCredentials {
        form_client_id: Some("rp-public".into()),
        form_client_secret: Some("anything".into()),
        ..Default::default()
    };
    assert_eq!(
        f.refused(&p).await,
        "authentication method is not the one registered for this client"
    );
}

#[tokio::test]
async fn a_signed_assertion_authenticates_once() {
    let f = fixture().await;
    let p = f.assertion(good_claims());
    assert_eq!(f.auth(&p).await.expect("jwt").id.as_str(), "rp-jwt");
    assert_eq!(f.refused(&p).await, "client_assertion jti already used");

    // The issuer is an accepted audience too, alone or in a list; client_id may be sent.
    let mut claims = good_claims();
    claims["aud"] = json!(["https://other.example.it", ISSUER]);
    let mut p = f.assertion(claims);
    p.form_client_id = Some("rp-jwt".into());
    assert!(f.auth(&p).await.is_ok());
}

#[tokio::test]
async fn an_assertion_with_the_wrong_claims_is_refused() {
    let f = fixture().await;
    let now = now();
    let cases: [(&str, serde_json::Value, &str); 8] = [
        (
            "aud",
            json!("https://elsewhere.example.it/token"),
            "client_assertion aud does not name this server",
        ),
        ("exp", json!(now - 120), "client_assertion expired"),
        (
            "exp",
            json!(now + 3600),
            "client_assertion exp is more than 5 minutes ahead",
        ),
        (
            "iss",
            json!("rp-basic"),
            "client_assertion iss must be the client_id",
        ),
        ("jti", json!(""), "client_assertion jti missing"),
        (
            "iat",
            json!(now + 600),
            "client_assertion iat is in the future",
        ),
        (
            "nbf",
            json!(now + 600),
            "client_assertion not yet valid (nbf)",
        ),
        (
            "exp",
            serde_json::Value::Null,
            "client_assertion lacks iss, sub, aud or exp",
        ),
    ];
    for (claim, value, reason) in cases {
        let mut claims = good_claims();
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(claim);
        } else {
            claims[claim] = value;
        }
        assert_eq!(f.refused(&f.assertion(claims)).await, reason, "{claim}");
    }
    // sub names whose keys verify, so another client's sub fails on its keys or method.
    let mut claims = good_claims();
    claims["sub"] = json!("rp-basic");
    assert_eq!(
        f.refused(&f.assertion(claims)).await,
        "authentication method is not the one registered for this client"
    );
}

#[tokio::test]
async fn an_assertion_signed_by_another_key_or_alg_is_refused() {
    let f = fixture().await;
    let (other_pem, _) = test_key("k1");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &good_claims(),
        &EncodingKey::from_ec_pem(other_pem.as_bytes()).expect("pem"),
    )
    .expect("signs");
    let mut p = f.assertion(good_claims());
    p.assertion = Some(forged);
    assert_eq!(
        f.refused(&p).await,
        "client_assertion signature does not verify"
    );

    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hmac = jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(b"x"))
        .expect("signs");
    p.assertion = Some(hmac);
    assert_eq!(
        f.refused(&p).await,
        "client_assertion alg must be ES256 or RS256"
    );

    let mut p = f.assertion(good_claims());
    p.assertion_type = Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into());
    assert_eq!(
        f.refused(&p).await,
        "client_assertion_type must be jwt-bearer"
    );
    p.assertion = Some("not-a-jwt".into());
    assert_eq!(f.refused(&p).await, "client_assertion is not a JWT");
}

#[test]
fn a_basic_header_is_decoded_as_rfc_6749_says() {
    use base64::Engine as _;
    let encode = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    assert_eq!(
        decode_basic_authorization(&encode("rp-basic:s%3Acr+t%25")).expect("decodes"),
        ("rp-basic".to_string(), "s:cr t%".to_string())
    );
    assert_eq!(
        decode_basic_authorization(&encode("a:b:c")).expect("decodes"),
        ("a".to_string(), "b:c".to_string())
    );
    for bad in [
        "Bearer abc".to_string(),
        "Basic !!!".to_string(),
        encode("no-colon"),
        encode("a:%zz"),
    ] {
        assert!(decode_basic_authorization(&bad).is_err(), "{bad}");
    }
}

#[test]
fn presented_credentials_never_print_secrets() {
    let p = PresentedCredentials {
        basic: Some(("rp".into(), "top-secret-1".into())),
        form_client_id: Some("rp".into()),
        form_client_secret: Some("top-secret-2".into()),
        assertion_type: None,
        assertion: Some("top-secret-3".into()),
    };
    let shown = format!("{p:?}");
    assert!(!shown.contains("top-secret"), "{shown}");
    assert!(shown.contains("rp"));
}
