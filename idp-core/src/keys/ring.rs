//! The key ring: the published signing keys, parsed once, that sign and verify tokens
//! and serve the JWKS. Each instance holds one and re-reads storage every few seconds,
//! so that a rotation done anywhere (another instance, the CLI) reaches it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Header, Validation};
use p256::pkcs8::SecretDocument;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{KeySettings, PublicMembers, SigningAlgorithm, SigningKey, public_members};
use crate::directory::now;
use crate::store::KeyStore;
use crate::{CoreError, Result};

/// What a token must satisfy besides a good signature from a published key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The `iss` the token must carry (the claim is required).
    pub issuer: String,
    /// The `aud` the token must carry (or contain); `None` = `aud` is not checked.
    pub audience: Option<String>,
    /// The header `typ` the token must carry (`at+jwt`, `logout+jwt`; compared without
    /// case and an optional `application/` prefix, RFC 7515 §4.1.9); `None` = not checked.
    pub typ: Option<String>,
    /// Clock skew allowed on `exp`.
    pub leeway_secs: u64,
    /// Whether `exp` is required and checked.
    pub validate_exp: bool,
}

impl VerifyOptions {
    /// Issuer checked, `exp` required with 60 s leeway, audience and `typ` not checked.
    pub fn new(issuer: impl Into<String>) -> VerifyOptions {
        VerifyOptions {
            issuer: issuer.into(),
            audience: None,
            typ: None,
            leeway_secs: 60,
            validate_exp: true,
        }
    }

    pub fn audience(mut self, audience: impl Into<String>) -> VerifyOptions {
        self.audience = Some(audience.into());
        self
    }

    pub fn typ(mut self, typ: impl Into<String>) -> VerifyOptions {
        self.typ = Some(typ.into());
        self
    }
}

/// Why a token was refused. `nbf` is not checked: the IdP's own tokens carry none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWS")]
    Malformed,
    #[error("the token names no key this server publishes")]
    UnknownKid,
    #[error("the token's alg is not that of its key")]
    AlgorithmMismatch,
    #[error("the token's signature is not valid")]
    InvalidSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued by this server")]
    InvalidIssuer,
    #[error("the token is not meant for this audience")]
    InvalidAudience,
    #[error("the token is not of the expected type")]
    InvalidType,
}

/// Cheap to clone: every clone shares the keys, and a [`KeyRing::reload`] on any of them
/// is seen by all.
#[derive(Clone)]
pub struct KeyRing {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn KeyStore>,
    settings: KeySettings,
    loaded: RwLock<Arc<Loaded>>,
}

/// One read of storage: the published keys of the configured algorithms, newest
/// `sign_from` first within an algorithm, and the JWKS document serialized once.
struct Loaded {
    keys: Vec<RingKey>,
    jwks: serde_json::Value,
    jwks_json: Bytes,
}

struct RingKey {
    kid: String,
    algorithm: SigningAlgorithm,
    sign_from: i64,
    retire_at: Option<i64>,
    /// Shared with the previous load when the kid is the same: keys are parsed once.
    parsed: Arc<ParsedKey>,
}

struct ParsedKey {
    signing: Signer,
    decoding: DecodingKey,
    sealing: SealingKey,
}

/// The symmetric key that seals opaque access tokens, derived from a signing key
/// (HKDF-SHA256 over its PKCS#8 document, the kid as info): it exists exactly as long as
/// its signing key is published, so a sealed token lives and dies like a JWT signed with
/// the same key, and every instance that loads the key ring can open it.
struct SealingKey {
    /// The first bytes of SHA-256(kid): which key sealed a token, without the kid.
    tag: [u8; SEAL_TAG_LEN],
    key: LessSafeKey,
}

/// The version byte that starts every sealed token.
const SEAL_VERSION: u8 = 1;
const SEAL_TAG_LEN: usize = 8;
/// Version, key tag and nonce, before the ciphertext; the first two are authenticated.
const SEAL_HEADER_LEN: usize = 1 + SEAL_TAG_LEN + NONCE_LEN;
const SEAL_SALT: &[u8] = b"idp-core sealed access token v1";

