//! CSRF protection for every form: a double-submit token. The browser holds it in a
//! `SameSite=Lax`, HttpOnly cookie and each form echoes it in a hidden `csrf` field; a
//! third-party site can make the browser send the cookie but cannot read it to fill
//! the field. (The login form introduced this; every page uses this one helper.)

use axum_extra::extract::cookie::CookieJar;
use idp_core::secret::generate_token;
use subtle::ConstantTimeEq;

use crate::oidc::session_cookie;
use crate::state::AppState;

/// The browser's form token, creating (and setting) one when it has none.
pub fn token(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(existing) = jar.get(session_cookie::login_name(state)) {
        let value = existing.value().to_string();
        if !value.is_empty() {
            return (jar, value);
        }
    }
    let token = generate_token().expose().to_string();
    let jar = jar.add(session_cookie::build(
        state,
        session_cookie::login_name(state),
        token.clone(),
    ));
    (jar, token)
}

/// True when the submitted field matches the browser's cookie.
pub fn verify(state: &AppState, jar: &CookieJar, submitted: &str) -> bool {
    let cookie = jar
        .get(session_cookie::login_name(state))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    !cookie.is_empty() && bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes()))
}

/// What a page says when the check fails.
pub const EXPIRED_IT: &str =
    "La pagina è scaduta o è stata aperta da un altro sito: ripeti l'operazione.";
