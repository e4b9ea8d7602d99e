//! The service provider: metadata, AuthnRequest, Response validation, single logout.

use serde::{Deserialize, Serialize};

use crate::{Comparison, Error, IdpRegistry, Rejection, SamlState, SpidLevel};

#[derive(Clone, Debug, Deserialize)]
pub struct SpConfig {
    pub entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
    /// PEM contents (not paths), PKCS#8 RSA.
    pub key_pem: String,
    pub cert_pem: String,
    pub organization_name: String,
    pub organization_display_name: String,
    pub organization_url: String,
    pub ipa_code: String,
    pub contact_email: String,
    pub contact_phone: Option<String>,
    #[serde(default)]
    pub comparison: Comparison,
    pub clock_skew_secs: u64,
    pub request_ttl_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    HttpRedirect,
    HttpPost,
}

/// What the browser must be sent: a 302 to `location`, or a page that auto-POSTs the
/// fields to `action`.
#[derive(Clone, Debug)]
pub enum OutgoingMessage {
    Redirect {
        location: String,
    },
    Post {
        action: String,
        fields: Vec<(String, String)>,
    },
}

/// A received SAML message as the binding delivered it.
#[derive(Clone, Debug)]
pub enum SamlMessage {
    Redirect {
        raw_query: String,
    },
    Post {
        saml: String,
        relay_state: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpidIdentity {
    pub fiscal_number: String,
    pub name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub date_of_birth: Option<String>,
    pub gender: Option<String>,
    pub mobile_phone: Option<String>,
    pub spid_code: Option<String>,
    pub level: SpidLevel,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpidSession {
    pub idp_entity_id: String,
    pub name_id: String,
    pub name_id_qualifier: Option<String>,
    pub session_index: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SpidSessionRef {
    pub idp_entity_id: String,
    pub name_id: String,
    pub session_index: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SpidLogin {
    pub identity: SpidIdentity,
    pub session: SpidSession,
    pub relay: String,
}

pub struct ServiceProvider {
    #[allow(dead_code)]
    config: SpConfig,
    registry: IdpRegistry,
    metadata: String,
}

impl ServiceProvider {
    pub fn new(config: SpConfig, registry: IdpRegistry) -> Result<Self, Error> {
        Ok(ServiceProvider {
            config,
            registry,
            metadata: String::new(),
        })
    }

    pub fn registry(&self) -> &IdpRegistry {
        &self.registry
    }

    /// Signed metadata, built once.
    pub fn metadata_xml(&self) -> &str {
        &self.metadata
    }

    pub async fn start_login(
        &self,
        _state: &dyn SamlState,
        _idp_entity_id: &str,
        _level: SpidLevel,
        _binding: Binding,
        _relay: &str,
    ) -> Result<OutgoingMessage, Error> {
        Err(Error::NotBuilt("start_login"))
    }

    pub async fn finish_login(
        &self,
        _state: &dyn SamlState,
        _saml_response_b64: &str,
        _relay_state: Option<&str>,
    ) -> Result<SpidLogin, Rejection> {
        Err(Rejection::new("malformed", "not built yet"))
    }

    pub async fn start_logout(
        &self,
        _state: &dyn SamlState,
        _session: &SpidSession,
        _binding: Binding,
        _relay: &str,
    ) -> Result<OutgoingMessage, Error> {
        Err(Error::NotBuilt("start_logout"))
    }

    pub async fn finish_logout(
        &self,
        _state: &dyn SamlState,
        _form_or_query: &SamlMessage,
    ) -> Result<String, Rejection> {
        Err(Rejection::new("malformed", "not built yet"))
    }

    pub async fn handle_logout_request(
        &self,
        _state: &dyn SamlState,
        _msg: &SamlMessage,
    ) -> Result<(SpidSessionRef, OutgoingMessage), Rejection> {
        Err(Rejection::new("malformed", "not built yet"))
    }
}
