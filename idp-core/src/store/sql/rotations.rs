//! Refresh-token rotations, several per statement (PostgreSQL) or per transaction
//! (SQLite).
//!
//! A rotation is one short write: spend the old token, store its replacement, read the
//! grant, its account and roles. Run one at a time, the database spends most of its
//! time on what every write costs whatever its size: on PostgreSQL a round trip, the
//! executor's set-up, a commit and its WAL flush; on SQLite a hop to the connection's
//! thread and a commit that appends every page it touched to the WAL (a rotation
//! touches four or five; the table's last pages are shared by a batch's rotations).
//! The batcher queues the rotations that arrive while earlier ones are running and
//! sends each queue as one statement (one transaction on SQLite), with at most
//! [`Backend::in_flight`] running at once: with one request at a time nothing waits (a
//! batch of one goes out at once), and under load the batches grow by themselves. This
//! is group commit, done where the statement is built.
//!
//! What stays as with one rotation per transaction:
//! - A batch is atomic: one that fails spends nothing, and each of its rotations gets
//!   the error (a client may retry with the same token).
//! - One token is spent once. A batch only spends unused tokens, and two batches that
//!   hold the same token run one after the other (PostgreSQL orders them by the
//!   token's row lock, SQLite has one writer): the second finds it used. Twice in one
//!   queue (a replay racing the first use), the second goes into the next batch, which
//!   finds it used.
//! - The plans stay index lookups whatever the batch size: the tokens are found
//!   through the primary key, and each grant, account and role list by its key. On
//!   PostgreSQL the old tokens are matched by `token_hash = ANY(...)` and the rest is
//!   read by a lateral subquery per rotation (`OFFSET 0` keeps PostgreSQL from turning
//!   it into a join over the whole table); on SQLite every statement loops over the
//!   batch's JSON array (`json_each`) and looks each row up by its key.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{account_columns, sqlite_transaction_in_one_call};
use crate::grant::Rotation;
use crate::{CoreError, Result};

/// At most this many rotations go into one statement.
pub(super) const MAX_BATCH: usize = 256;

/// Where the batches run, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backend {
    /// [`ROTATE_BATCH`] on connections of the batcher's own.
    Postgres,
    /// [`SQLITE_ROTATE_BATCH`] on the store's pool.
    Sqlite,
}

impl Backend {
    /// At most this many batches run at once. PostgreSQL runs two side by side (each
    /// holds one connection): one is sent while the other commits. SQLite has one
    /// writer, so a second batch would only wait for the first; what arrives meanwhile
    /// waits in the queue instead, and goes out in the next batch.
    pub(super) const fn in_flight(self) -> usize {
        match self {
            Backend::Postgres => 2,
            Backend::Sqlite => 1,
        }
    }
}

/// The batched rotations of one store: the connections they run on, and the task that
/// batches them (started on first use, on the Tokio runtime that uses the store). Cheap
/// to clone.
#[derive(Clone, Debug)]
pub(super) struct Rotations {
    backend: Backend,
    pool: AnyPool,
    /// Where rotations wait for the batching task, which ends when the last clone of
    /// the queue is dropped.
    queue: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl Rotations {
    /// On PostgreSQL: [`Backend::in_flight`] connections of their own, opened when first
    /// needed, on which the planner may not scan a table. The statement's plan is kept
    /// per connection and made when it first runs, often on a new database whose tables
    /// are still nearly empty and not yet analyzed: a scan of `refresh_tokens` then
    /// looks cheapest and stays in the plan as the table grows (seen: rotations slowing
    /// from 5,100/s to 3,200/s within 30 s on a fresh database, back to 8,600/s after
    /// an ANALYZE). Every table this statement reads is read by its primary key, so an
    /// index lookup is always right.
    pub(super) fn postgres(options: AnyConnectOptions, acquire_timeout: Duration) -> Self {
        let pool = AnyPoolOptions::new()
            .max_connections(Backend::Postgres.in_flight() as u32)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SET enable_seqscan = off")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Self {
            backend: Backend::Postgres,
            pool,
            queue: Arc::default(),
        }
    }

