//! `idp-server accounts import FILE.csv`: loads existing accounts (`nome_cognome`
//! staff and `ministry` users) keeping their usernames and institutional emails, with
//! no password: `nome_cognome` users set one through "Password dimenticata?", ministry
//! users keep signing in with the Ministry's directory.
//!
//! The file is UTF-8 CSV with a header row naming the columns (any order):
//! `username,kind,given_name,family_name,fiscal_code,institutional_email,personal_email`
//! (`fiscal_code` and `personal_email` may be empty). Fields may be double-quoted.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::{Directory, NewAccount};
use idp_core::fiscal_code::FiscalCode;
use idp_core::password::PasswordHasher;
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;

use crate::config::Config;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub created: usize,
    /// Rows whose username (or fiscal code) already exists: left as they are.
    pub skipped: usize,
    /// `line: reason` for each refused row.
    pub errors: Vec<String>,
}

pub async fn import_file(config: &Config, file: &Path) -> anyhow::Result<ImportReport> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = SqlStore::connect(&config.database.url, 1)
        .await
        .context("database: cannot connect")?;
    store
        .migrate()
        .await
        .context("database: migrations failed")?;
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let directory = Directory::new(
        shared,
        Arc::new(PasswordHasher::new(config.passwords.hash)?),
        config.passwords.policy.clone(),
    );
    let report = import(&directory, &text).await;
    store.close().await;
    report
}

/// Imports the rows of a CSV text; a bad row is reported and the others go on.
pub async fn import(directory: &Directory, text: &str) -> anyhow::Result<ImportReport> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("the file is empty");
    };
    let header: Vec<String> = split_csv(header)
        .into_iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(username), Some(kind), Some(given), Some(family)) = (
        column("username"),
        column("kind"),
        column("given_name"),
        column("family_name"),
    ) else {
        bail!("the header must name username, kind, given_name and family_name");
    };
    let (fiscal, institutional, personal) = (
        column("fiscal_code"),
        column("institutional_email"),
        column("personal_email"),
    );
    let mut report = ImportReport::default();
    for (index, line) in lines {
        let n = index + 1;
        let row = split_csv(line);
        let get = |i: Option<usize>| {
            i.and_then(|i| row.get(i))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let new = (|| -> Result<NewAccount, String> {
            let kind = AccountKind::parse(&get(Some(kind)).unwrap_or_default())
                .map_err(|e| e.to_string())?;
            if kind == AccountKind::Registered {
                return Err("kind must be nome_cognome or ministry".into());
            }
            let email = |v: Option<String>| {
                v.map(|e| Email::parse(&e).map_err(|e| e.to_string()))
                    .transpose()
            };
            Ok(NewAccount {
                kind,
                username: Some(
                    Username::parse(&get(Some(username)).unwrap_or_default())
                        .map_err(|e| e.to_string())?,
                ),
                given_name: get(Some(given)).ok_or("given_name is empty")?,
                family_name: get(Some(family)).ok_or("family_name is empty")?,
                fiscal_code: get(fiscal)
                    .map(|f| FiscalCode::parse(&f).map_err(|e| e.to_string()))
                    .transpose()?,
                institutional_email: email(get(institutional))?,
                personal_email: email(get(personal))?,
                birth_date: None,
                birth_place: None,
                sex: None,
            })
        })();
        match new {
            Err(e) => report.errors.push(format!("line {n}: {e}")),
            Ok(new) => match directory.create_account(new).await {
                Ok(_) => report.created += 1,
                Err(idp_core::CoreError::Conflict(_)) => report.skipped += 1,
                Err(e) => report.errors.push(format!("line {n}: {e}")),
            },
        }
    }
    Ok(report)
}

/// One CSV record: commas separate, double quotes protect commas and `""` is a quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("a field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// Grants (or revokes) a role to the account with this username; prints nothing, the
/// caller reports. Unknown roles are refused (see `idp_core::role::KNOWN_ROLES`).
pub async fn set_role(
    config: &Config,
    username: &str,
    role: &str,
    grant: bool,
) -> anyhow::Result<bool> {
    idp_core::role::check_role(role)?;
    let username = idp_core::account::Username::parse(username)?;
    let store = SqlStore::connect(&config.database.url, 1)
        .await
        .context("database: cannot connect")?;
    store
        .migrate()
        .await
        .context("database: migrations failed")?;
    use idp_core::role::RoleStore;
    use idp_core::store::AccountStore;
    let account = store
        .account_by_username(&username)
        .await?
        .with_context(|| format!("no account with username {username}"))?;
    let changed = if grant {
        store.grant_role(account.id.as_str(), role).await?;
        true
    } else {
        store.revoke_role(account.id.as_str(), role).await?
    };
    store.close().await;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_their_commas_and_quotes() {
        assert_eq!(
            split_csv(r#"a,"b, c","d ""e""",,"#),
            ["a", "b, c", "d \"e\"", "", ""]
        );
    }

    #[tokio::test]
    async fn rows_become_accounts_without_password_and_bad_rows_are_reported() {
        let store = SqlStore::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let directory = Directory::new(
            Arc::new(store.clone()),
            Arc::new(PasswordHasher::new(Default::default()).unwrap()),
            Default::default(),
        );
        let csv = "username,kind,given_name,family_name,fiscal_code,institutional_email,personal_email\n\
                   mario.rossi,nome_cognome,Mario,Rossi,,mario.rossi@istruzione.it,\n\
                   luca.verdi7,ministry,Luca,Verdi,,luca.verdi7@istruzione.it,luca@example.org\n\
                   Bad Name,ministry,X,Y,,,\n\
                   mario.rossi,nome_cognome,Mario,Rossi,,,\n";
        let report = import(&directory, csv).await.unwrap();
        assert_eq!(report.created, 2);
        assert_eq!(report.skipped, 1);
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert!(report.errors[0].starts_with("line 4:"));
        let luca = directory
            .store()
            .account_by_username(&Username::parse("luca.verdi7").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(luca.kind, AccountKind::Ministry);
        assert!(luca.password.is_none());
        assert_eq!(
            luca.institutional_email.unwrap().as_str(),
            "luca.verdi7@istruzione.it"
        );
    }
}
