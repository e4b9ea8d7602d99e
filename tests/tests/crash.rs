//! SIGKILL under load: a real `idp-server serve` process on PostgreSQL and Redis takes
//! concurrent registrations (Registrati up to the acknowledged confirmation) and
//! enablement PUTs from a client; it is killed mid-load and started again. Everything
//! that was acknowledged to a user or client is in PostgreSQL afterwards: each
//! confirmed account, each submitted registration (its link still confirms), each
//! enablement status, and the credentials mail of each confirmed account (queued with
//! the account, delivered by the restarted server if the killed one had not).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idp_core::account::{AccountKind, Email};
use idp_core::directory::{Directory, NewAccount};
use idp_core::fiscal_code::FiscalCode;
use idp_core::password::PasswordHasher;
use idp_core::security_check;
use idp_core::store::sql::SqlStore;
use idp_core::store::{OutboxStore, Store};
use idp_tests::harness::hidden;
use idp_tests::process::IdpProcess;
use idp_tests::services::free_port;
use idp_tests::{TestDatabase, redis_url, unique_suffix};
use idp_tests::{flows, registration};

const SECRET: &str = "test-secret-of-the-relying-party-0123456789";
const SERVICE: &str = "istanze-online";
const REGISTRANTS: u32 = 4;
const ENABLERS: usize = 4;

fn config_toml(port: u16, database: &str, prefix: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
trust_forwarded_for = true

[database]
url = "{database}"
max_connections = 8

[cache]
kind = "redis"
redis_url = "{redis}"
prefix = "{prefix}"

[mail]
poll_interval_secs = 1
# A mail claimed by the killed process is taken over after this.
lease_secs = 3

[[clients]]
id = "{SERVICE}"
name = "Istanze OnLine"
secret = "{SECRET}"
redirect_uris = ["http://127.0.0.1:9/callback"]
service = "{SERVICE}"
enablement_uri = "http://127.0.0.1:9/abilitazione"
"#,
        redis = redis_url(),
    )
}

/// What a registrant was told: the fiscal codes whose submission (step 4) and whose
/// confirmation ("Registrazione completata") were acknowledged.
#[derive(Default)]
struct Registered {
    submitted: Vec<(String, String)>,
    confirmed: Vec<String>,
}

fn person_browser(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_str(ip).expect("ip header"),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn get_text(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("GET {url}: {}", r.status()));
    }
    r.text().await.map_err(|e| e.to_string())
}

async fn post_text(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<String, String> {
    let r = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("POST {url}: {}", r.status()));
    }
    r.text().await.map_err(|e| e.to_string())
}

fn field(body: &str, name: &str) -> Result<String, String> {
    hidden(body, name).ok_or_else(|| format!("no {name} field"))
}

