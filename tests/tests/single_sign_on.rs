//! Single sign-on across the three services, as a person lives it: the three relying
//! parties run in-process as real OIDC clients of a real IdP, and one browser signs in
//! once at Pago in rete, opens the governance portal and Istanze OnLine without typing
//! anything, signs out from the governance portal and is signed out of all three (the
//! other two learn it by back-channel logout). Runs on both backends.

use std::time::Duration;

use idp_core::client::{AccessTokenFormat, ClientAuthMethod, ClientId, GrantType};
use idp_server::admin::clients::ClientSeed;
use idp_tests::harness::{Backend, Browser, Page, TestIdp, hidden};
use relying_parties::{BoundRp, Service};
use tokio::net::TcpListener;

const SECRET: &str = "relying-party-secret-for-the-sso-test-0123";
const PASSWORD: &str = "Scuola-2026!Test";
const FISCAL_CODE: &str = "RSSMRA85T10A562S";

/// The three services' ports, bound before the IdP starts so that it can register
/// their exact URLs.
struct Listeners {
    bound: Vec<(Service, TcpListener, String)>,
}

impl Listeners {
    async fn bind() -> Listeners {
        let mut bound = Vec::new();
        for service in Service::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let base = format!(
                "http://127.0.0.1:{}",
                listener.local_addr().expect("addr").port()
            );
            bound.push((service, listener, base));
        }
        Listeners { bound }
    }

    fn seeds(&self) -> Vec<ClientSeed> {
        self.bound
            .iter()
            .map(|(service, _, base)| seed(*service, base))
            .collect()
    }

    async fn serve(self, idp: &TestIdp) -> Vec<BoundRp> {
        let mut rps = Vec::new();
        for (service, listener, base) in self.bound {
            let config = service.config(&idp.base, SECRET, &base, 0);
            rps.push(
                relying_parties::serve_on(config, listener)
                    .await
                    .expect("the relying party starts"),
            );
        }
        rps
    }
}

/// A service as the IdP registers it. Istanze OnLine declares its service (so its
/// ID token carries the enablement state) but no enablement_uri here: this test is
/// about SSO; the abilitazione has its own.
fn seed(service: Service, base: &str) -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(service.id()).expect("client id"),
        name: service.display_name().into(),
        secret: Some(SECRET.into()),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec![format!("{base}/callback")],
        post_logout_redirect_uris: vec![format!("{base}/")],
        backchannel_logout_uri: Some(format!("{base}/backchannel-logout")),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        jwks: None,
        jwks_file: None,
        service: service.needs_enablement().then(|| service.id().to_string()),
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

async fn visit(browser: &Browser, url: &str) -> Page {
    browser.visit(url).await
}

async fn post(browser: &Browser, url: &str, fields: &[(&str, &str)]) -> Page {
    browser.post_form(url, fields).await
}

fn signed_in(page: &Page) -> bool {
    page.status == 200 && page.body.contains("id=\"dati-personali\"")
}

fn signed_out(page: &Page) -> bool {
    page.status == 200
        && page.body.contains("id=\"accedi\"")
        && !page.body.contains("id=\"user-menu\"")
}

/// Polls a service's home page until the person is signed out there.
async fn wait_signed_out(browser: &Browser, rp: &BoundRp) -> Page {
    let mut page = visit(browser, &rp.url("/")).await;
    for _ in 0..50 {
        if signed_out(&page) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = visit(browser, &rp.url("/")).await;
    }
    page
}

