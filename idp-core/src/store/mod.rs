//! Storage traits of the domain. One sqlx implementation ([`sql::SqlStore`]) serves both
//! SQLite (the embedded default) and PostgreSQL (production); the traits keep the
//! domain free of SQL and let the server hold one `Arc<dyn Store>`.

pub mod sql;

use async_trait::async_trait;

use crate::Result;
use crate::account::{AccountId, Username};
use crate::directory::Account;
use crate::fiscal_code::FiscalCode;
use crate::mail::{OutgoingMail, StoredMail};
use crate::password::PasswordHash;

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts a new account. A taken username or fiscal code is
    /// `CoreError::Conflict("username")` / `Conflict("fiscal_code")`.
    async fn insert_account(&self, account: &Account) -> Result<()>;
    async fn account_by_id(&self, id: &AccountId) -> Result<Option<Account>>;
    async fn account_by_username(&self, username: &Username) -> Result<Option<Account>>;
    async fn account_by_fiscal_code(&self, fiscal_code: &FiscalCode) -> Result<Option<Account>>;
    /// Usernames equal to `base` or `base` followed by digits, for numbering a new one.
    async fn usernames_like(&self, base: &str) -> Result<Vec<String>>;
    /// Saves the profile fields (names, birth data, emails, kind, status).
    async fn update_profile(&self, account: &Account) -> Result<()>;
    /// Replaces the password, moving the previous hash into the history and keeping
    /// only the newest `keep_history` entries there.
    async fn replace_password(
        &self,
        id: &AccountId,
        hash: &PasswordHash,
        must_change: bool,
        expires_at: Option<i64>,
        keep_history: usize,
    ) -> Result<()>;
    /// Stores a new hash of the same password (argon2 parameters changed): no history.
    async fn rehash_password(&self, id: &AccountId, hash: &PasswordHash) -> Result<()>;
    /// The previous password hashes, newest first.
    async fn password_history(&self, id: &AccountId, limit: usize) -> Result<Vec<PasswordHash>>;
    async fn count_accounts(&self) -> Result<i64>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    async fn push_mail(&self, mail: &OutgoingMail) -> Result<()>;
    /// The newest messages first.
    async fn list_mail(&self, limit: i64) -> Result<Vec<StoredMail>>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store: AccountStore + OutboxStore + Send + Sync {
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;
}
