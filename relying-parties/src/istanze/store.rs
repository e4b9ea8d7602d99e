//! Istanze OnLine's own tables (SQLite, migrations in `relying-parties/migrations/`).

use serde::Serialize;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::str::FromStr as _;

/// Where a person's abilitazione stands.
pub mod status {
    /// The form was confirmed; "Accetto" not yet given.
    pub const DRAFT: &str = "draft";
    /// "Accetto": the CPT was mailed; the fiscal code + CPT check comes next.
    pub const CPT_SENT: &str = "cpt_sent";
    /// CPT checked; waiting for the recognition at a school (password users).
    pub const PENDING: &str = "pending";
    /// Recognised (or SPID): enabled at the IdP.
    pub const ACTIVE: &str = "active";
}

#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct Enrolment {
    pub sub: String,
    pub assurance: String,
    pub status: String,
    pub given_name: String,
    pub family_name: String,
    pub fiscal_code: String,
    pub email: String,
    pub address: String,
    pub country: String,
    pub province: String,
    pub municipality: String,
    pub mobile_phone: String,
    pub home_phone: String,
    pub document_type: String,
    pub document_number: String,
    pub document_issuer: String,
    pub document_date: String,
    pub recovery_question: String,
    pub recovery_answer_hash: String,
    pub recovery_attempts: i64,
    pub recovery_locked: i64,
    pub code_hash: Option<String>,
    pub code_is_temporary: i64,
    pub code_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Enrolment {
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// A recognition as the operator records it.
#[derive(Clone, Debug, Default)]
pub struct Recognition {
    pub sub: String,
    pub operator_sub: String,
    pub operator_name: String,
    pub method: String,
    pub presented_document_type: String,
    pub presented_document_number: String,
    pub delegate_name: Option<String>,
    pub delegate_document_type: Option<String>,
    pub delegate_document_number: Option<String>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct OutboxMail {
    pub id: i64,
    #[sqlx(rename = "to_address")]
    pub to: String,
    pub subject: String,
    pub body: String,
    #[serde(skip)]
    pub attachments: String,
    pub sent_at: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store {
    /// Opens (creating the file if needed) and migrates. `sqlite::memory:` keeps one
    /// connection, so that every query sees the same database.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true);
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn enrolment(&self, sub: &str) -> sqlx::Result<Option<Enrolment>> {
        sqlx::query_as("SELECT * FROM istanze_enrolments WHERE sub = ?")
            .bind(sub)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn by_fiscal_code(&self, fiscal_code: &str) -> sqlx::Result<Option<Enrolment>> {
        sqlx::query_as(
            "SELECT * FROM istanze_enrolments WHERE fiscal_code = ? ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(fiscal_code.trim().to_uppercase())
        .fetch_optional(&self.pool)
        .await
    }

    /// Records the confirmed form (again, while still a draft).
    pub async fn save_draft(&self, e: &Enrolment) -> sqlx::Result<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO istanze_enrolments (sub, assurance, status, given_name, family_name,
                fiscal_code, email, address, country, province, municipality, mobile_phone,
                home_phone, document_type, document_number, document_issuer, document_date,
                recovery_question, recovery_answer_hash, created_at, updated_at)
             VALUES (?, ?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (sub) DO UPDATE SET assurance = excluded.assurance,
                given_name = excluded.given_name, family_name = excluded.family_name,
                fiscal_code = excluded.fiscal_code, email = excluded.email,
                address = excluded.address, country = excluded.country,
                province = excluded.province, municipality = excluded.municipality,
                mobile_phone = excluded.mobile_phone, home_phone = excluded.home_phone,
                document_type = excluded.document_type,
                document_number = excluded.document_number,
                document_issuer = excluded.document_issuer,
                document_date = excluded.document_date,
                recovery_question = excluded.recovery_question,
                recovery_answer_hash = excluded.recovery_answer_hash,
                updated_at = excluded.updated_at
             WHERE istanze_enrolments.status = 'draft'",
        )
        .bind(&e.sub)
        .bind(&e.assurance)
        .bind(&e.given_name)
        .bind(&e.family_name)
        .bind(&e.fiscal_code)
        .bind(&e.email)
        .bind(&e.address)
        .bind(&e.country)
        .bind(&e.province)
        .bind(&e.municipality)
        .bind(&e.mobile_phone)
        .bind(&e.home_phone)
        .bind(&e.document_type)
        .bind(&e.document_number)
        .bind(&e.document_issuer)
        .bind(&e.document_date)
        .bind(&e.recovery_question)
        .bind(&e.recovery_answer_hash)
        .bind(at)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_status(&self, sub: &str, status: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE istanze_enrolments SET status = ?, updated_at = ? WHERE sub = ?")
            .bind(status)
            .bind(now())
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A new personal code (temporary or chosen); the attempt counter starts again.
    pub async fn set_code(&self, sub: &str, code_hash: &str, temporary: bool) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE istanze_enrolments SET code_hash = ?, code_is_temporary = ?,
                code_attempts = 0, updated_at = ? WHERE sub = ?",
        )
        .bind(code_hash)
        .bind(i64::from(temporary))
        .bind(now())
        .bind(sub)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts a wrong code; returns the attempts so far.
    pub async fn wrong_code(&self, sub: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "UPDATE istanze_enrolments SET code_attempts = code_attempts + 1
             WHERE sub = ? RETURNING code_attempts",
        )
        .bind(sub)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn reset_code_attempts(&self, sub: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE istanze_enrolments SET code_attempts = 0 WHERE sub = ?")
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts a wrong recovery answer, locking at `limit`; returns the attempts so far.
    pub async fn wrong_answer(&self, sub: &str, limit: i64) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "UPDATE istanze_enrolments SET recovery_attempts = recovery_attempts + 1,
                recovery_locked = CASE WHEN recovery_attempts + 1 >= ? THEN 1 ELSE 0 END
             WHERE sub = ? RETURNING recovery_attempts",
        )
        .bind(limit)
        .bind(sub)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn reset_recovery_attempts(&self, sub: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE istanze_enrolments SET recovery_attempts = 0 WHERE sub = ?")
            .bind(sub)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_contacts(&self, e: &Enrolment) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE istanze_enrolments SET mobile_phone = ?, home_phone = ?, address = ?,
                country = ?, province = ?, municipality = ?, updated_at = ? WHERE sub = ?",
        )
        .bind(&e.mobile_phone)
        .bind(&e.home_phone)
        .bind(&e.address)
        .bind(&e.country)
        .bind(&e.province)
        .bind(&e.municipality)
        .bind(now())
        .bind(&e.sub)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_recognition(&self, r: &Recognition) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO istanze_recognitions (sub, operator_sub, operator_name, method,
                presented_document_type, presented_document_number, delegate_name,
                delegate_document_type, delegate_document_number, recognised_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.sub)
        .bind(&r.operator_sub)
        .bind(&r.operator_name)
        .bind(&r.method)
        .bind(&r.presented_document_type)
        .bind(&r.presented_document_number)
        .bind(&r.delegate_name)
        .bind(&r.delegate_document_type)
        .bind(&r.delegate_document_number)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// (operator name, method, delegate name, when) of a person's recognitions.
    pub async fn recognitions(
        &self,
        sub: &str,
    ) -> sqlx::Result<Vec<(String, String, Option<String>, i64)>> {
        sqlx::query_as(
            "SELECT operator_name, method, delegate_name, recognised_at
             FROM istanze_recognitions WHERE sub = ? ORDER BY id",
        )
        .bind(sub)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn add_mail(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        attachments: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO istanze_outbox (to_address, subject, body, attachments, sent_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(attachments)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn outbox(&self) -> sqlx::Result<Vec<OutboxMail>> {
        sqlx::query_as("SELECT * FROM istanze_outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn add_application(&self, sub: &str, subject: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO istanze_applications (sub, subject, sent_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(sub)
        .bind(subject)
        .bind(now())
        .fetch_one(&self.pool)
        .await
    }
}
