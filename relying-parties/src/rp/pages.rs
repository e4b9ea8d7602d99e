//! The RP's pages and endpoints: thin handlers over the flow in `flow` and `logout`,
//! with the session cookie `rp_<service>_session` (HttpOnly, SameSite=Lax, no expiry:
//! it lasts as long as the browser session).

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::json;

use super::Rp;
use super::claims::{Enablement, Person};
use super::flow::CallbackParams;
use super::session::{Session, now};

/// `/`, `/accedi`, `/callback`, `/esci`, `/backchannel-logout`.
pub fn router(rp: Rp) -> Router {
    router_without_home(rp.clone()).merge(Router::new().route("/", get(home)).with_state(rp))
}

/// Everything but `/` (Istanze OnLine serves its own `/`, which calls `home`).
pub fn router_without_home(rp: Rp) -> Router {
    Router::new()
        .route("/accedi", get(sign_in))
        .route("/callback", get(callback))
        .route("/esci", get(confirm_sign_out).post(sign_out))
        .route("/backchannel-logout", post(back_channel_logout))
        .with_state(rp)
}

/// What every page's frame shows.
pub struct Layout {
    pub issuer: String,
    pub service_name: String,
    pub user: Option<UserMenu>,
}

/// The user menu, top right: name and surname, Area riservata, Esci.
pub struct UserMenu {
    pub name: String,
    pub initials: String,
    pub csrf: String,
}

