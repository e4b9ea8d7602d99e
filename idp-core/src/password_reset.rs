//! "Password dimenticata?": a single-use link (1 h) to the account's reference email.
//! Ministry accounts get no link (their password lives in the Ministry's directory)
//! but an email with the guidance instead. The requester learns nothing: the answer
//! is the same whether or not the account exists.

use std::time::Duration;

use crate::Result;
use crate::account::{AccountId, Email, Username};
use crate::directory::{Account, Directory};
use crate::link::{self, LinkPurpose, LinkState, LinkStore};
use crate::mail::OutgoingMail;
use crate::password::Password;
use crate::secret::Secret;

pub const LINK_TTL: Duration = Duration::from_secs(3600);

pub const MINISTRY_GUIDANCE_IT: &str = "Per le utenze di tipo MI la password non si reimposta \
     da qui: usa il portale SIDI oppure rivolgiti al referente della sicurezza.";

/// What a reset request leads to (only the mail differs; the page never does).
#[derive(Debug)]
pub enum Request {
    /// A link to this address: its mail is queued with it.
    Link { to: Email, account: Box<Account> },
    /// A ministry account: send the guidance to this address.
    MinistryGuidance { to: Email, account: Box<Account> },
    /// Unknown username, or an account without an address: nothing to send.
    Nothing,
}

/// Writes the reset mail: to the address, for the account, around the link's token.
pub type ResetMail<'a> = &'a (dyn Fn(&Email, &Account, &Secret) -> OutgoingMail + Send + Sync);

/// Looks the account up; for one that may reset its password, issues a link and queues
/// the mail `reset_mail` writes around it, in one transaction.
pub async fn request(
    directory: &Directory,
    links: &dyn LinkStore,
    username: &str,
    reset_mail: ResetMail<'_>,
) -> Result<Request> {
    let Ok(username) = Username::parse(username.trim()) else {
        return Ok(Request::Nothing);
    };
    let Some(account) = directory.store().account_by_username(&username).await? else {
        return Ok(Request::Nothing);
    };
    let Some(to) = account.reference_email().cloned() else {
        return Ok(Request::Nothing);
    };
    if !account.kind.allows_self_service_password_reset() {
        return Ok(Request::MinistryGuidance {
            to,
            account: Box::new(account),
        });
    }
    // A new link replaces the older ones.
    links
        .void_links(
            account.id.as_str(),
            LinkPurpose::PasswordReset,
            crate::directory::now(),
        )
        .await?;
    link::issue_and_mail(
        links,
        LinkPurpose::PasswordReset,
        Some(account.id.as_str()),
        &(),
        LINK_TTL,
        |token| reset_mail(&to, &account, token),
    )
    .await?;
    Ok(Request::Link {
        to,
        account: Box::new(account),
    })
}

/// The account a still-valid link resets, or why the link cannot be used.
pub async fn account_of_link(
    directory: &Directory,
    links: &dyn LinkStore,
    token: &str,
) -> Result<std::result::Result<Account, LinkState>> {
    let state = link::check(links, LinkPurpose::PasswordReset, token).await?;
    let LinkState::Valid(found) = state else {
        return Ok(Err(state));
    };
    let id = AccountId::from_string(found.account_id.unwrap_or_default());
    match directory.store().account_by_id(&id).await? {
        Some(a) if a.kind.allows_self_service_password_reset() => Ok(Ok(a)),
        _ => Ok(Err(LinkState::Unknown)),
    }
}

/// Sets the new password (already checked against the policy) if the link is still
/// unused; the link is spent by this call.
pub async fn complete(
    directory: &Directory,
    links: &dyn LinkStore,
    token: &str,
    account: &Account,
    password: Password,
) -> Result<std::result::Result<(), LinkState>> {
    let state = link::consume(links, LinkPurpose::PasswordReset, token).await?;
    match state {
        LinkState::Valid(found) if found.account_id.as_deref() == Some(account.id.as_str()) => {
            directory.set_password(account, password).await?;
            Ok(Ok(()))
        }
        LinkState::Valid(_) => Ok(Err(LinkState::Unknown)),
        other => Ok(Err(other)),
    }
}
