//! The audit log on SQLite and PostgreSQL: events read back by account, client, kind
//! and time, retention deletes only the old ones, and a refused then a successful
//! sign-in leave one record each that `idp-server audit` prints.

use std::sync::Arc;

use idp_core::audit::{AuditEvent, AuditFilter, AuditKind, AuditStore};
use idp_core::store::sql::SqlStore;
use idp_server::admin::audit::print;
use idp_tests::TestDatabase;
use idp_tests::harness::{Backend, Browser, TestIdp, hidden};
use idp_tests::{flows, registration};
use serde_json::json;

const PASSWORD: &str = "Scuola-2026!Test";

fn at(kind: AuditKind, at: i64) -> AuditEvent {
    AuditEvent {
        at,
        ..AuditEvent::new(kind)
    }
}

fn all() -> AuditFilter {
    AuditFilter {
        limit: 100,
        ..AuditFilter::default()
    }
}

async fn events_read_back_by_account_client_kind_and_time(store: Arc<SqlStore>) {
    let events = [
        at(AuditKind::LoginFailure, 100)
            .ip("10.0.0.1")
            .detail(json!({ "username": "anna.bianchi" })),
        at(AuditKind::LoginSuccess, 200).account("acc-1"),
        at(AuditKind::RefreshTokenReuse, 300)
            .account("acc-1")
            .client("pago-in-rete"),
        at(AuditKind::ClientAdded, 400).client("governance"),
        at(AuditKind::LoginSuccess, 500).account("acc-2"),
    ];
    for e in &events {
        store.insert_audit(e).await.expect("insert");
    }
    let read = |f: AuditFilter| {
        let store = store.clone();
        async move { store.audit_events(&f).await.expect("query") }
    };
    assert_eq!(
        read(all()).await,
        events.to_vec(),
        "everything, oldest first"
    );
    let of_account = read(AuditFilter {
        account_id: Some("acc-1".into()),
        ..all()
    })
    .await;
    assert_eq!(of_account, events[1..3].to_vec());
    let of_client = read(AuditFilter {
        client_id: Some("governance".into()),
        ..all()
    })
    .await;
    assert_eq!(of_client, vec![events[3].clone()]);
    let successes = read(AuditFilter {
        kind: Some(AuditKind::LoginSuccess),
        ..all()
    })
    .await;
    assert_eq!(successes, vec![events[1].clone(), events[4].clone()]);
    let window = read(AuditFilter {
        since: Some(200),
        until: Some(400),
        ..all()
    })
    .await;
    assert_eq!(
        window,
        events[1..3].to_vec(),
        "since inclusive, until exclusive"
    );
    let combined = read(AuditFilter {
        account_id: Some("acc-1".into()),
        kind: Some(AuditKind::RefreshTokenReuse),
        since: Some(250),
        ..all()
    })
    .await;
    assert_eq!(combined, vec![events[2].clone()]);
    let newest_two = read(AuditFilter { limit: 2, ..all() }).await;
    assert_eq!(
        newest_two,
        events[3..].to_vec(),
        "the limit keeps the newest"
    );
    assert_eq!(events[0].detail["username"], "anna.bianchi");

    assert_eq!(store.delete_audit_before(300).await.expect("delete"), 2);
    assert_eq!(store.delete_audit_before(300).await.expect("again"), 0);
    assert_eq!(read(all()).await, events[2..].to_vec());
}

async fn events_of_one_second_keep_their_order(store: Arc<SqlStore>) {
    let kinds = [
        AuditKind::LoginFailure,
        AuditKind::Lockout,
        AuditKind::LoginSuccess,
        AuditKind::PasswordChange,
        AuditKind::Logout,
    ];
    for k in kinds {
        store.insert_audit(&at(k, 1000)).await.expect("insert");
    }
    let read: Vec<_> = store
        .audit_events(&all())
        .await
        .expect("query")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(read, kinds.to_vec());
}

