//! The RP's own server-side sessions, in memory, keyed by a random cookie value. A
//! session holds the pending login (state, nonce, PKCE verifier) and, once signed in,
//! the tokens and the person; back-channel logout ends every session of an IdP `sid`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;

use super::claims::Person;

/// A session idle this long is forgotten (the IdP's own session decides SSO anyway).
const IDLE_SECS: i64 = 12 * 3600;
/// A login started and not finished within this time must start again.
pub const PENDING_LOGIN_SECS: i64 = 600;

#[derive(Clone, Debug)]
pub struct Session {
    /// Binds the sign-out form to this session.
    pub csrf: String,
    pub pending: Option<PendingLogin>,
    pub signed_in: Option<SignedIn>,
    /// Istanze OnLine: the verified enablement request this browser is answering.
    pub enrolment: Option<EnrolmentVisit>,
    last_seen: i64,
}

/// What the abilitazione pages keep of the IdP's enablement request.
#[derive(Clone, Debug)]
pub struct EnrolmentVisit {
    pub sub: String,
    pub assurance: String,
    pub resume: String,
    pub spid: bool,
}

#[derive(Clone, Debug)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub started_at: i64,
}

#[derive(Clone, Debug)]
pub struct SignedIn {
    pub person: Person,
    /// The raw ID token, the `id_token_hint` of RP-initiated logout.
    pub id_token: String,
    /// The IdP session, as the back-channel logout token names it.
    pub sid: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds; `None` when the IdP gave no `expires_in`.
    pub expires_at: Option<i64>,
}

impl Session {
    /// Whether a form's CSRF token is this session's (an empty one never is).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        !sent.is_empty() && self.csrf == sent
    }

    fn new(at: i64) -> Session {
        Session {
            csrf: random_token(),
            pending: None,
            signed_in: None,
            enrolment: None,
            last_seen: at,
        }
    }
}

#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Session>>,
}

impl SessionStore {
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.sessions.lock().expect("session lock");
        let at = now();
        let session = map.get_mut(id)?;
        if at - session.last_seen > IDLE_SECS {
            map.remove(id);
            return None;
        }
        session.last_seen = at;
        Some(session.clone())
    }

    /// A new empty session and its id (the cookie value).
    pub fn create(&self) -> (String, Session) {
        let id = random_token();
        let session = Session::new(now());
        self.put(&id, session.clone());
        (id, session)
    }

    pub fn put(&self, id: &str, mut session: Session) {
        let at = now();
        session.last_seen = at;
        let mut map = self.sessions.lock().expect("session lock");
        map.retain(|_, s| at - s.last_seen <= IDLE_SECS);
        map.insert(id.to_string(), session);
    }

    /// Updates a session only if it still exists (a back-channel logout may have ended
    /// it while a request was in flight).
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) -> bool {
        let mut map = self.sessions.lock().expect("session lock");
        match map.get_mut(id) {
            Some(s) => {
                change(s);
                true
            }
            None => false,
        }
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        self.sessions.lock().expect("session lock").remove(id)
    }

    /// Ends every local session signed in under the IdP session `sid` (and `sub`, when
    /// the logout token names one); returns how many ended.
    pub fn end_idp_session(&self, sid: &str, sub: Option<&str>) -> usize {
        let mut map = self.sessions.lock().expect("session lock");
        let before = map.len();
        map.retain(|_, s| match &s.signed_in {
            Some(signed) => {
                let same_sid = signed.sid.as_deref() == Some(sid);
                let same_sub = sub.is_none_or(|sub| signed.person.sub == sub);
                !(same_sid && same_sub)
            }
            None => true,
        });
        before - map.len()
    }

    /// Every signed-in session's state (for tests and diagnostics).
    pub fn signed_in(&self) -> Vec<SignedIn> {
        let map = self.sessions.lock().expect("session lock");
        map.values().filter_map(|s| s.signed_in.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("session lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(sid: &str, sub: &str) -> Session {
        let mut s = Session::new(now());
        s.signed_in = Some(SignedIn {
            person: Person {
                sub: sub.into(),
                ..Person::default()
            },
            id_token: String::new(),
            sid: Some(sid.into()),
            access_token: String::new(),
            refresh_token: None,
            expires_at: None,
        });
        s
    }

    #[test]
    fn a_back_channel_logout_ends_every_session_of_that_idp_session_only() {
        let store = SessionStore::default();
        store.put("a", signed("sid-1", "anna"));
        store.put("b", signed("sid-1", "anna"));
        store.put("c", signed("sid-2", "anna"));
        let (anonymous, _) = store.create();
        assert_eq!(store.end_idp_session("sid-1", Some("anna")), 2);
        assert!(store.get("a").is_none() && store.get("b").is_none());
        assert!(store.get("c").is_some());
        assert!(store.get(&anonymous).is_some());
        assert_eq!(
            store.end_idp_session("sid-2", Some("bruno")),
            0,
            "a token about another person ends nothing"
        );
    }
}
