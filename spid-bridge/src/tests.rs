//! The SP against real responses from the test IdP, and those responses mutated: each
//! refusal asserts its reason.

use chrono::{Duration, Utc};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder};

use crate::binding::decode_redirect;
use crate::test_idp::{IdpSigner, ResponseSpec, build_response, idp_metadata, test_identities};
use crate::xml::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, child};
use crate::*;

const IDP: &str = "http://127.0.0.1:9999";
const SP: &str = "http://127.0.0.1:8080/spid";
const ACS: &str = "http://127.0.0.1:8080/spid/acs";
const SP_KEY: &str = include_str!("../../certs-dev/spid-sp.key");
const SP_CERT: &str = include_str!("../../certs-dev/spid-sp.crt");
const IDP_KEY: &str = include_str!("../../certs-dev/spid-test-idp.key");
const IDP_CERT: &str = include_str!("../../certs-dev/spid-test-idp.crt");

pub(crate) fn sp_config() -> SpConfig {
    SpConfig {
        entity_id: SP.into(),
        acs_url: ACS.into(),
        slo_url: format!("{SP}/slo"),
        key_pem: SP_KEY.into(),
        cert_pem: SP_CERT.into(),
        organization_name: "Ministero dell'istruzione e del merito".into(),
        organization_display_name: "Identità delle scuole".into(),
        organization_url: "https://www.mim.gov.it".into(),
        ipa_code: "m_pi".into(),
        contact_email: "spid@example.org".into(),
        contact_phone: None,
        comparison: Comparison::Minimum,
        clock_skew_secs: 60,
        request_ttl_secs: 600,
    }
}

struct Env {
    sp: ServiceProvider,
    signer: IdpSigner,
    state: MemoryState,
}

fn env() -> Env {
    let signer = IdpSigner::from_pem(IDP_KEY, IDP_CERT).expect("idp key");
    let registry =
        IdpRegistry::from_metadata_xml(&[idp_metadata(&signer, IDP).expect("idp metadata")])
            .expect("registry");
    let sp = ServiceProvider::new(sp_config(), registry).expect("sp");
    Env {
        sp,
        signer,
        state: MemoryState::new(),
    }
}

/// An RSA key and self-signed certificate that no metadata lists.
fn other_signer() -> IdpSigner {
    let rsa = Rsa::generate(2048).expect("rsa");
    let key = PKey::from_rsa(rsa).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "attacker").expect("cn");
    let name = name.build();
    let mut b = X509Builder::new().expect("builder");
    b.set_version(2).expect("v");
    b.set_serial_number(
        &BigNum::from_u32(7)
            .expect("bn")
            .to_asn1_integer()
            .expect("serial"),
    )
    .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
        .expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("t"))
        .expect("na");
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .expect("sign");
    let cert = String::from_utf8(b.build().to_pem().expect("pem")).expect("utf8");
    let key = String::from_utf8(key.private_key_to_pem_pkcs8().expect("pem")).expect("utf8");
    IdpSigner::from_pem(&key, &cert).expect("other signer")
}

struct Started {
    id: String,
    relay_state: String,
    xml: String,
}

async fn start(e: &Env, level: SpidLevel, binding: Binding) -> Started {
    let out =
        e.sp.start_login(&e.state, IDP, level, binding, "parked-login-1")
            .await
            .expect("start");
    let (xml, relay_state) = match out {
        OutgoingMessage::Redirect { location } => {
            let (_, q) = location.split_once('?').expect("query");
            let m = decode_redirect(q, "SAMLRequest").expect("decode");
            (m.xml, m.relay_state.expect("relay state"))
        }
        OutgoingMessage::Post { fields, .. } => {
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let xml =
                String::from_utf8(xml::b64_decode(&get("SAMLRequest").expect("req")).expect("b64"))
                    .expect("utf8");
            (xml, get("RelayState").expect("relay state"))
        }
    };
    let id = xml::parse(&xml)
        .expect("parse")
        .root_element()
        .attribute("ID")
        .expect("id")
        .to_string();
    Started {
        id,
        relay_state,
        xml,
    }
}

