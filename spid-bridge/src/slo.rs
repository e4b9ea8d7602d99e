//! Single logout: our LogoutRequest and the IdP's LogoutResponse, and a LogoutRequest the
//! IdP sends us (the person signed out at the IdP) answered with a signed LogoutResponse.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::binding;
use crate::registry::IdentityProvider;
use crate::response::{parse_document, verify_and_reduce};
use crate::xml::{
    self, ALLOWED_SIGNATURE_METHODS, NAMEID_ENTITY, NAMEID_TRANSIENT, NS_ASSERTION, NS_DSIG,
    NS_PROTOCOL, STATUS_SUCCESS, child, esc, instant, text,
};
use crate::{
    Binding, Error, OutgoingMessage, Rejection, SamlMessage, SamlState, ServiceProvider,
    SpidSession, SpidSessionRef,
};

#[derive(Serialize, Deserialize)]
struct PendingLogout {
    idp_entity_id: String,
    relay: String,
    relay_state: String,
}

fn logout_key(id: &str) -> String {
    format!("spid:logout:{id}")
}

fn issuer_xml(entity_id: &str) -> String {
    format!(
        r#"<saml:Issuer Format="{NAMEID_ENTITY}" NameQualifier="{e}">{e}</saml:Issuer>"#,
        e = esc(entity_id)
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn logout_request_xml(
    issuer: &str,
    id: &str,
    now: DateTime<Utc>,
    destination: &str,
    session: &SpidSession,
    signature: &str,
) -> String {
    let qualifier = session
        .name_id_qualifier
        .as_deref()
        .map(|q| format!(r#" NameQualifier="{}""#, esc(q)))
        .unwrap_or_default();
    let index = session
        .session_index
        .as_deref()
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", esc(s)))
        .unwrap_or_default();
    format!(
        concat!(
            r#"<samlp:LogoutRequest xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{ii}" Destination="{dest}">{issuer}{sig}"#,
            r#"<saml:NameID Format="{transient}"{q}>{name}</saml:NameID>{index}</samlp:LogoutRequest>"#
        ),
        p = NS_PROTOCOL,
        a = NS_ASSERTION,
        id = esc(id),
        ii = instant(now),
        dest = esc(destination),
        issuer = issuer_xml(issuer),
        sig = signature,
        transient = NAMEID_TRANSIENT,
        q = qualifier,
        name = esc(&session.name_id),
        index = index,
    )
}

pub(crate) fn logout_response_xml(
    issuer: &str,
    id: &str,
    in_response_to: &str,
    now: DateTime<Utc>,
    destination: &str,
    status: &str,
    signature: &str,
) -> String {
    format!(
        concat!(
            r#"<samlp:LogoutResponse xmlns:samlp="{p}" xmlns:saml="{a}" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{ii}" Destination="{dest}" InResponseTo="{irt}">{issuer}{sig}"#,
            r#"<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status></samlp:LogoutResponse>"#
        ),
        p = NS_PROTOCOL,
        a = NS_ASSERTION,
        id = esc(id),
        ii = instant(now),
        dest = esc(destination),
        irt = esc(in_response_to),
        issuer = issuer_xml(issuer),
        sig = signature,
        status = esc(status),
    )
}

fn slo_destination(idp: &IdentityProvider, binding: Binding) -> Option<&str> {
    match binding {
        Binding::HttpRedirect => idp.slo_redirect_url.as_deref(),
        Binding::HttpPost => idp.slo_post_url.as_deref(),
    }
}

pub(crate) async fn start_logout(
    sp: &ServiceProvider,
    state: &dyn SamlState,
    session: &SpidSession,
    binding: Binding,
    relay: &str,
) -> Result<OutgoingMessage, Error> {
    let idp = sp.idp(&session.idp_entity_id)?;
    let destination =
        slo_destination(idp, binding).ok_or_else(|| Error::NoEndpoint(idp.entity_id.clone()))?;
    let id = xml::random_id();
    let now = Utc::now();
    let issuer = &sp.config.entity_id;
    let unsigned = logout_request_xml(issuer, &id, now, destination, session, "");
    let templated = logout_request_xml(
        issuer,
        &id,
        now,
        destination,
        session,
        &sp.keys.signature_template(&id),
    );
    let pending = PendingLogout {
        idp_entity_id: idp.entity_id.clone(),
        relay: relay.to_string(),
        relay_state: xml::random_token(),
    };
    let msg = binding::encode(
        &sp.keys,
        binding,
        destination,
        "SAMLRequest",
        &unsigned,
        &templated,
        Some(&pending.relay_state),
    )?;
    let value = serde_json::to_vec(&pending).map_err(|e| Error::Config(e.to_string()))?;
    state
        .put(
            &logout_key(&id),
            &value,
            Duration::from_secs(sp.config.request_ttl_secs),
        )
        .await?;
    Ok(msg)
}

/// A received, signature-checked protocol message: the XML to read (the signed part for
/// HTTP-POST, the whole message for HTTP-Redirect, whose query carries the signature).
struct Received<'r> {
    idp: &'r IdentityProvider,
    xml: String,
    relay_state: Option<String>,
}

fn receive<'r>(
    sp: &'r ServiceProvider,
    msg: &SamlMessage,
    param: &str,
    root_name: &str,
) -> Result<Received<'r>, Rejection> {
    let (xml, relay_state, redirect) = sp.decode_message(msg, param)?;
    let doc = parse_document(&xml)?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_PROTOCOL, root_name)) {
        return Err(Rejection::new(
            "malformed",
            format!("the root is not a samlp:{root_name}"),
        ));
    }
    if root.attribute("Version") != Some("2.0") {
        return Err(Rejection::new("version", "Version is not 2.0"));
    }
    let issuer = child(root, NS_ASSERTION, "Issuer")
        .ok_or_else(|| Rejection::new("unknown_issuer", "no Issuer"))?;
    let idp = sp
        .registry()
        .get(&text(issuer))
        .ok_or_else(|| Rejection::new("unknown_issuer", "unknown IdP"))?;
    let signed_xml = match redirect {
        Some(m) => {
            let alg = m.sig_alg.as_deref().unwrap_or_default();
            if !ALLOWED_SIGNATURE_METHODS.contains(&alg) {
                return Err(Rejection::new(
                    "signature_algorithm",
                    format!("SigAlg {alg:?}"),
                ));
            }
            let sig = m
                .signature
                .ok_or_else(|| Rejection::new("bad_signature", "no Signature"))?;
            if !xml::verify_redirect_signature(&m.signed, alg, &sig, &idp.signing_certs) {
                return Err(Rejection::new(
                    "bad_signature",
                    "the query signature does not verify",
                ));
            }
            xml
        }
        None => {
            let sigs: Vec<_> = doc
                .descendants()
                .filter(|n| n.is_element() && n.tag_name().name() == "Signature")
                .collect();
            let [sig] = sigs.as_slice() else {
                return Err(Rejection::new(
                    "bad_signature",
                    "the message must carry one signature",
                ));
            };
            if sig.parent_element() != Some(root) || sig.tag_name().namespace() != Some(NS_DSIG) {
                return Err(Rejection::new(
                    "signature_wrapping",
                    "the signature is not on the message",
                ));
            }
            let reduced = verify_and_reduce(&xml, idp)?;
            let rdoc = parse_document(&reduced)?;
            if !rdoc.root_element().has_tag_name((NS_PROTOCOL, root_name))
                || rdoc.root_element().attribute("ID") != root.attribute("ID")
            {
                return Err(Rejection::new(
                    "signature_wrapping",
                    "the signature does not cover the message",
                ));
            }
            reduced
        }
    };
    Ok(Received {
        idp,
        xml: signed_xml,
        relay_state,
    })
}

