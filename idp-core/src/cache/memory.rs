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

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, Entry>>,
}

const SWEEP_ABOVE: usize = 10_000;

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> R) -> Result<R> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| CoreError::Cache("in-process cache lock poisoned".into()))?;
        let now = Instant::now();
        // Expired entries are dropped when met, and swept in bulk once the map grows.
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, e| e.expires_at > now);
        }
        Ok(f(&mut map, now))
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

    async fn any_exists(&self, keys: &[&str]) -> Result<bool> {
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
