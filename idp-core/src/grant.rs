//! Grants and refresh tokens. A grant is what one code exchange gave one client for one
//! account; its refresh tokens rotate on every use, and presenting one that was
//! already used (a stolen copy, or the legitimate one after the thief's use) revokes
//! the grant with every token in it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Result;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub account_id: String,
    pub client_id: String,
    pub scope: String,
    pub sid: Option<String>,
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Grant {
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What presenting a refresh token found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshUse {
    /// First use: the token is now spent; the grant may issue a new one.
    Fresh {
        grant_id: String,
    },
    /// Already used: someone is replaying it.
    Reused {
        grant_id: String,
    },
    Expired,
    Unknown,
}

/// One refresh-token rotation, as [`GrantStore::rotate_refresh_token`] does it.
#[derive(Clone, Copy, Debug)]
pub struct Rotation<'a> {
    /// Hash of the token presented.
    pub old_hash: &'a str,
    /// Hash of the token that replaces it.
    pub new_hash: &'a str,
    /// The client presenting the token: the new one is stored only for its own grant.
    pub client_id: &'a str,
    pub now: i64,
    /// The new token expires this long after `now`, or with its grant if sooner.
    pub ttl_secs: i64,
}

/// What a rotation found.
#[derive(Clone, Debug)]
pub enum Rotated {
    /// The presented token was unused and is now spent. `new_expires_at` is set when
    /// the new token was stored: the grant is active and is the presenting client's;
    /// otherwise nothing was stored.
    Fresh {
        grant: Box<Grant>,
        new_expires_at: Option<i64>,
        /// The grant's account and its roles (for the ID token), when the store read
        /// them in the same step (PostgreSQL); otherwise `None`, and the caller reads
        /// them if it needs them.
        account: Option<Box<(crate::directory::Account, Vec<String>)>>,
    },
    /// Already used: someone is replaying it.
    Reused {
        grant_id: String,
    },
    Expired,
    Unknown,
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn insert_grant(&self, grant: &Grant) -> Result<()>;
    /// Stores a grant with its first refresh token (hash, expiry), or alone with
    /// `None`: one statement on PostgreSQL (one round trip), one transaction on SQLite.
    async fn insert_grant_with_refresh_token(
        &self,
        grant: &Grant,
        refresh: Option<(&str, i64)>,
    ) -> Result<()>;
    async fn grant_by_id(&self, id: &str) -> Result<Option<Grant>>;
    /// Revokes a grant; false when it was unknown or already revoked.
    async fn revoke_grant(&self, id: &str, at: i64) -> Result<bool>;
    /// Revokes every grant issued within an SSO session; returns their ids.
    async fn revoke_grants_of_session(&self, sid: &str, at: i64) -> Result<Vec<String>>;
    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        expires_at: i64,
    ) -> Result<()>;
    /// Spends a refresh token atomically: of two concurrent uses only one is `Fresh`.
    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse>;
    /// Spends a refresh token like [`GrantStore::use_refresh_token`] and, in the same
    /// step, stores its replacement and reads the grant: the `refresh_token` grant's
    /// storage work in one round trip and one commit where the database allows it.
    async fn rotate_refresh_token(&self, rotation: &Rotation<'_>) -> Result<Rotated>;
    /// The expiry of a refresh token that is still usable (unused, unexpired), without
    /// spending it (for introspection).
    async fn use_refresh_token_peek(&self, token_hash: &str, now: i64) -> Result<Option<i64>>;
    /// The grant a refresh token belongs to, used or not (for revocation).
    async fn grant_of_refresh_token(&self, token_hash: &str) -> Result<Option<String>>;
    /// Removes grants that expired or were revoked before `before`.
    async fn delete_expired_grants(&self, before: i64) -> Result<u64>;
}
