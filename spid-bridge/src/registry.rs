//! The SPID identity providers we accept, from their metadata.

use std::path::PathBuf;

use crate::Error;

#[derive(Clone, Debug)]
pub struct IdentityProvider {
    pub entity_id: String,
    pub name: String,
    pub logo_url: Option<String>,
    pub sso_redirect_url: Option<String>,
    pub sso_post_url: Option<String>,
    pub slo_redirect_url: Option<String>,
    pub slo_post_url: Option<String>,
    /// DER signing certificates from the IdP's metadata: the only keys we verify with.
    #[allow(dead_code)]
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

    pub fn from_metadata_xml(_xmls: &[String]) -> Result<Self, Error> {
        Err(Error::NotBuilt("IdpRegistry::from_metadata_xml"))
    }

    pub fn get(&self, entity_id: &str) -> Option<&IdentityProvider> {
        self.idps.iter().find(|i| i.entity_id == entity_id)
    }

    pub fn all(&self) -> &[IdentityProvider] {
        &self.idps
    }
}