/// One person's Registrati, up to the confirmation; records each acknowledged stage.
/// Stops at the first failure (the server was killed).
async fn register(
    base: &str,
    store: &SqlStore,
    n: u32,
    done: &tokio::sync::Mutex<Registered>,
    confirmed: &AtomicUsize,
) -> Result<(), String> {
    let fiscal_code = flows::fiscal_code(n);
    let email = format!("persona{n}@example.org");
    let http = person_browser(&format!("10.1.{}.{}", n / 250, n % 250 + 1));
    let url = format!("{base}/registrati");
    let one = get_text(&http, &url).await?;
    let question = one
        .split("Quanto fa ")
        .nth(1)
        .and_then(|s| s.split('?').next())
        .ok_or("no security question")?;
    let answer = security_check::solve(&format!("Quanto fa {question}?"))
        .ok_or("unsolvable")?
        .to_string();
    let two = post_text(
        &http,
        &url,
        &[
            ("csrf", &field(&one, "csrf")?),
            ("check_id", &field(&one, "check_id")?),
            ("fiscal_code", &fiscal_code),
            ("check_answer", &answer),
        ],
    )
    .await?;
    let three = post_text(
        &http,
        &url,
        &[
            ("csrf", &field(&two, "csrf")?),
            ("given_name", "Mario"),
            ("family_name", "Rossi"),
            ("birth_date", "1985-12-10"),
            ("birth_place", "Roma"),
            ("sex", "M"),
            ("email", &email),
            ("email_repeat", &email),
            ("privacy", "on"),
            ("data_processing", "on"),
        ],
    )
    .await?;
    let four = post_text(
        &http,
        &url,
        &[("csrf", &field(&three, "csrf")?), ("action", "conferma")],
    )
    .await?;
    if !four.contains("Passaggio 4 di 4") {
        return Err(format!("step 4 not shown for {fiscal_code}"));
    }
    done.lock()
        .await
        .submitted
        .push((fiscal_code.clone(), email.clone()));
    let link = confirmation_link(store, &email).await?;
    let page = get_text(&http, &link).await?;
    let confirm = post_text(
        &http,
        &format!("{base}/registrati/conferma"),
        &[
            ("csrf", &field(&page, "csrf")?),
            ("token", &field(&page, "token")?),
        ],
    )
    .await?;
    if !confirm.contains("Registrazione completata") {
        return Err(format!("confirmation refused for {fiscal_code}"));
    }
    done.lock().await.confirmed.push(fiscal_code);
    confirmed.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The confirmation link mailed to `email` (the outbox is in PostgreSQL).
async fn confirmation_link(store: &SqlStore, email: &str) -> Result<String, String> {
    let body = delivered(store, email, "Conferma la registrazione").await?;
    Ok(registration::link_in(&body))
}

/// The body of a mail delivered to the outbox, waiting for the background sender.
async fn delivered(store: &SqlStore, email: &str, subject: &str) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let found = store
            .list_mail(1000)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|m| m.to == email && m.subject == subject);
        if let Some(mail) = found {
            return Ok(mail.body_text);
        }
        if start.elapsed() > Duration::from_secs(15) {
            return Err(format!("no mail {subject:?} to {email}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client setting one account's enablement again and again; returns the last
/// acknowledged status and the one in flight when the server died.
async fn enable(
    base: String,
    sub: String,
    acked: Arc<AtomicUsize>,
) -> (Option<&'static str>, Option<&'static str>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let mut last = None;
    for i in 0.. {
        let status = ["active", "pending", "revoked"][i % 3];
        let r = http
            .put(format!("{base}/enablements/{SERVICE}/{sub}"))
            .basic_auth(SERVICE, Some(SECRET))
            .json(&serde_json::json!({ "status": status }))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => {
                last = Some(status);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            _ => return (last, Some(status)),
        }
    }
    unreachable!("the loop ends when the server dies")
}

async fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_that_was_acknowledged() {
    let database = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("idp-crash-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.join("idp.toml");
    let prefix = format!("idp-test-{}:", unique_suffix());
    std::fs::write(&config, config_toml(port, &database.url, &prefix)).expect("config");
    let log = dir.join("idp.log");

    let server = IdpProcess::start(&config, &log, &base).await;
    let sql = SqlStore::connect(&database.url, 4).await.expect("connect");
    let store: Arc<dyn Store> = Arc::new(sql.clone());
    let passwords = idp_server::config::PasswordConfig::default();
    let directory = Directory::new(
        store.clone(),
        Arc::new(PasswordHasher::new(passwords.hash).expect("hasher")),
        passwords.policy,
    );
    let mut subs = Vec::new();
    for i in 0..ENABLERS {
        let account = directory
            .create_account(NewAccount {
                kind: AccountKind::Registered,
                fiscal_code: None,
                given_name: "Paola".into(),
                family_name: format!("Verdi{}", ["a", "b", "c", "d", "e", "f"][i % 6]),
                birth_date: None,
                birth_place: None,
                sex: None,
                personal_email: Some(Email::parse(&format!("p{i}@example.org")).expect("email")),
                institutional_email: None,
                username: None,
            })
            .await
            .expect("account");
        subs.push(account.id.as_str().to_string());
    }

    // The load: registrants one after the other per task, enablers in a loop.
    let registered = Arc::new(tokio::sync::Mutex::new(Registered::default()));
    let confirmed = Arc::new(AtomicUsize::new(0));
    let enablements = Arc::new(AtomicUsize::new(0));
    let mut registrants = Vec::new();
    for task in 0..REGISTRANTS {
        let (base, sql, registered, confirmed) = (
            base.clone(),
            sql.clone(),
            registered.clone(),
            confirmed.clone(),
        );
        registrants.push(tokio::spawn(async move {
            for k in 0.. {
                let n = task * 200 + k;
                if let Err(e) = register(&base, &sql, n, &registered, &confirmed).await {
                    return e;
                }
            }
            unreachable!("ends when the server dies")
        }));
    }
    let enablers: Vec<_> = subs
        .iter()
        .map(|sub| tokio::spawn(enable(base.clone(), sub.clone(), enablements.clone())))
        .collect();

    wait_for("load acknowledged", Duration::from_secs(120), || {
        confirmed.load(Ordering::SeqCst) >= 3 && enablements.load(Ordering::SeqCst) >= 20
    })
    .await;
    server.kill().await;
    let mut last_status = HashMap::new();
    for (sub, task) in subs.iter().zip(enablers) {
        last_status.insert(sub.clone(), task.await.expect("enabler task"));
    }
    for task in registrants {
        let why = task.await.expect("registrant task");
        assert!(!why.is_empty());
    }
    let registered = registered.lock().await;
    assert!(registered.confirmed.len() >= 3);

    // Restart: the acknowledged work is all there.
    let server = IdpProcess::start(&config, &log, &base).await;
    for fiscal_code in &registered.confirmed {
        let fc = FiscalCode::parse(fiscal_code).expect("fiscal code");
        let account = store
            .account_by_fiscal_code(&fc)
            .await
            .expect("lookup")
            .unwrap_or_else(|| panic!("confirmed account {fiscal_code} lost"));
        assert!(account.password.is_some(), "{fiscal_code} has its password");
        let (_, email) = registered
            .submitted
            .iter()
            .find(|(f, _)| f == fiscal_code)
            .expect("submitted before confirmed");
        let body = delivered(&sql, email, "Le tue credenziali di accesso")
            .await
            .unwrap_or_else(|e| panic!("credentials of {fiscal_code} lost: {e}"));
        assert!(body.contains(account.username.as_str()), "{body}");
    }
    // A submission acknowledged but not confirmed before the kill: its link was mailed
    // and still confirms on the restarted server.
    let mut confirmed_now = 0;
    for (fiscal_code, email) in &registered.submitted {
        if registered.confirmed.contains(fiscal_code) {
            continue;
        }
        let fc = FiscalCode::parse(fiscal_code).expect("fiscal code");
        if store
            .account_by_fiscal_code(&fc)
            .await
            .expect("lookup")
            .is_some()
        {
            // Confirmed by a request the kill cut before its answer: allowed.
            continue;
        }
        let link = confirmation_link(&sql, email)
            .await
            .unwrap_or_else(|e| panic!("acknowledged submission {fiscal_code} lost: {e}"));
        let browser = idp_tests::harness::Browser::new();
        let fields = flows::open_confirmation(&browser, &link, &base).await;
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let done = browser
            .submit(&format!("{base}/registrati/conferma"), &fields, &base)
            .await;
        assert!(
            done.body.contains("Registrazione completata"),
            "{fiscal_code}: {}",
            done.body
        );
        confirmed_now += 1;
    }
    for (sub, (last, in_flight)) in &last_status {
        let stored = store
            .enablement(sub, SERVICE)
            .await
            .expect("lookup")
            .map(|e| e.status.as_str());
        match last {
            Some(_) => assert!(
                stored == *last || stored == *in_flight,
                "{sub}: stored {stored:?}, acknowledged {last:?}, in flight {in_flight:?}"
            ),
            None => assert!(
                stored.is_none() || stored == *in_flight,
                "{sub}: {stored:?}"
            ),
        }
    }
    eprintln!(
        "acknowledged before the kill: {} submissions, {} confirmations, {} enablement PUTs; \
         {confirmed_now} submissions confirmed after the restart",
        registered.submitted.len(),
        registered.confirmed.len(),
        enablements.load(Ordering::SeqCst)
    );

    server.stop().await;
    sql.close().await;
    database.drop_now().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Ok(cache) = idp_core::cache::RedisCache::connect(&redis_url(), &prefix).await {
        let _ = cache.clear_namespace().await;
    }
}
