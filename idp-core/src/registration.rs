//! "Registrati": fiscal code and security check, personal data and consents, review,
//! then a confirmation link by email; the confirmed link creates the account and a
//! temporary password. The steps are an enum; each transition validates its input
//! and reports every field error at once, in Italian, keyed by form field.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::account::{AccountId, AccountKind, AccountStatus, Email, Username};
use crate::directory::{Account, Directory, now};
use crate::fiscal_code::{FiscalCode, Sex};
use crate::link::{self, LinkPurpose, LinkState, LinkStore};
use crate::mail::OutgoingMail;
use crate::password::{Password, generate_temporary};
use crate::secret::TokenHash;
use crate::{CoreError, Result};

/// Life of the confirmation link.
pub const CONFIRMATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// The privacy notice the consents refer to; change it when the text changes.
pub const PRIVACY_VERSION: &str = "2026-01";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    #[default]
    FiscalCode,
    PersonalData,
    Review,
    Done,
}

impl Step {
    pub fn number(&self) -> u8 {
        match self {
            Step::FiscalCode => 1,
            Step::PersonalData => 2,
            Step::Review => 3,
            Step::Done => 4,
        }
    }
}

/// What the person typed so far, kept server-side between steps (values as typed, so
/// that a page with errors shows them back).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Draft {
    pub step: Step,
    pub fiscal_code: String,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: String,
    pub birth_place: String,
    pub sex: String,
    pub email: String,
    pub email_repeat: String,
    pub privacy: bool,
    pub data_processing: bool,
}

/// Field name -> Italian message.
pub type FieldErrors = BTreeMap<&'static str, String>;

pub const ALREADY_REGISTERED_IT: &str = "Per questo codice fiscale è già presente un'utenza: \
     non serve registrarsi di nuovo. Accedi con le credenziali che hai, oppure usa «Password \
     dimenticata?».";

/// A consent given, with the version of the text and the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub kind: String,
    pub version: String,
    pub accepted_at: i64,
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn record_consent(&self, account_id: &str, consent: &Consent) -> Result<()>;
    async fn consents(&self, account_id: &str) -> Result<Vec<Consent>>;
    /// In one transaction: consumes the registration link `link` (if unused and
    /// unexpired at `now`), inserts `account` (with its password) and its consents.
    /// `Ok(false)`, with nothing written, when the link was no longer valid; a
    /// failure at any point leaves nothing written either (no account without its
    /// password or consents, no link spent without its account).
    async fn complete_registration(
        &self,
        link: &TokenHash,
        now: i64,
        account: &Account,
        consents: &[Consent],
        mail: Option<&OutgoingMail>,
    ) -> Result<bool>;
}

/// The validated registration, carried by the confirmation link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Application {
    pub fiscal_code: FiscalCode,
    pub given_name: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub birth_place: String,
    pub sex: Sex,
    pub email: Email,
    pub consents: Vec<Consent>,
}

/// Step 1: the fiscal code's format. Whether it is taken is asked of the store.
pub fn check_fiscal_code(input: &str) -> std::result::Result<FiscalCode, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("Inserisci il codice fiscale".into());
    }
    FiscalCode::parse(trimmed).map_err(|e| e.message_it())
}

/// Parses a date typed as `YYYY-MM-DD` (the date input) or `GG/MM/AAAA`.
pub fn parse_date(input: &str) -> Option<NaiveDate> {
    let s = input.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .ok()
}

