//! OAuth/OIDC clients: the relying parties registered with the IdP. A [`Client`] that
//! exists has passed registration, so its redirect URIs, grants and authentication
//! method agree with one another; the endpoints read clients through the cached
//! [`ClientRegistry`] and authenticate them with [`authenticate_client`].

mod auth;
mod registry;

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use serde::{Deserialize, Serialize};

use crate::directory::now;
use crate::secret::{Secret, TokenHash, generate_token};
use crate::{CoreError, Result};

pub use self::auth::{
    ClientAuthError, JWT_BEARER_ASSERTION_TYPE, PresentedCredentials, authenticate_client,
    decode_basic_authorization,
};
pub use self::registry::ClientRegistry;

/// A client identifier: 1 to 128 characters of `A-Z a-z 0-9 . _ -`, so that it is safe
/// in URLs, logs, cache keys and JWT claims as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(value: &str) -> Result<ClientId> {
        let valid = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(ClientId(value.to_string()))
        } else {
            Err(CoreError::Invalid(
                "client_id: must be 1 to 128 characters of A-Z a-z 0-9 . _ -".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self> {
        ClientId::parse(&value)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for ClientId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        ClientId::parse(s)
    }
}

/// How a client proves its identity at the token, introspection and revocation
/// endpoints (the `token_endpoint_auth_method` of OIDC registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// A public client (a native or browser application): no credentials.
    None,
}

impl ClientAuthMethod {
    pub const ALL: [ClientAuthMethod; 4] = [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::PrivateKeyJwt,
        ClientAuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
            ClientAuthMethod::None => "none",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == value)
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "auth_method: unknown {value:?} (client_secret_basic, client_secret_post, \
                     private_key_jwt or none)"
                ))
            })
    }

    /// True for the methods that present a shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
        )
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ClientAuthMethod {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The OAuth grants a client may use at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == value)
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "grant_types: unknown {value:?} (authorization_code, refresh_token or \
                     client_credentials)"
                ))
            })
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// What the access tokens issued to a client are. A JWT (RFC 9068) can be checked by
/// a resource server on its own with the JWKS; an opaque token is the same claims sealed
/// with a key only the IdP holds, that only the IdP opens (introspection, userinfo), so
/// it reveals nothing and needs no signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    #[default]
    Jwt,
    Opaque,
}

impl AccessTokenFormat {
    pub const ALL: [AccessTokenFormat; 2] = [AccessTokenFormat::Jwt, AccessTokenFormat::Opaque];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessTokenFormat::Jwt => "jwt",
            AccessTokenFormat::Opaque => "opaque",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == value)
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "access_token_format: unknown {value:?} (jwt or opaque)"
                ))
            })
    }
}

impl fmt::Display for AccessTokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for AccessTokenFormat {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A registered client. Only the hash of its secret is kept: the secret itself is shown
/// once, at registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub secret_hash: Option<TokenHash>,
    pub auth_method: ClientAuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub grant_types: Vec<GrantType>,
    /// Public keys for `private_key_jwt`, as a JWK set (`{"keys": [...]}`).
    pub jwks: Option<serde_json::Value>,
    /// The service whose enablement (abilitazione) the IdP checks for this client,
    /// e.g. `istanze-online`.
    pub service: Option<String>,
    /// Where the IdP sends the browser for the enablement step.
    pub enablement_uri: Option<String>,
    /// What its access tokens are (every grant: code, refresh, client credentials).
    pub access_token_format: AccessTokenFormat,
    pub created_at: i64,
}

/// What an administrator (or the configuration) asks to register.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClient {
    pub id: ClientId,
    pub name: String,
    pub auth_method: ClientAuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub grant_types: Vec<GrantType>,
    pub jwks: Option<serde_json::Value>,
    pub service: Option<String>,
    pub enablement_uri: Option<String>,
    pub access_token_format: AccessTokenFormat,
}

impl Client {
    /// Validates a registration and, for the secret methods, generates the client's
    /// secret: returned here once, stored only as its hash.
    pub fn register(new: NewClient) -> Result<(Client, Option<Secret>)> {
        new.validate()?;
        let secret = new.auth_method.uses_secret().then(generate_token);
        let client = Client::from_new(new, secret.as_ref().map(Secret::hash));
        Ok((client, secret))
    }

    /// Registration with a secret chosen in advance: for the development and test
    /// clients of the configuration, whose relying parties must know their secret.
    pub fn register_with_secret(new: NewClient, secret: &Secret) -> Result<Client> {
        new.validate()?;
        if !new.auth_method.uses_secret() {
            return Err(CoreError::Invalid(format!(
                "secret: a client using {} has no secret",
                new.auth_method
            )));
        }
        if secret.expose().is_empty() {
            return Err(CoreError::Invalid("secret: must not be empty".into()));
        }
        Ok(Client::from_new(new, Some(secret.hash())))
    }

