//! The HTTP-Redirect and HTTP-POST bindings: encoding what we send, decoding what we get.

use crate::xml::{self, KeyPair, RSA_SHA256, form_encode};
use crate::{Binding, Error, OutgoingMessage, Rejection};

/// Largest SAML message we read (decoded), a bound against oversized input.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Encodes a message for `binding`. `xml_unsigned` has no signature; `xml_with_template`
/// is the same document with a signature template after its Issuer (HTTP-POST).
/// `param` is "SAMLRequest" or "SAMLResponse".
pub fn encode(
    keys: &KeyPair,
    binding: Binding,
    destination: &str,
    param: &str,
    xml_unsigned: &str,
    xml_with_template: &str,
    relay_state: Option<&str>,
) -> Result<OutgoingMessage, Error> {
    match binding {
        Binding::HttpRedirect => {
            let payload = xml::b64_encode(&xml::deflate(xml_unsigned.as_bytes()));
            let mut query = format!("{param}={}", form_encode(&payload));
            if let Some(rs) = relay_state {
                query.push_str(&format!("&RelayState={}", form_encode(rs)));
            }
            query.push_str(&format!("&SigAlg={}", form_encode(RSA_SHA256)));
            let sig = keys.sign_bytes(query.as_bytes()).map_err(Error::Signing)?;
            let sep = if destination.contains('?') { '&' } else { '?' };
            Ok(OutgoingMessage::Redirect {
                location: format!(
                    "{destination}{sep}{query}&Signature={}",
                    form_encode(&xml::b64_encode(&sig))
                ),
            })
        }
        Binding::HttpPost => {
            let signed = keys
                .sign_enveloped(xml_with_template)
                .map_err(Error::Signing)?;
            let mut fields = vec![(param.to_string(), xml::b64_encode(signed.as_bytes()))];
            if let Some(rs) = relay_state {
                fields.push(("RelayState".to_string(), rs.to_string()));
            }
            Ok(OutgoingMessage::Post {
                action: destination.to_string(),
                fields,
            })
        }
    }
}

/// A received HTTP-Redirect message: the inflated XML, the exact signed octets, and the
/// signature.
pub struct RedirectMessage {
    pub xml: String,
    pub relay_state: Option<String>,
    pub signed: Vec<u8>,
    pub sig_alg: Option<String>,
    pub signature: Option<Vec<u8>>,
}

/// Splits a raw query keeping the raw (still encoded) values: the signature is over the
/// octets as sent.
pub fn decode_redirect(raw_query: &str, param: &str) -> Result<RedirectMessage, Rejection> {
    let mut raw: Vec<(&str, &str)> = Vec::new();
    for part in raw_query.trim_start_matches('?').split('&') {
        if let Some((k, v)) = part.split_once('=') {
            raw.push((k, v));
        }
    }
    let get_raw = |name: &str| -> Result<Option<&str>, Rejection> {
        let mut it = raw.iter().filter(|(k, _)| *k == name);
        let first = it.next().map(|(_, v)| *v);
        if it.next().is_some() {
            return Err(Rejection::new("malformed", format!("{name} given twice")));
        }
        Ok(first)
    };
    let decode = |v: &str| -> String {
        url::form_urlencoded::parse(format!("x={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let msg_raw = get_raw(param)?
        .ok_or_else(|| Rejection::new("malformed", format!("no {param} in the query")))?;
    let relay_raw = get_raw("RelayState")?;
    let alg_raw = get_raw("SigAlg")?;
    let sig_raw = get_raw("Signature")?;
    let mut signed = format!("{param}={msg_raw}");
    if let Some(rs) = relay_raw {
        signed.push_str(&format!("&RelayState={rs}"));
    }
    if let Some(a) = alg_raw {
        signed.push_str(&format!("&SigAlg={a}"));
    }
    let deflated = xml::b64_decode(&decode(msg_raw))
        .ok_or_else(|| Rejection::new("malformed", "the message is not base64"))?;
    let inflated = xml::inflate(&deflated, MAX_MESSAGE as u64)
        .ok_or_else(|| Rejection::new("malformed", "the message does not inflate"))?;
    let xml = String::from_utf8(inflated)
        .map_err(|_| Rejection::new("malformed", "the message is not UTF-8"))?;
    Ok(RedirectMessage {
        xml,
        relay_state: relay_raw.map(decode),
        signed: signed.into_bytes(),
        sig_alg: alg_raw.map(decode),
        signature: sig_raw.and_then(|s| xml::b64_decode(&decode(s))),
    })
}

/// Decodes a POSTed base64 message.
pub fn decode_post(b64: &str) -> Result<String, Rejection> {
    if b64.len() > MAX_MESSAGE * 4 / 3 + 1024 {
        return Err(Rejection::new("malformed", "the message is too large"));
    }
    let bytes = xml::b64_decode(b64)
        .ok_or_else(|| Rejection::new("malformed", "the message is not base64"))?;
    String::from_utf8(bytes).map_err(|_| Rejection::new("malformed", "the message is not UTF-8"))
}
