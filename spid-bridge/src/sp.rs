//! The service provider: metadata, AuthnRequest, Response validation, single logout.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::authn::{PendingRequest, authn_request_xml, request_key};
use crate::binding::{self, decode_post, decode_redirect};
use crate::registry::IdentityProvider;
use crate::response::{
    SignedChecks, check_envelope, fiscal_number, parse_document, verify_and_reduce,
};
use crate::slo;
use crate::xml::{self, KeyPair, NS_ASSERTION, NS_PROTOCOL, child};
use crate::{Comparison, Error, IdpRegistry, Rejection, SamlState, SpidLevel};

#[derive(Clone, Deserialize)]
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

/// The private key never prints.
impl std::fmt::Debug for SpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpConfig")
            .field("entity_id", &self.entity_id)
            .field("acs_url", &self.acs_url)
            .field("slo_url", &self.slo_url)
            .field("key_pem", &"<redacted>")
            .field("organization_name", &self.organization_name)
            .field("ipa_code", &self.ipa_code)
            .field("comparison", &self.comparison)
            .field("clock_skew_secs", &self.clock_skew_secs)
            .field("request_ttl_secs", &self.request_ttl_secs)
            .finish_non_exhaustive()
    }
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
    pub(crate) config: SpConfig,
    registry: IdpRegistry,
    pub(crate) keys: KeyPair,
    metadata: String,
}

impl std::fmt::Debug for ServiceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("entity_id", &self.config.entity_id)
            .finish()
    }
}

fn state_err(e: crate::StateError) -> Rejection {
    let mut r = Rejection::new("state", format!("state store: {e}"));
    r.message_it = "Il servizio non è al momento disponibile. Riprova tra qualche minuto.".into();
    r
}

impl ServiceProvider {
    pub fn new(config: SpConfig, registry: IdpRegistry) -> Result<Self, Error> {
        for (name, v) in [
            ("entity_id", &config.entity_id),
            ("acs_url", &config.acs_url),
            ("slo_url", &config.slo_url),
            ("organization_name", &config.organization_name),
            (
                "organization_display_name",
                &config.organization_display_name,
            ),
            ("organization_url", &config.organization_url),
            ("ipa_code", &config.ipa_code),
            ("contact_email", &config.contact_email),
        ] {
            if v.trim().is_empty() {
                return Err(Error::Config(format!("{name} is empty")));
            }
        }
        if config.request_ttl_secs == 0 {
            return Err(Error::Config("request_ttl_secs must be positive".into()));
        }
        let keys = KeyPair::from_pem(&config.key_pem, &config.cert_pem).map_err(Error::Config)?;
        let metadata = crate::metadata::sp_metadata(&config, &keys)?;
        Ok(ServiceProvider {
            config,
            registry,
            keys,
            metadata,
        })
    }

    pub fn registry(&self) -> &IdpRegistry {
        &self.registry
    }

    /// Signed metadata, built once.
    pub fn metadata_xml(&self) -> &str {
        &self.metadata
    }

    pub(crate) fn idp(&self, entity_id: &str) -> Result<&IdentityProvider, Error> {
        self.registry
            .get(entity_id)
            .ok_or_else(|| Error::UnknownIdp(entity_id.to_string()))
    }

