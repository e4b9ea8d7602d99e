//! The SP and the test IdP talking over HTTP (in-process), single logout both ways, and
//! the IdP registry.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::test_idp::{IdpSigner, TestIdpConfig, router};
use crate::tests::sp_config;
use crate::xml::{self, NS_PROTOCOL};
use crate::*;

const IDP: &str = "http://127.0.0.1:9999";
const IDP_KEY: &str = include_str!("../../certs-dev/spid-test-idp.key");
const IDP_CERT: &str = include_str!("../../certs-dev/spid-test-idp.crt");

struct World {
    sp: ServiceProvider,
    idp: axum::Router,
    state: MemoryState,
}

fn world() -> World {
    let config = TestIdpConfig {
        base_url: IDP.into(),
        key_pem: IDP_KEY.into(),
        cert_pem: IDP_CERT.into(),
        sp_metadata_xml: vec![],
    };
    let idp_md = test_idp::metadata_xml(&config).expect("idp metadata");
    let registry = IdpRegistry::from_metadata_xml(&[idp_md]).expect("registry");
    let sp = ServiceProvider::new(sp_config(), registry).expect("sp");
    let idp = router(TestIdpConfig {
        sp_metadata_xml: vec![sp.metadata_xml().to_string()],
        ..config
    })
    .expect("router");
    World {
        sp,
        idp,
        state: MemoryState::new(),
    }
}

async fn body(r: axum::response::Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8(b.to_vec()).expect("utf8")
}