fn spec(req: &Started, level: SpidLevel) -> ResponseSpec {
    ResponseSpec::new(
        IDP,
        SP,
        ACS,
        &req.id,
        level,
        test_identities()[0].attributes(),
    )
}

async fn submit(e: &Env, xml: &str, req: &Started) -> Result<SpidLogin, Rejection> {
    e.sp.finish_login(
        &e.state,
        &xml::b64_encode(xml.as_bytes()),
        Some(&req.relay_state),
    )
    .await
}

fn reason(r: Result<SpidLogin, Rejection>) -> &'static str {
    match r {
        Ok(_) => "accepted",
        Err(r) => r.reason,
    }
}

/// The `<saml:Assertion …>…</saml:Assertion>` of a built response.
fn assertion_of(xml: &str) -> String {
    let start = xml.find("<saml:Assertion").expect("assertion start");
    let end = xml.find("</saml:Assertion>").expect("assertion end") + "</saml:Assertion>".len();
    xml[start..end].to_string()
}

/// An unsigned assertion for another person, as an attacker would write it.
fn evil_assertion(req: &Started) -> String {
    let mut s = spec(req, SpidLevel::L2);
    s.attributes = test_identities()[1].attributes();
    s.sign_assertion = false;
    s.sign_response = false;
    let e = env();
    assertion_of(&build_response(&e.signer, &s).expect("build"))
}

#[tokio::test]
async fn a_valid_response_gives_the_identity_level_session_and_relay() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L2)).expect("build");
    let login = submit(&e, &xml, &req).await.expect("accepted");
    assert_eq!(login.identity.fiscal_number, "RSSMRA80A01H501U");
    assert_eq!(login.identity.family_name.as_deref(), Some("Rossi"));
    assert_eq!(login.identity.date_of_birth.as_deref(), Some("1980-01-01"));
    assert_eq!(login.identity.level, SpidLevel::L2);
    assert_eq!(login.session.idp_entity_id, IDP);
    assert_eq!(login.session.name_id_qualifier.as_deref(), Some(IDP));
    assert!(login.session.session_index.is_some());
    assert_eq!(login.relay, "parked-login-1");
}

#[tokio::test]
async fn a_higher_level_than_requested_is_accepted_under_minimum() {
    let e = env();
    let req = start(&e, SpidLevel::L1, Binding::HttpPost).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L3)).expect("build");
    assert_eq!(
        submit(&e, &xml, &req)
            .await
            .expect("accepted")
            .identity
            .level,
        SpidLevel::L3
    );
}

#[tokio::test]
async fn a_response_with_only_the_assertion_signed_is_accepted() {
    let e = env();
    let req = start(&e, SpidLevel::L1, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L1);
    s.sign_response = false;
    let xml = build_response(&e.signer, &s).expect("build");
    assert_eq!(reason(submit(&e, &xml, &req).await), "accepted");
}

#[tokio::test]
async fn the_authn_request_follows_the_spid_rules() {
    let e = env();
    for binding in [Binding::HttpRedirect, Binding::HttpPost] {
        let req = start(&e, SpidLevel::L2, binding).await;
        let doc = xml::parse(&req.xml).expect("parse");
        let r = doc.root_element();
        assert!(r.has_tag_name((NS_PROTOCOL, "AuthnRequest")));
        assert!(req.id.starts_with('_') && req.id.len() == 33);
        assert_eq!(r.attribute("Version"), Some("2.0"));
        assert_eq!(
            r.attribute("Destination"),
            Some(format!("{IDP}/sso").as_str())
        );
        assert_eq!(r.attribute("ForceAuthn"), Some("true"));
        assert_eq!(r.attribute("AssertionConsumerServiceIndex"), Some("0"));
        assert_eq!(r.attribute("AttributeConsumingServiceIndex"), Some("0"));
        let issuer = child(r, NS_ASSERTION, "Issuer").expect("issuer");
        assert_eq!(issuer.attribute("NameQualifier"), Some(SP));
        assert_eq!(issuer.attribute("Format"), Some(xml::NAMEID_ENTITY));
        let policy = child(r, NS_PROTOCOL, "NameIDPolicy").expect("policy");
        assert_eq!(policy.attribute("Format"), Some(xml::NAMEID_TRANSIENT));
        assert_eq!(policy.attribute("AllowCreate"), None);
        let rac = child(r, NS_PROTOCOL, "RequestedAuthnContext").expect("rac");
        assert_eq!(rac.attribute("Comparison"), Some("minimum"));
        assert!(!req.relay_state.contains("http") && req.relay_state.len() == 32);
        if binding == Binding::HttpPost {
            // The signature comes right after the Issuer and verifies with our certificate.
            let next = issuer.next_sibling_element().expect("after issuer");
            assert!(next.has_tag_name((NS_DSIG, "Signature")));
            let der = xml::cert_der_from_b64(&e.sp.keys.cert_b64()).expect("cert");
            crate::response::verify_and_reduce_with(&req.xml, &[der]).expect("signature verifies");
        }
    }
    let l1 = start(&e, SpidLevel::L1, Binding::HttpRedirect).await;
    assert_eq!(
        xml::parse(&l1.xml)
            .expect("parse")
            .root_element()
            .attribute("ForceAuthn"),
        None
    );
}

