//! Single-use links sent by email (registration confirmation, password reset, change
//! of personal email). Only the SHA-256 of the token is stored; a link is consumed by
//! one atomic update, so two clicks racing each other cannot both succeed.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::directory::now;
use crate::mail::OutgoingMail;
use crate::secret::{Secret, TokenHash, generate_token};
use crate::{CoreError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    Registration,
    PasswordReset,
    EmailChange,
}

impl LinkPurpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkPurpose::Registration => "registration",
            LinkPurpose::PasswordReset => "password_reset",
            LinkPurpose::EmailChange => "email_change",
        }
    }
}

/// A stored link: what it is for and what it carries (JSON), never the token itself.
#[derive(Clone, Debug)]
pub struct EmailLink {
    pub token_hash: TokenHash,
    pub purpose: LinkPurpose,
    pub account_id: Option<String>,
    pub payload: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// What a presented token turns out to be.
#[derive(Debug)]
pub enum LinkState {
    Valid(EmailLink),
    Expired,
    Used,
    Unknown,
}

impl LinkState {
    /// The Italian sentence for a link that cannot be used.
    pub fn refusal_it(&self) -> &'static str {
        match self {
            LinkState::Valid(_) => "",
            LinkState::Expired => "Il link è scaduto: ripeti la richiesta per riceverne uno nuovo.",
            LinkState::Used => "Il link è già stato usato e non è più valido.",
            LinkState::Unknown => "Il link non è valido: controlla di averlo copiato per intero.",
        }
    }
}

#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Stores a link and, in the same transaction, queues the mail that carries it.
    async fn insert_link(&self, link: &EmailLink, mail: Option<&OutgoingMail>) -> Result<()>;
    async fn find_link(&self, hash: &TokenHash, purpose: LinkPurpose) -> Result<Option<EmailLink>>;
    /// Marks the link used if it is unused and unexpired at `now`; true when it did.
    async fn consume_link(&self, hash: &TokenHash, purpose: LinkPurpose, now: i64) -> Result<bool>;
    /// Marks every unused link of an account for a purpose as used (a newer one wins).
    async fn void_links(&self, account_id: &str, purpose: LinkPurpose, now: i64) -> Result<()>;
    /// Deletes the links that expired, or were used, before `before` (any purpose);
    /// returns how many went. Registration links carry the application's personal data.
    async fn delete_links_before(&self, before: i64) -> Result<u64>;
}

/// Stores a new link and returns the token to put in the email.
pub async fn issue<P: Serialize>(
    store: &dyn LinkStore,
    purpose: LinkPurpose,
    account_id: Option<&str>,
    payload: &P,
    ttl: Duration,
) -> Result<Secret> {
    issue_inner(
        store,
        purpose,
        account_id,
        payload,
        ttl,
        None::<fn(&Secret) -> OutgoingMail>,
    )
    .await
}

/// Stores a new link and queues the mail that `compose` writes around its token, in one
/// transaction: the link never exists without its mail on the way.
pub async fn issue_and_mail<P: Serialize>(
    store: &dyn LinkStore,
    purpose: LinkPurpose,
    account_id: Option<&str>,
    payload: &P,
    ttl: Duration,
    compose: impl FnOnce(&Secret) -> OutgoingMail + Send,
) -> Result<()> {
    issue_inner(store, purpose, account_id, payload, ttl, Some(compose)).await?;
    Ok(())
}

async fn issue_inner<P: Serialize>(
    store: &dyn LinkStore,
    purpose: LinkPurpose,
    account_id: Option<&str>,
    payload: &P,
    ttl: Duration,
    compose: Option<impl FnOnce(&Secret) -> OutgoingMail + Send>,
) -> Result<Secret> {
    let token = generate_token();
    let mail = compose.map(|c| c(&token));
    let at = now();
    let payload =
        serde_json::to_string(payload).map_err(|e| CoreError::Invalid(format!("link: {e}")))?;
    store
        .insert_link(
            &EmailLink {
                token_hash: token.hash(),
                purpose,
                account_id: account_id.map(str::to_string),
                payload,
                created_at: at,
                expires_at: at + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
                used_at: None,
            },
            mail.as_ref(),
        )
        .await?;
    Ok(token)
}

/// Looks a token up without using it (to show the page the link opens).
pub async fn check(store: &dyn LinkStore, purpose: LinkPurpose, token: &str) -> Result<LinkState> {
    if token.is_empty() || token.len() > 128 {
        return Ok(LinkState::Unknown);
    }
    let Some(link) = store.find_link(&TokenHash::of(token), purpose).await? else {
        return Ok(LinkState::Unknown);
    };
    Ok(if link.used_at.is_some() {
        LinkState::Used
    } else if link.expires_at <= now() {
        LinkState::Expired
    } else {
        LinkState::Valid(link)
    })
}

/// Uses a token: `Valid` only for the one caller that consumed it.
pub async fn consume(
    store: &dyn LinkStore,
    purpose: LinkPurpose,
    token: &str,
) -> Result<LinkState> {
    let state = check(store, purpose, token).await?;
    let LinkState::Valid(link) = state else {
        return Ok(state);
    };
    if store.consume_link(&link.token_hash, purpose, now()).await? {
        Ok(LinkState::Valid(link))
    } else {
        check(store, purpose, token).await
    }
}

/// The payload of a link, as it was issued.
pub fn payload<P: DeserializeOwned>(link: &EmailLink) -> Result<P> {
    serde_json::from_str(&link.payload).map_err(|e| CoreError::Invalid(format!("link: {e}")))
}
