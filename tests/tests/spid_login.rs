//! Sign-in with SPID, end to end: a browser (reqwest with cookies) goes from a client's
//! authorization request to the login page, "Entra con SPID", the local SPID test IdP
//! (started in-process by the harness, signing real Responses), back to the ACS and
//! on to the client; then single logout. On both backends.

use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId as IdpClientId, GrantType};
use idp_core::oidc::{ACR_PASSWORD, ACR_SPID_L2};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, Page, TestIdp, query_param};
use idp_tests::spid::{
    Hop, absolute, browse, forms, hop, identity_form, idp_logout_request, response_form, spid_link,
    spid_sign_in, test_idp_page,
};
use serde_json::Value;

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const POST_LOGOUT: &str = "http://127.0.0.1:9/";
const ENABLEMENT: &str = "http://127.0.0.1:9/abilitazione";
const PASSWORD: &str = "Scuola-2026!Test";

fn client(id: &str, service: Option<&str>) -> ClientSeed {
    ClientSeed {
        id: IdpClientId::parse(id).expect("id"),
        name: id.into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT.into()],
        backchannel_logout_uri: None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        jwks_file: None,
        service: service.map(str::to_string),
        enablement_uri: service.map(|_| ENABLEMENT.to_string()),
        access_token_format: AccessTokenFormat::Jwt,
    }
}

