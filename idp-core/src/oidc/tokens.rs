//! The token service: authorization codes (single use, in the cache), grants and
//! rotating refresh tokens (durable, in storage), access tokens (signed JWTs per RFC
//! 9068, or opaque tokens, the same claims sealed with a key only the IdP holds, as the
//! client chose) and ID tokens, introspection (RFC 7662) and revocation (RFC 7009), and
//! the back-channel logout token. Revocation is visible at once on every instance:
//! revoked grants and access-token ids are marked in the shared cache for as long as a
//! token they cover could live.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{OAuthError, account_claims, half_hash, has_scope, pkce_matches};
use crate::account::AccountId;
use crate::cache::{Cache, put_json, take_json};
use crate::claims_cache::AccountClaimsCache;
use crate::client::{AccessTokenFormat, Client, GrantType};
use crate::directory::{Account, now};
use crate::grant::{Grant, Rotated, Rotation};
use crate::keys::{KeyRing, TokenError, VerifyOptions};
use crate::secret::{Secret, TokenHash, generate_token};
use crate::store::Store;
use crate::{CoreError, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    /// Longest a grant (and so a refresh-token family) lives.
    pub grant_ttl_secs: i64,
    /// How long `/userinfo` serves an account from memory: the longest a change made by
    /// another process (admin CLI, another instance) takes to show there. 0: no cache.
    pub userinfo_cache_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 300,
            id_token_ttl_secs: 300,
            refresh_token_ttl_secs: 8 * 3600,
            code_ttl_secs: 60,
            grant_ttl_secs: 30 * 24 * 3600,
            userinfo_cache_secs: 5,
        }
    }
}

/// What an authorization code stands for, from `/authorize` to `/token`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub account_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub sid: String,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    /// The grant the exchange creates; known in advance so that a replayed code can
    /// revoke what the first exchange issued.
    pub grant_id: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The tokens are bearer credentials: `Debug` shows that they are there, not what they are.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |t: &Option<String>| t.as_ref().map(|_| "***");
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("id_token", &hidden(&self.id_token))
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("scope", &self.scope)
            .finish()
    }
}

/// The claims of our access tokens (RFC 9068 plus `gid`, the grant): signed into a JWT,
/// or stored in the cache under the hash of an opaque token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default)]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gid: Option<String>,
}

#[derive(Clone)]
pub struct TokenService {
    issuer: String,
    settings: TokenSettings,
    keys: KeyRing,
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    verified: Arc<VerifiedTokens>,
}

/// How many verified access tokens are remembered (each a few hundred bytes).
const VERIFIED_TOKENS_CAPACITY: usize = 10_000;

/// Access tokens whose signature (or seal) and claims this instance has verified, by the
/// SHA-256 of the token, so that a resource server calling introspection or userinfo
/// with the same token again does not cost another signature check. An entry is used
/// only before the token's `exp` and while the key that signed or sealed it is
/// published; revocation is not cached here: it is checked on every request, through
/// the shared cache's marks (`Cache::any_marked`).
struct VerifiedTokens {
    tokens: quick_cache::sync::Cache<[u8; 32], Arc<VerifiedToken>>,
}

struct VerifiedToken {
    claims: Arc<AccessClaims>,
    kid: String,
}

impl VerifiedTokens {
    fn new() -> Self {
        Self {
            tokens: quick_cache::sync::Cache::new(VERIFIED_TOKENS_CAPACITY),
        }
    }
}

/// A compact JWS has three dot-separated parts; our opaque tokens are base64url, which
/// has no dot.
fn is_jwt(token: &str) -> bool {
    token.contains('.')
}

/// The longest opaque token we could have issued: sealed claims of a few hundred bytes,
/// with room for long scopes and identifiers.
const MAX_OPAQUE_TOKEN_LEN: usize = 4096;

