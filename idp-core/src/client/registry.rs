//! The clients as the endpoints see them: every authorization and token request looks
//! its client up, so lookups are served from memory and refreshed from the store every
//! 30 seconds. A change made by another process (the admin CLI) shows within that time
//! (and the time of one read); a change made through this registry's owner shows at
//! once with `invalidate`.
//!
//! When a held client is due for a refresh, one lookup reads the store and the others
//! keep answering with what is held until it has: under load every request names the
//! same few clients, and each refresh would otherwise send every request in flight to
//! the store at once (on the embedded SQLite, one connection: a queue of them, and a
//! stall of every token request behind it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{Client, ClientId};
use crate::Result;
use crate::store::ClientStore;

/// How long a found client is served from memory before it is read again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(30);
/// Unknown ids are remembered briefly too, so that a flood of requests naming a client
/// that does not exist does not become a flood of queries.
const UNKNOWN_REFRESH_AFTER: Duration = Duration::from_secs(5);
/// Above this many entries the expired ones are swept (unknown ids are caller-chosen).
const SWEEP_ABOVE: usize = 4096;

#[derive(Clone)]
pub struct ClientRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ClientStore>,
    refresh_after: Duration,
    entries: RwLock<HashMap<ClientId, Entry>>,
}

struct Entry {
    client: Option<Arc<Client>>,
    fetched_at: Instant,
    /// Set while a lookup reads the store again for this entry.
    refreshing: Arc<AtomicBool>,
}

/// Clears an entry's `refreshing` when the lookup that set it ends, however it ends (a
/// request given up mid-read included), so that a later lookup reads the store again.
struct Refreshing(Arc<AtomicBool>);

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Entry {
    fn fresh(&self, now: Instant, refresh_after: Duration) -> bool {
        let limit = if self.client.is_some() {
            refresh_after
        } else {
            refresh_after.min(UNKNOWN_REFRESH_AFTER)
        };
        now.duration_since(self.fetched_at) < limit
    }
}

impl ClientRegistry {
    pub fn new(store: Arc<dyn ClientStore>) -> ClientRegistry {
        ClientRegistry::with_refresh(store, REFRESH_AFTER)
    }

    /// A registry whose entries are read again after `refresh_after` (tests use zero).
    pub fn with_refresh(store: Arc<dyn ClientStore>, refresh_after: Duration) -> ClientRegistry {
        ClientRegistry {
            inner: Arc::new(Inner {
                store,
                refresh_after,
                entries: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The client with this id, from memory when read recently, or while another lookup
    /// reads it again.
    pub async fn get(&self, id: &ClientId) -> Result<Option<Arc<Client>>> {
        let now = Instant::now();
        let _refreshing = {
            let entries = self.inner.entries.read().unwrap_or_else(|e| e.into_inner());
            match entries.get(id) {
                Some(entry) if entry.fresh(now, self.inner.refresh_after) => {
                    return Ok(entry.client.clone());
                }
                Some(entry) => {
                    if entry.refreshing.swap(true, Ordering::AcqRel) {
                        return Ok(entry.client.clone());
                    }
                    Some(Refreshing(Arc::clone(&entry.refreshing)))
                }
                None => None,
            }
        };
        let client = self.inner.store.client_by_id(id).await?.map(Arc::new);
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if entries.len() > SWEEP_ABOVE {
            let refresh_after = self.inner.refresh_after;
            entries.retain(|_, e| e.fresh(now, refresh_after));
        }
        entries.insert(
            id.clone(),
            Entry {
                client: client.clone(),
                fetched_at: now,
                refreshing: Arc::default(),
            },
        );
        Ok(client)
    }

    /// Forgets what is held for `id`, so that the next `get` reads the store.
    pub fn invalidate(&self, id: &ClientId) {
        self.inner
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The store behind the registry, for the admin operations that write clients
    /// (follow each write with [`ClientRegistry::invalidate`]).
    pub fn store(&self) -> &Arc<dyn ClientStore> {
        &self.inner.store
    }
}