impl SealingKey {
    fn derive(kid: &str, pkcs8: &[u8]) -> std::result::Result<SealingKey, Unspecified> {
        let prk = Salt::new(HKDF_SHA256, SEAL_SALT).extract(pkcs8);
        let info = [kid.as_bytes()];
        let okm = prk.expand(&info, &AES_256_GCM_SIV)?;
        Ok(SealingKey {
            tag: seal_tag(kid),
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }
}

fn seal_tag(kid: &str) -> [u8; SEAL_TAG_LEN] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, kid.as_bytes());
    let mut tag = [0; SEAL_TAG_LEN];
    tag.copy_from_slice(&digest.as_ref()[..SEAL_TAG_LEN]);
    tag
}

/// The private key, parsed once. jsonwebtoken's `encode` parses the PKCS#8 document
/// (and, for EC, derives the public point) again on every call, which cost as much as
/// the signature itself; the JWS around the signature is assembled in
/// [`KeyRing::sign`].
enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, Unspecified> {
        let rng = SystemRandom::new();
        match self {
            Signer::Es256(key) => Ok(key.sign(&rng, message)?.as_ref().to_vec()),
            Signer::Rs256(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)?;
                Ok(signature)
            }
        }
    }
}

impl Loaded {
    /// The key that signs (and seals) with `algorithm` at `at`: among the published keys
    /// that may sign then, the newest `sign_from` (the order `build` sorts them in).
    fn current(&self, algorithm: SigningAlgorithm, at: i64) -> Option<&RingKey> {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm && k.can_sign_at(at))
    }
}

impl RingKey {
    fn is_published_at(&self, now: i64) -> bool {
        self.retire_at.is_none_or(|r| r > now)
    }

    fn can_sign_at(&self, now: i64) -> bool {
        self.sign_from <= now && self.is_published_at(now)
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded = self.loaded();
        f.debug_struct("KeyRing")
            .field(
                "kids",
                &loaded.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads the keys and, for each configured algorithm without a key that can sign
    /// now (first start), generates one that signs at once and stores it. Two instances
    /// starting together on an empty database may both create one: harmless, both keys
    /// are stored and published, and after the next reload every instance signs with the
    /// same one (newest `sign_from`, then greatest kid).
    pub async fn load(store: Arc<dyn KeyStore>, settings: KeySettings) -> Result<KeyRing> {
        settings.validate()?;
        let at = now();
        store.delete_retired_keys(at).await?;
        let stored = store.list_keys().await?;
        for &algorithm in &settings.algorithms {
            if !stored
                .iter()
                .any(|k| k.algorithm == algorithm && k.can_sign_at(at))
            {
                let mut key = generate(algorithm, at).await?;
                // A key rotated in before the first start signs later: this stopgap then
                // retires like any key that rotation supersedes.
                key.retire_at = stored
                    .iter()
                    .filter(|k| k.algorithm == algorithm && k.sign_from > at)
                    .map(|k| k.sign_from + settings.max_token_lifetime_secs)
                    .min();
                store.insert_key(&key).await?;
                tracing::info!(kid = %key.kid, %algorithm, "generated a signing key");
            }
        }
        let loaded = build(store.list_keys().await?, &settings, None, at)?;
        Ok(KeyRing {
            shared: Arc::new(Shared {
                store,
                settings,
                loaded: RwLock::new(Arc::new(loaded)),
            }),
        })
    }

    /// Re-reads the keys from storage (dropping those past `retire_at` there too). Keys
    /// already known are not parsed again. On error the keys loaded before stay.
    pub async fn reload(&self) -> Result<()> {
        let at = now();
        self.shared.store.delete_retired_keys(at).await?;
        let stored = self.shared.store.list_keys().await?;
        let previous = self.loaded();
        let loaded = build(stored, &self.shared.settings, Some(&previous), at)?;
        *self
            .shared
            .loaded
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    /// Calls [`KeyRing::reload`] every `every` until the last clone of the ring is
    /// dropped. A failed reload is logged and the keys loaded before stay in use.
    pub fn spawn_reloader(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // completes at once: the ring was just loaded
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                if let Err(e) = (KeyRing { shared }).reload().await {
                    tracing::warn!(error = %e, "signing keys: reload failed, keeping the loaded keys");
                }
            }
        })
    }

