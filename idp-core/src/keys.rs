//! The IdP's OIDC signing keys: generation, settings, and (in [`ring`]) the key ring that
//! signs and verifies tokens and serves the JWKS. ES256 is the default, RS256 is there
//! for relying parties that only speak RSA. Keys live in storage ([`KeyStore`]) so that
//! every instance signs with the same keys and a rotation reaches them all.

mod ring;

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand::rngs::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub use self::ring::{KeyRing, TokenError, VerifyOptions};
pub use crate::store::KeyStore;

use crate::secret::Secret;
use crate::{CoreError, Result};

/// RSA modulus size of generated RS256 keys.
const RSA_BITS: usize = 2048;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 2] = [SigningAlgorithm::Es256, SigningAlgorithm::Rs256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    /// `ES256` or `RS256`, in any case.
    pub fn parse(s: &str) -> Option<SigningAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("unknown signing algorithm {s:?} (ES256 or RS256)"))
    }
}

/// One signing key as stored. It is published in the JWKS from the moment it is stored
/// until `retire_at`, and signs from `sign_from` on (until a newer key of the same
/// algorithm takes over).
#[derive(Clone)]
pub struct SigningKey {
    /// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key: derived from
    /// the key itself, so the same key always has the same `kid`.
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    /// PKCS#8 PEM.
    pub private_pem: Secret,
    /// The public key as published: kty and curve/modulus members, `kid`, `alg`, `use`.
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub sign_from: i64,
    pub retire_at: Option<i64>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_pem", &self.private_pem)
            .field("created_at", &self.created_at)
            .field("sign_from", &self.sign_from)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key: P-256 for ES256, 2048-bit RSA for RS256. RSA generation takes a
    /// noticeable time: from async code call it on a blocking thread.
    pub fn generate(algorithm: SigningAlgorithm, sign_from: i64) -> Result<SigningKey> {
        let (pem, members) = match algorithm {
            SigningAlgorithm::Es256 => {
                let secret = p256::SecretKey::random(&mut OsRng);
                let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(crypto)?;
                (pem.to_string(), public_members(algorithm, &pem)?)
            }
            SigningAlgorithm::Rs256 => {
                let private = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(crypto)?;
                let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(crypto)?;
                (pem.to_string(), public_members(algorithm, &pem)?)
            }
        };
        let kid = members.thumbprint();
        let public_jwk = members.to_jwk(&kid, algorithm);
        Ok(SigningKey {
            kid,
            algorithm,
            private_pem: Secret::new(pem),
            public_jwk,
            created_at: crate::directory::now(),
            sign_from,
            retire_at: None,
        })
    }

    /// In the JWKS at `now`: stored and not past `retire_at`.
    pub fn is_published_at(&self, now: i64) -> bool {
        self.retire_at.is_none_or(|r| r > now)
    }

    /// May sign at `now` (the newest such key of an algorithm does).
    pub fn can_sign_at(&self, now: i64) -> bool {
        self.sign_from <= now && self.is_published_at(now)
    }
}

/// The public members of a key, base64url, as RFC 7518 names them.
#[derive(Debug, PartialEq, Eq)]
enum PublicMembers {
    Ec { x: String, y: String },
    Rsa { n: String, e: String },
}

impl PublicMembers {
    /// RFC 7638: SHA-256 over the required members in lexicographic order, no spaces.
    fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicMembers::Ec { x, y } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            PublicMembers::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    fn to_jwk(&self, kid: &str, algorithm: SigningAlgorithm) -> serde_json::Value {
        let alg = algorithm.as_str();
        match self {
            PublicMembers::Ec { x, y } => json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y,
                "kid": kid, "alg": alg, "use": "sig",
            }),
            PublicMembers::Rsa { n, e } => json!({
                "kty": "RSA", "n": n, "e": e,
                "kid": kid, "alg": alg, "use": "sig",
            }),
        }
    }

    /// The members of a stored JWK, to check them against the private key.
    fn of_jwk(jwk: &serde_json::Value) -> Option<PublicMembers> {
        let member = |name: &str| jwk.get(name)?.as_str().map(str::to_owned);
        match jwk.get("kty")?.as_str()? {
            "EC" if jwk.get("crv")?.as_str()? == "P-256" => Some(PublicMembers::Ec {
                x: member("x")?,
                y: member("y")?,
            }),
            "RSA" => Some(PublicMembers::Rsa {
                n: member("n")?,
                e: member("e")?,
            }),
            _ => None,
        }
    }
}

/// Derives the public members from a PKCS#8 PEM private key of `algorithm`.
fn public_members(algorithm: SigningAlgorithm, pem: &str) -> Result<PublicMembers> {
    match algorithm {
        SigningAlgorithm::Es256 => {
            let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(crypto)?;
            let point = secret.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(CoreError::Crypto(
                    "P-256 public key without coordinates".into(),
                ));
            };
            Ok(PublicMembers::Ec {
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            })
        }
        SigningAlgorithm::Rs256 => {
            let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(crypto)?;
            Ok(PublicMembers::Rsa {
                n: URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
            })
        }
    }
}

