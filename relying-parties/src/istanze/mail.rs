//! Istanze OnLine's own mailer: every mail lands in the `istanze_outbox` table (listed
//! at `/dev/outbox.json` when the dev pages are on) and, when an SMTP URL is
//! configured, also goes out through lettre.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart, header};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use super::store::Store;

pub struct Attachment {
    pub filename: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct Mailer {
    store: Store,
    from: String,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Mailer {
    /// `smtp_url` as lettre reads it (`smtps://user:pass@host:465`, `smtp://host:25`).
    pub fn new(store: Store, from: String, smtp_url: Option<&str>) -> anyhow::Result<Mailer> {
        let smtp = match smtp_url {
            Some(url) => Some(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build()),
            None => None,
        };
        Ok(Mailer { store, from, smtp })
    }

    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        attachments: Vec<Attachment>,
    ) -> anyhow::Result<()> {
        let listed: Vec<_> = attachments
            .iter()
            .map(|a| {
                json!({
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "base64": STANDARD.encode(&a.bytes),
                })
            })
            .collect();
        self.store
            .add_mail(to, subject, body, &serde_json::to_string(&listed)?)
            .await?;
        if let Some(smtp) = &self.smtp {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(body.to_string()));
            for a in attachments {
                parts = parts.singlepart(
                    LettreAttachment::new(a.filename)
                        .body(a.bytes, header::ContentType::parse(a.content_type)?),
                );
            }
            let message = Message::builder()
                .from(self.from.parse::<Mailbox>()?)
                .to(to.parse::<Mailbox>()?)
                .subject(subject)
                .multipart(parts)?;
            smtp.send(message).await?;
        }
        tracing::info!(to, subject, "mail sent");
        Ok(())
    }
}
