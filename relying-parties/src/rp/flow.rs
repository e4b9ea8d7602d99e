//! The authorization code flow as the RP runs it: the authorization URL with PKCE S256,
//! state and nonce; the callback's checks in order; the code exchange, ID token and
//! userinfo; and the refresh when the access token has expired.

use openidconnect::core::{CoreAuthenticationFlow, CoreGenderClaim};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RefreshToken, Scope, SubjectIdentifier,
    TokenResponse as _, UserInfoClaims,
};
use serde::Deserialize;

use super::claims::{Person, ServiceClaims};
use super::session::{PENDING_LOGIN_SECS, PendingLogin, SignedIn, now};
use super::{IdToken, Rp, TokenResponse};

/// What the IdP sends back to `/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Why a login could not finish; each is shown to the person in Italian.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no login was started in this browser, or it took too long")]
    NoPendingLogin,
    #[error("the state does not match the login started here")]
    StateMismatch,
    #[error("the response comes from another issuer")]
    WrongIssuer,
    #[error("the IdP answered {error}: {description}")]
    Idp { error: String, description: String },
    #[error("the response has no code")]
    NoCode,
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("userinfo failed: {0}")]
    UserInfo(String),
}

impl LoginError {
    /// The sentence the error page shows.
    pub fn italian(&self) -> String {
        match self {
            LoginError::NoPendingLogin | LoginError::StateMismatch => {
                "L'accesso non è stato avviato da questo browser o è scaduto. Riprova.".into()
            }
            LoginError::Idp { error, .. } if error == "access_denied" => {
                "L'accesso è stato negato: l'abilitazione al servizio non risulta completata."
                    .into()
            }
            LoginError::Idp { description, .. } => {
                format!("Il servizio di autenticazione ha risposto con un errore: {description}")
            }
            _ => "Non è stato possibile completare l'accesso. Riprova più tardi.".into(),
        }
    }
}

/// Why a refresh failed: the local session ends either way.
#[derive(Debug, thiserror::Error)]
#[error("refresh failed: {0}")]
pub struct RefreshError(String);

