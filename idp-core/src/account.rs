//! The values that identify an account: its id, username, email, kind and status.
//! Each is validated when built, so a `Username` or `Email` that exists is well formed;
//! the `nome.cognome` username base is derived here from a person's names.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Why an account value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountValueError {
    #[error("a username has {min} to {max} characters, found {found}")]
    UsernameLength {
        min: usize,
        max: usize,
        found: usize,
    },
    #[error("a username must start with a letter")]
    UsernameStart,
    #[error("a username may contain only lowercase letters, digits, '.', '-' and '_'")]
    UsernameCharacter,
    #[error("the given name has no letters usable in a username")]
    GivenNameUnusable,
    #[error("the family name has no letters usable in a username")]
    FamilyNameUnusable,
    #[error("an email address must contain exactly one '@'")]
    EmailAt,
    #[error("an email address must not contain spaces or control characters")]
    EmailWhitespace,
    #[error("the part of an email address before '@' must have 1 to 64 characters")]
    EmailLocalPart,
    #[error("the domain of an email address is not valid")]
    EmailDomain,
    #[error("an email address must not exceed 254 characters")]
    EmailTooLong,
    #[error("unknown account kind {found:?}")]
    UnknownKind { found: String },
    #[error("unknown account status {found:?}")]
    UnknownStatus { found: String },
}

impl AccountValueError {
    pub fn message_it(&self) -> String {
        match self {
            AccountValueError::UsernameLength { min, max, .. } => {
                format!("Lo username deve essere lungo da {min} a {max} caratteri")
            }
            AccountValueError::UsernameStart => {
                "Lo username deve iniziare con una lettera".to_string()
            }
            AccountValueError::UsernameCharacter => {
                "Lo username può contenere solo lettere minuscole, cifre, punti, trattini e trattini bassi"
                    .to_string()
            }
            AccountValueError::GivenNameUnusable => {
                "Il nome non contiene lettere utilizzabili per lo username".to_string()
            }
            AccountValueError::FamilyNameUnusable => {
                "Il cognome non contiene lettere utilizzabili per lo username".to_string()
            }
            AccountValueError::EmailAt
            | AccountValueError::EmailLocalPart
            | AccountValueError::EmailDomain => {
                "L'indirizzo email non è valido".to_string()
            }
            AccountValueError::EmailWhitespace => {
                "L'indirizzo email non deve contenere spazi".to_string()
            }
            AccountValueError::EmailTooLong => {
                "L'indirizzo email non deve superare i 254 caratteri".to_string()
            }
            AccountValueError::UnknownKind { .. } => "Tipo di utenza non riconosciuto".to_string(),
            AccountValueError::UnknownStatus { .. } => {
                "Stato dell'utenza non riconosciuto".to_string()
            }
        }
    }
}