/// Step 2: every personal field, and the agreement of birth date and sex with the
/// fiscal code. Returns the application the review shows.
pub fn check_personal_data(draft: &Draft) -> std::result::Result<Application, FieldErrors> {
    let mut errors = FieldErrors::new();
    let fiscal_code = FiscalCode::parse(draft.fiscal_code.trim());
    let name = |value: &str, field: &'static str, label: &str, errors: &mut FieldErrors| {
        let v = value.trim();
        if v.is_empty() {
            errors.insert(field, format!("Inserisci il {label}"));
        } else if v.chars().count() > 100 || !v.chars().any(char::is_alphabetic) {
            errors.insert(field, format!("Il {label} non è valido"));
        }
        v.to_string()
    };
    let given_name = name(&draft.given_name, "given_name", "nome", &mut errors);
    let family_name = name(&draft.family_name, "family_name", "cognome", &mut errors);
    let birth_date = match parse_date(&draft.birth_date) {
        Some(d) if d < chrono::Utc::now().date_naive() && d.year() > 1900 => Some(d),
        Some(_) => {
            errors.insert("birth_date", "La data di nascita non è valida".into());
            None
        }
        None if draft.birth_date.trim().is_empty() => {
            errors.insert("birth_date", "Inserisci la data di nascita".into());
            None
        }
        None => {
            errors.insert(
                "birth_date",
                "La data di nascita non è valida: usa il formato GG/MM/AAAA".into(),
            );
            None
        }
    };
    let birth_place = draft.birth_place.trim().to_string();
    if birth_place.is_empty() {
        errors.insert("birth_place", "Inserisci il luogo di nascita".into());
    }
    let sex = Sex::parse(&draft.sex);
    if sex.is_none() {
        errors.insert("sex", "Indica il sesso".into());
    }
    let email = match Email::parse(draft.email.trim()) {
        Ok(e) => Some(e),
        Err(_) if draft.email.trim().is_empty() => {
            errors.insert("email", "Inserisci l'indirizzo email".into());
            None
        }
        Err(e) => {
            errors.insert("email", e.message_it());
            None
        }
    };
    if email.is_some()
        && !draft
            .email
            .trim()
            .eq_ignore_ascii_case(draft.email_repeat.trim())
    {
        errors.insert(
            "email_repeat",
            "I due indirizzi email non coincidono".into(),
        );
    }
    if !draft.privacy {
        errors.insert(
            "privacy",
            "Per registrarti devi dichiarare di aver letto l'informativa sulla privacy".into(),
        );
    }
    if !draft.data_processing {
        errors.insert(
            "data_processing",
            "Per registrarti devi acconsentire al trattamento dei dati personali".into(),
        );
    }
    if let (Ok(fc), Some(date), Some(sex)) = (&fiscal_code, birth_date, sex)
        && let Err(d) = fc.check_agreement(date, sex)
    {
        use crate::fiscal_code::FiscalCodeDisagreement as D;
        match d {
            D::BirthDate => errors.insert("birth_date", d.message_it().into()),
            D::Sex => errors.insert("sex", d.message_it().into()),
            D::BirthDateAndSex => errors.insert("birth_date", d.message_it().into()),
        };
    }
    match (fiscal_code, birth_date, sex, email) {
        (Ok(fiscal_code), Some(birth_date), Some(sex), Some(email)) if errors.is_empty() => {
            let at = now();
            Ok(Application {
                fiscal_code,
                given_name,
                family_name,
                birth_date,
                birth_place,
                sex,
                email,
                consents: vec![
                    Consent {
                        kind: "privacy_notice".into(),
                        version: PRIVACY_VERSION.into(),
                        accepted_at: at,
                    },
                    Consent {
                        kind: "data_processing".into(),
                        version: PRIVACY_VERSION.into(),
                        accepted_at: at,
                    },
                ],
            })
        }
        (Err(e), ..) => {
            errors.insert("fiscal_code", e.message_it());
            Err(errors)
        }
        _ => Err(errors),
    }
}

/// Step 3 confirmed: stores the application behind a 24-hour link and returns its token.
pub async fn submit(
    links: &dyn LinkStore,
    application: &Application,
) -> Result<crate::secret::Secret> {
    link::issue(
        links,
        LinkPurpose::Registration,
        None,
        application,
        CONFIRMATION_TTL,
    )
    .await
}

/// Step 3 confirmed, with the mail: stores the application behind a 24-hour link and
/// queues the mail `compose` writes around the link's token, in one transaction.
pub async fn submit_and_mail(
    links: &dyn LinkStore,
    application: &Application,
    compose: impl FnOnce(&crate::secret::Secret) -> OutgoingMail + Send,
) -> Result<()> {
    link::issue_and_mail(
        links,
        LinkPurpose::Registration,
        None,
        application,
        CONFIRMATION_TTL,
        compose,
    )
    .await
}

/// Writes the credentials mail of a new account: its username, its temporary password
/// and when that expires. `None` when the account has no address to write to.
pub type CredentialsMail<'a> =
    &'a (dyn Fn(&Account, &Password, i64) -> Option<OutgoingMail> + Send + Sync);

/// What following the confirmation link gave.
#[derive(Debug)]
pub enum Confirmation {
    Created {
        account: Box<Account>,
        temporary_password: Password,
        expires_at: i64,
    },
    /// Someone registered this fiscal code in the meantime.
    AlreadyRegistered,
    Refused(LinkState),
}

