//! Choosing a new password: the forced change after a temporary password (before any
//! session exists) and "Modifica password" in the Area riservata. Both apply the
//! policy and report every broken rule at once.

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::directory::{Account, Directory};
use crate::password::Password;

/// A sign-in that stopped at the forced change, kept in the cache under a random
/// token held by the browser: it proves the temporary password was typed, and carries
/// the parked authorization request to resume afterwards.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingChange {
    pub account_id: String,
    pub req: String,
}

/// The Italian reasons the new password cannot be set (empty: it can).
pub async fn problems(
    directory: &Directory,
    account: &Account,
    new: &str,
    repeat: &str,
) -> Result<Vec<String>> {
    if new.is_empty() {
        return Ok(vec!["Inserisci la nuova password".into()]);
    }
    let password = Password::new(new.to_string());
    let mut problems: Vec<String> = directory
        .check_policy(account, &password)
        .await?
        .iter()
        .map(|v| v.message_it())
        .collect();
    if new != repeat {
        problems.push("Le due password non coincidono".into());
    }
    Ok(problems)
}
