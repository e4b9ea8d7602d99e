//! The development mail outbox: lists what the demo "sent", so a person trying the
//! demo (or a test) can follow the links in the mail. Routed only in demo mode.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;
use crate::state::AppState;
use crate::web::page;

const SHOWN: i64 = 200;

pub struct MailView {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body_text: String,
    pub sent_at: String,
    pub attachments: Vec<String>,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    mails: Vec<MailView>,
}

pub async fn list(State(state): State<AppState>) -> Result<Response, AppError> {
    let mails = state
        .store
        .list_mail(SHOWN)
        .await?
        .into_iter()
        .map(|m| MailView {
            sent_at: chrono::DateTime::from_timestamp(m.created_at, 0)
                .map(|t| t.format("%d/%m/%Y %H:%M:%S UTC").to_string())
                .unwrap_or_default(),
            attachments: m.attachments.iter().map(|a| a.filename.clone()).collect(),
            id: m.id,
            to: m.to,
            subject: m.subject,
            body_text: m.body_text,
        })
        .collect();
    Ok(page(&OutboxPage { mails }))
}

#[derive(Serialize)]
pub struct MailJson {
    id: String,
    to: String,
    subject: String,
    body_text: String,
    created_at: i64,
    attachments: Vec<String>,
}

/// The same list as JSON, newest first, for scripts and tests.
pub async fn list_json(State(state): State<AppState>) -> Result<Json<Vec<MailJson>>, AppError> {
    let mails = state.store.list_mail(SHOWN).await?;
    Ok(Json(
        mails
            .into_iter()
            .map(|m| MailJson {
                attachments: m.attachments.iter().map(|a| a.filename.clone()).collect(),
                id: m.id,
                to: m.to,
                subject: m.subject,
                body_text: m.body_text,
                created_at: m.created_at,
            })
            .collect(),
    ))
}

pub async fn attachment(
    State(state): State<AppState>,
    Path((id, index)): Path<(String, usize)>,
) -> Result<Response, AppError> {
    let mails = state.store.list_mail(SHOWN).await?;
    let found = mails
        .into_iter()
        .find(|m| m.id == id)
        .and_then(|m| m.attachments.into_iter().nth(index))
        .ok_or_else(AppError::not_found)?;
    let content_type = HeaderValue::from_str(&found.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        found.filename.replace('"', "")
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        found.content,
    )
        .into_response())
}
