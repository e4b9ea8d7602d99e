//! Grants and refresh tokens on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use crate::grant::{Grant, GrantStore, RefreshUse};
use crate::{CoreError, Result};

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    let amr: String = row.try_get("amr")?;
    Ok(Grant {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        sid: row.try_get("sid")?,
        auth_time: row.try_get("auth_time")?,
        acr: row.try_get("acr")?,
        amr: serde_json::from_str(&amr)
            .map_err(|e| CoreError::Invalid(format!("stored amr is not valid: {e}")))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, g: &Grant) -> Result<()> {
        let amr = serde_json::to_string(&g.amr).map_err(|e| CoreError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO grants (id, account_id, client_id, scope, sid, auth_time, acr, amr, \
             created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&g.id)
        .bind(&g.account_id)
        .bind(&g.client_id)
        .bind(&g.scope)
        .bind(g.sid.clone())
        .bind(g.auth_time)
        .bind(&g.acr)
        .bind(amr)
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.revoked_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn grant_by_id(&self, id: &str) -> Result<Option<Grant>> {
        let row = sqlx::query(
            "SELECT id, account_id, client_id, scope, sid, auth_time, acr, amr, created_at, \
             expires_at, revoked_at FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn revoke_grant(&self, id: &str, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_grants_of_session(&self, sid: &str, at: i64) -> Result<Vec<String>> {
        let mut tx = self.pool().begin().await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM grants WHERE sid = $1 AND revoked_at IS NULL")
                .bind(sid)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("UPDATE grants SET revoked_at = $2 WHERE sid = $1 AND revoked_at IS NULL")
            .bind(sid)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(grant_id)
        .bind(crate::directory::now())
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse> {
        // The conditional UPDATE is the single point of truth: only one concurrent use
        // can flip used_at from NULL.
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if let Some(grant_id) = spent {
            return Ok(RefreshUse::Fresh { grant_id });
        }
        let row = sqlx::query(
            "SELECT grant_id, expires_at, used_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(RefreshUse::Unknown);
        };
        let used_at: Option<i64> = row.try_get("used_at")?;
        if used_at.is_some() {
            return Ok(RefreshUse::Reused {
                grant_id: row.try_get("grant_id")?,
            });
        }
        Ok(RefreshUse::Expired)
    }

    async fn use_refresh_token_peek(&self, token_hash: &str, now: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT expires_at FROM refresh_tokens \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn grant_of_refresh_token(&self, token_hash: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT grant_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn delete_expired_grants(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM grants WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
