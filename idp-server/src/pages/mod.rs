//! The account pages of the shared credentials (issue 4): forced password change,
//! Registrati, Password dimenticata?, Area riservata. Each flow's handlers sit in the
//! module named after it and call the matching `idp_core` flow; this module holds
//! what they share (the client address, the signed-in account, mail, sessions).

pub mod account_area;
pub mod csrf;
pub mod password_change;
pub mod password_reset;
pub mod registration;

use std::net::SocketAddr;

use crate::web::Routes;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::cookie::CookieJar;
use idp_core::account::{AccountId, Email};
use idp_core::directory::Account;
use idp_core::mail::OutgoingMail;
use idp_core::oidc::ACR_PASSWORD;
use idp_core::rate_limit::{RateLimiter, Verdict, wait_message_it};
use idp_core::sso::SsoSession;

use crate::oidc::authorize::AuthorizationRequest;
use crate::oidc::{backchannel, session_cookie};
use crate::state::AppState;

pub fn routes() -> Routes {
    Routes::new()
        .route(
            "/cambio-password",
            get(password_change::forced_get).post(password_change::forced_post),
        )
        .route(
            "/registrati",
            get(registration::get).post(registration::post),
        )
        .route(
            "/registrati/conferma",
            get(registration::confirm_get).post(registration::confirm_post),
        )
        .route(
            "/password-dimenticata",
            get(password_reset::request_get).post(password_reset::request_post),
        )
        .route(
            "/password-dimenticata/nuova",
            get(password_reset::reset_get).post(password_reset::reset_post),
        )
        .route("/area-riservata", get(account_area::show))
        .route(
            "/area-riservata/email",
            axum::routing::post(account_area::email_post),
        )
        .route(
            "/area-riservata/email/conferma",
            get(account_area::email_confirm_get).post(account_area::email_confirm_post),
        )
        .route(
            "/area-riservata/password",
            get(password_change::area_get).post(password_change::area_post),
        )
}

/// The address a request comes from: the peer, or the first `X-Forwarded-For` entry
/// when `server.trust_forwarded_for` says a trusted proxy sets it.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.server.trust_forwarded_for
            && let Some(first) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return Ok(ClientIp(first.to_string()));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(peer))
    }
}

pub fn limiter(state: &AppState) -> RateLimiter {
    RateLimiter::new(state.cache.clone())
}

/// Counts one attempt against each limit; the Italian wait message when one is full.
pub async fn over_limit(
    state: &AppState,
    checks: &[(&idp_core::rate_limit::Limit, &str)],
) -> idp_core::Result<Option<String>> {
    let limiter = limiter(state);
    for (limit, subject) in checks {
        if let Verdict::Blocked { retry_after } = limiter.attempt(limit, subject).await? {
            tracing::info!(limit = limit.name, "rate limit reached");
            return Ok(Some(wait_message_it(retry_after)));
        }
    }
    Ok(None)
}

/// The signed-in account and its session, if any.
pub async fn signed_in(
    state: &AppState,
    jar: &CookieJar,
) -> idp_core::Result<Option<(Account, SsoSession)>> {
    let Some((_, session)) = session_cookie::current(state, jar).await? else {
        return Ok(None);
    };
    let id = AccountId::from_string(session.account_id.clone());
    Ok(state.store.account_by_id(&id).await?.map(|a| (a, session)))
}

/// Starts an SSO session after a password sign-in and sets its cookie.
pub async fn start_session(
    state: &AppState,
    jar: CookieJar,
    account: &Account,
) -> idp_core::Result<(CookieJar, SsoSession)> {
    let (token, session) = state
        .sessions
        .start(account.id.as_str(), ACR_PASSWORD, vec!["pwd".into()])
        .await?;
    tracing::info!(account = %account.id, sid = %session.sid, "password sign-in");
    let jar = jar.add(session_cookie::build(
        state,
        session_cookie::session_name(state),
        token.expose().to_string(),
    ));
    Ok((jar, session))
}

/// Where a sign-in that has just started `session` goes, in the same response: the
/// parked authorization request `req` resumed (`request` is `parked`'s answer for it:
/// the client, or its enablement step), or the home page when there is none.
pub async fn continue_after_sign_in(
    state: &AppState,
    jar: CookieJar,
    req: &str,
    request: idp_core::Result<Option<AuthorizationRequest>>,
    session: SsoSession,
) -> Response {
    if req.is_empty() {
        return (jar, Redirect::to("/")).into_response();
    }
    let next = crate::oidc::authorize::resume_parked(state, request, Some(session)).await;
    (jar, next).into_response()
}

/// Ends every SSO session of the account but `keep` (back-channel logout included).
pub async fn end_other_sessions(
    state: &AppState,
    account: &Account,
    keep: Option<&str>,
) -> idp_core::Result<()> {
    for sid in state.sessions.of_account(account.id.as_str()).await? {
        if Some(sid.as_str()) != keep {
            backchannel::end_session(state, &sid).await?;
        }
    }
    Ok(())
}

/// A text mail to one address.
pub fn mail(to: &Email, subject: &str, body: String) -> OutgoingMail {
    OutgoingMail {
        to: to.clone(),
        subject: subject.to_string(),
        body_text: body,
        attachments: Vec::new(),
    }
}

/// Queues a mail that goes with no state change (its own insert), then wakes the
/// sender. Mail that announces a change is queued by the change's own transaction.
pub async fn queue_mail(
    state: &AppState,
    to: &Email,
    subject: &str,
    body: String,
) -> idp_core::Result<()> {
    state
        .store
        .enqueue_mail(&mail(to, subject, body), idp_core::directory::now())
        .await?;
    state.wake_mail_sender();
    Ok(())
}

/// Where to go after a sign-in: the parked authorization request, else home.
pub fn after_sign_in(req: &str) -> String {
    if req.is_empty() {
        "/".to_string()
    } else {
        format!("/authorize/resume?req={}", urlencode(req))
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One input of a form as the templates render it: its value as typed and its error.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub error: Option<String>,
    pub autocomplete: &'static str,
    pub hint: String,
}

/// A page that says one thing, optionally with one button (a POST with the CSRF
/// token, e.g. to use an emailed link: a GET alone never spends one, so mail scanners
/// that open links cannot use them up) and one link.
#[derive(askama::Template, Default)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub title: &'static str,
    pub error: Option<String>,
    pub paragraphs: Vec<String>,
    pub action: &'static str,
    pub action_label: &'static str,
    pub csrf: String,
    pub token: String,
    pub link_href: &'static str,
    pub link_label: &'static str,
}

impl MessagePage {
    pub fn back_to_login(title: &'static str) -> Self {
        MessagePage {
            title,
            link_href: "/login",
            link_label: "Torna alla login",
            ..Default::default()
        }
    }
}