    /// On SQLite: the store's own pool (one writer at a time whatever the pool's size;
    /// SQLite's planner needs no help).
    pub(super) fn sqlite(pool: AnyPool) -> Self {
        Self {
            backend: Backend::Sqlite,
            pool,
            queue: Arc::default(),
        }
    }

    /// Runs one rotation in the next batch: the rows of [`ROTATE_BATCH`] for it, none
    /// when the old token was not spent (used, expired or unknown).
    pub(super) async fn rotate(&self, r: &Rotation<'_>) -> Result<Vec<AnyRow>> {
        let queue = self.queue.get_or_init(|| {
            let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(batch_rotations(self.backend, self.pool.clone(), rx));
            queue
        });
        let (reply, rows) = oneshot::channel();
        let item = Item {
            ord: 0,
            o: r.old_hash.to_owned(),
            n: r.new_hash.to_owned(),
            c: r.client_id.to_owned(),
            t: r.now,
            l: r.ttl_secs,
        };
        let stopped = || CoreError::Storage(sqlx::Error::PoolClosed);
        queue
            .send(Pending { item, reply })
            .await
            .map_err(|_| stopped())?;
        rows.await.map_err(|_| stopped())?
    }

    /// Closes the batcher's own connections (PostgreSQL); the SQLite batches use the
    /// store's pool, which the store closes.
    pub(super) async fn close(&self) {
        if self.backend == Backend::Postgres {
            self.pool.close().await;
        }
    }
}

/// One rotation waiting for its batch, and where its rows go.
struct Pending {
    item: Item,
    reply: oneshot::Sender<Result<Vec<AnyRow>>>,
}

/// One rotation as the statement reads it (a JSON array of these): `o` the old token's
/// hash, `n` the new one's, `c` the presenting client, `t` now, `l` the new token's
/// lifetime in seconds, `ord` its place in the batch.
#[derive(Serialize)]
struct Item {
    ord: i64,
    o: String,
    n: String,
    c: String,
    t: i64,
    l: i64,
}

async fn batch_rotations(backend: Backend, pool: AnyPool, mut queue: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(backend.in_flight()));
    // Wait for a free slot before taking anything: what arrives meanwhile queues up
    // and goes out together.
    while let Ok(slot) = in_flight.clone().acquire_owned().await {
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            batch.push(next);
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            // A token twice in the queue: the first goes in this batch, the second in
            // the next one, which finds it used (see the module's comment).
            let mut batch = Some(batch);
            while let Some(this) = batch.take() {
                let (once, again) = split_repeated_tokens(this);
                run_batch(backend, &pool, once).await;
                batch = (!again.is_empty()).then_some(again);
            }
            drop(slot);
        });
    }
}

/// The batch sorted by old token, each token once, and the rotations that repeat a
/// token of the batch. In token order, two instances' PostgreSQL batches that share
/// tokens (a replay sent to both) lock them in the same order and cannot deadlock.
fn split_repeated_tokens(mut batch: Vec<Pending>) -> (Vec<Pending>, Vec<Pending>) {
    batch.sort_by(|a, b| a.item.o.cmp(&b.item.o));
    let mut once: Vec<Pending> = Vec::with_capacity(batch.len());
    let mut again = Vec::new();
    for p in batch {
        match once.last() {
            Some(last) if last.item.o == p.item.o => again.push(p),
            _ => once.push(p),
        }
    }
    for (ord, p) in once.iter_mut().enumerate() {
        p.item.ord = ord as i64;
    }
    (once, again)
}

