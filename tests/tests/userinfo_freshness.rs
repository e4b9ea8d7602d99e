//! How current `/userinfo` is, now that it serves accounts from memory for
//! `[tokens] userinfo_cache_secs`: a change a person makes through this instance shows
//! at once; a change made behind its back (the admin CLI, another instance: here the
//! store written directly) shows once that window has passed. Both backends.

use std::time::{Duration, Instant};

use idp_tests::flows::{self, CLIENT_ID, REDIRECT};
use idp_tests::harness::{Backend, Browser, TestIdp, hidden, query_param};
use idp_tests::registration;
use serde_json::Value;

const PASSWORD: &str = "Lavagna-Nuova!2026";

/// Signs in for the profile and email claims; returns the access token.
async fn access_token(idp: &TestIdp, browser: &Browser) -> String {
    let (verifier, challenge) = flows::pkce();
    let url = format!(
        "{}?client_id={CLIENT_ID}&redirect_uri={REDIRECT}&response_type=code\
         &scope=openid%20email%20profile&state=s1&code_challenge={challenge}\
         &code_challenge_method=S256",
        idp.url("/authorize"),
    );
    let login = browser.follow(&url, &idp.base).await;
    let back = browser.sign_in(idp, &login, "anna.bianchi", PASSWORD).await;
    let code = query_param(&back.url, "code").expect("a code");
    let tokens = flows::exchange(idp, &code, &verifier).await;
    tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

async fn userinfo(idp: &TestIdp, token: &str) -> Value {
    let r = reqwest::Client::new()
        .get(idp.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("userinfo JSON")
}

async fn a_new_personal_email_shows_at_userinfo_at_once(backend: Backend) {
    // A window far longer than the test: only the invalidation can show the change.
    let idp = TestIdp::start_with(backend, vec![flows::client()], |c| {
        c.tokens.userinfo_cache_secs = 300;
    })
    .await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let token = access_token(&idp, &browser).await;
    assert_eq!(
        userinfo(&idp, &token).await["email"],
        "anna.bianchi@example.org"
    );

    // Area riservata → I tuoi dati personali → the link mailed to the new address.
    let home = browser.follow(&idp.url("/area-riservata"), &idp.base).await;
    let csrf = hidden(&home.body, "csrf").expect("csrf");
    browser
        .submit(
            &idp.url("/area-riservata/email"),
            &[("csrf", &csrf), ("email", "anna.nuova@example.org")],
            &idp.base,
        )
        .await;
    assert_eq!(
        userinfo(&idp, &token).await["email"],
        "anna.bianchi@example.org",
        "unchanged until the link is followed"
    );
    registration::confirm_email_change(&idp, &browser, "anna.nuova@example.org").await;

    let info = userinfo(&idp, &token).await;
    assert_eq!(info["email"], "anna.nuova@example.org", "{info}");
    idp.stop().await;
}

async fn a_change_made_by_another_process_shows_after_the_window(backend: Backend) {
    const WINDOW: Duration = Duration::from_secs(2);
    let idp = TestIdp::start_with(backend, vec![flows::client()], |c| {
        c.tokens.userinfo_cache_secs = WINDOW.as_secs();
    })
    .await;
    let anna = idp.account("Anna", "Bianchi", PASSWORD).await;
    let token = access_token(&idp, &Browser::new()).await;
    let first_read = Instant::now();
    let info = userinfo(&idp, &token).await;
    assert!(info.get("roles").is_none(), "{info}");

    // What `idp-server accounts grant-role` does, from outside this instance.
    idp.grant_role(&anna, "school_operator").await;
    let info = userinfo(&idp, &token).await;
    if first_read.elapsed() < WINDOW {
        assert!(info.get("roles").is_none(), "served from memory: {info}");
    }

    let deadline = first_read + WINDOW + Duration::from_secs(1);
    loop {
        let info = userinfo(&idp, &token).await;
        if info["roles"] == serde_json::json!(["school_operator"]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the role did not show within the window: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    idp.stop().await;
}

idp_tests::on_both_backends!(
    a_new_personal_email_shows_at_userinfo_at_once,
    a_change_made_by_another_process_shows_after_the_window,
);
