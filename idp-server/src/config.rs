//! Configuration: one TOML file plus `IDP_*` environment overrides (`IDP_DATABASE__URL`
//! overrides `[database] url`). Unknown or missing keys fail with one line naming the
//! key. `Config::demo()` is the embedded default that `idp-server demo` runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use idp_core::keys::{KeySettings, SigningAlgorithm};
use idp_core::password::{HashParams, PasswordPolicy};
use serde::{Deserialize, Serialize};

use crate::admin::clients::ClientSeed;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub mail: MailConfig,
    #[serde(default)]
    pub passwords: PasswordConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub tokens: idp_core::oidc::tokens::TokenSettings,
    #[serde(default)]
    pub sessions: SessionConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub spid: SpidConfig,
    /// Clients registered at start (`[[clients]]`), with fixed secrets: development
    /// and tests only.
    #[serde(default)]
    pub clients: Vec<ClientSeed>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The issuer: the URL people and clients reach this server at (no trailing slash).
    pub public_url: String,
    /// Serves the development pages (mail outbox). Only `idp-server demo` turns it on.
    #[serde(default)]
    pub dev_pages: bool,
    /// Take the client address from the first `X-Forwarded-For` entry (only behind a
    /// proxy that sets it); otherwise the peer address. Used by the abuse limits.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// `[server.tls]`: terminate TLS here (rustls) instead of behind a proxy.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The longest a request may take: past it the person gets the 503 page (an API
    /// client the JSON error), so a database or cache that stops answering without
    /// closing its connections cannot hold requests forever.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

fn default_request_timeout_secs() -> u64 {
    30
}

/// The server's certificate chain and private key, PEM files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db`, `sqlite::memory:` or `postgres://user@host/db`.
    pub url: String,
    /// Connections in the pool; unset, see [`DatabaseConfig::pool_size`].
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// How long a query waits for a free connection (or a new one) before it fails
    /// and the request gets the 503 page or JSON.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

fn default_acquire_timeout_ms() -> u64 {
    5_000
}

impl DatabaseConfig {
    /// The connections the pool may open: `max_connections`, or 16 on PostgreSQL and 1
    /// on SQLite when it is unset.
    pub fn pool_size(&self) -> u32 {
        self.max_connections.unwrap_or(if self.is_sqlite() {
            SQLITE_POOL
        } else {
            POSTGRES_POOL
        })
    }

    fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite:")
    }

    /// The database kind, for messages (never the URL: it may hold a password).
    pub fn kind_name(&self) -> &'static str {
        if self.is_sqlite() {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    }
}

/// The pool when `max_connections` is unset, on PostgreSQL.
const POSTGRES_POOL: u32 = 16;
/// The pool when `max_connections` is unset, on SQLite: one connection. SQLite runs one
/// writer at a time, and in WAL mode a connection drops its page cache whenever another
/// one has written: every connection past the first adds writers that wait in SQLite's
/// busy handler (which sleeps in growing steps) and reads that start cold. 64 concurrent
/// refresh rotations on one core, same binary, alternating: 16 connections did
/// 1,764-1,938/s (p99 57-60 ms) where 4 did 2,044-2,224/s (p99 45-48 ms), on a faster
/// day; today 4 did 1,666-1,750/s, 2 did 1,699-2,006/s and 1 did 2,109-2,353/s, with
/// p99 41-56 ms for all three, the WAL checkpoints running beside the pool (see
/// `SqlStore`). Every statement of the store is short (no transaction waits on anything
/// but the database), so one connection serialises work that takes microseconds.
const SQLITE_POOL: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub kind: CacheKind,
    /// Required when `kind = "redis"`.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Namespace for every key, so deployments can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long connecting to Redis, and each Redis call, may take before it fails.
    #[serde(default = "default_cache_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_cache_timeout_ms() -> u64 {
    2_000
}

