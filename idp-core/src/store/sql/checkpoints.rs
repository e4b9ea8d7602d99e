//! SQLite's WAL checkpoints, off the request path.
//!
//! In WAL mode every commit appends its pages to the write-ahead log, and a checkpoint
//! copies them back into the database file. SQLite's own checkpoint runs inside the
//! commit that takes the log past `wal_autocheckpoint` pages, so that one request (and,
//! with the pool's one connection, every request queued behind it) waits for the copy.
//! Here a task of the store runs a PASSIVE checkpoint every [`INTERVAL`] on a connection
//! of its own: it copies what no reader still needs and never waits for a lock, and
//! readers and writers go on meanwhile (64 concurrent refresh rotations on one core did
//! 12-19% more, alternating with SQLite's own checkpoints). SQLite's own checkpoint stays
//! as a backstop, at [`BACKSTOP_PAGES`], for when this task falls behind (or has
//! stopped): the log never grows without bound. Under a steady stream of commits it
//! does fall behind: SQLite starts the log over only when a write begins with all of it
//! copied, which the task's copy, racing the commits, seldom leaves; the log then reaches
//! the backstop. Finishing the copy on the pool's connection to avoid that did fewer
//! rotations (README, *Benchmarks*).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection, Row};

/// How often the task checkpoints.
pub(super) const INTERVAL: Duration = Duration::from_millis(100);

/// The pool's connections checkpoint themselves only past this many pages of log (16
/// MiB at 4 KiB pages; SQLite's default is 1,000).
pub(super) const BACKSTOP_PAGES: u32 = 4_000;

/// Keeps the checkpoint task running: the task stops once every clone of the store that
/// holds this is gone, or when the store is closed.
#[derive(Clone, Debug)]
pub(super) struct Checkpoints {
    closed: Arc<AtomicBool>,
}

/// What one PASSIVE checkpoint did: the pages in the log, and how many of them are now
/// in the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpointed {
    pub log_pages: i64,
    pub copied_pages: i64,
}

impl Checkpoints {
    /// Opens the task's own connection and starts checkpointing on it.
    pub(super) async fn start(options: &AnyConnectOptions) -> crate::Result<Self> {
        let conn = options.connect().await?;
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(conn, Arc::downgrade(&closed)));
        Ok(Self { closed })
    }

    /// Stops the task at its next tick (it closes its connection).
    pub(super) fn stop(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

async fn run(mut conn: AnyConnection, closed: Weak<AtomicBool>) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match closed.upgrade() {
            Some(closed) if !closed.load(Ordering::Relaxed) => {}
            _ => break,
        }
        match checkpoint(&mut conn).await {
            Ok(done) => tracing::trace!(
                log_pages = done.log_pages,
                copied_pages = done.copied_pages,
                "SQLite WAL checkpoint"
            ),
            // The backstop keeps the log bounded; the next tick tries again.
            Err(e) => tracing::warn!(error = %e, "SQLite WAL checkpoint failed"),
        }
    }
    let _ = conn.close().await;
}

/// One PASSIVE checkpoint: copies the log's pages that no reader still needs into the
/// database file, without waiting for readers or writers.
pub(super) async fn checkpoint(conn: &mut AnyConnection) -> crate::Result<Checkpointed> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Checkpointed {
        log_pages: row.try_get(1)?,
        copied_pages: row.try_get(2)?,
    })
}
