//! The end-to-end tests, as one test binary: each module below was its own test target
//! (`tests/tests/<module>.rs`). One binary links the server, the relying parties and the
//! test harness once instead of 23 times.
//! `cargo nextest run` still runs each test in its own process.

mod abilitazione;
mod audit;
mod cache_backends;
mod client_store;
mod crash;
mod enablement_hook;
mod failures;
mod jobs;
mod key_store;
mod mail_queue;
mod metrics;
mod oidc_code_flow;
mod oidc_errors;
mod oidc_node_client;
mod opaque_tokens;
mod registration_store;
mod request_tracing;
mod shared_credentials;
mod single_sign_on;
mod spid_login;
mod storage_backends;
mod tls;
mod two_instances;
mod userinfo_freshness;
