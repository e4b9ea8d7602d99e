//! Signed SAML documents the test IdP produces: its metadata, Responses, LogoutResponses.
//! Public so that tests can build real responses and mutate them.

use chrono::{DateTime, Duration, Utc};

use crate::xml::{
    self, BINDING_POST, BINDING_REDIRECT, KeyPair, NAMEID_ENTITY, NAMEID_TRANSIENT, NS_ASSERTION,
    NS_PROTOCOL, STATUS_SUCCESS, esc, instant,
};
use crate::{Error, SpidLevel};

/// The test IdP's signing key and certificate.
#[derive(Clone, Debug)]
pub struct IdpSigner(pub(crate) KeyPair);

impl IdpSigner {
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, Error> {
        KeyPair::from_pem(key_pem, cert_pem)
            .map(IdpSigner)
            .map_err(Error::Config)
    }
}

/// Everything a Response says; `ResponseSpec::new` fills a valid one, tests change fields.
#[derive(Clone, Debug)]
pub struct ResponseSpec {
    pub idp_entity_id: String,
    pub sp_entity_id: String,
    pub acs_url: String,
    pub in_response_to: String,
    pub level: SpidLevel,
    pub attributes: Vec<(String, String)>,
    pub issue_instant: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub not_on_or_after: DateTime<Utc>,
    pub response_id: String,
    pub assertion_id: String,
    pub name_id: String,
    pub session_index: String,
    pub sign_assertion: bool,
    pub sign_response: bool,
    /// None: Success. Some(anomaly code): Responder/AuthnFailed with "ErrorCode nrNN".
    pub anomaly: Option<u32>,
    /// Sends this AuthnContextClassRef instead of the level's (tests of odd values).
    pub class_ref_override: Option<String>,
}

impl ResponseSpec {
    pub fn new(
        idp_entity_id: &str,
        sp_entity_id: &str,
        acs_url: &str,
        in_response_to: &str,
        level: SpidLevel,
        attributes: Vec<(String, String)>,
    ) -> Self {
        let now = Utc::now();
        ResponseSpec {
            idp_entity_id: idp_entity_id.to_string(),
            sp_entity_id: sp_entity_id.to_string(),
            acs_url: acs_url.to_string(),
            in_response_to: in_response_to.to_string(),
            level,
            attributes,
            issue_instant: now,
            not_before: now,
            not_on_or_after: now + Duration::minutes(5),
            response_id: xml::random_id(),
            assertion_id: xml::random_id(),
            name_id: xml::random_id(),
            session_index: xml::random_id(),
            sign_assertion: true,
            sign_response: true,
            anomaly: None,
            class_ref_override: None,
        }
    }
}

fn assertion_xml(s: &ResponseSpec, signature: &str) -> String {
    let attrs: String = s
        .attributes
        .iter()
        .map(|(k, v)| {
            format!(
                concat!(
                    r#"<saml:Attribute Name="{k}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">"#,
                    r#"<saml:AttributeValue xsi:type="xs:{t}">{v}</saml:AttributeValue></saml:Attribute>"#
                ),
                k = esc(k),
                t = if k == "dateOfBirth" { "date" } else { "string" },
                v = esc(v)
            )
        })
        .collect();
    format!(
        concat!(
            r#"<saml:Assertion xmlns:saml="{a}" xmlns:xs="http://www.w3.org/2001/XMLSchema" "#,
            r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{id}" IssueInstant="{ii}" Version="2.0">"#,
            r#"<saml:Issuer Format="{entity}">{idp}</saml:Issuer>{sig}"#,
            r#"<saml:Subject><saml:NameID Format="{transient}" NameQualifier="{idp}">{name_id}</saml:NameID>"#,
            r#"<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">"#,
            r#"<saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{noa}" Recipient="{acs}"/>"#,
            r#"</saml:SubjectConfirmation></saml:Subject>"#,
            r#"<saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction>"#,
            r#"<saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"#,
            r#"<saml:AuthnStatement AuthnInstant="{ii}" SessionIndex="{si}"><saml:AuthnContext>"#,
            r#"<saml:AuthnContextClassRef>{acr}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
            r#"<saml:AttributeStatement>{attrs}</saml:AttributeStatement></saml:Assertion>"#
        ),
        a = NS_ASSERTION,
        id = esc(&s.assertion_id),
        ii = instant(s.issue_instant),
        entity = NAMEID_ENTITY,
        idp = esc(&s.idp_entity_id),
        sig = signature,
        transient = NAMEID_TRANSIENT,
        name_id = esc(&s.name_id),
        irt = esc(&s.in_response_to),
        noa = instant(s.not_on_or_after),
        acs = esc(&s.acs_url),
        nb = instant(s.not_before),
        sp = esc(&s.sp_entity_id),
        si = esc(&s.session_index),
        acr = esc(s
            .class_ref_override
            .as_deref()
            .unwrap_or(s.level.saml_class_ref())),
        attrs = attrs,
    )
}

