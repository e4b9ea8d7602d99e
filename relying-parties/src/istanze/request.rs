//! The IdP's enablement request (`GET /abilitazione?request=JWS`), checked in order like
//! the logout token: `typ: enablement+jwt`, a key of the IdP's JWKS, our issuer, for
//! us, not expired, about our service, a `resume` URL at the IdP (the browser is sent
//! there, so anything else would be an open redirect), and a `jti` never seen before.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;

use crate::rp::logout_token::{JtiCache, Keys};

const SKEW_SECS: i64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the enablement request is not a well-formed JWS")]
    Malformed,
    #[error("the enablement request's typ is not enablement+jwt")]
    WrongType,
    #[error("the enablement request names no key of the IdP's JWKS")]
    UnknownKey,
    #[error("the enablement request's signature does not verify")]
    BadSignature,
    #[error("the enablement request comes from another issuer")]
    WrongIssuer,
    #[error("the enablement request is not for this client")]
    WrongAudience,
    #[error("the enablement request has expired")]
    Expired,
    #[error("the enablement request is about another service")]
    WrongService,
    #[error("the enablement request's resume URL is not at the IdP")]
    ForeignResume,
    #[error("the enablement request was already used")]
    Replayed,
}

/// What a valid request tells the service.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct EnablementRequest {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub service: String,
    /// The session's `acr`: a password sign-in, or a SPID level.
    pub assurance: String,
    pub resume: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl EnablementRequest {
    /// SPID users skip the in-person recognition at a school.
    pub fn is_spid(&self) -> bool {
        self.assurance.starts_with("https://www.spid.gov.it/")
    }
}

pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub service: &'a str,
    pub now: i64,
}

pub fn verify(
    token: &str,
    keys: &Keys,
    expected: &Expected<'_>,
    seen: &JtiCache,
) -> Result<EnablementRequest, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
    check_type(&header)?;
    let request = check_signature(token, &header, keys)?;
    check_issuer(&request, expected.issuer)?;
    check_audience(&request, expected.client_id)?;
    check_expiry(&request, expected.now)?;
    check_service(&request, expected.service)?;
    check_resume(&request, expected.issuer)?;
    if !seen.remember(&request.jti, request.exp + SKEW_SECS, expected.now) {
        return Err(Refusal::Replayed);
    }
    Ok(request)
}

fn check_type(header: &Header) -> Result<(), Refusal> {
    let typ = header.typ.as_deref().unwrap_or("").to_ascii_lowercase();
    match typ.strip_prefix("application/").unwrap_or(&typ) {
        "enablement+jwt" => Ok(()),
        _ => Err(Refusal::WrongType),
    }
}

fn check_signature(
    token: &str,
    header: &Header,
    keys: &Keys,
) -> Result<EnablementRequest, Refusal> {
    let kid = header.kid.as_deref().ok_or(Refusal::UnknownKey)?;
    let jwk = keys.find(kid).ok_or(Refusal::UnknownKey)?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(Refusal::BadSignature);
    }
    if let Some(alg) = jwk.common.key_algorithm
        && alg.to_string().parse::<Algorithm>().ok() != Some(header.alg)
    {
        return Err(Refusal::BadSignature);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Refusal::UnknownKey)?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    jsonwebtoken::decode::<EnablementRequest>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => Refusal::Malformed,
            _ => Refusal::BadSignature,
        })
}

fn check_issuer(r: &EnablementRequest, issuer: &str) -> Result<(), Refusal> {
    (r.iss == issuer).then_some(()).ok_or(Refusal::WrongIssuer)
}

fn check_audience(r: &EnablementRequest, client_id: &str) -> Result<(), Refusal> {
    (r.aud == client_id)
        .then_some(())
        .ok_or(Refusal::WrongAudience)
}

fn check_expiry(r: &EnablementRequest, now: i64) -> Result<(), Refusal> {
    (r.exp + SKEW_SECS > now)
        .then_some(())
        .ok_or(Refusal::Expired)
}

fn check_service(r: &EnablementRequest, service: &str) -> Result<(), Refusal> {
    (r.service == service)
        .then_some(())
        .ok_or(Refusal::WrongService)
}

fn check_resume(r: &EnablementRequest, issuer: &str) -> Result<(), Refusal> {
    let at_idp = r
        .resume
        .strip_prefix(issuer)
        .is_some_and(|rest| rest.starts_with('/'));
    at_idp.then_some(()).ok_or(Refusal::ForeignResume)
}

#[cfg(test)]
mod tests;