#[tokio::test]
async fn an_unsigned_assertion_is_refused_even_in_a_signed_response() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.sign_assertion = false;
    let xml = build_response(&e.signer, &s).expect("build");
    assert_eq!(reason(submit(&e, &xml, &req).await), "unsigned_assertion");
}

#[tokio::test]
async fn a_response_signed_by_another_key_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let xml = build_response(&other_signer(), &spec(&req, SpidLevel::L2)).expect("build");
    assert_eq!(reason(submit(&e, &xml, &req).await), "bad_signature");
}

#[tokio::test]
async fn a_signed_response_with_a_tampered_value_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L2)).expect("build");
    let tampered = xml.replace("RSSMRA80A01H501U", "BNCNNA85M41F205Q");
    assert_eq!(reason(submit(&e, &tampered, &req).await), "bad_signature");
}

#[tokio::test]
async fn signature_wrapping_variants_with_namespaces_are_refused() {
    let e = env();
    // 1. A second, unsigned assertion before the signed one.
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L2)).expect("build");
    let signed = assertion_of(&xml);
    let before = xml.replace(&signed, &format!("{}{signed}", evil_assertion(&req)));
    assert_eq!(
        reason(submit(&e, &before, &req).await),
        "signature_wrapping"
    );
    // 2. After it.
    let after = xml.replace(&signed, &format!("{signed}{}", evil_assertion(&req)));
    assert_eq!(reason(submit(&e, &after, &req).await), "signature_wrapping");
    // 3. The signed assertion moved into samlp:Extensions, the evil one in its place
    //    (assertion-only signature, so the Response's own digest does not give it away).
    let mut s = spec(&req, SpidLevel::L2);
    s.sign_response = false;
    let xml = build_response(&e.signer, &s).expect("build");
    let signed = assertion_of(&xml);
    let moved = xml.replace(&signed, &evil_assertion(&req)).replace(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{signed}</samlp:Extensions><samlp:Status>"),
    );
    assert_eq!(reason(submit(&e, &moved, &req).await), "signature_wrapping");
    // 4. An evil assertion in its place carrying the genuine signature, the signed
    //    assertion moved into a ds:Object inside that signature.
    let sig_start = signed.find("<ds:Signature").expect("signature start");
    let sig_end = signed.find("</ds:Signature>").expect("signature end");
    let carried = format!(
        "{}<ds:Object>{signed}</ds:Object></ds:Signature>",
        &signed[sig_start..sig_end]
    );
    let evil =
        evil_assertion(&req).replacen("</saml:Issuer>", &format!("</saml:Issuer>{carried}"), 1);
    let object = xml.replace(&signed, &evil);
    assert_eq!(
        reason(submit(&e, &object, &req).await),
        "signature_wrapping"
    );
    // 5. A genuine signed Response wrapped by an unsigned one carrying an evil assertion.
    let genuine = build_response(&e.signer, &spec(&req, SpidLevel::L2)).expect("build");
    let mut outer = spec(&req, SpidLevel::L2);
    outer.sign_response = false;
    outer.sign_assertion = false;
    outer.attributes = test_identities()[1].attributes();
    let outer_xml = build_response(&e.signer, &outer).expect("build");
    let wrapped = outer_xml.replace(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{genuine}</samlp:Extensions><samlp:Status>"),
    );
    assert_eq!(
        reason(submit(&e, &wrapped, &req).await),
        "signature_wrapping"
    );
    // 6. An evil unsigned assertion added inside a genuine signed Response, and one
    //    replacing its signed assertion.
    let genuine_assertion = assertion_of(&genuine);
    let added = genuine.replace(
        &genuine_assertion,
        &format!("{genuine_assertion}{}", evil_assertion(&req)),
    );
    assert_eq!(reason(submit(&e, &added, &req).await), "signature_wrapping");
    let replaced = genuine.replace(&genuine_assertion, &evil_assertion(&req));
    assert_eq!(
        reason(submit(&e, &replaced, &req).await),
        "unsigned_assertion"
    );
    // None of the attempts consumed the request: the genuine answer still works.
    assert_eq!(reason(submit(&e, &genuine, &req).await), "accepted");
}

