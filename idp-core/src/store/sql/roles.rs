//! Account roles on SQLite and PostgreSQL.

use async_trait::async_trait;

use sqlx::Row as _;

use super::{SqlStore, account_columns, account_from_row};
use crate::Result;
use crate::account::AccountId;
use crate::directory::{Account, now};
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

    async fn account_with_roles(&self, id: &AccountId) -> Result<Option<(Account, Vec<String>)>> {
        // One row per role (one row with a NULL role when there is none): portable, and
        // one round trip for the ID token and every userinfo call.
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", r.role FROM accounts a LEFT JOIN account_roles r ON r.account_id = a.id \
             WHERE a.id = $1 ORDER BY r.role"
        ))
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let account = account_from_row(first)?;
        let mut roles = Vec::new();
        for row in &rows {
            if let Some(role) = row.try_get::<Option<String>, _>("role")? {
                roles.push(role);
            }
        }
        Ok(Some((account, roles)))
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