/// The stable, opaque identifier of an account (the OIDC `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// A fresh random id (UUID v4): it reveals nothing about the person and never
    /// changes, unlike the username.
    // No `Default`: a default that is random each time would surprise.
    #[allow(clippy::new_without_default)]
    pub fn new() -> AccountId {
        AccountId(uuid::Uuid::new_v4().to_string())
    }

    /// Wraps an id read back from storage or from a token.
    pub fn from_string(id: String) -> AccountId {
        AccountId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const USERNAME_MIN: usize = 3;
const USERNAME_MAX: usize = 64;
/// Room kept for the collision number, so a suffixed username never outgrows the limit.
const SUFFIX_ROOM: usize = 10; // digits in u32::MAX

/// A login name: lowercase ASCII letters, digits, '.', '-', '_', 3 to 64 characters,
/// starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Trims and lower-cases the input, since people type their username in any case.
    pub fn parse(input: &str) -> Result<Username, AccountValueError> {
        let name = input.trim().to_lowercase();
        let found = name.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&found) {
            return Err(AccountValueError::UsernameLength {
                min: USERNAME_MIN,
                max: USERNAME_MAX,
                found,
            });
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        {
            return Err(AccountValueError::UsernameCharacter);
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(AccountValueError::UsernameStart);
        }
        Ok(Username(name))
    }

    /// The `nome.cognome` base for a generated username: accents folded ("Nicolò"
    /// → "nicolo"), everything but ASCII letters and digits dropped ("D'Angelo" →
    /// "dangelo", "De Luca" → "deluca"), lowercased. The result is itself a valid
    /// username of at most 54 characters, so that [`Username::with_suffix`] can
    /// always append a collision number.
    pub fn base_from_names(
        given_name: &str,
        family_name: &str,
    ) -> Result<String, AccountValueError> {
        let given = fold_name(given_name);
        let family = fold_name(family_name);
        if !given.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(AccountValueError::GivenNameUnusable);
        }
        if family.is_empty() {
            return Err(AccountValueError::FamilyNameUnusable);
        }
        let mut base = format!("{given}.{family}");
        // Only ASCII remains, so byte truncation is character truncation.
        base.truncate(USERNAME_MAX - SUFFIX_ROOM);
        Ok(base)
    }

    /// The n-th candidate username for a base, tried in order until one is free:
    /// n = 0 and n = 1 both give the base itself ("mario.rossi"), n >= 2 appends the
    /// number ("mario.rossi2", "mario.rossi3", …), so the second Mario Rossi is
    /// `mario.rossi2`. `base` must come from [`Username::base_from_names`]; a longer
    /// one is cut so the result still fits in 64 characters.
    pub fn with_suffix(base: &str, n: u32) -> Username {
        let suffix = if n >= 2 { n.to_string() } else { String::new() };
        let mut name = base.to_string();
        let room = USERNAME_MAX.saturating_sub(suffix.len());
        if name.len() > room {
            let mut cut = room;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        name.push_str(&suffix);
        debug_assert!(
            Username::parse(&name).is_ok(),
            "username base {base:?} is not valid"
        );
        Username(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = AccountValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Username::parse(&value)
    }
}

impl From<Username> for String {
    fn from(username: Username) -> String {
        username.0
    }
}

/// Folds a name to the ASCII letters and digits a username can hold. Letters that
/// Unicode does not decompose (ß, ø, ł, æ …) are spelled out the usual way rather
/// than dropped, so "Łukasz" stays "lukasz".
fn fold_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.nfd().filter(|c| !is_combining_mark(*c)) {
        for lower in c.to_lowercase() {
            match lower {
                'a'..='z' | '0'..='9' => out.push(lower),
                'ß' => out.push_str("ss"),
                'æ' => out.push_str("ae"),
                'œ' => out.push_str("oe"),
                'ø' => out.push('o'),
                'ł' => out.push('l'),
                'đ' | 'ð' => out.push('d'),
                'þ' => out.push_str("th"),
                'ı' => out.push('i'),
                _ => {}
            }
        }
    }
    out
}

const EMAIL_MAX: usize = 254;
const LOCAL_MAX: usize = 64;
const LABEL_MAX: usize = 63;

