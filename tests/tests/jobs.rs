//! The background jobs on both backends: each deletes only what is due, a second run in
//! the same period (from this or another instance sharing the cache) is skipped, and
//! the jobs stop when asked.

use std::time::Duration;

use idp_core::audit::{AuditEvent, AuditFilter, AuditKind};
use idp_core::directory::now;
use idp_core::grant::Grant;
use idp_core::link::{EmailLink, LinkPurpose};
use idp_core::mail::OutgoingMail;
use idp_core::secret::TokenHash;
use idp_server::jobs::{self, audit_retention, grants, links, mail_retention};
use idp_tests::delivery::SmtpRefusals;
use idp_tests::harness::{Backend, TestIdp};

fn grant(id: &str, account_id: &str, expires_at: i64, revoked_at: Option<i64>) -> Grant {
    Grant {
        id: id.into(),
        account_id: account_id.into(),
        client_id: "pago-in-rete".into(),
        scope: "openid".into(),
        sid: None,
        auth_time: 0,
        acr: idp_core::oidc::ACR_PASSWORD.into(),
        amr: vec!["pwd".into()],
        created_at: 0,
        expires_at,
        revoked_at,
    }
}

async fn jobs_delete_what_is_due_once_per_period(backend: Backend) {
    let idp = TestIdp::start_with(backend, vec![], |c| c.audit.retention_days = 30).await;
    let account = idp.account("Anna", "Bianchi", "Scuola-2026!Test").await;
    let store = &idp.state.store;
    let t = now();
    let old = t - grants::GRACE_SECS - 60;
    for g in [
        grant("expired-long-ago", account.id.as_str(), old, None),
        grant("revoked-long-ago", account.id.as_str(), t + 3600, Some(old)),
        grant("revoked-just-now", account.id.as_str(), t + 3600, Some(t)),
        grant("active", account.id.as_str(), t + 3600, None),
    ] {
        store.insert_grant(&g).await.expect("grant");
    }
    for at in [t - 31 * 86_400, t - 29 * 86_400] {
        store
            .insert_audit(&AuditEvent {
                at,
                ..AuditEvent::new(AuditKind::LoginSuccess)
            })
            .await
            .expect("audit");
    }

    // Links of every purpose: gone once expired or used longer than the grace ago.
    let long_ago = t - links::GRACE_SECS - 60;
    let cases = [
        (
            "registration-expired-long-ago",
            LinkPurpose::Registration,
            long_ago,
            None,
            false,
        ),
        (
            "reset-used-long-ago",
            LinkPurpose::PasswordReset,
            t + 3600,
            Some(long_ago),
            false,
        ),
        (
            "email-expired-long-ago",
            LinkPurpose::EmailChange,
            long_ago,
            Some(long_ago - 10),
            false,
        ),
        (
            "registration-expired-just-now",
            LinkPurpose::Registration,
            t - 60,
            None,
            true,
        ),
        (
            "reset-used-just-now",
            LinkPurpose::PasswordReset,
            t + 3600,
            Some(t - 60),
            true,
        ),
        (
            "email-valid",
            LinkPurpose::EmailChange,
            t + 3600,
            None,
            true,
        ),
    ];
    for (token, purpose, expires_at, used_at, _) in &cases {
        store
            .insert_link(
                &EmailLink {
                    token_hash: TokenHash::of(token),
                    purpose: *purpose,
                    account_id: Some(account.id.as_str().to_string()),
                    payload: "{}".into(),
                    created_at: long_ago - 86_400,
                    expires_at: *expires_at,
                    used_at: *used_at,
                },
                None,
            )
            .await
            .expect("link");
    }
    assert_eq!(jobs::run_once(&idp.state, &links::JOB).await, Some(3));
    for (token, purpose, _, _, kept) in &cases {
        assert_eq!(
            store
                .find_link(&TokenHash::of(token), *purpose)
                .await
                .expect("read")
                .is_some(),
            *kept,
            "{token}"
        );
    }

    assert_eq!(jobs::run_once(&idp.state, &grants::JOB).await, Some(2));
    for (id, kept) in [
        ("expired-long-ago", false),
        ("revoked-long-ago", false),
        ("revoked-just-now", true),
        ("active", true),
    ] {
        assert_eq!(
            store.grant_by_id(id).await.expect("read").is_some(),
            kept,
            "{id}"
        );
    }
    assert_eq!(
        jobs::run_once(&idp.state, &audit_retention::JOB).await,
        Some(1)
    );
    let left = store
        .audit_events(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("read");
    assert_eq!(left.len(), 1, "the 29-day-old event stays: {left:?}");
    assert_eq!(left[0].at, t - 29 * 86_400);

    // The lease: within the period, nobody runs the job again.
    assert_eq!(jobs::run_once(&idp.state, &grants::JOB).await, None);
    assert_eq!(jobs::run_once(&idp.state, &links::JOB).await, None);
    assert_eq!(
        jobs::run_once(&idp.state, &audit_retention::JOB).await,
        None
    );

    let running = jobs::spawn(&idp.state);
    tokio::time::timeout(Duration::from_secs(5), running.stop())
        .await
        .expect("the jobs stop when asked");
    idp.stop().await;
}

/// Mail the mail server keeps refusing is deleted, body and all, once it is older than
/// `[mail] keep_undelivered_hours`; younger mail stays queued for its next attempt.
async fn undelivered_mail_goes_after_its_retention(backend: Backend) {
    let smtp = SmtpRefusals::default();
    smtp.refuse_next(1000);
    let idp = TestIdp::start_with_delivery(
        backend,
        vec![],
        |c| {
            c.mail.keep_undelivered_hours = 72;
            c.mail.retry_base_secs = 3600;
        },
        |m| smtp.delivery(m),
    )
    .await;
    let store = &idp.state.store;
    let t = now();
    for (subject, queued_at) in [("Vecchia", t - 73 * 3600), ("Recente", t - 3600)] {
        let mail = OutgoingMail {
            to: idp_core::account::Email::parse("anna@example.org").expect("email"),
            subject: subject.into(),
            body_text: "Password provvisoria: segreta".into(),
            attachments: Vec::new(),
        };
        store.enqueue_mail(&mail, queued_at).await.expect("enqueue");
    }
    idp.state.wake_mail_sender();
    let start = std::time::Instant::now();
    while smtp.made() < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "not attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        jobs::run_once(&idp.state, &mail_retention::JOB).await,
        Some(1)
    );
    assert_eq!(store.count_queued_mail().await.expect("count"), 1);
    idp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_mail_on_the_embedded_default() {
    undelivered_mail_goes_after_its_retention(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_mail_on_postgres_and_redis() {
    undelivered_mail_goes_after_its_retention(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_the_embedded_default() {
    jobs_delete_what_is_due_once_per_period(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_postgres_and_redis() {
    jobs_delete_what_is_due_once_per_period(Backend::Production).await;
}
