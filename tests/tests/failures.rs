//! Failure behaviour on PostgreSQL and Redis that the test itself starts and stops
//! (private processes on free ports, see `idp_tests::services`): while one is down,
//! /readyz answers 503, pages a 503 Italian page, APIs a 503 JSON error, quickly and
//! without a panic; when it is back the same instance serves again by itself. A
//! registration step that fails on the database leaves no account behind.

use std::time::{Duration, Instant};

use idp_tests::flows;
use idp_tests::harness::{Browser, Page, Stores, TestIdp, query_param};
use idp_tests::registration::{self, text_of};
use idp_tests::services::{PrivatePostgres, PrivateRedis, StallingProxy};
use idp_tests::{TestDatabase, redis_url, unique_suffix};

const PASSWORD: &str = "Lavagna-Nuova!2026";
const SERVICE: &str = "istanze-online";
/// A request to an instance whose store is down must fail within this (the pool's
/// acquire timeout and Redis's connection timeout are shorter).
const FAIL_FAST: Duration = Duration::from_secs(8);

fn assert_unavailable_page(page: &Page, what: &str) {
    assert_eq!(page.status, 503, "{what}: {}", page.body);
    let t = text_of(page);
    assert!(
        t.contains("Servizio momentaneamente non disponibile") && t.contains("Riprova"),
        "{what}: {}",
        page.body
    );
    assert!(t.contains("lang=\"it\""), "{what}: an Italian page");
}

async fn readyz(idp: &TestIdp) -> (u16, serde_json::Value) {
    let r = reqwest::get(idp.url("/readyz")).await.expect("readyz");
    (r.status().as_u16(), r.json().await.expect("readyz JSON"))
}

