//! Storage traits of the domain. One sqlx implementation ([`sql::SqlStore`]) serves both
//! SQLite (the embedded default) and PostgreSQL (production); the traits keep the
//! domain free of SQL and let the server hold one `Arc<dyn Store>`.

pub mod sql;

use async_trait::async_trait;

use crate::Result;
use crate::account::{AccountId, Username};
use crate::client::{Client, ClientId};
use crate::directory::Account;
use crate::fiscal_code::FiscalCode;
use crate::keys::{SigningAlgorithm, SigningKey};
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

/// The OIDC signing keys (see [`crate::keys`]). Private keys are stored as they are:
/// access to the database is access to the keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// A taken kid is `CoreError::Conflict("kid")`.
    async fn insert_key(&self, key: &SigningKey) -> Result<()>;
    /// Every stored key, retired or not.
    async fn list_keys(&self) -> Result<Vec<SigningKey>>;
    /// Sets `retire_at` on the keys of `algorithm` that have none and whose `sign_from`
    /// is before the given one (the keys a rotation supersedes).
    async fn retire_keys_before(
        &self,
        sign_from: i64,
        retire_at: i64,
        algorithm: SigningAlgorithm,
    ) -> Result<()>;
    /// Removes the keys whose `retire_at` is at or before `now`; returns how many.
    async fn delete_retired_keys(&self, now: i64) -> Result<u64>;
}

/// The registered OAuth/OIDC clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts a new client; a taken id is `CoreError::Conflict("client_id")`.
    async fn insert_client(&self, client: &Client) -> Result<()>;
    async fn client_by_id(&self, id: &ClientId) -> Result<Option<Client>>;
    /// Every client, by id.
    async fn list_clients(&self) -> Result<Vec<Client>>;
    /// True when there was such a client.
    async fn delete_client(&self, id: &ClientId) -> Result<bool>;
    /// Replaces everything but the id and creation time; `NotFound("client")` when absent.
    async fn update_client(&self, client: &Client) -> Result<()>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    AccountStore
    + OutboxStore
    + crate::audit::AuditStore
    + crate::enablement::EnablementStore
    + crate::role::RoleStore
    + ClientStore
    + KeyStore
    + crate::grant::GrantStore
    + crate::link::LinkStore
    + crate::mail_queue::MailQueueStore
    + crate::registration::ConsentStore
    + Send
    + Sync
{
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;
}