fn default_prefix() -> String {
    "idp:".into()
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            kind: CacheKind::Memory,
            redis_url: None,
            prefix: default_prefix(),
            timeout_ms: default_cache_timeout_ms(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    /// Keep mail in the database (development; listed at /dev/outbox in demo mode).
    #[default]
    Outbox,
    Smtp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    #[serde(default)]
    pub kind: MailKind,
    #[serde(default = "default_from")]
    pub from: String,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Delivery attempts of a queued mail before it is given up on.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait after a first failed attempt; doubled after each further failure.
    #[serde(default = "default_retry_base_secs")]
    pub retry_base_secs: u64,
    /// The longest wait between two attempts.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// How often each instance looks for due mail (besides the wake-up after a request).
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// How long a claimed mail stays with its instance before another may take it over
    /// (longer than an SMTP delivery can take).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Undelivered mail, and what is left of mail given up on, is deleted after this.
    #[serde(default = "default_keep_undelivered_hours")]
    pub keep_undelivered_hours: u64,
}

fn default_from() -> String {
    "Accesso servizi scuola <noreply@localhost>".into()
}

fn default_max_attempts() -> u32 {
    8
}

fn default_retry_base_secs() -> u64 {
    30
}

fn default_retry_max_secs() -> u64 {
    3600
}

fn default_poll_interval_secs() -> u64 {
    10
}

fn default_lease_secs() -> u64 {
    300
}

fn default_keep_undelivered_hours() -> u64 {
    72
}

impl MailConfig {
    pub fn retry_policy(&self) -> idp_core::mail_queue::RetryPolicy {
        idp_core::mail_queue::RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay_secs: i64::try_from(self.retry_base_secs).unwrap_or(i64::MAX),
            max_delay_secs: i64::try_from(self.retry_max_secs).unwrap_or(i64::MAX),
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            kind: MailKind::Outbox,
            from: default_from(),
            smtp: None,
            max_attempts: default_max_attempts(),
            retry_base_secs: default_retry_base_secs(),
            retry_max_secs: default_retry_max_secs(),
            poll_interval_secs: default_poll_interval_secs(),
            lease_secs: default_lease_secs(),
            keep_undelivered_hours: default_keep_undelivered_hours(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (local relays only).
    #[serde(default = "default_smtp_security")]
    pub security: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> String {
    "starttls".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    #[serde(default)]
    pub hash: HashParams,
    #[serde(default)]
    pub policy: PasswordPolicy,
    /// Days a temporary password (sent after registration) stays valid.
    #[serde(default = "default_temporary_days")]
    pub temporary_validity_days: u32,
}

fn default_temporary_days() -> u32 {
    7
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            hash: HashParams::default(),
            policy: PasswordPolicy::default(),
            temporary_validity_days: default_temporary_days(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `idp_server=debug,info`. `RUST_LOG` wins.
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

/// `[keys]`: the OIDC signing keys (see `idp_core::keys`). The fields after `dev_dir`
/// are those of [`KeySettings`], copied because serde's `flatten` cannot be combined
/// with `deny_unknown_fields`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Folder of development keys (`certs-dev/`); demo mode only.
    pub dev_dir: Option<PathBuf>,
    /// Algorithms the IdP keeps a key for and publishes (default both).
    pub algorithms: Vec<SigningAlgorithm>,
    /// What tokens are signed with unless a client asks otherwise (default ES256).
    pub default_algorithm: SigningAlgorithm,
    /// A new key is published at once and signs only this many seconds later.
    pub rotation_delay_secs: i64,
    /// An old key stays published this long after it stops signing.
    pub max_token_lifetime_secs: i64,
    /// How often each instance re-reads the keys from the database, so that a
    /// rotation done on another instance or with `idp-server keys rotate` reaches it.
    /// Keep it well below `rotation_delay_secs`: a new key must be in every instance's
    /// JWKS before any instance signs with it.
    pub reload_interval_secs: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        let s = KeySettings::default();
        Self {
            dev_dir: None,
            algorithms: s.algorithms,
            default_algorithm: s.default_algorithm,
            rotation_delay_secs: s.rotation_delay_secs,
            max_token_lifetime_secs: s.max_token_lifetime_secs,
            reload_interval_secs: 30,
        }
    }
}

impl KeysConfig {
    pub fn settings(&self) -> KeySettings {
        KeySettings {
            algorithms: self.algorithms.clone(),
            default_algorithm: self.default_algorithm,
            rotation_delay_secs: self.rotation_delay_secs,
            max_token_lifetime_secs: self.max_token_lifetime_secs,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// How long an SSO session lives without a new sign-in.
    #[serde(default = "default_session_ttl")]
    pub ttl_secs: u64,
}

fn default_session_ttl() -> u64 {
    8 * 3600
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl_secs: default_session_ttl(),
        }
    }
}

/// `[audit]`: the audit log of security events.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Events older than this are deleted by the audit-retention job.
    #[serde(default = "default_audit_retention")]
    pub retention_days: u32,
}

fn default_audit_retention() -> u32 {
    365
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: default_audit_retention(),
        }
    }
}

/// A SPID assurance level as the configuration names it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpidLevelName {
    SpidL1,
    #[default]
    SpidL2,
    SpidL3,
}

