//! XML plumbing shared by the SP and the test IdP: escaping, enveloped signatures through
//! xmlsec (samael's binding), the HTTP-Redirect binding's deflate and query signatures,
//! timestamps and random identifiers.
//!
//! Outgoing documents are written from templates rather than samael's structs: those
//! structs cannot express what SPID requires (Issuer NameQualifier with
//! AttributeConsumingServiceIndex, no AllowCreate, SHA-256 digests, SPID extensions in
//! metadata). Every value goes through `esc`.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, SecondsFormat, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;
use rand::RngCore;
use samael::crypto::{CryptoProvider, XmlSec};

pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NAMEID_ENTITY: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const C14N_EXCL: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// Signature algorithms we accept in XML signatures and HTTP-Redirect signatures.
pub const ALLOWED_SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
pub const ALLOWED_DIGEST_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
pub const ALLOWED_TRANSFORMS: &[&str] = &[ENVELOPED, C14N_EXCL];

pub fn samael_allowed() -> Vec<samael::crypto::AllowedSignatureAlgorithm> {
    use samael::crypto::AllowedSignatureAlgorithm as A;
    vec![
        A::RsaSha256,
        A::RsaSha384,
        A::RsaSha512,
        A::EcdsaSha256,
        A::EcdsaSha384,
        A::EcdsaSha512,
    ]
}

/// Escapes text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// "_" followed by 32 random hex digits (128 bits from the OS generator).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("_{}", hex::encode(b))
}

/// 32 random hex digits, for RelayState and other opaque tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an xs:dateTime in UTC ("Z"), as SPID requires.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if !s.ends_with('Z') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A signing key and its certificate.
#[derive(Clone)]
pub struct KeyPair {
    pub key: PKey<Private>,
    key_der: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(<private>)")
    }
}

impl KeyPair {
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Self, String> {
        let key = PKey::private_key_from_pem(key_pem.as_bytes())
            .map_err(|e| format!("private key: {e}"))?;
        let cert = X509::from_pem(cert_pem.as_bytes()).map_err(|e| format!("certificate: {e}"))?;
        let cert_pub = cert
            .public_key()
            .map_err(|e| format!("certificate key: {e}"))?;
        if !key.public_eq(&cert_pub) {
            return Err("the private key does not match the certificate".into());
        }
        if key.rsa().is_err() {
            return Err("the key must be RSA".into());
        }
        let key_der = key
            .private_key_to_pkcs8()
            .map_err(|e| format!("private key: {e}"))?;
        let cert_der = cert.to_der().map_err(|e| format!("certificate: {e}"))?;
        Ok(KeyPair {
            key,
            key_der,
            cert_der,
        })
    }

    pub fn cert_b64(&self) -> String {
        B64.encode(&self.cert_der)
    }

    /// The enveloped-signature template for the element with `id`: exclusive c14n,
    /// RSA-SHA256, SHA-256 digest, our certificate in KeyInfo.
    pub fn signature_template(&self, id: &str) -> String {
        format!(
            concat!(
                r#"<ds:Signature xmlns:ds="{ds}"><ds:SignedInfo>"#,
                r#"<ds:CanonicalizationMethod Algorithm="{c14n}"/>"#,
                r#"<ds:SignatureMethod Algorithm="{alg}"/>"#,
                r##"<ds:Reference URI="#{id}"><ds:Transforms>"##,
                r#"<ds:Transform Algorithm="{env}"/><ds:Transform Algorithm="{c14n}"/>"#,
                r#"</ds:Transforms><ds:DigestMethod Algorithm="{sha}"/><ds:DigestValue></ds:DigestValue>"#,
                r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>"#,
                r#"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate>"#,
                r#"</ds:X509Data></ds:KeyInfo></ds:Signature>"#
            ),
            ds = NS_DSIG,
            c14n = C14N_EXCL,
            alg = RSA_SHA256,
            id = esc(id),
            env = ENVELOPED,
            sha = SHA256,
            cert = self.cert_b64(),
        )
    }

    /// Fills in the first signature template of `xml` (xmlsec) and returns the document
    /// without the XML declaration.
    pub fn sign_enveloped(&self, xml: &str) -> Result<String, String> {
        let signed = XmlSec::sign_xml(xml, &self.key_der).map_err(|e| format!("xmlsec: {e}"))?;
        Ok(strip_declaration(&signed).to_string())
    }

    /// RSA-SHA256 over `data` (the HTTP-Redirect binding's query string).
    pub fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut signer =
            Signer::new(MessageDigest::sha256(), &self.key).map_err(|e| e.to_string())?;
        signer.update(data).map_err(|e| e.to_string())?;
        signer.sign_to_vec().map_err(|e| e.to_string())
    }
}

pub fn strip_declaration(xml: &str) -> &str {
    let t = xml.trim_start();
    if t.starts_with("<?xml") {
        match t.find("?>") {
            Some(i) => t[i + 2..].trim_start(),
            None => t,
        }
    } else {
        t
    }
}

/// Verifies an HTTP-Redirect signature with one of `certs_der`.
pub fn verify_redirect_signature(
    signed: &[u8],
    sig_alg: &str,
    signature: &[u8],
    certs_der: &[Vec<u8>],
) -> bool {
    let md = match sig_alg {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => MessageDigest::sha256(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => MessageDigest::sha384(),
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
        | "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" => MessageDigest::sha512(),
        _ => return false,
    };
    certs_der.iter().any(|der| {
        let Ok(cert) = X509::from_der(der) else {
            return false;
        };
        let Ok(key): Result<PKey<Public>, _> = cert.public_key() else {
            return false;
        };
        let Ok(mut v) = Verifier::new(md, &key) else {
            return false;
        };
        v.update(signed).is_ok() && v.verify(signature).unwrap_or(false)
    })
}

pub fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes base64 that may carry line breaks.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(clean).ok()
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Inflates at most `limit` bytes (a bound against deflate bombs).
pub fn inflate(data: &[u8], limit: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let d = flate2::read::DeflateDecoder::new(data);
    d.take(limit + 1).read_to_end(&mut out).ok()?;
    if out.len() as u64 > limit {
        None
    } else {
        Some(out)
    }
}

/// Form-urlencoding with uppercase hex escapes, as spid-sp-test rebuilds the signed query.
pub fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses a certificate given as base64 (metadata's X509Certificate).
pub fn cert_der_from_b64(s: &str) -> Option<Vec<u8>> {
    let der = b64_decode(s)?;
    X509::from_der(&der).ok()?;
    Some(der)
}

/// Parses without DTDs (roxmltree refuses them): the one XML reader of this crate.
pub fn parse(xml: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
}

pub fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.has_tag_name((ns, name)))
}

pub fn children<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.has_tag_name((ns, name)))
}

/// Text content of an element, trimmed.
pub fn text(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect::<String>()
        .trim()
        .to_string()
}
