//! Accounts for SPID sign-ins. A verified SPID identity is linked to the account that
//! has its fiscal code; when there is none, a `registered` account is made from the
//! SPID attributes, with no password (the person signs in with SPID; "Password
//! dimenticata?" can set one later) and no confirmation mail: the identity provider
//! has already verified the person and the address.

use chrono::NaiveDate;

use crate::account::{AccountKind, AccountStatus, Email};
use crate::directory::{Account, Directory, NewAccount};
use crate::fiscal_code::{FiscalCode, Sex};
use crate::{CoreError, Result};

/// The attributes of a verified SPID identity that accounts use.
#[derive(Clone, Debug, Default)]
pub struct SpidAttributes {
    /// Without the `TINIT-` prefix.
    pub fiscal_code: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    /// `YYYY-MM-DD`, as SPID sends it.
    pub birth_date: Option<String>,
    /// `M` or `F`.
    pub sex: Option<String>,
}

/// What a SPID identity signs in as.
#[derive(Debug)]
pub enum SpidAccount {
    /// The existing account with that fiscal code.
    Linked(Box<Account>),
    /// A new account made from the attributes.
    Created(Box<Account>),
    /// The account with that fiscal code is disabled.
    Disabled,
    /// No account can be made from these attributes; the reason, in Italian.
    Unusable(&'static str),
}

/// Finds the account of a SPID identity, or creates it.
pub async fn link_or_create(directory: &Directory, attrs: &SpidAttributes) -> Result<SpidAccount> {
    let Ok(fiscal_code) = FiscalCode::parse(&attrs.fiscal_code) else {
        return Ok(SpidAccount::Unusable(
            "Il codice fiscale ricevuto dal gestore SPID non è valido.",
        ));
    };
    if let Some(found) = existing(directory, &fiscal_code).await? {
        return Ok(found);
    }
    let (Some(given_name), Some(family_name)) = (
        attrs
            .given_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
        attrs
            .family_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
    ) else {
        return Ok(SpidAccount::Unusable(
            "Il gestore SPID non ha inviato nome e cognome: non è possibile creare l'utenza.",
        ));
    };
    let new = NewAccount {
        kind: AccountKind::Registered,
        fiscal_code: Some(fiscal_code.clone()),
        given_name: given_name.to_string(),
        family_name: family_name.to_string(),
        birth_date: attrs
            .birth_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok()),
        birth_place: None,
        sex: attrs.sex.as_deref().and_then(Sex::parse),
        // An address SPID sends that we cannot use is left out, not fatal.
        personal_email: attrs.email.as_deref().and_then(|e| Email::parse(e).ok()),
        institutional_email: None,
        username: None,
    };
    match directory.create_account(new).await {
        Ok(account) => Ok(SpidAccount::Created(Box::new(account))),
        // The same person signing in twice at once: the other sign-in created it.
        Err(CoreError::Conflict("fiscal_code")) => match existing(directory, &fiscal_code).await? {
            Some(found) => Ok(found),
            None => Err(CoreError::Conflict("fiscal_code")),
        },
        Err(CoreError::AccountValue(_)) => Ok(SpidAccount::Unusable(
            "Nome e cognome ricevuti dal gestore SPID non permettono di creare lo username.",
        )),
        Err(e) => Err(e),
    }
}

async fn existing(directory: &Directory, fiscal_code: &FiscalCode) -> Result<Option<SpidAccount>> {
    Ok(
        match directory
            .store()
            .account_by_fiscal_code(fiscal_code)
            .await?
        {
            Some(a) if a.status == AccountStatus::Disabled => Some(SpidAccount::Disabled),
            Some(a) => Some(SpidAccount::Linked(Box::new(a))),
            None => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::password::{HashParams, PasswordHasher, PasswordPolicy};
    use crate::store::sql::SqlStore;

    async fn directory() -> Directory {
        let store = SqlStore::connect("sqlite::memory:", 1)
            .await
            .expect("sqlite");
        store.migrate().await.expect("migrations");
        let hasher = PasswordHasher::new(HashParams::default()).expect("hasher");
        Directory::new(Arc::new(store), Arc::new(hasher), PasswordPolicy::default())
    }

    fn attrs() -> SpidAttributes {
        SpidAttributes {
            fiscal_code: "RSSMRA85T10A562S".into(),
            given_name: Some("Mario".into()),
            family_name: Some("Rossi".into()),
            email: Some("mario.rossi@example.org".into()),
            birth_date: Some("1985-12-10".into()),
            sex: Some("M".into()),
        }
    }

    #[tokio::test]
    async fn a_new_identity_makes_a_registered_account_without_password() {
        let d = directory().await;
        let SpidAccount::Created(a) = link_or_create(&d, &attrs()).await.unwrap() else {
            panic!("expected a new account");
        };
        assert_eq!(a.kind, AccountKind::Registered);
        assert_eq!(a.username.as_str(), "mario.rossi");
        assert!(a.password.is_none());
        assert_eq!(
            a.personal_email.unwrap().as_str(),
            "mario.rossi@example.org"
        );
        assert_eq!(a.birth_date, NaiveDate::from_ymd_opt(1985, 12, 10));
        assert_eq!(a.sex, Some(Sex::Male));
    }

    #[tokio::test]
    async fn the_same_fiscal_code_links_to_the_same_account() {
        let d = directory().await;
        let SpidAccount::Created(first) = link_or_create(&d, &attrs()).await.unwrap() else {
            panic!("expected a new account");
        };
        let SpidAccount::Linked(again) = link_or_create(&d, &attrs()).await.unwrap() else {
            panic!("expected the linked account");
        };
        assert_eq!(first.id, again.id);
    }

    #[tokio::test]
    async fn without_names_no_account_is_made() {
        let d = directory().await;
        let no_names = SpidAttributes {
            given_name: None,
            ..attrs()
        };
        assert!(matches!(
            link_or_create(&d, &no_names).await.unwrap(),
            SpidAccount::Unusable(_)
        ));
        let bad_code = SpidAttributes {
            fiscal_code: "RSSMRA85T10A562X".into(),
            ..attrs()
        };
        assert!(matches!(
            link_or_create(&d, &bad_code).await.unwrap(),
            SpidAccount::Unusable(_)
        ));
    }
}