/// The `Comparison` of the AuthnRequest's RequestedAuthnContext.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SpidComparison {
    Exact,
    #[default]
    Minimum,
    Better,
    Maximum,
}

/// The SAML binding AuthnRequests and LogoutRequests are sent with.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SpidBinding {
    #[default]
    Redirect,
    Post,
}

/// `[spid]`: sign-in with SPID through the SAML service provider (`spid-bridge`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpidConfig {
    pub enabled: bool,
    /// The SP's entity id; default `{server.public_url}/spid`. The ACS and SLO URLs
    /// are always `{server.public_url}/spid/acs` and `/spid/slo`.
    pub entity_id: Option<String>,
    /// The SP's signing key (PEM, PKCS#8 RSA) and certificate (PEM).
    pub key: PathBuf,
    pub cert: PathBuf,
    /// The administration's code in the IPA index (public SP).
    pub ipa_code: String,
    pub organization_name: String,
    pub organization_display_name: String,
    pub organization_url: String,
    pub contact_email: String,
    pub contact_phone: Option<String>,
    pub comparison: SpidComparison,
    /// The level asked of SPID unless a client's `acr_values` needs a higher one.
    pub default_level: SpidLevelName,
    pub binding: SpidBinding,
    /// Metadata files of the SPID identity providers (an EntityDescriptor or an
    /// EntitiesDescriptor each), in the chooser's order.
    pub idp_metadata: Vec<PathBuf>,
    /// Logos for the chooser, served by us (no third-party requests from the login
    /// page): identity provider entity id → an SVG or PNG file.
    pub idp_logos: std::collections::BTreeMap<String, PathBuf>,
    /// Tolerated clock difference with the identity providers.
    pub clock_skew_secs: u64,
    /// How long an AuthnRequest may be answered.
    pub request_ttl_secs: u64,
}

impl Default for SpidConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            entity_id: None,
            key: PathBuf::from("certs-dev/spid-sp.key"),
            cert: PathBuf::from("certs-dev/spid-sp.crt"),
            ipa_code: String::new(),
            organization_name: String::new(),
            organization_display_name: String::new(),
            organization_url: String::new(),
            contact_email: String::new(),
            contact_phone: None,
            comparison: SpidComparison::Minimum,
            default_level: SpidLevelName::SpidL2,
            binding: SpidBinding::Redirect,
            idp_metadata: Vec::new(),
            idp_logos: std::collections::BTreeMap::new(),
            clock_skew_secs: 60,
            request_ttl_secs: 900,
        }
    }
}

