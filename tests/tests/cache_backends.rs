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

async fn any_marked_sees_one_mark_among_several(cache: Arc<dyn Cache>) {
    assert!(!cache.any_marked(&[]).await.expect("marked"));
    // On Redis, both are now remembered as unmarked (once the listener is up).
    assert!(!cache.any_marked(&["a", "b"]).await.expect("marked"));
    cache
        .mark("b", Duration::from_secs(60))
        .await
        .expect("mark");
    // Seen at once where it was set, whatever was remembered.
    assert!(cache.any_marked(&["a", "b"]).await.expect("marked"));
    assert!(cache.any_marked(&["b"]).await.expect("marked"));
    assert!(!cache.any_marked(&["a", "c"]).await.expect("marked"));
}

async fn marks_expire(cache: Arc<dyn Cache>) {
    cache
        .mark("m", Duration::from_millis(300))
        .await
        .expect("mark");
    assert!(cache.any_marked(&["m"]).await.expect("marked"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!cache.any_marked(&["m"]).await.expect("marked"));
}

/// Whether `check` holds within `limit`, polled every 10 ms (the listener's loss is seen
/// in a window of about a second).
async fn within<F, Fut>(limit: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    idp_tests::holds_within(limit, Duration::from_millis(10), check).await
}

/// Two instances on one Redis. The keys an instance found unmarked are remembered (a
/// mark written behind its back, without the announcement, goes unseen), and a mark set
/// by the other is seen as soon as its announcement arrives, far sooner than the 5 s a
/// key is remembered at most. When the subscription is lost, everything remembered is
/// dropped and Redis is asked again, until the listener is back.
/// (One test, not two: it kills the listeners' connections, which would break the
/// "remembered" step of a test running beside it.)
#[tokio::test]
async fn redis_marks_are_remembered_absent_and_announced_to_every_instance() {
    let url = idp_tests::redis_url();
    let prefix = format!("idp-test-{}:", idp_tests::unique_suffix());
    let a = RedisCache::connect(&url, &prefix).await.expect("Redis");
    let b = RedisCache::connect(&url, &prefix).await.expect("Redis");
    let mut raw = ::redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let up = |c: &RedisCache| {
        let c = c.clone();
        async move { c.is_listening_for_marks() }
    };
    assert!(within(Duration::from_secs(5), || up(&a)).await, "a listens");
    assert!(within(Duration::from_secs(5), || up(&b)).await, "b listens");
    // A mark written straight into Redis, not announced.
    let mut set_unannounced = async |key: &str| {
        let _: () = ::redis::cmd("SET")
            .arg(format!("{prefix}{key}"))
            .arg(1)
            .query_async(&mut raw)
            .await
            .expect("raw SET");
    };

    assert!(!a.any_marked(&["k"]).await.expect("marked"));
    set_unannounced("k").await;
    assert!(
        !a.any_marked(&["k"]).await.expect("marked"),
        "remembered unmarked: Redis is not asked again"
    );
    b.mark("k", Duration::from_secs(60)).await.expect("mark");
    let seen = within(Duration::from_millis(1500), || {
        let a = a.clone();
        async move { a.any_marked(&["k"]).await.expect("marked") }
    })
    .await;
    assert!(seen, "b's mark is announced to a");

    // The subscription lost: forgotten at once, Redis asked meanwhile, then back.
    assert!(!a.any_marked(&["j"]).await.expect("marked"));
    set_unannounced("j").await;
    assert!(!a.any_marked(&["j"]).await.expect("marked"), "remembered");
    let _: () = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut raw)
        .await
        .expect("CLIENT KILL");
    let deaf = within(Duration::from_secs(2), || {
        let a = a.clone();
        async move { !a.is_listening_for_marks() }
    })
    .await;
    assert!(deaf, "a notices the loss");
    assert!(
        a.any_marked(&["j"]).await.expect("marked"),
        "nothing remembered is served while deaf"
    );
    assert!(
        within(Duration::from_secs(5), || up(&a)).await,
        "a listens again"
    );
    a.clear_namespace().await.expect("clean up");
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
    any_marked_sees_one_mark_among_several,
    marks_expire,
);