    /// Generates a key of `algorithm` (the default algorithm when `None`; call once per
    /// algorithm to rotate them all), published at once and signing from
    /// now + `rotation_delay_secs`, and schedules the older keys of that algorithm to
    /// leave the JWKS `max_token_lifetime_secs` after the new one starts signing. The new
    /// `sign_from` is always later than that of every stored key of the algorithm, so
    /// which key signs is never a tie. Instances pick the new key up at their next reload.
    pub async fn rotate(
        store: &dyn KeyStore,
        settings: &KeySettings,
        algorithm: Option<SigningAlgorithm>,
    ) -> Result<SigningKey> {
        settings.validate()?;
        let algorithm = algorithm.unwrap_or(settings.default_algorithm);
        if !settings.algorithms.contains(&algorithm) {
            return Err(CoreError::Invalid(format!(
                "{algorithm} is not one of the configured key algorithms"
            )));
        }
        let at = now();
        let latest = store
            .list_keys()
            .await?
            .iter()
            .filter(|k| k.algorithm == algorithm)
            .map(|k| k.sign_from)
            .max();
        let sign_from = latest.map_or(at + settings.rotation_delay_secs, |latest| {
            (at + settings.rotation_delay_secs).max(latest + 1)
        });
        let key = generate(algorithm, sign_from).await?;
        store.insert_key(&key).await?;
        store
            .retire_keys_before(
                sign_from,
                sign_from + settings.max_token_lifetime_secs,
                algorithm,
            )
            .await?;
        tracing::info!(kid = %key.kid, %algorithm, sign_from, "signing key rotated");
        Ok(key)
    }

    pub fn settings(&self) -> &KeySettings {
        &self.shared.settings
    }

    /// Signs `claims` as a JWS with the current key of `algorithm` (the configured
    /// default when `None`): among the published keys that may sign now, the newest
    /// `sign_from`. The header carries `alg`, `kid` and `typ` when given (`at+jwt` for
    /// RFC 9068 access tokens, `logout+jwt`, …); without one it has no `typ`.
    pub fn sign<T: Serialize>(
        &self,
        claims: &T,
        typ: Option<&str>,
        algorithm: Option<SigningAlgorithm>,
    ) -> Result<String> {
        let algorithm = algorithm.unwrap_or(self.shared.settings.default_algorithm);
        let loaded = self.loaded();
        let key = loaded
            .current(algorithm, now())
            .ok_or_else(|| CoreError::Crypto(format!("no {algorithm} key can sign now")))?;
        let mut header = Header::new(algorithm.jwt());
        header.typ = typ.map(str::to_owned);
        header.kid = Some(key.kid.clone());
        let failed =
            |e: &dyn std::fmt::Display| CoreError::Crypto(format!("signing with {}: {e}", key.kid));
        // RFC 7515 compact serialization, as jsonwebtoken's `encode` writes it.
        let header = serde_json::to_vec(&header).map_err(|e| failed(&e))?;
        let claims = serde_json::to_vec(claims).map_err(|e| failed(&e))?;
        let mut jws = URL_SAFE_NO_PAD.encode(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = key
            .parsed
            .signing
            .sign(jws.as_bytes())
            .map_err(|e| failed(&e))?;
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    /// Seals `plaintext` with the current key of the default algorithm (the one [`sign`]
    /// would use): AES-256-GCM-SIV under the key's [`SealingKey`], a random nonce, the
    /// version and key tag authenticated. The result is base64url (no dot, so never
    /// mistaken for a JWS) and tells nothing of `plaintext` but its length. GCM-SIV
    /// rather than GCM: random 96-bit nonces at the rate tokens are issued would come
    /// near GCM's collision bound within a key's life; a GCM-SIV nonce collision only
    /// shows that two plaintexts are equal, and every sealed plaintext here is unique
    /// (it carries a `jti`).
    ///
    /// [`sign`]: KeyRing::sign
    pub fn seal(&self, plaintext: &[u8]) -> Result<String> {
        let algorithm = self.shared.settings.default_algorithm;
        let loaded = self.loaded();
        let key = loaded
            .current(algorithm, now())
            .ok_or_else(|| CoreError::Crypto(format!("no {algorithm} key can seal now")))?;
        let failed = || CoreError::Crypto(format!("sealing with {}", key.kid));
        let sealing = &key.parsed.sealing;
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| failed())?;
        let mut token =
            Vec::with_capacity(SEAL_HEADER_LEN + plaintext.len() + AES_256_GCM_SIV.tag_len());
        token.push(SEAL_VERSION);
        token.extend_from_slice(&sealing.tag);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(plaintext);
        // Encrypted where it lies in the token, after the header it authenticates.
        let (header, body) = token.split_at_mut(SEAL_HEADER_LEN);
        let tag = sealing
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header[..1 + SEAL_TAG_LEN]),
                body,
            )
            .map_err(|_| failed())?;
        token.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// Opens a token of [`KeyRing::seal`] sealed by a key still published: the plaintext
    /// and the kid of that key; `None` for anything else (not base64url, another
    /// version, an unknown or retired key, a changed byte).
    pub fn open(&self, token: &str) -> Option<(Vec<u8>, String)> {
        let mut bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < SEAL_HEADER_LEN + AES_256_GCM_SIV.tag_len() || bytes[0] != SEAL_VERSION {
            return None;
        }
        let loaded = self.loaded();
        let at = now();
        let key = loaded.keys.iter().find(|k| {
            k.parsed.sealing.tag[..] == bytes[1..1 + SEAL_TAG_LEN] && k.is_published_at(at)
        })?;
        let (header, sealed) = bytes.split_at_mut(SEAL_HEADER_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&header[1 + SEAL_TAG_LEN..]).ok()?;
        let plaintext = key
            .parsed
            .sealing
            .key
            .open_in_place(nonce, Aad::from(&header[..1 + SEAL_TAG_LEN]), sealed)
            .ok()?;
        Some((plaintext.to_vec(), key.kid.clone()))
    }

