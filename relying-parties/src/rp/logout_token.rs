//! The checks on an OpenID Back-Channel Logout token, one named function per reason to
//! refuse it, called in order by `verify`: a JWS with `typ: logout+jwt`, signed by a
//! key of the IdP's JWKS, for us, from our issuer, a logout event, a `sid`, no `nonce`,
//! issued recently, and never seen before.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Tolerated clock skew between the IdP and us.
const SKEW_SECS: i64 = 60;
/// A logout token issued longer ago than this is refused (the IdP sends at once and
/// retries within seconds).
pub const MAX_AGE_SECS: i64 = 300;

/// Why a logout token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the logout token is not a well-formed JWS")]
    Malformed,
    #[error("the logout token's typ is not logout+jwt")]
    WrongType,
    #[error("the logout token names no key of the IdP's JWKS")]
    UnknownKey,
    #[error("the logout token's signature does not verify")]
    BadSignature,
    #[error("the logout token comes from another issuer")]
    WrongIssuer,
    #[error("the logout token is not for this client")]
    WrongAudience,
    #[error("the logout token has expired")]
    Expired,
    #[error("the logout token carries no back-channel logout event")]
    NotALogoutEvent,
    #[error("the logout token names no sid")]
    NoSid,
    #[error("a logout token must not carry a nonce")]
    HasNonce,
    #[error("the logout token was not issued recently")]
    Stale,
    #[error("the logout token has no jti")]
    NoJti,
    #[error("the logout token was already used")]
    Replayed,
}

/// What a valid logout token tells us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutClaims {
    pub sid: String,
    pub sub: Option<String>,
    pub jti: String,
}

/// What the token must say, and when "now" is.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub now: i64,
}

/// The IdP's published keys.
#[derive(Clone, Debug)]
pub struct Keys {
    set: Arc<JwkSet>,
}

impl Keys {
    pub fn new(set: JwkSet) -> Keys {
        Keys { set: Arc::new(set) }
    }

    pub async fn fetch(http: &reqwest::Client, jwks_uri: &str) -> anyhow::Result<Keys> {
        let set: JwkSet = http
            .get(jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("JWKS at {jwks_uri}: {e}"))?;
        Ok(Keys::new(set))
    }

    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.set.find(kid)
    }
}

/// The `jti`s of the logout tokens accepted, each kept until a token carrying it would
/// be refused as stale anyway.
#[derive(Default)]
pub struct JtiCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl JtiCache {
    /// Records `jti` until `forget_at`; false if it was already there.
    pub(crate) fn remember(&self, jti: &str, forget_at: i64, now: i64) -> bool {
        let mut seen = self.seen.lock().expect("jti lock");
        seen.retain(|_, until| *until > now);
        if seen.contains_key(jti) {
            return false;
        }
        seen.insert(jti.to_string(), forget_at);
        true
    }
}

/// Runs every check in order; the token's `jti` is remembered only when all pass.
pub fn verify(
    token: &str,
    keys: &Keys,
    expected: &Expected<'_>,
    seen: &JtiCache,
) -> Result<LogoutClaims, Refusal> {
    let header = read_header(token)?;
    check_type(&header)?;
    let jwk = find_key(&header, keys)?;
    let claims = check_signature(token, &header, jwk)?;
    check_issuer(&claims, expected.issuer)?;
    check_audience(&claims, expected.client_id)?;
    check_expiry(&claims, expected.now)?;
    check_event(&claims)?;
    let sid = check_sid(&claims)?;
    check_no_nonce(&claims)?;
    let iat = check_issued_recently(&claims, expected.now)?;
    let jti = check_jti_unseen(&claims, iat, expected.now, seen)?;
    Ok(LogoutClaims {
        sid,
        sub: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        jti,
    })
}

/// The key id of a token, for a JWKS refresh when we do not know it.
pub fn key_id(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

fn read_header(token: &str) -> Result<Header, Refusal> {
    jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)
}