impl Rp {
    /// The URL that starts a login at the IdP, and what the callback will need.
    pub(crate) fn authorization_url(&self) -> (url::Url, PendingLogin) {
        let provider = self.provider();
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = provider
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            started_at: now(),
        };
        (url, pending)
    }

    /// The callback's checks in order, then the code exchange, the ID token and userinfo.
    pub(crate) async fn finish_login(
        &self,
        pending: Option<PendingLogin>,
        params: CallbackParams,
    ) -> Result<SignedIn, LoginError> {
        let pending = check_pending(pending)?;
        check_state(&pending, &params)?;
        self.check_issuer(&params)?;
        check_idp_error(&params)?;
        let code = params.code.ok_or(LoginError::NoCode)?;
        let tokens = self.exchange(code, pending.pkce_verifier).await?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| LoginError::IdToken("the token response has no ID token".into()))?
            .clone();
        let (person, sid) = self
            .verify_id_token(&id_token, &tokens, Some(&pending.nonce))
            .await?;
        self.signed_in(id_token, &tokens, person, sid, None)
            .await
            .map_err(|e| LoginError::UserInfo(e.0))
    }

    fn check_issuer(&self, params: &CallbackParams) -> Result<(), LoginError> {
        // RFC 9207: the IdP names itself in the response (mix-up defence).
        match &params.iss {
            Some(iss) if iss != &self.config().issuer => Err(LoginError::WrongIssuer),
            _ => Ok(()),
        }
    }

    async fn exchange(&self, code: String, verifier: String) -> Result<TokenResponse, LoginError> {
        let client = self.provider().client;
        client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| LoginError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(self.http())
            .await
            .map_err(|e| LoginError::Exchange(format!("{e}")))
    }

    /// Verifies the ID token (signature, iss, aud, exp, nonce when one was sent,
    /// at_hash); a key we do not know yet makes us re-read the JWKS once.
    async fn verify_id_token(
        &self,
        id_token: &IdToken,
        tokens: &TokenResponse,
        nonce: Option<&str>,
    ) -> Result<(Person, Option<String>), LoginError> {
        match self.verify_id_token_once(id_token, tokens, nonce) {
            Ok(person) => Ok(person),
            Err(first) => {
                tracing::info!(error = %first, "ID token refused; re-reading the IdP's keys once");
                self.rediscover()
                    .await
                    .map_err(|e| LoginError::IdToken(e.to_string()))?;
                self.verify_id_token_once(id_token, tokens, nonce)
            }
        }
    }

    fn verify_id_token_once(
        &self,
        id_token: &IdToken,
        tokens: &TokenResponse,
        nonce: Option<&str>,
    ) -> Result<(Person, Option<String>), LoginError> {
        let provider = self.provider();
        let verifier = provider.client.id_token_verifier();
        let expected = nonce.map(|n| Nonce::new(n.to_string()));
        let claims = id_token
            .claims(&verifier, |got: Option<&Nonce>| match (&expected, got) {
                (Some(want), Some(got)) if want.secret() == got.secret() => Ok(()),
                (Some(_), _) => Err("the nonce does not match".to_string()),
                (None, _) => Ok(()),
            })
            .map_err(|e| LoginError::IdToken(e.to_string()))?;
        if let Some(hash) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| LoginError::IdToken(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| LoginError::IdToken(e.to_string()))?;
            let expected = AccessTokenHash::from_token(tokens.access_token(), alg, key)
                .map_err(|e| LoginError::IdToken(e.to_string()))?;
            if &expected != hash {
                return Err(LoginError::IdToken("at_hash does not match".into()));
            }
        }
        let extra: &ServiceClaims = claims.additional_claims();
        let person = Person {
            sub: claims.subject().to_string(),
            given_name: claims
                .given_name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            family_name: claims
                .family_name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            name: claims
                .name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            fiscal_code: extra.fiscal_code.clone(),
            email: claims.email().map(|e| e.to_string()),
            birthdate: claims.birthdate().map(|b| b.to_string()),
            enablement: extra.enablement.clone(),
            roles: extra.roles.clone().unwrap_or_default(),
        };
        Ok((person, extra.sid.clone()))
    }

    /// Completes the person with userinfo and builds the signed-in state.
    async fn signed_in(
        &self,
        id_token: IdToken,
        tokens: &TokenResponse,
        mut person: Person,
        sid: Option<String>,
        previous: Option<&SignedIn>,
    ) -> Result<SignedIn, RefreshError> {
        let info = self
            .user_info(tokens.access_token().clone(), &person.sub)
            .await?;
        person.merge(info);
        let sid = sid.or_else(|| previous.and_then(|p| p.sid.clone()));
        Ok(SignedIn {
            person,
            id_token: id_token.to_string(),
            sid,
            access_token: tokens.access_token().secret().clone(),
            refresh_token: tokens
                .refresh_token()
                .map(|r| r.secret().clone())
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: tokens.expires_in().map(|d| now() + d.as_secs() as i64),
        })
    }

    async fn user_info(&self, token: AccessToken, sub: &str) -> Result<Person, RefreshError> {
        let client = self.provider().client;
        let claims: UserInfoClaims<ServiceClaims, CoreGenderClaim> = client
            .user_info(token, Some(SubjectIdentifier::new(sub.to_string())))
            .map_err(|e| RefreshError(e.to_string()))?
            .request_async(self.http())
            .await
            .map_err(|e| RefreshError(format!("userinfo: {e}")))?;
        let extra = claims.additional_claims();
        Ok(Person {
            sub: claims.subject().to_string(),
            given_name: claims
                .given_name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            family_name: claims
                .family_name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            name: claims
                .name()
                .and_then(|c| c.get(None))
                .map(|v| v.to_string()),
            fiscal_code: extra.fiscal_code.clone(),
            email: claims.email().map(|e| e.to_string()),
            birthdate: claims.birthdate().map(|b| b.to_string()),
            enablement: extra.enablement.clone(),
            roles: extra.roles.clone().unwrap_or_default(),
        })
    }

    /// Trades the refresh token for new tokens and re-reads the person (a change made
    /// at any service shows here too). Fails when the grant was revoked (logout).
    pub(crate) async fn refresh(&self, current: &SignedIn) -> Result<SignedIn, RefreshError> {
        let refresh = current
            .refresh_token
            .clone()
            .ok_or_else(|| RefreshError("no refresh token".into()))?;
        let client = self.provider().client;
        let tokens = client
            .exchange_refresh_token(&RefreshToken::new(refresh))
            .map_err(|e| RefreshError(e.to_string()))?
            .request_async(self.http())
            .await
            .map_err(|e| RefreshError(format!("{e}")))?;
        let (id_token, person, sid) = match tokens.id_token() {
            Some(id_token) => {
                let (person, sid) = self
                    .verify_id_token(id_token, &tokens, None)
                    .await
                    .map_err(|e| RefreshError(e.to_string()))?;
                if person.sub != current.person.sub {
                    return Err(RefreshError(
                        "the refreshed ID token names another person".into(),
                    ));
                }
                (id_token.clone(), person, sid)
            }
            None => {
                let old: IdToken = current
                    .id_token
                    .parse()
                    .map_err(|e| RefreshError(format!("stored ID token: {e}")))?;
                (old, current.person.clone(), None)
            }
        };
        self.signed_in(id_token, &tokens, person, sid, Some(current))
            .await
    }
}

fn check_pending(pending: Option<PendingLogin>) -> Result<PendingLogin, LoginError> {
    match pending {
        Some(p) if now() - p.started_at <= PENDING_LOGIN_SECS => Ok(p),
        _ => Err(LoginError::NoPendingLogin),
    }
}

fn check_state(pending: &PendingLogin, params: &CallbackParams) -> Result<(), LoginError> {
    if params.state.as_deref() == Some(pending.state.as_str()) {
        Ok(())
    } else {
        Err(LoginError::StateMismatch)
    }
}

fn check_idp_error(params: &CallbackParams) -> Result<(), LoginError> {
    match &params.error {
        Some(error) => Err(LoginError::Idp {
            error: error.clone(),
            description: params.error_description.clone().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}