/// Waits until /readyz says 200 (the instance reconnected by itself).
async fn wait_ready(idp: &TestIdp) {
    let start = Instant::now();
    loop {
        let (status, body) = readyz(idp).await;
        if status == 200 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET /userinfo with a bearer token: status and JSON body.
async fn userinfo(idp: &TestIdp, access_token: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(idp.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo");
    let status = r.status().as_u16();
    (status, r.json().await.expect("userinfo answers JSON"))
}

/// Anna signs in at `idp`: her browser, and an access token that userinfo accepts.
async fn anna_signed_in(idp: &TestIdp) -> (Browser, String) {
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let (code, verifier) = flows::sign_in_for_code(idp, &browser, "anna.bianchi", PASSWORD).await;
    let tokens = flows::exchange(idp, &code, &verifier).await;
    let access = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    assert_eq!(userinfo(idp, &access).await.0, 200);
    (browser, access)
}

fn assert_unavailable_json(status: u16, body: &serde_json::Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(body["error_description"].is_string(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_the_instance_recovers_when_it_returns() {
    let mut redis = PrivateRedis::start();
    let database = TestDatabase::create().await;
    let stores = Stores {
        database_url: database.url.clone(),
        redis_url: redis.url(),
        prefix: format!("idp-test-{}:", unique_suffix()),
    };
    let idp = TestIdp::start_on(stores, vec![flows::client()], |_| {}).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let (code, verifier) = flows::sign_in_for_code(&idp, &browser, "anna.bianchi", PASSWORD).await;
    let tokens = flows::exchange(&idp, &code, &verifier).await;
    let access = tokens["access_token"].as_str().expect("access token");
    // A code issued before the outage (from the session), exchanged during it.
    let (back, verifier) = flows::authorize_in_session(&idp, &browser, "").await;
    let code = query_param(&back.url, "code").expect("a code from the session");
    let other = Browser::new();
    let login_page = other.follow(&idp.url("/login"), &idp.base).await;

    redis.stop();

    let (status, body) = readyz(&idp).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["cache"], "ok", "{body}");
    assert_eq!(body["database"], "ok", "{body}");

    let started = Instant::now();
    let page = Browser::new()
        .follow(&idp.url("/registrati"), &idp.base)
        .await;
    assert_unavailable_page(&page, "GET /registrati");
    let page = other
        .sign_in(&idp, &login_page, "anna.bianchi", PASSWORD)
        .await;
    assert_unavailable_page(&page, "POST /login");
    let (status, body) = flows::token_request(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", flows::REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_unavailable_json(status, &body, "POST /token");
    assert!(
        started.elapsed() < FAIL_FAST * 3,
        "requests failed slowly: {:?}",
        started.elapsed()
    );
    let (status, body) = userinfo(&idp, access).await;
    assert_unavailable_json(status, &body, "GET /userinfo");

    redis.resume();
    wait_ready(&idp).await;
    // Redis kept nothing on disk: sessions and codes are gone, a new sign-in works.
    let browser = Browser::new();
    let (code, verifier) = flows::sign_in_for_code(&idp, &browser, "anna.bianchi", PASSWORD).await;
    let tokens = flows::exchange(&idp, &code, &verifier).await;
    assert!(tokens["id_token"].is_string());

    idp.stop().await;
    database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_503_leaves_no_half_account_and_recovers() {
    let mut postgres = PrivatePostgres::start();
    let stores = Stores {
        database_url: postgres.url(),
        redis_url: redis_url(),
        prefix: format!("idp-test-{}:", unique_suffix()),
    };
    let mut service = flows::client();
    service.id = idp_core::client::ClientId::parse(SERVICE).expect("client id");
    service.service = Some(SERVICE.into());
    service.enablement_uri = Some("http://127.0.0.1:9/abilitazione".into());
    let idp = TestIdp::start_on(stores, vec![flows::client(), service], |_| {}).await;
    let anna = idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let (code, verifier) = flows::sign_in_for_code(&idp, &browser, "anna.bianchi", PASSWORD).await;
    let tokens = flows::exchange(&idp, &code, &verifier).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let enablement = |status: &'static str| {
        let url = idp.url(&format!("/enablements/{SERVICE}/{}", anna.id.as_str()));
        async move {
            let r = reqwest::Client::new()
                .put(url)
                .basic_auth(SERVICE, Some(flows::SECRET))
                .json(&serde_json::json!({ "status": status }))
                .send()
                .await
                .expect("enablement PUT");
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.expect("a JSON answer"),
            )
        }
    };
    assert_eq!(enablement("pending").await.0, 200);
    let login_page = browser.follow(&idp.url("/login"), &idp.base).await;

    // Registrati up to the summary, then the database goes down.
    let fiscal_code = flows::fiscal_code(1);
    let email = "mario.rossi@example.org";
    let registering = Browser::new();
    let summary =
        flows::registration_summary(&idp, &registering, &fiscal_code, "Mario", "Rossi", email)
            .await;

    postgres.stop();

    let (status, body) = readyz(&idp).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["database"], "ok", "{body}");

    let started = Instant::now();
    let page = flows::submit_summary(&idp, &registering, &summary).await;
    assert_unavailable_page(&page, "Registrati, conferma");
    assert!(started.elapsed() < FAIL_FAST, "{:?}", started.elapsed());
    let page = browser
        .sign_in(&idp, &login_page, "anna.bianchi", PASSWORD)
        .await;
    assert_unavailable_page(&page, "POST /login");
    let (status, body) = flows::token_request(
        &idp,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_unavailable_json(status, &body, "POST /token (refresh)");
    let (status, body) = userinfo(&idp, access).await;
    assert_unavailable_json(status, &body, "GET /userinfo");
    let (status, body) = enablement("active").await;
    assert_unavailable_json(status, &body, "PUT /enablements");
    assert!(
        started.elapsed() < FAIL_FAST * 5,
        "requests failed slowly: {:?}",
        started.elapsed()
    );

    postgres.resume();
    wait_ready(&idp).await;
    let fc = idp_core::fiscal_code::FiscalCode::parse(&fiscal_code).expect("fiscal code");
    assert!(
        idp.state
            .store
            .account_by_fiscal_code(&fc)
            .await
            .expect("lookup")
            .is_none(),
        "no account from a failed step"
    );
    // The same summary can be confirmed now.
    let four = flows::submit_summary(&idp, &registering, &summary).await;
    assert!(text_of(&four).contains("Passaggio 4 di 4"), "{}", four.body);
    let link =
        registration::link_in(&registration::mail(&idp, email, "Conferma la registrazione").await);
    let fields = flows::open_confirmation(&registering, &link, &idp.base).await;

    // The confirmation fails while the database is down, and leaves nothing.
    postgres.stop();
    let page = flows::post_confirmation(&idp, &registering, &fields).await;
    assert_unavailable_page(&page, "Registrati, link di conferma");
    postgres.resume();
    wait_ready(&idp).await;
    assert!(
        idp.state
            .store
            .account_by_fiscal_code(&fc)
            .await
            .expect("lookup")
            .is_none(),
        "no account from a failed confirmation"
    );
    let done = flows::post_confirmation(&idp, &registering, &fields).await;
    assert!(
        text_of(&done).contains("Registrazione completata"),
        "{}",
        done.body
    );
    let account = idp
        .state
        .store
        .account_by_fiscal_code(&fc)
        .await
        .expect("lookup")
        .expect("the account exists once confirmed");
    assert!(account.password.is_some(), "with its temporary password");

    // The instance serves sign-ins and tokens again without a restart.
    let (status, body) = flows::token_request(
        &idp,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (code, verifier) =
        flows::sign_in_for_code(&idp, &Browser::new(), "anna.bianchi", PASSWORD).await;
    flows::exchange(&idp, &code, &verifier).await;
    assert_eq!(enablement("active").await.0, 200);

    idp.stop().await;
    drop(postgres);
}

/// A database that stops answering without closing its connections (a partition, a
/// frozen server) holds no request past `server.request_timeout_secs`: the API answers
/// the JSON 503, a page the Italian 503 page; when traffic flows again the instance
/// serves again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_is_bounded_by_the_request_deadline() {
    let database = TestDatabase::create().await;
    let upstream = url::Url::parse(&database.url)
        .expect("database URL")
        .port()
        .unwrap_or(5432);
    let proxy = StallingProxy::start(upstream);
    let mut through_proxy = url::Url::parse(&database.url).expect("database URL");
    through_proxy
        .set_port(Some(proxy.port))
        .expect("a port in the URL");
    let stores = Stores {
        database_url: through_proxy.to_string(),
        redis_url: redis_url(),
        prefix: format!("idp-test-{}:", unique_suffix()),
    };
    let idp = TestIdp::start_on(stores, vec![flows::client()], |c| {
        c.server.request_timeout_secs = 2;
        // Userinfo must reach the database, not answer from its copy of the account.
        c.tokens.userinfo_cache_secs = 0;
    })
    .await;
    let (browser, access) = anna_signed_in(&idp).await;
    let access = access.as_str();

    proxy.stall();

    let started = Instant::now();
    let (status, body) = userinfo(&idp, access).await;
    assert_unavailable_json(status, &body, "GET /userinfo on a stalled database");
    let page = browser
        .http
        .get(idp.url("/area-riservata"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("area riservata");
    let page = Page {
        url: idp.url("/area-riservata"),
        status: page.status().as_u16(),
        body: page.text().await.expect("body"),
    };
    assert_unavailable_page(&page, "GET /area-riservata on a stalled database");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "two requests of 2 s each took {:?}",
        started.elapsed()
    );

    proxy.resume();
    wait_ready(&idp).await;
    let (status, body) = userinfo(&idp, access).await;
    assert_eq!(status, 200, "{body}");
    idp.stop().await;
    database.drop_now().await;
}

/// A Redis that stops answering without closing its connections holds a request no
/// longer than `cache.timeout_ms`, far inside the request deadline: the API answers the
/// JSON 503 at once, and serves again by itself when Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_bounded_by_the_cache_timeout() {
    let database = TestDatabase::create().await;
    let upstream = url::Url::parse(&redis_url())
        .expect("Redis URL")
        .port()
        .unwrap_or(6379);
    let proxy = StallingProxy::start(upstream);
    let stores = Stores {
        database_url: database.url.clone(),
        redis_url: format!("redis://127.0.0.1:{}", proxy.port),
        prefix: format!("idp-test-{}:", unique_suffix()),
    };
    let idp = TestIdp::start_on(stores, vec![flows::client()], |c| {
        c.server.request_timeout_secs = 30;
        c.cache.timeout_ms = 300;
    })
    .await;
    let (_, access) = anna_signed_in(&idp).await;
    let access = access.as_str();

    proxy.stall();

    // Userinfo checks the token's revocation marks on every request: from memory while
    // the instance listens for new marks (it found them absent above), from Redis once
    // its listener's ping (every second) has gone unanswered for the cache timeout.
    // Each request is bounded by the cache timeout, not by the 30 s deadline.
    let stalled = Instant::now();
    loop {
        let started = Instant::now();
        let (status, body) = userinfo(&idp, access).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a 300 ms cache timeout took {:?} (the request deadline is 30 s)",
            started.elapsed()
        );
        if status != 200 {
            assert_unavailable_json(status, &body, "GET /userinfo on a stalled Redis");
            break;
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(3),
            "still trusting the remembered marks {:?} into the stall",
            stalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    proxy.resume();
    let start = Instant::now();
    loop {
        let (status, body) = userinfo(&idp, access).await;
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "userinfo did not recover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    idp.stop().await;
    database.drop_now().await;
}