pub(crate) async fn finish_logout(
    sp: &ServiceProvider,
    state: &dyn SamlState,
    msg: &SamlMessage,
) -> Result<String, Rejection> {
    let r = receive(sp, msg, "SAMLResponse", "LogoutResponse")?;
    let doc = parse_document(&r.xml)?;
    let root = doc.root_element();
    if root.attribute("Destination") != Some(sp.config.slo_url.as_str()) {
        return Err(Rejection::new(
            "destination",
            "Destination is not our SLO URL",
        ));
    }
    let irt = root
        .attribute("InResponseTo")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::new("unknown_in_response_to", "no InResponseTo"))?;
    let stored = state
        .take(&logout_key(irt))
        .await
        .map_err(|e| Rejection::new("state", e.to_string()))?
        .ok_or_else(|| Rejection::new("unknown_in_response_to", "no pending logout request"))?;
    let pending: PendingLogout = serde_json::from_slice(&stored)
        .map_err(|e| Rejection::new("unknown_in_response_to", e.to_string()))?;
    if pending.idp_entity_id != r.idp.entity_id {
        return Err(Rejection::new(
            "unknown_issuer",
            "the logout was sent to another IdP",
        ));
    }
    if r.relay_state
        .as_deref()
        .is_some_and(|rs| rs != pending.relay_state)
    {
        return Err(Rejection::new("relay_state", "RelayState differs"));
    }
    let code = child(root, NS_PROTOCOL, "Status")
        .and_then(|s| child(s, NS_PROTOCOL, "StatusCode"))
        .and_then(|c| c.attribute("Value"))
        .unwrap_or_default();
    if code != STATUS_SUCCESS {
        let mut rej = Rejection::new("status_not_success", format!("logout status {code}"));
        rej.message_it = "Il gestore SPID non ha confermato l'uscita. La sessione su questo servizio è stata comunque chiusa.".into();
        return Err(rej);
    }
    Ok(pending.relay)
}

