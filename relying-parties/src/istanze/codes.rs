//! The secrets of the abilitazione: the temporary personal code (CPT) and the personal
//! code, and the answer to the recovery question; all stored as argon2 hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng as _;
use unicode_normalization::UnicodeNormalization as _;

/// Letters and digits people do not confuse (no 0/O, 1/I/l).
const CPT_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789";
const CPT_LEN: usize = 10;

pub fn hash(secret: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashes any input")
        .to_string()
}

pub fn verify(secret: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A new temporary personal code: random, with at least one letter and one digit.
pub fn new_cpt() -> String {
    let mut rng = rand::thread_rng();
    loop {
        let code: String = (0..CPT_LEN)
            .map(|_| CPT_ALPHABET[rng.gen_range(0..CPT_ALPHABET.len())] as char)
            .collect();
        if check_policy(&code).is_ok() {
            return code;
        }
    }
}

/// The personal code's policy: at least 8 characters, letters and digits.
pub fn check_policy(code: &str) -> Result<(), &'static str> {
    if code.chars().count() < 8 {
        return Err("Il codice personale deve avere almeno 8 caratteri.");
    }
    let letters = code.chars().any(|c| c.is_alphabetic());
    let digits = code.chars().any(|c| c.is_ascii_digit());
    if !(letters && digits) {
        return Err("Il codice personale deve contenere lettere e cifre.");
    }
    Ok(())
}

/// Without accents: "Citta'" and "Città" compare equal; also what the PDFs print with
/// the standard fonts.
pub fn fold_accents(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// The recovery answer as it is hashed and compared: no accents, lowercase, single
/// spaces.
pub fn normalise_answer(answer: &str) -> String {
    fold_accents(answer)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_answer_ignores_case_accents_and_spaces() {
        let stored = hash(&normalise_answer("De Niccolò"));
        assert!(verify(&normalise_answer("  de   NICCOLO "), &stored));
        assert!(!verify(&normalise_answer("De Nicola"), &stored));
    }

    #[test]
    fn a_cpt_meets_the_policy_and_the_policy_refuses_weak_codes() {
        let cpt = new_cpt();
        assert_eq!(cpt.len(), CPT_LEN);
        assert!(check_policy(&cpt).is_ok());
        assert!(check_policy("abc123").is_err());
        assert!(check_policy("abcdefghij").is_err());
        assert!(check_policy("1234567890").is_err());
        assert!(check_policy("scuola2026").is_ok());
    }
}
