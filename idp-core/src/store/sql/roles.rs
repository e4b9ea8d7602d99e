//! Account roles on SQLite and PostgreSQL.

use async_trait::async_trait;

use super::SqlStore;
use crate::Result;
use crate::directory::now;
use crate::role::RoleStore;

#[async_trait]
impl RoleStore for SqlStore {
    async fn roles_of(&self, account_id: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role",
            )
            .bind(account_id)
            .fetch_all(self.pool())
            .await?,
        )
    }

    async fn grant_role(&self, account_id: &str, role: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_roles (account_id, role, granted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, role) DO NOTHING",
        )
        .bind(account_id)
        .bind(role)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn revoke_role(&self, account_id: &str, role: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM account_roles WHERE account_id = $1 AND role = $2")
            .bind(account_id)
            .bind(role)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