    fn from_new(new: NewClient, secret_hash: Option<TokenHash>) -> Client {
        let mut grant_types = Vec::with_capacity(new.grant_types.len());
        for grant in new.grant_types {
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        Client {
            id: new.id,
            name: new.name.trim().to_string(),
            secret_hash,
            auth_method: new.auth_method,
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            backchannel_logout_uri: new.backchannel_logout_uri,
            grant_types,
            jwks: new.jwks,
            service: new.service,
            enablement_uri: new.enablement_uri,
            access_token_format: new.access_token_format,
            created_at: now(),
        }
    }

    /// A public client (auth method `none`): it holds no credentials.
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Exact string comparison, as OAuth 2.0 Security BCP requires: no normalisation,
    /// no prefix or pattern matching.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|u| u == uri)
    }

    /// The registered JWK set, when it parses (registration checked that it does).
    pub fn jwk_set(&self) -> Option<JwkSet> {
        self.jwks
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

impl NewClient {
    /// The registration rules; each refusal names the field at fault.
    pub fn validate(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(invalid("name: must be 1 to 200 characters"));
        }
        for uri in &self.redirect_uris {
            check_uri("redirect_uris", uri)?;
        }
        for uri in &self.post_logout_redirect_uris {
            check_uri("post_logout_redirect_uris", uri)?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            check_uri("backchannel_logout_uri", uri)?;
        }
        if let Some(uri) = &self.enablement_uri {
            check_uri("enablement_uri", uri)?;
        }
        self.check_grants()?;
        self.check_jwks()?;
        self.check_service()
    }

    fn check_grants(&self) -> Result<()> {
        let has = |g| self.grant_types.contains(&g);
        if self.grant_types.is_empty() {
            return Err(invalid("grant_types: at least one is required"));
        }
        if self.auth_method == ClientAuthMethod::None && has(GrantType::ClientCredentials) {
            return Err(invalid(
                "grant_types: a public client (auth_method none) may not use client_credentials",
            ));
        }
        if has(GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(invalid(
                "redirect_uris: at least one is required for authorization_code",
            ));
        }
        if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
            return Err(invalid(
                "grant_types: refresh_token requires authorization_code",
            ));
        }
        Ok(())
    }

    fn check_jwks(&self) -> Result<()> {
        let Some(jwks) = &self.jwks else {
            if self.auth_method == ClientAuthMethod::PrivateKeyJwt {
                return Err(invalid("jwks: required for private_key_jwt"));
            }
            return Ok(());
        };
        if self.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(invalid("jwks: only a private_key_jwt client has keys"));
        }
        // Private members of a JWK (d, p, q, ...) mean someone pasted the private key.
        let keys = jwks.get("keys").and_then(|k| k.as_array());
        if keys.is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some())) {
            return Err(invalid(
                "jwks: holds a private key (member d); register the public keys only",
            ));
        }
        let set: JwkSet = serde_json::from_value(jwks.clone())
            .map_err(|e| CoreError::Invalid(format!("jwks: not a JWK set: {e}")))?;
        if set.keys.is_empty() {
            return Err(invalid("jwks: must hold at least one key"));
        }
        for key in &set.keys {
            match &key.algorithm {
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
                AlgorithmParameters::RSA(_) => {}
                _ => {
                    return Err(invalid(
                        "jwks: only EC P-256 (ES256) and RSA (RS256) keys are accepted",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_service(&self) -> Result<()> {
        if let Some(service) = &self.service {
            let valid = !service.is_empty()
                && service.len() <= 64
                && service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(invalid("service: must be 1 to 64 characters of a-z 0-9 -"));
            }
        } else if self.enablement_uri.is_some() {
            return Err(invalid("enablement_uri: requires service"));
        }
        Ok(())
    }
}

fn invalid(message: &str) -> CoreError {
    CoreError::Invalid(message.to_string())
}

/// Absolute, no fragment, no credentials; https, or http on the loopback host only
/// (development relying parties). Custom schemes are refused: every client of this IdP
/// is a web application.
fn check_uri(field: &str, uri: &str) -> Result<()> {
    let refuse = |why: &str| Err(CoreError::Invalid(format!("{field}: {uri:?} {why}")));
    let Ok(parsed) = url::Url::parse(uri) else {
        return refuse("is not an absolute URL");
    };
    if parsed.fragment().is_some() || uri.contains('#') {
        return refuse("has a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return refuse("holds credentials");
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "https" => refuse("has no host"),
        "http" if matches!(parsed.host_str(), Some("localhost" | "127.0.0.1")) => Ok(()),
        "http" => refuse("uses http, allowed only for localhost and 127.0.0.1"),
        _ => refuse("must use https"),
    }
}

#[cfg(test)]
mod tests;