async fn run_batch(backend: Backend, pool: &AnyPool, batch: Vec<Pending>) {
    let items: Vec<&Item> = batch.iter().map(|p| &p.item).collect();
    let result = match (serde_json::to_string(&items), backend) {
        (Err(e), _) => Err(CoreError::Invalid(format!("rotation batch: {e}"))),
        (Ok(json), Backend::Postgres) => {
            let mut hashes = String::with_capacity(batch.len() * 65);
            for p in &batch {
                if !hashes.is_empty() {
                    hashes.push(' ');
                }
                // Token hashes are hex (`TokenHash`): no spaces, so the list splits back.
                hashes.push_str(&p.item.o);
            }
            sqlx::query(ROTATE_BATCH)
                .bind(hashes)
                .bind(json)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)
        }
        (Ok(json), Backend::Sqlite) => {
            let query = sqlx::query(SQLITE_ROTATE_BATCH).bind(json);
            sqlite_transaction_in_one_call(pool, query)
                .await
                .and_then(|rows| rows_of_spent_tokens(&batch, rows))
        }
    };
    // Each row's `ord`: the rows come ordered by it, to split among the rotations.
    let result = result.and_then(|rows| {
        let ords = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("ord"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((rows, ords))
    });
    match result {
        Ok((rows, ords)) => {
            let mut rows = ords.into_iter().zip(rows).peekable();
            for (ord, p) in batch.into_iter().enumerate() {
                let mut mine = Vec::new();
                while let Some((_, row)) = rows.next_if(|(o, _)| *o == ord as i64) {
                    mine.push(row);
                }
                let _ = p.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            // The batch failed: none of its rotations took effect (a row without its
            // `ord` would be a bug in the statement). The first gets the error itself,
            // the others its text, as unavailable when it was.
            let text = format!("batched refresh-token rotation failed: {e}");
            let unavailable = e.is_unavailable();
            let mut batch = batch.into_iter();
            if let Some(first) = batch.next() {
                let _ = first.reply.send(Err(e));
            }
            for p in batch {
                let copy = if unavailable {
                    sqlx::Error::Io(std::io::Error::other(text.clone()))
                } else {
                    sqlx::Error::Protocol(text.clone())
                };
                let _ = p.reply.send(Err(CoreError::Storage(copy)));
            }
        }
    }
}

/// The rows of [`SQLITE_ROTATE_BATCH`] as [`ROTATE_BATCH`] gives them: the rows of the
/// rotations whose token this batch spent (the UPDATE's `spent` rows name them), in
/// order. The final SELECT also finds a token spent earlier in the same second, by a
/// batch before: that rotation spent nothing, and gets no rows.
fn rows_of_spent_tokens(batch: &[Pending], rows: Vec<AnyRow>) -> Result<Vec<AnyRow>> {
    let mut spent = HashSet::new();
    let mut read = Vec::with_capacity(rows.len());
    for row in rows {
        if row.try_column("spent").is_ok() {
            spent.insert(row.try_get::<String, _>("spent")?);
        } else {
            read.push(row);
        }
    }
    let mut mine = Vec::with_capacity(read.len());
    for row in read {
        let ord: i64 = row.try_get("ord")?;
        let item = usize::try_from(ord)
            .ok()
            .and_then(|ord| batch.get(ord))
            .ok_or_else(|| CoreError::Invalid(format!("rotation batch: no rotation {ord}")))?;
        if spent.contains(&item.item.o) {
            mine.push(row);
        }
    }
    Ok(mine)
}

/// The rotations of a batch ($1 the old hashes, space-separated; $2 a JSON array of
/// [`Item`]s) as one statement: spend the unused, unexpired old tokens; store each
/// replacement for an active grant of the presenting client; return, per spent token,
/// its `ord`, the grant (columns `g_*`), the replacement's expiry (`new_expires_at`,
/// NULL when none was stored), the account and one row per role, ordered by `ord`.
pub(super) const ROTATE_BATCH: &str = concat!(
    "WITH input AS ( \
         SELECT * FROM json_to_recordset($2::json) \
             AS i(ord BIGINT, o TEXT, n TEXT, c TEXT, t BIGINT, l BIGINT) \
     ), spent AS ( \
         UPDATE refresh_tokens r SET used_at = i.t FROM input i \
         WHERE r.token_hash = ANY(string_to_array($1, ' ')) AND r.token_hash = i.o \
             AND r.used_at IS NULL AND r.expires_at > i.t \
         RETURNING r.grant_id, i.ord, i.n, i.c, i.t, i.l \
     ), fresh AS ( \
         INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
         SELECT s.n, g.id, s.t, CASE WHEN s.t + s.l < g.expires_at THEN s.t + s.l ELSE g.expires_at END \
         FROM spent s CROSS JOIN LATERAL \
             (SELECT * FROM grants g WHERE g.id = s.grant_id OFFSET 0) g \
         WHERE g.client_id = s.c AND g.revoked_at IS NULL AND g.expires_at > s.t \
         RETURNING token_hash, expires_at \
     ) \
     SELECT s.ord, g.id AS g_id, g.account_id AS g_account_id, g.client_id AS g_client_id, \
         g.scope AS g_scope, g.sid AS g_sid, g.auth_time AS g_auth_time, g.acr AS g_acr, \
         g.amr AS g_amr, g.created_at AS g_created_at, g.expires_at AS g_expires_at, \
         g.revoked_at AS g_revoked_at, f.expires_at AS new_expires_at, ",
    account_columns!(),
    ", r.role FROM spent s \
     CROSS JOIN LATERAL (SELECT * FROM grants g WHERE g.id = s.grant_id OFFSET 0) g \
     LEFT JOIN fresh f ON f.token_hash = s.n \
     LEFT JOIN LATERAL (SELECT * FROM accounts a WHERE a.id = g.account_id OFFSET 0) a ON true \
     LEFT JOIN LATERAL \
         (SELECT r.role FROM account_roles r WHERE r.account_id = a.id OFFSET 0) r ON true \
     ORDER BY s.ord, r.role"
);

