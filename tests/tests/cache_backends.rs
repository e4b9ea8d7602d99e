//! The cache contract, written once and run on the in-process cache and on Redis.

use std::sync::Arc;
use std::time::Duration;

use idp_core::cache::{Cache, MemoryCache, RedisCache};

async fn values_expire(cache: Arc<dyn Cache>) {
    cache
        .put("k", b"v", Duration::from_millis(300))
        .await
        .expect("put");
    assert_eq!(cache.get("k").await.expect("get"), Some(b"v".to_vec()));
    let ttl = cache
        .time_to_live("k")
        .await
        .expect("ttl")
        .expect("has ttl");
    assert!(ttl <= Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get("k").await.expect("get"), None);
    assert_eq!(cache.time_to_live("k").await.expect("ttl"), None);
}

async fn a_taken_value_is_gone(cache: Arc<dyn Cache>) {
    cache
        .put("code", b"grant", Duration::from_secs(60))
        .await
        .expect("put");
    assert_eq!(
        cache.take("code").await.expect("take"),
        Some(b"grant".to_vec())
    );
    assert_eq!(cache.take("code").await.expect("take"), None);
    assert_eq!(cache.get("code").await.expect("get"), None);
}

async fn put_if_absent_refuses_a_replay(cache: Arc<dyn Cache>) {
    let ttl = Duration::from_secs(60);
    assert!(
        cache
            .put_if_absent("assertion-1", b"1", ttl)
            .await
            .expect("first")
    );
    assert!(
        !cache
            .put_if_absent("assertion-1", b"2", ttl)
            .await
            .expect("replay")
    );
    assert_eq!(
        cache.get("assertion-1").await.expect("get"),
        Some(b"1".to_vec())
    );
}

async fn counters_count_within_their_window(cache: Arc<dyn Cache>) {
    let window = Duration::from_millis(400);
    for expected in 1..=3 {
        assert_eq!(
            cache.increment("login:x", window).await.expect("incr"),
            expected
        );
    }
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(cache.increment("login:x", window).await.expect("incr"), 1);
}

async fn sets_collect_members(cache: Arc<dyn Cache>) {
    let ttl = Duration::from_secs(60);
    cache.set_add("sessions", "a", ttl).await.expect("add");
    cache.set_add("sessions", "b", ttl).await.expect("add");
    cache
        .set_add("sessions", "a", ttl)
        .await
        .expect("add again");
    let mut members = cache.set_members("sessions").await.expect("members");
    members.sort();
    assert_eq!(members, ["a", "b"]);
    cache.set_remove("sessions", "a").await.expect("remove");
    assert_eq!(cache.set_members("sessions").await.expect("members"), ["b"]);
    assert!(cache.set_members("none").await.expect("members").is_empty());
}

async fn delete_removes(cache: Arc<dyn Cache>) {
    cache
        .put("d", b"x", Duration::from_secs(60))
        .await
        .expect("put");
    cache.delete("d").await.expect("delete");
    assert_eq!(cache.get("d").await.expect("get"), None);
    cache.ping().await.expect("ping");
}

async fn any_exists_sees_one_live_key_among_several(cache: Arc<dyn Cache>) {
    assert!(!cache.any_exists(&[]).await.expect("exists"));
    assert!(!cache.any_exists(&["a", "b"]).await.expect("exists"));
    cache
        .put("b", b"1", Duration::from_secs(60))
        .await
        .expect("put");
    assert!(cache.any_exists(&["a", "b"]).await.expect("exists"));
    assert!(cache.any_exists(&["b"]).await.expect("exists"));
    assert!(!cache.any_exists(&["a", "c"]).await.expect("exists"));
    cache.delete("b").await.expect("delete");
    assert!(!cache.any_exists(&["a", "b"]).await.expect("exists"));
}

macro_rules! on_both_caches {
    ($($body:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $body() {
                    super::$body(std::sync::Arc::new(super::MemoryCache::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $body() {
                    let url = idp_tests::redis_url();
                    let prefix = format!("idp-test-{}:", idp_tests::unique_suffix());
                    let cache = super::RedisCache::connect(&url, &prefix).await.unwrap_or_else(|e| {
                        panic!("Redis is not reachable at {url} ({e}); start it (redis-server --daemonize yes) or set IDP_TEST_REDIS_URL")
                    });
                    super::$body(std::sync::Arc::new(cache.clone())).await;
                    cache.clear_namespace().await.expect("clean up");
                }
            )*
        }
    };
}

on_both_caches!(
    values_expire,
    a_taken_value_is_gone,
    put_if_absent_refuses_a_replay,
    counters_count_within_their_window,
    sets_collect_members,
    delete_removes,
    any_exists_sees_one_live_key_among_several,
);
