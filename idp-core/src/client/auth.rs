//! Client authentication at the token, introspection and revocation endpoints: one
//! method per request, the one the client registered, checked as a list of named steps
//! that each fail with the precise reason (logged, and sent as `error_description`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{Client, ClientAuthMethod, ClientId, ClientRegistry};
use crate::CoreError;
use crate::cache::Cache;
use crate::directory::now;
use crate::secret::TokenHash;

/// The only `client_assertion_type` accepted (RFC 7523).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A client assertion is single-use and short-lived: its `exp` may be at most this far
/// ahead, which also bounds how long its `jti` is remembered.
const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Clock skew tolerated between the client and the IdP.
const LEEWAY: i64 = 30;

/// What a request presents to authenticate its client, as the endpoint read it from
/// the `Authorization` header and the form.
#[derive(Clone, Default)]
pub struct PresentedCredentials {
    /// `client_secret_basic`: id and secret, already percent-decoded (see
    /// [`decode_basic_authorization`]).
    pub basic: Option<(String, String)>,
    pub form_client_id: Option<String>,
    pub form_client_secret: Option<String>,
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

impl fmt::Debug for PresentedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |present: bool| if present { "Some(***)" } else { "None" };
        f.debug_struct("PresentedCredentials")
            .field("basic_client_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("basic_secret", &hidden(self.basic.is_some()))
            .field("form_client_id", &self.form_client_id)
            .field(
                "form_client_secret",
                &hidden(self.form_client_secret.is_some()),
            )
            .field("assertion_type", &self.assertion_type)
            .field("assertion", &hidden(self.assertion.is_some()))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// OAuth `invalid_client`; the reason is for logs and `error_description`. When the
    /// request used the `Authorization` header the answer is 401 with
    /// `WWW-Authenticate: Basic`, else 400 (RFC 6749 §5.2).
    #[error("invalid_client: {0}")]
    InvalidClient(&'static str),
    /// Storage or cache failed: OAuth `server_error` (or 503 when unavailable).
    #[error("client authentication failed: {0}")]
    Internal(#[from] CoreError),
}

impl ClientAuthError {
    /// The OAuth `error` code.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            ClientAuthError::InvalidClient(_) => "invalid_client",
            ClientAuthError::Internal(_) => "server_error",
        }
    }
}

type AuthResult<T> = Result<T, ClientAuthError>;

fn refuse<T>(reason: &'static str) -> AuthResult<T> {
    Err(ClientAuthError::InvalidClient(reason))
}

/// Reads `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`
/// (RFC 6749 §2.3.1) into the decoded id and secret.
pub fn decode_basic_authorization(header: &str) -> AuthResult<(String, String)> {
    const MALFORMED: &str = "malformed Basic authorization header";
    let Some((scheme, encoded)) = header.trim().split_once(' ') else {
        return refuse(MALFORMED);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return refuse("Authorization header is not Basic");
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
        return refuse(MALFORMED);
    };
    match (form_urldecode(id), form_urldecode(secret)) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => refuse(MALFORMED),
    }
}

fn form_urldecode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Authenticates the client of a token, introspection or revocation request.
/// `audience` lists the `aud` values a `private_key_jwt` assertion may carry (the token
/// endpoint URL and the issuer); `replay` remembers the assertions' `jti`.
pub async fn authenticate_client(
    registry: &ClientRegistry,
    presented: &PresentedCredentials,
    audience: &[String],
    replay: &dyn Cache,
) -> AuthResult<Arc<Client>> {
    let method = presented_method(presented)?;
    let claimed = claimed_client_id(presented, method)?;
    let client = registered_client(registry, &claimed).await?;
    if client.auth_method != method {
        return refuse("authentication method is not the one registered for this client");
    }
    match method {
        ClientAuthMethod::ClientSecretBasic => {
            let (_, secret) = presented
                .basic
                .as_ref()
                .ok_or(ClientAuthError::InvalidClient(
                    "client_secret_basic without credentials",
                ))?;
            check_secret(&client, secret)?;
        }
        ClientAuthMethod::ClientSecretPost => {
            let secret = presented.form_client_secret.as_deref().unwrap_or_default();
            check_secret(&client, secret)?;
        }
        ClientAuthMethod::PrivateKeyJwt => {
            check_assertion(&client, presented, audience, replay).await?;
        }
        ClientAuthMethod::None => {}
    }
    Ok(client)
}

/// Exactly one method per request (RFC 6749 §2.3). A bare `client_id` is the `none`
/// method of a public client; alongside another method it must name the same client.
fn presented_method(p: &PresentedCredentials) -> AuthResult<ClientAuthMethod> {
    let used = [
        (p.basic.is_some(), ClientAuthMethod::ClientSecretBasic),
        (
            p.form_client_secret.is_some(),
            ClientAuthMethod::ClientSecretPost,
        ),
        (
            p.assertion.is_some() || p.assertion_type.is_some(),
            ClientAuthMethod::PrivateKeyJwt,
        ),
    ];
    let mut methods = used.iter().filter(|(on, _)| *on).map(|(_, m)| *m);
    match (methods.next(), methods.next()) {
        (Some(_), Some(_)) => refuse("multiple client authentication methods"),
        (Some(method), None) => Ok(method),
        (None, _) if p.form_client_id.is_some() => Ok(ClientAuthMethod::None),
        (None, _) => refuse("no client authentication"),
    }
}

