//! Sign-in with SPID, IdP side: the SAML service provider of `spid-bridge` wired to
//! the login page, the accounts and the SSO sessions. The bridge validates what the
//! SPID identity providers send; this module decides who that is here (the account
//! with the fiscal code, or a new one), starts the session with the SPID level as
//! `acr`, and runs single logout both ways.

pub mod login;
pub mod logout;

use std::sync::Arc;
use std::time::Duration;

use crate::web::Routes;
use anyhow::Context;
use askama::Template;
use async_trait::async_trait;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use idp_core::cache::Cache;
use idp_core::oidc::acr_level;
use spid_bridge::{
    Binding, Comparison, IdpRegistry, OutgoingMessage, SamlState, ServiceProvider, SpConfig,
    SpidLevel, StateError,
};

use crate::config::{Config, SpidBinding, SpidComparison, SpidLevelName};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::page;

/// The SAML service provider with the choices the configuration makes for it.
pub struct Spid {
    pub sp: ServiceProvider,
    pub default_level: SpidLevel,
    binding: SpidBinding,
    /// Chooser logos, by the identity provider's place in the registry.
    logos: Vec<Option<Logo>>,
}

/// A logo read at start, served at `/spid/logo/{n}`.
struct Logo {
    content_type: &'static str,
    bytes: axum::body::Bytes,
}

