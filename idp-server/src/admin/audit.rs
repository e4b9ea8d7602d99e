//! `idp-server audit`: the security events in the configured database, one a line,
//! oldest first, narrowed by account, client, kind and time.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use idp_core::audit::{AuditFilter, AuditKind, AuditStore};
use idp_core::store::sql::SqlStore;

use crate::config::Config;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[arg(long, short, env = "IDP_CONFIG")]
    pub config: PathBuf,
    /// Only the events of this account id.
    #[arg(long)]
    pub account: Option<String>,
    /// Only the events of this client id.
    #[arg(long)]
    pub client: Option<String>,
    /// Only events of this kind (login_success, login_failure, lockout, password_change,
    /// password_reset, email_change, logout, refresh_token_reuse, code_reuse,
    /// enablement_change, recognition, spid_login, client_added, client_updated,
    /// client_removed, key_rotated).
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<AuditKind>,
    /// Events at or after this time (RFC 3339, e.g. 2026-09-01T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Events before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// At most this many events (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

fn parse_kind(s: &str) -> Result<AuditKind, String> {
    s.parse().map_err(|e: idp_core::CoreError| e.to_string())
}

fn parse_time(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| format!("not an RFC 3339 time ({e})"))
}

impl AuditArgs {
    pub fn filter(&self) -> AuditFilter {
        AuditFilter {
            account_id: self.account.clone(),
            client_id: self.client.clone(),
            kind: self.kind,
            since: self.since,
            until: self.until,
            limit: self.limit,
        }
    }
}

/// Runs the command against the configured database, printing to stdout.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let store = SqlStore::connect(&config.database.url, 1)
        .await
        .context("database: cannot connect")?;
    store
        .migrate()
        .await
        .context("database: migrations failed")?;
    let mut out = std::io::stdout().lock();
    let result = print(&store, &args.filter(), &mut out).await;
    store.close().await;
    result
}

/// Writes the matching events, one a line (the tests read `out`).
pub async fn print(
    store: &dyn AuditStore,
    filter: &AuditFilter,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for event in store.audit_events(filter).await? {
        writeln!(out, "{event}")?;
    }
    Ok(())
}
