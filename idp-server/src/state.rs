//! The application state every handler receives: configuration and the domain's
//! services over the configured storage, cache and mailer. Passed explicitly with
//! axum's `State`, never through globals.

use std::sync::Arc;

use anyhow::Context;
use idp_core::cache::{Cache, MemoryCache, RedisCache};
use idp_core::directory::Directory;
use idp_core::mail::{Mailer, OutboxMailer};
use idp_core::password::PasswordHasher;
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;

use crate::config::{CacheKind, Config, MailKind};
use crate::mail::SmtpMailer;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub sql: SqlStore,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub mailer: Arc<dyn Mailer>,
    pub directory: Directory,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// Connects storage and cache, applies migrations, and builds the services.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let sql = SqlStore::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| "database: cannot connect".to_string())?;
        sql.migrate().await.context("database: migrations failed")?;
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let cache: Arc<dyn Cache> = match config.cache.kind {
            CacheKind::Memory => Arc::new(MemoryCache::new()),
            CacheKind::Redis => {
                let url = config.cache.redis_url.as_deref().unwrap_or_default();
                Arc::new(
                    RedisCache::connect(url, &config.cache.prefix)
                        .await
                        .context("cache: cannot connect to Redis")?,
                )
            }
        };
        let mailer: Arc<dyn Mailer> = match (&config.mail.kind, &config.mail.smtp) {
            (MailKind::Smtp, Some(smtp)) => Arc::new(SmtpMailer::new(smtp, &config.mail.from)?),
            _ => Arc::new(OutboxMailer::new(store.clone())),
        };
        let hasher = Arc::new(PasswordHasher::new(config.passwords.hash)?);
        let directory = Directory::new(store.clone(), hasher, config.passwords.policy.clone());
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                sql,
                store,
                cache,
                mailer,
                directory,
            }),
        })
    }
}