impl Spid {
    /// Reads the SP's key and certificate and the identity providers' metadata.
    pub fn from_config(config: &Config) -> anyhow::Result<Spid> {
        let c = &config.spid;
        let base = &config.server.public_url;
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("spid.{key}: cannot read {}", path.display()))
        };
        let registry = IdpRegistry::from_metadata_files(&c.idp_metadata)
            .map_err(|e| anyhow::anyhow!("spid.idp_metadata: {e}"))?;
        let sp_config = SpConfig {
            entity_id: c.entity_id(base),
            acs_url: format!("{base}/spid/acs"),
            slo_url: format!("{base}/spid/slo"),
            key_pem: read("key", &c.key)?,
            cert_pem: read("cert", &c.cert)?,
            organization_name: c.organization_name.clone(),
            organization_display_name: c.organization_display_name.clone(),
            organization_url: c.organization_url.clone(),
            ipa_code: c.ipa_code.clone(),
            contact_email: c.contact_email.clone(),
            contact_phone: c.contact_phone.clone(),
            comparison: match c.comparison {
                SpidComparison::Exact => Comparison::Exact,
                SpidComparison::Minimum => Comparison::Minimum,
                SpidComparison::Better => Comparison::Better,
                SpidComparison::Maximum => Comparison::Maximum,
            },
            clock_skew_secs: c.clock_skew_secs,
            request_ttl_secs: c.request_ttl_secs,
        };
        for entity_id in c.idp_logos.keys() {
            if registry.get(entity_id).is_none() {
                anyhow::bail!(
                    "spid.idp_logos.\"{entity_id}\": no identity provider with this entity id in spid.idp_metadata"
                );
            }
        }
        let logos = registry
            .all()
            .iter()
            .map(|idp| {
                let Some(path) = c.idp_logos.get(&idp.entity_id) else {
                    return Ok(None);
                };
                let content_type = crate::config::logo_content_type(path).ok_or_else(|| {
                    anyhow::anyhow!(
                        "spid.idp_logos: {} is neither .svg nor .png",
                        path.display()
                    )
                })?;
                let bytes = std::fs::read(path)
                    .with_context(|| format!("spid.idp_logos: cannot read {}", path.display()))?;
                Ok(Some(Logo {
                    content_type,
                    bytes: bytes.into(),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(warning) = certificate_uri_mismatch(&sp_config.cert_pem, &sp_config.entity_id) {
            tracing::warn!("spid.cert: {warning}");
        }
        let sp = ServiceProvider::new(sp_config, registry)
            .map_err(|e| anyhow::anyhow!("spid: cannot build the service provider: {e}"))?;
        Ok(Spid {
            sp,
            default_level: level_of(c.default_level),
            binding: c.binding,
            logos,
        })
    }

    /// The binding requests to the identity providers are sent with.
    pub fn binding(&self) -> Binding {
        match self.binding {
            SpidBinding::Redirect => Binding::HttpRedirect,
            SpidBinding::Post => Binding::HttpPost,
        }
    }

    /// The level to ask for: the configured one, or higher when the client needs it.
    pub fn level_for(&self, needed: Option<SpidLevel>) -> SpidLevel {
        needed.map_or(self.default_level, |n| n.max(self.default_level))
    }
}

/// Avviso SPID n.29 v3 puts the SP's entity ID in the certificate's subject as `uri`
/// (2.5.4.83): a certificate issued for another entity ID is worth a warning at start
/// (not a refusal: the SP still signs correctly, and the identity providers check the
/// certificate in the metadata they registered).
fn certificate_uri_mismatch(cert_pem: &str, entity_id: &str) -> Option<String> {
    let uri = match certificate_uri(cert_pem) {
        Ok(Some(uri)) => uri,
        Ok(None) => {
            return Some(format!(
                "the certificate has no uri (2.5.4.83) in its subject; Avviso SPID n.29 \
                 asks for the entity ID {entity_id} there"
            ));
        }
        Err(e) => return Some(format!("cannot read the certificate's subject: {e}")),
    };
    (uri != entity_id).then(|| {
        format!(
            "the certificate's uri (2.5.4.83) is {uri}, not the entity ID {entity_id}; \
             Avviso SPID n.29 asks for them to be equal"
        )
    })
}

/// The `uri` (2.5.4.83) of a PEM certificate's subject, when it has one.
fn certificate_uri(cert_pem: &str) -> Result<Option<String>, openssl::error::ErrorStack> {
    let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes())?;
    for entry in cert.subject_name().entries() {
        if entry.object().to_string() == "2.5.4.83" {
            return Ok(Some(entry.data().to_string()?));
        }
    }
    Ok(None)
}

pub fn level_of(name: SpidLevelName) -> SpidLevel {
    match name {
        SpidLevelName::SpidL1 => SpidLevel::L1,
        SpidLevelName::SpidL2 => SpidLevel::L2,
        SpidLevelName::SpidL3 => SpidLevel::L3,
    }
}

/// The SPID level a request's `acr_values` needs at least, when it needs one: the
/// lowest known value is the floor (as in `idp_core::oidc::acr_satisfies`).
pub fn needed_level(acr_values: &[String]) -> Option<SpidLevel> {
    match acr_values.iter().filter_map(|a| acr_level(a)).min()? {
        1 => Some(SpidLevel::L1),
        2 => Some(SpidLevel::L2),
        3 => Some(SpidLevel::L3),
        _ => None,
    }
}

/// The bridge's short-lived state (pending requests, replay cache) in our cache, so
/// that with Redis every instance sees it.
pub struct CacheSamlState(pub Arc<dyn Cache>);

fn key(k: &str) -> String {
    format!("saml:{k}")
}

#[async_trait]
impl SamlState for CacheSamlState {
    async fn put(&self, k: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        self.0
            .put(&key(k), value, ttl)
            .await
            .map_err(|e| StateError(e.to_string()))
    }

    async fn take(&self, k: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.0
            .take(&key(k))
            .await
            .map_err(|e| StateError(e.to_string()))
    }

    async fn put_if_absent(
        &self,
        k: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StateError> {
        self.0
            .put_if_absent(&key(k), value, ttl)
            .await
            .map_err(|e| StateError(e.to_string()))
    }
}

pub fn routes() -> Routes {
    Routes::new()
        .route("/spid/metadata", get(metadata))
        .route("/spid/login", get(login::start))
        .route("/spid/acs", axum::routing::post(login::acs))
        .route("/spid/slo", get(logout::slo_get).post(logout::slo_post))
        .route("/spid/logo/{n}", get(logo))
}

/// `GET /spid/logo/{n}`: the chooser logo of the n-th identity provider.
async fn logo(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(n): axum::extract::Path<usize>,
) -> Response {
    let Some(logo) = state
        .spid
        .as_deref()
        .and_then(|spid| spid.logos.get(n))
        .and_then(Option::as_ref)
    else {
        return AppError::not_found().into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(logo.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            // An SVG opened on its own must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
        ],
        logo.bytes.clone(),
    )
        .into_response()
}

/// The configured SPID service provider, or 404 when SPID is off.
pub fn enabled(state: &AppState) -> Result<&Spid, AppError> {
    state.spid.as_deref().ok_or_else(AppError::not_found)
}

/// The SP's signed metadata, for the identity providers and the AgID registry.
async fn metadata(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let spid = match enabled(&state) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/samlmetadata+xml; charset=utf-8"),
        )],
        spid.sp.metadata_xml().to_string(),
    )
        .into_response()
}

