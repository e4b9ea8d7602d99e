//! Short-lived state the service provider needs (pending requests, replay cache); idp-server
//! implements it on its cache (memory or Redis).

use std::time::Duration;

use async_trait::async_trait;

#[async_trait]
pub trait SamlState: Send + Sync {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError>;
    /// Read and delete, atomically.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores only when the key is absent; returns whether it stored.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StateError>;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// An in-process `SamlState` (one instance; expired entries are dropped when touched and
/// swept on writes). For the test IdP harness, tests and single-instance setups;
/// idp-server uses its own cache (memory or Redis).
type Entries = std::collections::HashMap<String, (Vec<u8>, std::time::Instant)>;

#[derive(Default)]
pub struct MemoryState {
    entries: std::sync::Mutex<Entries>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StateError> {
        self.entries
            .lock()
            .map_err(|_| StateError("state lock poisoned".into()))
    }
}

#[async_trait]
impl SamlState for MemoryState {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        let now = std::time::Instant::now();
        let mut m = self.lock()?;
        m.retain(|_, (_, exp)| *exp > now);
        m.insert(key.to_string(), (value.to_vec(), now + ttl));
        Ok(())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let now = std::time::Instant::now();
        let mut m = self.lock()?;
        Ok(m.remove(key).filter(|(_, exp)| *exp > now).map(|(v, _)| v))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let now = std::time::Instant::now();
        let mut m = self.lock()?;
        m.retain(|_, (_, exp)| *exp > now);
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.to_string(), (value.to_vec(), now + ttl));
        Ok(true)
    }
}
