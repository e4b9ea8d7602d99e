//! Refresh-token rotations on PostgreSQL, several per statement.
//!
//! A rotation is one short write: spend the old token, store its replacement, read the
//! grant, its account and roles. Run one per statement, PostgreSQL spends most of its
//! time on what every statement costs whatever its size (a round trip, the executor's
//! set-up, a commit and its WAL flush) rather than on the rows. The batcher queues the
//! rotations that arrive while earlier ones are running and sends each queue as one
//! statement, with at most [`MAX_IN_FLIGHT`] statements running at once: with one
//! request at a time nothing waits (a batch of one goes out at once), and under load
//! the batches grow by themselves. This is group commit, done where the statement is
//! built.
//!
//! What stays as with one statement per rotation:
//! - A statement is atomic: a batch that fails spends nothing, and each of its
//!   rotations gets the error (a client may retry with the same token).
//! - One token is spent once. The UPDATE only spends an unused token, and two batches
//!   that hold the same token are ordered by its row lock: the second finds it used.
//!   Twice in one batch (a replay racing the first use), its row is updated once, for
//!   one of the two (an UPDATE ... FROM updates a row once however many input rows
//!   match it, and returns the input row that did), and the other finds it used.
//! - The plan stays index lookups whatever the batch size: the tokens are found
//!   through the primary key (`token_hash = ANY(...)`), and each grant, account and
//!   role list is read by a lateral subquery per rotation (`OFFSET 0` keeps PostgreSQL
//!   from turning it into a join over the whole table).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::account_columns;
use crate::grant::Rotation;
use crate::{CoreError, Result};

/// At most this many rotation statements run at once (each holds one connection).
pub(super) const MAX_IN_FLIGHT: usize = 2;
/// At most this many rotations go into one statement.
pub(super) const MAX_BATCH: usize = 256;

/// The batched rotations of one store: their own connections, and the task that
/// batches them (started on first use, on the Tokio runtime that uses the store). Cheap
/// to clone.
#[derive(Clone, Debug)]
pub(super) struct Rotations {
    pool: AnyPool,
    /// Where rotations wait for the batching task, which ends when the last clone of
    /// the queue is dropped.
    queue: Arc<OnceLock<mpsc::Sender<Pending>>>,
}

impl Rotations {
    /// [`MAX_IN_FLIGHT`] connections of their own, opened when first needed, on which
    /// the planner may not scan a table. The statement's plan is kept per connection
    /// and made when it first runs, often on a new database whose tables are still
    /// nearly empty and not yet analyzed: a scan of `refresh_tokens` then looks cheapest
    /// and stays in the plan as the table grows (seen: rotations slowing from 5,100/s
    /// to 3,200/s within 30 s on a fresh database, back to 8,600/s after an ANALYZE).
    /// Every table this statement reads is read by its primary key, so an index lookup
    /// is always right.
    pub(super) fn new(options: AnyConnectOptions, acquire_timeout: Duration) -> Self {
        let pool = AnyPoolOptions::new()
            .max_connections(MAX_IN_FLIGHT as u32)
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
            pool,
            queue: Arc::default(),
        }
    }

    /// Runs one rotation in the next batch: the rows of [`ROTATE_BATCH`] for it, none
    /// when the old token was not spent (used, expired or unknown).
    pub(super) async fn rotate(&self, r: &Rotation<'_>) -> Result<Vec<AnyRow>> {
        let queue = self.queue.get_or_init(|| {
            let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(batch_rotations(self.pool.clone(), rx));
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

    pub(super) async fn close(&self) {
        self.pool.close().await;
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

async fn batch_rotations(pool: AnyPool, mut queue: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
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
            run_batch(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn run_batch(pool: &AnyPool, mut batch: Vec<Pending>) {
    // The UPDATE locks the tokens in the order of the JSON array: in hash order, two
    // instances' batches that share tokens (a replay sent to both) cannot deadlock.
    batch.sort_unstable_by(|a, b| a.item.o.cmp(&b.item.o));
    let mut hashes = String::with_capacity(batch.len() * 65);
    for (ord, p) in batch.iter_mut().enumerate() {
        p.item.ord = ord as i64;
        if ord > 0 {
            hashes.push(' ');
        }
        // Token hashes are hex (`TokenHash`): no spaces, so the list splits back.
        hashes.push_str(&p.item.o);
    }
    let items: Vec<&Item> = batch.iter().map(|p| &p.item).collect();
    let result = match serde_json::to_string(&items) {
        Ok(json) => sqlx::query(ROTATE_BATCH)
            .bind(hashes)
            .bind(json)
            .fetch_all(pool)
            .await
            .map_err(CoreError::from),
        Err(e) => Err(CoreError::Invalid(format!("rotation batch: {e}"))),
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
            // The statement failed: none of its rotations took effect (a row without
            // its `ord` would be a bug in ROTATE_BATCH). The first gets the error
            // itself, the others its text, as unavailable when it was.
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