/// One identity provider in the login page's chooser.
pub struct ChooserEntry {
    pub name: String,
    pub logo_url: Option<String>,
    pub href: String,
}

/// What the login page shows for SPID.
pub struct Chooser {
    pub idps: Vec<ChooserEntry>,
    /// Set when the client needs a SPID level: only SPID is offered then.
    pub required_level: Option<u8>,
}

/// The chooser for a parked request (`req`, possibly empty), when SPID is on.
pub fn chooser(state: &AppState, req: &str, acr_values: &[String]) -> Option<Chooser> {
    let spid = state.spid.as_deref()?;
    let needed = needed_level(acr_values);
    let idps = spid
        .sp
        .registry()
        .all()
        .iter()
        .enumerate()
        .map(|(n, idp)| ChooserEntry {
            name: idp.name.clone(),
            logo_url: match spid.logos.get(n) {
                Some(Some(_)) => Some(format!("/spid/logo/{n}")),
                _ => idp.logo_url.clone(),
            },
            href: format!(
                "/spid/login?idp={}&request={}",
                crate::pages::urlencode(&idp.entity_id),
                crate::pages::urlencode(req)
            ),
        })
        .collect();
    Some(Chooser {
        idps,
        required_level: needed.map(|l| match l {
            SpidLevel::L1 => 1,
            SpidLevel::L2 => 2,
            SpidLevel::L3 => 3,
        }),
    })
}

#[derive(Template)]
#[template(path = "saml_post.html")]
struct AutoPostPage<'a> {
    action: &'a str,
    fields: &'a [(String, String)],
}

/// What the browser must be sent to the identity provider: a redirect, or a form it
/// submits (by the served script, or by the person's click without JavaScript).
///
/// The HTTP-Redirect binding allows 302 or 303 (SAML bindings 3.4.4); 302 is what the
/// SPID identity providers and AgID's validator expect (spid-sp-test refuses a 303).
/// The messages are sent after a GET, or after a POST whose redirect browsers follow
/// with a GET either way.
pub fn send(message: OutgoingMessage) -> Response {
    match message {
        OutgoingMessage::Redirect { location } => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        // The global CSP sets no form-action, so the form may post to the IdP.
        OutgoingMessage::Post { action, fields } => page(&AutoPostPage {
            action: &action,
            fields: &fields,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idp_core::oidc::{ACR_PASSWORD, ACR_SPID_L1, ACR_SPID_L2};

    #[test]
    fn a_certificate_for_another_entity_id_is_noticed() {
        let dir = crate::demo::certs_dir();
        let pem = std::fs::read_to_string(dir.join("spid-sp.crt")).expect("dev certificate");
        assert_eq!(
            certificate_uri(&pem).expect("subject").as_deref(),
            Some("http://localhost:8080/spid")
        );
        assert_eq!(
            certificate_uri_mismatch(&pem, "http://localhost:8080/spid"),
            None
        );
        let warning = certificate_uri_mismatch(&pem, "https://iam.example.it/spid")
            .expect("another entity ID");
        assert!(warning.contains("http://localhost:8080/spid"), "{warning}");
        // The TLS certificate has no uri in its subject.
        let tls = std::fs::read_to_string(dir.join("tls-dev.crt")).expect("tls certificate");
        assert_eq!(certificate_uri(&tls).expect("subject"), None);
        assert!(certificate_uri_mismatch(&tls, "https://iam.example.it/spid").is_some());
        assert!(certificate_uri_mismatch("not a certificate", "x").is_some());
    }

    #[test]
    fn the_needed_level_is_the_floor_of_acr_values() {
        assert_eq!(needed_level(&[]), None);
        assert_eq!(needed_level(&[ACR_PASSWORD.into()]), None);
        assert_eq!(
            needed_level(&[ACR_SPID_L2.into(), "urn:other".into()]),
            Some(SpidLevel::L2)
        );
        assert_eq!(
            needed_level(&[ACR_SPID_L2.into(), ACR_SPID_L1.into()]),
            Some(SpidLevel::L1)
        );
        assert_eq!(
            needed_level(&[ACR_SPID_L2.into(), ACR_PASSWORD.into()]),
            None
        );
    }
}
