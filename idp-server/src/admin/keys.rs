//! `idp-server keys rotate` and `idp-server keys list`: the signing keys in the
//! configured database. Running servers pick a rotation up at their next key reload.

use anyhow::Context;
use idp_core::directory::now;
use idp_core::keys::{KeyRing, KeySettings, KeyStore, SigningAlgorithm, SigningKey};
use idp_core::store::sql::SqlStore;

use crate::config::Config;

/// Rotates the key of `algorithm`, or of every configured algorithm when `None`, and
/// says what happens next.
pub async fn rotate(
    config: &Config,
    algorithm: Option<SigningAlgorithm>,
) -> anyhow::Result<String> {
    let store = connect(config).await?;
    let text = rotate_in(
        &store,
        &config.keys.settings(),
        algorithm,
        now(),
        config.keys.reload_interval_secs,
    )
    .await;
    if let Ok(done) = &text {
        let event = idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::KeyRotated)
            .detail(serde_json::json!({
                "algorithm": algorithm.map(|a| a.to_string()).unwrap_or_else(|| "all".into()),
                "result": done.lines().collect::<Vec<_>>(),
            }));
        idp_core::audit::record(&store, event).await;
    }
    store.close().await;
    text
}

/// The stored keys, one a line.
pub async fn list(config: &Config) -> anyhow::Result<String> {
    let store = connect(config).await?;
    let keys = store.list_keys().await;
    store.close().await;
    Ok(format_keys(&keys?, &config.keys.settings(), now()))
}

/// Connects and applies the migrations (idempotent), so that the commands also work on
/// a database no server has started on yet.
async fn connect(config: &Config) -> anyhow::Result<SqlStore> {
    let store = SqlStore::connect(&config.database.url, 1)
        .await
        .context("database: cannot connect")?;
    store
        .migrate()
        .await
        .context("database: migrations failed")?;
    Ok(store)
}

async fn rotate_in(
    store: &dyn KeyStore,
    settings: &KeySettings,
    algorithm: Option<SigningAlgorithm>,
    at: i64,
    reload_interval_secs: u64,
) -> anyhow::Result<String> {
    let algorithms = match algorithm {
        Some(a) => vec![a],
        None => settings.algorithms.clone(),
    };
    let mut text = String::new();
    for algorithm in algorithms {
        let key = KeyRing::rotate(store, settings, Some(algorithm))
            .await
            .with_context(|| format!("rotating the {algorithm} key"))?;
        text.push_str(&format!(
            "{algorithm}: new key {} published now, signs from {} (in {} s); the older \
             {algorithm} keys leave the JWKS at {}.\n",
            key.kid,
            time(key.sign_from),
            key.sign_from - at,
            time(key.sign_from + settings.max_token_lifetime_secs),
        ));
    }
    text.push_str(&format!(
        "Running servers pick the new keys up within {reload_interval_secs} s \
         (keys.reload_interval_secs).\n"
    ));
    Ok(text)
}

/// A table of the keys, oldest first, with what each does at `at`: `signing` (the key
/// tokens of its algorithm are signed with), `next` (published, signs later),
/// `verify-only` (published for tokens it signed before), `retired` (past retire_at,
/// deleted at the next reload) or `unused` (an algorithm that is not configured).
fn format_keys(keys: &[SigningKey], settings: &KeySettings, at: i64) -> String {
    let signer = |algorithm: SigningAlgorithm| {
        keys.iter()
            .filter(|k| k.algorithm == algorithm && k.can_sign_at(at))
            .max_by(|a, b| (a.sign_from, &a.kid).cmp(&(b.sign_from, &b.kid)))
            .map(|k| k.kid.as_str())
    };
    let mut text = format!(
        "{:<43}  {:<9}  {:<11}  {:<23}  {:<23}  {}\n",
        "kid", "algorithm", "state", "created", "signs from", "retired at"
    );
    for k in keys {
        let state = if !settings.algorithms.contains(&k.algorithm) {
            "unused"
        } else if !k.is_published_at(at) {
            "retired"
        } else if signer(k.algorithm) == Some(k.kid.as_str()) {
            "signing"
        } else if k.sign_from > at {
            "next"
        } else {
            "verify-only"
        };
        text.push_str(&format!(
            "{:<43}  {:<9}  {:<11}  {:<23}  {:<23}  {}\n",
            k.kid,
            k.algorithm.as_str(),
            state,
            time(k.created_at),
            time(k.sign_from),
            k.retire_at.map_or_else(|| "-".to_string(), time),
        ));
    }
    if keys.is_empty() {
        text.push_str("(no keys: the server creates them at its first start)\n");
    }
    text
}

fn time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn store() -> Arc<SqlStore> {
        let store = SqlStore::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    fn state_of<'a>(table: &'a str, kid: &str) -> &'a str {
        let line = table.lines().find(|l| l.starts_with(kid)).unwrap();
        line.split_whitespace().nth(2).unwrap()
    }

    #[tokio::test]
    async fn rotating_without_an_algorithm_rotates_every_configured_one() {
        let store = store().await;
        let settings = KeySettings::default();
        KeyRing::load(store.clone(), settings.clone())
            .await
            .unwrap();
        let before = store.list_keys().await.unwrap();
        let text = rotate_in(store.as_ref(), &settings, None, now(), 30)
            .await
            .unwrap();
        assert!(
            text.contains("ES256: new key") && text.contains("RS256: new key"),
            "{text}"
        );
        assert!(text.contains("within 30 s"), "{text}");
        let after = store.list_keys().await.unwrap();
        assert_eq!(after.len(), 4);

        let table = format_keys(&after, &settings, now());
        for old in &before {
            assert_eq!(state_of(&table, &old.kid), "signing", "{table}");
        }
        for new in after
            .iter()
            .filter(|k| before.iter().all(|b| b.kid != k.kid))
        {
            assert_eq!(state_of(&table, &new.kid), "next", "{table}");
            assert!(table.contains(&time(new.sign_from)));
        }
        // Once the new keys sign, the old ones are kept for verification only.
        let later = now() + settings.rotation_delay_secs + 1;
        let table = format_keys(&after, &settings, later);
        for old in &before {
            assert_eq!(state_of(&table, &old.kid), "verify-only", "{table}");
        }
    }

    #[tokio::test]
    async fn rotating_one_algorithm_leaves_the_other_alone() {
        let store = store().await;
        let settings = KeySettings::default();
        KeyRing::load(store.clone(), settings.clone())
            .await
            .unwrap();
        let text = rotate_in(
            store.as_ref(),
            &settings,
            Some(SigningAlgorithm::Rs256),
            now(),
            30,
        )
        .await
        .unwrap();
        assert!(
            text.contains("RS256: new key") && !text.contains("ES256"),
            "{text}"
        );
        let keys = store.list_keys().await.unwrap();
        assert_eq!(
            keys.iter()
                .filter(|k| k.algorithm == SigningAlgorithm::Es256)
                .count(),
            1
        );
    }

    #[test]
    fn an_empty_store_says_so() {
        let text = format_keys(&[], &KeySettings::default(), 0);
        assert!(text.contains("no keys"));
    }
}