    /// Builds and signs an AuthnRequest for `idp`, remembers it in `state` (keyed by its
    /// ID, with `relay`), and returns what to send the browser. RelayState is an opaque
    /// random token.
    pub async fn start_login(
        &self,
        state: &dyn SamlState,
        idp_entity_id: &str,
        level: SpidLevel,
        binding: Binding,
        relay: &str,
    ) -> Result<OutgoingMessage, Error> {
        let idp = self.idp(idp_entity_id)?;
        let destination = match binding {
            Binding::HttpRedirect => idp.sso_redirect_url.as_deref(),
            Binding::HttpPost => idp.sso_post_url.as_deref(),
        }
        .ok_or_else(|| Error::NoEndpoint(idp.entity_id.clone()))?;
        let id = xml::random_id();
        // Whole seconds: the request says IssueInstant to the second, and the response's
        // instants are compared with what the request said.
        let now = Utc::now().trunc_subsecs(0);
        let pending = PendingRequest {
            id: id.clone(),
            idp_entity_id: idp.entity_id.clone(),
            level,
            issue_instant: now,
            relay_state: xml::random_token(),
            relay: relay.to_string(),
        };
        let unsigned = authn_request_xml(&self.config, &id, now, destination, level, "");
        let templated = authn_request_xml(
            &self.config,
            &id,
            now,
            destination,
            level,
            &self.keys.signature_template(&id),
        );
        let msg = binding::encode(
            &self.keys,
            binding,
            destination,
            "SAMLRequest",
            &unsigned,
            &templated,
            Some(&pending.relay_state),
        )?;
        let value = serde_json::to_vec(&pending).map_err(|e| Error::Config(e.to_string()))?;
        state
            .put(
                &request_key(&id),
                &value,
                Duration::from_secs(self.config.request_ttl_secs),
            )
            .await?;
        Ok(msg)
    }

    /// Validates a POSTed SAMLResponse strictly, consuming the request it answers and
    /// recording the assertion ID against replay.
    pub async fn finish_login(
        &self,
        state: &dyn SamlState,
        saml_response_b64: &str,
        relay_state: Option<&str>,
    ) -> Result<SpidLogin, Rejection> {
        let result = self
            .check_response(state, saml_response_b64, relay_state)
            .await;
        if let Err(r) = &result {
            tracing::warn!(reason = r.reason, detail = %r.detail, "SPID response rejected");
        }
        result
    }

