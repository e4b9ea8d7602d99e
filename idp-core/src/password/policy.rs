//! The password policy: the rules a new password must follow, checked all at once
//! and listed in Italian, and the random temporary password that every policy
//! accepts. Hashing is in the parent module.

use rand::Rng as _;
use rand::rngs::OsRng;
use rand::seq::SliceRandom as _;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::{Password, PasswordHash, PasswordHasher, Verification};

/// The rules a new password must follow. Read from configuration; missing fields
/// take the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    /// A symbol is any character that is neither a letter, a digit nor a space.
    pub require_symbol: bool,
    /// How many previous passwords may not be reused (0 disables the check).
    pub history: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_symbol: true,
            history: 5,
        }
    }
}

/// One broken rule of the [`PasswordPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("the password must have at least {min} characters")]
    TooShort { min: usize },
    #[error("the password must have at most {max} characters")]
    TooLong { max: usize },
    #[error("the password must contain an uppercase letter")]
    MissingUppercase,
    #[error("the password must contain a lowercase letter")]
    MissingLowercase,
    #[error("the password must contain a digit")]
    MissingDigit,
    #[error("the password must contain a symbol")]
    MissingSymbol,
    #[error("the password must not contain the username")]
    ContainsUsername,
    #[error("the password must not contain the given or family name")]
    ContainsName,
    #[error("the password must not contain the fiscal code")]
    ContainsFiscalCode,
    #[error("the password must differ from the last {history} passwords")]
    RecentlyUsed { history: usize },
}

impl PolicyViolation {
    pub fn message_it(&self) -> String {
        match self {
            PolicyViolation::TooShort { min } => {
                format!("La password deve contenere almeno {min} caratteri")
            }
            PolicyViolation::TooLong { max } => {
                format!("La password non deve superare i {max} caratteri")
            }
            PolicyViolation::MissingUppercase => {
                "La password deve contenere almeno una lettera maiuscola".to_string()
            }
            PolicyViolation::MissingLowercase => {
                "La password deve contenere almeno una lettera minuscola".to_string()
            }
            PolicyViolation::MissingDigit => {
                "La password deve contenere almeno una cifra".to_string()
            }
            PolicyViolation::MissingSymbol => {
                "La password deve contenere almeno un carattere speciale (ad esempio ! ? @ # $ %)"
                    .to_string()
            }
            PolicyViolation::ContainsUsername => {
                "La password non deve contenere lo username".to_string()
            }
            PolicyViolation::ContainsName => {
                "La password non deve contenere il nome o il cognome".to_string()
            }
            PolicyViolation::ContainsFiscalCode => {
                "La password non deve contenere il codice fiscale".to_string()
            }
            PolicyViolation::RecentlyUsed { history } => history_sentence(*history),
        }
    }
}

fn history_sentence(history: usize) -> String {
    if history == 1 {
        "La password non deve essere uguale alla password precedente".to_string()
    } else {
        format!("La password non deve essere uguale a una delle ultime {history} password")
    }
}

/// What the policy compares a new password against, besides its own rules.
#[derive(Debug, Clone, Copy)]
pub struct PolicyContext<'a> {
    pub username: Option<&'a str>,
    /// Given and family names, as the person wrote them.
    pub names: &'a [&'a str],
    pub fiscal_code: Option<&'a str>,
    /// Newest first; include the current password's hash. Only the first
    /// `history` are checked.
    pub previous_hashes: &'a [PasswordHash],
}

/// Personal data shorter than this is not looked for: "Li" or "Bo" inside a
/// password is a coincidence, not a weakness.
const MIN_PERSONAL_LEN: usize = 3;

impl PasswordPolicy {
    /// The rules as Italian sentences, in the order the page lists them.
    pub fn rules_it(&self) -> Vec<String> {
        let mut rules = vec![format!(
            "La password deve contenere da {} a {} caratteri",
            self.min_length, self.max_length
        )];
        let classes = [
            (self.require_uppercase, PolicyViolation::MissingUppercase),
            (self.require_lowercase, PolicyViolation::MissingLowercase),
            (self.require_digit, PolicyViolation::MissingDigit),
            (self.require_symbol, PolicyViolation::MissingSymbol),
        ];
        rules.extend(
            classes
                .into_iter()
                .filter(|(required, _)| *required)
                .map(|(_, violation)| violation.message_it()),
        );
        rules.push(
            "La password non deve contenere lo username, il nome, il cognome o il codice fiscale"
                .to_string(),
        );
        if self.history > 0 {
            rules.push(history_sentence(self.history));
        }
        rules
    }

