//! The server's one error type, and the one place where errors become HTTP answers:
//! pages get an Italian error page, APIs a precise JSON error.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idp_core::CoreError;

use crate::web::ErrorPage;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A page-level failure with its Italian title and message.
    #[error("{title}: {message}")]
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    /// A JSON API failure.
    #[error("{error}: {description}")]
    Api {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    #[error("template: {0}")]
    Template(#[from] askama::Error),
}

impl AppError {
    pub fn not_found() -> Self {
        AppError::Page {
            status: StatusCode::NOT_FOUND,
            title: "Pagina non trovata",
            message: "La pagina richiesta non esiste.".into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Core(e) if e.is_unavailable() => {
                tracing::error!(error = %e, "backing service unavailable");
                ErrorPage::response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Servizio momentaneamente non disponibile",
                    "Il servizio non è al momento raggiungibile. Riprova tra qualche minuto.",
                )
            }
            AppError::Core(CoreError::NotFound(what)) => {
                tracing::debug!(what, "not found");
                AppError::not_found().into_response()
            }
            AppError::Page {
                status,
                title,
                message,
            } => ErrorPage::response(status, title, &message),
            AppError::Api {
                status,
                error,
                description,
            } => (
                status,
                Json(serde_json::json!({ "error": error, "error_description": description })),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "internal error");
                ErrorPage::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Errore interno",
                    "Si è verificato un errore imprevisto. Riprova più tardi.",
                )
            }
        }
    }
}
