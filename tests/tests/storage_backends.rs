//! The storage contract, written once and run on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use idp_core::CoreError;
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::{Directory, NewAccount, SignIn};
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::mail::{Attachment, OutgoingMail};
use idp_core::password::{HashParams, Password, PasswordHasher, PasswordPolicy};
use idp_core::store::sql::SqlStore;
use idp_core::store::{OutboxStore, Store};
use idp_tests::{TestDatabase, eventually};

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

/// A password grant of the account to the client, issued at `now` for an hour.
fn password_grant(id: &str, account_id: &str, client_id: &str, now: i64) -> idp_core::grant::Grant {
    idp_core::grant::Grant {
        id: id.into(),
        account_id: account_id.into(),
        client_id: client_id.into(),
        scope: "openid profile".into(),
        sid: None,
        auth_time: now,
        acr: "password".into(),
        amr: vec!["pwd".into()],
        created_at: now,
        expires_at: now + 3600,
        revoked_at: None,
    }
}

/// Mario Rossi's account, created through the directory.
async fn mario_rossi(store: &Arc<dyn Store>) -> idp_core::directory::Account {
    directory(store.clone())
        .create_account(person("Mario", "Rossi", Some("RSSMRA85T10A562S")))
        .await
        .expect("create")
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

fn text_mail(to: &str, subject: &str) -> OutgoingMail {
    OutgoingMail {
        to: Email::parse(to).expect("email"),
        subject: subject.into(),
        body_text: format!("Testo di {subject}"),
        attachments: Vec::new(),
    }
}

const T: i64 = 1_700_000_000;

async fn queued_mail_is_held_by_one_claim_at_a_time(store: Arc<dyn Store>) {
    store
        .enqueue_mail(&text_mail("anna@example.org", "Uno"), T)
        .await
        .expect("enqueue");
    store
        .enqueue_mail(&text_mail("bruno@example.org", "Due"), T)
        .await
        .expect("enqueue");
    assert_eq!(store.count_queued_mail().await.expect("count"), 2);
    // Not yet due.
    assert!(
        store
            .claim_mail(T - 1, T + 60, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let first = store.claim_mail(T, T + 60, 10).await.expect("claim");
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|m| m.attempts == 1));
    assert_eq!(
        first[0].mail.body_text,
        format!("Testo di {}", first[0].mail.subject)
    );
    // Held: nobody else gets them while the lease runs.
    assert!(
        store
            .claim_mail(T + 59, T + 120, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // The holder died: after the lease another claim takes them over, one attempt more.
    let second = store.claim_mail(T + 60, T + 120, 1).await.expect("claim");
    assert_eq!(second.len(), 1, "at most the limit");
    assert_eq!(second[0].attempts, 2);
    // The first holder's late marks do nothing; the current holder's count.
    let taken = &second[0];
    let stale = first.iter().find(|m| m.id == taken.id).expect("same mail");
    assert!(
        !store
            .mail_sent(&stale.id, &stale.claim)
            .await
            .expect("mark")
    );
    assert!(
        !store
            .mail_retry(&stale.id, &stale.claim, T, "x")
            .await
            .expect("mark")
    );
    assert!(
        store
            .mail_sent(&taken.id, &taken.claim)
            .await
            .expect("mark")
    );
    assert_eq!(store.count_queued_mail().await.expect("count"), 1);
    assert!(
        !store
            .mail_sent(&taken.id, &taken.claim)
            .await
            .expect("mark again")
    );
}

async fn a_failed_mail_waits_for_its_retry_then_is_given_up(store: Arc<dyn Store>) {
    store
        .enqueue_mail(&text_mail("anna@example.org", "Uno"), T)
        .await
        .expect("enqueue");
    let claimed = store.claim_mail(T, T + 300, 10).await.expect("claim");
    let m = &claimed[0];
    assert!(
        store
            .mail_retry(&m.id, &m.claim, T + 100, "451 busy")
            .await
            .expect("retry")
    );
    // Released, but not due before its next attempt.
    assert!(
        store
            .claim_mail(T + 99, T + 400, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = store.claim_mail(T + 100, T + 400, 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    let m = &again[0];
    assert!(
        store
            .mail_abandoned(&m.id, &m.claim, T + 101, "550 no such user")
            .await
            .expect("abandon")
    );
    // Given up: no longer queued nor claimable, kept until the retention deletes it.
    assert_eq!(store.count_queued_mail().await.expect("count"), 0);
    assert!(
        store
            .claim_mail(T + 10_000, T + 10_300, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.delete_mail_before(T).await.expect("delete"), 0);
    assert_eq!(store.delete_mail_before(T + 1).await.expect("delete"), 1);
    // Never delivered: deleted by age too, due or not.
    store
        .enqueue_mail(&text_mail("anna@example.org", "Due"), T + 50)
        .await
        .expect("enqueue");
    assert_eq!(store.delete_mail_before(T + 50).await.expect("delete"), 0);
    assert_eq!(store.delete_mail_before(T + 51).await.expect("delete"), 1);
    assert_eq!(store.count_queued_mail().await.expect("count"), 0);
}

async fn concurrent_claims_never_share_a_mail(store: Arc<dyn Store>) {
    for i in 0..20 {
        store
            .enqueue_mail(&text_mail("anna@example.org", &format!("Mail {i}")), T)
            .await
            .expect("enqueue");
    }
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_mail(T, T + 60, 8).await.expect("claim") })
        })
        .collect();
    let mut ids = Vec::new();
    for c in claimers {
        ids.extend(c.await.expect("task").into_iter().map(|m| m.id));
    }
    // Under contention a claim may come back short (rows taken by another are
    // skipped); what is left goes to the next claim.
    ids.extend(
        store
            .claim_mail(T, T + 60, 20)
            .await
            .expect("claim the rest")
            .into_iter()
            .map(|m| m.id),
    );
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a mail was claimed twice");
    assert_eq!(total, 20, "every mail claimed by someone");
}

async fn a_link_and_its_mail_are_written_together(store: Arc<dyn Store>) {
    use idp_core::link::{EmailLink, LinkPurpose};
    use idp_core::secret::TokenHash;
    let link = EmailLink {
        token_hash: TokenHash::of("token-one"),
        purpose: LinkPurpose::PasswordReset,
        account_id: None,
        payload: "{}".into(),
        created_at: T,
        expires_at: T + 3600,
        used_at: None,
    };
    let mail = text_mail("anna@example.org", "Reimposta la password");
    store.insert_link(&link, Some(&mail)).await.expect("link");
    assert_eq!(store.count_queued_mail().await.expect("count"), 1);
    // The same token again: the link is refused, and its mail is not queued either.
    assert!(store.insert_link(&link, Some(&mail)).await.is_err());
    assert_eq!(store.count_queued_mail().await.expect("count"), 1);
    // Mail with attachments does not fit the queue: refused, not truncated.
    let mut with_attachment = text_mail("anna@example.org", "Modulo");
    with_attachment.attachments.push(Attachment {
        filename: "modulo.pdf".into(),
        content_type: "application/pdf".into(),
        content: vec![1, 2, 3],
    });
    assert!(store.enqueue_mail(&with_attachment, T).await.is_err());
}

/// Runs each body on a fresh in-memory SQLite and on a throwaway PostgreSQL database.
/// Many rotations at once, as under load (both stores batch them: shared statements on
/// PostgreSQL, shared transactions on SQLite): each token is spent once, each
/// replacement belongs to its own grant and client, and a token presented several times
/// at once wins once; the rest find it used.
async fn concurrent_rotations_spend_each_token_once(store: Arc<dyn Store>) {
    use idp_core::grant::{Rotated, Rotation};
    /// A rotation by client pago-in-rete, whose grants are all but g0.
    fn rotation<'a>(old: &'a str, new: &'a str, now: i64) -> Rotation<'a> {
        Rotation {
            old_hash: old,
            new_hash: new,
            client_id: "pago-in-rete",
            now,
            ttl_secs: 300,
        }
    }
    let account = mario_rossi(&store).await;
    store
        .grant_role(account.id.as_str(), "docente")
        .await
        .expect("role");
    let now = idp_core::directory::now();
    const GRANTS: usize = 40;
    for i in 0..GRANTS {
        store
            .insert_grant(&password_grant(
                &format!("g{i}"),
                account.id.as_str(),
                if i == 0 { "governance" } else { "pago-in-rete" },
                now,
            ))
            .await
            .expect("grant");
        store
            .insert_refresh_token(&format!("{i:064x}"), &format!("g{i}"), now + 600)
            .await
            .expect("token");
    }
    // An expired token beside the live one, in grant 1.
    store
        .insert_refresh_token(&format!("{:064x}", 999), "g1", now - 1)
        .await
        .expect("expired token");
    let old: Vec<String> = (0..GRANTS).map(|i| format!("{i:064x}")).collect();
    let new: Vec<String> = (0..GRANTS + 6)
        .map(|i| format!("{:064x}", 1000 + i))
        .collect();
    let expired = format!("{:064x}", 999);
    // Every token once, token 5 five more times, and the expired one, all at once.
    let mut presented: Vec<&str> = old.iter().map(String::as_str).collect();
    presented.extend([old[5].as_str(); 5]);
    presented.push(&expired);
    let tasks: Vec<_> = presented
        .iter()
        .enumerate()
        .map(|(k, old)| {
            let (store, old, new) = (store.clone(), old.to_string(), new[k].clone());
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(&rotation(&old, &new, now))
                    .await
                    .expect("rotate")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("rotation task"));
    }
    for (k, outcome) in outcomes.iter().take(GRANTS).enumerate() {
        if k == 5 {
            continue;
        }
        let Rotated::Fresh {
            grant,
            new_expires_at,
            account: read,
        } = outcome
        else {
            panic!("token {k} is spent once: {outcome:?}");
        };
        assert_eq!(grant.id, format!("g{k}"));
        if k == 0 {
            // Grant 0 is another client's: spent, nothing stored.
            assert_eq!(*new_expires_at, None);
            assert_eq!(
                store.grant_of_refresh_token(&new[k]).await.expect("read"),
                None
            );
            continue;
        }
        assert_eq!(*new_expires_at, Some(now + 300));
        assert_eq!(
            store.grant_of_refresh_token(&new[k]).await.expect("read"),
            Some(format!("g{k}"))
        );
        // The batch reads the account and its roles with the grant.
        let Some(read) = read else {
            panic!("token {k}: the account is read with the rotation");
        };
        assert_eq!(read.0.id, account.id);
        assert_eq!(read.1, vec!["docente".to_string()]);
    }
    // Token 5: six uses at once, one fresh, five found used.
    let mut token5: Vec<&Rotated> = vec![&outcomes[5]];
    token5.extend(&outcomes[GRANTS..GRANTS + 5]);
    let fresh = token5
        .iter()
        .filter(|o| matches!(o, Rotated::Fresh { .. }))
        .count();
    let reused = token5
        .iter()
        .filter(|o| matches!(o, Rotated::Reused { grant_id } if grant_id == "g5"))
        .count();
    assert_eq!((fresh, reused), (1, 5), "{token5:?}");
    let mut stored = 0;
    for n in new[GRANTS..GRANTS + 5].iter().chain([&new[5]]) {
        if store
            .grant_of_refresh_token(n)
            .await
            .expect("read")
            .is_some()
        {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "one replacement stored for token 5");
    assert!(matches!(outcomes[GRANTS + 5], Rotated::Expired));
    // The replacements rotate in turn; the old tokens stay spent.
    let again = store
        .rotate_refresh_token(&rotation(&new[7], &format!("{:064x}", 5000), now))
        .await
        .expect("rotate again");
    assert!(matches!(
        again,
        Rotated::Fresh {
            new_expires_at: Some(_),
            ..
        }
    ));
    let replay = store
        .rotate_refresh_token(&rotation(&old[7], &format!("{:064x}", 5001), now))
        .await
        .expect("replay");
    assert!(matches!(replay, Rotated::Reused { grant_id } if grant_id == "g7"));
}

/// The code exchange stores the grant with its first refresh token in one step: both or
/// neither (a refresh token hash already taken leaves no grant behind).
async fn a_grant_and_its_first_refresh_token_are_written_together(store: Arc<dyn Store>) {
    use idp_core::grant::Grant;
    let account = mario_rossi(&store).await;
    let now = idp_core::directory::now();
    let grant = |id: &str| Grant {
        sid: Some("sid-1".into()),
        ..password_grant(id, account.id.as_str(), "pago-in-rete", now)
    };
    let hash = format!("{:064x}", 1);
    store
        .insert_grant_with_refresh_token(&grant("g1"), Some((&hash, now + 600)))
        .await
        .expect("grant with token");
    let stored = store.grant_by_id("g1").await.expect("read").expect("grant");
    assert_eq!(stored.sid.as_deref(), Some("sid-1"));
    assert_eq!(stored.amr, ["pwd"]);
    assert_eq!(
        store
            .use_refresh_token_peek(&hash, now)
            .await
            .expect("peek"),
        Some(now + 600)
    );
    assert_eq!(
        store.grant_of_refresh_token(&hash).await.expect("of"),
        Some("g1".to_string())
    );

    store
        .insert_grant_with_refresh_token(&grant("g2"), None)
        .await
        .expect("grant alone");
    assert!(store.grant_by_id("g2").await.expect("read").is_some());

    let taken = store
        .insert_grant_with_refresh_token(&grant("g3"), Some((&hash, now + 600)))
        .await;
    assert!(taken.is_err(), "the token hash is taken");
    assert!(
        store.grant_by_id("g3").await.expect("read").is_none(),
        "no grant without its token"
    );
    assert_eq!(
        store.grant_of_refresh_token(&hash).await.expect("of"),
        Some("g1".to_string())
    );
}

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
    queued_mail_is_held_by_one_claim_at_a_time,
    a_failed_mail_waits_for_its_retry_then_is_given_up,
    concurrent_claims_never_share_a_mail,
    a_link_and_its_mail_are_written_together,
    concurrent_rotations_spend_each_token_once,
    a_grant_and_its_first_refresh_token_are_written_together,
);

/// A SQLite file in a folder of its own under the system's temp dir, removed on drop.
struct SqliteFile {
    dir: std::path::PathBuf,
}

impl SqliteFile {
    fn new() -> Self {
        Self {
            dir: idp_tests::services::temp_dir("sqlite"),
        }
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
    fn db(&self) -> std::path::PathBuf {
        self.dir.join("idp.db")
    }
    fn wal(&self) -> std::path::PathBuf {
        self.dir.join("idp.db-wal")
    }
    /// A store on the file, migrated, with the default SQLite pool of one connection.
    async fn store(&self) -> SqlStore {
        let store = SqlStore::connect(&self.url(), 1)
            .await
            .expect("sqlite file");
        store.migrate().await.expect("migrate");
        store
    }
    fn len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A commit only appends its pages to the WAL; the store's own task copies them into the
/// database file (SQLite's checkpoint inside a commit waits for 4,000 pages). About 1.2
/// MB of mail, some 300 pages, reach the database file without another write.
#[tokio::test]
async fn a_sqlite_file_is_checkpointed_beside_the_pool() {
    let file = SqliteFile::new();
    let store = file.store().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = SqliteFile::len(&file.db());
    let mut mail = text_mail("mario@example.org", "Credenziali");
    mail.body_text = "x".repeat(4000);
    for _ in 0..300 {
        store.push_mail(&mail).await.expect("push");
    }
    eventually(
        "1 MB more of the database file, from the WAL",
        Duration::from_secs(5),
        || {
            let grown = SqliteFile::len(&file.db()) >= before + 1_000_000;
            async move { grown }
        },
    )
    .await;
    assert_eq!(store.list_mail(500).await.expect("list").len(), 300);
    store.close().await;
}

/// SQLite removes the WAL when the last connection to the database closes: closing the
/// store closes the checkpoint task's connection too.
#[tokio::test]
async fn closing_a_sqlite_store_closes_its_checkpoint_connection() {
    let file = SqliteFile::new();
    let store = file.store().await;
    store
        .push_mail(&text_mail("mario@example.org", "Credenziali"))
        .await
        .expect("push");
    assert!(file.wal().exists(), "WAL mode");
    store.close().await;
    eventually(
        "the WAL removed: no connection left open",
        Duration::from_secs(5),
        || {
            let gone = !file.wal().exists();
            async move { gone }
        },
    )
    .await;
    // The mail is in the database file.
    let reopened = file.store().await;
    assert_eq!(reopened.list_mail(10).await.expect("list").len(), 1);
    reopened.close().await;
}

/// On PostgreSQL, spending a refresh token leaves its new version on the token's own
/// page (the table keeps half of each page free: `fillfactor = 50`), which is what lets
/// PostgreSQL make the spend a heap-only update, with no new index entry. On full pages,
/// spent together in batches, most would move to another page.
#[tokio::test]
async fn a_spent_refresh_token_stays_on_its_page_on_postgresql() {
    use idp_core::grant::{Rotated, Rotation};
    let db = TestDatabase::create().await;
    let sql = SqlStore::connect(&db.url, 4).await.expect("postgres");
    sql.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(sql.clone());
    let account = mario_rossi(&store).await;
    let now = idp_core::directory::now();
    store
        .insert_grant(&password_grant(
            "g",
            account.id.as_str(),
            "pago-in-rete",
            now,
        ))
        .await
        .expect("grant");
    const TOKENS: usize = 300;
    let old: Vec<String> = (0..TOKENS).map(|i| format!("{i:064x}")).collect();
    for token in &old {
        store
            .insert_refresh_token(token, "g", now + 600)
            .await
            .expect("token");
    }
    let pg = sqlx::PgPool::connect(&db.url).await.expect("postgres");
    let pages = async |pg: &sqlx::PgPool| -> std::collections::HashMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT token_hash, (ctid::text::point)[0]::bigint FROM refresh_tokens",
        )
        .fetch_all(pg)
        .await
        .expect("pages")
        .into_iter()
        .collect()
    };
    let before = pages(&pg).await;
    // All at once, as under load: they go in a few batches, one statement each, where
    // no page can be pruned of the versions its own statement left behind.
    let mut rotations = tokio::task::JoinSet::new();
    for (i, token) in old.iter().enumerate() {
        let (store, token, new) = (store.clone(), token.clone(), format!("{:064x}", TOKENS + i));
        rotations.spawn(async move {
            store
                .rotate_refresh_token(&Rotation {
                    old_hash: &token,
                    new_hash: &new,
                    client_id: "pago-in-rete",
                    now,
                    ttl_secs: 300,
                })
                .await
        });
    }
    while let Some(rotated) = rotations.join_next().await {
        let rotated = rotated.expect("task").expect("rotate");
        assert!(
            matches!(rotated, Rotated::Fresh { .. }),
            "every token spent"
        );
    }
    let after = pages(&pg).await;
    let stayed = old.iter().filter(|t| before[*t] == after[*t]).count();
    // Seen: 286 of 300 with the reserve (a page whose every token is spent in one
    // statement fills its free half to the last bytes), 25 without.
    assert!(
        stayed >= TOKENS * 9 / 10,
        "only {stayed} of {TOKENS} spent tokens stayed on their page"
    );
    pg.close().await;
    sql.close().await;
    db.drop_now().await;
}
