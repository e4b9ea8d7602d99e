//! `/authorize`: the authorization code flow. Until the client and its redirect URI
//! are known good, errors are shown on a page (never redirected: that would make us an
//! open redirector); after that they go back to the client as the spec says. A
//! request that needs the person to sign in is parked in the cache and resumed after
//! the login page.

use std::sync::Arc;
use std::time::Duration;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use idp_core::cache::{get_json, put_json};
use idp_core::client::{Client, ClientId, GrantType};
use idp_core::directory::now;
use idp_core::oidc::tokens::CodeRecord;
use idp_core::oidc::{OAuthError, acr_satisfies, has_scope, normalize_scope, valid_challenge};
use idp_core::secret::generate_token;
use idp_core::sso::SsoSession;
use serde::{Deserialize, Serialize};

use super::session_cookie;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::ErrorPage;

/// How long a parked request waits for the person to sign in.
const PARKED_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default, Deserialize)]
pub struct RawParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

/// A validated authorization request, as parked while the person signs in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
    pub created_at: i64,
    /// When the request arrived, in microseconds (see `SsoSession::authenticated_at_us`).
    #[serde(default)]
    pub created_at_us: i64,
    /// The person was already sent to the client's enablement step.
    #[serde(default)]
    pub enablement_sent: bool,
}

impl AuthorizationRequest {
    fn prompts(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }
}

pub async fn get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(params): Query<RawParams>,
) -> Response {
    authorize(state, jar, params).await
}

pub async fn post(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(params): Form<RawParams>,
) -> Response {
    authorize(state, jar, params).await
}

async fn authorize(state: AppState, jar: CookieJar, params: RawParams) -> Response {
    let client = match check_client(&state, params.client_id.as_deref()).await {
        Ok(c) => c,
        Err(page) => return page.into_response(),
    };
    let redirect_uri = match check_redirect_uri(&client, params.redirect_uri.as_deref()) {
        Ok(r) => r,
        Err(page) => return page.into_response(),
    };
    let request = match validate(&client, &redirect_uri, params) {
        Ok(r) => r,
        Err((e, state_param)) => return redirect_error(&state, &redirect_uri, state_param, &e),
    };
    proceed(&state, jar, &client, request).await
}

fn bad_request(message: &str) -> AppError {
    AppError::Page {
        status: StatusCode::BAD_REQUEST,
        title: "Richiesta di accesso non valida",
        message: message.to_string(),
    }
}

async fn check_client(state: &AppState, client_id: Option<&str>) -> Result<Arc<Client>, AppError> {
    let bad = bad_request;
    let Some(raw) = client_id else {
        return Err(bad("Manca l'identificativo del servizio (client_id)."));
    };
    let Ok(id) = ClientId::parse(raw) else {
        return Err(bad(
            "Il servizio che ha richiesto l'accesso non è registrato.",
        ));
    };
    match state.clients.get(&id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(bad(
            "Il servizio che ha richiesto l'accesso non è registrato.",
        )),
        Err(e) => Err(AppError::from(e)),
    }
}

fn check_redirect_uri(client: &Client, redirect_uri: Option<&str>) -> Result<String, AppError> {
    match redirect_uri {
        Some(uri) if client.has_redirect_uri(uri) => Ok(uri.to_string()),
        Some(_) => Err(bad_request(
            "L'indirizzo di ritorno (redirect_uri) non è registrato per questo servizio.",
        )),
        None => Err(bad_request("Manca l'indirizzo di ritorno (redirect_uri).")),
    }
}

type Refusal = (OAuthError, Option<String>);

