//! Mail is never lost to a failing mail server: it is queued with the change it
//! announces and delivered by the background sender, which retries. The mail server's
//! side is a test double that refuses the first deliveries (`SmtpRefusals`); the queue,
//! the sender and the pages are the real ones. Run on both backends.

use std::time::{Duration, Instant};

use idp_core::audit::{AuditFilter, AuditKind};
use idp_server::config::Config;
use idp_tests::delivery::SmtpRefusals;
use idp_tests::flows;
use idp_tests::harness::{Backend, Browser, Page, TestIdp, hidden};
use idp_tests::registration::{self, outbox, text_of};

const PASSWORD: &str = "Lavagna-Nuova!2026";

/// Retries a second apart, so the test sees several attempts quickly.
fn fast_retries(max_attempts: u32) -> impl FnOnce(&mut Config) {
    move |config| {
        config.mail.max_attempts = max_attempts;
        config.mail.retry_base_secs = 1;
        config.mail.retry_max_secs = 1;
        config.mail.poll_interval_secs = 1;
    }
}

/// A mail's body once the sender delivered it; retries take seconds, so this waits
/// longer than `registration::mail`.
async fn delivered(idp: &TestIdp, to: &str, subject: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(m) = outbox(idp)
            .await
            .into_iter()
            .find(|m| m["to"] == to && m["subject"] == subject)
        {
            return m["body_text"].as_str().expect("body").to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no mail {subject:?} to {to}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics(idp: &TestIdp) -> String {
    reqwest::get(idp.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

async fn reset_request(idp: &TestIdp, browser: &Browser, username: &str) -> Page {
    let page = browser
        .follow(&idp.url("/password-dimenticata"), &idp.base)
        .await;
    browser
        .submit(
            &idp.url("/password-dimenticata"),
            &[
                ("csrf", &hidden(&page.body, "csrf").expect("csrf")),
                ("username", username),
            ],
            &idp.base,
        )
        .await
}

async fn a_registration_confirmed_while_the_mail_server_fails_succeeds_and_the_credentials_arrive_later(
    backend: Backend,
) {
    let smtp = SmtpRefusals::default();
    let idp =
        TestIdp::start_with_delivery(backend, vec![], fast_retries(8), |m| smtp.delivery(m)).await;
    let browser = Browser::new();
    let email = "mario.rossi@example.org";
    let summary = flows::registration_summary(
        &idp,
        &browser,
        &flows::fiscal_code(7),
        "Mario",
        "Rossi",
        email,
    )
    .await;
    // The mail server refuses the confirmation link twice: the page still says it is
    // on its way, and it comes.
    smtp.refuse_next(2);
    let four = flows::submit_summary(&idp, &browser, &summary).await;
    assert_eq!(four.status, 200, "{}", four.body);
    assert!(text_of(&four).contains("Passaggio 4 di 4"), "{}", four.body);
    let link = registration::link_in(&delivered(&idp, email, "Conferma la registrazione").await);
    assert_eq!(smtp.made(), 2, "both refusals were used");

    // Now the credentials: refused three times while the person is told they are sent.
    smtp.refuse_next(3);
    let fields = flows::open_confirmation(&browser, &link, &idp.base).await;
    let done = flows::post_confirmation(&idp, &browser, &fields).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        text_of(&done).contains("Registrazione completata"),
        "{}",
        done.body
    );
    assert!(
        outbox(&idp)
            .await
            .iter()
            .all(|m| m["subject"] != "Le tue credenziali di accesso"),
        "not delivered while the mail server refuses"
    );
    let body = delivered(&idp, email, "Le tue credenziali di accesso").await;
    assert_eq!(smtp.made(), 5);
    let username = registration::line_value(&body, "Username:");
    let temporary = registration::line_value(&body, "Password provvisoria:");
    assert_eq!(username, "mario.rossi");
    // The credentials work: the temporary password signs in (and must be changed).
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    let signed = browser.sign_in(&idp, &login, &username, &temporary).await;
    assert!(signed.url.ends_with("/cambio-password"), "{}", signed.url);

    // Every attempt is counted; the queue is empty again.
    let text = metrics(&idp).await;
    assert!(
        text.contains(r#"idp_emails_total{outcome="failed"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"idp_emails_total{outcome="sent"} 2"#),
        "{text}"
    );
    assert_eq!(idp.state.store.count_queued_mail().await.expect("count"), 0);
    idp.stop().await;
}

async fn a_mail_the_server_keeps_refusing_is_given_up_audited_and_its_body_dropped(
    backend: Backend,
) {
    let smtp = SmtpRefusals::default();
    let idp =
        TestIdp::start_with_delivery(backend, vec![], fast_retries(3), |m| smtp.delivery(m)).await;
    idp.account("Anna", "Bianchi", PASSWORD).await;
    smtp.refuse_next(1000);
    let browser = Browser::new();
    let page = reset_request(&idp, &browser, "anna.bianchi").await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Three attempts a second apart, then given up.
    let start = Instant::now();
    let event = loop {
        let events = idp
            .state
            .store
            .audit_events(&AuditFilter {
                kind: Some(AuditKind::MailUndeliverable),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("audit");
        if let Some(e) = events.into_iter().next() {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not given up in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(smtp.made(), 3);
    assert_eq!(event.detail["attempts"], 3, "{:?}", event.detail);
    assert_eq!(event.detail["subject"], "Reimposta la password");
    let detail = event.detail.to_string();
    assert!(!detail.contains("token="), "no link in the audit: {detail}");
    assert!(
        metrics(&idp)
            .await
            .contains(r#"idp_emails_total{outcome="abandoned"} 1"#)
    );
    assert_eq!(idp.state.store.count_queued_mail().await.expect("count"), 0);
    // What is kept of it for the operators has no body (the link is a secret).
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body_text FROM mail_queue")
        .fetch_all(idp.state.sql.pool())
        .await
        .expect("read the queue");
    assert_eq!(bodies, vec![String::new()]);
    assert!(outbox(&idp).await.is_empty());
    idp.stop().await;
}

/// Two instances on one PostgreSQL database both deliver from the queue, and no mail is
/// delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_queue_and_deliver_each_mail_once() {
    let a = TestIdp::start(Backend::Production, vec![]).await;
    let b = TestIdp::start_sharing(&a, vec![], |_| {}).await;
    let to = idp_core::account::Email::parse("anna@example.org").expect("email");
    let at = idp_core::directory::now();
    for i in 0..40 {
        let mail = idp_core::mail::OutgoingMail {
            to: to.clone(),
            subject: format!("Messaggio {i}"),
            body_text: format!("Testo {i}"),
            attachments: Vec::new(),
        };
        a.state
            .store
            .enqueue_mail(&mail, at)
            .await
            .expect("enqueue");
    }
    a.state.wake_mail_sender();
    b.state.wake_mail_sender();
    let start = Instant::now();
    let delivered = loop {
        let mails = a.state.store.list_mail(1000).await.expect("outbox");
        if mails.len() >= 40 {
            break mails;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} of 40 delivered",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut subjects: Vec<_> = delivered.iter().map(|m| m.subject.clone()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 40, "a mail was delivered twice");
    assert_eq!(delivered.len(), 40, "a mail was delivered twice");
    assert_eq!(a.state.store.count_queued_mail().await.expect("count"), 0);
    // Each instance counts what it delivered itself.
    let mut sent = 0;
    for idp in [&a, &b] {
        let text = metrics(idp).await;
        sent += text
            .lines()
            .find_map(|l| l.strip_prefix(r#"idp_emails_total{outcome="sent"} "#))
            .map_or(0, |n| n.trim().parse::<u64>().expect("a count"));
    }
    assert_eq!(sent, 40);
    b.stop().await;
    a.stop().await;
}

macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {
        mod embedded {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $body() { super::$body(super::Backend::Embedded).await; } )*
        }
        mod production {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $body() { super::$body(super::Backend::Production).await; } )*
        }
    };
}

on_both_backends!(
    a_registration_confirmed_while_the_mail_server_fails_succeeds_and_the_credentials_arrive_later,
    a_mail_the_server_keeps_refusing_is_given_up_audited_and_its_body_dropped,
);
