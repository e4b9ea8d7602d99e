//! The AuthnRequest, per the SPID technical rules, and what we remember of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::xml::{NAMEID_ENTITY, NAMEID_TRANSIENT, NS_ASSERTION, NS_PROTOCOL, esc, instant};
use crate::{SpConfig, SpidLevel};

/// A request we sent and that may be answered once, stored under `request_key(id)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingRequest {
    pub id: String,
    pub idp_entity_id: String,
    pub level: SpidLevel,
    pub issue_instant: DateTime<Utc>,
    pub relay_state: String,
    pub relay: String,
}

pub fn request_key(id: &str) -> String {
    format!("spid:authn:{id}")
}

/// The AuthnRequest XML; `signature` is a signature template (HTTP-POST) or empty
/// (HTTP-Redirect signs the query string instead).
pub fn authn_request_xml(
    config: &SpConfig,
    id: &str,
    issue_instant: DateTime<Utc>,
    destination: &str,
    level: SpidLevel,
    signature: &str,
) -> String {
    let force = if level.force_authn() {
        r#" ForceAuthn="true""#
    } else {
        ""
    };
    format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{ii}" Destination="{dest}"{force} "#,
            r#"AssertionConsumerServiceIndex="0" AttributeConsumingServiceIndex="0">"#,
            r#"<saml:Issuer Format="{entity}" NameQualifier="{eid}">{eid}</saml:Issuer>"#,
            "{sig}",
            r#"<samlp:NameIDPolicy Format="{transient}"/>"#,
            r#"<samlp:RequestedAuthnContext Comparison="{cmp}">"#,
            r#"<saml:AuthnContextClassRef>{acr}</saml:AuthnContextClassRef>"#,
            r#"</samlp:RequestedAuthnContext></samlp:AuthnRequest>"#
        ),
        p = NS_PROTOCOL,
        a = NS_ASSERTION,
        id = esc(id),
        ii = instant(issue_instant),
        dest = esc(destination),
        force = force,
        entity = NAMEID_ENTITY,
        eid = esc(&config.entity_id),
        sig = signature,
        transient = NAMEID_TRANSIENT,
        cmp = config.comparison.as_str(),
        acr = level.saml_class_ref(),
    )
}
