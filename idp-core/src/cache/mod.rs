//! Short-lived shared state: SSO sessions, authorization codes, parked requests, rate
//! limits, replay caches. The in-process implementation serves the embedded default;
//! the Redis one lets several instances share the same state.

pub mod memory;
pub mod redis;
mod unmarked;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CoreError, Result};

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

/// Every operation is atomic on its own key, on both implementations.
#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a mark: a flag that, once set, stays until it expires (a revocation). This
    /// instance sees it from the moment this returns, the others as soon as they are
    /// told (see [`Cache::any_marked`]).
    async fn mark(&self, key: &str, ttl: Duration) -> Result<()>;
    /// Whether at least one of `keys` is marked: one call for several checks (the
    /// revocation marks an access token may carry). This runs on every access-token
    /// check, so an implementation may remember that keys are unmarked, as long as it
    /// forgets one as soon as it is marked anywhere: the Redis cache is told by Redis,
    /// which sends the announcement as it answers the instance that set the mark.
    async fn any_marked(&self, keys: &[&str]) -> Result<bool>;
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()>;
    /// Stores only when the key is absent; true when it stored (a replay check).
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool>;
    /// Reads and deletes in one step, so a single-use value is used once.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Adds one to a counter whose window starts at its first increment.
    async fn increment(&self, key: &str, window: Duration) -> Result<u64>;
    /// Time left before the key expires, when it exists.
    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>>;
    /// Adds a member to a set, extending the set's life to `ttl`.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;
    async fn set_remove(&self, key: &str, member: &str) -> Result<()>;
    async fn set_members(&self, key: &str) -> Result<Vec<String>>;
    async fn ping(&self) -> Result<()>;
}

/// Typed helpers over the byte interface, for any cache.
pub async fn get_json<T: DeserializeOwned>(cache: &dyn Cache, key: &str) -> Result<Option<T>> {
    match cache.get(key).await? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

pub async fn take_json<T: DeserializeOwned>(cache: &dyn Cache, key: &str) -> Result<Option<T>> {
    match cache.take(key).await? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

pub async fn put_json<T: Serialize + Sync>(
    cache: &dyn Cache,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| CoreError::Cache(e.to_string()))?;
    cache.put(key, &bytes, ttl).await
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| CoreError::Cache(format!("undecodable entry: {e}")))
}
