//! The one sqlx implementation of the storage traits, for SQLite and PostgreSQL alike.
//! It goes through sqlx's `Any` driver with `$n` placeholders (both databases accept
//! them) and portable types only: TEXT, BIGINT/INTEGER (Unix seconds, 0/1 flags), BLOB.

mod audit;
mod checkpoints;
mod clients;
mod enablements;
mod grants;
mod keys;
mod links;
mod mail_queue;
mod roles;
mod rotations;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Row};

use super::{AccountStore, OutboxStore, Store};
use crate::account::{AccountId, AccountKind, AccountStatus, Email, Username};
use crate::directory::{Account, now};
use crate::fiscal_code::{FiscalCode, Sex};
use crate::mail::{Attachment, OutgoingMail, StoredMail};
use crate::password::PasswordHash;
use crate::{CoreError, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

impl DatabaseKind {
    pub fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(CoreError::Invalid(format!(
                "database url must start with sqlite: or postgres: (got {:?})",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }
}

/// How long a query waits for a connection unless configured otherwise.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    kind: DatabaseKind,
    /// The refresh-token rotations, batched.
    rotations: rotations::Rotations,
    /// A SQLite file's WAL checkpoints, run beside the pool; `None` otherwise.
    checkpoints: Option<checkpoints::Checkpoints>,
}

impl SqlStore {
    /// Connects without touching the schema. SQLite files (and their folder) are
    /// created when missing, in WAL mode, with a task that checkpoints the log beside
    /// the pool (see `checkpoints`) until the store is closed or dropped;
    /// `sqlite::memory:` keeps one connection alive so the database lives as long as
    /// the store.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        SqlStore::connect_with(url, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// Like `connect`, waiting at most `acquire_timeout` for a free connection (or a
    /// new one) before a query fails: the bound on how long a request waits when every
    /// connection is busy or the database does not answer.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let kind = DatabaseKind::of_url(url)?;
        let mut url = url.to_string();
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if kind == DatabaseKind::Sqlite && !memory {
            if let Some(path) = sqlite_path(&url)
                && let Some(parent) = std::path::Path::new(&path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    CoreError::Invalid(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        // No ping before each acquire (sqlx's default): on PostgreSQL it is one more
        // round trip per query, on SQLite one more hop to the connection's thread. A
        // connection that broke (database restarted) fails its query and is dropped;
        // `/readyz` reports the database meanwhile.
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false);
        pool = match (kind, memory) {
            (DatabaseKind::Sqlite, true) => pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            (DatabaseKind::Sqlite, false) => pool.max_connections(max_connections.max(1)),
            (DatabaseKind::Postgres, _) => pool.max_connections(max_connections.max(1)),
        };
        if kind == DatabaseKind::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    // With WAL, NORMAL syncs at checkpoints instead of at every commit
                    // (SQLite's advice for WAL): the database stays consistent after a
                    // crash; a power loss may drop the last commits.
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    // The store's own task checkpoints the WAL (see `checkpoints`);
                    // a commit checkpoints only when that task falls behind.
                    sqlx::query(&format!(
                        "PRAGMA wal_autocheckpoint = {}",
                        checkpoints::BACKSTOP_PAGES
                    ))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options.clone()).await?;
        let rotations = match kind {
            DatabaseKind::Postgres => {
                rotations::Rotations::postgres(options.clone(), acquire_timeout)
            }
            DatabaseKind::Sqlite => rotations::Rotations::sqlite(pool.clone()),
        };
        let mut checkpoints = None;
        if kind == DatabaseKind::Sqlite && !memory {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            checkpoints = Some(checkpoints::Checkpoints::start(&options).await?);
        }
        Ok(Self {
            pool,
            kind,
            rotations,
            checkpoints,
        })
    }

    /// Applies the migrations of this database kind (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.kind {
            DatabaseKind::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.stop();
        }
        self.pool.close().await;
        self.rotations.close().await;
    }
}

/// Runs a SQLite transaction written out as one query (`BEGIN IMMEDIATE; ...;
/// COMMIT;`) in one call to the connection's thread (each call is a hop there and
/// back), returning the rows of all its statements. When a statement fails, the
/// transaction is rolled back here: the connection goes back to the pool with none
/// open, and nothing of it is kept.
async fn sqlite_transaction_in_one_call<'q>(
    pool: &AnyPool,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Result<Vec<AnyRow>> {
    let mut conn = pool.acquire().await?;
    match query.fetch_all(&mut *conn).await {
        Ok(rows) => Ok(rows),
        Err(e) => {
            // Fails harmlessly when the transaction never began (BEGIN was refused).
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e.into())
        }
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty()).then(|| path.to_string())
}

