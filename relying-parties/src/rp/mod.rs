//! The small RP library the three services share: discovery at start, the code flow
//! with PKCE + state + nonce kept in a server-side session, ID token validation,
//! userinfo, refresh, RP-initiated logout and a back-channel logout receiver.

mod claims;
mod flow;
mod logout;
pub mod logout_token;
pub mod pages;
pub mod session;

use std::sync::{Arc, RwLock};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    ClientId, ClientSecret, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, ProviderMetadataWithLogout, RedirectUrl, StandardErrorResponse,
};

pub use claims::{Enablement, Person, ServiceClaims};
pub use pages::router;
pub use session::{EnrolmentVisit, Session, SessionStore, SignedIn};

use logout_token::{JtiCache, Keys};

/// One relying party's settings.
#[derive(Clone, Debug)]
pub struct RpConfig {
    /// The service name (`pago-in-rete`): the cookie name and the pages use it.
    pub service: String,
    /// What people read ("Pago in rete").
    pub display_name: String,
    /// The IdP's issuer URL, without a trailing slash.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where people reach this RP, without a trailing slash (`http://127.0.0.1:8081`).
    pub base_url: String,
    pub port: u16,
    /// Istanze OnLine's own storage and mail (unused by the other services).
    pub istanze: crate::istanze::Settings,
}

impl RpConfig {
    pub fn redirect_uri(&self) -> String {
        format!("{}/callback", self.base_url)
    }

    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/", self.base_url)
    }

    pub fn backchannel_logout_uri(&self) -> String {
        format!("{}/backchannel-logout", self.base_url)
    }

    /// A browser-session cookie per service: the RPs share a host in the demo and the
    /// tests, and cookies are per host, not per port.
    pub fn cookie_name(&self) -> String {
        format!("rp_{}_session", self.service)
    }
}

pub type IdTokenFields = openidconnect::IdTokenFields<
    ServiceClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type TokenResponse = openidconnect::StandardTokenResponse<IdTokenFields, CoreTokenType>;
pub type IdToken = openidconnect::IdToken<
    ServiceClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The `openidconnect` client as discovery builds it (authorization endpoint set,
/// token and userinfo endpoints from the metadata).
pub type OidcClient = openidconnect::Client<
    ServiceClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A relying party: cheap to clone, shared by its handlers.
#[derive(Clone)]
pub struct Rp {
    inner: Arc<Inner>,
}

struct Inner {
    config: RpConfig,
    http: reqwest::Client,
    provider: RwLock<Provider>,
    sessions: SessionStore,
    seen_logout_jtis: JtiCache,
}

/// What discovery told us; refreshed when the IdP signs with a key we do not know.
#[derive(Clone)]
struct Provider {
    client: OidcClient,
    end_session_endpoint: Option<String>,
    jwks_uri: String,
    keys: Keys,
}

impl Rp {
    /// Reads the IdP's discovery document and JWKS.
    pub async fn discover(config: RpConfig) -> anyhow::Result<Rp> {
        let http = reqwest::Client::builder()
            // The token and userinfo calls must never follow redirects (SSRF guard, and
            // the `openidconnect` crate's advice).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let provider = Self::load_provider(&config, &http).await?;
        Ok(Rp {
            inner: Arc::new(Inner {
                config,
                http,
                provider: RwLock::new(provider),
                sessions: SessionStore::default(),
                seen_logout_jtis: JtiCache::default(),
            }),
        })
    }

    async fn load_provider(config: &RpConfig, http: &reqwest::Client) -> anyhow::Result<Provider> {
        let issuer = IssuerUrl::new(config.issuer.clone())?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, http)
            .await
            .map_err(|e| anyhow::anyhow!("discovery at {}: {e}", config.issuer))?;
        let end_session_endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string());
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let keys = Keys::fetch(http, &jwks_uri).await?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            Some(ClientSecret::new(config.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(config.redirect_uri())?);
        Ok(Provider {
            client,
            end_session_endpoint,
            jwks_uri,
            keys,
        })
    }

    /// Re-reads discovery and the JWKS (after a key rotation at the IdP).
    async fn rediscover(&self) -> anyhow::Result<()> {
        let provider = Self::load_provider(&self.inner.config, &self.inner.http).await?;
        *self.inner.provider.write().expect("provider lock") = provider;
        Ok(())
    }

    fn provider(&self) -> Provider {
        self.inner.provider.read().expect("provider lock").clone()
    }

    pub fn config(&self) -> &RpConfig {
        &self.inner.config
    }

    pub fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The IdP's keys as last read.
    pub(crate) fn idp_keys(&self) -> Keys {
        self.provider().keys
    }

    /// Re-reads the IdP's JWKS (a request names a key not seen yet).
    pub(crate) async fn reload_keys(&self) {
        let jwks_uri = self.provider().jwks_uri;
        match Keys::fetch(self.http(), &jwks_uri).await {
            Ok(keys) => self.inner.provider.write().expect("provider lock").keys = keys,
            Err(e) => tracing::warn!(error = %e, "cannot re-read the IdP's JWKS"),
        }
    }
}