/// The rotations of a batch on SQLite ($1 a JSON array of [`Item`]s, each token once)
/// as one transaction: store each replacement whose old token is unused and unexpired,
/// for an active grant of the presenting client; spend those old tokens, returning each
/// one spent (`spent`, its hash); then read, per token now marked used at its `t`, its
/// `ord`, the grant (columns `g_*`), the replacement's expiry (`new_expires_at`, NULL
/// when none was stored), the account and one row per role, ordered by `ord`, as
/// [`ROTATE_BATCH`] does. SQLite has no data-modifying CTEs, and its RETURNING cannot
/// read the other tables of an UPDATE ... FROM: three statements, in one transaction
/// under the write lock, sent in one call.
pub(super) const SQLITE_ROTATE_BATCH: &str = concat!(
    "BEGIN IMMEDIATE; ",
    "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
     SELECT j.value ->> 'n', g.id, j.value ->> 't', \
         MIN((j.value ->> 't') + (j.value ->> 'l'), g.expires_at) \
     FROM json_each($1) j \
     JOIN refresh_tokens r ON r.token_hash = j.value ->> 'o' \
     JOIN grants g ON g.id = r.grant_id \
     WHERE r.used_at IS NULL AND r.expires_at > j.value ->> 't' \
         AND g.client_id = j.value ->> 'c' AND g.revoked_at IS NULL \
         AND g.expires_at > j.value ->> 't'; ",
    "UPDATE refresh_tokens SET used_at = j.value ->> 't' FROM json_each($1) j \
     WHERE refresh_tokens.token_hash = j.value ->> 'o' \
         AND refresh_tokens.used_at IS NULL AND refresh_tokens.expires_at > j.value ->> 't' \
     RETURNING token_hash AS spent; ",
    "SELECT j.key AS ord, g.id AS g_id, g.account_id AS g_account_id, \
         g.client_id AS g_client_id, g.scope AS g_scope, g.sid AS g_sid, \
         g.auth_time AS g_auth_time, g.acr AS g_acr, g.amr AS g_amr, \
         g.created_at AS g_created_at, g.expires_at AS g_expires_at, \
         g.revoked_at AS g_revoked_at, f.expires_at AS new_expires_at, ",
    account_columns!(),
    ", ro.role FROM json_each($1) j \
     JOIN refresh_tokens r ON r.token_hash = j.value ->> 'o' AND r.used_at = j.value ->> 't' \
     JOIN grants g ON g.id = r.grant_id \
     LEFT JOIN refresh_tokens f ON f.token_hash = j.value ->> 'n' \
     LEFT JOIN accounts a ON a.id = g.account_id \
     LEFT JOIN account_roles ro ON ro.account_id = a.id \
     ORDER BY j.key, ro.role; ",
    "COMMIT;"
);