fn claimed_client_id(p: &PresentedCredentials, method: ClientAuthMethod) -> AuthResult<String> {
    let from_credentials = match method {
        ClientAuthMethod::ClientSecretBasic => p.basic.as_ref().map(|(id, _)| id.clone()),
        ClientAuthMethod::PrivateKeyJwt => Some(assertion_subject(
            p.assertion.as_deref().unwrap_or_default(),
        )?),
        ClientAuthMethod::ClientSecretPost | ClientAuthMethod::None => None,
    };
    match (from_credentials, &p.form_client_id) {
        (Some(id), Some(form)) if &id != form => {
            refuse("client_id does not match the client credentials")
        }
        (Some(id), _) => Ok(id),
        (None, Some(form)) => Ok(form.clone()),
        (None, None) => refuse("client_id missing"),
    }
}

/// The `sub` of an assertion, read before verification only to find whose keys verify
/// it; verification then requires `iss` = `sub` = that client.
fn assertion_subject(assertion: &str) -> AuthResult<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: Option<String>,
    }
    let claims: Subject = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| ClientAuthError::InvalidClient("client_assertion is not a JWT"))?;
    claims.sub.ok_or(ClientAuthError::InvalidClient(
        "client_assertion has no sub",
    ))
}

async fn registered_client(registry: &ClientRegistry, claimed: &str) -> AuthResult<Arc<Client>> {
    let Ok(id) = ClientId::parse(claimed) else {
        return refuse("unknown client");
    };
    registry
        .get(&id)
        .await?
        .ok_or(ClientAuthError::InvalidClient("unknown client"))
}

/// Compares hashes in constant time: the stored value is a hash, so an early exit
/// would leak little, but nothing here should depend on how much of a guess matched.
fn check_secret(client: &Client, presented: &str) -> AuthResult<()> {
    let Some(stored) = &client.secret_hash else {
        return refuse("client has no secret");
    };
    let offered = TokenHash::of(presented);
    if bool::from(
        offered
            .as_str()
            .as_bytes()
            .ct_eq(stored.as_str().as_bytes()),
    ) {
        Ok(())
    } else {
        refuse("wrong client secret")
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    // Optional here so that a missing exp is reported by the validation, by name.
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// RFC 7523 §3 with OIDC Core §9: signed with a registered key, iss = sub = client_id,
/// aud naming this server, short-lived, and never seen before.
async fn check_assertion(
    client: &Client,
    p: &PresentedCredentials,
    audience: &[String],
    replay: &dyn Cache,
) -> AuthResult<()> {
    if p.assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION_TYPE) {
        return refuse("client_assertion_type must be jwt-bearer");
    }
    let Some(assertion) = p.assertion.as_deref() else {
        return refuse("client_assertion missing");
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| ClientAuthError::InvalidClient("client_assertion is not a JWT"))?;
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
        return refuse("client_assertion alg must be ES256 or RS256");
    }
    let key = assertion_key(client, header.kid.as_deref(), header.alg)?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = LEEWAY as u64;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client.id.as_str()]);
    validation.sub = Some(client.id.to_string());
    validation.set_audience(audience);
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| ClientAuthError::InvalidClient(assertion_error(e.kind())))?
        .claims;
    let Some(exp) = claims.exp else {
        return refuse("client_assertion lacks iss, sub, aud or exp");
    };
    let now = now();
    if exp > now + MAX_ASSERTION_LIFETIME + LEEWAY {
        return refuse("client_assertion exp is more than 5 minutes ahead");
    }
    if claims.iat.is_some_and(|iat| iat > now + LEEWAY) {
        return refuse("client_assertion iat is in the future");
    }
    let jti = claims.jti.unwrap_or_default();
    if jti.is_empty() || jti.len() > 256 {
        return refuse("client_assertion jti missing");
    }
    let key = format!("client-assertion:{}:{jti}", client.id);
    let ttl = Duration::from_secs(u64::try_from(exp + LEEWAY - now).unwrap_or(1).max(1));
    if !replay.put_if_absent(&key, b"1", ttl).await? {
        return refuse("client_assertion jti already used");
    }
    Ok(())
}

/// The registered key that verifies the assertion: the one named by `kid`, or the only
/// one when the assertion names none. Its type (and `alg`, when registered) must be
/// the assertion's algorithm, so that a key is never used with another algorithm.
fn assertion_key(client: &Client, kid: Option<&str>, alg: Algorithm) -> AuthResult<DecodingKey> {
    let Some(set) = client.jwk_set() else {
        return refuse("client has no usable jwks");
    };
    let jwk: &Jwk = match kid {
        Some(kid) => set.find(kid).ok_or(ClientAuthError::InvalidClient(
            "client_assertion kid is not in the client's jwks",
        ))?,
        None if set.keys.len() == 1 => &set.keys[0],
        None => return refuse("client_assertion has no kid and the client has several keys"),
    };
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        _ => false,
    };
    let registered_alg = jwk.common.key_algorithm;
    let alg_agrees = match registered_alg {
        None => true,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(_) => false,
    };
    if !fits || !alg_agrees {
        return refuse("client_assertion alg does not match the client's key");
    }
    DecodingKey::from_jwk(jwk)
        .map_err(|_| ClientAuthError::InvalidClient("client's jwks key is unusable"))
}

fn assertion_error(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "client_assertion expired",
        ErrorKind::ImmatureSignature => "client_assertion not yet valid (nbf)",
        ErrorKind::InvalidAudience => "client_assertion aud does not name this server",
        ErrorKind::InvalidIssuer => "client_assertion iss must be the client_id",
        ErrorKind::InvalidSubject => "client_assertion sub must be the client_id",
        ErrorKind::InvalidSignature => "client_assertion signature does not verify",
        ErrorKind::MissingRequiredClaim(_) => "client_assertion lacks iss, sub, aud or exp",
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            "client_assertion claims are malformed"
        }
        _ => "client_assertion is not valid",
    }
}
