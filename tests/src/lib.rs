//! Shared helpers of the end-to-end tests: throwaway PostgreSQL databases and Redis
//! namespaces on the local services, so that every test body runs on each backend.
//!
//! `IDP_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `IDP_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) name the services; the tests
//! fail, saying so, when they are not reachable.

use sqlx::Connection;

pub fn postgres_admin_url() -> String {
    std::env::var("IDP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("IDP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Polls `check` every 200 ms until it holds; fails the test, naming `what`, when it has
/// not held within `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let every = std::time::Duration::from_millis(200);
    assert!(
        holds_within(limit, every, check).await,
        "{what}: not within {limit:?}"
    );
}

/// Polls `check` every `every`, starting now and never after `limit`: whether it held.
/// For a state that may last only a moment, with a short `every`.
pub async fn holds_within<F, Fut>(
    limit: std::time::Duration,
    every: std::time::Duration,
    mut check: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    false
}

/// A random lowercase suffix for database names and key prefixes.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// A PostgreSQL database created for one test; `drop_now` removes it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin = postgres_admin_url();
        let name = format!("idp_test_{}", unique_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin} ({e}); start it \
                 (pg_ctlcluster <version> main start) or set IDP_TEST_POSTGRES_URL"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the throwaway database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_now(self) {
        let admin = postgres_admin_url();
        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

pub mod delivery;
pub mod flows;
pub mod harness;
pub mod process;
pub mod registration;
pub mod services;
pub mod spid;

/// Runs each named test body (`async fn body(backend: Backend)`) twice: in a module
/// `embedded` on the embedded default and in a module `production` on PostgreSQL and
/// Redis, so that one test body covers both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $body() { super::$body($crate::harness::Backend::Embedded).await; } )*
        }
        mod production {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $body() { super::$body($crate::harness::Backend::Production).await; } )*
        }
    };
}
