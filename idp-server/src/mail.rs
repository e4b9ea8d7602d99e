//! SMTP delivery with lettre over rustls, for production. (The development outbox
//! is `idp_core::mail::OutboxMailer`.)

use async_trait::async_trait;
use idp_core::mail::{Mailer, OutgoingMail};
use idp_core::{CoreError, Result};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpConfig;

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig, from: &str) -> Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| CoreError::Mail(format!("mail.from: {e}")))?;
        let mut builder = match config.security.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &config.host,
            )),
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
        }
        .map_err(|e| CoreError::Mail(e.to_string()))?
        .port(config.port);
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<()> {
        let to: Mailbox = mail
            .to
            .as_str()
            .parse()
            .map_err(|e| CoreError::Mail(format!("recipient: {e}")))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone());
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body_text.clone());
        let message = if mail.attachments.is_empty() {
            builder.singlepart(text)
        } else {
            let mut multipart = MultiPart::mixed().singlepart(text);
            for a in &mail.attachments {
                let content_type = ContentType::parse(&a.content_type)
                    .map_err(|e| CoreError::Mail(format!("attachment type: {e}")))?;
                multipart = multipart.singlepart(
                    Attachment::new(a.filename.clone()).body(a.content.clone(), content_type),
                );
            }
            builder.multipart(multipart)
        }
        .map_err(|e| CoreError::Mail(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| CoreError::Mail(e.to_string()))?;
        tracing::info!(subject = %mail.subject, "mail sent over SMTP");
        Ok(())
    }
}
