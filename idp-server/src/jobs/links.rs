//! Confirmation, reset and email-change links that expired or were used more than a
//! grace period ago. Within the grace a visitor of the link still reads why it no
//! longer works ("scaduto", "già usato"); after it the link is simply unknown, and the
//! personal data of an unconfirmed registration is gone.

use std::time::Duration;

use idp_core::directory::now;

use super::Job;

/// Expired or used links are kept this long.
pub const GRACE_SECS: i64 = 7 * 24 * 3600;

pub const JOB: Job = Job {
    name: "expired-links",
    every: Duration::from_secs(3600),
    run: |state| Box::pin(async move { state.store.delete_links_before(now() - GRACE_SECS).await }),
};
