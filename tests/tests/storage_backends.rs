//! The storage contract, written once and run on SQLite and on PostgreSQL.

use std::sync::Arc;

use idp_core::CoreError;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::{Directory, NewAccount, SignIn};
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::mail::{Attachment, OutgoingMail};
use idp_core::password::{HashParams, Password, PasswordHasher, PasswordPolicy};
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;
use idp_tests::TestDatabase;

fn person(given: &str, family: &str, fiscal_code: Option<&str>) -> NewAccount {
    NewAccount {
        kind: AccountKind::Registered,
        fiscal_code: fiscal_code.map(|f| FiscalCode::parse(f).expect("valid fiscal code")),
        given_name: given.into(),
        family_name: family.into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10),
        birth_place: Some("Pisa".into()),
        sex: Some(Sex::Male),
        personal_email: Some(Email::parse("mario@example.org").expect("email")),
        institutional_email: None,
        username: None,
    }
}

fn directory(store: Arc<dyn Store>) -> Directory {
    let hasher = PasswordHasher::new(HashParams::default()).expect("default params");
    Directory::new(store, Arc::new(hasher), PasswordPolicy::default())
}

async fn an_account_reads_back_as_it_was_written(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let created = dir
        .create_account(person("Mario", "Rossi", Some("RSSMRA85T10A562S")))
        .await
        .expect("create");
    assert_eq!(created.username.as_str(), "mario.rossi");
    let by_id = store
        .account_by_id(&created.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_id.username, created.username);
    assert_eq!(by_id.fiscal_code, created.fiscal_code);
    assert_eq!(by_id.birth_date, created.birth_date);
    assert_eq!(by_id.sex, Some(Sex::Male));
    assert_eq!(by_id.personal_email, created.personal_email);
    assert_eq!(by_id.kind, AccountKind::Registered);
    let by_name = store
        .account_by_username(&Username::parse("mario.rossi").expect("username"))
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_name.id, created.id);
    let fc = FiscalCode::parse("RSSMRA85T10A562S").expect("fc");
    let by_fc = store
        .account_by_fiscal_code(&fc)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(by_fc.id, created.id);
    assert_eq!(store.count_accounts().await.expect("count"), 1);
}

async fn usernames_are_numbered_on_collision(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let names: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let a = dir
                .create_account(person("Mario", "Rossi", None))
                .await
                .expect("create");
            v.push(a.username.as_str().to_string());
        }
        v
    };
    assert_eq!(names, ["mario.rossi", "mario.rossi2", "mario.rossi3"]);
    let accented = dir
        .create_account(person("Nicolò", "D'Angelo", None))
        .await
        .expect("create");
    assert_eq!(accented.username.as_str(), "nicolo.dangelo");
}

async fn a_fiscal_code_belongs_to_one_account(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    dir.create_account(person("Mario", "Rossi", Some("RSSMRA85T10A562S")))
        .await
        .expect("first");
    let second = dir
        .create_account(person("Mario", "Rossi", Some("RSSMRA85T10A562S")))
        .await;
    assert!(
        matches!(second, Err(CoreError::Conflict("fiscal_code"))),
        "{second:?}"
    );
    let mut taken = person("Anna", "Bianchi", None);
    taken.username = Some(Username::parse("mario.rossi").expect("username"));
    let third = dir.create_account(taken).await;
    assert!(
        matches!(third, Err(CoreError::Conflict("username"))),
        "{third:?}"
    );
}

async fn passwords_keep_a_bounded_history(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let account = dir
        .create_account(person("Mario", "Rossi", None))
        .await
        .expect("create");
    for i in 0..7 {
        let hash = idp_core::password::PasswordHash::from_phc(format!("$argon2id$fake{i}"));
        store
            .replace_password(&account.id, &hash, false, None, 5)
            .await
            .expect("replace");
    }
    let history = store
        .password_history(&account.id, 10)
        .await
        .expect("history");
    let kept: Vec<&str> = history.iter().map(|h| h.as_str()).collect();
    // Seven passwords set: the current one is fake6, the history the five before it.
    assert_eq!(
        kept,
        [
            "$argon2id$fake5",
            "$argon2id$fake4",
            "$argon2id$fake3",
            "$argon2id$fake2",
            "$argon2id$fake1"
        ]
    );
}

