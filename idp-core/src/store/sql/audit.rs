//! The audit log on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::audit::{AuditEvent, AuditFilter, AuditStore};
use crate::{CoreError, Result};

fn event_from_row(row: &AnyRow) -> Result<AuditEvent> {
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        kind: kind.parse()?,
        account_id: row.try_get("account_id")?,
        client_id: row.try_get("client_id")?,
        ip: row.try_get("ip")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| CoreError::Invalid(format!("stored audit detail is not JSON: {e}")))?,
        at: row.try_get("at")?,
    })
}

/// Sorts like the time of recording (nanoseconds first), so that events of one second
/// keep their order; the random tail keeps ids unique across instances.
fn event_id() -> String {
    let nanos = chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap_or_default()
        .max(0);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{nanos:020}-{}", &random[..12])
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, kind, account_id, client_id, ip, detail, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(event_id())
        .bind(e.kind.as_str())
        .bind(e.account_id.clone())
        .bind(e.client_id.clone())
        .bind(e.ip.clone())
        .bind(e.detail.to_string())
        .bind(e.at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
        // Conditions are added in a fixed order, each with the next `$n`.
        let mut conditions = Vec::new();
        let mut text: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        for (column, value) in [
            ("account_id", &f.account_id),
            ("client_id", &f.client_id),
            ("kind", &f.kind.map(|k| k.as_str().to_string())),
        ] {
            if let Some(v) = value {
                conditions.push(format!("{column} = ${}", next()));
                text.push(v.clone());
            }
        }
        if let Some(since) = f.since {
            conditions.push(format!("at >= ${}", next()));
            numbers.push(since);
        }
        if let Some(until) = f.until {
            conditions.push(format!("at < ${}", next()));
            numbers.push(until);
        }
        let limit = next();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT kind, account_id, client_id, ip, detail, at FROM audit_events {filter} \
             ORDER BY at DESC, id DESC LIMIT ${limit}"
        );
        let mut query = sqlx::query(&sql);
        for t in text {
            query = query.bind(t);
        }
        for v in numbers {
            query = query.bind(v);
        }
        query = query.bind(f.limit.max(0));
        let rows = query.fetch_all(self.pool()).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    async fn delete_audit_before(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
