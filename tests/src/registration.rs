//! Registrati over HTTP, as a person does it, for the tests that start from a new
//! account: the four steps with the security check answered, the confirmation link read
//! from the IdP's dev outbox, and the credentials mail.

use idp_core::security_check;
use serde_json::Value;

use crate::harness::{Browser, Page, TestIdp, hidden};

/// Who registers.
pub struct Person<'a> {
    pub fiscal_code: &'a str,
    pub given_name: &'a str,
    pub family_name: &'a str,
    /// YYYY-MM-DD
    pub birth_date: &'a str,
    pub birth_place: &'a str,
    /// "M" or "F"
    pub sex: &'a str,
    pub email: &'a str,
}

/// The credentials mail's content.
pub struct Credentials {
    pub username: String,
    pub temporary_password: String,
}

/// HTML entities the templates escape, undone for plain-text assertions.
pub fn text_of(page: &Page) -> String {
    page.body
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

/// Every mail in the IdP's outbox, newest first.
pub async fn outbox(idp: &TestIdp) -> Vec<Value> {
    reqwest::get(idp.url("/dev/outbox.json"))
        .await
        .expect("outbox")
        .json()
        .await
        .expect("json")
}

/// The newest mail to `to` whose subject is `subject` (waiting for background sends).
pub async fn mail(idp: &TestIdp, to: &str, subject: &str) -> String {
    for _ in 0..50 {
        if let Some(m) = outbox(idp)
            .await
            .into_iter()
            .find(|m| m["to"] == to && m["subject"] == subject)
        {
            return m["body_text"].as_str().expect("body").to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no mail {subject:?} to {to}");
}

/// The first link in a mail body.
pub fn link_in(body: &str) -> String {
    body.split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("a link in the mail")
        .to_string()
}

/// Follows the link of the "Conferma il nuovo indirizzo email" mail sent to `new_email`
/// and confirms it, as the signed-in person does in the Area riservata.
pub async fn confirm_email_change(idp: &TestIdp, browser: &Browser, new_email: &str) {
    let link = link_in(&mail(idp, new_email, "Conferma il nuovo indirizzo email").await);
    let page = browser.follow(&link, &idp.base).await;
    browser
        .submit(
            &idp.url("/area-riservata/email/conferma"),
            &[
                ("csrf", &hidden(&page.body, "csrf").expect("csrf")),
                ("token", &hidden(&page.body, "token").expect("token")),
            ],
            &idp.base,
        )
        .await;
}

/// The value after `label` on its line of a mail body.
pub fn line_value(body: &str, label: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix(label))
        .expect(label)
        .trim()
        .to_string()
}

/// Step 1 of Registrati (fiscal code) with the security question answered.
pub async fn step_one(idp: &TestIdp, browser: &Browser, fiscal_code: &str) -> Page {
    let page = browser.follow(&idp.url("/registrati"), &idp.base).await;
    assert!(text_of(&page).contains("Passaggio 1 di 4"), "{}", page.body);
    let question = page
        .body
        .split("Quanto fa ")
        .nth(1)
        .and_then(|s| s.split('?').next())
        .expect("a security question");
    let answer = security_check::solve(&format!("Quanto fa {question}?"))
        .expect("solvable")
        .to_string();
    browser
        .submit(
            &idp.url("/registrati"),
            &[
                ("csrf", &hidden(&page.body, "csrf").expect("csrf")),
                (
                    "check_id",
                    &hidden(&page.body, "check_id").expect("check id"),
                ),
                ("fiscal_code", fiscal_code),
                ("check_answer", &answer),
            ],
            &idp.base,
        )
        .await
}

/// Step 2 of Registrati (personal data and consents), from the page step 1 returned.
pub async fn step_two(idp: &TestIdp, browser: &Browser, page: &Page, person: &Person<'_>) -> Page {
    browser
        .submit(
            &idp.url("/registrati"),
            &[
                ("csrf", &hidden(&page.body, "csrf").expect("csrf")),
                ("given_name", person.given_name),
                ("family_name", person.family_name),
                ("birth_date", person.birth_date),
                ("birth_place", person.birth_place),
                ("sex", person.sex),
                ("email", person.email),
                ("email_repeat", person.email),
                ("privacy", "on"),
                ("data_processing", "on"),
            ],
            &idp.base,
        )
        .await
}

/// Step 3 → 4: "Conferma" on the summary.
pub async fn confirm_summary(idp: &TestIdp, browser: &Browser, summary: &Page) -> Page {
    let four = browser
        .submit(
            &idp.url("/registrati"),
            &[
                ("csrf", &hidden(&summary.body, "csrf").expect("csrf")),
                ("action", "conferma"),
            ],
            &idp.base,
        )
        .await;
    assert!(text_of(&four).contains("Passaggio 4 di 4"), "{}", four.body);
    four
}

/// Opens the confirmation link of the newest "Conferma la registrazione" mail to
/// `email` and presses the button; returns the fields posted (to try them again).
pub async fn confirm_by_link(
    idp: &TestIdp,
    browser: &Browser,
    email: &str,
) -> (Page, Vec<(String, String)>) {
    let confirm = link_in(&mail(idp, email, "Conferma la registrazione").await);
    let page = browser.follow(&confirm, &idp.base).await;
    assert!(
        text_of(&page).contains("Conferma la registrazione"),
        "{}",
        page.body
    );
    let fields = vec![
        (
            "csrf".to_string(),
            hidden(&page.body, "csrf").expect("csrf"),
        ),
        (
            "token".to_string(),
            hidden(&page.body, "token").expect("token"),
        ),
    ];
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = browser
        .submit(&idp.url("/registrati/conferma"), &borrowed, &idp.base)
        .await;
    assert!(
        text_of(&done).contains("Registrazione completata"),
        "{}",
        done.body
    );
    (done, fields)
}

/// The username and temporary password of the newest credentials mail to `email`.
pub async fn credentials_mail(idp: &TestIdp, email: &str) -> Credentials {
    let body = mail(idp, email, "Le tue credenziali di accesso").await;
    Credentials {
        username: line_value(&body, "Username:"),
        temporary_password: line_value(&body, "Password provvisoria:"),
    }
}

/// Registers `person` through the four steps and the confirmation link; returns the
/// credentials the IdP mailed.
pub async fn register(idp: &TestIdp, person: &Person<'_>) -> Credentials {
    let browser = Browser::new();
    let two = step_one(idp, &browser, person.fiscal_code).await;
    assert!(text_of(&two).contains("Passaggio 2 di 4"), "{}", two.body);
    let three = step_two(idp, &browser, &two, person).await;
    assert!(
        text_of(&three).contains("Passaggio 3 di 4"),
        "{}",
        three.body
    );
    confirm_summary(idp, &browser, &three).await;
    confirm_by_link(idp, &browser, person.email).await;
    credentials_mail(idp, person.email).await
}

/// On the forced change page (after a first login with the temporary password),
/// chooses `new_password`; returns where the IdP sent the browser next.
pub async fn change_temporary_password(
    idp: &TestIdp,
    browser: &Browser,
    new_password: &str,
) -> Page {
    let change = browser
        .follow(&idp.url("/cambio-password"), &idp.base)
        .await;
    assert!(
        text_of(&change).contains("Cambia la password provvisoria"),
        "{}",
        change.body
    );
    let csrf = hidden(&change.body, "csrf").expect("csrf");
    browser
        .submit(
            &idp.url("/cambio-password"),
            &[
                ("csrf", &csrf),
                ("new_password", new_password),
                ("repeat_password", new_password),
            ],
            &idp.base,
        )
        .await
}
