//! The enablement hook: a service (Istanze OnLine) that needs its own steps before
//! first use gets the person during login, runs them, and records the outcome here.
//! The state is per account and per service, and appears as the `enablement` claim
//! in the ID token and userinfo of that service's clients only.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnablementStatus {
    Active,
    Pending,
    Revoked,
}

impl EnablementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnablementStatus::Active => "active",
            EnablementStatus::Pending => "pending",
            EnablementStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(EnablementStatus::Active),
            "pending" => Some(EnablementStatus::Pending),
            "revoked" => Some(EnablementStatus::Revoked),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enablement {
    pub account_id: String,
    pub service: String,
    pub status: EnablementStatus,
    /// The client that recorded it.
    pub updated_by: String,
    pub updated_at: i64,
}

#[async_trait]
pub trait EnablementStore: Send + Sync {
    async fn enablement(&self, account_id: &str, service: &str) -> Result<Option<Enablement>>;
    async fn put_enablement(&self, enablement: &Enablement) -> Result<()>;
}

/// The `enablement` claim for a service: `none` when nothing was ever recorded.
pub fn claim(service: &str, found: Option<&Enablement>) -> Value {
    json!({
        "service": service,
        "status": found.map(|e| e.status.as_str()).unwrap_or("none"),
    })
}

/// A service name as clients declare it: lowercase letters, digits and hyphens.
pub fn valid_service(service: &str) -> bool {
    !service.is_empty()
        && service.len() <= 64
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The signed request the IdP sends the service's `enablement_uri` (a JWS with
/// `typ: enablement+jwt`, verified with the IdP's JWKS).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnablementRequest {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub service: String,
    /// The identity assurance of the sign-in: the session's `acr`.
    pub assurance: String,
    pub amr: Vec<String>,
    /// Where the service sends the browser back when its steps are done.
    pub resume: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_says_none_before_anything_is_recorded() {
        assert_eq!(claim("istanze-online", None)["status"], "none");
        let e = Enablement {
            account_id: "a".into(),
            service: "istanze-online".into(),
            status: EnablementStatus::Pending,
            updated_by: "istanze-online".into(),
            updated_at: 0,
        };
        assert_eq!(claim("istanze-online", Some(&e))["status"], "pending");
    }

    #[test]
    fn service_names_are_simple() {
        assert!(valid_service("istanze-online"));
        assert!(!valid_service("Istanze Online"));
        assert!(!valid_service(""));
        assert!(!valid_service("../x"));
    }
}
