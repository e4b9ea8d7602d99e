//! The application state every handler receives: configuration and the domain's
//! services over the configured storage, cache and mailer. Passed explicitly with
//! axum's `State`, never through globals.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use idp_core::cache::{Cache, MemoryCache, RedisCache};
use idp_core::client::ClientRegistry;
use idp_core::directory::Directory;
use idp_core::keys::{KeyRing, KeyStore};
use idp_core::mail::{Mailer, OutboxMailer};
use idp_core::oidc::tokens::TokenService;
use idp_core::password::PasswordHasher;
use idp_core::sso::Sessions;
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;

use crate::admin::clients::seed_clients;
use crate::config::{CacheKind, Config, MailKind};
use crate::mail::SmtpMailer;
use crate::metrics::{CountingMailer, Metrics};

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub sql: SqlStore,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    /// Delivers the queued mail (see `jobs::mail_delivery`); counts into `metrics`.
    pub mailer: Arc<dyn Mailer>,
    /// Wakes this instance's mail sender: a request that queued mail rings it, so the
    /// mail leaves at once rather than at the next poll.
    pub mail_wake: Arc<tokio::sync::Notify>,
    pub metrics: Metrics,
    pub directory: Directory,
    /// The OIDC signing keys: sign and verify tokens, serve `jwks_json()` at /jwks.
    pub keys: KeyRing,
    /// The registered clients, cached in memory (refreshed every 30 s).
    pub clients: ClientRegistry,
    pub sessions: Sessions,
    pub tokens: TokenService,
    /// The discovery document, serialized once.
    pub discovery: Bytes,
    /// Outgoing HTTP (back-channel logout).
    pub http: reqwest::Client,
    /// Sign-in with SPID, when `[spid] enabled`.
    pub spid: Option<Arc<crate::spid::Spid>>,
    redis: Option<RedisCache>,
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
        Self::build_with_delivery(config, |mailer| mailer).await
    }

    /// Like `build`, with `delivery` wrapped around the configured mailer (SMTP or the
    /// development outbox). The tests put a delivery that fails at first in between.
    pub async fn build_with_delivery(
        config: Config,
        delivery: impl FnOnce(Arc<dyn Mailer>) -> Arc<dyn Mailer>,
    ) -> anyhow::Result<AppState> {
        let sql = SqlStore::connect_with(
            &config.database.url,
            config.database.pool_size(),
            Duration::from_millis(config.database.acquire_timeout_ms),
        )
        .await
        .with_context(|| "database: cannot connect".to_string())?;
        sql.migrate().await.context("database: migrations failed")?;
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let (cache, redis): (Arc<dyn Cache>, Option<RedisCache>) = match config.cache.kind {
            CacheKind::Memory => (Arc::new(MemoryCache::new()), None),
            CacheKind::Redis => {
                let url = config.cache.redis_url.as_deref().unwrap_or_default();
                let redis = RedisCache::connect_with(
                    url,
                    &config.cache.prefix,
                    Duration::from_millis(config.cache.timeout_ms),
                )
                .await
                .context("cache: cannot connect to Redis")?;
                (Arc::new(redis.clone()), Some(redis))
            }
        };
        let mailer: Arc<dyn Mailer> = match (&config.mail.kind, &config.mail.smtp) {
            (MailKind::Smtp, Some(smtp)) => Arc::new(SmtpMailer::new(smtp, &config.mail.from)?),
            _ => Arc::new(OutboxMailer::new(store.clone())),
        };
        let mailer = delivery(mailer);
        let metrics = Metrics::new();
        let mailer: Arc<dyn Mailer> = Arc::new(CountingMailer::new(mailer, metrics.clone()));
        let hasher = Arc::new(PasswordHasher::new(config.passwords.hash)?);
        metrics.count_password_hashing(hasher.clone());
        if let Some(redis) = &redis {
            metrics.watch_revocation_listener(redis.clone());
        }
        let directory = Directory::new(store.clone(), hasher, config.passwords.policy.clone())
            .with_claims_fresh_for(Duration::from_secs(config.tokens.userinfo_cache_secs));
        let key_store: Arc<dyn KeyStore> = Arc::new(sql.clone());
        let keys = KeyRing::load(key_store, config.keys.settings())
            .await
            .context("signing keys: cannot load")?;
        // A rotation done on another instance or with `idp-server keys rotate`
        // reaches this one at its next reload (`[keys] reload_interval_secs`).
        keys.spawn_reloader(Duration::from_secs(config.keys.reload_interval_secs));
        let clients = ClientRegistry::new(store.clone());
        seed_clients(&clients, &config.clients).await?;
        let issuer = config.server.public_url.clone();
        let sessions = Sessions::new(
            cache.clone(),
            Duration::from_secs(config.sessions.ttl_secs.max(60)),
        );
        let tokens = TokenService::new(
            issuer.clone(),
            config.tokens.clone(),
            keys.clone(),
            store.clone(),
            cache.clone(),
        );
        let discovery = Bytes::from(crate::oidc::discovery::document(
            &issuer,
            &config.keys.algorithms,
        ));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("http client")?;
        let spid = if config.spid.enabled {
            Some(Arc::new(crate::spid::Spid::from_config(&config)?))
        } else {
            None
        };
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                sql,
                store,
                cache,
                mailer,
                mail_wake: Arc::new(tokio::sync::Notify::new()),
                metrics,
                directory,
                keys,
                clients,
                sessions,
                tokens,
                discovery,
                http,
                spid,
                redis,
            }),
        })
    }

    /// Tells this instance's mail sender that mail was queued.
    pub fn wake_mail_sender(&self) {
        self.mail_wake.notify_one();
    }

    /// Records a security event; never fails (see `idp_core::audit::record`).
    pub async fn audit(&self, event: idp_core::audit::AuditEvent) {
        idp_core::audit::record(&*self.store, event).await;
    }

    /// The Redis cache when configured (tests clear their namespace with it).
    pub fn redis_cache(&self) -> Option<&RedisCache> {
        self.redis.as_ref()
    }
}