/// RFC 8417 / BCL §2.4: `logout+jwt`, compared without case and an optional
/// `application/` prefix (RFC 7515 §4.1.9).
fn check_type(header: &Header) -> Result<(), Refusal> {
    let typ = header.typ.as_deref().unwrap_or("").to_ascii_lowercase();
    let typ = typ.strip_prefix("application/").unwrap_or(&typ);
    if typ == "logout+jwt" {
        Ok(())
    } else {
        Err(Refusal::WrongType)
    }
}

fn find_key<'k>(header: &Header, keys: &'k Keys) -> Result<&'k Jwk, Refusal> {
    let kid = header.kid.as_deref().ok_or(Refusal::UnknownKey)?;
    keys.find(kid).ok_or(Refusal::UnknownKey)
}

/// Verifies the signature with the key's own algorithm (never the one the token
/// proposes when the key names another), and returns the claims unchecked.
fn check_signature(token: &str, header: &Header, jwk: &Jwk) -> Result<Value, Refusal> {
    const ASYMMETRIC: [Algorithm; 6] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
    ];
    if !ASYMMETRIC.contains(&header.alg) {
        return Err(Refusal::BadSignature);
    }
    if let Some(alg) = jwk.common.key_algorithm
        && alg.to_string().parse::<Algorithm>().ok() != Some(header.alg)
    {
        return Err(Refusal::BadSignature);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::UnknownKey)?;
    let mut validation = Validation::new(header.alg);
    // The claims are checked one by one below, each with its own reason.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| Refusal::BadSignature)
}

fn check_issuer(claims: &Value, issuer: &str) -> Result<(), Refusal> {
    if claims.get("iss").and_then(Value::as_str) == Some(issuer) {
        Ok(())
    } else {
        Err(Refusal::WrongIssuer)
    }
}

fn check_audience(claims: &Value, client_id: &str) -> Result<(), Refusal> {
    let ours = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if ours {
        Ok(())
    } else {
        Err(Refusal::WrongAudience)
    }
}

fn check_expiry(claims: &Value, now: i64) -> Result<(), Refusal> {
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp + SKEW_SECS > now => Ok(()),
        _ => Err(Refusal::Expired),
    }
}

fn check_event(claims: &Value) -> Result<(), Refusal> {
    if claims
        .get("events")
        .and_then(|e| e.get(LOGOUT_EVENT))
        .is_some_and(Value::is_object)
    {
        Ok(())
    } else {
        Err(Refusal::NotALogoutEvent)
    }
}

/// We end sessions by IdP session id, so a token without `sid` (sub only) is refused.
fn check_sid(claims: &Value) -> Result<String, Refusal> {
    match claims.get("sid").and_then(Value::as_str) {
        Some(sid) if !sid.is_empty() => Ok(sid.to_string()),
        _ => Err(Refusal::NoSid),
    }
}

/// BCL §2.4: a nonce would make an ID token look like a logout token and vice versa.
fn check_no_nonce(claims: &Value) -> Result<(), Refusal> {
    if claims.get("nonce").is_some() {
        Err(Refusal::HasNonce)
    } else {
        Ok(())
    }
}

fn check_issued_recently(claims: &Value, now: i64) -> Result<i64, Refusal> {
    match claims.get("iat").and_then(Value::as_i64) {
        Some(iat) if iat <= now + SKEW_SECS && now - iat <= MAX_AGE_SECS => Ok(iat),
        _ => Err(Refusal::Stale),
    }
}

fn check_jti_unseen(
    claims: &Value,
    iat: i64,
    now: i64,
    seen: &JtiCache,
) -> Result<String, Refusal> {
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) if !jti.is_empty() => jti,
        _ => return Err(Refusal::NoJti),
    };
    if seen.remember(jti, iat + MAX_AGE_SECS + SKEW_SECS, now) {
        Ok(jti.to_string())
    } else {
        Err(Refusal::Replayed)
    }
}

#[cfg(test)]
mod tests;