/// `name="X" value="Y"` of a hidden input, unescaped.
fn field(html: &str, name: &str) -> Option<String> {
    let key = format!(r#"name="{name}" value=""#);
    let start = html.find(&key)? + key.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

async fn send_to_idp(w: &World, msg: OutgoingMessage) -> axum::response::Response {
    let req = match msg {
        OutgoingMessage::Redirect { location } => {
            let path = location.strip_prefix(IDP).expect("idp url").to_string();
            Request::get(path).body(Body::empty()).expect("req")
        }
        OutgoingMessage::Post { action, fields } => {
            let path = action.strip_prefix(IDP).expect("idp url").to_string();
            let form: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter())
                .finish();
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("req")
        }
    };
    w.idp.clone().oneshot(req).await.expect("idp answers")
}

/// Signs in through the test IdP's page choosing `identity` and `level`; returns the
/// SP's verdict.
async fn sign_in(
    w: &World,
    requested: SpidLevel,
    binding: Binding,
    identity: usize,
    answer: SpidLevel,
) -> Result<SpidLogin, Rejection> {
    let out =
        w.sp.start_login(&w.state, IDP, requested, binding, "parked")
            .await
            .expect("start");
    let page = send_to_idp(w, out).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .expect("csp")
        .to_str()
        .expect("csp")
        .to_string();
    assert!(!csp.contains("unsafe-inline"));
    let html = body(page).await;
    assert!(html.contains("lang=\"it\"") && html.contains("Identità di test"));
    assert!(!html.contains("<script>"), "no inline scripts");
    let token = field(&html, "request").expect("request token");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request", &token)
        .append_pair("identity", &identity.to_string())
        .append_pair("level", answer.saml_class_ref())
        .append_pair("action", "login")
        .finish();
    let posted = w
        .idp
        .clone()
        .oneshot(
            Request::post("/sso/answer")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("req"),
        )
        .await
        .expect("answer");
    let html = body(posted).await;
    assert!(html.contains(r#"<script src="/static/autopost.js" defer></script>"#));
    assert!(html.contains(r#"<button type="submit">Continua</button>"#));
    let saml = field(&html, "SAMLResponse").expect("SAMLResponse");
    let relay = field(&html, "RelayState");
    w.sp.finish_login(&w.state, &saml, relay.as_deref()).await
}

#[tokio::test]
async fn a_person_signs_in_through_the_test_idp_with_either_binding() {
    let w = world();
    let login = sign_in(&w, SpidLevel::L2, Binding::HttpRedirect, 1, SpidLevel::L2)
        .await
        .expect("accepted");
    assert_eq!(login.identity.name.as_deref(), Some("Anna"));
    assert_eq!(login.identity.level, SpidLevel::L2);
    assert_eq!(login.relay, "parked");
    let login = sign_in(&w, SpidLevel::L3, Binding::HttpPost, 2, SpidLevel::L3)
        .await
        .expect("accepted");
    assert_eq!(login.identity.family_name.as_deref(), Some("Verdi"));
}

#[tokio::test]
async fn the_tester_can_answer_with_a_lower_level_and_the_sp_refuses_it() {
    let w = world();
    let r = sign_in(&w, SpidLevel::L2, Binding::HttpRedirect, 0, SpidLevel::L1).await;
    assert_eq!(r.err().map(|r| r.reason), Some("level_too_low"));
}

#[tokio::test]
async fn the_test_idp_refuses_an_unsigned_or_tampered_request() {
    let w = world();
    let out =
        w.sp.start_login(&w.state, IDP, SpidLevel::L1, Binding::HttpRedirect, "x")
            .await
            .expect("start");
    let OutgoingMessage::Redirect { location } = out else {
        panic!("redirect")
    };
    let (path, _) = location.split_once("&Signature=").expect("signature");
    let unsigned = w
        .idp
        .clone()
        .oneshot(
            Request::get(path.strip_prefix(IDP).expect("idp"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("answer");
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
    assert!(body(unsigned).await.contains("firma"));
}

#[tokio::test]
async fn sp_initiated_logout_round_trips_through_the_test_idp() {
    let w = world();
    let login = sign_in(&w, SpidLevel::L1, Binding::HttpPost, 0, SpidLevel::L1)
        .await
        .expect("accepted");
    // HTTP-POST: the IdP answers with an auto-POST page carrying a signed LogoutResponse.
    let out =
        w.sp.start_logout(&w.state, &login.session, Binding::HttpPost, "after-logout")
            .await
            .expect("logout");
    let html = body(send_to_idp(&w, out).await).await;
    let saml = field(&html, "SAMLResponse").expect("LogoutResponse");
    let relay_state = field(&html, "RelayState");
    let msg = SamlMessage::Post {
        saml: saml.clone(),
        relay_state: relay_state.clone(),
    };
    assert_eq!(
        w.sp.finish_logout(&w.state, &msg).await.expect("valid"),
        "after-logout"
    );
    // Used once.
    assert_eq!(
        w.sp.finish_logout(&w.state, &msg)
            .await
            .err()
            .map(|r| r.reason),
        Some("unknown_in_response_to")
    );
    // HTTP-Redirect: a 302 back to our SLO with the query signature.
    let out =
        w.sp.start_logout(&w.state, &login.session, Binding::HttpRedirect, "again")
            .await
            .expect("logout");
    let resp = send_to_idp(&w, out).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp
        .headers()
        .get(header::LOCATION)
        .expect("location")
        .to_str()
        .expect("str")
        .to_string();
    let (_, raw_query) = location.split_once('?').expect("query");
    let msg = SamlMessage::Redirect {
        raw_query: raw_query.to_string(),
    };
    assert_eq!(
        w.sp.finish_logout(&w.state, &msg).await.expect("valid"),
        "again"
    );
    // A tampered query does not verify.
    let out =
        w.sp.start_logout(&w.state, &login.session, Binding::HttpRedirect, "x")
            .await
            .expect("logout");
    let resp = send_to_idp(&w, out).await;
    let location = resp
        .headers()
        .get(header::LOCATION)
        .expect("location")
        .to_str()
        .expect("str")
        .to_string();
    let (_, raw_query) = location.split_once('?').expect("query");
    let tampered = raw_query.replacen("RelayState=", "RelayState=00", 1);
    let msg = SamlMessage::Redirect {
        raw_query: tampered,
    };
    assert_eq!(
        w.sp.finish_logout(&w.state, &msg)
            .await
            .err()
            .map(|r| r.reason),
        Some("bad_signature")
    );
}

#[tokio::test]
async fn an_idp_initiated_logout_is_verified_and_answered_with_a_signed_response() {
    let w = world();
    let signer = IdpSigner::from_pem(IDP_KEY, IDP_CERT).expect("signer");
    let session = SpidSession {
        idp_entity_id: IDP.into(),
        name_id: "_transient-1".into(),
        name_id_qualifier: Some(IDP.into()),
        session_index: Some("_session-1".into()),
    };
    let id = xml::random_id();
    let slo = w.sp.config.slo_url.clone();
    let templated = crate::slo::logout_request_xml(
        IDP,
        &id,
        chrono::Utc::now(),
        &slo,
        &session,
        &signer.0.signature_template(&id),
    );
    let signed = signer.0.sign_enveloped(&templated).expect("sign");
    let msg = SamlMessage::Post {
        saml: xml::b64_encode(signed.as_bytes()),
        relay_state: Some("rs".into()),
    };
    let (named, out) =
        w.sp.handle_logout_request(&w.state, &msg)
            .await
            .expect("valid");
    assert_eq!(named.name_id, "_transient-1");
    assert_eq!(named.session_index.as_deref(), Some("_session-1"));
    let OutgoingMessage::Post { action, fields } = out else {
        panic!("post")
    };
    assert_eq!(action, format!("{IDP}/slo"));
    let resp = String::from_utf8(xml::b64_decode(&fields[0].1).expect("b64")).expect("utf8");
    let doc = xml::parse(&resp).expect("parse");
    assert!(
        doc.root_element()
            .has_tag_name((NS_PROTOCOL, "LogoutResponse"))
    );
    assert_eq!(
        doc.root_element().attribute("InResponseTo"),
        Some(id.as_str())
    );
    let der = xml::cert_der_from_b64(&w.sp.keys.cert_b64()).expect("cert");
    crate::response::verify_and_reduce_with(&resp, &[der]).expect("our signature verifies");
    // The same request again is a replay; one signed by another key does not verify.
    assert_eq!(
        w.sp.handle_logout_request(&w.state, &msg)
            .await
            .err()
            .map(|r| r.reason),
        Some("replayed")
    );
    let unsigned = crate::slo::logout_request_xml(
        IDP,
        &xml::random_id(),
        chrono::Utc::now(),
        &slo,
        &session,
        "",
    );
    let msg = SamlMessage::Post {
        saml: xml::b64_encode(unsigned.as_bytes()),
        relay_state: None,
    };
    assert_eq!(
        w.sp.handle_logout_request(&w.state, &msg)
            .await
            .err()
            .map(|r| r.reason),
        Some("bad_signature")
    );
}

#[test]
fn the_registry_reads_entities_descriptors_with_italian_names_and_signing_keys_only() {
    let cert_b64 = xml::b64_encode(
        &IdpSigner::from_pem(IDP_KEY, IDP_CERT)
            .expect("s")
            .0
            .cert_der,
    );
    let entity = |id: &str, name: &str, extra: &str| {
        format!(
            concat!(
                r#"<md:EntityDescriptor entityID="{id}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
                r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>{extra}"#,
                r#"<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{id}/sso"/>"#,
                r#"</md:IDPSSODescriptor><md:Organization><md:OrganizationDisplayName xml:lang="en">English</md:OrganizationDisplayName>"#,
                r#"<md:OrganizationDisplayName xml:lang="it">{name}</md:OrganizationDisplayName></md:Organization></md:EntityDescriptor>"#
            ),
            id = id,
            c = cert_b64,
            name = name,
            extra = extra
        )
    };
    let xml = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">{}{}</md:EntitiesDescriptor>"#,
        entity(
            "https://z.example",
            "Zeta ID",
            r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
        ),
        entity("https://a.example", "Alfa ID", "")
    );
    let reg = IdpRegistry::from_metadata_xml(&[xml]).expect("registry");
    let names: Vec<_> = reg.all().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["Alfa ID", "Zeta ID"]);
    let z = reg.get("https://z.example").expect("z");
    assert_eq!(
        z.signing_certs.len(),
        1,
        "the encryption key is not used for verification"
    );
    assert_eq!(z.sso_redirect_url.as_deref(), Some("https://z.example/sso"));
    assert!(z.sso_post_url.is_none());
    assert!(IdpRegistry::from_metadata_xml(&["<!DOCTYPE x []><x/>".to_string()]).is_err());
}

#[tokio::test]
async fn signing_out_at_the_test_idp_sends_the_sp_a_logout_request_it_accepts() {
    let w = world();
    let login = sign_in(&w, SpidLevel::L1, Binding::HttpRedirect, 0, SpidLevel::L1)
        .await
        .expect("accepted");
    let list = w
        .idp
        .clone()
        .oneshot(Request::get("/logout").body(Body::empty()).expect("req"))
        .await
        .expect("page");
    let html = body(list).await;
    assert!(html.contains("Mario Rossi"));
    let sid = field(&html, "session").expect("session");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("session", &sid)
        .finish();
    let started = w
        .idp
        .clone()
        .oneshot(
            Request::post("/logout")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("req"),
        )
        .await
        .expect("logout");
    let html = body(started).await;
    let msg = SamlMessage::Post {
        saml: field(&html, "SAMLRequest").expect("LogoutRequest"),
        relay_state: field(&html, "RelayState"),
    };
    let (named, answer) =
        w.sp.handle_logout_request(&w.state, &msg)
            .await
            .expect("valid");
    assert_eq!(named.name_id, login.session.name_id);
    assert_eq!(named.session_index, login.session.session_index);
    let done = body(send_to_idp(&w, answer).await).await;
    assert!(done.contains("Uscita completata"));
}