async fn one_login_serves_all_three_services_and_one_logout_ends_them(backend: Backend) {
    let listeners = Listeners::bind().await;
    let idp = TestIdp::start(backend, listeners.seeds()).await;
    idp.account_with_fiscal_code(FISCAL_CODE, PASSWORD).await;
    let rps = listeners.serve(&idp).await;
    let [istanze, pago, governance] = [&rps[0], &rps[1], &rps[2]];
    let browser = Browser::new();

    // Pago in rete: not signed in, "Accedi" leads to the IdP's login page
    let home = visit(&browser, &pago.url("/")).await;
    assert!(signed_out(&home), "{}", home.body);
    assert!(
        home.body.contains(&format!(
            "{}/assets/vendor/bootstrap-italia/css/bootstrap-italia.min.css",
            idp.base
        )),
        "styled with the IdP's Bootstrap Italia"
    );
    // The stylesheet's fonts come from the IdP's origin in CORS mode: the browser drops
    // them unless the IdP allows other origins.
    let font = browser
        .http
        .get(idp.url(
            "/assets/vendor/bootstrap-italia/fonts/titillium-web-v10-latin-ext_latin-regular.woff2",
        ))
        .header("origin", &pago.base_url)
        .send()
        .await
        .expect("font");
    assert_eq!(font.status().as_u16(), 200);
    assert_eq!(
        font.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*"),
        "the fonts may be used by the services' pages"
    );
    let start = browser
        .http
        .get(pago.url("/accedi"))
        .send()
        .await
        .expect("accedi");
    let cookie = start
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.starts_with("rp_pago-in-rete_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "a browser-session cookie: {cookie}"
    );
    let authorize = start
        .headers()
        .get("location")
        .expect("to the IdP")
        .to_str()
        .expect("url")
        .to_string();
    assert!(authorize.starts_with(&idp.url("/authorize")), "{authorize}");
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(
        authorize.contains("nonce=") && authorize.contains("state="),
        "{authorize}"
    );
    let login = visit(&browser, &authorize).await;
    assert!(
        login.url.starts_with(&idp.base),
        "the login page: {}",
        login.url
    );
    assert!(hidden(&login.body, "csrf").is_some(), "{}", login.body);

    // the login form, once
    let back = browser.sign_in(&idp, &login, "mario.rossi", PASSWORD).await;
    assert!(back.url.starts_with(&pago.url("/callback")), "{}", back.url);
    let home = visit(&browser, &back.url).await;
    assert!(signed_in(&home), "{}", home.body);
    assert!(
        home.body.contains("Mario Rossi"),
        "the user menu: {}",
        home.body
    );
    assert!(home.body.contains(FISCAL_CODE), "{}", home.body);
    assert!(home.body.contains("mario@example.org"), "{}", home.body);

    // the governance portal and Istanze OnLine: no login page, straight in
    for rp in [governance, istanze] {
        let home = visit(&browser, &rp.url("/accedi")).await;
        assert!(
            home.url.starts_with(&rp.base_url),
            "single sign-on without a login page: ended at {}",
            home.url
        );
        assert!(signed_in(&home), "{}", home.body);
        assert!(home.body.contains("Mario Rossi"), "{}", home.body);
        assert!(home.body.contains(FISCAL_CODE), "{}", home.body);
    }
    let istanze_home = visit(&browser, &istanze.url("/")).await;
    assert!(
        istanze_home.body.contains("necessaria l&#39;abilitazione")
            || istanze_home.body.contains("necessaria l'abilitazione"),
        "Istanze OnLine asks for the abilitazione: {}",
        istanze_home.body
    );

    // sign out from the governance portal
    let gov_home = visit(&browser, &governance.url("/")).await;
    let csrf = hidden(&gov_home.body, "csrf").expect("the sign-out form");
    let after = post(
        &browser,
        &governance.url("/esci"),
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert!(
        after.url.starts_with(&governance.url("/")),
        "back at the governance portal: {}",
        after.url
    );
    assert!(signed_out(&after), "{}", after.body);

    // the other two learn it by back-channel logout
    for rp in [pago, istanze] {
        let page = wait_signed_out(&browser, rp).await;
        assert!(
            signed_out(&page),
            "{} still signed in: {}",
            rp.base_url,
            page.body
        );
    }
    // and the IdP session is gone: "Accedi" shows the login page again
    let again = visit(&browser, &pago.url("/accedi")).await;
    assert!(again.url.starts_with(&idp.base), "{}", again.url);
    assert!(hidden(&again.body, "csrf").is_some(), "{}", again.body);

    for rp in rps {
        rp.stop().await;
    }
    idp.stop().await;
}

async fn a_forged_logout_token_ends_no_session(backend: Backend) {
    let listeners = Listeners::bind().await;
    let idp = TestIdp::start(backend, listeners.seeds()).await;
    idp.account_with_fiscal_code(FISCAL_CODE, PASSWORD).await;
    let rps = listeners.serve(&idp).await;
    let pago = &rps[1];
    let browser = Browser::new();
    let login = visit(&browser, &pago.url("/accedi")).await;
    let back = browser.sign_in(&idp, &login, "mario.rossi", PASSWORD).await;
    assert!(signed_in(&visit(&browser, &back.url).await));

    let refused = reqwest::Client::new()
        .post(pago.url("/backchannel-logout"))
        .form(&[("logout_token", "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.")])
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status().as_u16(), 400);
    assert_eq!(
        refused
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().expect("header")),
        Some("no-store")
    );
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        signed_in(&visit(&browser, &pago.url("/")).await),
        "still signed in"
    );

    for rp in rps {
        rp.stop().await;
    }
    idp.stop().await;
}

async fn an_expired_access_token_is_refreshed_until_the_grant_is_revoked(backend: Backend) {
    let listeners = Listeners::bind().await;
    let idp = TestIdp::start_with(backend, listeners.seeds(), |c| {
        c.tokens.access_token_ttl_secs = 1;
    })
    .await;
    idp.account_with_fiscal_code(FISCAL_CODE, PASSWORD).await;
    let rps = listeners.serve(&idp).await;
    let pago = &rps[1];
    let browser = Browser::new();
    let login = visit(&browser, &pago.url("/accedi")).await;
    let back = browser.sign_in(&idp, &login, "mario.rossi", PASSWORD).await;
    assert!(signed_in(&visit(&browser, &back.url).await));
    let first = pago
        .rp
        .sessions()
        .signed_in()
        .pop()
        .expect("a signed-in session");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let page = visit(&browser, &pago.url("/")).await;
    assert!(signed_in(&page), "refreshed: {}", page.body);
    let second = pago
        .rp
        .sessions()
        .signed_in()
        .pop()
        .expect("still signed in");
    assert_ne!(
        second.access_token, first.access_token,
        "a new access token"
    );
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "the refresh token rotated"
    );
    assert_eq!(second.sid, first.sid);

    // the IdP revokes the session's grants: the next refresh fails, the session ends
    let sid = second.sid.expect("the ID token names the IdP session");
    idp.state
        .tokens
        .revoke_session_grants(&sid)
        .await
        .expect("revoke");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let page = visit(&browser, &pago.url("/")).await;
    assert!(signed_out(&page), "{}", page.body);
    assert!(pago.rp.sessions().signed_in().is_empty());

    for rp in rps {
        rp.stop().await;
    }
    idp.stop().await;
}

idp_tests::on_both_backends!(
    one_login_serves_all_three_services_and_one_logout_ends_them,
    a_forged_logout_token_ends_no_session,
    an_expired_access_token_is_refreshed_until_the_grant_is_revoked,
);
