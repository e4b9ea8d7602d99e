//! The Redis cache of production mode: every instance sees the same sessions, codes,
//! counters and replay caches. Keys are namespaced by a prefix so that several
//! deployments (or test runs) can share one Redis.
//!
//! Revocation marks are checked on every introspection and userinfo call, and are
//! almost always absent. Each instance remembers the keys it found unmarked
//! ([`super::unmarked`]) and asks Redis only for the others. Setting a mark publishes its
//! key on the channel `{prefix}marks`, in the same transaction as the SET, and every
//! instance listens there on a connection of its own and forgets the key it is told
//! about. The listener pings Redis every [`LISTENER_PING`]; when the subscription is
//! lost (no answer within the timeout, or the connection closes) everything remembered
//! is forgotten and every check goes to Redis until the listener has subscribed again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::task::AbortHandle;

use super::Cache;
use super::unmarked::UnmarkedKeys;
use crate::{CoreError, Result};

/// How long a Redis call may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Most keys remembered as unmarked: the revocation marks of the access tokens in use
/// (two per token; as many tokens as `TokenService` remembers verified).
const UNMARKED_CAPACITY: usize = 20_000;

/// Longest a key is served as unmarked without asking Redis again: the bound on how
/// long a mark can go unseen if the subscription breaks without the listener noticing
/// (it pings every [`LISTENER_PING`], and gives up after the timeout).
const UNMARKED_MAX_AGE: Duration = Duration::from_secs(5);

/// How often the listener checks that its connection still answers.
const LISTENER_PING: Duration = Duration::from_secs(1);

/// How long the listener waits before subscribing again after losing its subscription;
/// doubled after each attempt that does not get as far as subscribing (Redis down, or
/// refusing `SUBSCRIBE`), up to [`LISTENER_RETRY_MAX`]. Meanwhile every check asks
/// Redis: slower, never wrong.
const LISTENER_RETRY: Duration = Duration::from_secs(1);
const LISTENER_RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    /// `{prefix}marks`, where setting a mark is announced.
    marks_channel: String,
    unmarked: Arc<UnmarkedKeys>,
    /// Stops the listener when the last clone is dropped.
    _listener: Arc<Listener>,
}

/// The task that receives the keys marked by any instance.
struct Listener(AbortHandle);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
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
        let connection = ConnectionManager::new_with_config(client.clone(), config).await?;
        let marks_channel = format!("{prefix}marks");
        let unmarked = Arc::new(UnmarkedKeys::new(UNMARKED_CAPACITY, UNMARKED_MAX_AGE));
        let listener = tokio::spawn(listen_for_marks(
            client,
            marks_channel.clone(),
            Arc::clone(&unmarked),
            timeout,
        ));
        Ok(Self {
            connection,
            prefix: prefix.to_string(),
            marks_channel,
            unmarked,
            _listener: Arc::new(Listener(listener.abort_handle())),
        })
    }

    /// Whether this instance is subscribed to the announcements of new marks, and so
    /// remembers the keys it finds unmarked (false while connecting, and from the loss of
    /// the subscription until it is back).
    pub fn is_listening_for_marks(&self) -> bool {
        self.unmarked.is_listening()
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

/// Subscribes to `channel` and forgets each key announced there, again after every loss
/// of the subscription, until aborted.
async fn listen_for_marks(
    client: redis::Client,
    channel: String,
    unmarked: Arc<UnmarkedKeys>,
    timeout: Duration,
) {
    // Attempts in a row that did not get as far as subscribing.
    let mut refused: u32 = 0;
    loop {
        let result = listen_once(&client, &channel, &unmarked, timeout).await;
        let subscribed = unmarked.is_listening();
        unmarked.deafen();
        refused = if subscribed {
            0
        } else {
            refused.saturating_add(1)
        };
        let retry = listener_retry(refused);
        match result {
            Ok(()) => {
                tracing::warn!(%channel, ?retry, "revocation-mark subscription closed by Redis; every check asks Redis until it is back")
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, ?retry, "revocation-mark subscription lost or refused; every check asks Redis until it is back")
            }
        }
        tokio::time::sleep(retry).await;
    }
}

/// The wait before the next attempt, after `refused` attempts in a row that did not get
/// as far as subscribing: [`LISTENER_RETRY`] after a lost subscription or a first
/// refusal, then doubling up to [`LISTENER_RETRY_MAX`].
fn listener_retry(refused: u32) -> Duration {
    LISTENER_RETRY
        .saturating_mul(1 << refused.saturating_sub(1).min(5))
        .min(LISTENER_RETRY_MAX)
}

/// One subscription, from connecting to its loss (an error, or Ok when Redis closed it).
async fn listen_once(
    client: &redis::Client,
    channel: &str,
    unmarked: &UnmarkedKeys,
    timeout: Duration,
) -> Result<()> {
    let lost =
        |what: &str| CoreError::Cache(format!("no answer from Redis within {timeout:?} ({what})"));
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| lost("connecting"))??;
    tokio::time::timeout(timeout, pubsub.subscribe(channel))
        .await
        .map_err(|_| lost("subscribing"))??;
    // Subscribed: every mark set from now on is announced to us.
    unmarked.listen();
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(LISTENER_PING);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                match message.get_payload::<String>() {
                    Ok(key) => unmarked.forget(&key),
                    // Not a key: forget everything rather than guess.
                    Err(_) => unmarked.forget_all(),
                }
            }
            _ = ping.tick() => {
                // Answered as a message while subscribed: any answer will do.
                let _: redis::Value = tokio::time::timeout(timeout, sink.ping())
                    .await
                    .map_err(|_| lost("ping"))??;
            }
        }
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

    async fn mark(&self, key: &str, ttl: Duration) -> Result<()> {
        let mut con = self.connection.clone();
        // One transaction: no instance can see the announcement before the mark.
        let _: () = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.key(key))
            .arg(1)
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.marks_channel)
            .arg(key)
            .ignore()
            .query_async(&mut con)
            .await?;
        // Seen here at once, whenever our own announcement arrives.
        self.unmarked.forget(key);
        Ok(())
    }

    async fn any_marked(&self, keys: &[&str]) -> Result<bool> {
        if keys.is_empty() || self.unmarked.all_unmarked(keys) {
            return Ok(false);
        }
        let ticket = self.unmarked.ticket();
        let mut con = self.connection.clone();
        let mut exists = redis::cmd("EXISTS");
        for key in keys {
            exists.arg(self.key(key));
        }
        let found: u64 = exists.query_async(&mut con).await?;
        if found == 0 {
            self.unmarked.remember(ticket, keys);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_retries_after_a_second_and_backs_off_while_refused() {
        let waits: Vec<u64> = (0..9).map(|n| listener_retry(n).as_secs()).collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(listener_retry(u32::MAX), LISTENER_RETRY_MAX);
    }
}
