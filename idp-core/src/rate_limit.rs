//! Abuse limits kept in the shared cache, so that they hold across instances: a
//! counter per subject (an account, an address, an email) within a window, and a
//! temporary lock once the counter reaches its maximum.

use std::sync::Arc;
use std::time::Duration;

use crate::Result;
use crate::cache::Cache;

/// One kind of limit: at most `max` events per `window`, then `lockout` of refusal.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub name: &'static str,
    pub max: u64,
    pub window: Duration,
    pub lockout: Duration,
}

/// Wrong passwords for one username: 5 in 15 minutes lock it for 15 minutes.
pub const LOGIN_ACCOUNT: Limit = Limit {
    name: "login-account",
    max: 5,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};
/// Wrong passwords from one address (many usernames): 30 in 15 minutes.
pub const LOGIN_ADDRESS: Limit = Limit {
    name: "login-address",
    max: 30,
    window: Duration::from_secs(15 * 60),
    lockout: Duration::from_secs(15 * 60),
};
/// Forms that send email or create state (registration, reset, email change), per
/// address.
pub const MAIL_FORM_ADDRESS: Limit = Limit {
    name: "mail-address",
    max: 20,
    window: Duration::from_secs(60 * 60),
    lockout: Duration::from_secs(60 * 60),
};
/// Messages towards one recipient (an account or an email address).
pub const MAIL_FORM_TARGET: Limit = Limit {
    name: "mail-target",
    max: 3,
    window: Duration::from_secs(60 * 60),
    lockout: Duration::from_secs(60 * 60),
};
/// Registration steps from one address (security check answers included).
pub const REGISTRATION_ADDRESS: Limit = Limit {
    name: "registration-address",
    max: 60,
    window: Duration::from_secs(60 * 60),
    lockout: Duration::from_secs(30 * 60),
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Blocked { retry_after: Duration },
}

#[derive(Clone)]
pub struct RateLimiter {
    cache: Arc<dyn Cache>,
}

fn count_key(limit: &Limit, subject: &str) -> String {
    format!("rl:{}:count:{}", limit.name, subject.to_lowercase())
}
fn lock_key(limit: &Limit, subject: &str) -> String {
    format!("rl:{}:lock:{}", limit.name, subject.to_lowercase())
}

impl RateLimiter {
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    /// How long the subject is still locked, if it is.
    pub async fn locked(&self, limit: &Limit, subject: &str) -> Result<Option<Duration>> {
        self.cache.time_to_live(&lock_key(limit, subject)).await
    }

    /// `locked` for two (limit, subject) pairs at once (one round trip on Redis): the
    /// first pair's wait if it is locked, else the second's.
    pub async fn locked_either(
        &self,
        first: (&Limit, &str),
        second: (&Limit, &str),
    ) -> Result<Option<(&'static str, Duration)>> {
        let (a, b) = tokio::try_join!(
            self.locked(first.0, first.1),
            self.locked(second.0, second.1)
        )?;
        Ok(a.map(|w| (first.0.name, w))
            .or(b.map(|w| (second.0.name, w))))
    }

    /// Counts one event (a failure, a sent mail); the event that reaches the maximum
    /// starts the lock.
    pub async fn record(&self, limit: &Limit, subject: &str) -> Result<()> {
        let n = self
            .cache
            .increment(&count_key(limit, subject), limit.window)
            .await?;
        if n >= limit.max {
            self.cache
                .put(&lock_key(limit, subject), b"1", limit.lockout)
                .await?;
            self.cache.delete(&count_key(limit, subject)).await?;
        }
        Ok(())
    }

    /// Refuses when locked; otherwise counts the event and allows it.
    pub async fn attempt(&self, limit: &Limit, subject: &str) -> Result<Verdict> {
        if let Some(retry_after) = self.locked(limit, subject).await? {
            return Ok(Verdict::Blocked { retry_after });
        }
        self.record(limit, subject).await?;
        Ok(Verdict::Allowed)
    }

    /// Forgets the failures (a successful sign-in).
    pub async fn reset(&self, limit: &Limit, subject: &str) -> Result<()> {
        self.cache.delete(&count_key(limit, subject)).await
    }
}

/// "Riprova tra 15 minuti.": the wait, rounded up to whole minutes.
pub fn wait_message_it(retry_after: Duration) -> String {
    let minutes = retry_after.as_secs().div_ceil(60).max(1);
    let unit = if minutes == 1 { "minuto" } else { "minuti" };
    format!("Troppi tentativi: per sicurezza l'operazione è sospesa. Riprova tra {minutes} {unit}.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[tokio::test]
    async fn the_fifth_failure_locks_the_subject_for_the_lockout() {
        let rl = RateLimiter::new(Arc::new(MemoryCache::new()));
        for _ in 0..4 {
            rl.record(&LOGIN_ACCOUNT, "mario.rossi").await.unwrap();
            assert_eq!(
                rl.locked(&LOGIN_ACCOUNT, "mario.rossi").await.unwrap(),
                None
            );
        }
        rl.record(&LOGIN_ACCOUNT, "Mario.Rossi").await.unwrap();
        let wait = rl
            .locked(&LOGIN_ACCOUNT, "mario.rossi")
            .await
            .unwrap()
            .unwrap();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(
            rl.locked(&LOGIN_ACCOUNT, "anna.bianchi")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn attempts_are_refused_once_the_maximum_is_reached() {
        let rl = RateLimiter::new(Arc::new(MemoryCache::new()));
        for _ in 0..3 {
            assert_eq!(
                rl.attempt(&MAIL_FORM_TARGET, "x").await.unwrap(),
                Verdict::Allowed
            );
        }
        assert!(matches!(
            rl.attempt(&MAIL_FORM_TARGET, "x").await.unwrap(),
            Verdict::Blocked { .. }
        ));
    }

    #[test]
    fn the_wait_is_said_in_whole_minutes() {
        assert!(wait_message_it(Duration::from_secs(61)).ends_with("Riprova tra 2 minuti."));
        assert!(wait_message_it(Duration::from_secs(5)).ends_with("Riprova tra 1 minuto."));
    }
}
