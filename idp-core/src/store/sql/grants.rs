//! Grants and refresh tokens on SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{DatabaseKind, SqlStore, account_from_row};
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
                self.sqlite_transaction_in_one_call(query).await?;
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
        // Each arm returns a fresh rotation; what falls through was not spent.
        // PostgreSQL's store has the batched rotations, SQLite's none.
        match &self.rotations {
            Some(rotations) => {
                // PostgreSQL runs data-modifying CTEs: spend, insert and read the grant,
                // its account and roles in one statement, with the other rotations that
                // arrive meanwhile (`rotations`): one round trip and one commit (one WAL
                // flush) for the batch. One row per role, as in `account_with_roles`.
                let rows = rotations.rotate(r).await?;
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
            }
            None => {
                // SQLite has no data-modifying CTEs, but one call may run several
                // statements: the spend (reading the grant) and the replacement, in one
                // transaction, one hop to the connection's thread and one commit. The
                // INSERT stores the replacement only when the UPDATE just spent the token
                // (`changes()`), and only for an active grant of this client.
                let query = sqlx::query(SQLITE_ROTATE)
                    .bind(r.old_hash)
                    .bind(r.now)
                    .bind(r.new_hash)
                    .bind(r.client_id)
                    .bind(r.ttl_secs);
                let rows = self.sqlite_transaction_in_one_call(query).await?;
                let spent = rows.iter().find(|row| row.try_column("id").is_ok());
                if let Some(row) = spent {
                    let new_expires_at = match rows
                        .iter()
                        .find(|row| row.try_column("new_expires_at").is_ok())
                    {
                        Some(stored) => Some(stored.try_get("new_expires_at")?),
                        None => None,
                    };
                    return Ok(Rotated::Fresh {
                        grant: Box::new(grant_from_row(row)?),
                        new_expires_at,
                        account: None,
                    });
                }
            }
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

/// A whole rotation on SQLite ($1 the old token's hash, $2 now, $3 the replacement's
/// hash, $4 the presenting client, $5 the replacement's lifetime), in one transaction:
/// spend the token if unused and unexpired, returning its grant's columns (SQLite takes
/// scalar subqueries in RETURNING); then store the replacement for that grant if it is
/// an active grant of the client, expiring $5 seconds later or with the grant, returning
/// that expiry. `changes()` in the INSERT is the number of rows the UPDATE changed (one,
/// or none when the token was used, expired or unknown).
const SQLITE_ROTATE: &str = concat!(
    "BEGIN IMMEDIATE; ",
    "UPDATE refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_id AS id, \
     (SELECT g.account_id FROM grants g WHERE g.id = refresh_tokens.grant_id) AS account_id, \
     (SELECT g.client_id FROM grants g WHERE g.id = refresh_tokens.grant_id) AS client_id, \
     (SELECT g.scope FROM grants g WHERE g.id = refresh_tokens.grant_id) AS scope, \
     (SELECT g.sid FROM grants g WHERE g.id = refresh_tokens.grant_id) AS sid, \
     (SELECT g.auth_time FROM grants g WHERE g.id = refresh_tokens.grant_id) AS auth_time, \
     (SELECT g.acr FROM grants g WHERE g.id = refresh_tokens.grant_id) AS acr, \
     (SELECT g.amr FROM grants g WHERE g.id = refresh_tokens.grant_id) AS amr, \
     (SELECT g.created_at FROM grants g WHERE g.id = refresh_tokens.grant_id) AS created_at, \
     (SELECT g.expires_at FROM grants g WHERE g.id = refresh_tokens.grant_id) AS expires_at, \
     (SELECT g.revoked_at FROM grants g WHERE g.id = refresh_tokens.grant_id) AS revoked_at; ",
    "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
     SELECT $3, g.id, $2, CASE WHEN $2 + $5 < g.expires_at THEN $2 + $5 ELSE g.expires_at END \
     FROM grants g WHERE changes() = 1 \
     AND g.id = (SELECT grant_id FROM refresh_tokens WHERE token_hash = $1) \
     AND g.client_id = $4 AND g.revoked_at IS NULL AND g.expires_at > $2 \
     RETURNING expires_at AS new_expires_at; ",
    "COMMIT;"
);

impl SqlStore {
    /// Runs a SQLite transaction written out as one query (`BEGIN IMMEDIATE; ...;
    /// COMMIT;`) in one call to the connection's thread (each call is a hop there and
    /// back), returning the rows of all its statements. When a statement fails, the
    /// transaction is rolled back here: the connection goes back to the pool with none
    /// open, and nothing of it is kept.
    async fn sqlite_transaction_in_one_call<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Vec<AnyRow>> {
        let mut conn = self.pool().acquire().await?;
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // Fails harmlessly when the transaction never began (BEGIN was refused).
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e.into())
            }
        }
    }

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

    /// The replacement's hash is taken: the INSERT fails after the UPDATE spent the old
    /// token, and the whole rotation is undone, on a connection that stays usable.
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
