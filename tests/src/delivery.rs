//! A test double of the delivery side only (what the SMTP server would be): it refuses
//! as many messages as the test asks, then passes every message on to the real
//! delivery (the development outbox). The queue, the sender and their retries under
//! test are the real code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use idp_core::mail::{Mailer, OutgoingMail};
use idp_core::{CoreError, Result};

/// The test's handle on the refusals: how many to make, how many were made.
#[derive(Clone, Default)]
pub struct SmtpRefusals {
    left: Arc<AtomicU32>,
    made: Arc<AtomicU32>,
}

impl SmtpRefusals {
    /// The next `n` deliveries are refused.
    pub fn refuse_next(&self, n: u32) {
        self.left.store(n, Ordering::SeqCst);
    }

    pub fn made(&self) -> u32 {
        self.made.load(Ordering::SeqCst)
    }

    /// The delivery to put in front of `inner` (see `TestIdp::start_with_delivery`).
    pub fn delivery(&self, inner: Arc<dyn Mailer>) -> Arc<dyn Mailer> {
        Arc::new(RefusingSmtpDouble {
            inner,
            refusals: self.clone(),
        })
    }
}

struct RefusingSmtpDouble {
    inner: Arc<dyn Mailer>,
    refusals: SmtpRefusals,
}

#[async_trait]
impl Mailer for RefusingSmtpDouble {
    async fn send(&self, mail: OutgoingMail) -> Result<()> {
        let refuse = self
            .refusals
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            self.refusals.made.fetch_add(1, Ordering::SeqCst);
            return Err(CoreError::Mail(
                "451 4.3.0 test double: mail server unavailable".into(),
            ));
        }
        self.inner.send(mail).await
    }
}
