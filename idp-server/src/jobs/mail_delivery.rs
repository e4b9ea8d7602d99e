//! The mail sender: delivers the queued mail (`idp_core::mail_queue`) through the
//! configured `Mailer`. It runs on every instance, woken by the requests that queue mail
//! and every `[mail] poll_interval_secs` otherwise (for retries and for mail that
//! another instance queued or left behind). Each mail is claimed with a lease, so
//! instances never deliver the same mail at once; a failed attempt is retried with a
//! doubling wait, and after `[mail] max_attempts` the mail is given up on: logged,
//! audited, counted, its body blanked. Bodies are never logged.

use std::time::Duration;

use idp_core::audit::{AuditEvent, AuditKind};
use idp_core::directory::now;
use idp_core::mail_queue::{AfterFailure, QueuedMail, error_summary};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::state::AppState;

/// Mails claimed per round, delivered side by side (a slow mail server then delays a
/// round by one delivery's time, not by the batch's).
const BATCH: i64 = 10;

/// What one pass over the due mail did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub retried: u64,
    pub abandoned: u64,
}

/// Delivers until nothing is due, then waits for a wake-up, the poll interval or `stop`.
pub async fn run(state: AppState, mut stopped: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.mail.poll_interval_secs.max(1));
    loop {
        if let Err(e) = deliver_due(&state).await {
            tracing::warn!(error = %e, "mail: delivery round failed; retried at the next poll");
        }
        match state.store.count_queued_mail().await {
            Ok(n) => state.metrics.set_mail_queued(n),
            Err(e) => tracing::debug!(error = %e, "mail: cannot count the queue"),
        }
        tokio::select! {
            _ = state.mail_wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Claims and delivers every mail due now, batch after batch.
pub async fn deliver_due(state: &AppState) -> idp_core::Result<Delivery> {
    let lease = i64::try_from(state.config.mail.lease_secs.max(1)).unwrap_or(i64::MAX / 2);
    let mut done = Delivery::default();
    loop {
        let at = now();
        let batch = state.store.claim_mail(at, at + lease, BATCH).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        let mut deliveries = JoinSet::new();
        for queued in batch {
            let state = state.clone();
            deliveries.spawn(async move {
                let mut one = Delivery::default();
                deliver(&state, queued, &mut one).await.map(|()| one)
            });
        }
        // Every delivery of the round finishes (each marks its own mail) before an
        // error ends the round; the mails of a failed mark return after their lease.
        let mut failure = None;
        while let Some(joined) = deliveries.join_next().await {
            match joined {
                Ok(Ok(one)) => {
                    done.sent += one.sent;
                    done.retried += one.retried;
                    done.abandoned += one.abandoned;
                }
                Ok(Err(e)) => failure = Some(e),
                Err(e) => tracing::error!(error = %e, "mail: a delivery task failed"),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

async fn deliver(
    state: &AppState,
    queued: QueuedMail,
    done: &mut Delivery,
) -> idp_core::Result<()> {
    let QueuedMail {
        id,
        claim,
        mail,
        attempts,
        ..
    } = queued;
    let subject = mail.subject.clone();
    match state.mailer.send(mail).await {
        Ok(()) => {
            // A crash right here resends this mail once, after the lease: at least once.
            if !state.store.mail_sent(&id, &claim).await? {
                tracing::warn!(mail = %id, "mail: delivered after its lease ran out");
            }
            tracing::info!(mail = %id, subject = %subject, attempts, "mail delivered");
            done.sent += 1;
        }
        Err(e) => {
            let error = error_summary(&e.to_string());
            match state
                .config
                .mail
                .retry_policy()
                .after_failure(attempts, now())
            {
                AfterFailure::RetryAt(at) => {
                    state.store.mail_retry(&id, &claim, at, &error).await?;
                    tracing::warn!(mail = %id, subject = %subject, attempts, retry_at = at,
                        error = %error, "mail: delivery failed; will retry");
                    done.retried += 1;
                }
                AfterFailure::GiveUp => {
                    state
                        .store
                        .mail_abandoned(&id, &claim, now(), &error)
                        .await?;
                    tracing::error!(mail = %id, subject = %subject, attempts, error = %error,
                        "mail: delivery failed for the last time; given up");
                    state.metrics.email_abandoned();
                    state
                        .audit(AuditEvent::new(AuditKind::MailUndeliverable).detail(
                            serde_json::json!({
                                "mail": id, "subject": subject, "attempts": attempts, "error": error,
                            }),
                        ))
                        .await;
                    done.abandoned += 1;
                }
            }
        }
    }
    Ok(())
}
