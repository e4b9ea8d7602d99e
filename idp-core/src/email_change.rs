//! Changing the personal email from the Area riservata: the new address receives a
//! link, and only following it makes the change. The institutional email is never
//! changed here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::account::{AccountId, Email};
use crate::directory::{Account, Directory, now};
use crate::link::{self, LinkPurpose, LinkState, LinkStore};
use crate::mail::OutgoingMail;
use crate::secret::Secret;

pub const LINK_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize, Deserialize)]
struct Payload {
    email: Email,
}

/// Starts a change: voids older links, issues one for the new address and queues the
/// mail `compose` writes around its token (link and mail in one transaction).
pub async fn request(
    links: &dyn LinkStore,
    account: &Account,
    email: &Email,
    compose: impl FnOnce(&Secret) -> OutgoingMail + Send,
) -> Result<()> {
    links
        .void_links(account.id.as_str(), LinkPurpose::EmailChange, now())
        .await?;
    link::issue_and_mail(
        links,
        LinkPurpose::EmailChange,
        Some(account.id.as_str()),
        &Payload {
            email: email.clone(),
        },
        LINK_TTL,
        compose,
    )
    .await
}

/// Follows the link: the personal email becomes the confirmed address.
pub async fn confirm(
    directory: &Directory,
    links: &dyn LinkStore,
    token: &str,
) -> Result<std::result::Result<(Account, Email), LinkState>> {
    let state = link::consume(links, LinkPurpose::EmailChange, token).await?;
    let LinkState::Valid(found) = state else {
        return Ok(Err(state));
    };
    let payload: Payload = link::payload(&found)?;
    let id = AccountId::from_string(found.account_id.unwrap_or_default());
    let Some(mut account) = directory.store().account_by_id(&id).await? else {
        return Ok(Err(LinkState::Unknown));
    };
    account.personal_email = Some(payload.email.clone());
    directory.update_profile(&account).await?;
    Ok(Ok((account, payload.email)))
}