    async fn check_response(
        &self,
        state: &dyn SamlState,
        saml_response_b64: &str,
        relay_state: Option<&str>,
    ) -> Result<SpidLogin, Rejection> {
        let xml = decode_post(saml_response_b64)?;
        let doc = parse_document(&xml)?;
        let envelope = check_envelope(&doc, &self.registry)?;
        let idp = envelope.idp;
        let reduced_xml = verify_and_reduce(&xml, idp)?;
        let reduced = parse_document(&reduced_xml)?;
        let signed_root = reduced.root_element();
        let original_assertion = child(doc.root_element(), NS_ASSERTION, "Assertion");
        // The Response is read from its signed form when it is signed, else from the
        // document (its fields are then cross-checked against the signed assertion).
        let (response, assertion) = if signed_root.has_tag_name((NS_PROTOCOL, "Response")) {
            (signed_root, child(signed_root, NS_ASSERTION, "Assertion"))
        } else if signed_root.has_tag_name((NS_ASSERTION, "Assertion")) {
            (doc.root_element(), Some(signed_root))
        } else {
            return Err(Rejection::new(
                "unsigned_assertion",
                "the signed part is not an Assertion",
            ));
        };
        let assertion =
            assertion.ok_or_else(|| Rejection::new("unsigned_assertion", "no signed Assertion"))?;
        if assertion.attribute("ID") != original_assertion.and_then(|a| a.attribute("ID")) {
            return Err(Rejection::new(
                "signature_wrapping",
                "the signed Assertion is not the one in the Response",
            ));
        }
        let in_response_to = response
            .attribute("InResponseTo")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                Rejection::new("unknown_in_response_to", "Response without InResponseTo")
            })?;
        let pending: PendingRequest = match state
            .take(&request_key(in_response_to))
            .await
            .map_err(state_err)?
        {
            Some(v) => serde_json::from_slice(&v).map_err(|e| {
                Rejection::new("unknown_in_response_to", format!("stored request: {e}"))
            })?,
            None => {
                return Err(Rejection::new(
                    "unknown_in_response_to",
                    format!("no pending request {in_response_to:?} (unknown, expired or answered)"),
                ));
            }
        };
        if pending.idp_entity_id != idp.entity_id {
            return Err(Rejection::new(
                "unknown_issuer",
                "the request was sent to another IdP",
            ));
        }
        if relay_state.is_some_and(|rs| rs != pending.relay_state) {
            return Err(Rejection::new(
                "relay_state",
                "RelayState differs from the request's",
            ));
        }
        let checks = SignedChecks {
            config: &self.config,
            idp,
            now: Utc::now(),
        };
        checks.response(response, &pending)?;
        let verified = checks.assertion(assertion, &pending)?;
        let attr = |name: &str| {
            verified
                .attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let fiscal = attr("fiscalNumber")
            .ok_or_else(|| Rejection::new("missing_fiscal_number", "no fiscalNumber attribute"))?;
        let fiscal_number = fiscal_number(&fiscal).ok_or_else(|| {
            Rejection::new(
                "missing_fiscal_number",
                "fiscalNumber is not TINIT-<16 characters>",
            )
        })?;
        let ttl = (verified.not_on_or_after - Utc::now()).num_seconds().max(0) as u64
            + self.config.clock_skew_secs
            + 1;
        let replay_key = format!("spid:assertion:{}:{}", idp.entity_id, verified.assertion_id);
        if !state
            .put_if_absent(&replay_key, b"1", Duration::from_secs(ttl))
            .await
            .map_err(state_err)?
        {
            return Err(Rejection::new(
                "replayed",
                "this assertion was already used",
            ));
        }
        let identity = SpidIdentity {
            fiscal_number,
            name: attr("name"),
            family_name: attr("familyName"),
            email: attr("email"),
            date_of_birth: attr("dateOfBirth"),
            gender: attr("gender"),
            mobile_phone: attr("mobilePhone"),
            spid_code: attr("spidCode"),
            level: verified.level,
        };
        Ok(SpidLogin {
            identity,
            session: SpidSession {
                idp_entity_id: idp.entity_id.clone(),
                name_id: verified.name_id,
                name_id_qualifier: verified.name_id_qualifier,
                session_index: verified.session_index,
            },
            relay: pending.relay,
        })
    }

    /// SP-initiated single logout for a session this SP started.
    pub async fn start_logout(
        &self,
        state: &dyn SamlState,
        session: &SpidSession,
        binding: Binding,
        relay: &str,
    ) -> Result<OutgoingMessage, Error> {
        slo::start_logout(self, state, session, binding, relay).await
    }

    /// The IdP's LogoutResponse (redirect or POST): validated; returns the `relay` given
    /// to start_logout.
    pub async fn finish_logout(
        &self,
        state: &dyn SamlState,
        form_or_query: &SamlMessage,
    ) -> Result<String, Rejection> {
        let result = slo::finish_logout(self, state, form_or_query).await;
        if let Err(r) = &result {
            tracing::warn!(reason = r.reason, detail = %r.detail, "SPID LogoutResponse rejected");
        }
        result
    }

    /// An IdP-initiated LogoutRequest: validated; returns the session it names and the
    /// signed LogoutResponse to send back.
    pub async fn handle_logout_request(
        &self,
        state: &dyn SamlState,
        msg: &SamlMessage,
    ) -> Result<(SpidSessionRef, OutgoingMessage), Rejection> {
        let result = slo::handle_logout_request(self, state, msg).await;
        if let Err(r) = &result {
            tracing::warn!(reason = r.reason, detail = %r.detail, "SPID LogoutRequest rejected");
        }
        result
    }

    pub(crate) fn decode_message(
        &self,
        msg: &SamlMessage,
        param: &str,
    ) -> Result<(String, Option<String>, Option<binding::RedirectMessage>), Rejection> {
        match msg {
            SamlMessage::Redirect { raw_query } => {
                let m = decode_redirect(raw_query, param)?;
                Ok((m.xml.clone(), m.relay_state.clone(), Some(m)))
            }
            SamlMessage::Post { saml, relay_state } => {
                Ok((decode_post(saml)?, relay_state.clone(), None))
            }
        }
    }
}