/// The checks that, once the redirect URI is trusted, answer by redirecting back.
fn validate(
    client: &Client,
    redirect_uri: &str,
    p: RawParams,
) -> Result<AuthorizationRequest, Refusal> {
    let st = p.state.clone();
    let refuse = |e: OAuthError| (e, st.clone());
    if p.request.is_some() || p.request_uri.is_some() {
        return Err(refuse(OAuthError {
            code: "request_not_supported",
            description: "request objects are not supported".into(),
        }));
    }
    match p.response_type.as_deref() {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(OAuthError::unsupported_response_type(
                "only response_type=code is supported",
            )));
        }
        None => {
            return Err(refuse(OAuthError::invalid_request(
                "response_type is required",
            )));
        }
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(refuse(OAuthError::invalid_request(
            "only response_mode=query is supported",
        )));
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(refuse(OAuthError::unauthorized_client(
            "the client may not use the authorization code flow",
        )));
    }
    let scope = normalize_scope(p.scope.as_deref().unwrap_or_default());
    if !has_scope(&scope, "openid") {
        return Err(refuse(OAuthError::invalid_scope(
            "the openid scope is required",
        )));
    }
    let code_challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if valid_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge must be 43 base64url characters",
            )));
        }
        (Some(_), Some(_)) | (Some(_), None) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            )));
        }
        (None, Some(_)) => {
            return Err(refuse(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            )));
        }
        (None, None) => None,
    };
    if client.is_public() && code_challenge.is_none() {
        return Err(refuse(OAuthError::invalid_request(
            "public clients must use PKCE (code_challenge with S256)",
        )));
    }
    let prompt: Vec<String> = p
        .prompt
        .as_deref()
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    if prompt.iter().any(|x| x == "none") && prompt.len() > 1 {
        return Err(refuse(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        )));
    }
    if let Some(x) = prompt
        .iter()
        .find(|x| !matches!(x.as_str(), "none" | "login" | "consent" | "select_account"))
    {
        return Err(refuse(OAuthError::invalid_request(format!(
            "unsupported prompt value {x}"
        ))));
    }
    let max_age = match p.max_age.as_deref() {
        None | Some("") => None,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(refuse(OAuthError::invalid_request(
                    "max_age must be a non-negative integer",
                )));
            }
        },
    };
    Ok(AuthorizationRequest {
        id: generate_token().expose().to_string(),
        client_id: client.id.as_str().to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope,
        state: p.state,
        nonce: p.nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint: p.login_hint,
        acr_values: p
            .acr_values
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        created_at: now(),
        created_at_us: chrono::Utc::now().timestamp_micros(),
        enablement_sent: false,
    })
}

/// Why the current session cannot serve a request as it is. `spid_step_up`: SPID is
/// on, so a SPID level the session lacks can be reached by signing in with SPID.
fn needs_login(
    request: &AuthorizationRequest,
    session: Option<&SsoSession>,
    spid_step_up: bool,
) -> bool {
    let Some(session) = session else {
        return true;
    };
    // prompt=login asks for a sign-in after the request was made.
    let signed_in_since = session.authenticated_at_us >= request.created_at_us;
    if request.prompts("login") && !signed_in_since {
        return true;
    }
    if let Some(max_age) = request.max_age
        && session.auth_time + max_age < now()
    {
        return true;
    }
    // acr_values is a voluntary request (OIDC Core 3.1.2.1). With SPID on, a SPID
    // level the session lacks is reached by signing in with SPID at that level (the
    // login page then offers only SPID): a step-up. Without SPID, a session that does
    // not meet it asks for a new sign-in once; if that sign-in still cannot meet it,
    // the code carries the real `acr` and the client decides.
    // prompt=none cannot ask for that sign-in, so there an unmet acr is refused.
    if acr_satisfies(&session.acr, &request.acr_values) {
        return false;
    }
    let step_up = spid_step_up && crate::spid::needed_level(&request.acr_values).is_some();
    step_up || !signed_in_since || request.prompts("none")
}

async fn proceed(
    state: &AppState,
    jar: CookieJar,
    client: &Client,
    request: AuthorizationRequest,
) -> Response {
    let session = match session_cookie::current(state, &jar).await {
        Ok(s) => s.map(|(_, s)| s),
        Err(e) => return AppError::from(e).into_response(),
    };
    if needs_login(&request, session.as_ref(), state.spid.is_some()) {
        if request.prompts("none") {
            let e = if session.is_none() {
                OAuthError::login_required("the person is not signed in")
            } else {
                OAuthError::login_required("the session does not meet max_age or acr_values")
            };
            return redirect_error(state, &request.redirect_uri, request.state.clone(), &e);
        }
        return park(state, jar, client, &request).await;
    }
    let Some(session) = session else {
        return park(state, jar, client, &request).await;
    };
    complete(state, client, request, &session).await
}

/// The person is signed in as the request needs: the enablement step if the client
/// has one, then the code.
async fn complete(
    state: &AppState,
    client: &Client,
    mut request: AuthorizationRequest,
    session: &SsoSession,
) -> Response {
    let gate = super::enablement::gate(state, client, &mut request, session).await;
    // The parked request, if any, is finished either way (deleted while the code is
    // issued: on Redis, the writes go in one round trip).
    let finished = async {
        let _ = state.cache.delete(&format!("authz:{}", request.id)).await;
    };
    let outcome = match gate {
        Ok(super::enablement::Gate::Redirect(r)) => return r,
        Ok(super::enablement::Gate::Proceed) => {
            tokio::join!(issue_code(state, client, &request, session), finished).0
        }
        Err(e) => {
            finished.await;
            Err(e)
        }
    };
    match outcome {
        Ok(r) => r,
        Err(e) => redirect_error(state, &request.redirect_uri, request.state.clone(), &e),
    }
}

