//! The email links and consents tables.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::Result;
use crate::directory::Account;
use crate::link::{EmailLink, LinkPurpose, LinkStore};
use crate::mail::OutgoingMail;
use crate::registration::{Consent, ConsentStore};
use crate::secret::TokenHash;

#[async_trait]
impl LinkStore for SqlStore {
    async fn insert_link(&self, l: &EmailLink, mail: Option<&OutgoingMail>) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO email_links (token_hash, purpose, account_id, payload, created_at, \
             expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(l.token_hash.as_str())
        .bind(l.purpose.as_str())
        .bind(l.account_id.clone())
        .bind(&l.payload)
        .bind(l.created_at)
        .bind(l.expires_at)
        .bind(l.used_at)
        .execute(&mut *tx)
        .await?;
        if let Some(mail) = mail {
            super::mail_queue::enqueue_in(&mut tx, mail, l.created_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn find_link(&self, hash: &TokenHash, purpose: LinkPurpose) -> Result<Option<EmailLink>> {
        let row = sqlx::query(
            "SELECT token_hash, account_id, payload, created_at, expires_at, used_at \
             FROM email_links WHERE token_hash = $1 AND purpose = $2",
        )
        .bind(hash.as_str())
        .bind(purpose.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(EmailLink {
            token_hash: TokenHash::from_hex(row.try_get("token_hash")?),
            purpose,
            account_id: row.try_get("account_id")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
        }))
    }

    async fn consume_link(&self, hash: &TokenHash, purpose: LinkPurpose, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE email_links SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(hash.as_str())
        .bind(purpose.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn void_links(&self, account_id: &str, purpose: LinkPurpose, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE email_links SET used_at = $3 WHERE account_id = $1 AND purpose = $2 \
             AND used_at IS NULL",
        )
        .bind(account_id)
        .bind(purpose.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn delete_links_before(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM email_links WHERE expires_at < $1 OR used_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ConsentStore for SqlStore {
    async fn record_consent(&self, account_id: &str, consent: &Consent) -> Result<()> {
        sqlx::query(
            "INSERT INTO consents (account_id, kind, version, accepted_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account_id)
        .bind(&consent.kind)
        .bind(&consent.version)
        .bind(consent.accepted_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn complete_registration(
        &self,
        link: &TokenHash,
        now: i64,
        account: &Account,
        consents: &[Consent],
        mail: Option<&OutgoingMail>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let consumed = sqlx::query(
            "UPDATE email_links SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(link.as_str())
        .bind(LinkPurpose::Registration.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if consumed.rows_affected() != 1 {
            // Dropping the transaction rolls it back.
            return Ok(false);
        }
        super::insert_account_query(account)
            .execute(&mut *tx)
            .await
            .map_err(|e| super::conflict_or(e, &["username", "fiscal_code"]))?;
        for consent in consents {
            sqlx::query(
                "INSERT INTO consents (account_id, kind, version, accepted_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(account.id.as_str())
            .bind(&consent.kind)
            .bind(&consent.version)
            .bind(consent.accepted_at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(mail) = mail {
            super::mail_queue::enqueue_in(&mut tx, mail, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn consents(&self, account_id: &str) -> Result<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT kind, version, accepted_at FROM consents WHERE account_id = $1 ORDER BY kind",
        )
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Consent {
                    kind: r.try_get("kind")?,
                    version: r.try_get("version")?,
                    accepted_at: r.try_get("accepted_at")?,
                })
            })
            .collect()
    }
}