fn crypto(e: impl fmt::Display) -> CoreError {
    CoreError::Crypto(e.to_string())
}

/// How many keys are kept and how rotation overlaps. `[keys]` in the server's
/// configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// The algorithms the IdP keeps a key for and publishes (default both).
    pub algorithms: Vec<SigningAlgorithm>,
    /// What tokens are signed with unless a client asks otherwise (default ES256).
    pub default_algorithm: SigningAlgorithm,
    /// A new key is published at once and signs only this many seconds later, so that
    /// relying parties that cache the JWKS know it before they see a token it signed.
    pub rotation_delay_secs: i64,
    /// An old key stays published this long after it stops signing: the longest life of
    /// a token it signed, so that every such token stays verifiable.
    pub max_token_lifetime_secs: i64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            algorithms: SigningAlgorithm::ALL.to_vec(),
            default_algorithm: SigningAlgorithm::Es256,
            rotation_delay_secs: 3600,
            max_token_lifetime_secs: 86_400,
        }
    }
}

impl KeySettings {
    /// One line naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        if self.algorithms.is_empty() {
            return Err(CoreError::Invalid(
                "algorithms: at least one is needed".into(),
            ));
        }
        if !self.algorithms.contains(&self.default_algorithm) {
            return Err(CoreError::Invalid(format!(
                "default_algorithm: {} is not one of the algorithms",
                self.default_algorithm
            )));
        }
        if self.rotation_delay_secs < 0 {
            return Err(CoreError::Invalid(
                "rotation_delay_secs: must not be negative".into(),
            ));
        }
        if self.max_token_lifetime_secs <= 0 {
            return Err(CoreError::Invalid(
                "max_token_lifetime_secs: must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_read_and_print_as_their_jose_names() {
        assert_eq!(
            SigningAlgorithm::parse("ES256"),
            Some(SigningAlgorithm::Es256)
        );
        assert_eq!(
            SigningAlgorithm::parse("rs256"),
            Some(SigningAlgorithm::Rs256)
        );
        assert_eq!(SigningAlgorithm::parse("HS256"), None);
        assert_eq!(SigningAlgorithm::Rs256.to_string(), "RS256");
        assert_eq!(
            serde_json::to_string(&SigningAlgorithm::Es256).unwrap(),
            "\"ES256\""
        );
        assert_eq!(SigningAlgorithm::default(), SigningAlgorithm::Es256);
    }

    #[test]
    fn a_generated_es256_key_publishes_its_public_half_under_its_thumbprint() {
        let key = SigningKey::generate(SigningAlgorithm::Es256, 100).unwrap();
        assert!(
            key.private_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let jwk = &key.public_jwk;
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], key.kid.as_str());
        assert!(jwk.get("d").is_none(), "no private member in the JWK");
        assert_eq!(key.kid.len(), 43);
        let members = PublicMembers::of_jwk(jwk).unwrap();
        assert_eq!(members.thumbprint(), key.kid);
        assert_eq!(
            public_members(key.algorithm, key.private_pem.expose()).unwrap(),
            members
        );
        assert_eq!(key.sign_from, 100);
        assert_eq!(key.retire_at, None);
    }

    #[test]
    fn a_generated_rs256_key_is_2048_bits_with_the_usual_exponent() {
        let key = SigningKey::generate(SigningAlgorithm::Rs256, 0).unwrap();
        let jwk = &key.public_jwk;
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
        assert_eq!(PublicMembers::of_jwk(jwk).unwrap().thumbprint(), key.kid);
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // The example of RFC 7638, section 3.1.
        let members = PublicMembers::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            members.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let key = SigningKey::generate(SigningAlgorithm::Es256, 0).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains(&key.kid));
    }

    #[test]
    fn settings_default_to_both_algorithms_es256_first_and_refuse_nonsense() {
        let s = KeySettings::default();
        assert_eq!(s.algorithms, SigningAlgorithm::ALL.to_vec());
        assert_eq!(s.default_algorithm, SigningAlgorithm::Es256);
        assert!(s.validate().is_ok());
        let only_rsa = KeySettings {
            algorithms: vec![SigningAlgorithm::Rs256],
            ..KeySettings::default()
        };
        assert!(only_rsa.validate().is_err(), "ES256 default not kept");
        let none = KeySettings {
            algorithms: vec![],
            ..KeySettings::default()
        };
        assert!(none.validate().is_err());
        let negative = KeySettings {
            rotation_delay_secs: -1,
            ..KeySettings::default()
        };
        assert!(negative.validate().is_err());
    }
}