    /// Checks every rule and reports all the broken ones together, so the person
    /// fixes the password in one go instead of one complaint at a time.
    pub fn check(
        &self,
        password: &Password,
        ctx: &PolicyContext,
        hasher: &PasswordHasher,
    ) -> Result<(), Vec<PolicyViolation>> {
        let plain = password.expose();
        let mut broken = Vec::new();

        let length = plain.chars().count();
        if length < self.min_length {
            broken.push(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if length > self.max_length {
            broken.push(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }
        if self.require_uppercase && !plain.chars().any(char::is_uppercase) {
            broken.push(PolicyViolation::MissingUppercase);
        }
        if self.require_lowercase && !plain.chars().any(char::is_lowercase) {
            broken.push(PolicyViolation::MissingLowercase);
        }
        if self.require_digit && !plain.chars().any(char::is_numeric) {
            broken.push(PolicyViolation::MissingDigit);
        }
        if self.require_symbol && !plain.chars().any(is_symbol) {
            broken.push(PolicyViolation::MissingSymbol);
        }

        let folded = fold(plain);
        if ctx
            .username
            .is_some_and(|username| contains_personal(&folded, &fold(username)))
        {
            broken.push(PolicyViolation::ContainsUsername);
        }
        if ctx
            .names
            .iter()
            .flat_map(|name| name_candidates(name))
            .any(|candidate| contains_personal(&folded, &candidate))
        {
            broken.push(PolicyViolation::ContainsName);
        }
        if ctx
            .fiscal_code
            .is_some_and(|code| contains_personal(&folded, &fold(code.trim())))
        {
            broken.push(PolicyViolation::ContainsFiscalCode);
        }

        if self.history > 0 && self.recently_used(password, ctx.previous_hashes, hasher) {
            broken.push(PolicyViolation::RecentlyUsed {
                history: self.history,
            });
        }

        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }

    fn recently_used(
        &self,
        password: &Password,
        previous: &[PasswordHash],
        hasher: &PasswordHasher,
    ) -> bool {
        // A stored hash that cannot be read counts as "not this password": refusing
        // every new password because of one damaged history row would lock the
        // person out of changing it at all.
        previous.iter().take(self.history).any(|hash| {
            matches!(
                hasher.verify(password, hash),
                Ok(Verification::Valid { .. })
            )
        })
    }
}

fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// Lowercase with accents removed, so "Nicolò" inside "NICOLO2024!" is found.
fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn contains_personal(folded_password: &str, folded_value: &str) -> bool {
    folded_value.chars().count() >= MIN_PERSONAL_LEN && folded_password.contains(folded_value)
}

/// "De Luca" is looked for as "deluca" and as "luca"; "D'Angelo" as "dangelo" and
/// "angelo": people write compound names in a password either way.
fn name_candidates(name: &str) -> Vec<String> {
    let folded = fold(name);
    let mut candidates: Vec<String> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect();
    let joined: String = folded.chars().filter(|c| c.is_alphanumeric()).collect();
    if candidates.len() > 1 {
        candidates.push(joined);
    }
    candidates
}

const TEMPORARY_LENGTH: usize = 14;
// No I, O, l, o, 0, 1: a temporary password is read from an email and typed by hand.
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#$%*+-=?@";

/// A random temporary password (sent after registration, changed at first login):
/// at least 14 characters from an alphabet without look-alikes, with one character
/// of every class the policy requires, in random order.
pub fn generate_temporary(policy: &PasswordPolicy) -> Password {
    let length = policy
        .min_length
        .max(TEMPORARY_LENGTH)
        .min(policy.max_length)
        .max(4);
    let mut rng = OsRng;
    let mut pick = |set: &[u8]| char::from(set[rng.gen_range(0..set.len())]);

    let mut chars: Vec<char> = Vec::with_capacity(length);
    let classes = [
        (policy.require_uppercase, UPPER),
        (policy.require_lowercase, LOWER),
        (policy.require_digit, DIGITS),
        (policy.require_symbol, SYMBOLS),
    ];
    for (required, set) in classes {
        if required {
            chars.push(pick(set));
        }
    }
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    while chars.len() < length {
        chars.push(pick(&all));
    }
    chars.shuffle(&mut OsRng);
    Password::new(chars.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::PasswordHasher;

    fn pw(s: &str) -> Password {
        Password::new(s.to_string())
    }

    fn no_context() -> PolicyContext<'static> {
        PolicyContext {
            username: None,
            names: &[],
            fiscal_code: None,
            previous_hashes: &[],
        }
    }

    fn check(password: &str, ctx: &PolicyContext) -> Result<(), Vec<PolicyViolation>> {
        PasswordPolicy::default().check(&pw(password), ctx, &PasswordHasher::for_tests())
    }

    #[test]
    fn a_password_following_every_rule_is_accepted() {
        assert_eq!(check("Ottobre#2024", &no_context()), Ok(()));
    }

    #[test]
    fn a_password_breaking_many_rules_gets_all_of_them_reported_at_once() {
        let hasher = PasswordHasher::for_tests();
        let previous = [hasher.hash(&pw("rossi")).unwrap()];
        let names = ["Mario", "Rossi"];
        let ctx = PolicyContext {
            username: Some("rossi"),
            names: &names,
            fiscal_code: Some("rossi"),
            previous_hashes: &previous,
        };
        let broken = PasswordPolicy::default()
            .check(&pw("rossi"), &ctx, &hasher)
            .unwrap_err();
        assert_eq!(
            broken,
            vec![
                PolicyViolation::TooShort { min: 8 },
                PolicyViolation::MissingUppercase,
                PolicyViolation::MissingDigit,
                PolicyViolation::MissingSymbol,
                PolicyViolation::ContainsUsername,
                PolicyViolation::ContainsName,
                PolicyViolation::ContainsFiscalCode,
                PolicyViolation::RecentlyUsed { history: 5 },
            ]
        );
    }

    #[test]
    fn each_rule_is_reported_alone() {
        let cases = [
            ("Ott#24", PolicyViolation::TooShort { min: 8 }),
            ("ottobre#2024", PolicyViolation::MissingUppercase),
            ("OTTOBRE#2024", PolicyViolation::MissingLowercase),
            ("Ottobre#duemila", PolicyViolation::MissingDigit),
            ("Ottobre2024", PolicyViolation::MissingSymbol),
            ("Ottobre 2024", PolicyViolation::MissingSymbol),
        ];
        for (password, violation) in cases {
            assert_eq!(
                check(password, &no_context()),
                Err(vec![violation]),
                "{password}"
            );
        }
        let long = format!("Aa1#{}", "x".repeat(125));
        assert_eq!(
            check(&long, &no_context()),
            Err(vec![PolicyViolation::TooLong { max: 128 }])
        );
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // 8 characters, 11 bytes.
        assert_eq!(check("Èàò#2024", &no_context()), Ok(()));
    }

    #[test]
    fn rules_the_policy_does_not_require_are_not_checked() {
        let policy = PasswordPolicy {
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_symbol: false,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check(&pw("aaaaaaaa"), &no_context(), &PasswordHasher::for_tests()),
            Ok(())
        );
    }

    #[test]
    fn a_password_containing_the_username_in_any_case_is_refused() {
        let ctx = PolicyContext {
            username: Some("mario.rossi"),
            ..no_context()
        };
        assert_eq!(
            check("X#1MARIO.Rossi", &ctx),
            Err(vec![PolicyViolation::ContainsUsername])
        );
    }

    #[test]
    fn a_password_containing_a_name_even_without_accents_is_refused() {
        let names = ["Nicolò", "D'Angelo"];
        let ctx = PolicyContext {
            names: &names,
            ..no_context()
        };
        for password in [
            "NICOLOx#2024",
            "Nicolò#2024",
            "Dangelo#2024",
            "Angelo#2024x",
        ] {
            assert_eq!(
                check(password, &ctx),
                Err(vec![PolicyViolation::ContainsName]),
                "{password}"
            );
        }
    }

    #[test]
    fn compound_names_are_looked_for_whole_and_word_by_word() {
        let names = ["Maria Grazia", "De Luca"];
        let ctx = PolicyContext {
            names: &names,
            ..no_context()
        };
        for password in ["Deluca#2024", "Grazia#2024", "Luca#2024x", "Mariagrazia#1"] {
            assert_eq!(
                check(password, &ctx),
                Err(vec![PolicyViolation::ContainsName]),
                "{password}"
            );
        }
    }

    #[test]
    fn names_shorter_than_three_characters_are_ignored() {
        let names = ["Li", "Bo"];
        let ctx = PolicyContext {
            names: &names,
            ..no_context()
        };
        assert_eq!(check("Libo#2024x", &ctx), Ok(()));
    }

    #[test]
    fn a_password_containing_the_fiscal_code_is_refused() {
        let ctx = PolicyContext {
            fiscal_code: Some("RSSMRA85T10A562S"),
            ..no_context()
        };
        assert_eq!(
            check("rssmra85t10a562s#X", &ctx),
            Err(vec![PolicyViolation::ContainsFiscalCode])
        );
    }

    #[test]
    fn one_of_the_last_passwords_cannot_be_reused() {
        let hasher = PasswordHasher::for_tests();
        let previous: Vec<PasswordHash> = ["Nuova#2024", "Vecchia#2023", "Antica#2022"]
            .iter()
            .map(|p| hasher.hash(&pw(p)).unwrap())
            .collect();
        let ctx = PolicyContext {
            previous_hashes: &previous,
            ..no_context()
        };
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check(&pw("Vecchia#2023"), &ctx, &hasher),
            Err(vec![PolicyViolation::RecentlyUsed { history: 5 }])
        );
        assert_eq!(policy.check(&pw("Diversa#2025"), &ctx, &hasher), Ok(()));
    }

    #[test]
    fn only_the_configured_number_of_previous_passwords_is_checked() {
        let hasher = PasswordHasher::for_tests();
        let previous: Vec<PasswordHash> = ["Nuova#2024", "Vecchia#2023"]
            .iter()
            .map(|p| hasher.hash(&pw(p)).unwrap())
            .collect();
        let ctx = PolicyContext {
            previous_hashes: &previous,
            ..no_context()
        };
        let policy = PasswordPolicy {
            history: 1,
            ..PasswordPolicy::default()
        };
        assert_eq!(policy.check(&pw("Vecchia#2023"), &ctx, &hasher), Ok(()));
        assert_eq!(
            policy.check(&pw("Nuova#2024"), &ctx, &hasher),
            Err(vec![PolicyViolation::RecentlyUsed { history: 1 }])
        );
        let off = PasswordPolicy {
            history: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(off.check(&pw("Nuova#2024"), &ctx, &hasher), Ok(()));
    }

    #[test]
    fn violations_read_as_italian_sentences() {
        assert_eq!(
            PolicyViolation::TooShort { min: 8 }.message_it(),
            "La password deve contenere almeno 8 caratteri"
        );
        assert_eq!(
            PolicyViolation::MissingUppercase.message_it(),
            "La password deve contenere almeno una lettera maiuscola"
        );
        assert_eq!(
            PolicyViolation::ContainsUsername.message_it(),
            "La password non deve contenere lo username"
        );
        assert_eq!(
            PolicyViolation::ContainsName.message_it(),
            "La password non deve contenere il nome o il cognome"
        );
        assert_eq!(
            PolicyViolation::ContainsFiscalCode.message_it(),
            "La password non deve contenere il codice fiscale"
        );
        assert_eq!(
            PolicyViolation::RecentlyUsed { history: 5 }.message_it(),
            "La password non deve essere uguale a una delle ultime 5 password"
        );
    }

    #[test]
    fn the_rules_page_lists_only_what_the_policy_requires() {
        let rules = PasswordPolicy::default().rules_it();
        assert_eq!(rules.len(), 7);
        assert_eq!(rules[0], "La password deve contenere da 8 a 128 caratteri");
        assert!(rules.iter().any(|r| r.contains("ultime 5 password")));
        let relaxed = PasswordPolicy {
            require_symbol: false,
            history: 0,
            ..PasswordPolicy::default()
        };
        let rules = relaxed.rules_it();
        assert_eq!(rules.len(), 5);
        assert!(!rules.iter().any(|r| r.contains("speciale")));
    }

    #[test]
    fn the_policy_reads_from_partial_configuration() {
        let policy: PasswordPolicy = serde_json::from_str(r#"{"min_length": 12}"#).unwrap();
        assert_eq!(policy.min_length, 12);
        assert_eq!(policy.history, 5);
        assert!(policy.require_symbol);
    }

    #[test]
    fn temporary_passwords_satisfy_the_policy_and_differ() {
        let policy = PasswordPolicy::default();
        let hasher = PasswordHasher::for_tests();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let temporary = generate_temporary(&policy);
            assert_eq!(temporary.expose().chars().count(), 14);
            assert!(temporary.expose().bytes().all(|b| !b"IOlo01".contains(&b)));
            assert_eq!(
                policy.check(&temporary, &no_context(), &hasher),
                Ok(()),
                "{}",
                temporary.expose()
            );
            seen.insert(temporary.expose().to_string());
        }
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn temporary_passwords_grow_to_a_longer_minimum() {
        let policy = PasswordPolicy {
            min_length: 20,
            ..PasswordPolicy::default()
        };
        assert_eq!(generate_temporary(&policy).expose().chars().count(), 20);
    }
}
