//! Grants and refresh tokens on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DatabaseKind, SqlStore, account_from_row, sqlite_transaction_in_one_call};
use crate::grant::{Grant, GrantStore, RefreshUse, Rotated, Rotation};
use crate::{CoreError, Result};

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    grant_from_prefixed_row(row, "")
}

/// A grant from columns named with `prefix` (joined queries alias them: `g_id`, …).
fn grant_from_prefixed_row(row: &AnyRow, prefix: &str) -> Result<Grant> {
    let column = |name: &str| format!("{prefix}{name}");
    let amr: String = row.try_get(column("amr").as_str())?;
    Ok(Grant {
        id: row.try_get(column("id").as_str())?,
        account_id: row.try_get(column("account_id").as_str())?,
        client_id: row.try_get(column("client_id").as_str())?,
        scope: row.try_get(column("scope").as_str())?,
        sid: row.try_get(column("sid").as_str())?,
        auth_time: row.try_get(column("auth_time").as_str())?,
        acr: row.try_get(column("acr").as_str())?,
        amr: serde_json::from_str(&amr)
            .map_err(|e| CoreError::Invalid(format!("stored amr is not valid: {e}")))?,
        created_at: row.try_get(column("created_at").as_str())?,
        expires_at: row.try_get(column("expires_at").as_str())?,
        revoked_at: row.try_get(column("revoked_at").as_str())?,
    })
}

const INSERT_GRANT: &str = "INSERT INTO grants (id, account_id, client_id, scope, sid, \
     auth_time, acr, amr, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The insert of a refresh token of a stored grant, created now.
fn insert_refresh_token<'q>(
    token_hash: &'q str,
    grant_id: &'q str,
    expires_at: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(grant_id)
    .bind(crate::directory::now())
    .bind(expires_at)
}

