//! Roles an administrator grants to accounts (`school_operator`: the school staff who
//! record the in-person recognition for Istanze OnLine). Services read them from the
//! `roles` claim; the IdP itself gives them no power.

use async_trait::async_trait;

use crate::{CoreError, Result};

/// The roles this deployment knows; granting any other is refused, so a typo cannot
/// create a role no service checks.
pub const KNOWN_ROLES: [&str; 1] = ["school_operator"];

pub fn check_role(role: &str) -> Result<()> {
    if KNOWN_ROLES.contains(&role) {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "unknown role {role:?}; known roles: {}",
            KNOWN_ROLES.join(", ")
        )))
    }
}

#[async_trait]
pub trait RoleStore: Send + Sync {
    /// The account's roles, sorted.
    async fn roles_of(&self, account_id: &str) -> Result<Vec<String>>;
    /// The account and its roles (sorted) in one query: what the ID token and userinfo
    /// are made from.
    async fn account_with_roles(
        &self,
        id: &crate::account::AccountId,
    ) -> Result<Option<(crate::directory::Account, Vec<String>)>>;
    /// Idempotent.
    async fn grant_role(&self, account_id: &str, role: &str) -> Result<()>;
    /// True when the account had the role.
    async fn revoke_role(&self, account_id: &str, role: &str) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_known_roles_can_be_granted() {
        assert!(super::check_role("school_operator").is_ok());
        assert!(super::check_role("admin").is_err());
    }
}