impl SpidConfig {
    /// The SP's entity id.
    pub fn entity_id(&self, public_url: &str) -> String {
        self.entity_id
            .clone()
            .unwrap_or_else(|| format!("{public_url}/spid"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(id) = &self.entity_id {
            url::Url::parse(id).map_err(|e| ConfigError(format!("spid.entity_id: {e}")))?;
        }
        for (key, path) in [("key", &self.key), ("cert", &self.cert)] {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "spid.{key}: file {} does not exist",
                    path.display()
                )));
            }
        }
        for (key, value) in [
            ("ipa_code", &self.ipa_code),
            ("organization_name", &self.organization_name),
            ("organization_display_name", &self.organization_display_name),
            ("organization_url", &self.organization_url),
            ("contact_email", &self.contact_email),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError(format!(
                    "spid.{key}: required when spid.enabled = true"
                )));
            }
        }
        url::Url::parse(&self.organization_url)
            .map_err(|e| ConfigError(format!("spid.organization_url: {e}")))?;
        if !self.contact_email.contains('@') {
            return Err(ConfigError(
                "spid.contact_email: not an email address".into(),
            ));
        }
        if self.idp_metadata.is_empty() {
            return Err(ConfigError(
                "spid.idp_metadata: at least one identity provider's metadata file is required"
                    .into(),
            ));
        }
        for (i, path) in self.idp_metadata.iter().enumerate() {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "spid.idp_metadata[{i}]: file {} does not exist",
                    path.display()
                )));
            }
        }
        for (entity_id, path) in &self.idp_logos {
            if logo_content_type(path).is_none() {
                return Err(ConfigError(format!(
                    "spid.idp_logos.\"{entity_id}\": {} is neither .svg nor .png",
                    path.display()
                )));
            }
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "spid.idp_logos.\"{entity_id}\": file {} does not exist",
                    path.display()
                )));
            }
        }
        if self.request_ttl_secs == 0 || self.request_ttl_secs > 3600 {
            return Err(ConfigError(
                "spid.request_ttl_secs: must be 1 to 3600".into(),
            ));
        }
        if self.clock_skew_secs > 300 {
            return Err(ConfigError("spid.clock_skew_secs: at most 300".into()));
        }
        Ok(())
    }
}

/// The content type of a chooser logo, from its file name: SVG or PNG only.
pub fn logo_content_type(path: &std::path::Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "svg" => Some("image/svg+xml"),
        "png" => Some("image/png"),
        _ => None,
    }
}

