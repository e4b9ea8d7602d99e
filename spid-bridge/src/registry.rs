//! The SPID identity providers we accept, read from their metadata (an EntityDescriptor or
//! the registry's EntitiesDescriptor). Only the signing certificates found there are used
//! to verify what an IdP sends.

use std::path::PathBuf;

use crate::Error;
use crate::xml::{
    self, BINDING_POST, BINDING_REDIRECT, NS_DSIG, NS_METADATA, child, children, text,
};

#[derive(Clone, Debug)]
pub struct IdentityProvider {
    pub entity_id: String,
    /// Shown in the chooser (OrganizationDisplayName, Italian when given).
    pub name: String,
    pub logo_url: Option<String>,
    pub sso_redirect_url: Option<String>,
    pub sso_post_url: Option<String>,
    pub slo_redirect_url: Option<String>,
    pub slo_post_url: Option<String>,
    /// DER signing certificates from the IdP's metadata: the only keys we verify with.
    pub(crate) signing_certs: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub struct IdpRegistry {
    idps: Vec<IdentityProvider>,
}

impl IdpRegistry {
    pub fn from_metadata_files(paths: &[PathBuf]) -> Result<Self, Error> {
        let mut xmls = Vec::new();
        for p in paths {
            xmls.push(
                std::fs::read_to_string(p)
                    .map_err(|e| Error::Metadata(format!("{}: {e}", p.display())))?,
            );
        }
        Self::from_metadata_xml(&xmls)
    }

    pub fn from_metadata_xml(xmls: &[String]) -> Result<Self, Error> {
        let mut idps: Vec<IdentityProvider> = Vec::new();
        for x in xmls {
            let doc = xml::parse(x).map_err(|e| Error::Metadata(format!("not valid XML: {e}")))?;
            let root = doc.root_element();
            let entities: Vec<_> = if root.has_tag_name((NS_METADATA, "EntityDescriptor")) {
                vec![root]
            } else if root.has_tag_name((NS_METADATA, "EntitiesDescriptor")) {
                root.descendants()
                    .filter(|n| n.has_tag_name((NS_METADATA, "EntityDescriptor")))
                    .collect()
            } else {
                return Err(Error::Metadata(
                    "neither EntityDescriptor nor EntitiesDescriptor".into(),
                ));
            };
            for e in entities {
                if let Some(idp) = parse_idp(e)? {
                    if idps.iter().any(|i| i.entity_id == idp.entity_id) {
                        return Err(Error::Metadata(format!(
                            "{} is listed twice",
                            idp.entity_id
                        )));
                    }
                    idps.push(idp);
                }
            }
        }
        idps.sort_by_key(|a| a.name.to_lowercase());
        Ok(IdpRegistry { idps })
    }

    pub fn get(&self, entity_id: &str) -> Option<&IdentityProvider> {
        self.idps.iter().find(|i| i.entity_id == entity_id)
    }

    /// In chooser order (by name).
    pub fn all(&self) -> &[IdentityProvider] {
        &self.idps
    }
}

fn parse_idp(e: roxmltree::Node) -> Result<Option<IdentityProvider>, Error> {
    let Some(sso) = child(e, NS_METADATA, "IDPSSODescriptor") else {
        return Ok(None);
    };
    let entity_id = e
        .attribute("entityID")
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Error::Metadata("EntityDescriptor without entityID".into()))?
        .to_string();
    let endpoint = |name: &str, binding: &str| {
        children(sso, NS_METADATA, name)
            .find(|s| s.attribute("Binding") == Some(binding))
            .and_then(|s| s.attribute("Location"))
            .map(str::to_string)
    };
    let mut signing_certs = Vec::new();
    for kd in children(sso, NS_METADATA, "KeyDescriptor") {
        if kd.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for c in kd
            .descendants()
            .filter(|n| n.has_tag_name((NS_DSIG, "X509Certificate")))
        {
            let der = xml::cert_der_from_b64(&text(c)).ok_or_else(|| {
                Error::Metadata(format!("{entity_id}: a signing certificate does not parse"))
            })?;
            signing_certs.push(der);
        }
    }
    if signing_certs.is_empty() {
        return Err(Error::Metadata(format!(
            "{entity_id}: no signing certificate"
        )));
    }
    let names: Vec<_> = child(e, NS_METADATA, "Organization")
        .map(|o| children(o, NS_METADATA, "OrganizationDisplayName").collect())
        .unwrap_or_default();
    let name = names
        .iter()
        .find(|n| n.attribute(("http://www.w3.org/XML/1998/namespace", "lang")) == Some("it"))
        .or(names.first())
        .map(|n| text(*n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| entity_id.clone());
    Ok(Some(IdentityProvider {
        name,
        logo_url: None,
        sso_redirect_url: endpoint("SingleSignOnService", BINDING_REDIRECT),
        sso_post_url: endpoint("SingleSignOnService", BINDING_POST),
        slo_redirect_url: endpoint("SingleLogoutService", BINDING_REDIRECT),
        slo_post_url: endpoint("SingleLogoutService", BINDING_POST),
        signing_certs,
        entity_id,
    }))
}
