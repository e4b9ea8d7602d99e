//! The SP's signed metadata (SPID technical rules, public-SP profile of Avviso n.29 v3).

use crate::xml::{BINDING_POST, BINDING_REDIRECT, KeyPair, NAMEID_TRANSIENT, esc, random_id};
use crate::{Error, SpConfig};

/// The attributes we request, in AttributeConsumingService index 0.
pub const REQUESTED_ATTRIBUTES: &[&str] = &[
    "spidCode",
    "name",
    "familyName",
    "fiscalNumber",
    "email",
    "dateOfBirth",
    "gender",
    "mobilePhone",
];

pub fn sp_metadata(config: &SpConfig, keys: &KeyPair) -> Result<String, Error> {
    let id = random_id();
    let cert = keys.cert_b64();
    let attrs: String = REQUESTED_ATTRIBUTES
        .iter()
        .map(|a| format!(r#"<md:RequestedAttribute Name="{a}"/>"#))
        .collect();
    let phone = config
        .contact_phone
        .as_deref()
        .map(|p| format!("<md:TelephoneNumber>{}</md:TelephoneNumber>", esc(p)))
        .unwrap_or_default();
    let xml = format!(
        concat!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" "#,
            r#"xmlns:ds="http://www.w3.org/2000/09/xmldsig#" "#,
            r#"xmlns:spid="https://spid.gov.it/saml-extensions" "#,
            r#"entityID="{entity_id}" ID="{id}">"#,
            "{signature}",
            r#"<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" "#,
            r#"AuthnRequestsSigned="true" WantAssertionsSigned="true">"#,
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>"#,
            r#"<ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            r#"<md:SingleLogoutService Binding="{redirect}" Location="{slo}"/>"#,
            r#"<md:SingleLogoutService Binding="{post}" Location="{slo}"/>"#,
            r#"<md:NameIDFormat>{transient}</md:NameIDFormat>"#,
            r#"<md:AssertionConsumerService index="0" isDefault="true" Binding="{post}" Location="{acs}"/>"#,
            r#"<md:AttributeConsumingService index="0">"#,
            r#"<md:ServiceName xml:lang="it">{display}</md:ServiceName>{attrs}"#,
            r#"</md:AttributeConsumingService></md:SPSSODescriptor>"#,
            r#"<md:Organization><md:OrganizationName xml:lang="it">{org}</md:OrganizationName>"#,
            r#"<md:OrganizationDisplayName xml:lang="it">{display}</md:OrganizationDisplayName>"#,
            r#"<md:OrganizationURL xml:lang="it">{org_url}</md:OrganizationURL></md:Organization>"#,
            r#"<md:ContactPerson contactType="other"><md:Extensions>"#,
            r#"<spid:IPACode>{ipa}</spid:IPACode><spid:Public/></md:Extensions>"#,
            r#"<md:EmailAddress>{email}</md:EmailAddress>{phone}</md:ContactPerson>"#,
            r#"</md:EntityDescriptor>"#
        ),
        entity_id = esc(&config.entity_id),
        id = id,
        signature = keys.signature_template(&id),
        cert = cert,
        redirect = BINDING_REDIRECT,
        post = BINDING_POST,
        slo = esc(&config.slo_url),
        transient = NAMEID_TRANSIENT,
        acs = esc(&config.acs_url),
        display = esc(&config.organization_display_name),
        attrs = attrs,
        org = esc(&config.organization_name),
        org_url = esc(&config.organization_url),
        ipa = esc(&config.ipa_code),
        email = esc(&config.contact_email),
        phone = phone,
    );
    keys.sign_enveloped(&xml).map_err(Error::Signing)
}