/// A configuration that cannot be used, in one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads `path` then applies `IDP_*` overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.exists() {
            return Err(ConfigError(format!(
                "file {} does not exist",
                path.display()
            )));
        }
        Self::from_figment(
            Figment::new()
                .merge(Toml::file(path))
                .merge(Env::prefixed("IDP_").split("__")),
        )
    }

    /// The embedded defaults of `idp-server demo`, with `IDP_*` overrides.
    pub fn demo(data_dir: &Path, port: u16) -> Result<Config, ConfigError> {
        let base = Config {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], port)),
                public_url: format!("http://localhost:{port}"),
                dev_pages: true,
                trust_forwarded_for: false,
                request_timeout_secs: default_request_timeout_secs(),
                tls: None,
            },
            database: DatabaseConfig {
                url: format!("sqlite://{}/demo.db", data_dir.display()),
                max_connections: None,
                acquire_timeout_ms: default_acquire_timeout_ms(),
            },
            cache: CacheConfig::default(),
            mail: MailConfig::default(),
            passwords: PasswordConfig::default(),
            log: LogConfig::default(),
            tokens: Default::default(),
            sessions: SessionConfig::default(),
            keys: KeysConfig {
                dev_dir: Some(crate::demo::certs_dir()),
                ..KeysConfig::default()
            },
            audit: AuditConfig::default(),
            spid: SpidConfig::default(),
            clients: Vec::new(),
        };
        Self::from_figment(
            Figment::from(Serialized::defaults(base)).merge(Env::prefixed("IDP_").split("__")),
        )
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(one_line)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.server.public_url)
            .map_err(|e| ConfigError(format!("server.public_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || self.server.public_url.ends_with('/') {
            return Err(ConfigError(
                "server.public_url: must be an http(s) URL without a trailing slash".into(),
            ));
        }
        if !(1..=600_000).contains(&self.database.acquire_timeout_ms) {
            return Err(ConfigError(
                "database.acquire_timeout_ms: must be 1 to 600000".into(),
            ));
        }
        if !(1..=600_000).contains(&self.cache.timeout_ms) {
            return Err(ConfigError("cache.timeout_ms: must be 1 to 600000".into()));
        }
        if !(1..=600).contains(&self.server.request_timeout_secs) {
            return Err(ConfigError(
                "server.request_timeout_secs: must be 1 to 600".into(),
            ));
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "server.tls.{key}: file {} does not exist",
                        path.display()
                    )));
                }
            }
        }
        if self.cache.kind == CacheKind::Redis && self.cache.redis_url.is_none() {
            return Err(ConfigError(
                "cache.redis_url: required when cache.kind = \"redis\"".into(),
            ));
        }
        for (key, value) in [
            ("max_attempts", u64::from(self.mail.max_attempts)),
            ("retry_base_secs", self.mail.retry_base_secs),
            ("poll_interval_secs", self.mail.poll_interval_secs),
            ("lease_secs", self.mail.lease_secs),
            ("keep_undelivered_hours", self.mail.keep_undelivered_hours),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("mail.{key}: must be at least 1")));
            }
        }
        if self.mail.retry_max_secs < self.mail.retry_base_secs {
            return Err(ConfigError(
                "mail.retry_max_secs: must be at least mail.retry_base_secs".into(),
            ));
        }
        if self.mail.kind == MailKind::Smtp && self.mail.smtp.is_none() {
            return Err(ConfigError(
                "mail.smtp: required when mail.kind = \"smtp\"".into(),
            ));
        }
        if let Some(smtp) = &self.mail.smtp
            && !matches!(smtp.security.as_str(), "starttls" | "tls" | "none")
        {
            return Err(ConfigError(
                "mail.smtp.security: must be starttls, tls or none".into(),
            ));
        }
        self.passwords
            .hash
            .validate()
            .map_err(|e| ConfigError(format!("passwords.hash: {e}")))?;
        if self.tokens.userinfo_cache_secs > 300 {
            return Err(ConfigError(
                "tokens.userinfo_cache_secs: must be 0 to 300 (the staleness of /userinfo)".into(),
            ));
        }
        if self.keys.reload_interval_secs == 0 {
            return Err(ConfigError(
                "keys.reload_interval_secs: must be at least 1".into(),
            ));
        }
        if self.keys.rotation_delay_secs > 0
            && self.keys.reload_interval_secs >= self.keys.rotation_delay_secs.unsigned_abs()
        {
            return Err(ConfigError(
                "keys.reload_interval_secs: must be shorter than keys.rotation_delay_secs, \
                 so that every instance publishes a new key before any signs with it"
                    .into(),
            ));
        }
        self.keys.settings().validate().map_err(|e| match e {
            idp_core::CoreError::Invalid(detail) => ConfigError(format!("keys.{detail}")),
            other => ConfigError(format!("keys: {other}")),
        })?;
        self.spid.validate()?;
        for (i, seed) in self.clients.iter().enumerate() {
            seed.client()
                .map_err(|e| ConfigError(format!("clients[{i}] ({}): {e:#}", seed.id)))?;
        }
        Ok(())
    }
}

