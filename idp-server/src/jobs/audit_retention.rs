//! Audit events older than `[audit] retention_days`.

use std::time::Duration;

use idp_core::directory::now;

use super::Job;

pub const JOB: Job = Job {
    name: "audit-retention",
    every: Duration::from_secs(3600),
    run: |state| {
        Box::pin(async move {
            let keep = i64::from(state.config.audit.retention_days) * 86_400;
            state.store.delete_audit_before(now() - keep).await
        })
    },
};