impl Layout {
    pub fn new(rp: &Rp, session: Option<&Session>) -> Layout {
        let user = session.and_then(|s| {
            s.signed_in.as_ref().map(|signed| UserMenu {
                name: signed.person.display_name(),
                initials: signed.person.initials(),
                csrf: s.csrf.clone(),
            })
        });
        Layout {
            issuer: rp.config().issuer.clone(),
            service_name: rp.config().display_name.clone(),
            user,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    service: String,
    person: Option<Person>,
    enabled: bool,
    enablement_pending: bool,
    enablement_label: &'static str,
    operator: bool,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub title: String,
    pub message: String,
    pub link_href: String,
    pub link_text: String,
}

#[derive(Template)]
#[template(path = "esci.html")]
struct SignOutPage {
    layout: Layout,
}

pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The session this browser holds, if any: (cookie value, session).
pub fn current_session(rp: &Rp, jar: &CookieJar) -> Option<(String, Session)> {
    let id = jar.get(&rp.config().cookie_name())?.value().to_string();
    let session = rp.sessions().get(&id)?;
    Some((id, session))
}

pub fn session_cookie(rp: &Rp, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(rp.config().cookie_name(), value);
    cookie.set_path("/");
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(rp.config().base_url.starts_with("https://"));
    cookie
}

/// The home page: the person's data from the claims, or "Accedi".
pub async fn home(State(rp): State<Rp>, jar: CookieJar) -> Response {
    let mut session = current_session(&rp, &jar);
    if let Some((id, s)) = &mut session
        && let Some(signed) = &s.signed_in
        && signed.expires_at.is_some_and(|at| at <= now() + 10)
    {
        // The access token has expired: refresh, which also fails once the IdP
        // session has ended (the grant is revoked at logout).
        match rp.refresh(signed).await {
            Ok(fresh) => {
                rp.sessions()
                    .update(id, |stored| stored.signed_in = Some(fresh.clone()));
                s.signed_in = Some(fresh);
            }
            Err(e) => {
                tracing::info!(service = %rp.config().service, error = %e, "refresh failed; local session ended");
                rp.sessions().remove(id);
                s.signed_in = None;
            }
        }
    }
    let session = session.map(|(_, s)| s);
    let person = session
        .as_ref()
        .and_then(|s| s.signed_in.as_ref())
        .map(|signed| signed.person.clone());
    let person_is_operator = person
        .as_ref()
        .is_some_and(|p| p.has_role("school_operator"));
    let enablement = Enablement::from_claim(
        person.as_ref().and_then(|p| p.enablement.as_ref()),
        &rp.config().service,
    );
    render(&HomePage {
        layout: Layout::new(&rp, session.as_ref()),
        service: rp.config().service.clone(),
        person,
        enabled: enablement == Enablement::Active,
        enablement_pending: enablement == Enablement::Pending,
        enablement_label: enablement.label(),
        operator: person_is_operator,
    })
}

/// Starts a login (again, when already signed in: Istanze OnLine's "Accedi" is how a
/// signed-in person reaches the enablement step).
async fn sign_in(State(rp): State<Rp>, jar: CookieJar) -> Response {
    let (id, mut session) = match current_session(&rp, &jar) {
        Some(found) => found,
        None => rp.sessions().create(),
    };
    let (url, pending) = rp.authorization_url();
    session.pending = Some(pending);
    rp.sessions().put(&id, session);
    let jar = jar.add(session_cookie(&rp, id));
    (jar, Redirect::to(url.as_str())).into_response()
}

async fn callback(
    State(rp): State<Rp>,
    jar: CookieJar,
    Query(params): Query<CallbackParams>,
) -> Response {
    let found = current_session(&rp, &jar);
    let pending = found.as_ref().and_then(|(_, s)| s.pending.clone());
    match rp.finish_login(pending, params).await {
        Ok(signed) => {
            // A new session id at sign-in: an id planted before login is worth nothing.
            if let Some((old, _)) = &found {
                rp.sessions().remove(old);
            }
            let (id, mut session) = rp.sessions().create();
            session.signed_in = Some(signed);
            rp.sessions().put(&id, session);
            tracing::info!(service = %rp.config().service, "signed in");
            let jar = jar.add(session_cookie(&rp, id));
            (jar, Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::warn!(service = %rp.config().service, error = %e, "login failed");
            if let Some((id, _)) = &found {
                rp.sessions().update(id, |s| s.pending = None);
            }
            let page = MessagePage {
                layout: Layout::new(&rp, found.as_ref().map(|(_, s)| s)),
                title: "Accesso non riuscito".into(),
                message: e.italian(),
                link_href: "/".into(),
                link_text: "Torna alla pagina iniziale".into(),
            };
            (StatusCode::BAD_REQUEST, render(&page)).into_response()
        }
    }
}

async fn confirm_sign_out(State(rp): State<Rp>, jar: CookieJar) -> Response {
    match current_session(&rp, &jar) {
        Some((_, s)) if s.signed_in.is_some() => render(&SignOutPage {
            layout: Layout::new(&rp, Some(&s)),
        }),
        _ => Redirect::to("/").into_response(),
    }
}

#[derive(Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the local session, then sends the browser to the IdP's end_session_endpoint
/// with the ID token as hint; the IdP tells the other services by back-channel.
async fn sign_out(State(rp): State<Rp>, jar: CookieJar, Form(form): Form<SignOutForm>) -> Response {
    let Some((id, session)) = current_session(&rp, &jar) else {
        return Redirect::to("/").into_response();
    };
    if !session.csrf_matches(&form.csrf) {
        return (StatusCode::FORBIDDEN, "Richiesta non valida").into_response();
    }
    rp.sessions().remove(&id);
    let jar = jar.remove(session_cookie(&rp, String::new()));
    let target = session
        .signed_in
        .as_ref()
        .and_then(|signed| rp.end_session_url(signed))
        .map(|u| u.to_string())
        .unwrap_or_else(|| "/".into());
    (jar, Redirect::to(&target)).into_response()
}

#[derive(Deserialize)]
struct LogoutTokenForm {
    logout_token: Option<String>,
}

/// OpenID Back-Channel Logout 1.0 §2.8: 200 when the token is accepted, 400 with a
/// JSON error otherwise; never cached.
async fn back_channel_logout(State(rp): State<Rp>, Form(form): Form<LogoutTokenForm>) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    let Some(token) = form.logout_token else {
        let body =
            json!({"error": "invalid_request", "error_description": "logout_token is missing"});
        return (StatusCode::BAD_REQUEST, no_store, Json(body)).into_response();
    };
    match rp.back_channel_logout(&token).await {
        Ok(_) => (StatusCode::OK, no_store).into_response(),
        Err(refusal) => {
            tracing::warn!(service = %rp.config().service, %refusal, "logout token refused");
            let body =
                json!({"error": "invalid_request", "error_description": refusal.to_string()});
            (StatusCode::BAD_REQUEST, no_store, Json(body)).into_response()
        }
    }
}