pub(crate) async fn handle_logout_request(
    sp: &ServiceProvider,
    state: &dyn SamlState,
    msg: &SamlMessage,
) -> Result<(SpidSessionRef, OutgoingMessage), Rejection> {
    let r = receive(sp, msg, "SAMLRequest", "LogoutRequest")?;
    let doc = parse_document(&r.xml)?;
    let root = doc.root_element();
    let id = root
        .attribute("ID")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejection::new("malformed", "LogoutRequest without ID"))?;
    if root.attribute("Destination") != Some(sp.config.slo_url.as_str()) {
        return Err(Rejection::new(
            "destination",
            "Destination is not our SLO URL",
        ));
    }
    let skew = chrono::Duration::seconds(sp.config.clock_skew_secs as i64);
    let now = Utc::now();
    let issued = root
        .attribute("IssueInstant")
        .and_then(xml::parse_instant)
        .ok_or_else(|| Rejection::new("issue_instant", "IssueInstant missing or malformed"))?;
    let max_age = chrono::Duration::seconds(sp.config.request_ttl_secs as i64);
    if issued > now + skew || issued < now - max_age - skew {
        return Err(Rejection::new("issue_instant", "IssueInstant out of range"));
    }
    if let Some(t) = root.attribute("NotOnOrAfter") {
        let t = xml::parse_instant(t)
            .ok_or_else(|| Rejection::new("expired", "NotOnOrAfter malformed"))?;
        if t + skew <= now {
            return Err(Rejection::new("expired", "NotOnOrAfter has passed"));
        }
    }
    let name_id = child(root, NS_ASSERTION, "NameID")
        .map(text)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Rejection::new("name_id", "no NameID"))?;
    let session_index = child(root, NS_PROTOCOL, "SessionIndex").map(text);
    let ttl = Duration::from_secs(sp.config.request_ttl_secs + 2 * sp.config.clock_skew_secs);
    let replay_key = format!("spid:logoutreq:{}:{id}", r.idp.entity_id);
    if !state
        .put_if_absent(&replay_key, b"1", ttl)
        .await
        .map_err(|e| Rejection::new("state", e.to_string()))?
    {
        return Err(Rejection::new(
            "replayed",
            "this LogoutRequest was already handled",
        ));
    }
    let binding = match msg {
        SamlMessage::Redirect { .. } => Binding::HttpRedirect,
        SamlMessage::Post { .. } => Binding::HttpPost,
    };
    let destination = slo_destination(r.idp, binding)
        .or(r.idp.slo_post_url.as_deref())
        .or(r.idp.slo_redirect_url.as_deref())
        .ok_or_else(|| Rejection::new("malformed", "the IdP has no SingleLogoutService"))?;
    let binding = if slo_destination(r.idp, binding) == Some(destination) {
        binding
    } else if r.idp.slo_post_url.as_deref() == Some(destination) {
        Binding::HttpPost
    } else {
        Binding::HttpRedirect
    };
    let resp_id = xml::random_id();
    let issuer = &sp.config.entity_id;
    let unsigned = logout_response_xml(issuer, &resp_id, id, now, destination, STATUS_SUCCESS, "");
    let templated = logout_response_xml(
        issuer,
        &resp_id,
        id,
        now,
        destination,
        STATUS_SUCCESS,
        &sp.keys.signature_template(&resp_id),
    );
    let out = binding::encode(
        &sp.keys,
        binding,
        destination,
        "SAMLResponse",
        &unsigned,
        &templated,
        r.relay_state.as_deref(),
    )
    .map_err(|e| Rejection::new("signing", e.to_string()))?;
    Ok((
        SpidSessionRef {
            idp_entity_id: r.idp.entity_id.clone(),
            name_id,
            session_index,
        },
        out,
    ))
}