/// An email address, checked for shape only (ownership is proved by the
/// confirmation link). The domain is lowercased; the local part is kept as typed,
/// since a mail server may treat its case as significant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, AccountValueError> {
        let trimmed = input.trim();
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AccountValueError::EmailWhitespace);
        }
        let mut parts = trimmed.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AccountValueError::EmailAt);
        };
        if local.is_empty() || local.chars().count() > LOCAL_MAX {
            return Err(AccountValueError::EmailLocalPart);
        }
        let domain = domain.to_ascii_lowercase();
        if !domain_is_valid(&domain) {
            return Err(AccountValueError::EmailDomain);
        }
        let email = format!("{local}@{domain}");
        if email.chars().count() > EMAIL_MAX {
            return Err(AccountValueError::EmailTooLong);
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after '@', lowercased.
    pub fn domain(&self) -> &str {
        // parse() guarantees exactly one '@'.
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

fn domain_is_valid(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= LABEL_MAX
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = AccountValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

/// How an account came to be, which decides where its password lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// Created through "Registrati".
    Registered,
    /// A legacy staff account; same rules as a registered one.
    NomeCognome,
    /// Ministry staff ("utenza MI"): the password belongs to the Ministry's directory.
    Ministry,
}

impl AccountKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountKind::Registered => "registered",
            AccountKind::NomeCognome => "nome_cognome",
            AccountKind::Ministry => "ministry",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AccountValueError> {
        match s {
            "registered" => Ok(AccountKind::Registered),
            "nome_cognome" => Ok(AccountKind::NomeCognome),
            "ministry" => Ok(AccountKind::Ministry),
            other => Err(AccountValueError::UnknownKind {
                found: other.to_string(),
            }),
        }
    }

    /// Ministry passwords are reset through SIDI or the security referent, never by
    /// an email link from us.
    pub fn allows_self_service_password_reset(&self) -> bool {
        !matches!(self, AccountKind::Ministry)
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AccountValueError> {
        match s {
            "active" => Ok(AccountStatus::Active),
            "disabled" => Ok(AccountStatus::Disabled),
            other => Err(AccountValueError::UnknownStatus {
                found: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_account_ids_are_distinct_uuids() {
        let a = AccountId::new();
        let b = AccountId::new();
        assert_ne!(a, b);
        assert!(uuid::Uuid::parse_str(a.as_str()).is_ok());
        assert_eq!(AccountId::from_string(a.to_string()), a);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            format!("\"{}\"", a.as_str())
        );
    }

    #[test]
    fn a_username_is_trimmed_and_lowercased() {
        assert_eq!(
            Username::parse("  Mario.Rossi ").unwrap().as_str(),
            "mario.rossi"
        );
        assert!(Username::parse("m_r-1.x").is_ok());
    }

    #[test]
    fn a_username_that_is_too_short_or_too_long_is_refused() {
        assert!(matches!(
            Username::parse("ab"),
            Err(AccountValueError::UsernameLength { found: 2, .. })
        ));
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(matches!(
            Username::parse(&"a".repeat(65)),
            Err(AccountValueError::UsernameLength { found: 65, .. })
        ));
    }

    #[test]
    fn a_username_must_start_with_a_letter_and_use_only_allowed_characters() {
        assert_eq!(
            Username::parse("1mario"),
            Err(AccountValueError::UsernameStart)
        );
        assert_eq!(
            Username::parse(".mario"),
            Err(AccountValueError::UsernameStart)
        );
        for bad in ["mario rossi", "mario@rossi", "nicolò", "mario+1"] {
            assert_eq!(
                Username::parse(bad),
                Err(AccountValueError::UsernameCharacter),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_username_base_folds_accents_and_drops_apostrophes_and_spaces() {
        let cases = [
            ("Mario", "Rossi", "mario.rossi"),
            ("Nicolò", "D'Angelo", "nicolo.dangelo"),
            ("José María", "De Luca", "josemaria.deluca"),
            ("ANNA-MARIA", "Dell’Orto", "annamaria.dellorto"),
            ("Łukasz", "Straße", "lukasz.strasse"),
            ("  Zoë ", " Çelik", "zoe.celik"),
        ];
        for (given, family, expected) in cases {
            assert_eq!(
                Username::base_from_names(given, family).unwrap(),
                expected,
                "{given} {family}"
            );
            assert!(Username::parse(expected).is_ok());
        }
    }

    #[test]
    fn a_name_with_nothing_usable_is_refused() {
        assert_eq!(
            Username::base_from_names("'", "Rossi"),
            Err(AccountValueError::GivenNameUnusable)
        );
        assert_eq!(
            Username::base_from_names("Mario", " - "),
            Err(AccountValueError::FamilyNameUnusable)
        );
        assert_eq!(
            Username::base_from_names("李", "Rossi"),
            Err(AccountValueError::GivenNameUnusable)
        );
    }

    #[test]
    fn collisions_are_numbered_from_two() {
        assert_eq!(
            Username::with_suffix("mario.rossi", 0).as_str(),
            "mario.rossi"
        );
        assert_eq!(
            Username::with_suffix("mario.rossi", 1).as_str(),
            "mario.rossi"
        );
        assert_eq!(
            Username::with_suffix("mario.rossi", 2).as_str(),
            "mario.rossi2"
        );
        assert_eq!(
            Username::with_suffix("mario.rossi", 17).as_str(),
            "mario.rossi17"
        );
    }

    #[test]
    fn very_long_names_still_give_a_username_that_fits_with_any_number() {
        let family = "x".repeat(200);
        let base = Username::base_from_names("Maria", &family).unwrap();
        assert_eq!(base.len(), 54);
        let last = Username::with_suffix(&base, u32::MAX);
        assert!(last.as_str().len() <= 64);
        assert!(Username::parse(last.as_str()).is_ok());
        assert!(last.as_str().ends_with(&u32::MAX.to_string()));
    }

    #[test]
    fn username_serde_validates() {
        let u: Username = serde_json::from_str("\"Mario.Rossi\"").unwrap();
        assert_eq!(u.as_str(), "mario.rossi");
        assert!(serde_json::from_str::<Username>("\"1x\"").is_err());
    }

    #[test]
    fn an_email_keeps_its_local_part_and_lowercases_its_domain() {
        let e = Email::parse("  Mario.Rossi@Istruzione.IT ").unwrap();
        assert_eq!(e.as_str(), "Mario.Rossi@istruzione.it");
        assert_eq!(e.domain(), "istruzione.it");
        assert_eq!(e.to_string(), "Mario.Rossi@istruzione.it");
        assert!(Email::parse("a+tag@posta.scuola-1.example.it").is_ok());
    }

    #[test]
    fn malformed_emails_are_refused_with_the_reason() {
        let cases = [
            ("mario.rossi", AccountValueError::EmailAt),
            ("mario@rossi@example.it", AccountValueError::EmailAt),
            ("@example.it", AccountValueError::EmailLocalPart),
            ("mario@example", AccountValueError::EmailDomain),
            ("mario@", AccountValueError::EmailDomain),
            ("mario@-example.it", AccountValueError::EmailDomain),
            ("mario@example-.it", AccountValueError::EmailDomain),
            ("mario@exa_mple.it", AccountValueError::EmailDomain),
            ("mario@example..it", AccountValueError::EmailDomain),
            ("mario@.example.it", AccountValueError::EmailDomain),
            ("mario rossi@example.it", AccountValueError::EmailWhitespace),
            ("mario@exam\tple.it", AccountValueError::EmailWhitespace),
        ];
        for (input, expected) in cases {
            assert_eq!(Email::parse(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn email_length_limits_are_enforced() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.it")).is_ok());
        assert_eq!(
            Email::parse(&format!("a{local}@example.it")),
            Err(AccountValueError::EmailLocalPart)
        );
        let long_domain = format!("{}.it", vec!["b".repeat(60); 4].join("."));
        assert_eq!(
            Email::parse(&format!("{local}@{long_domain}")),
            Err(AccountValueError::EmailTooLong)
        );
    }

    #[test]
    fn email_serde_validates() {
        let e: Email = serde_json::from_str("\"x@Example.it\"").unwrap();
        assert_eq!(e.as_str(), "x@example.it");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }

    #[test]
    fn account_kinds_round_trip_and_only_ministry_refuses_self_service_reset() {
        for kind in [
            AccountKind::Registered,
            AccountKind::NomeCognome,
            AccountKind::Ministry,
        ] {
            assert_eq!(AccountKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert!(AccountKind::Registered.allows_self_service_password_reset());
        assert!(AccountKind::NomeCognome.allows_self_service_password_reset());
        assert!(!AccountKind::Ministry.allows_self_service_password_reset());
        assert!(matches!(
            AccountKind::parse("MI"),
            Err(AccountValueError::UnknownKind { .. })
        ));
    }

    #[test]
    fn account_statuses_round_trip() {
        for status in [AccountStatus::Active, AccountStatus::Disabled] {
            assert_eq!(AccountStatus::parse(status.as_str()), Ok(status));
        }
        assert!(AccountStatus::parse("deleted").is_err());
        assert_eq!(
            serde_json::to_string(&AccountStatus::Disabled).unwrap(),
            "\"disabled\""
        );
    }

    #[test]
    fn errors_have_italian_messages() {
        assert_eq!(
            AccountValueError::EmailDomain.message_it(),
            "L'indirizzo email non è valido"
        );
        assert!(
            AccountValueError::UsernameLength {
                min: 3,
                max: 64,
                found: 1
            }
            .message_it()
            .contains("da 3 a 64")
        );
    }
}