/// Parks the request and answers with the login page for it (the page is shown at
/// `/authorize`; its form posts to `/login`).
async fn park(
    state: &AppState,
    jar: CookieJar,
    client: &Client,
    request: &AuthorizationRequest,
) -> Response {
    if let Err(e) = park_only(state, request).await {
        return AppError::from(e).into_response();
    }
    super::login::page_for_request(state, jar, request, client)
}

/// Keeps a request in the cache until it is resumed (or expires).
pub async fn park_only(state: &AppState, request: &AuthorizationRequest) -> idp_core::Result<()> {
    put_json(
        &*state.cache,
        &format!("authz:{}", request.id),
        request,
        PARKED_TTL,
    )
    .await
}

/// Loads a parked request (the login page and the enablement hook use it).
pub async fn parked(state: &AppState, id: &str) -> idp_core::Result<Option<AuthorizationRequest>> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    get_json(&*state.cache, &format!("authz:{id}")).await
}

#[derive(Deserialize)]
pub struct ResumeParams {
    req: String,
}

/// Continues a parked request once the person has signed in.
pub async fn resume(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<ResumeParams>,
) -> Response {
    let session = match session_cookie::current(&state, &jar).await {
        Ok(s) => s.map(|(_, s)| s),
        Err(e) => return AppError::from(e).into_response(),
    };
    resume_parked(&state, parked(&state, &p.req).await, session).await
}

/// Continues a parked request (`parked`'s answer) for `session`: the code (or the
/// client's enablement step), or the login page again if the session does not meet
/// the request. A sign-in calls it straight after starting the session, in the same
/// response, so that the browser goes from the form to the client in one redirect.
pub async fn resume_parked(
    state: &AppState,
    request: idp_core::Result<Option<AuthorizationRequest>>,
    session: Option<SsoSession>,
) -> Response {
    let request = match request {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ErrorPage::response(
                StatusCode::BAD_REQUEST,
                "Richiesta scaduta",
                "La richiesta di accesso è scaduta o è già stata completata. Torna al servizio e riprova.",
            );
        }
        Err(e) => return AppError::from(e).into_response(),
    };
    let client = match check_client(state, Some(&request.client_id)).await {
        Ok(c) => c,
        Err(page) => return page.into_response(),
    };
    match session {
        Some(session) if !needs_login(&request, Some(&session), state.spid.is_some()) => {
            complete(state, &client, request, &session).await
        }
        _ => Redirect::to(&format!("/login?req={}", request.id)).into_response(),
    }
}

async fn issue_code(
    state: &AppState,
    client: &Client,
    request: &AuthorizationRequest,
    session: &SsoSession,
) -> Result<Response, OAuthError> {
    let record = CodeRecord {
        client_id: client.id.as_str().to_string(),
        redirect_uri: request.redirect_uri.clone(),
        account_id: session.account_id.clone(),
        scope: request.scope.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        sid: session.sid.clone(),
        auth_time: session.auth_time,
        acr: session.acr.clone(),
        amr: session.amr.clone(),
        grant_id: uuid::Uuid::new_v4().to_string(),
    };
    let (code, ()) = tokio::try_join!(
        state.tokens.issue_code(&record),
        state.sessions.add_client(&session.sid, client.id.as_str()),
    )?;
    let mut pairs = vec![("code", code.as_str()), ("iss", state.tokens.issuer())];
    if let Some(s) = request.state.as_deref() {
        pairs.push(("state", s));
    }
    Ok(redirect_with(&request.redirect_uri, &pairs))
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            Redirect::to(url.as_str()).into_response()
        }
        // Registered URIs are validated at registration; this cannot happen in practice.
        Err(_) => ErrorPage::response(
            StatusCode::BAD_REQUEST,
            "Richiesta di accesso non valida",
            "L'indirizzo di ritorno registrato non è valido.",
        ),
    }
}

/// Sends an error back to the client's (already verified) redirect URI.
pub fn redirect_error(
    state: &AppState,
    redirect_uri: &str,
    state_param: Option<String>,
    e: &OAuthError,
) -> Response {
    tracing::info!(error = e.code, description = %e.description, "authorization request refused");
    let mut pairs = vec![
        ("error", e.code),
        ("error_description", e.description.as_str()),
        ("iss", state.tokens.issuer()),
    ];
    if let Some(s) = state_param.as_deref() {
        pairs.push(("state", s));
    }
    redirect_with(redirect_uri, &pairs)
}
