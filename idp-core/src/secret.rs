//! Machine-generated, high-entropy secrets (confirmation and reset links, refresh
//! tokens, client secrets) and the hash under which they are stored.
//! A [`Secret`] never prints and compares in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A secret value handed to a person or a client. `Debug` prints `Secret(***)` so
/// that a stray `{:?}` in a log line cannot leak it; reading it takes an explicit
/// [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which this secret is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Constant time over the contents, so that comparing a presented secret with an
/// expected one does not reveal how many leading bytes matched. (Only the length
/// may leak, and lengths of our secrets are public.)
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

/// 256 random bits from the operating system, base64url without padding: 43
/// characters, safe in URLs and form fields as they are.
pub fn generate_token() -> Secret {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    Secret(URL_SAFE_NO_PAD.encode(bytes))
}

/// How a high-entropy secret is stored: lowercase hex SHA-256 of it.
///
/// High-entropy secrets are stored as SHA-256, never argon2: a slow hash there
/// would throttle every request that presents a token, and adds nothing against
/// 256-bit secrets, which no one can guess however fast the hash. (Passwords, which
/// people choose, are a different matter: see [`crate::password`].) A plain hash
/// also lets the store look a token up by its hash directly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(secret: &str) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Wraps a hash read back from storage.
    pub fn from_hex(hex: String) -> TokenHash {
        TokenHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_url_safe_characters_and_all_different() {
        let tokens: Vec<Secret> = (0..100).map(|_| generate_token()).collect();
        for token in &tokens {
            assert_eq!(token.expose().len(), 43);
            assert!(
                token
                    .expose()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        let distinct: std::collections::HashSet<&str> = tokens.iter().map(Secret::expose).collect();
        assert_eq!(distinct.len(), tokens.len());
    }

    #[test]
    fn a_token_hash_is_deterministic_lowercase_hex_sha256() {
        let a = TokenHash::of("abc");
        assert_eq!(
            a.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenHash::of("abc"), a);
        assert_ne!(TokenHash::of("abd"), a);
        assert_eq!(TokenHash::from_hex(a.as_str().to_string()), a);
        let token = generate_token();
        assert_eq!(token.hash(), TokenHash::of(token.expose()));
        assert_eq!(token.hash().as_str().len(), 64);
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::new("hunter2-very-secret".to_string());
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("Secret(***)"));
    }

    #[test]
    fn secrets_compare_by_content() {
        let a = Secret::new("same-value".to_string());
        assert_eq!(a, Secret::new("same-value".to_string()));
        assert_ne!(a, Secret::new("same-valuf".to_string()));
        assert_ne!(a, Secret::new("same-value-longer".to_string()));
        assert_ne!(a, Secret::new(String::new()));
    }
}
