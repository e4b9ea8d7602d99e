//! The mail queue table. Claims are a lease column (`claim_token`, `claimed_until`)
//! taken by one conditional UPDATE, which both databases make exclusive per row: SQLite
//! serialises writers, and PostgreSQL re-checks the UPDATE's conditions on the locked
//! row, so a second instance racing for the same mail finds it claimed and skips it.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::SqlStore;
use crate::account::Email;
use crate::mail::OutgoingMail;
use crate::mail_queue::{MailQueueStore, QueuedMail};
use crate::{CoreError, Result};

/// Inserts a mail into the queue inside the caller's transaction (the state change it
/// announces commits with it, or neither does).
pub(super) async fn enqueue_in(
    tx: &mut Transaction<'_, Any>,
    mail: &OutgoingMail,
    now: i64,
) -> Result<String> {
    if !mail.attachments.is_empty() {
        return Err(CoreError::Invalid(
            "mail queue: attachments are not supported".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO mail_queue (id, recipient, subject, body_text, created_at, attempts, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, 0, $5)",
    )
    .bind(&id)
    .bind(mail.to.as_str())
    .bind(&mail.subject)
    .bind(&mail.body_text)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

#[async_trait]
impl MailQueueStore for SqlStore {
    async fn enqueue_mail(&self, mail: &OutgoingMail, now: i64) -> Result<String> {
        let mut tx = self.pool().begin().await?;
        let id = enqueue_in(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<QueuedMail>> {
        let claim = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "UPDATE mail_queue SET claim_token = $1, claimed_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_queue WHERE failed_at IS NULL \
               AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until <= $3) \
               ORDER BY next_attempt_at LIMIT $4) \
             AND failed_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $3)",
        )
        .bind(&claim)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .execute(self.pool())
        .await?;
        let rows = sqlx::query(
            "SELECT id, recipient, subject, body_text, attempts, created_at FROM mail_queue \
             WHERE claim_token = $1 ORDER BY next_attempt_at",
        )
        .bind(&claim)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let to: String = row.try_get("recipient")?;
            let attempts: i64 = row.try_get("attempts")?;
            claimed.push(QueuedMail {
                id: row.try_get("id")?,
                claim: claim.clone(),
                mail: OutgoingMail {
                    to: Email::parse(&to)?,
                    subject: row.try_get("subject")?,
                    body_text: row.try_get("body_text")?,
                    attachments: Vec::new(),
                },
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(claimed)
    }

    async fn mail_sent(&self, id: &str, claim: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM mail_queue WHERE id = $1 AND claim_token = $2")
            .bind(id)
            .bind(claim)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mail_retry(
        &self,
        id: &str,
        claim: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mail_queue SET claim_token = NULL, claimed_until = NULL, \
             next_attempt_at = $3, last_error = $4 WHERE id = $1 AND claim_token = $2",
        )
        .bind(id)
        .bind(claim)
        .bind(next_attempt_at)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mail_abandoned(&self, id: &str, claim: &str, now: i64, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mail_queue SET claim_token = NULL, claimed_until = NULL, body_text = '', \
             failed_at = $3, last_error = $4 WHERE id = $1 AND claim_token = $2",
        )
        .bind(id)
        .bind(claim)
        .bind(now)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_mail_before(&self, before: i64) -> Result<u64> {
        // A mail is given up on after it was queued: its age covers both cases.
        let done = sqlx::query("DELETE FROM mail_queue WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn count_queued_mail(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM mail_queue WHERE failed_at IS NULL")
                .fetch_one(self.pool())
                .await?,
        )
    }
}