async fn start(backend: Backend) -> TestIdp {
    TestIdp::start_with_spid(
        backend,
        vec![
            client("pago-in-rete", None),
            client("istanze-online", Some("istanze-online")),
        ],
        |_| {},
    )
    .await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn authorize_url(idp: &TestIdp, client: &str, extra: &str) -> String {
    format!(
        "{}/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20profile%20email&state=s1&nonce=n1{extra}",
        idp.base,
        enc(REDIRECT)
    )
}

async fn exchange(idp: &TestIdp, client: &str, code: &str) -> Value {
    http()
        .post(idp.url("/token"))
        .basic_auth(client, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json")
}

fn payload(jwt: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).expect("payload"))
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

/// Code → tokens → (ID token claims, userinfo).
async fn claims_of(idp: &TestIdp, client: &str, at: &Page) -> (Value, Value, String) {
    let code = query_param(&at.url, "code")
        .unwrap_or_else(|| panic!("a code at {} ({}): {}", at.url, at.status, at.body));
    let tokens = exchange(idp, client, &code).await;
    let id_token = tokens["id_token"].as_str().expect("id token").to_string();
    let info: Value = http()
        .get(idp.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("access token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    (payload(&id_token), info, id_token)
}

/// The test identity used here, and its fiscal code.
const WHO: &str = TEST_IDENTITY_FISCAL_CODE;
const TEST_IDENTITY_FISCAL_CODE: &str = "RSSMRA80A01H501U";

/// Pago in rete's authorization request → the login page → SPID as `WHO` → code →
/// tokens: (ID token claims, userinfo, ID token).
async fn sign_in_with_spid(idp: &TestIdp, browser: &Browser) -> (Value, Value, String) {
    let login = browser
        .follow(&authorize_url(idp, "pago-in-rete", ""), &idp.base)
        .await;
    let back = spid_sign_in(idp, browser, &login, WHO).await;
    claims_of(idp, "pago-in-rete", &back).await
}

async fn metrics_text(idp: &TestIdp) -> String {
    http()
        .get(idp.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

async fn saml_rejections(idp: &TestIdp, reason: &str) -> u64 {
    let text = metrics_text(idp).await;
    let marker = format!("idp_saml_rejections_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&marker))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn a_person_signs_in_with_spid_and_gets_an_account(backend: Backend) {
    let idp = start(backend).await;
    let browser = Browser::new();
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    assert!(login.body.contains("Entra con SPID"), "{}", login.body);
    assert!(login.body.contains("name=\"password\""), "password too");
    let back = spid_sign_in(&idp, &browser, &login, WHO).await;
    assert!(back.url.starts_with(REDIRECT), "{} {}", back.url, back.body);
    let (claims, info, _) = claims_of(&idp, "pago-in-rete", &back).await;
    assert_eq!(claims["acr"], ACR_SPID_L2);
    assert_eq!(claims["amr"], serde_json::json!(["spid"]));
    assert_eq!(info["fiscal_code"], TEST_IDENTITY_FISCAL_CODE);
    let sub = claims["sub"].as_str().expect("sub").to_string();
    // A new account from the attributes: registered, no password.
    let account = idp
        .state
        .store
        .account_by_id(&idp_core::account::AccountId::from_string(sub.clone()))
        .await
        .expect("store")
        .expect("the account exists");
    assert_eq!(account.kind, idp_core::account::AccountKind::Registered);
    assert!(account.password.is_none());
    assert_eq!(
        account.fiscal_code.as_ref().map(|f| f.as_str()),
        Some(TEST_IDENTITY_FISCAL_CODE)
    );

    // Another browser, another SPID sign-in: the same account.
    let other = Browser::new();
    let (claims, _, _) = sign_in_with_spid(&idp, &other).await;
    assert_eq!(claims["sub"], sub.as_str());
    let accounts = idp.state.store.count_accounts().await.expect("count");
    assert_eq!(accounts, 1);
    let spid_logins = idp
        .audit(idp_core::audit::AuditKind::SpidLogin, Some(&sub))
        .await;
    assert_eq!(spid_logins.len(), 2);
    idp.stop().await;
}

/// A sign-in to the IdP itself (no parked request), as AgID's spid-sp-test drives it:
/// `/spid/login` answers a 302 with the signed AuthnRequest (spid-sp-test refuses a
/// 303) and sets the binding cookie; the Response lands on the Area riservata (200).
async fn a_sign_in_to_the_idp_itself_lands_on_the_area_riservata(backend: Backend) {
    let idp = start(backend).await;
    let browser = Browser::new();
    let test_idp = idp.spid_test_idp.clone().expect("test idp");
    let url = idp.url(&format!("/spid/login?idp={}", enc(&test_idp)));
    let r = browser.http.get(&url).send().await.expect("login");
    assert_eq!(r.status().as_u16(), 302);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("idp_spid="))
        .expect("the binding cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("location")
        .to_string();
    assert!(location.starts_with(&test_idp), "{location}");
    for param in ["SAMLRequest", "SigAlg", "Signature"] {
        assert!(
            query_param(&location, param).is_some(),
            "{param}: {location}"
        );
    }
    let first = Hop {
        status: 302,
        location: Some(location),
        body: String::new(),
        url,
    };
    let landed = browse(&idp, &browser, first, WHO).await;
    assert_eq!(landed.status, 200, "{} {}", landed.url, landed.body);
    assert_eq!(landed.url, idp.url("/area-riservata"), "{}", landed.body);
    assert!(landed.body.contains("Area riservata"), "{}", landed.body);
    assert!(landed.body.contains("Mario"), "{}", landed.body);
    assert_eq!(idp.state.store.count_accounts().await.expect("count"), 1);
    idp.stop().await;
}

async fn an_existing_password_account_is_linked_and_stepped_up(backend: Backend) {
    let idp = start(backend).await;
    let account = idp
        .account_with_fiscal_code(TEST_IDENTITY_FISCAL_CODE, PASSWORD)
        .await;
    let browser = Browser::new();
    // A password session first.
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    let back = browser
        .sign_in(&idp, &login, account.username.as_str(), PASSWORD)
        .await;
    let (claims, _, _) = claims_of(&idp, "pago-in-rete", &back).await;
    assert_eq!(claims["acr"], ACR_PASSWORD);
    let sid = claims["sid"].clone();

    // The client asks for SpidL2: only SPID is offered, at level 2.
    let l2 = format!("&acr_values={}", enc(ACR_SPID_L2));
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", &l2), &idp.base)
        .await;
    assert!(login.body.contains("livello 2"), "{}", login.body);
    assert!(
        !login.body.contains("name=\"password\""),
        "no password form"
    );
    let back = spid_sign_in(&idp, &browser, &login, WHO).await;
    let (claims, _, _) = claims_of(&idp, "pago-in-rete", &back).await;
    assert_eq!(claims["acr"], ACR_SPID_L2);
    assert_eq!(claims["amr"], serde_json::json!(["spid"]));
    // Linked by the fiscal code, in the same (stepped-up) session.
    assert_eq!(claims["sub"], account.id.as_str());
    assert_eq!(claims["sid"], sid);
    assert_eq!(idp.state.store.count_accounts().await.expect("count"), 1);
    idp.stop().await;
}

async fn an_l1_session_steps_up_to_l2(backend: Backend) {
    let idp = TestIdp::start_with_spid(backend, vec![client("pago-in-rete", None)], |c| {
        c.spid.default_level = idp_server::config::SpidLevelName::SpidL1;
    })
    .await;
    let browser = Browser::new();
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    let at_idp = test_idp_page(&idp, &browser, &login).await;
    assert!(
        at_idp.body.contains("<strong>SPID livello 1</strong>"),
        "{}",
        at_idp.body
    );
    let back = browse(&idp, &browser, at_idp, WHO).await;
    let (claims, _, _) = claims_of(&idp, "pago-in-rete", &back).await;
    assert_eq!(claims["acr"], idp_core::oidc::ACR_SPID_L1);
    let (sub, sid) = (claims["sub"].clone(), claims["sid"].clone());

    let l2 = format!("&acr_values={}", enc(ACR_SPID_L2));
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", &l2), &idp.base)
        .await;
    assert!(login.body.contains("livello 2"), "{}", login.body);
    assert!(!login.body.contains("name=\"password\""));
    let at_idp = test_idp_page(&idp, &browser, &login).await;
    assert!(
        at_idp.body.contains("<strong>SPID livello 2</strong>"),
        "{}",
        at_idp.body
    );
    let back = browse(&idp, &browser, at_idp, WHO).await;
    let (claims, _, _) = claims_of(&idp, "pago-in-rete", &back).await;
    assert_eq!(claims["acr"], ACR_SPID_L2);
    assert_eq!((claims["sub"].clone(), claims["sid"].clone()), (sub, sid));

    // prompt=none cannot step up: login_required, back to the client.
    let l3 = format!(
        "&acr_values={}&prompt=none",
        enc(idp_core::oidc::ACR_SPID_L3)
    );
    let refused = browser
        .follow(&authorize_url(&idp, "pago-in-rete", &l3), &idp.base)
        .await;
    assert_eq!(
        query_param(&refused.url, "error").as_deref(),
        Some("login_required")
    );
    idp.stop().await;
}

async fn a_refused_response_gets_an_italian_page_and_is_counted(backend: Backend) {
    let idp = start(backend).await;
    let browser = Browser::new();
    // Walk to the test IdP's Response without delivering it, then deliver it twice.
    let response_form = response_form(
        &idp,
        &browser,
        &authorize_url(&idp, "pago-in-rete", ""),
        WHO,
    )
    .await;
    assert_eq!(response_form.action, idp.url("/spid/acs"));
    let first = hop(
        browser
            .http
            .post(&response_form.action)
            .form(&response_form.fields),
        &response_form.action,
    )
    .await;
    assert_eq!(first.status, 303, "{}", first.body);

    // Replayed: its request was answered already.
    let before = saml_rejections(&idp, "unknown_in_response_to").await;
    let again = hop(
        browser
            .http
            .post(&response_form.action)
            .form(&response_form.fields),
        &response_form.action,
    )
    .await;
    assert_eq!(again.status, 400);
    assert!(
        again.body.contains("Accesso con SPID non riuscito"),
        "{}",
        again.body
    );
    let after = saml_rejections(&idp, "unknown_in_response_to").await;
    assert_eq!(after, before + 1, "{}", metrics_text(&idp).await);

    // Tampered: not what the identity provider signed.
    let tampered: Vec<(String, String)> = response_form
        .fields
        .iter()
        .map(|(n, v)| {
            if n == "SAMLResponse" {
                use base64::Engine;
                let engine = base64::engine::general_purpose::STANDARD;
                let xml = String::from_utf8(engine.decode(v).expect("base64")).expect("utf-8");
                let xml = xml.replacen(TEST_IDENTITY_FISCAL_CODE, "BNCNNA80A41H501X", 1);
                (n.clone(), engine.encode(xml))
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect();
    let refused = hop(
        browser.http.post(&response_form.action).form(&tampered),
        &response_form.action,
    )
    .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("lang=\"it\""));
    assert_eq!(saml_rejections(&idp, "bad_signature").await, 1);

    // The person cancels at the identity provider (anomaly 25): 403 with AgID's text.
    let fresh = Browser::new();
    let login = fresh
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    let link = spid_link(&idp, &login);
    let mut current = hop(fresh.http.get(&link), &link).await;
    while let Some(next) = current.location.clone() {
        current = hop(fresh.http.get(&next), &next).await;
    }
    let mut f =
        identity_form(&forms(&current.body), &current.body, WHO).expect("the identity's form");
    for (name, value) in f.fields.iter_mut() {
        if name == "action" {
            *value = "cancel".into();
        }
    }
    let action = absolute(&current.url, &f.action);
    let answer = hop(fresh.http.post(&action).form(&f.fields), &action).await;
    let cancelled = browse(&idp, &fresh, answer, WHO).await;
    assert_eq!(cancelled.status, 403, "{}", cancelled.body);
    assert!(cancelled.body.contains("Accesso con SPID non riuscito"));
    assert_eq!(saml_rejections(&idp, "status_not_success").await, 1);
    // Each refusal is a login failure in the audit log.
    let failures = idp
        .audit(idp_core::audit::AuditKind::LoginFailure, None)
        .await;
    assert_eq!(failures.len(), 3);
    idp.stop().await;
}

async fn a_response_delivered_to_another_browser_is_refused(backend: Backend) {
    let idp = start(backend).await;
    let victim = Browser::new();
    let attacker = Browser::new();
    // The attacker's own valid Response, delivered through the victim's browser.
    let form = response_form(
        &idp,
        &attacker,
        &authorize_url(&idp, "pago-in-rete", ""),
        WHO,
    )
    .await;
    let r = hop(
        victim.http.post(&form.action).form(&form.fields),
        &form.action,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("non è stato avviato da questo browser"),
        "{}",
        r.body
    );
    assert_eq!(saml_rejections(&idp, "browser_binding").await, 1);
    assert_eq!(idp.state.store.count_accounts().await.expect("count"), 0);
    idp.stop().await;
}

async fn spid_routes_answer_as_configured(backend: Backend) {
    let idp = start(backend).await;
    let metadata = http()
        .get(idp.url("/spid/metadata"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(metadata.status().as_u16(), 200);
    let xml = metadata.text().await.expect("text");
    assert!(
        xml.contains(&format!("entityID=\"{}/spid\"", idp.base)),
        "{xml}"
    );
    assert!(xml.contains(&idp.url("/spid/acs")));
    // An identity provider not in the registry.
    let unknown = http()
        .get(idp.url("/spid/login?idp=https%3A%2F%2Fevil.example&request="))
        .send()
        .await
        .expect("login");
    assert_eq!(unknown.status().as_u16(), 400);
    assert!(
        unknown
            .text()
            .await
            .expect("text")
            .contains("non è tra quelli disponibili")
    );
    // A parked request that does not exist.
    let test_idp = enc(&idp.spid_test_idp.clone().expect("test idp"));
    let expired = http()
        .get(idp.url(&format!("/spid/login?idp={test_idp}&request=nope")))
        .send()
        .await
        .expect("login");
    assert_eq!(expired.status().as_u16(), 400);
    // The chooser shows the test IdP's logo, served by us.
    let browser = Browser::new();
    let login = browser
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    assert!(
        login.body.contains("<img src=\"/spid/logo/0\""),
        "{}",
        login.body
    );
    let logo = http()
        .get(idp.url("/spid/logo/0"))
        .send()
        .await
        .expect("logo");
    assert_eq!(logo.status().as_u16(), 200);
    assert_eq!(logo.headers()["content-type"], "image/svg+xml");
    assert!(logo.text().await.expect("svg").contains("IdP di prova"));
    let none = http()
        .get(idp.url("/spid/logo/1"))
        .send()
        .await
        .expect("logo");
    assert_eq!(none.status().as_u16(), 404);
    idp.stop().await;

    // SPID off: no button, no routes.
    let plain = TestIdp::start(backend, vec![client("pago-in-rete", None)]).await;
    let browser = Browser::new();
    let login = browser
        .follow(&authorize_url(&plain, "pago-in-rete", ""), &plain.base)
        .await;
    assert!(login.body.contains("name=\"password\""));
    assert!(!login.body.contains("Entra con SPID"));
    let metadata = http()
        .get(plain.url("/spid/metadata"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(metadata.status().as_u16(), 404);
    plain.stop().await;
}

async fn signing_out_reaches_the_spid_identity_provider(backend: Backend) {
    let idp = start(backend).await;
    let fresh = Browser::new();
    let (claims, _, id_token) = sign_in_with_spid(&idp, &fresh).await;
    let sid = claims["sid"].as_str().expect("sid").to_string();
    assert!(
        idp.state
            .sessions
            .by_sid(&sid)
            .await
            .expect("cache")
            .is_some()
    );

    let logout = format!(
        "{}/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        idp.base,
        enc(POST_LOGOUT)
    );
    let first = hop(fresh.http.get(&logout), &logout).await;
    let test_idp = idp.spid_test_idp.clone().expect("test idp");
    // The LogoutRequest goes to the test IdP (a redirect, or a form posting there).
    let to_idp = first.location.clone().unwrap_or_else(|| {
        forms(&first.body)
            .first()
            .map(|f| f.action.clone())
            .unwrap_or_default()
    });
    assert!(to_idp.starts_with(&test_idp), "{to_idp}");
    assert!(
        idp.state
            .sessions
            .by_sid(&sid)
            .await
            .expect("cache")
            .is_none()
    );
    let end = browse(&idp, &fresh, first, WHO).await;
    assert_eq!(end.url, format!("{POST_LOGOUT}?state=bye"));
    idp.stop().await;
}

async fn the_spid_identity_provider_can_end_the_session(backend: Backend) {
    let idp = start(backend).await;
    let browser = Browser::new();
    let (claims, _, _) = sign_in_with_spid(&idp, &browser).await;
    let sid = claims["sid"].as_str().expect("sid").to_string();
    let session = idp
        .state
        .sessions
        .by_sid(&sid)
        .await
        .expect("cache")
        .expect("live session");
    let spid = session.spid.clone().expect("a SPID session");

    let request = idp_logout_request(&idp, &spid.name_id, spid.session_index.as_deref());
    let answer = hop(browser.http.get(&request), &request).await;
    // The LogoutResponse goes back to the test IdP, and the session is over.
    let test_idp = idp.spid_test_idp.clone().expect("test idp");
    let to = answer.location.clone().unwrap_or_else(|| {
        forms(&answer.body)
            .first()
            .map(|f| f.action.clone())
            .unwrap_or_default()
    });
    assert!(
        to.starts_with(&test_idp),
        "{} {}",
        answer.status,
        answer.body
    );
    assert!(
        idp.state
            .sessions
            .by_sid(&sid)
            .await
            .expect("cache")
            .is_none()
    );
    let again = browser
        .follow(&authorize_url(&idp, "pago-in-rete", ""), &idp.base)
        .await;
    assert!(
        again.body.contains("Entra con SPID"),
        "signed out: the login page"
    );

    // The same request again is a replay; a forged one does not verify.
    let replay = hop(browser.http.get(&request), &request).await;
    assert_eq!(replay.status, 400);
    assert_eq!(saml_rejections(&idp, "replayed").await, 1);

    // From the test IdP's own "Esci" (its LogoutRequest by HTTP-POST).
    let browser = Browser::new();
    let (claims, _, _) = sign_in_with_spid(&idp, &browser).await;
    let sid = claims["sid"].as_str().expect("sid").to_string();
    let page_url = format!("{test_idp}/logout");
    let page = hop(browser.http.get(&page_url), &page_url).await;
    // The newest of the sessions it lists (the first one ended above, unknown to it).
    let f = forms(&page.body)
        .into_iter()
        .rfind(|f| f.fields.iter().any(|(n, _)| n == "session"))
        .expect("the test IdP lists the session");
    let action = absolute(&page_url, &f.action);
    let sent = hop(browser.http.post(&action).form(&f.fields), &action).await;
    let done = browse(&idp, &browser, sent, WHO).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        idp.state
            .sessions
            .by_sid(&sid)
            .await
            .expect("cache")
            .is_none()
    );
    assert_eq!(saml_rejections(&idp, "bad_signature").await, 0);

    let forged =
        idp_logout_request(&idp, "_someone-else", None).replacen("Signature=", "Signature=AA", 1);
    let refused = hop(browser.http.get(&forged), &forged).await;
    assert_eq!(refused.status, 400);
    assert_eq!(saml_rejections(&idp, "bad_signature").await, 1);
    idp.stop().await;
}

async fn the_enablement_request_carries_the_spid_level(backend: Backend) {
    let idp = start(backend).await;
    let fresh = Browser::new();
    let login = fresh
        .follow(&authorize_url(&idp, "istanze-online", ""), &idp.base)
        .await;
    let sent = spid_sign_in(&idp, &fresh, &login, WHO).await;
    assert!(sent.url.starts_with(ENABLEMENT), "{}", sent.url);
    let request = payload(&query_param(&sent.url, "request").expect("request"));
    assert_eq!(request["assurance"], ACR_SPID_L2);
    assert_eq!(request["amr"], serde_json::json!(["spid"]));
    idp.stop().await;
}

idp_tests::on_both_backends!(
    a_person_signs_in_with_spid_and_gets_an_account,
    a_sign_in_to_the_idp_itself_lands_on_the_area_riservata,
    an_existing_password_account_is_linked_and_stepped_up,
    an_l1_session_steps_up_to_l2,
    a_refused_response_gets_an_italian_page_and_is_counted,
    signing_out_reaches_the_spid_identity_provider,
    the_spid_identity_provider_can_end_the_session,
    the_enablement_request_carries_the_spid_level,
    a_response_delivered_to_another_browser_is_refused,
    spid_routes_answer_as_configured,
);
