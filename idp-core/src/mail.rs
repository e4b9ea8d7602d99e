//! Outgoing mail as the domain composes it, and the `Mailer` that delivers it. The SMTP
//! delivery lives in the server (it is I/O configuration); the development outbox,
//! which keeps every message in storage for the demo's outbox page, lives here.

use std::sync::Arc;

use async_trait::async_trait;

use crate::Result;
use crate::account::Email;
use crate::store::OutboxStore;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// A message ready to be delivered. The text is final (Italian, for the person).
#[derive(Clone)]
pub struct OutgoingMail {
    pub to: Email,
    pub subject: String,
    pub body_text: String,
    pub attachments: Vec<Attachment>,
}

/// Never prints the body: it carries temporary passwords and single-use links.
impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

/// A message as the development outbox keeps it. `Debug` leaves the body out.
#[derive(Clone)]
pub struct StoredMail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body_text: String,
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
}

impl std::fmt::Debug for StoredMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMail")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: OutgoingMail) -> Result<()>;
}

/// Delivers into storage instead of the network: the demo and the tests read it back.
pub struct OutboxMailer {
    store: Arc<dyn OutboxStore>,
}

impl OutboxMailer {
    pub fn new(store: Arc<dyn OutboxStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<()> {
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail kept in the development outbox");
        self.store.push_mail(&mail).await
    }
}