#[tokio::test]
async fn wrong_audience_recipient_and_destination_are_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.sp_entity_id = "https://other-sp.example.org".into();
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "audience"
    );

    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let s = spec(&req, SpidLevel::L2);
    // Recipient only (Destination is the Response's; both come from acs_url in the spec).
    let xml = build_response(
        &e.signer,
        &ResponseSpec {
            acs_url: "https://evil.example.org/acs".into(),
            ..s.clone()
        },
    )
    .expect("b");
    assert_eq!(reason(submit(&e, &xml, &req).await), "destination");
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s2 = spec(&req, SpidLevel::L2);
    s2.sign_response = false;
    let bad_recipient = {
        let mut t = s2.clone();
        t.acs_url = "https://evil.example.org/acs".into();
        let evil = build_response(&e.signer, &t).expect("b");
        // The Response's Destination is right; the signed Recipient is not.
        evil.replacen(
            "Destination=\"https://evil.example.org/acs\"",
            &format!("Destination=\"{ACS}\""),
            1,
        )
    };
    assert_eq!(reason(submit(&e, &bad_recipient, &req).await), "recipient");
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s3 = spec(&req, SpidLevel::L2);
    s3.sign_response = false;
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s3).expect("b"), &req).await),
        "accepted"
    );
}

#[tokio::test]
async fn an_expired_or_future_assertion_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.not_on_or_after = Utc::now() - Duration::minutes(5);
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "expired"
    );

    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.not_before = Utc::now() + Duration::minutes(10);
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "not_yet_valid"
    );

    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.issue_instant = Utc::now() - Duration::hours(1);
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "issue_instant"
    );
}

#[tokio::test]
async fn a_response_is_used_once_and_an_assertion_id_cannot_be_replayed() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let s = spec(&req, SpidLevel::L2);
    let xml = build_response(&e.signer, &s).expect("b");
    assert_eq!(reason(submit(&e, &xml, &req).await), "accepted");
    // The same response again: its request was consumed.
    assert_eq!(
        reason(submit(&e, &xml, &req).await),
        "unknown_in_response_to"
    );
    // The same assertion ID answering a new request: a replay.
    let req2 = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s2 = spec(&req2, SpidLevel::L2);
    s2.assertion_id = s.assertion_id.clone();
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s2).expect("b"), &req2).await),
        "replayed"
    );
}

#[tokio::test]
async fn an_unknown_in_response_to_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.in_response_to = xml::random_id();
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "unknown_in_response_to"
    );
}

#[tokio::test]
async fn a_level_lower_than_requested_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let r = submit(
        &e,
        &build_response(&e.signer, &spec(&req, SpidLevel::L1)).expect("b"),
        &req,
    )
    .await;
    assert_eq!(reason(r), "level_too_low");
}

#[tokio::test]
async fn a_missing_fiscal_number_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.attributes.retain(|(k, _)| k != "fiscalNumber");
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "missing_fiscal_number"
    );
}

