//! Queued mail that was never delivered within `[mail] keep_undelivered_hours` (its
//! links have expired by then), and what is left of mail given up on. Bodies carry
//! temporary passwords and links: they are kept no longer than delivery needs.

use std::time::Duration;

use idp_core::directory::now;

use super::Job;

pub const JOB: Job = Job {
    name: "undelivered-mail",
    every: Duration::from_secs(3600),
    run: |state| {
        Box::pin(async move {
            let keep = i64::try_from(state.config.mail.keep_undelivered_hours)
                .unwrap_or(i64::MAX / 7200)
                .saturating_mul(3600);
            state
                .store
                .delete_mail_before(now().saturating_sub(keep))
                .await
        })
    },
};
