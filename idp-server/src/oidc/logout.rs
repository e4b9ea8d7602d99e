//! `/logout`: RP-initiated logout. With a valid `id_token_hint` the sign-out happens at
//! once; without one the person confirms with a button (a bare link must not sign
//! anyone out). A `post_logout_redirect_uri` must be registered for the client named
//! by the hint or by `client_id`; otherwise the person stays on our "signed out" page.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::client::ClientId;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{backchannel, session_cookie};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{ErrorPage, page};

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    csrf: Option<String>,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    done: bool,
    csrf: String,
    post_logout_redirect_uri: String,
    client_id: String,
    state: String,
}

pub async fn get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<LogoutParams>,
) -> Result<Response, AppError> {
    logout(state, jar, p, false).await
}

pub async fn post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(p): Form<LogoutParams>,
) -> Result<Response, AppError> {
    logout(state, jar, p, true).await
}

fn bad(message: &str) -> Response {
    ErrorPage::response(
        StatusCode::BAD_REQUEST,
        "Richiesta di uscita non valida",
        message,
    )
}

async fn logout(
    state: AppState,
    jar: CookieJar,
    p: LogoutParams,
    posted: bool,
) -> Result<Response, AppError> {
    // 1. The hint, when given, must be one of our ID tokens.
    let hint = match p.id_token_hint.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => match state.tokens.verify_id_token_hint(h) {
            Ok(claims) => Some(claims),
            Err(_) => return Ok(bad("Il token indicato (id_token_hint) non è valido.")),
        },
        None => None,
    };
    // 2. The client: from the hint's audience, or client_id; both must agree.
    let hint_client = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|a| a.as_str().map(str::to_string));
    let client_id = match (hint_client, p.client_id.clone().filter(|c| !c.is_empty())) {
        (Some(a), Some(b)) if a != b => {
            return Ok(bad("client_id non corrisponde al token indicato."));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    // 3. The return address must be registered for that client.
    let redirect = match p
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(uri) => {
            let client = match client_id.as_deref().map(ClientId::parse) {
                Some(Ok(id)) => state.clients.get(&id).await?,
                _ => None,
            };
            match client {
                Some(c) if c.has_post_logout_redirect_uri(uri) => Some(uri.to_string()),
                _ => {
                    return Ok(bad(
                        "L'indirizzo di ritorno (post_logout_redirect_uri) non è registrato per questo servizio.",
                    ));
                }
            }
        }
        None => None,
    };
    // 4. Without a hint, only our own confirmation form (with its token) signs out.
    let login_cookie = jar
        .get(session_cookie::login_name(&state))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let confirmed = posted
        && !login_cookie.is_empty()
        && p.csrf
            .as_deref()
            .is_some_and(|c| bool::from(c.as_bytes().ct_eq(login_cookie.as_bytes())));
    if hint.is_none() && !confirmed {
        let (jar, csrf) = if login_cookie.is_empty() {
            let token = idp_core::secret::generate_token().expose().to_string();
            let jar = jar.add(session_cookie::build(
                &state,
                session_cookie::login_name(&state),
                token.clone(),
            ));
            (jar, token)
        } else {
            (jar, login_cookie)
        };
        let body = page(&LogoutPage {
            done: false,
            csrf,
            post_logout_redirect_uri: redirect.clone().unwrap_or_default(),
            client_id: client_id.unwrap_or_default(),
            state: p.state.unwrap_or_default(),
        });
        return Ok((jar, body).into_response());
    }
    // 5. End the session: the browser's, else the one the hint names.
    let ended = match session_cookie::current(&state, &jar).await? {
        Some((token, s)) => {
            state.sessions.forget_cookie(&token).await?;
            Some(s)
        }
        None => match hint
            .as_ref()
            .and_then(|c| c.get("sid"))
            .and_then(|s| s.as_str())
        {
            Some(sid) => state.sessions.by_sid(sid).await?,
            None => None,
        },
    };
    if let Some(session) = &ended {
        backchannel::end_session(&state, &session.sid).await?;
    }
    let jar = jar.add(session_cookie::removal(
        &state,
        session_cookie::session_name(&state),
    ));
    // 6. Back to the client, or our page; a SPID session first passes through its
    //    identity provider's single logout, which continues there.
    let redirect = match redirect {
        Some(uri) => {
            let mut url = url::Url::parse(&uri).map_err(|_| AppError::not_found())?;
            if let Some(s) = p.state.as_deref().filter(|s| !s.is_empty()) {
                url.query_pairs_mut().append_pair("state", s);
            }
            Some(url.to_string())
        }
        None => None,
    };
    if let Some(session) = &ended
        && let Some(slo) = crate::spid::logout::start(&state, session, redirect.clone()).await
    {
        return Ok((jar, slo).into_response());
    }
    match redirect {
        Some(uri) => Ok((jar, Redirect::to(&uri)).into_response()),
        None => Ok((jar, signed_out_page()).into_response()),
    }
}

/// Our "signed out" page.
pub fn signed_out_page() -> Response {
    page(&LogoutPage {
        done: true,
        csrf: String::new(),
        post_logout_redirect_uri: String::new(),
        client_id: String::new(),
        state: String::new(),
    })
}