/// Consumes the link and creates the account with its consents, a temporary password
/// and the queued mail that `credentials` writes, all in one transaction (see
/// `ConsentStore::complete_registration`).
pub async fn confirm(
    directory: &Directory,
    links: &dyn LinkStore,
    registrations: &dyn ConsentStore,
    token: &str,
    temporary_validity_days: u32,
    credentials: CredentialsMail<'_>,
) -> Result<Confirmation> {
    let state = link::check(links, LinkPurpose::Registration, token).await?;
    let LinkState::Valid(found) = state else {
        return Ok(Confirmation::Refused(state));
    };
    let application: Application = link::payload(&found)?;
    if directory
        .store()
        .account_by_fiscal_code(&application.fiscal_code)
        .await?
        .is_some()
    {
        link::consume(links, LinkPurpose::Registration, token).await?;
        return Ok(Confirmation::AlreadyRegistered);
    }
    let temporary_password = generate_temporary(directory.policy());
    let hash = directory
        .hash(Password::new(temporary_password.expose().to_string()))
        .await?;
    let expires_at = now() + i64::from(temporary_validity_days.max(1)) * 24 * 3600;
    let base = Username::base_from_names(&application.given_name, &application.family_name)?;
    // A username taken between the choice and the insert: choose again.
    for _attempt in 0..5 {
        let at = now();
        let account = Account {
            id: AccountId::new(),
            username: directory.next_username(&base).await?,
            kind: AccountKind::Registered,
            status: AccountStatus::Active,
            fiscal_code: Some(application.fiscal_code.clone()),
            given_name: application.given_name.trim().to_string(),
            family_name: application.family_name.trim().to_string(),
            birth_date: Some(application.birth_date),
            birth_place: Some(application.birth_place.clone()),
            sex: Some(application.sex),
            personal_email: Some(application.email.clone()),
            institutional_email: None,
            password: Some(hash.clone()),
            password_must_change: true,
            password_expires_at: Some(expires_at),
            created_at: at,
            updated_at: at,
        };
        let mail = credentials(&account, &temporary_password, expires_at);
        match registrations
            .complete_registration(
                &found.token_hash,
                at,
                &account,
                &application.consents,
                mail.as_ref(),
            )
            .await
        {
            Ok(true) => {
                return Ok(Confirmation::Created {
                    account: Box::new(account),
                    temporary_password,
                    expires_at,
                });
            }
            // Used or expired in the meantime (a second click): say which.
            Ok(false) => {
                let state = link::check(links, LinkPurpose::Registration, token).await?;
                return Ok(match state {
                    LinkState::Valid(_) => Confirmation::Refused(LinkState::Used),
                    other => Confirmation::Refused(other),
                });
            }
            Err(CoreError::Conflict("username")) => continue,
            Err(CoreError::Conflict("fiscal_code")) => {
                link::consume(links, LinkPurpose::Registration, token).await?;
                return Ok(Confirmation::AlreadyRegistered);
            }
            Err(e) => return Err(e),
        }
    }
    Err(CoreError::Conflict("username"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            step: Step::PersonalData,
            fiscal_code: "RSSMRA85T10A562S".into(),
            given_name: "Mario".into(),
            family_name: "Rossi".into(),
            birth_date: "10/12/1985".into(),
            birth_place: "San Giuliano Terme".into(),
            sex: "M".into(),
            email: "mario@example.org".into(),
            email_repeat: "mario@example.org".into(),
            privacy: true,
            data_processing: true,
        }
    }

    #[test]
    fn complete_and_coherent_data_make_an_application_with_consents() {
        let app = check_personal_data(&draft()).expect("valid");
        assert_eq!(app.consents.len(), 2);
        assert!(app.consents.iter().all(|c| c.version == PRIVACY_VERSION));
    }

    #[test]
    fn a_birth_date_that_disagrees_with_the_fiscal_code_is_named_beside_the_field() {
        let mut d = draft();
        d.birth_date = "11/12/1985".into();
        let errors = check_personal_data(&d).unwrap_err();
        assert_eq!(
            errors["birth_date"],
            "La data di nascita non corrisponde al codice fiscale"
        );
        let mut d = draft();
        d.sex = "F".into();
        assert_eq!(
            check_personal_data(&d).unwrap_err()["sex"],
            "Il sesso non corrisponde al codice fiscale"
        );
    }

    #[test]
    fn every_missing_field_is_reported_at_once() {
        let d = Draft {
            fiscal_code: "RSSMRA85T10A562S".into(),
            ..Draft::default()
        };
        let errors = check_personal_data(&d).unwrap_err();
        for field in [
            "given_name",
            "family_name",
            "birth_date",
            "birth_place",
            "sex",
            "email",
            "privacy",
            "data_processing",
        ] {
            assert!(errors.contains_key(field), "{field}: {errors:?}");
        }
    }

    #[test]
    fn a_malformed_fiscal_code_is_refused_in_italian() {
        assert!(check_fiscal_code("RSSMRA85").is_err());
        assert_eq!(
            check_fiscal_code(" ").unwrap_err(),
            "Inserisci il codice fiscale"
        );
        assert!(check_fiscal_code("rssmra85t10a562s").is_ok());
    }
}