async fn sign_in_tells_the_outcomes_apart(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let account = dir
        .create_account(person("Mario", "Rossi", None))
        .await
        .expect("create");
    let outcome = dir
        .sign_in("mario.rossi", Password::new("Whatever-1".into()))
        .await
        .expect("sign in");
    assert!(matches!(outcome, SignIn::NoPassword), "{outcome:?}");
    dir.set_temporary_password(&account, Password::new("Tmp-Pass-123".into()), i64::MAX)
        .await
        .expect("temporary");
    let outcome = dir
        .sign_in("mario.rossi", Password::new("Tmp-Pass-123".into()))
        .await
        .expect("sign in");
    assert!(
        matches!(outcome, SignIn::MustChangePassword(_)),
        "{outcome:?}"
    );
    dir.set_temporary_password(&account, Password::new("Tmp-Pass-456".into()), 1)
        .await
        .expect("expired temporary");
    let outcome = dir
        .sign_in("mario.rossi", Password::new("Tmp-Pass-456".into()))
        .await
        .expect("sign in");
    assert!(
        matches!(outcome, SignIn::TemporaryPasswordExpired),
        "{outcome:?}"
    );
    dir.set_password(&account, Password::new("Scuola-2026!x".into()))
        .await
        .expect("set");
    let ok = dir
        .sign_in("MARIO.ROSSI", Password::new("Scuola-2026!x".into()))
        .await
        .expect("sign in");
    assert!(matches!(ok, SignIn::Authenticated(_)), "{ok:?}");
    let wrong = dir
        .sign_in("mario.rossi", Password::new("Scuola-2026!y".into()))
        .await
        .expect("sign in");
    assert!(matches!(wrong, SignIn::InvalidCredentials), "{wrong:?}");
    let unknown = dir
        .sign_in("nobody.here", Password::new("Scuola-2026!x".into()))
        .await
        .expect("sign in");
    assert!(matches!(unknown, SignIn::InvalidCredentials), "{unknown:?}");
}

async fn the_outbox_keeps_mail_with_attachments(store: Arc<dyn Store>) {
    let to = Email::parse("anna@example.org").expect("email");
    for i in 0..2 {
        store
            .push_mail(&OutgoingMail {
                to: to.clone(),
                subject: format!("Oggetto {i}"),
                body_text: "Testo".into(),
                attachments: vec![Attachment {
                    filename: "modulo.pdf".into(),
                    content_type: "application/pdf".into(),
                    content: vec![0x25, 0x50, 0x44, 0x46, 0, 255],
                }],
            })
            .await
            .expect("push");
    }
    let mails = store.list_mail(10).await.expect("list");
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[0].subject, "Oggetto 1");
    assert_eq!(mails[0].to, "anna@example.org");
    assert_eq!(
        mails[0].attachments[0].content,
        vec![0x25, 0x50, 0x44, 0x46, 0, 255]
    );
}

async fn update_profile_changes_the_personal_email(store: Arc<dyn Store>) {
    let dir = directory(store.clone());
    let mut account = dir
        .create_account(person("Mario", "Rossi", None))
        .await
        .expect("create");
    account.personal_email = Some(Email::parse("nuovo@example.org").expect("email"));
    account.institutional_email = Some(Email::parse("mario.rossi@istruzione.it").expect("email"));
    store.update_profile(&account).await.expect("update");
    let read = store
        .account_by_id(&account.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        read.personal_email.as_ref().map(|e| e.as_str()),
        Some("nuovo@example.org")
    );
    assert_eq!(
        read.reference_email().map(|e| e.as_str()),
        Some("mario.rossi@istruzione.it")
    );
}

/// Runs each body on a fresh in-memory SQLite and on a throwaway PostgreSQL database.
macro_rules! on_both_databases {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $body() {
                    let store = idp_core::store::sql::SqlStore::connect("sqlite::memory:", 1)
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
                    // Migrations are idempotent: a second run changes nothing.
                    store.migrate().await.expect("migrate again");
                    super::$body(std::sync::Arc::new(store.clone())).await;
                    store.close().await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

on_both_databases!(
    an_account_reads_back_as_it_was_written,
    usernames_are_numbered_on_collision,
    a_fiscal_code_belongs_to_one_account,
    passwords_keep_a_bounded_history,
    sign_in_tells_the_outcomes_apart,
    the_outbox_keeps_mail_with_attachments,
    update_profile_changes_the_personal_email,
);