/// Maps a unique-index violation to `Conflict(column)`; both databases name the column
/// (or the index built from it) in the message.
/// The INSERT of a whole account, to run on the pool or inside a transaction.
fn insert_account_query(
    a: &Account,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO accounts (id, username, kind, status, fiscal_code, given_name, \
         family_name, birth_date, birth_place, sex, personal_email, institutional_email, \
         password_hash, password_must_change, password_expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(a.id.as_str())
    .bind(a.username.as_str())
    .bind(a.kind.as_str())
    .bind(a.status.as_str())
    .bind(a.fiscal_code.as_ref().map(|f| f.as_str().to_string()))
    .bind(&a.given_name)
    .bind(&a.family_name)
    .bind(a.birth_date.map(|d| d.format("%Y-%m-%d").to_string()))
    .bind(a.birth_place.clone())
    .bind(a.sex.map(|s| s.as_str().to_string()))
    .bind(a.personal_email.as_ref().map(|e| e.as_str().to_string()))
    .bind(
        a.institutional_email
            .as_ref()
            .map(|e| e.as_str().to_string()),
    )
    .bind(a.password.as_ref().map(|p| p.as_str().to_string()))
    .bind(i64::from(a.password_must_change))
    .bind(a.password_expires_at)
    .bind(a.created_at)
    .bind(a.updated_at)
}

fn conflict_or(e: sqlx::Error, columns: &[&'static str]) -> CoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let message = db.message().to_string();
        let constraint = db.constraint().unwrap_or_default().to_string();
        for column in columns {
            if message.contains(column) || constraint.contains(column) {
                return CoreError::Conflict(column);
            }
        }
        return CoreError::Conflict("unique");
    }
    CoreError::Storage(e)
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> CoreError {
    CoreError::Invalid(format!("stored {what} is not valid: {detail}"))
}

fn account_from_row(row: &AnyRow) -> Result<Account> {
    let opt =
        |name: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(name)?) };
    let fiscal_code = opt("fiscal_code")?
        .map(|s| FiscalCode::parse(&s).map_err(|e| corrupt("fiscal code", e)))
        .transpose()?;
    let birth_date = opt("birth_date")?
        .map(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|e| corrupt("birth date", e)))
        .transpose()?;
    let sex = opt("sex")?
        .map(|s| Sex::parse(&s).ok_or_else(|| corrupt("sex", s)))
        .transpose()?;
    let email = |name: &str| -> Result<Option<Email>> {
        opt(name)?
            .map(|s| Email::parse(&s).map_err(|e| corrupt("email", e)))
            .transpose()
    };
    Ok(Account {
        id: AccountId::from_string(row.try_get("id")?),
        username: Username::parse(&row.try_get::<String, _>("username")?)
            .map_err(|e| corrupt("username", e))?,
        kind: AccountKind::parse(&row.try_get::<String, _>("kind")?)
            .map_err(|e| corrupt("kind", e))?,
        status: AccountStatus::parse(&row.try_get::<String, _>("status")?)
            .map_err(|e| corrupt("status", e))?,
        fiscal_code,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        birth_date,
        birth_place: opt("birth_place")?,
        sex,
        personal_email: email("personal_email")?,
        institutional_email: email("institutional_email")?,
        password: opt("password_hash")?.map(PasswordHash::from_phc),
        password_must_change: row.try_get::<i64, _>("password_must_change")? != 0,
        password_expires_at: row.try_get("password_expires_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The unique columns an account is looked up by; each has its query as a constant,
/// so the hot lookups (userinfo reads the account every time) build no SQL string.
#[derive(Clone, Copy)]
enum AccountKey {
    Id,
    Username,
    FiscalCode,
}

/// The columns [`account_from_row`] reads, for `SELECT … FROM accounts a`.
macro_rules! account_columns {
    () => {
        "a.id, a.username, a.kind, a.status, a.fiscal_code, a.given_name, a.family_name, \
         a.birth_date, a.birth_place, a.sex, a.personal_email, a.institutional_email, \
         a.password_hash, a.password_must_change, a.password_expires_at, a.created_at, \
         a.updated_at"
    };
}
use account_columns;

impl AccountKey {
    fn query(self) -> &'static str {
        macro_rules! by {
            ($column:literal) => {
                concat!(
                    "SELECT ",
                    account_columns!(),
                    " FROM accounts a WHERE a.",
                    $column,
                    " = $1"
                )
            };
        }
        match self {
            AccountKey::Id => by!("id"),
            AccountKey::Username => by!("username"),
            AccountKey::FiscalCode => by!("fiscal_code"),
        }
    }
}

impl SqlStore {
    async fn account_where(&self, key: AccountKey, value: &str) -> Result<Option<Account>> {
        let row = sqlx::query(key.query())
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn insert_account(&self, a: &Account) -> Result<()> {
        insert_account_query(a)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, &["username", "fiscal_code"]))?;
        Ok(())
    }

    async fn account_by_id(&self, id: &AccountId) -> Result<Option<Account>> {
        self.account_where(AccountKey::Id, id.as_str()).await
    }

    async fn account_by_username(&self, username: &Username) -> Result<Option<Account>> {
        self.account_where(AccountKey::Username, username.as_str())
            .await
    }

    async fn account_by_fiscal_code(&self, fiscal_code: &FiscalCode) -> Result<Option<Account>> {
        self.account_where(AccountKey::FiscalCode, fiscal_code.as_str())
            .await
    }

    async fn usernames_like(&self, base: &str) -> Result<Vec<String>> {
        // LIKE treats '_' as a wildcard; usernames may hold it, so filter again below.
        let pattern = format!("{}%", base.replace(['\\', '%'], ""));
        let rows = sqlx::query("SELECT username FROM accounts WHERE username LIKE $1")
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        let mut names = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row.try_get("username")?;
            if let Some(rest) = name.strip_prefix(base)
                && rest.chars().all(|c| c.is_ascii_digit())
            {
                names.push(name);
            }
        }
        Ok(names)
    }

    async fn update_profile(&self, a: &Account) -> Result<()> {
        let done = sqlx::query(
            "UPDATE accounts SET kind = $2, status = $3, fiscal_code = $4, given_name = $5, \
             family_name = $6, birth_date = $7, birth_place = $8, sex = $9, personal_email = $10, \
             institutional_email = $11, updated_at = $12 WHERE id = $1",
        )
        .bind(a.id.as_str())
        .bind(a.kind.as_str())
        .bind(a.status.as_str())
        .bind(a.fiscal_code.as_ref().map(|f| f.as_str().to_string()))
        .bind(&a.given_name)
        .bind(&a.family_name)
        .bind(a.birth_date.map(|d| d.format("%Y-%m-%d").to_string()))
        .bind(a.birth_place.clone())
        .bind(a.sex.map(|s| s.as_str().to_string()))
        .bind(a.personal_email.as_ref().map(|e| e.as_str().to_string()))
        .bind(
            a.institutional_email
                .as_ref()
                .map(|e| e.as_str().to_string()),
        )
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, &["fiscal_code"]))?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound("account"));
        }
        Ok(())
    }

    async fn replace_password(
        &self,
        id: &AccountId,
        hash: &PasswordHash,
        must_change: bool,
        expires_at: Option<i64>,
        keep_history: usize,
    ) -> Result<()> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let previous: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else {
            return Err(CoreError::NotFound("account"));
        };
        if let Some(previous) = previous {
            sqlx::query(
                "INSERT INTO password_history (account_id, password_hash, created_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(id.as_str())
            .bind(previous)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_must_change = $3, \
             password_expires_at = $4, updated_at = $5 WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(hash.as_str())
        .bind(i64::from(must_change))
        .bind(expires_at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        // Keep only the newest entries; the current password is checked separately.
        let keep = i64::try_from(keep_history).unwrap_or(i64::MAX);
        sqlx::query(
            "DELETE FROM password_history WHERE account_id = $1 AND seq NOT IN \
             (SELECT seq FROM password_history WHERE account_id = $1 \
              ORDER BY seq DESC LIMIT $2)",
        )
        .bind(id.as_str())
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rehash_password(&self, id: &AccountId, hash: &PasswordHash) -> Result<()> {
        sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(hash.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn password_history(&self, id: &AccountId, limit: usize) -> Result<Vec<PasswordHash>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE account_id = $1 \
             ORDER BY seq DESC LIMIT $2",
        )
        .bind(id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(PasswordHash::from_phc).collect())
    }

    async fn count_accounts(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&self.pool)
            .await?)
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn push_mail(&self, mail: &OutgoingMail) -> Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO mail_outbox (id, recipient, subject, body_text, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(mail.to.as_str())
        .bind(&mail.subject)
        .bind(&mail.body_text)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        for (position, a) in mail.attachments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO mail_attachments (mail_id, position, filename, content_type, content) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&a.filename)
            .bind(&a.content_type)
            .bind(a.content.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_mail(&self, limit: i64) -> Result<Vec<StoredMail>> {
        let rows = sqlx::query(
            "SELECT id, recipient, subject, body_text, created_at FROM mail_outbox \
             ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut mails = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let attachments = sqlx::query(
                "SELECT filename, content_type, content FROM mail_attachments \
                 WHERE mail_id = $1 ORDER BY position",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Attachment {
                    filename: r.try_get("filename")?,
                    content_type: r.try_get("content_type")?,
                    content: r.try_get("content")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            mails.push(StoredMail {
                id,
                to: row.try_get("recipient")?,
                subject: row.try_get("subject")?,
                body_text: row.try_get("body_text")?,
                attachments,
                created_at: row.try_get("created_at")?,
            });
        }
        Ok(mails)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