    /// Verifies a JWS signed by any published key (retire_at not reached) and checks the
    /// claims of `check`, then returns the claims.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        check: &VerifyOptions,
    ) -> Result<T, TokenError> {
        self.verify_keyed(token, check).map(|(claims, _kid)| claims)
    }

    /// [`KeyRing::verify`], also returning the kid of the key that signed the token (to
    /// ask [`KeyRing::publishes`] later whether that key still counts).
    pub fn verify_keyed<T: DeserializeOwned>(
        &self,
        token: &str,
        check: &VerifyOptions,
    ) -> Result<(T, String), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKid)?;
        let loaded = self.loaded();
        let at = now();
        let key = loaded
            .keys
            .iter()
            .find(|k| k.kid == kid && k.is_published_at(at))
            .ok_or(TokenError::UnknownKid)?;
        if header.alg != key.algorithm.jwt() {
            return Err(TokenError::AlgorithmMismatch);
        }
        let mut validation = Validation::new(key.algorithm.jwt());
        validation.leeway = check.leeway_secs;
        validation.validate_exp = check.validate_exp;
        validation.validate_nbf = false;
        validation.set_issuer(&[&check.issuer]);
        let mut required = vec!["iss"];
        if check.validate_exp {
            required.push("exp");
        }
        match &check.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<T>(token, &key.parsed.decoding, &validation)
            .map_err(|e| token_error(e.kind()))?;
        if let Some(expected) = &check.typ
            && !typ_matches(data.header.typ.as_deref(), expected)
        {
            return Err(TokenError::InvalidType);
        }
        Ok((data.claims, key.kid.clone()))
    }

    /// Whether the key `kid` is still published, so that tokens it signed still verify.
    pub fn publishes(&self, kid: &str) -> bool {
        let at = now();
        self.loaded()
            .keys
            .iter()
            .any(|k| k.kid == kid && k.is_published_at(at))
    }

    /// The JWKS document (`{"keys":[…]}`) of the published keys, serialized once per
    /// load: serve it as it is, `application/json`.
    pub fn jwks_json(&self) -> Bytes {
        self.loaded().jwks_json.clone()
    }

    /// The same JWKS as a JSON value.
    pub fn jwks(&self) -> serde_json::Value {
        self.loaded().jwks.clone()
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.shared
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Key generation on a blocking thread: an RSA key takes long enough to stall the runtime.
async fn generate(algorithm: SigningAlgorithm, sign_from: i64) -> Result<SigningKey> {
    tokio::task::spawn_blocking(move || SigningKey::generate(algorithm, sign_from))
        .await
        .map_err(|e| CoreError::Crypto(format!("key generation: {e}")))?
}

fn build(
    stored: Vec<SigningKey>,
    settings: &KeySettings,
    previous: Option<&Loaded>,
    at: i64,
) -> Result<Loaded> {
    let known: HashMap<&str, &Arc<ParsedKey>> = previous
        .map(|p| p.keys.iter().map(|k| (k.kid.as_str(), &k.parsed)).collect())
        .unwrap_or_default();
    let mut keys = Vec::new();
    let mut jwks = Vec::new();
    for key in stored {
        if !settings.algorithms.contains(&key.algorithm) || !key.is_published_at(at) {
            continue;
        }
        let parsed = match known.get(key.kid.as_str()) {
            Some(parsed) => Arc::clone(parsed),
            None => Arc::new(parse(&key)?),
        };
        jwks.push((key.algorithm, key.sign_from, key.public_jwk.clone()));
        keys.push(RingKey {
            kid: key.kid,
            algorithm: key.algorithm,
            sign_from: key.sign_from,
            retire_at: key.retire_at,
            parsed,
        });
    }
    // Newest first within an algorithm; the kid breaks ties the same way everywhere.
    keys.sort_by(|a, b| {
        (a.algorithm.as_str(), b.sign_from, &b.kid).cmp(&(
            b.algorithm.as_str(),
            a.sign_from,
            &a.kid,
        ))
    });
    jwks.sort_by(|a, b| (a.0.as_str(), b.1).cmp(&(b.0.as_str(), a.1)));
    let jwks = serde_json::json!({ "keys": jwks.into_iter().map(|k| k.2).collect::<Vec<_>>() });
    let jwks_json = Bytes::from(
        serde_json::to_vec(&jwks).map_err(|e| CoreError::Crypto(format!("JWKS: {e}")))?,
    );
    Ok(Loaded {
        keys,
        jwks,
        jwks_json,
    })
}

/// Parses a stored key once, checking that its published JWK is the public half of its
/// private key (a mismatch would have relying parties refuse every token).
fn parse(key: &SigningKey) -> Result<ParsedKey> {
    let corrupt = |detail: String| {
        CoreError::Invalid(format!(
            "stored signing key {} is not valid: {detail}",
            key.kid
        ))
    };
    let pem = key.private_pem.expose();
    let members = public_members(key.algorithm, pem).map_err(|e| corrupt(e.to_string()))?;
    if PublicMembers::of_jwk(&key.public_jwk).as_ref() != Some(&members) {
        return Err(corrupt(
            "its JWK is not the public half of its private key".into(),
        ));
    }
    let (label, der) = SecretDocument::from_pem(pem).map_err(|e| corrupt(e.to_string()))?;
    if label != "PRIVATE KEY" {
        return Err(corrupt(format!("a {label} PEM, not a PKCS#8 PRIVATE KEY")));
    }
    let (signing, decoding) = match &members {
        PublicMembers::Ec { x, y } => (
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_bytes())
                .map(Signer::Es256)
                .map_err(|e| corrupt(e.to_string()))?,
            DecodingKey::from_ec_components(x, y),
        ),
        PublicMembers::Rsa { n, e } => (
            RsaKeyPair::from_pkcs8(der.as_bytes())
                .map(Signer::Rs256)
                .map_err(|e| corrupt(e.to_string()))?,
            DecodingKey::from_rsa_components(n, e),
        ),
    };
    Ok(ParsedKey {
        signing,
        decoding: decoding.map_err(|e| corrupt(e.to_string()))?,
        sealing: SealingKey::derive(&key.kid, der.as_bytes())
            .map_err(|_| corrupt("cannot derive its sealing key".into()))?,
    })
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::InvalidSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidIssuer => TokenError::InvalidIssuer,
        ErrorKind::InvalidAudience => TokenError::InvalidAudience,
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmMismatch,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::InvalidIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::InvalidAudience,
        _ => TokenError::Malformed,
    }
}

/// RFC 7515 §4.1.9: media types compare without case, and `application/` may be left out.
fn typ_matches(actual: Option<&str>, expected: &str) -> bool {
    fn bare(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    actual.is_some_and(|a| bare(a).eq_ignore_ascii_case(bare(expected)))
}

#[cfg(test)]
mod tests;
