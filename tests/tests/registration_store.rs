//! Confirming a registration is one transaction, on SQLite and PostgreSQL: the link is
//! spent, the account written with its temporary password and its consents, or none
//! of it, together with the queued mail that carries the credentials. A write that fails
//! halfway (here a consent the table refuses) leaves no account, no mail and a link
//! that still works; a link confirms once.

use std::sync::Arc;

use idp_core::directory::{Account, Directory};
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::link::{self, LinkPurpose, LinkState};
use idp_core::mail::OutgoingMail;
use idp_core::password::{HashParams, Password, PasswordHasher, PasswordPolicy};
use idp_core::registration::{self, Application, Confirmation, Consent};
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;
use idp_tests::TestDatabase;

fn application(consents: Vec<Consent>) -> Application {
    Application {
        fiscal_code: FiscalCode::parse("RSSMRA85T10A562S").expect("fiscal code"),
        given_name: "Mario".into(),
        family_name: "Rossi".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10).expect("date"),
        birth_place: "San Giuliano Terme".into(),
        sex: Sex::Male,
        email: idp_core::account::Email::parse("mario@example.org").expect("email"),
        consents,
    }
}

fn consent(kind: &str) -> Consent {
    Consent {
        kind: kind.into(),
        version: registration::PRIVACY_VERSION.into(),
        accepted_at: 1_700_000_000,
    }
}

/// The credentials mail as the server writes it, reduced to what the test checks.
fn credentials(account: &Account, password: &Password, _expires_at: i64) -> Option<OutgoingMail> {
    account.reference_email().map(|to| OutgoingMail {
        to: to.clone(),
        subject: "Le tue credenziali di accesso".into(),
        body_text: format!(
            "Username: {}\nPassword: {}\n",
            account.username,
            password.expose()
        ),
        attachments: Vec::new(),
    })
}

async fn a_confirmation_writes_all_or_nothing(store: Arc<dyn Store>) {
    let hasher = PasswordHasher::new(HashParams::default()).expect("hasher");
    let directory = Directory::new(store.clone(), Arc::new(hasher), PasswordPolicy::default());
    let fc = FiscalCode::parse("RSSMRA85T10A562S").expect("fiscal code");

    // The same consent twice: the second INSERT violates the primary key, after the
    // link was spent and the account inserted inside the transaction.
    let broken = application(vec![consent("privacy_notice"), consent("privacy_notice")]);
    let token = registration::submit(&*store, &broken)
        .await
        .expect("submit");
    let failed = registration::confirm(
        &directory,
        &*store,
        &*store,
        token.expose(),
        7,
        &credentials,
    )
    .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        store.count_queued_mail().await.expect("count"),
        0,
        "no credentials mail for an account that was not written"
    );
    assert!(
        store
            .account_by_fiscal_code(&fc)
            .await
            .expect("lookup")
            .is_none(),
        "no account without its consents"
    );
    assert!(
        matches!(
            link::check(&*store, LinkPurpose::Registration, token.expose())
                .await
                .expect("check"),
            LinkState::Valid(_)
        ),
        "the link was not spent"
    );

    let good = application(vec![consent("privacy_notice"), consent("data_processing")]);
    let token = registration::submit(&*store, &good).await.expect("submit");
    let done = registration::confirm(
        &directory,
        &*store,
        &*store,
        token.expose(),
        7,
        &credentials,
    )
    .await
    .expect("confirm");
    let Confirmation::Created { account, .. } = done else {
        panic!("created: {done:?}");
    };
    let stored = store
        .account_by_fiscal_code(&fc)
        .await
        .expect("lookup")
        .expect("the account");
    assert_eq!(stored.id, account.id);
    assert_eq!(stored.username.as_str(), "mario.rossi");
    assert!(stored.password.is_some() && stored.password_must_change);
    assert!(stored.password_expires_at.is_some());
    assert_eq!(
        store
            .consents(account.id.as_str())
            .await
            .expect("consents")
            .len(),
        2
    );
    // The credentials mail was queued with the account.
    let at = idp_core::directory::now();
    let queued = store.claim_mail(at, at + 60, 10).await.expect("claim");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].mail.to.as_str(), "mario@example.org");
    assert!(queued[0].mail.body_text.contains("Username: mario.rossi"));
    // Once only.
    let again = registration::confirm(
        &directory,
        &*store,
        &*store,
        token.expose(),
        7,
        &credentials,
    )
    .await
    .expect("confirm again");
    assert!(
        matches!(again, Confirmation::Refused(LinkState::Used)),
        "{again:?}"
    );
}

#[tokio::test]
async fn on_sqlite() {
    let store = SqlStore::connect("sqlite::memory:", 1)
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate");
    a_confirmation_writes_all_or_nothing(Arc::new(store)).await;
}

#[tokio::test]
async fn on_postgres() {
    let db = TestDatabase::create().await;
    let store = SqlStore::connect(&db.url, 4).await.expect("postgres");
    store.migrate().await.expect("migrate");
    a_confirmation_writes_all_or_nothing(Arc::new(store.clone())).await;
    store.close().await;
    db.drop_now().await;
}
