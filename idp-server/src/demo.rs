//! `idp-server demo`: the whole federation on localhost with embedded defaults
//! (SQLite file, in-process cache, dev keys, mail outbox page) and one ready account.

use idp_core::CoreError;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::NewAccount;
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::password::Password;

use crate::state::AppState;

/// The demo's ready account. Development only: the password is printed at start.
pub const DEMO_USERNAME: &str = "mario.rossi";
pub const DEMO_PASSWORD: &str = "Demo-Scuola-2026!";

/// Creates the demo account on first start, and resets its password on every start so
/// that what is printed always works.
pub async fn seed_account(state: &AppState) -> anyhow::Result<()> {
    let username = Username::parse(DEMO_USERNAME)?;
    let account = match state.store.account_by_username(&username).await? {
        Some(a) => a,
        None => {
            let new = NewAccount {
                kind: AccountKind::Registered,
                fiscal_code: Some(FiscalCode::parse("RSSMRA85T10A562S")?),
                given_name: "Mario".into(),
                family_name: "Rossi".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10),
                birth_place: Some("San Giuliano Terme".into()),
                sex: Some(Sex::Male),
                personal_email: Some(Email::parse("mario.rossi@example.org")?),
                institutional_email: None,
                username: Some(username),
            };
            match state.directory.create_account(new).await {
                Ok(a) => a,
                Err(CoreError::Conflict(what)) => {
                    anyhow::bail!("demo account: {what} already taken by another account")
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    state
        .directory
        .set_password(&account, Password::new(DEMO_PASSWORD.to_string()))
        .await?;
    Ok(())
}
