//! OIDC signing keys on SQLite and PostgreSQL. The private key is stored as its PEM,
//! unencrypted (see the migration): database access is key access.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, conflict_or, corrupt};
use crate::keys::{SigningAlgorithm, SigningKey};
use crate::secret::Secret;
use crate::store::KeyStore;
use crate::{CoreError, Result};

fn key_from_row(row: &AnyRow) -> Result<SigningKey> {
    let algorithm: String = row.try_get("algorithm")?;
    let public_jwk: String = row.try_get("public_jwk")?;
    Ok(SigningKey {
        kid: row.try_get("kid")?,
        algorithm: SigningAlgorithm::parse(&algorithm)
            .ok_or_else(|| corrupt("key algorithm", &algorithm))?,
        private_pem: Secret::new(row.try_get("private_pem")?),
        public_jwk: serde_json::from_str(&public_jwk).map_err(|e| corrupt("public JWK", e))?,
        created_at: row.try_get("created_at")?,
        sign_from: row.try_get("sign_from")?,
        retire_at: row.try_get("retire_at")?,
    })
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert_key(&self, key: &SigningKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_pem, public_jwk, created_at, \
             sign_from, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.kid)
        .bind(key.algorithm.as_str())
        .bind(key.private_pem.expose())
        .bind(key.public_jwk.to_string())
        .bind(key.created_at)
        .bind(key.sign_from)
        .bind(key.retire_at)
        .execute(&self.pool)
        .await
        // The kid is the table's only unique column; PostgreSQL names its primary key
        // `signing_keys_pkey` in the message, not the column.
        .map_err(|e| match conflict_or(e, &["kid"]) {
            CoreError::Conflict(_) => CoreError::Conflict("kid"),
            other => other,
        })?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<SigningKey>> {
        sqlx::query(
            "SELECT kid, algorithm, private_pem, public_jwk, created_at, sign_from, retire_at \
             FROM signing_keys ORDER BY sign_from, kid",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    async fn retire_keys_before(
        &self,
        sign_from: i64,
        retire_at: i64,
        algorithm: SigningAlgorithm,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE signing_keys SET retire_at = $1 \
             WHERE algorithm = $2 AND retire_at IS NULL AND sign_from < $3",
        )
        .bind(retire_at)
        .bind(algorithm.as_str())
        .bind(sign_from)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_retired_keys(&self, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> SqlStore {
        let store = SqlStore::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn key(algorithm: SigningAlgorithm, sign_from: i64) -> SigningKey {
        SigningKey::generate(algorithm, sign_from).unwrap()
    }

    #[tokio::test]
    async fn stored_keys_read_back_as_they_were_written() {
        let store = store().await;
        let mut a = key(SigningAlgorithm::Es256, 10);
        a.retire_at = Some(99);
        store.insert_key(&a).await.unwrap();
        let keys = store.list_keys().await.unwrap();
        assert_eq!(keys.len(), 1);
        let b = &keys[0];
        assert_eq!(b.kid, a.kid);
        assert_eq!(b.algorithm, a.algorithm);
        assert_eq!(b.private_pem, a.private_pem);
        assert_eq!(b.public_jwk, a.public_jwk);
        assert_eq!(
            (b.created_at, b.sign_from, b.retire_at),
            (a.created_at, 10, Some(99))
        );
        assert!(matches!(
            store.insert_key(&a).await,
            Err(CoreError::Conflict("kid"))
        ));
    }

    #[tokio::test]
    async fn a_rotation_retires_only_older_keys_of_its_algorithm_that_had_no_date() {
        let store = store().await;
        let old_es = key(SigningAlgorithm::Es256, 10);
        let mut already = key(SigningAlgorithm::Es256, 5);
        already.retire_at = Some(50);
        let new_es = key(SigningAlgorithm::Es256, 20);
        let old_rs = key(SigningAlgorithm::Rs256, 10);
        for k in [&old_es, &already, &new_es, &old_rs] {
            store.insert_key(k).await.unwrap();
        }
        store
            .retire_keys_before(20, 1000, SigningAlgorithm::Es256)
            .await
            .unwrap();
        let retire =
            |kid: &str, keys: &[SigningKey]| keys.iter().find(|k| k.kid == kid).unwrap().retire_at;
        let keys = store.list_keys().await.unwrap();
        assert_eq!(retire(&old_es.kid, &keys), Some(1000));
        assert_eq!(retire(&already.kid, &keys), Some(50));
        assert_eq!(retire(&new_es.kid, &keys), None);
        assert_eq!(retire(&old_rs.kid, &keys), None);

        assert_eq!(store.delete_retired_keys(49).await.unwrap(), 0);
        assert_eq!(store.delete_retired_keys(50).await.unwrap(), 1);
        assert_eq!(store.delete_retired_keys(5000).await.unwrap(), 1);
        let left: Vec<String> = store
            .list_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&new_es.kid) && left.contains(&old_rs.kid));
    }
}