#[tokio::test]
async fn a_document_with_a_dtd_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L2)).expect("b");
    let with_dtd = format!("<!DOCTYPE samlp:Response [<!ENTITY x \"y\">]>{xml}");
    assert_eq!(reason(submit(&e, &with_dtd, &req).await), "dtd_forbidden");
}

#[tokio::test]
async fn an_anomaly_status_gets_the_agid_message() {
    let e = env();
    let req = start(&e, SpidLevel::L2, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L2);
    s.anomaly = Some(25);
    let r = submit(&e, &build_response(&e.signer, &s).expect("b"), &req)
        .await
        .expect_err("refused");
    assert_eq!(r.reason, "status_not_success");
    assert!(r.message_it.contains("annullato"), "{}", r.message_it);
    assert!(r.detail.contains("25"));
    for (code, words) in [
        (19, "credenziali errate"),
        (20, "livello"),
        (21, "tempo"),
        (22, "consenso"),
        (23, "sospesa"),
        (30, "tipo"),
    ] {
        assert!(
            response::anomaly_message_it(Some(code)).contains(words),
            "{code}"
        );
    }
}

#[tokio::test]
async fn the_sp_metadata_is_signed_and_complete() {
    let e = env();
    let md = e.sp.metadata_xml();
    let der = xml::cert_der_from_b64(&e.sp.keys.cert_b64()).expect("cert");
    crate::response::verify_and_reduce_with(md, &[der]).expect("metadata signature verifies");
    let doc = xml::parse(md).expect("parse");
    let sso = child(doc.root_element(), xml::NS_METADATA, "SPSSODescriptor").expect("sso");
    assert_eq!(sso.attribute("AuthnRequestsSigned"), Some("true"));
    assert_eq!(sso.attribute("WantAssertionsSigned"), Some("true"));
    for a in crate::metadata::REQUESTED_ATTRIBUTES {
        assert!(md.contains(&format!("Name=\"{a}\"")), "{a}");
    }
    assert!(md.contains("<spid:IPACode>m_pi</spid:IPACode><spid:Public/>"));
}

#[tokio::test]
async fn the_old_urn_form_of_the_level_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L1, Binding::HttpRedirect).await;
    let mut s = spec(&req, SpidLevel::L1);
    s.class_ref_override = Some("urn:oasis:names:tc:SAML:2.0:ac:classes:SpidL1".into());
    assert_eq!(
        reason(submit(&e, &build_response(&e.signer, &s).expect("b"), &req).await),
        "authn_context"
    );
}

#[tokio::test]
async fn a_changed_relay_state_is_refused() {
    let e = env();
    let req = start(&e, SpidLevel::L1, Binding::HttpRedirect).await;
    let xml = build_response(&e.signer, &spec(&req, SpidLevel::L1)).expect("b");
    let r =
        e.sp.finish_login(&e.state, &xml::b64_encode(xml.as_bytes()), Some("other"))
            .await;
    assert_eq!(reason(r), "relay_state");
}

#[test]
fn comparisons_decide_which_levels_satisfy_a_request() {
    use SpidLevel::*;
    assert!(Comparison::Minimum.accepts(L2, L3) && !Comparison::Minimum.accepts(L2, L1));
    assert!(Comparison::Exact.accepts(L2, L2) && !Comparison::Exact.accepts(L2, L3));
    assert!(Comparison::Better.accepts(L1, L2) && !Comparison::Better.accepts(L2, L2));
    assert!(Comparison::Maximum.accepts(L2, L1) && !Comparison::Maximum.accepts(L2, L3));
    assert_eq!(
        SpidLevel::from_acr("https://www.spid.gov.it/SpidL2"),
        Some(L2)
    );
    assert_eq!(
        SpidLevel::from_saml_class_ref("urn:oasis:names:tc:SAML:2.0:ac:classes:SpidL2"),
        None
    );
}

#[test]
fn the_private_key_never_prints() {
    let dbg = format!("{:?}", sp_config());
    assert!(!dbg.contains("PRIVATE KEY") && dbg.contains("redacted"));
}
