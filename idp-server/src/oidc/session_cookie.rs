//! The SSO session cookie (and the login-form cookie that binds a login form to the
//! browser that opened it). On TLS the names carry the `__Host-` prefix, which browsers
//! honour only with `Secure`, no `Domain` and `Path=/`; over plain HTTP (the demo on
//! localhost) the prefix would make browsers drop the cookie, so it is left out.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use idp_core::sso::SsoSession;

use crate::state::AppState;

pub fn secure(state: &AppState) -> bool {
    state.config.server.public_url.starts_with("https://")
}

pub fn session_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-idp_session"
    } else {
        "idp_session"
    }
}

pub fn login_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-idp_login"
    } else {
        "idp_login"
    }
}

/// A browser-session cookie: the server decides how long the SSO session lives.
pub fn build(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_path("/");
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(secure(state));
    c
}

pub fn removal(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = build(state, name, String::new());
    c.make_removal();
    c
}

/// The cookie's token and the live session it names, if any.
pub async fn current(
    state: &AppState,
    jar: &CookieJar,
) -> idp_core::Result<Option<(String, SsoSession)>> {
    let Some(token) = jar.get(session_name(state)).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    Ok(state.sessions.find(&token).await?.map(|s| (token, s)))
}
