//! The claims the services read: the IdP's own (`fiscal_code`, `account_kind`, `sid`,
//! `enablement`) on top of the standard ones, and the person they describe.

use openidconnect::AdditionalClaims;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The IdP's claims beyond the standard ones. `enablement` is kept as raw JSON and read
/// defensively: a malformed value means "not enabled", never a refused login.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ServiceClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiscal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enablement: Option<Value>,
    /// The account's roles (`school_operator`), with the `profile` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl AdditionalClaims for ServiceClaims {}

/// The state of the person's enablement for this service, as the IdP reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enablement {
    Active,
    Pending,
    Revoked,
    None,
}

impl Enablement {
    /// Reads `{"service": "...", "status": "..."}`; anything else, or a claim about
    /// another service, is `None`.
    pub fn from_claim(claim: Option<&Value>, service: &str) -> Enablement {
        let Some(object) = claim.and_then(Value::as_object) else {
            return Enablement::None;
        };
        if let Some(named) = object.get("service").and_then(Value::as_str)
            && named != service
        {
            return Enablement::None;
        }
        match object.get("status").and_then(Value::as_str) {
            Some("active") => Enablement::Active,
            Some("pending") => Enablement::Pending,
            Some("revoked") => Enablement::Revoked,
            _ => Enablement::None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Enablement::Active => "attiva",
            Enablement::Pending => "in attesa del riconoscimento",
            Enablement::Revoked => "revocata",
            Enablement::None => "non effettuata",
        }
    }
}

/// The signed-in person as the service shows them.
#[derive(Clone, Debug, Default)]
pub struct Person {
    pub sub: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub fiscal_code: Option<String>,
    pub email: Option<String>,
    pub birthdate: Option<String>,
    pub enablement: Option<Value>,
    pub roles: Vec<String>,
}

impl Person {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// "Nome Cognome", for the user menu.
    pub fn display_name(&self) -> String {
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => format!("{g} {f}"),
            _ => self.name.clone().unwrap_or_else(|| self.sub.clone()),
        }
    }

    pub fn initials(&self) -> String {
        self.display_name()
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .take(2)
            .collect::<String>()
            .to_uppercase()
    }

    /// Takes the values userinfo has, keeping ours where it has none.
    pub fn merge(&mut self, newer: Person) {
        fn take(mine: &mut Option<String>, theirs: Option<String>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.given_name, newer.given_name);
        take(&mut self.family_name, newer.family_name);
        take(&mut self.name, newer.name);
        take(&mut self.fiscal_code, newer.fiscal_code);
        take(&mut self.email, newer.email);
        take(&mut self.birthdate, newer.birthdate);
        if newer.enablement.is_some() {
            self.enablement = newer.enablement;
        }
        if !newer.roles.is_empty() {
            self.roles = newer.roles;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_enablement_claim_is_read_defensively() {
        let s = "istanze-online";
        let read = |v: Value| Enablement::from_claim(Some(&v), s);
        assert_eq!(
            read(json!({"service": s, "status": "active"})),
            Enablement::Active
        );
        assert_eq!(read(json!({"status": "pending"})), Enablement::Pending);
        assert_eq!(
            read(json!({"service": s, "status": "revoked"})),
            Enablement::Revoked
        );
        assert_eq!(
            read(json!({"service": "pago-in-rete", "status": "active"})),
            Enablement::None,
            "a claim about another service enables nothing"
        );
        assert_eq!(read(json!("active")), Enablement::None);
        assert_eq!(read(json!({"status": 1})), Enablement::None);
        assert_eq!(Enablement::from_claim(None, s), Enablement::None);
    }
}
