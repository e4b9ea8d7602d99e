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
