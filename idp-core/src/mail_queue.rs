//! The durable mail queue: a mail is stored in the same transaction as the state change
//! it announces (an account and its credentials, a link and the mail carrying it), then
//! delivered by the server's background sender through a [`crate::mail::Mailer`], with
//! retries. Delivery is at least once: a claim is a lease, so a mail whose instance died
//! mid-send is sent again by another one after the lease; a crash between the mail
//! server's acceptance and the deletion of the row resends that mail once.

use async_trait::async_trait;

use crate::Result;
use crate::mail::OutgoingMail;

/// A mail claimed for one delivery attempt. `claim` proves the lease: marking a mail
/// with a stale claim (the lease expired and another instance took it) does nothing.
#[derive(Clone)]
pub struct QueuedMail {
    pub id: String,
    pub claim: String,
    pub mail: OutgoingMail,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: i64,
}

/// Never prints the body (it holds temporary passwords and links).
impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("subject", &self.mail.subject)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait MailQueueStore: Send + Sync {
    /// Queues a mail on its own (no state change to join); returns its id. The queue
    /// carries text mail only: a mail with attachments is `CoreError::Invalid`.
    async fn enqueue_mail(&self, mail: &OutgoingMail, now: i64) -> Result<String>;
    /// Claims up to `limit` mails due at `now` that nobody holds (or whose holder's
    /// lease ran out), until `lease_until`, counting one attempt on each. Two callers
    /// never both get the same mail while its lease runs.
    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<QueuedMail>>;
    /// Delivered: the row (and its body) goes. False when the claim was stale.
    async fn mail_sent(&self, id: &str, claim: &str) -> Result<bool>;
    /// Not delivered this time: released, to be tried again at `next_attempt_at`.
    async fn mail_retry(
        &self,
        id: &str,
        claim: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<bool>;
    /// Given up: released for good, the body blanked; recipient, subject and error stay
    /// for the operators until `delete_mail_before`.
    async fn mail_abandoned(&self, id: &str, claim: &str, now: i64, error: &str) -> Result<bool>;
    /// Deletes every mail queued before `before`, given up on or still undelivered (its
    /// links have expired by then); returns how many went.
    async fn delete_mail_before(&self, before: i64) -> Result<u64>;
    /// Mails still to be delivered (given up ones excluded).
    async fn count_queued_mail(&self) -> Result<i64>;
}

/// The delivery schedule, from `[mail]` configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure, doubled after each further one.
    pub base_delay_secs: i64,
    /// The longest wait between two attempts.
    pub max_delay_secs: i64,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(i64),
    GiveUp,
}

impl RetryPolicy {
    /// `attempts` counts the attempt that just failed.
    pub fn after_failure(&self, attempts: u32, now: i64) -> AfterFailure {
        if attempts >= self.max_attempts.max(1) {
            return AfterFailure::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .base_delay_secs
            .max(1)
            .saturating_mul(1_i64 << doublings)
            .min(self.max_delay_secs.max(1));
        AfterFailure::RetryAt(now + delay)
    }
}

/// The error text kept with a mail: bounded, so a chatty server cannot bloat the row.
pub fn error_summary(error: &str) -> String {
    error.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base_delay_secs: 30,
        max_delay_secs: 100,
    };

    #[test]
    fn the_wait_doubles_after_each_failure_up_to_the_cap() {
        assert_eq!(POLICY.after_failure(1, 0), AfterFailure::RetryAt(30));
        assert_eq!(POLICY.after_failure(2, 0), AfterFailure::RetryAt(60));
        assert_eq!(POLICY.after_failure(3, 0), AfterFailure::RetryAt(100));
    }

    #[test]
    fn the_last_allowed_attempt_failing_gives_up() {
        assert_eq!(POLICY.after_failure(4, 0), AfterFailure::RetryAt(100));
        assert_eq!(POLICY.after_failure(5, 0), AfterFailure::GiveUp);
    }
}