fn response_xml(s: &ResponseSpec, signature: &str, assertion: &str) -> String {
    let status = match s.anomaly {
        None => {
            format!(r#"<samlp:Status><samlp:StatusCode Value="{STATUS_SUCCESS}"/></samlp:Status>"#)
        }
        Some(code) => format!(
            concat!(
                r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder">"#,
                r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode>"#,
                r#"<samlp:StatusMessage>ErrorCode nr{code}</samlp:StatusMessage></samlp:Status>"#
            ),
            code = code
        ),
    };
    format!(
        concat!(
            r#"<samlp:Response xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{ii}" Destination="{acs}" InResponseTo="{irt}">"#,
            r#"<saml:Issuer Format="{entity}">{idp}</saml:Issuer>{sig}{status}{assertion}</samlp:Response>"#
        ),
        p = NS_PROTOCOL,
        a = NS_ASSERTION,
        id = esc(&s.response_id),
        ii = instant(s.issue_instant),
        acs = esc(&s.acs_url),
        irt = esc(&s.in_response_to),
        entity = NAMEID_ENTITY,
        idp = esc(&s.idp_entity_id),
        sig = signature,
        status = status,
        assertion = assertion,
    )
}

/// The Response XML (not base64), signed as `spec` says.
pub fn build_response(signer: &IdpSigner, spec: &ResponseSpec) -> Result<String, Error> {
    let keys = &signer.0;
    let assertion = if spec.anomaly.is_some() {
        String::new()
    } else if spec.sign_assertion {
        let templated = assertion_xml(spec, &keys.signature_template(&spec.assertion_id));
        keys.sign_enveloped(&templated).map_err(Error::Signing)?
    } else {
        assertion_xml(spec, "")
    };
    if spec.sign_response {
        let templated = response_xml(
            spec,
            &keys.signature_template(&spec.response_id),
            &assertion,
        );
        keys.sign_enveloped(&templated).map_err(Error::Signing)
    } else {
        Ok(response_xml(spec, "", &assertion))
    }
}

/// The IdP's signed metadata.
pub fn idp_metadata(signer: &IdpSigner, base_url: &str) -> Result<String, Error> {
    let keys = &signer.0;
    let id = xml::random_id();
    let base = esc(base_url);
    let xml = format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" "#,
            r#"xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{base}" ID="{id}">{sig}"#,
            r#"<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">"#,
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}"#,
            r#"</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            r#"<md:SingleLogoutService Binding="{r}" Location="{base}/slo"/>"#,
            r#"<md:SingleLogoutService Binding="{p}" Location="{base}/slo"/>"#,
            r#"<md:NameIDFormat>{transient}</md:NameIDFormat>"#,
            r#"<md:SingleSignOnService Binding="{r}" Location="{base}/sso"/>"#,
            r#"<md:SingleSignOnService Binding="{p}" Location="{base}/sso"/>"#,
            r#"</md:IDPSSODescriptor><md:Organization>"#,
            r#"<md:OrganizationName xml:lang="it">IdP di test SPID (solo sviluppo)</md:OrganizationName>"#,
            r#"<md:OrganizationDisplayName xml:lang="it">IdP di test SPID (solo sviluppo)</md:OrganizationDisplayName>"#,
            r#"<md:OrganizationURL xml:lang="it">{base}</md:OrganizationURL></md:Organization></md:EntityDescriptor>"#
        ),
        base = base,
        id = id,
        sig = keys.signature_template(&id),
        cert = keys.cert_b64(),
        r = BINDING_REDIRECT,
        p = BINDING_POST,
        transient = NAMEID_TRANSIENT,
    );
    keys.sign_enveloped(&xml).map_err(Error::Signing)
}
