//! The identity domain of the federated IdP: accounts, credentials, registration,
//! recovery, SSO sessions, OIDC grants and tokens, clients, enablements, audit.
//! Pure Rust, no HTTP: storage and cache sit behind the traits in [`store`] and [`cache`].

pub mod account;
pub mod audit;
pub mod cache;
pub mod claims_cache;
pub mod client;
pub mod directory;
pub mod email_change;
pub mod enablement;
pub mod error;
pub mod fiscal_code;
pub mod grant;
pub mod keys;
pub mod link;
pub mod mail;
pub mod mail_queue;
pub mod oidc;
pub mod password;
pub mod password_change;
pub mod password_reset;
pub mod rate_limit;
pub mod registration;
pub mod role;
pub mod secret;
pub mod security_check;
pub mod spid_link;
pub mod sso;
pub mod store;

pub use error::{CoreError, Result};
