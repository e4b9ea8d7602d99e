//! Enablements on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::enablement::{Enablement, EnablementStatus, EnablementStore};
use crate::{CoreError, Result};

#[async_trait]
impl EnablementStore for SqlStore {
    async fn enablement(&self, account_id: &str, service: &str) -> Result<Option<Enablement>> {
        let row = sqlx::query(
            "SELECT account_id, service, status, updated_by, updated_at FROM enablements \
             WHERE account_id = $1 AND service = $2",
        )
        .bind(account_id)
        .bind(service)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        Ok(Some(Enablement {
            account_id: row.try_get("account_id")?,
            service: row.try_get("service")?,
            status: EnablementStatus::parse(&status)
                .ok_or_else(|| CoreError::Invalid(format!("stored enablement status {status}")))?,
            updated_by: row.try_get("updated_by")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    async fn put_enablement(&self, e: &Enablement) -> Result<()> {
        sqlx::query(
            "INSERT INTO enablements (account_id, service, status, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account_id, service) DO UPDATE SET status = $3, updated_by = $4, \
             updated_at = $5",
        )
        .bind(&e.account_id)
        .bind(&e.service)
        .bind(e.status.as_str())
        .bind(&e.updated_by)
        .bind(e.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
