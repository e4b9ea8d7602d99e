//! The in-process cache of the embedded default (one instance only). Written by hand
//! rather than with a caching crate because it must mirror Redis's semantics exactly
//! (GETDEL, SET NX, INCR with a window, sets), which caching crates do not offer as
//! atomic operations; it is a mutex over a map with expiry times.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::Cache;
use crate::{CoreError, Result};

enum Value {
    Bytes(Vec<u8>),
    Counter(u64),
    Set(BTreeSet<String>),
}

struct Entry {
    value: Value,
    expires_at: Instant,
}

pub struct MemoryCache {
    entries: Mutex<Entries>,
}

struct Entries {
    map: HashMap<String, Entry>,
    /// The size past which the next sweep runs.
    sweep_above: usize,
}

const SWEEP_ABOVE: usize = 10_000;

impl Default for MemoryCache {
    fn default() -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                sweep_above: SWEEP_ABOVE,
            }),
        }
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> R) -> Result<R> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| CoreError::Cache("in-process cache lock poisoned".into()))?;
        let now = Instant::now();
        // Expired entries are dropped when met, and swept in bulk once the map grows.
        // The next sweep waits until the map has doubled again, so that many live
        // entries (SSO sessions, revocation marks) do not make every call a full scan.
        if entries.map.len() > entries.sweep_above {
            entries.map.retain(|_, e| e.expires_at > now);
            entries.sweep_above = SWEEP_ABOVE.max(2 * entries.map.len());
        }
        Ok(f(&mut entries.map, now))
    }
}

fn live<'a>(map: &'a mut HashMap<String, Entry>, key: &str, now: Instant) -> Option<&'a mut Entry> {
    if map.get(key).is_some_and(|e| e.expires_at <= now) {
        map.remove(key);
    }
    map.get_mut(key)
}

fn wrong_type(key: &str) -> CoreError {
    CoreError::Cache(format!("key {key} holds a value of another type"))
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|map, now| match live(map, key, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(Value::Counter(n)) => Ok(Some(n.to_string().into_bytes())),
            Some(Value::Set(_)) => Err(wrong_type(key)),
        })?
    }

    async fn mark(&self, key: &str, ttl: Duration) -> Result<()> {
        self.put(key, b"1", ttl).await
    }

    /// One lock, no round trip: nothing to remember (one process sees its own marks).
    async fn any_marked(&self, keys: &[&str]) -> Result<bool> {
        self.with(|map, now| keys.iter().any(|key| live(map, key, now).is_some()))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        self.with(|map, now| {
            map.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires_at: now + ttl,
                },
            );
        })
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        self.with(|map, now| {
            if live(map, key, now).is_some() {
                return false;
            }
            map.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires_at: now + ttl,
                },
            );
            true
        })
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|map, now| {
            live(map, key, now)?;
            match map.remove(key).map(|e| e.value) {
                Some(Value::Bytes(b)) => Some(b),
                Some(Value::Counter(n)) => Some(n.to_string().into_bytes()),
                Some(Value::Set(_)) | None => None,
            }
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.with(|map, _| {
            map.remove(key);
        })
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<u64> {
        self.with(|map, now| match live(map, key, now) {
            Some(Entry {
                value: Value::Counter(n),
                ..
            }) => {
                *n += 1;
                Ok(*n)
            }
            Some(_) => Err(wrong_type(key)),
            None => {
                map.insert(
                    key.to_string(),
                    Entry {
                        value: Value::Counter(1),
                        expires_at: now + window,
                    },
                );
                Ok(1)
            }
        })?
    }

    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        self.with(|map, now| live(map, key, now).map(|e| e.expires_at - now))
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        self.with(|map, now| {
            let expires_at = now + ttl;
            match live(map, key, now) {
                Some(Entry {
                    value: Value::Set(s),
                    expires_at: e,
                }) => {
                    s.insert(member.to_string());
                    *e = (*e).max(expires_at);
                    Ok(())
                }
                Some(_) => Err(wrong_type(key)),
                None => {
                    map.insert(
                        key.to_string(),
                        Entry {
                            value: Value::Set(BTreeSet::from([member.to_string()])),
                            expires_at,
                        },
                    );
                    Ok(())
                }
            }
        })?
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.with(|map, now| {
            let empty = match live(map, key, now) {
                Some(Entry {
                    value: Value::Set(s),
                    ..
                }) => {
                    s.remove(member);
                    s.is_empty()
                }
                _ => false,
            };
            if empty {
                map.remove(key);
            }
        })
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        self.with(|map, now| match live(map, key, now).map(|e| &e.value) {
            None => Ok(Vec::new()),
            Some(Value::Set(s)) => Ok(s.iter().cloned().collect()),
            Some(_) => Err(wrong_type(key)),
        })?
    }

    async fn ping(&self) -> Result<()> {
        self.with(|_, _| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(cache: &MemoryCache) -> (usize, usize) {
        let entries = cache.entries.lock().expect("lock");
        (entries.map.len(), entries.sweep_above)
    }

    #[tokio::test]
    async fn expired_entries_are_swept_and_live_ones_do_not_make_every_call_a_scan() {
        let cache = MemoryCache::new();
        let short = Duration::from_millis(20);
        for i in 0..SWEEP_ABOVE {
            cache
                .put(&format!("old:{i}"), b"1", short)
                .await
                .expect("put");
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Past the threshold, the next call sweeps what expired.
        let long = Duration::from_secs(600);
        cache.put("live:first", b"1", long).await.expect("put");
        cache.put("live:second", b"1", long).await.expect("put");
        assert_eq!(size(&cache).0, 2, "the expired entries are swept");

        // Live entries past the threshold: one sweep, then the threshold doubles, so
        // the next calls find nothing to sweep and do not scan.
        for i in 0..=SWEEP_ABOVE {
            cache
                .put(&format!("live:{i}"), b"1", long)
                .await
                .expect("put");
        }
        let (len, above) = size(&cache);
        assert!(len > SWEEP_ABOVE);
        assert_eq!(
            above,
            2 * (SWEEP_ABOVE + 1),
            "the threshold follows the live size"
        );
        assert!(cache.any_marked(&["live:0"]).await.expect("marked"));
        assert_eq!(size(&cache).1, above);
    }
}
