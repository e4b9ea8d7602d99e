//! OpenID Connect as a domain: the protocol errors, authentication context classes,
//! scopes and the claims they release, PKCE, and the token service that issues,
//! rotates, introspects and revokes tokens. No HTTP here: the server parses requests
//! and maps `OAuthError` to responses.

pub mod tokens;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::directory::Account;

/// A password sign-in.
pub const ACR_PASSWORD: &str = "urn:istruzione:iam:acr:password";
pub const ACR_SPID_L1: &str = "https://www.spid.gov.it/SpidL1";
pub const ACR_SPID_L2: &str = "https://www.spid.gov.it/SpidL2";
pub const ACR_SPID_L3: &str = "https://www.spid.gov.it/SpidL3";
pub const ACR_VALUES: [&str; 4] = [ACR_PASSWORD, ACR_SPID_L1, ACR_SPID_L2, ACR_SPID_L3];

/// Orders the acr values: a SPID level is stronger than a password, and L3 > L2 > L1.
pub fn acr_level(acr: &str) -> Option<u8> {
    match acr {
        ACR_PASSWORD => Some(0),
        ACR_SPID_L1 => Some(1),
        ACR_SPID_L2 => Some(2),
        ACR_SPID_L3 => Some(3),
        _ => None,
    }
}

/// Whether a session with `acr` meets a request's `acr_values`: the request lists
/// acceptable values, so the lowest known one is the floor.
pub fn acr_satisfies(session_acr: &str, requested: &[String]) -> bool {
    let floor = requested.iter().filter_map(|a| acr_level(a)).min();
    match (floor, acr_level(session_acr)) {
        (None, _) => true,
        (Some(floor), Some(have)) => have >= floor,
        (Some(_), None) => false,
    }
}

pub const SCOPES_SUPPORTED: [&str; 4] = ["openid", "profile", "email", "offline_access"];

pub const CLAIMS_SUPPORTED: [&str; 19] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "name",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "fiscal_code",
    "email",
    "roles",
    "enablement",
];

/// An OAuth 2.0 / OIDC protocol error with its registered code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

macro_rules! oauth_errors {
    ($($name:ident),* $(,)?) => {
        impl OAuthError {
            $(
                pub fn $name(description: impl Into<String>) -> Self {
                    OAuthError { code: stringify!($name), description: description.into() }
                }
            )*
        }
    };
}

oauth_errors!(
    invalid_request,
    invalid_client,
    invalid_grant,
    unauthorized_client,
    unsupported_grant_type,
    unsupported_response_type,
    invalid_scope,
    access_denied,
    login_required,
    interaction_required,
    server_error,
    temporarily_unavailable,
    invalid_token,
);

impl From<crate::CoreError> for OAuthError {
    fn from(e: crate::CoreError) -> Self {
        if e.is_unavailable() {
            // The database or the cache is down: a retry later may succeed (503).
            tracing::error!(error = %e, "backing service unavailable during an OAuth request");
            return OAuthError::temporarily_unavailable(
                "the service is temporarily unavailable; retry later",
            );
        }
        tracing::error!(error = %e, "internal error during an OAuth request");
        OAuthError::server_error("internal error")
    }
}

/// Checks a PKCE verifier (RFC 7636) against the S256 challenge it must hash to.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A PKCE challenge is the base64url SHA-256 of a verifier: 43 characters.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The left half of the SHA-256 of a token, base64url (`at_hash`, for ES256 and RS256).
pub fn half_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// Keeps the supported scopes of a request, in order, without duplicates.
pub fn normalize_scope(requested: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for s in requested.split_ascii_whitespace() {
        if SCOPES_SUPPORTED.contains(&s) && !kept.contains(&s) {
            kept.push(s);
        }
    }
    kept.join(" ")
}

/// The person's claims that a scope releases (ID token and userinfo).
pub fn account_claims(account: &Account, scope: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    if has_scope(scope, "profile") {
        claims.insert("name".into(), json!(account.full_name()));
        claims.insert("given_name".into(), json!(account.given_name));
        claims.insert("family_name".into(), json!(account.family_name));
        claims.insert(
            "preferred_username".into(),
            json!(account.username.as_str()),
        );
        if let Some(d) = account.birth_date {
            claims.insert("birthdate".into(), json!(d.format("%Y-%m-%d").to_string()));
        }
        if let Some(sex) = account.sex {
            let gender = match sex {
                crate::fiscal_code::Sex::Male => "male",
                crate::fiscal_code::Sex::Female => "female",
            };
            claims.insert("gender".into(), json!(gender));
        }
        if let Some(fc) = &account.fiscal_code {
            claims.insert("fiscal_code".into(), json!(fc.as_str()));
        }
        claims.insert("account_kind".into(), json!(account.kind.as_str()));
    }
    if has_scope(scope, "email")
        && let Some(email) = account.reference_email()
    {
        claims.insert("email".into(), json!(email.as_str()));
        // Both addresses are confirmed before they are stored.
        claims.insert("email_verified".into(), json!(true));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        // RFC 7636 appendix B.
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn a_spid_level_is_needed_when_a_client_asks_for_one() {
        let l2 = vec![ACR_SPID_L2.to_string()];
        assert!(!acr_satisfies(ACR_PASSWORD, &l2));
        assert!(!acr_satisfies(ACR_SPID_L1, &l2));
        assert!(acr_satisfies(ACR_SPID_L2, &l2));
        assert!(acr_satisfies(ACR_SPID_L3, &l2));
        assert!(acr_satisfies(ACR_PASSWORD, &[]));
        assert!(acr_satisfies(ACR_PASSWORD, &["urn:unknown".to_string()]));
    }

    #[test]
    fn scopes_are_filtered_and_deduplicated() {
        assert_eq!(
            normalize_scope("openid  email openid bogus profile"),
            "openid email profile"
        );
    }
}
