//! Signing out: RP-initiated logout at the IdP's end_session_endpoint, and the
//! back-channel logout token that tells us a session ended elsewhere.

use openidconnect::{CsrfToken, EndSessionUrl, LogoutRequest, PostLogoutRedirectUrl};

use super::logout_token::{self, Expected, Keys, Refusal};
use super::session::{SignedIn, now};
use super::{IdToken, Rp};

impl Rp {
    /// Where the browser goes to end the IdP session too; `None` when the IdP offers no
    /// end_session_endpoint (the local session ends anyway).
    pub(crate) fn end_session_url(&self, signed: &SignedIn) -> Option<url::Url> {
        let endpoint = self.provider().end_session_endpoint?;
        let endpoint = EndSessionUrl::new(endpoint).ok()?;
        let hint: IdToken = signed.id_token.parse().ok()?;
        let back = PostLogoutRedirectUrl::new(self.config().post_logout_redirect_uri()).ok()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_id_token_hint(&hint)
                .set_client_id(openidconnect::ClientId::new(
                    self.config().client_id.clone(),
                ))
                .set_post_logout_redirect_uri(back)
                .set_state(CsrfToken::new_random())
                .http_get_url(),
        )
    }

    /// Verifies a back-channel logout token and ends every local session of its `sid`;
    /// returns how many ended. A key we do not know makes us re-read the JWKS once.
    pub async fn back_channel_logout(&self, token: &str) -> Result<usize, Refusal> {
        if let Some(kid) = logout_token::key_id(token)
            && self.provider().keys.find(&kid).is_none()
        {
            let jwks_uri = self.provider().jwks_uri;
            match Keys::fetch(self.http(), &jwks_uri).await {
                Ok(keys) => {
                    self.inner.provider.write().expect("provider lock").keys = keys;
                }
                Err(e) => tracing::warn!(error = %e, "cannot re-read the IdP's JWKS"),
            }
        }
        let keys = self.provider().keys;
        let config = self.config();
        let claims = logout_token::verify(
            token,
            &keys,
            &Expected {
                issuer: &config.issuer,
                client_id: &config.client_id,
                now: now(),
            },
            &self.inner.seen_logout_jtis,
        )?;
        let ended = self
            .sessions()
            .end_idp_session(&claims.sid, claims.sub.as_deref());
        tracing::info!(service = %config.service, sid = %claims.sid, ended, "back-channel logout");
        Ok(ended)
    }
}
