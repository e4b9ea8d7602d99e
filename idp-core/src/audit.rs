//! The audit log of security events (sign-ins, password changes, token reuse, client
//! and key administration), kept in storage for `[audit] retention_days` and read back
//! with `idp-server audit`. Recording never fails the action it describes: a write
//! that fails is logged with the whole event, so the log is the fallback.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;

use crate::{CoreError, Result};

/// What happened. The names are stable: they are stored and used as `--kind` filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    LoginSuccess,
    LoginFailure,
    Lockout,
    PasswordChange,
    PasswordReset,
    EmailChange,
    Logout,
    RefreshTokenReuse,
    CodeReuse,
    EnablementChange,
    Recognition,
    SpidLogin,
    ClientAdded,
    ClientUpdated,
    ClientRemoved,
    KeyRotated,
    /// A queued mail given up on after its last delivery attempt.
    MailUndeliverable,
}

impl AuditKind {
    pub const ALL: [AuditKind; 17] = [
        AuditKind::LoginSuccess,
        AuditKind::LoginFailure,
        AuditKind::Lockout,
        AuditKind::PasswordChange,
        AuditKind::PasswordReset,
        AuditKind::EmailChange,
        AuditKind::Logout,
        AuditKind::RefreshTokenReuse,
        AuditKind::CodeReuse,
        AuditKind::EnablementChange,
        AuditKind::Recognition,
        AuditKind::SpidLogin,
        AuditKind::ClientAdded,
        AuditKind::ClientUpdated,
        AuditKind::ClientRemoved,
        AuditKind::KeyRotated,
        AuditKind::MailUndeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSuccess => "login_success",
            AuditKind::LoginFailure => "login_failure",
            AuditKind::Lockout => "lockout",
            AuditKind::PasswordChange => "password_change",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::EmailChange => "email_change",
            AuditKind::Logout => "logout",
            AuditKind::RefreshTokenReuse => "refresh_token_reuse",
            AuditKind::CodeReuse => "code_reuse",
            AuditKind::EnablementChange => "enablement_change",
            AuditKind::Recognition => "recognition",
            AuditKind::SpidLogin => "spid_login",
            AuditKind::ClientAdded => "client_added",
            AuditKind::ClientUpdated => "client_updated",
            AuditKind::ClientRemoved => "client_removed",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::MailUndeliverable => "mail_undeliverable",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
                CoreError::Invalid(format!(
                    "unknown audit kind {s:?} (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// One security event.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub kind: AuditKind,
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// What else explains the event (never a secret): a JSON object.
    pub detail: Value,
    /// Unix seconds.
    pub at: i64,
}

impl AuditEvent {
    /// An event happening now, with an empty detail.
    pub fn new(kind: AuditKind) -> AuditEvent {
        AuditEvent {
            kind,
            account_id: None,
            client_id: None,
            ip: None,
            detail: Value::Object(Default::default()),
            at: crate::directory::now(),
        }
    }

    pub fn account(mut self, id: impl Into<String>) -> Self {
        self.account_id = Some(id.into());
        self
    }

    pub fn client(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

impl fmt::Display for AuditEvent {
    /// One line: time, kind, then the fields that are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = chrono::DateTime::from_timestamp(self.at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| self.at.to_string());
        write!(f, "{at} {}", self.kind)?;
        if let Some(a) = &self.account_id {
            write!(f, " account={a}")?;
        }
        if let Some(c) = &self.client_id {
            write!(f, " client={c}")?;
        }
        if let Some(ip) = &self.ip {
            write!(f, " ip={ip}")?;
        }
        if self.detail.as_object().is_none_or(|o| !o.is_empty()) {
            write!(f, " {}", self.detail)?;
        }
        Ok(())
    }
}

/// Which events to read back; every field narrows the selection.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub account_id: Option<String>,
    pub client_id: Option<String>,
    pub kind: Option<AuditKind>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// At most this many, the newest.
    pub limit: i64,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert_audit(&self, event: &AuditEvent) -> Result<()>;
    /// The newest `filter.limit` matching events, oldest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;
    /// Removes the events older than `before`; returns how many. Idempotent, so any
    /// number of instances may run it at once.
    async fn delete_audit_before(&self, before: i64) -> Result<u64>;
}

/// Stores an event; a failure is logged with the event and otherwise ignored.
pub async fn record(store: &dyn AuditStore, event: AuditEvent) {
    if let Err(e) = store.insert_audit(&event).await {
        tracing::error!(error = %e, event = %event, "audit: cannot store the event");
    }
}

/// Records an event about a grant (token reuse), naming its account and client.
pub async fn record_for_grant(store: &dyn crate::store::Store, kind: AuditKind, grant_id: &str) {
    let mut event = AuditEvent::new(kind).detail(serde_json::json!({ "grant": grant_id }));
    if let Ok(Some(g)) = store.grant_by_id(grant_id).await {
        event = event.account(g.account_id).client(g.client_id);
    }
    record(store, event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>().unwrap(), k);
        }
        assert!("nonsense".parse::<AuditKind>().is_err());
    }

    #[test]
    fn an_event_prints_on_one_line() {
        let e = AuditEvent {
            at: 0,
            ..AuditEvent::new(AuditKind::LoginFailure)
                .account("a1")
                .ip("127.0.0.1")
                .detail(serde_json::json!({"reason": "invalid_credentials"}))
        };
        assert_eq!(
            e.to_string(),
            r#"1970-01-01T00:00:00Z login_failure account=a1 ip=127.0.0.1 {"reason":"invalid_credentials"}"#
        );
    }
}
