//! Signing keys past their `retire_at`. Each instance's key reload drops them too; this
//! job also covers a database whose servers are all stopped but one that never reloads.

use std::time::Duration;

use idp_core::directory::now;

use super::Job;

pub const JOB: Job = Job {
    name: "retired-signing-keys",
    every: Duration::from_secs(3600),
    run: |state| Box::pin(async move { state.store.delete_retired_keys(now()).await }),
};
