//! Expired and revoked grants, with their refresh tokens (deleted by cascade). A grant
//! revoked less than a grace period ago stays, so a token of it that is still running
//! is refused as revoked rather than unknown.

use std::time::Duration;

use idp_core::directory::now;

use super::Job;

/// Revoked grants are kept this long after revocation (and expired ones after expiry).
pub const GRACE_SECS: i64 = 24 * 3600;

pub const JOB: Job = Job {
    name: "expired-grants",
    every: Duration::from_secs(3600),
    run: |state| {
        Box::pin(async move { state.store.delete_expired_grants(now() - GRACE_SECS).await })
    },
};