/// The shape of a token of [`KeyRing::seal`]: base64url, of a plausible length. Anything
/// else cannot be one of our opaque tokens, and is refused before any decryption.
fn is_opaque_shaped(token: &str) -> bool {
    (48..=MAX_OPAQUE_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn code_key(code: &str) -> String {
    format!("code:{}", TokenHash::of(code).as_str())
}
fn used_code_key(code: &str) -> String {
    format!("code-used:{}", TokenHash::of(code).as_str())
}
fn revoked_grant_key(gid: &str) -> String {
    format!("revoked-grant:{gid}")
}
fn revoked_jti_key(jti: &str) -> String {
    format!("revoked-jti:{jti}")
}

/// The checks of a presented code against its record, each with its precise error.
fn check_code(
    record: &CodeRecord,
    client: &Client,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if record.client_id != client.id.as_str() {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if redirect_uri != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&record.code_challenge, code_verifier) {
        (Some(challenge), Some(verifier)) if !pkce_matches(verifier, challenge) => {
            Err(OAuthError::invalid_grant(
                "PKCE verification failed: code_verifier does not match code_challenge",
            ))
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier given but the authorization request had no code_challenge",
        )),
        _ => Ok(()),
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0).max(1))
}

impl TokenService {
    pub fn new(
        issuer: String,
        settings: TokenSettings,
        keys: KeyRing,
        store: Arc<dyn Store>,
        cache: Arc<dyn Cache>,
    ) -> Self {
        Self {
            issuer,
            settings,
            keys,
            store,
            cache,
            verified: Arc::new(VerifiedTokens::new()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Stores a code for the record and returns it (256-bit, single use).
    pub async fn issue_code(&self, record: &CodeRecord) -> Result<String> {
        let code = generate_token();
        put_json(
            &*self.cache,
            &code_key(code.expose()),
            record,
            secs(self.settings.code_ttl_secs),
        )
        .await?;
        Ok(code.expose().to_string())
    }

    /// The `authorization_code` grant, each check with its precise error.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(OAuthError::unauthorized_client(
                "the client may not use the authorization_code grant",
            ));
        }
        let Some(record) = take_json::<CodeRecord>(&*self.cache, &code_key(code)).await? else {
            return Err(self.replayed_or_unknown_code(code).await?);
        };
        // Remember the code as used for as long as the tokens it gave could live: also
        // when a check below refuses it (a code is spent once presented).
        let used_key = used_code_key(code);
        let mark_used = self.cache.put(
            &used_key,
            record.grant_id.as_bytes(),
            secs(self.settings.access_token_ttl_secs.max(600)),
        );
        if let Err(refusal) = check_code(&record, client, redirect_uri, code_verifier) {
            mark_used.await?;
            return Err(refusal);
        }
        let at = now();
        let grant = Grant {
            id: record.grant_id.clone(),
            account_id: record.account_id.clone(),
            client_id: record.client_id.clone(),
            scope: record.scope.clone(),
            sid: Some(record.sid.clone()),
            auth_time: record.auth_time,
            acr: record.acr.clone(),
            amr: record.amr.clone(),
            created_at: at,
            expires_at: at + self.settings.grant_ttl_secs,
            revoked_at: None,
        };
        // The first refresh token is stored with the grant, in the same statement.
        let refresh = client
            .allows_grant(GrantType::RefreshToken)
            .then(generate_token);
        let refresh_hash = refresh.as_ref().map(|t| t.hash());
        let refresh_row = refresh_hash.as_ref().map(|h| {
            (
                h.as_str(),
                (at + self.settings.refresh_token_ttl_secs).min(grant.expires_at),
            )
        });
        // The mark, the grant and the read of the account for the ID token are
        // independent: sent together, one round trip each to the cache and the database
        // instead of one after the other.
        let account_id = AccountId::from_string(grant.account_id.clone());
        let wants_id_token = has_scope(&grant.scope, "openid");
        let account = async {
            if wants_id_token {
                self.store.account_with_roles(&account_id).await
            } else {
                Ok(None)
            }
        };
        let ((), (), account) = tokio::try_join!(
            mark_used,
            self.store
                .insert_grant_with_refresh_token(&grant, refresh_row),
            account
        )?;
        if account.is_none() && wants_id_token {
            return Err(OAuthError::invalid_grant("the account no longer exists"));
        }
        self.issue_tokens(
            client,
            &grant,
            record.nonce.as_deref(),
            refresh,
            account.map(Box::new),
        )
        .await
    }

    async fn replayed_or_unknown_code(&self, code: &str) -> Result<OAuthError> {
        if let Some(gid) = self.cache.get(&used_code_key(code)).await? {
            let gid = String::from_utf8_lossy(&gid).to_string();
            self.revoke_grant(&gid).await?;
            tracing::warn!(grant = %gid, "authorization code replayed: grant revoked");
            crate::audit::record_for_grant(&*self.store, crate::audit::AuditKind::CodeReuse, &gid)
                .await;
            return Ok(OAuthError::invalid_grant(
                "the code was already used; the tokens issued with it are revoked",
            ));
        }
        Ok(OAuthError::invalid_grant("the code is unknown or expired"))
    }

    /// The `refresh_token` grant with rotation and reuse detection.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows_grant(GrantType::RefreshToken) {
            return Err(OAuthError::unauthorized_client(
                "the client may not use the refresh_token grant",
            ));
        }
        let hash = TokenHash::of(refresh_token);
        let replacement = generate_token();
        let replacement_hash = replacement.hash();
        let rotation = Rotation {
            old_hash: hash.as_str(),
            new_hash: replacement_hash.as_str(),
            client_id: client.id.as_str(),
            now: now(),
            ttl_secs: self.settings.refresh_token_ttl_secs,
        };
        // One storage step spends the token, stores its replacement (only for an active
        // grant of this client) and reads the grant.
        let (mut grant, stored, account) = match self.store.rotate_refresh_token(&rotation).await? {
            Rotated::Fresh {
                grant,
                new_expires_at,
                account,
            } => (*grant, new_expires_at.is_some(), account),
            Rotated::Reused { grant_id } => {
                // Only revoke when the presenter is the grant's client: another client
                // must not be able to revoke someone else's grant.
                if let Some(g) = self.store.grant_by_id(&grant_id).await?
                    && g.client_id == client.id.as_str()
                {
                    self.revoke_grant(&grant_id).await?;
                    tracing::warn!(grant = %grant_id, "refresh token reused: family revoked");
                    crate::audit::record_for_grant(
                        &*self.store,
                        crate::audit::AuditKind::RefreshTokenReuse,
                        &grant_id,
                    )
                    .await;
                }
                return Err(OAuthError::invalid_grant(
                    "the refresh token was already used; its family is revoked",
                ));
            }
            Rotated::Expired => {
                return Err(OAuthError::invalid_grant("the refresh token has expired"));
            }
            Rotated::Unknown => {
                return Err(OAuthError::invalid_grant("the refresh token is unknown"));
            }
        };
        if grant.client_id != client.id.as_str() {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if !grant.is_active(now()) || !stored {
            return Err(OAuthError::invalid_grant(
                "the grant was revoked or expired",
            ));
        }
        if let Some(scope) = scope {
            // A refresh may narrow the scope, never widen it. (When it tries to widen
            // it, the replacement stored above is never handed out: nobody holds it,
            // and it expires unused.)
            let narrowed = super::normalize_scope(scope);
            if narrowed
                .split_ascii_whitespace()
                .any(|s| !has_scope(&grant.scope, s))
            {
                return Err(OAuthError::invalid_scope(
                    "the requested scope exceeds the original grant",
                ));
            }
            grant.scope = narrowed;
        }
        self.issue_tokens(client, &grant, None, Some(replacement), account)
            .await
    }

    /// The token response for a grant. `stored_refresh` is a refresh token already
    /// stored for the grant (a rotation's replacement, or the code exchange's first one,
    /// stored with the grant); without one, a new one is stored when the
    /// client may refresh. `account` is the grant's account and roles when already read.
    async fn issue_tokens(
        &self,
        client: &Client,
        grant: &Grant,
        nonce: Option<&str>,
        stored_refresh: Option<Secret>,
        account: Option<Box<(Account, Vec<String>)>>,
    ) -> Result<TokenResponse, OAuthError> {
        let at = now();
        let access_token = self
            .access_token(&grant.account_id, client, &grant.scope, Some(grant))
            .await?;
        let id_token = if has_scope(&grant.scope, "openid") {
            let (account, roles) = match account {
                Some(read) => *read,
                None => self
                    .store
                    .account_with_roles(&AccountId::from_string(grant.account_id.clone()))
                    .await?
                    .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?,
            };
            let mut claims = account_claims(&account, &grant.scope);
            add_roles(&mut claims, roles, &grant.scope);
            if let Some(service) = client.service.as_deref() {
                claims.insert(
                    "enablement".into(),
                    self.enablement_claim(&grant.account_id, service).await?,
                );
            }
            claims.insert("iss".into(), json!(self.issuer));
            claims.insert("sub".into(), json!(grant.account_id));
            claims.insert("aud".into(), json!(client.id.as_str()));
            claims.insert("azp".into(), json!(client.id.as_str()));
            claims.insert("iat".into(), json!(at));
            claims.insert("exp".into(), json!(at + self.settings.id_token_ttl_secs));
            claims.insert("auth_time".into(), json!(grant.auth_time));
            claims.insert("acr".into(), json!(grant.acr));
            claims.insert("amr".into(), json!(grant.amr));
            if let Some(sid) = &grant.sid {
                claims.insert("sid".into(), json!(sid));
            }
            if let Some(nonce) = nonce {
                claims.insert("nonce".into(), json!(nonce));
            }
            claims.insert("at_hash".into(), json!(half_hash(&access_token)));
            Some(self.keys.sign(&Value::Object(claims), None, None)?)
        } else {
            None
        };
        let refresh_token = if let Some(token) = stored_refresh {
            Some(token.expose().to_string())
        } else if client.allows_grant(GrantType::RefreshToken) {
            let token = generate_token();
            let expires_at = (at + self.settings.refresh_token_ttl_secs).min(grant.expires_at);
            self.store
                .insert_refresh_token(token.hash().as_str(), &grant.id, expires_at)
                .await?;
            Some(token.expose().to_string())
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl_secs,
            id_token,
            refresh_token,
            scope: grant.scope.clone(),
        })
    }

    /// An access token in the client's format: a signed JWT, or an opaque token, the
    /// same claims sealed ([`KeyRing::seal`]): nothing is stored for either.
    async fn access_token(
        &self,
        sub: &str,
        client: &Client,
        scope: &str,
        grant: Option<&Grant>,
    ) -> Result<String, OAuthError> {
        let claims = self.access_claims(sub, client, scope, grant);
        match client.access_token_format {
            AccessTokenFormat::Jwt => Ok(self.keys.sign(&claims, Some("at+jwt"), None)?),
            AccessTokenFormat::Opaque => {
                let plaintext = serde_json::to_vec(&claims)
                    .map_err(|e| CoreError::Crypto(format!("access-token claims: {e}")))?;
                Ok(self.keys.seal(&plaintext)?)
            }
        }
    }

    fn access_claims(
        &self,
        sub: &str,
        client: &Client,
        scope: &str,
        grant: Option<&Grant>,
    ) -> AccessClaims {
        let at = now();
        AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: client.id.as_str().to_string(),
            exp: at + self.settings.access_token_ttl_secs,
            iat: at,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.id.as_str().to_string(),
            scope: scope.to_string(),
            auth_time: grant.map(|g| g.auth_time),
            acr: grant.map(|g| g.acr.clone()),
            sid: grant.and_then(|g| g.sid.clone()),
            gid: grant.map(|g| g.id.clone()),
        }
    }

    /// The `client_credentials` grant: a token about the client itself.
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if !client.allows_grant(GrantType::ClientCredentials) || client.is_public() {
            return Err(OAuthError::unauthorized_client(
                "the client may not use the client_credentials grant",
            ));
        }
        // OpenID scopes describe a person; a client acting for itself gets none.
        let scope = scope
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter(|s| !super::SCOPES_SUPPORTED.contains(s))
            .collect::<Vec<_>>()
            .join(" ");
        let access_token = self
            .access_token(client.id.as_str(), client, &scope, None)
            .await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl_secs,
            id_token: None,
            refresh_token: None,
            scope,
        })
    }

    /// Verifies an access token, not revoked and unexpired: a JWT by its signature,
    /// issuer, type and expiry; an opaque token by its seal, issuer and expiry. What was
    /// verified before is remembered until the token's `exp`; the revocation checks run
    /// every time.
    pub async fn verify_access_token(&self, token: &str) -> Result<Arc<AccessClaims>, OAuthError> {
        let claims = if is_jwt(token) {
            self.verified_access_claims(token)?
        } else {
            self.opaque_access_claims(token).ok_or_else(|| {
                OAuthError::invalid_token("the access token is unknown or expired")
            })?
        };
        // Both revocation marks in one cache call (on Redis, none at all while both are
        // remembered unmarked).
        let jti_key = revoked_jti_key(&claims.jti);
        let grant_key = claims.gid.as_deref().map(revoked_grant_key);
        let mut marks = vec![jti_key.as_str()];
        marks.extend(grant_key.as_deref());
        if self.cache.any_marked(&marks).await? {
            return Err(OAuthError::invalid_token("the access token was revoked"));
        }
        Ok(claims)
    }

    /// What a JWT access token of ours must be: our issuer, `typ` at+jwt, not expired
    /// (no leeway).
    fn access_token_options(&self) -> VerifyOptions {
        VerifyOptions {
            issuer: self.issuer.clone(),
            audience: None,
            typ: Some("at+jwt".into()),
            leeway_secs: 0,
            validate_exp: true,
        }
    }

    /// The claims of a well-signed, unexpired access token of ours, from memory when the
    /// same token was verified before.
    fn verified_access_claims(&self, token: &str) -> Result<Arc<AccessClaims>, OAuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.remembered(&digest) {
            return Ok(known);
        }
        let (claims, kid) = self
            .keys
            .verify_keyed::<AccessClaims>(token, &self.access_token_options())
            .map_err(|e| {
                OAuthError::invalid_token(match e {
                    TokenError::Expired => "the access token has expired",
                    TokenError::UnknownKid => "the access token is signed by an unknown key",
                    TokenError::InvalidSignature => "the access token signature is invalid",
                    _ => "the access token is invalid",
                })
            })?;
        Ok(self.remember(digest, claims, kid))
    }

    /// The claims of a token verified before, by its SHA-256, while they still hold: the
    /// same rule as the full check (leeway 0: valid while `exp` is not in the past), and
    /// the key that signed or sealed it still published.
    fn remembered(&self, digest: &[u8; 32]) -> Option<Arc<AccessClaims>> {
        let known = self.verified.tokens.get(digest)?;
        if known.claims.exp >= now() && self.keys.publishes(&known.kid) {
            return Some(Arc::clone(&known.claims));
        }
        self.verified.tokens.remove(digest);
        None
    }

    fn remember(&self, digest: [u8; 32], claims: AccessClaims, kid: String) -> Arc<AccessClaims> {
        let claims = Arc::new(claims);
        self.verified.tokens.insert(
            digest,
            Arc::new(VerifiedToken {
                claims: Arc::clone(&claims),
                kid,
            }),
        );
        claims
    }

    /// The claims of an unexpired opaque access token of ours, from memory when the same
    /// token was opened before; `None` when it does not open (never issued by us, a
    /// changed character, its key retired) or has expired.
    fn opaque_access_claims(&self, token: &str) -> Option<Arc<AccessClaims>> {
        if !is_opaque_shaped(token) {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.remembered(&digest) {
            return Some(known);
        }
        let (plaintext, kid) = self.keys.open(token)?;
        let claims = serde_json::from_slice::<AccessClaims>(&plaintext).ok()?;
        // Exp to the second, as for a JWT (leeway 0); the issuer, as for a JWT, since
        // instances with other issuers may share the keys.
        if claims.exp < now() || claims.iss != self.issuer {
            return None;
        }
        Some(self.remember(digest, claims, kid))
    }

    /// The `enablement` claim of an account for a service.
    pub async fn enablement_claim(&self, account_id: &str, service: &str) -> Result<Value> {
        let found = self.store.enablement(account_id, service).await?;
        Ok(crate::enablement::claim(service, found.as_ref()))
    }

    /// The userinfo document; `service` is the asking client's, for its enablement. The
    /// account comes from `accounts` (kept for a few seconds, see
    /// [`crate::claims_cache`]); the enablement is read every time.
    pub async fn userinfo(
        &self,
        claims: &AccessClaims,
        service: Option<&str>,
        accounts: &AccountClaimsCache,
    ) -> Result<Value, OAuthError> {
        if !has_scope(&claims.scope, "openid") {
            return Err(OAuthError::invalid_token(
                "the access token was not issued with the openid scope",
            ));
        }
        let found = accounts
            .get(&AccountId::from_string(claims.sub.clone()))
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the account no longer exists"))?;
        let mut out = account_claims(&found.account, &claims.scope);
        add_roles(&mut out, found.roles.clone(), &claims.scope);
        if let Some(service) = service {
            out.insert(
                "enablement".into(),
                self.enablement_claim(&claims.sub, service).await?,
            );
        }
        out.insert("sub".into(), json!(claims.sub));
        Ok(Value::Object(out))
    }

    /// RFC 7662: `{"active": false}` for anything not currently valid. A
    /// `token_type_hint` only decides which kind is looked for first: a token that is
    /// not of the hinted kind is looked for as the other (RFC 7662 §2.1).
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
        hint: Option<&str>,
    ) -> Result<Value> {
        let found = if hint == Some("refresh_token") {
            match self.introspect_refresh_token(client, token).await? {
                Some(found) => Some(found),
                None => self.introspect_access_token(token).await,
            }
        } else {
            match self.introspect_access_token(token).await {
                Some(found) => Some(found),
                None => self.introspect_refresh_token(client, token).await?,
            }
        };
        Ok(found.unwrap_or_else(|| json!({ "active": false })))
    }

    /// The introspection answer for a valid access token, `None` for anything else.
    async fn introspect_access_token(&self, token: &str) -> Option<Value> {
        let c = self.verify_access_token(token).await.ok()?;
        Some(json!({
            "active": true,
            "iss": &c.iss,
            "sub": &c.sub,
            "aud": &c.aud,
            "client_id": &c.client_id,
            "scope": &c.scope,
            "exp": c.exp,
            "iat": c.iat,
            "jti": &c.jti,
            "token_type": "Bearer",
            "acr": &c.acr,
            "auth_time": c.auth_time,
        }))
    }

    /// The introspection answer for a usable refresh token of `client` (one is only
    /// described to the client it belongs to), `None` for anything else.
    async fn introspect_refresh_token(
        &self,
        client: &Client,
        token: &str,
    ) -> Result<Option<Value>> {
        let hash = TokenHash::of(token);
        let Some(gid) = self.store.grant_of_refresh_token(hash.as_str()).await? else {
            return Ok(None);
        };
        let Some(grant) = self.store.grant_by_id(&gid).await? else {
            return Ok(None);
        };
        if grant.client_id != client.id.as_str() || !grant.is_active(now()) {
            return Ok(None);
        }
        Ok(self
            .store
            .use_refresh_token_peek(hash.as_str(), now())
            .await?
            .map(|exp| {
                json!({
                    "active": true,
                    "iss": self.issuer,
                    "sub": grant.account_id,
                    "client_id": grant.client_id,
                    "scope": grant.scope,
                    "exp": exp,
                    "token_type": "refresh_token",
                })
            }))
    }

    /// RFC 7009. Unknown or foreign tokens are answered like revoked ones (200), so
    /// the endpoint reveals nothing. As for introspection, `token_type_hint` only
    /// orders the search (RFC 7009 §2.1).
    pub async fn revoke(&self, client: &Client, token: &str, hint: Option<&str>) -> Result<()> {
        if hint == Some("refresh_token") {
            if !self.revoke_refresh_token(client, token).await? {
                self.revoke_access_token(client, token).await?;
            }
        } else if !self.revoke_access_token(client, token).await? {
            self.revoke_refresh_token(client, token).await?;
        }
        Ok(())
    }

    /// Revokes `token` when it is an access token of `client`; true when it is one of
    /// our access tokens at all (another client's is left alone, and not looked up
    /// further).
    async fn revoke_access_token(&self, client: &Client, token: &str) -> Result<bool> {
        if !is_jwt(token) {
            let Some(c) = self.opaque_access_claims(token) else {
                return Ok(false);
            };
            if c.client_id == client.id.as_str() {
                // The mark is what every instance checks, as for a JWT.
                self.mark_access_token_revoked(&c).await?;
            }
            return Ok(true);
        }
        let Ok(c) = self
            .keys
            .verify::<AccessClaims>(token, &self.access_token_options())
        else {
            return Ok(false);
        };
        if c.client_id == client.id.as_str() {
            self.mark_access_token_revoked(&c).await?;
        }
        Ok(true)
    }

    /// The `jti` mark every instance checks, kept until the token would have expired.
    async fn mark_access_token_revoked(&self, claims: &AccessClaims) -> Result<()> {
        let left = (claims.exp - now()).max(1);
        self.cache
            .mark(&revoked_jti_key(&claims.jti), secs(left))
            .await
    }

    /// Revokes the grant of `token` when it is a refresh token of `client`; true when it
    /// is a refresh token we know.
    async fn revoke_refresh_token(&self, client: &Client, token: &str) -> Result<bool> {
        let hash = TokenHash::of(token);
        let Some(gid) = self.store.grant_of_refresh_token(hash.as_str()).await? else {
            return Ok(false);
        };
        if let Some(grant) = self.store.grant_by_id(&gid).await?
            && grant.client_id == client.id.as_str()
        {
            self.revoke_grant(&gid).await?;
        }
        Ok(true)
    }

    /// Revokes a grant: its refresh tokens stop working and its access tokens fail
    /// introspection and userinfo at once.
    pub async fn revoke_grant(&self, gid: &str) -> Result<()> {
        self.store.revoke_grant(gid, now()).await?;
        self.mark_grant_revoked(gid).await
    }

    async fn mark_grant_revoked(&self, gid: &str) -> Result<()> {
        self.cache
            .mark(
                &revoked_grant_key(gid),
                secs(self.settings.access_token_ttl_secs + 60),
            )
            .await
    }

    /// Revokes every grant of an SSO session (at logout).
    pub async fn revoke_session_grants(&self, sid: &str) -> Result<()> {
        for gid in self.store.revoke_grants_of_session(sid, now()).await? {
            self.mark_grant_revoked(&gid).await?;
        }
        Ok(())
    }

    /// The OpenID Back-Channel Logout token for one client.
    pub fn logout_token(&self, client_id: &str, sub: &str, sid: &str) -> Result<String> {
        let at = now();
        let claims = json!({
            "iss": self.issuer,
            "aud": client_id,
            "sub": sub,
            "sid": sid,
            "iat": at,
            "exp": at + 120,
            "jti": uuid::Uuid::new_v4().to_string(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        self.keys.sign(&claims, Some("logout+jwt"), None)
    }

    /// Verifies an ID token we issued (an `id_token_hint`); expiry is not required.
    pub fn verify_id_token_hint(&self, token: &str) -> Result<Value, OAuthError> {
        let options = VerifyOptions {
            issuer: self.issuer.clone(),
            audience: None,
            typ: None,
            leeway_secs: 0,
            validate_exp: false,
        };
        self.keys.verify::<Value>(token, &options).map_err(|_| {
            OAuthError::invalid_request("id_token_hint is not a valid ID token of this provider")
        })
    }
}

/// The `roles` claim, with the `profile` scope, when the account has any.
fn add_roles(claims: &mut serde_json::Map<String, Value>, roles: Vec<String>, scope: &str) {
    if has_scope(scope, "profile") && !roles.is_empty() {
        claims.insert("roles".into(), json!(roles));
    }
}

impl From<TokenError> for OAuthError {
    fn from(e: TokenError) -> Self {
        OAuthError::invalid_token(format!("{e:?}"))
    }
}

impl From<CoreError> for Box<OAuthError> {
    fn from(e: CoreError) -> Self {
        Box::new(e.into())
    }
}

#[cfg(test)]
mod tests;