/// figment reports the path of the offending key; keep the first error, on one line.
fn one_line(e: figment::Error) -> ConfigError {
    let first = e.into_iter().next();
    match first {
        Some(e) => {
            let path = e.path.join(".");
            let kind = e.kind.to_string();
            if path.is_empty() {
                ConfigError(kind)
            } else {
                ConfigError(format!("{path}: {kind}"))
            }
        }
        None => ConfigError("invalid configuration".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(Figment::new().merge(Toml::string(toml)))
    }

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:9000"
        public_url = "https://iam.example.it"
        [database]
        url = "sqlite::memory:"
    "#;

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let c = load_str(MINIMAL).expect("minimal config loads");
        assert_eq!(c.cache.kind, CacheKind::Memory);
        assert_eq!(c.mail.kind, MailKind::Outbox);
        assert_eq!(c.passwords.hash.memory_kib, 19456);
        assert!(!c.server.dev_pages);
    }

    #[test]
    fn store_and_cache_timeouts_default_and_are_checked() {
        let c = load_str(MINIMAL).expect("minimal config loads");
        assert_eq!(c.database.acquire_timeout_ms, 5_000);
        assert_eq!(c.cache.timeout_ms, 2_000);
        let set = MINIMAL.replace(
            "url = \"sqlite::memory:\"",
            "url = \"sqlite::memory:\"\nacquire_timeout_ms = 750\n[cache]\ntimeout_ms = 300",
        );
        let c = load_str(&set).expect("timeouts load");
        assert_eq!(c.database.acquire_timeout_ms, 750);
        assert_eq!(c.cache.timeout_ms, 300);
        let zero = MINIMAL.replace(
            "url = \"sqlite::memory:\"",
            "url = \"sqlite::memory:\"\nacquire_timeout_ms = 0",
        );
        let e = load_str(&zero).expect_err("zero acquire timeout");
        assert!(e.to_string().contains("database.acquire_timeout_ms"), "{e}");
        let zero = format!("{MINIMAL}\n[cache]\ntimeout_ms = 0\n");
        let e = load_str(&zero).expect_err("zero cache timeout");
        assert!(e.to_string().contains("cache.timeout_ms"), "{e}");
    }

    #[test]
    fn the_pool_defaults_to_16_on_postgresql_and_1_on_sqlite_unless_set() {
        let sqlite = load_str(MINIMAL).expect("loads");
        assert_eq!(sqlite.database.max_connections, None);
        assert_eq!(sqlite.database.pool_size(), 1);
        let postgres = MINIMAL.replace("sqlite::memory:", "postgres://idp@db.internal/idp");
        assert_eq!(load_str(&postgres).expect("loads").database.pool_size(), 16);
        let set = MINIMAL.replace(
            "url = \"sqlite::memory:\"",
            "url = \"sqlite::memory:\"\nmax_connections = 9",
        );
        assert_eq!(load_str(&set).expect("loads").database.pool_size(), 9);
        let demo = Config::demo(std::path::Path::new("/tmp/demo"), 8443).expect("demo");
        assert_eq!(demo.database.pool_size(), 1);
    }

    #[test]
    fn a_missing_key_is_named() {
        let e =
            load_str("[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n[database]\n")
                .expect_err("url is missing");
        let text = e.to_string();
        assert!(text.contains("database"), "{text}");
        assert!(text.contains("url"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = load_str(&format!("{MINIMAL}\n[log]\nlevl = \"x\"\n")).expect_err("typo");
        let text = e.to_string();
        assert!(text.contains("levl"), "{text}");
    }

    #[test]
    fn the_mail_queue_keys_load_and_are_checked() {
        let c = load_str(&format!(
            "{MINIMAL}\n[mail]\nmax_attempts = 3\nretry_base_secs = 10\nretry_max_secs = 60\n"
        ))
        .expect("mail keys load");
        assert_eq!(c.mail.retry_policy().max_attempts, 3);
        assert_eq!(c.mail.lease_secs, 300);
        let e = load_str(&format!("{MINIMAL}\n[mail]\nmax_attempts = 0\n")).expect_err("zero");
        assert!(e.to_string().contains("mail.max_attempts"), "{e}");
        let e = load_str(&format!(
            "{MINIMAL}\n[mail]\nretry_base_secs = 100\nretry_max_secs = 10\n"
        ))
        .expect_err("max below base");
        assert!(e.to_string().contains("mail.retry_max_secs"), "{e}");
    }

    #[test]
    fn redis_cache_needs_its_url() {
        let e = load_str(&format!("{MINIMAL}\n[cache]\nkind = \"redis\"\n")).expect_err("no url");
        assert!(e.to_string().contains("cache.redis_url"));
    }

    #[test]
    fn weak_argon2_parameters_are_refused() {
        let e = load_str(&format!(
            "{MINIMAL}\n[passwords.hash]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n"
        ))
        .expect_err("weak");
        assert!(e.to_string().contains("passwords.hash"));
    }

    #[test]
    fn signing_keys_default_to_es256_and_rs256_and_can_be_narrowed() {
        let c = load_str(MINIMAL).expect("minimal config loads");
        assert_eq!(c.keys.settings(), KeySettings::default());
        let c = load_str(&format!(
            "{MINIMAL}\n[keys]\nalgorithms = [\"ES256\"]\nrotation_delay_secs = 600\n"
        ))
        .expect("narrowed");
        assert_eq!(c.keys.settings().algorithms, [SigningAlgorithm::Es256]);
        assert_eq!(c.keys.rotation_delay_secs, 600);
        assert_eq!(c.keys.reload_interval_secs, 30);
        let e = load_str(&format!(
            "{MINIMAL}\n[keys]\nrotation_delay_secs = 20\nreload_interval_secs = 20\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("keys.reload_interval_secs"), "{e}");
        let c = load_str(&format!(
            "{MINIMAL}\n[keys]\nrotation_delay_secs = 20\nreload_interval_secs = 2\n"
        ))
        .unwrap();
        assert_eq!(c.keys.reload_interval_secs, 2);
        let e = load_str(&format!("{MINIMAL}\n[keys]\nalgorithms = [\"RS256\"]\n"))
            .expect_err("the default ES256 is not kept");
        assert!(e.to_string().contains("keys.default_algorithm"), "{e}");
        let e = load_str(&format!("{MINIMAL}\n[keys]\nalgorithms = [\"HS256\"]\n"))
            .expect_err("unknown algorithm");
        assert!(e.to_string().contains("keys.algorithms"), "{e}");
    }

    #[test]
    fn spid_is_off_by_default_and_checked_when_on() {
        let c = load_str(MINIMAL).expect("minimal config loads");
        assert!(!c.spid.enabled);
        assert_eq!(c.spid.default_level, SpidLevelName::SpidL2);
        assert_eq!(
            c.spid.entity_id("https://iam.example.it"),
            "https://iam.example.it/spid"
        );
        let e = load_str(&format!(
            "{MINIMAL}\n[spid]\nenabled = true\nkey = \"/nonexistent.key\"\n"
        ))
        .expect_err("no key file");
        assert_eq!(
            e.to_string(),
            "configuration: spid.key: file /nonexistent.key does not exist"
        );
        let e = load_str(&format!("{MINIMAL}\n[spid]\ncomparison = \"sometimes\"\n"))
            .expect_err("bad comparison");
        assert!(e.to_string().contains("spid.comparison"), "{e}");
        let e = load_str(&format!("{MINIMAL}\n[spid]\ndefault_level = \"SpidL4\"\n"))
            .expect_err("bad level");
        assert!(e.to_string().contains("spid.default_level"), "{e}");
    }

    #[test]
    fn chooser_logos_must_be_svg_or_png_files() {
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs-dev");
        let spid = |logo: &str| {
            format!(
                "{MINIMAL}\n[spid]\nenabled = true\nkey = \"{key}\"\ncert = \"{cert}\"\n\
                 ipa_code = \"m_pi\"\norganization_name = \"Ministero\"\n\
                 organization_display_name = \"Ministero\"\n\
                 organization_url = \"https://www.mim.gov.it\"\n\
                 contact_email = \"spid@example.it\"\nidp_metadata = [\"{cert}\"]\n\
                 [spid.idp_logos]\n\"https://idp.example\" = \"{logo}\"\n",
                key = certs.join("spid-sp.key").display(),
                cert = certs.join("spid-sp.crt").display(),
            )
        };
        let e = load_str(&spid("logo.gif")).expect_err("not svg or png");
        assert_eq!(
            e.to_string(),
            "configuration: spid.idp_logos.\"https://idp.example\": logo.gif is neither .svg nor .png"
        );
        let e = load_str(&spid("/nonexistent/logo.svg")).expect_err("no file");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let logo = Path::new(env!("CARGO_MANIFEST_DIR")).join("dev/spid-test-idp-logo.svg");
        let c = load_str(&spid(&logo.display().to_string())).expect("an svg file");
        assert_eq!(c.spid.idp_logos["https://idp.example"], logo);
        assert_eq!(logo_content_type(Path::new("a/B.PNG")), Some("image/png"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("idp.toml", MINIMAL)?;
            jail.set_env("IDP_DATABASE__URL", "postgres://postgres@127.0.0.1/idp");
            let c = Config::load(Path::new("idp.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.database.url, "postgres://postgres@127.0.0.1/idp");
            Ok(())
        });
    }
}