macro_rules! on_both_databases {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $body() {
                    let store = super::SqlStore::connect("sqlite::memory:", 1)
                        .await
                        .expect("sqlite");
                    store.migrate().await.expect("migrate");
                    super::$body(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $body() {
                    let db = super::TestDatabase::create().await;
                    let store = super::SqlStore::connect(&db.url, 4).await.expect("postgres");
                    store.migrate().await.expect("migrate");
                    super::$body(std::sync::Arc::new(store.clone())).await;
                    store.close().await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

on_both_databases!(
    events_read_back_by_account_client_kind_and_time,
    events_of_one_second_keep_their_order,
);

/// A person who mistypes the password and then signs in leaves a failure (with the
/// username and address) and a success (with the account) in the audit log.
async fn sign_ins_are_audited(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    browser
        .sign_in(&idp, &login, "anna.bianchi", "Wrong-password-1!")
        .await;
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    browser
        .sign_in(&idp, &login, "anna.bianchi", PASSWORD)
        .await;

    let events = idp.state.store.audit_events(&all()).await.expect("query");
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [AuditKind::LoginFailure, AuditKind::LoginSuccess]);
    assert_eq!(events[0].detail["username"], "anna.bianchi");
    assert_eq!(events[0].detail["outcome"], "invalid_credentials");
    assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(events[1].account_id.as_deref(), Some(account.id.as_str()));

    let mut out = Vec::new();
    print(
        &*idp.state.store,
        &AuditFilter {
            account_id: Some(account.id.as_str().into()),
            ..all()
        },
        &mut out,
    )
    .await
    .expect("print");
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!("login_success account={}", account.id.as_str())),
        "{text}"
    );
    idp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_audited_on_the_embedded_default() {
    sign_ins_are_audited(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_audited_on_postgres_and_redis() {
    sign_ins_are_audited(Backend::Production).await;
}

/// The lines `idp-server audit --kind KIND` prints.
async fn printed(idp: &TestIdp, kind: AuditKind) -> String {
    let mut out = Vec::new();
    print(
        &*idp.state.store,
        &AuditFilter {
            kind: Some(kind),
            ..all()
        },
        &mut out,
    )
    .await
    .expect("print");
    String::from_utf8(out).expect("utf-8")
}

/// An email change leaves one event when requested and one when the link confirms it;
/// `--kind email_change` finds both.
async fn email_changes_are_audited(backend: Backend) {
    let idp = TestIdp::start(backend, vec![]).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let browser = Browser::new();
    let login = browser.follow(&idp.url("/login"), &idp.base).await;
    let home = browser
        .sign_in(&idp, &login, "anna.bianchi", PASSWORD)
        .await;
    assert!(home.url.ends_with("/area-riservata"), "{}", home.url);
    browser
        .submit(
            &idp.url("/area-riservata/email"),
            &[
                ("csrf", &hidden(&home.body, "csrf").expect("csrf")),
                ("email", "anna.nuova@example.org"),
            ],
            &idp.base,
        )
        .await;
    let text = printed(&idp, AuditKind::EmailChange).await;
    assert_eq!(text.lines().count(), 1, "requested: {text}");
    assert!(text.contains("requested"), "{text}");
    registration::confirm_email_change(&idp, &browser, "anna.nuova@example.org").await;
    let events = idp
        .state
        .store
        .audit_events(&AuditFilter {
            kind: Some(AuditKind::EmailChange),
            ..all()
        })
        .await
        .expect("query");
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].detail["step"], "confirmed");
    for e in &events {
        assert_eq!(e.account_id.as_deref(), Some(account.id.as_str()));
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
    }
    let text = printed(&idp, AuditKind::EmailChange).await;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains(&format!("email_change account={}", account.id.as_str())),
        "{text}"
    );
    idp.stop().await;
}

/// Each `PUT /enablements` that records a status leaves an event with the client, the
/// account, the service and the previous status; a refused PUT leaves none.
async fn enablement_changes_are_audited(backend: Backend) {
    let mut client = flows::client();
    client.service = Some("istanze-online".into());
    client.enablement_uri = Some("http://127.0.0.1:9/abilitazione".into());
    let idp = TestIdp::start(backend, vec![client]).await;
    let account = idp.account("Anna", "Bianchi", PASSWORD).await;
    let put = |status: &'static str| {
        let url = idp.url(&format!(
            "/enablements/istanze-online/{}",
            account.id.as_str()
        ));
        async move {
            reqwest::Client::new()
                .put(url)
                .basic_auth(flows::CLIENT_ID, Some(flows::SECRET))
                .json(&json!({ "status": status }))
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }
    };
    assert_eq!(put("pending").await, 200);
    assert_eq!(put("active").await, 200);
    assert_eq!(put("sospesa").await, 400);
    let events = idp
        .state
        .store
        .audit_events(&AuditFilter {
            kind: Some(AuditKind::EnablementChange),
            ..all()
        })
        .await
        .expect("query");
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(e.account_id.as_deref(), Some(account.id.as_str()));
        assert_eq!(e.client_id.as_deref(), Some(flows::CLIENT_ID));
        assert_eq!(e.detail["service"], "istanze-online");
    }
    assert_eq!(events[0].detail["status"], "pending");
    assert_eq!(events[0].detail["previous"], serde_json::Value::Null);
    assert_eq!(events[1].detail["status"], "active");
    assert_eq!(events[1].detail["previous"], "pending");
    let text = printed(&idp, AuditKind::EnablementChange).await;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("enablement_change"), "{text}");
    idp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_changes_are_audited_on_the_embedded_default() {
    email_changes_are_audited(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_changes_are_audited_on_postgres_and_redis() {
    email_changes_are_audited(Backend::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enablement_changes_are_audited_on_the_embedded_default() {
    enablement_changes_are_audited(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enablement_changes_are_audited_on_postgres_and_redis() {
    enablement_changes_are_audited(Backend::Production).await;
}
