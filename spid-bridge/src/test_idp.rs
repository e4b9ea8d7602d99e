//! The local SPID test IdP: signs real responses with its own dev key, for the demo and
//! the tests. Never for production.

use axum::Router;

use crate::Error;

#[derive(Clone, Debug)]
pub struct TestIdpConfig {
    /// Base URL the IdP is reachable at, without a trailing slash; also its entity ID.
    pub base_url: String,
    /// PEM contents of the IdP's signing key (PKCS#8 RSA) and certificate.
    pub key_pem: String,
    pub cert_pem: String,
    /// The metadata XML of the SPs it serves (their ACS, SLO and signing certificate).
    pub sp_metadata_xml: Vec<String>,
}

pub fn router(_config: TestIdpConfig) -> Result<Router, Error> {
    Err(Error::NotBuilt("test_idp::router"))
}

/// The IdP's signed metadata, as `/metadata` serves it (for `IdpRegistry`).
pub fn metadata_xml(_config: &TestIdpConfig) -> Result<String, Error> {
    Err(Error::NotBuilt("test_idp::metadata_xml"))
}