/// `INSERT_GRANT`'s eleven parameters, from the grant.
fn bind_grant<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    g: &'q Grant,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    let amr = serde_json::to_string(&g.amr).map_err(|e| CoreError::Invalid(e.to_string()))?;
    Ok(query
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
        .bind(g.revoked_at))
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn insert_grant(&self, g: &Grant) -> Result<()> {
        bind_grant(sqlx::query(INSERT_GRANT), g)?
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn insert_grant_with_refresh_token(
        &self,
        g: &Grant,
        refresh: Option<(&str, i64)>,
    ) -> Result<()> {
        let Some((token_hash, expires_at)) = refresh else {
            return self.insert_grant(g).await;
        };
        match self.kind {
            DatabaseKind::Postgres => {
                // The child row's foreign key is checked at the end of the statement,
                // when the grant inserted by the WITH is there.
                let statement = format!(
                    "WITH g AS ({INSERT_GRANT} RETURNING id) \
                     INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
                     SELECT $12, id, $13, $14 FROM g"
                );
                bind_grant(sqlx::query(&statement), g)?
                    .bind(token_hash)
                    .bind(crate::directory::now())
                    .bind(expires_at)
                    .execute(self.pool())
                    .await?;
            }
            DatabaseKind::Sqlite => {
                // SQLite has no INSERT in WITH: the two INSERTs in one transaction, sent
                // in one call.
                let statement = format!(
                    "BEGIN IMMEDIATE; {INSERT_GRANT}; \
                     INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
                     VALUES ($12, $1, $13, $14); COMMIT;"
                );
                let query = bind_grant(sqlx::query(&statement), g)?
                    .bind(token_hash)
                    .bind(crate::directory::now())
                    .bind(expires_at);
                sqlite_transaction_in_one_call(self.pool(), query).await?;
            }
        }
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
        insert_refresh_token(token_hash, grant_id, expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse> {
        // The conditional UPDATE is the single point of truth: only one concurrent use
        // can flip used_at from NULL.
        let spent: Option<String> = sqlx::query_scalar(SPEND)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        if let Some(grant_id) = spent {
            return Ok(RefreshUse::Fresh { grant_id });
        }
        self.classify_refresh_token(token_hash).await
    }

    async fn rotate_refresh_token(&self, r: &Rotation<'_>) -> Result<Rotated> {
        // Spend, insert and read the grant, its account and roles in one statement
        // (PostgreSQL; one transaction on SQLite), with the other rotations that
        // arrive meanwhile (`rotations`): one round trip and one commit for the batch.
        // One row per role, as in `account_with_roles`; none when the token was not
        // spent.
        let rows = self.rotations.rotate(r).await?;
        if let Some(first) = rows.first() {
            let account = match first.try_get::<Option<String>, _>("id")? {
                Some(_) => {
                    let mut roles = Vec::new();
                    for row in &rows {
                        if let Some(role) = row.try_get::<Option<String>, _>("role")? {
                            roles.push(role);
                        }
                    }
                    Some(Box::new((account_from_row(first)?, roles)))
                }
                None => None,
            };
            return Ok(Rotated::Fresh {
                grant: Box::new(grant_from_prefixed_row(first, "g_")?),
                new_expires_at: first.try_get("new_expires_at")?,
                account,
            });
        }
        Ok(match self.classify_refresh_token(r.old_hash).await? {
            RefreshUse::Reused { grant_id } => Rotated::Reused { grant_id },
            RefreshUse::Expired => Rotated::Expired,
            RefreshUse::Fresh { .. } | RefreshUse::Unknown => Rotated::Unknown,
        })
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

/// Spends an unused, unexpired refresh token ($1 its hash, $2 now).
const SPEND: &str = "UPDATE refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id";

impl SqlStore {
    /// Why a refresh token could not be spent: used before, expired, or unknown.
    async fn classify_refresh_token(&self, token_hash: &str) -> Result<RefreshUse> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{AccountId, AccountKind, AccountStatus, Username};
    use crate::directory::Account;
    use crate::store::AccountStore;

    const NOW: i64 = 1_000_000;

    async fn store_with_grant(expires_at: i64) -> SqlStore {
        let store = SqlStore::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let account = Account {
            id: AccountId::from_string("acc-1".into()),
            username: Username::parse("anna.bianchi").unwrap(),
            kind: AccountKind::Registered,
            status: AccountStatus::Active,
            fiscal_code: None,
            given_name: "Anna".into(),
            family_name: "Bianchi".into(),
            birth_date: None,
            birth_place: None,
            sex: None,
            personal_email: None,
            institutional_email: None,
            password: None,
            password_must_change: false,
            password_expires_at: None,
            created_at: NOW,
            updated_at: NOW,
        };
        store.insert_account(&account).await.unwrap();
        store
            .insert_grant(&Grant {
                id: "g1".into(),
                account_id: "acc-1".into(),
                client_id: "pago-in-rete".into(),
                scope: "openid".into(),
                sid: None,
                auth_time: NOW,
                acr: "password".into(),
                amr: vec!["pwd".into()],
                created_at: NOW,
                expires_at,
                revoked_at: None,
            })
            .await
            .unwrap();
        store
            .insert_refresh_token("old", "g1", NOW + 100)
            .await
            .unwrap();
        store
    }

    fn rotation<'a>(old: &'a str, new: &'a str, client: &'a str, now: i64) -> Rotation<'a> {
        Rotation {
            old_hash: old,
            new_hash: new,
            client_id: client,
            now,
            ttl_secs: 50,
        }
    }

    #[tokio::test]
    async fn a_rotation_spends_the_token_and_stores_its_replacement_once() {
        let store = store_with_grant(NOW + 30).await;
        let Rotated::Fresh {
            grant,
            new_expires_at,
            ..
        } = store
            .rotate_refresh_token(&rotation("old", "new", "pago-in-rete", NOW))
            .await
            .unwrap()
        else {
            panic!("the first use is fresh");
        };
        assert_eq!(grant.id, "g1");
        // The grant ends before the token's lifetime would.
        assert_eq!(new_expires_at, Some(NOW + 30));
        assert_eq!(
            store.use_refresh_token_peek("new", NOW).await.unwrap(),
            Some(NOW + 30)
        );
        assert!(matches!(
            store
                .rotate_refresh_token(&rotation("old", "other", "pago-in-rete", NOW))
                .await
                .unwrap(),
            Rotated::Reused { grant_id } if grant_id == "g1"
        ));
        assert_eq!(store.grant_of_refresh_token("other").await.unwrap(), None);
    }

    /// The replacement's hash is taken: the batch's INSERT fails inside its transaction,
    /// which is rolled back (the old token stays unused), and the connection stays
    /// usable: the next rotation opens a transaction on it.
    #[tokio::test]
    async fn a_rotation_that_fails_spends_nothing() {
        let store = store_with_grant(NOW + 1000).await;
        store
            .insert_refresh_token("taken", "g1", NOW + 100)
            .await
            .unwrap();
        assert!(
            store
                .rotate_refresh_token(&rotation("old", "taken", "pago-in-rete", NOW))
                .await
                .is_err()
        );
        assert_eq!(
            store.use_refresh_token_peek("old", NOW).await.unwrap(),
            Some(NOW + 100),
            "the old token is still unused"
        );
        assert!(matches!(
            store
                .rotate_refresh_token(&rotation("old", "new", "pago-in-rete", NOW))
                .await
                .unwrap(),
            Rotated::Fresh {
                new_expires_at: Some(_),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn no_replacement_is_stored_for_another_client_or_an_inactive_grant() {
        let store = store_with_grant(NOW + 1000).await;
        let other_client = store
            .rotate_refresh_token(&rotation("old", "new", "governance", NOW))
            .await
            .unwrap();
        assert!(matches!(
            other_client,
            Rotated::Fresh {
                new_expires_at: None,
                ..
            }
        ));
        assert_eq!(store.grant_of_refresh_token("new").await.unwrap(), None);

        let store = store_with_grant(NOW + 1000).await;
        store.revoke_grant("g1", NOW).await.unwrap();
        let revoked = store
            .rotate_refresh_token(&rotation("old", "new", "pago-in-rete", NOW))
            .await
            .unwrap();
        assert!(matches!(
            revoked,
            Rotated::Fresh {
                new_expires_at: None,
                ..
            }
        ));
        assert_eq!(store.grant_of_refresh_token("new").await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_and_unknown_tokens_are_told_apart() {
        let store = store_with_grant(NOW + 1000).await;
        assert!(matches!(
            store
                .rotate_refresh_token(&rotation("old", "new", "pago-in-rete", NOW + 100))
                .await
                .unwrap(),
            Rotated::Expired
        ));
        assert!(matches!(
            store
                .rotate_refresh_token(&rotation("nope", "new", "pago-in-rete", NOW))
                .await
                .unwrap(),
            Rotated::Unknown
        ));
        assert_eq!(store.grant_of_refresh_token("new").await.unwrap(), None);
    }
}
