//! The Redis cache of production mode: every instance sees the same sessions, codes,
//! counters and replay caches. Keys are namespaced by a prefix so that several
//! deployments (or test runs) can share one Redis.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use super::Cache;
use crate::{CoreError, Result};

/// How long a Redis call may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        RedisCache::connect_with(url, prefix, DEFAULT_TIMEOUT).await
    }

    /// Like `connect`, with `timeout` for connecting and for each answer: past it a
    /// cache call fails (and the request gets its 503) instead of waiting.
    pub async fn connect_with(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Deletes every key under this cache's prefix (used by tests to clean up).
    pub async fn clear_namespace(&self) -> Result<()> {
        let mut con = self.connection.clone();
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> =
                con.scan_match(format!("{}*", self.prefix)).await?;
            let mut keys = Vec::new();
            while let Some(k) = futures_next(&mut iter).await {
                keys.push(k?);
            }
            keys
        };
        if !keys.is_empty() {
            let mut con = self.connection.clone();
            let _: () = con.del(keys).await?;
        }
        Ok(())
    }
}

async fn futures_next(
    iter: &mut redis::AsyncIter<'_, String>,
) -> Option<std::result::Result<String, redis::RedisError>> {
    iter.next_item().await
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut con = self.connection.clone();
        Ok(con.get(self.key(key)).await?)
    }

    async fn any_exists(&self, keys: &[&str]) -> Result<bool> {
        if keys.is_empty() {
            return Ok(false);
        }
        let mut con = self.connection.clone();
        let mut exists = redis::cmd("EXISTS");
        for key in keys {
            exists.arg(self.key(key));
        }
        let found: u64 = exists.query_async(&mut con).await?;
        Ok(found > 0)
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let mut con = self.connection.clone();
        let _: () = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        let mut con = self.connection.clone();
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut con)
            .await?;
        Ok(stored.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut con = self.connection.clone();
        Ok(redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut con)
            .await?)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let mut con = self.connection.clone();
        let _: () = con.del(self.key(key)).await?;
        Ok(())
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<u64> {
        let mut con = self.connection.clone();
        let key = self.key(key);
        // SET NX starts the window with the first hit; both commands run as one.
        let (_, n): (Option<String>, u64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(millis(window))
            .cmd("INCR")
            .arg(&key)
            .query_async(&mut con)
            .await?;
        Ok(n)
    }

    async fn time_to_live(&self, key: &str) -> Result<Option<Duration>> {
        let mut con = self.connection.clone();
        let ms: i64 = redis::cmd("PTTL")
            .arg(self.key(key))
            .query_async(&mut con)
            .await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut con = self.connection.clone();
        let key = self.key(key);
        let _: () = redis::pipe()
            .atomic()
            .sadd(&key, member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .arg("GT")
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(ttl))
            .arg("NX")
            .ignore()
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        let mut con = self.connection.clone();
        let _: () = con.srem(self.key(key), member).await?;
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        let mut con = self.connection.clone();
        Ok(con.smembers(self.key(key)).await?)
    }

    async fn ping(&self) -> Result<()> {
        let mut con = self.connection.clone();
        let pong: String = redis::cmd("PING").query_async(&mut con).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CoreError::Cache(format!("unexpected PING answer {pong}")))
        }
    }
}
