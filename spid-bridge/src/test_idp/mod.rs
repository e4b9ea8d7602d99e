//! The local SPID test IdP: signs real responses with its own dev key, for the demo and
//! the tests. DEVELOPMENT ONLY: it authenticates anyone as any test identity.

mod build;
mod identities;
mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;

pub use build::{IdpSigner, ResponseSpec, build_response, idp_metadata};
pub use identities::{TestIdentity, fiscal_code_check_char, test_identities};

use crate::Error;
use crate::xml::{
    self, BINDING_POST, BINDING_REDIRECT, NS_DSIG, NS_METADATA, child, children, text,
};

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

/// What the test IdP knows of an SP, from its metadata.
#[derive(Clone, Debug)]
pub(crate) struct SpInfo {
    pub entity_id: String,
    pub acs_url: String,
    pub slo_redirect_url: Option<String>,
    pub slo_post_url: Option<String>,
    pub signing_certs: Vec<Vec<u8>>,
    pub name: String,
}

pub(crate) fn parse_sp_metadata(x: &str) -> Result<SpInfo, Error> {
    let doc = xml::parse(x).map_err(|e| Error::Metadata(format!("SP metadata: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_METADATA, "EntityDescriptor")) {
        return Err(Error::Metadata(
            "SP metadata is not an EntityDescriptor".into(),
        ));
    }
    let entity_id = root.attribute("entityID").unwrap_or_default().to_string();
    let sp = child(root, NS_METADATA, "SPSSODescriptor")
        .ok_or_else(|| Error::Metadata(format!("{entity_id}: no SPSSODescriptor")))?;
    let acs: Vec<_> = children(sp, NS_METADATA, "AssertionConsumerService").collect();
    let acs_url = acs
        .iter()
        .find(|a| a.attribute("index") == Some("0"))
        .or(acs.first())
        .and_then(|a| a.attribute("Location"))
        .ok_or_else(|| Error::Metadata(format!("{entity_id}: no AssertionConsumerService")))?
        .to_string();
    let slo = |b: &str| {
        children(sp, NS_METADATA, "SingleLogoutService")
            .find(|s| s.attribute("Binding") == Some(b))
            .and_then(|s| s.attribute("Location"))
            .map(str::to_string)
    };
    let signing_certs: Vec<Vec<u8>> = children(sp, NS_METADATA, "KeyDescriptor")
        .filter(|k| k.attribute("use").is_none_or(|u| u == "signing"))
        .flat_map(|k| {
            k.descendants()
                .filter(|n| n.has_tag_name((NS_DSIG, "X509Certificate")))
        })
        .filter_map(|c| xml::cert_der_from_b64(&text(c)))
        .collect();
    if signing_certs.is_empty() {
        return Err(Error::Metadata(format!(
            "{entity_id}: no signing certificate"
        )));
    }
    let name = child(root, NS_METADATA, "Organization")
        .and_then(|o| child(o, NS_METADATA, "OrganizationDisplayName"))
        .map(text)
        .unwrap_or_else(|| entity_id.clone());
    Ok(SpInfo {
        entity_id,
        acs_url,
        slo_redirect_url: slo(BINDING_REDIRECT),
        slo_post_url: slo(BINDING_POST),
        signing_certs,
        name,
    })
}

pub(crate) struct IdpState {
    pub base_url: String,
    pub signer: IdpSigner,
    pub metadata: String,
    pub sps: Vec<SpInfo>,
    /// Requests shown on the page and not yet answered, by an opaque token.
    pub pending: Mutex<HashMap<String, web::ShownRequest>>,
    /// Sessions it signed responses for, so that the tester can sign out at the IdP
    /// (IdP-initiated single logout).
    pub sessions: Mutex<Vec<web::IssuedSession>>,
}

/// The IdP's signed metadata, as `/metadata` serves it (for `IdpRegistry`).
pub fn metadata_xml(config: &TestIdpConfig) -> Result<String, Error> {
    let signer = IdpSigner::from_pem(&config.key_pem, &config.cert_pem)?;
    idp_metadata(&signer, config.base_url.trim_end_matches('/'))
}

/// The test IdP's routes: `/metadata`, `/sso` (Redirect and POST), `/sso/answer`, `/slo`,
/// `/logout` (sign out at the IdP: SLO towards the SP), `/static/autopost.js`.
pub fn router(config: TestIdpConfig) -> Result<Router, Error> {
    let base_url = config.base_url.trim_end_matches('/').to_string();
    let signer = IdpSigner::from_pem(&config.key_pem, &config.cert_pem)?;
    let metadata = idp_metadata(&signer, &base_url)?;
    let sps = config
        .sp_metadata_xml
        .iter()
        .map(|x| parse_sp_metadata(x))
        .collect::<Result<Vec<_>, _>>()?;
    let state = Arc::new(IdpState {
        base_url,
        signer,
        metadata,
        sps,
        pending: Mutex::new(HashMap::new()),
        sessions: Mutex::new(Vec::new()),
    });
    Ok(web::routes(state))
}
