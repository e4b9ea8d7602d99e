//! The crate's error type (configuration, signing, state) and `Rejection`, a refused
//! SAML message with a stable reason label and an Italian message.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("signing: {0}")]
    Signing(String),
    #[error("state: {0}")]
    State(#[from] crate::StateError),
    #[error("unknown identity provider {0}")]
    UnknownIdp(String),
    #[error("the identity provider {0} has no endpoint for this binding")]
    NoEndpoint(String),
}

/// A refused response: `reason` is a short stable label (metrics, logs, tests),
/// `message_it` the Italian text for the error page, `detail` the precise cause for logs.
#[derive(Debug)]
pub struct Rejection {
    pub reason: &'static str,
    pub message_it: String,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            message_it:
                "La risposta del gestore dell'identità SPID non è valida. Riprova l'accesso."
                    .to_string(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SAML message rejected ({}): {}",
            self.reason, self.detail
        )
    }
}

impl std::error::Error for Rejection {}
