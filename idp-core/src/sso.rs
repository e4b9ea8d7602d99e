//! Single sign-on sessions, kept in the cache so that every instance sees them. The
//! browser holds a random token; the cache keys it by its SHA-256, so a cache dump
//! reveals no usable cookie. Each session has a public `sid` (in tokens, for
//! back-channel logout) distinct from the cookie token, and remembers which clients
//! took part, so that signing out reaches all of them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::cache::{Cache, get_json, put_json};
use crate::directory::now;
use crate::secret::{Secret, TokenHash, generate_token};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SsoSession {
    pub sid: String,
    pub account_id: String,
    /// When the person last proved who they are (OIDC `auth_time`).
    pub auth_time: i64,
    pub acr: String,
    pub amr: Vec<String>,
    pub created_at: i64,
    /// `auth_time` in microseconds, to order a sign-in against a request made in the
    /// same second (prompt=login, acr_values): milliseconds were not enough, a sign-in
    /// and the next request can fall in the same one on a fast machine.
    #[serde(default)]
    pub authenticated_at_us: i64,
    /// How the person signed in (the level is in `acr`).
    #[serde(default)]
    pub method: SignInMethod,
    /// For a SPID sign-in: what single logout towards the SPID identity provider needs.
    #[serde(default)]
    pub spid: Option<SpidSessionInfo>,
}

/// How the person proved who they are.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignInMethod {
    #[default]
    Password,
    Spid,
}

/// The SAML session at the SPID identity provider: its entity id, the NameID it gave
/// and the SessionIndex, named again in the LogoutRequest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpidSessionInfo {
    pub idp_entity_id: String,
    pub name_id: String,
    pub name_id_qualifier: Option<String>,
    pub session_index: Option<String>,
}

/// How a session starts: its `acr`, `amr` and method, and the SPID session if any.
#[derive(Clone, Debug)]
pub struct SessionStart {
    pub acr: String,
    pub amr: Vec<String>,
    pub method: SignInMethod,
    pub spid: Option<SpidSessionInfo>,
}

#[derive(Clone)]
pub struct Sessions {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

fn cookie_key(token: &str) -> String {
    format!("sso-cookie:{}", TokenHash::of(token).as_str())
}
fn session_key(sid: &str) -> String {
    format!("sso:{sid}")
}
fn clients_key(sid: &str) -> String {
    format!("sso-clients:{sid}")
}
fn account_key(account_id: &str) -> String {
    format!("sso-account:{account_id}")
}
/// The SPID identity provider names a session by its NameID (IdP-initiated logout).
fn spid_key(idp_entity_id: &str, name_id: &str) -> String {
    let named = format!("{idp_entity_id}\n{name_id}");
    format!("sso-spid:{}", TokenHash::of(&named).as_str())
}

impl Sessions {
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a password session; the returned secret goes in the browser's cookie.
    pub async fn start(
        &self,
        account_id: &str,
        acr: &str,
        amr: Vec<String>,
    ) -> Result<(Secret, SsoSession)> {
        self.start_with(
            account_id,
            SessionStart {
                acr: acr.to_string(),
                amr,
                method: SignInMethod::Password,
                spid: None,
            },
        )
        .await
    }

    /// Starts a session of any method; a SPID one is also findable by its NameID.
    pub async fn start_with(
        &self,
        account_id: &str,
        how: SessionStart,
    ) -> Result<(Secret, SsoSession)> {
        let token = generate_token();
        let at = now();
        let session = SsoSession {
            sid: uuid::Uuid::new_v4().to_string(),
            account_id: account_id.to_string(),
            auth_time: at,
            acr: how.acr,
            amr: how.amr,
            created_at: at,
            authenticated_at_us: chrono::Utc::now().timestamp_micros(),
            method: how.method,
            spid: how.spid,
        };
        // Four independent writes, sent together: on Redis one round trip instead of
        // four (the multiplexed connection pipelines concurrent commands).
        let by_spid = async {
            match &session.spid {
                Some(spid) => {
                    self.cache
                        .put(
                            &spid_key(&spid.idp_entity_id, &spid.name_id),
                            session.sid.as_bytes(),
                            self.ttl,
                        )
                        .await
                }
                None => Ok(()),
            }
        };
        let (by_sid, by_cookie, of_account) = (
            session_key(&session.sid),
            cookie_key(token.expose()),
            account_key(account_id),
        );
        tokio::try_join!(
            put_json(&*self.cache, &by_sid, &session, self.ttl),
            by_spid,
            self.cache.put(&by_cookie, session.sid.as_bytes(), self.ttl),
            self.cache.set_add(&of_account, &session.sid, self.ttl),
        )?;
        Ok((token, session))
    }

    /// A new sign-in of the same account within a live session (a step-up): the
    /// session keeps its sid and its clients and takes the new method and level.
    pub async fn reauthenticate(&self, sid: &str, how: SessionStart) -> Result<Option<SsoSession>> {
        let Some(mut session) = self.by_sid(sid).await? else {
            return Ok(None);
        };
        if let Some(old) = &session.spid {
            self.cache
                .delete(&spid_key(&old.idp_entity_id, &old.name_id))
                .await?;
        }
        session.auth_time = now();
        session.authenticated_at_us = chrono::Utc::now().timestamp_micros();
        session.acr = how.acr;
        session.amr = how.amr;
        session.method = how.method;
        session.spid = how.spid;
        put_json(&*self.cache, &session_key(sid), &session, self.ttl).await?;
        if let Some(spid) = &session.spid {
            self.cache
                .put(
                    &spid_key(&spid.idp_entity_id, &spid.name_id),
                    sid.as_bytes(),
                    self.ttl,
                )
                .await?;
        }
        Ok(Some(session))
    }

    /// The live session a cookie token names, if any.
    pub async fn find(&self, token: &str) -> Result<Option<SsoSession>> {
        let Some(sid) = self.cache.get(&cookie_key(token)).await? else {
            return Ok(None);
        };
        let sid = String::from_utf8_lossy(&sid).to_string();
        self.by_sid(&sid).await
    }

    pub async fn by_sid(&self, sid: &str) -> Result<Option<SsoSession>> {
        get_json(&*self.cache, &session_key(sid)).await
    }

    /// The live session a SPID identity provider names by its NameID, if any.
    pub async fn by_spid_name_id(
        &self,
        idp_entity_id: &str,
        name_id: &str,
    ) -> Result<Option<SsoSession>> {
        let Some(sid) = self.cache.get(&spid_key(idp_entity_id, name_id)).await? else {
            return Ok(None);
        };
        let sid = String::from_utf8_lossy(&sid).to_string();
        Ok(self
            .by_sid(&sid)
            .await?
            .filter(|s| s.spid.as_ref().is_some_and(|x| x.name_id == name_id)))
    }

    /// Records that a client received tokens within this session.
    pub async fn add_client(&self, sid: &str, client_id: &str) -> Result<()> {
        self.cache
            .set_add(&clients_key(sid), client_id, self.ttl)
            .await
    }

    pub async fn clients(&self, sid: &str) -> Result<Vec<String>> {
        self.cache.set_members(&clients_key(sid)).await
    }

    /// The sids of the account's live sessions.
    pub async fn of_account(&self, account_id: &str) -> Result<Vec<String>> {
        let mut live = Vec::new();
        for sid in self.cache.set_members(&account_key(account_id)).await? {
            if self.by_sid(&sid).await?.is_some() {
                live.push(sid);
            } else {
                self.cache
                    .set_remove(&account_key(account_id), &sid)
                    .await?;
            }
        }
        Ok(live)
    }

    /// Ends a session and returns what it was with the clients that took part in it.
    pub async fn end(&self, sid: &str) -> Result<Option<(SsoSession, Vec<String>)>> {
        let Some(session) = self.by_sid(sid).await? else {
            return Ok(None);
        };
        let clients = self.clients(sid).await?;
        self.cache.delete(&session_key(sid)).await?;
        self.cache.delete(&clients_key(sid)).await?;
        self.cache
            .set_remove(&account_key(&session.account_id), sid)
            .await?;
        if let Some(spid) = &session.spid {
            self.cache
                .delete(&spid_key(&spid.idp_entity_id, &spid.name_id))
                .await?;
        }
        Ok(Some((session, clients)))
    }

    /// Forgets the cookie mapping (the session itself is ended with `end`).
    pub async fn forget_cookie(&self, token: &str) -> Result<()> {
        self.cache.delete(&cookie_key(token)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    fn sessions() -> Sessions {
        Sessions::new(Arc::new(MemoryCache::new()), Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_cookie_finds_its_session_until_it_ends() {
        let s = sessions();
        let (token, session) = s.start("acc-1", "pwd", vec!["pwd".into()]).await.unwrap();
        assert_eq!(s.find(token.expose()).await.unwrap(), Some(session.clone()));
        s.add_client(&session.sid, "pago-in-rete").await.unwrap();
        s.add_client(&session.sid, "governance").await.unwrap();
        assert_eq!(
            s.of_account("acc-1").await.unwrap(),
            vec![session.sid.clone()]
        );
        let (_, mut clients) = s.end(&session.sid).await.unwrap().unwrap();
        clients.sort();
        assert_eq!(clients, ["governance", "pago-in-rete"]);
        assert_eq!(s.find(token.expose()).await.unwrap(), None);
        assert!(s.of_account("acc-1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_spid_session_is_found_by_its_name_id_until_it_ends() {
        let s = sessions();
        let spid = SpidSessionInfo {
            idp_entity_id: "https://idp.example".into(),
            name_id: "_abc".into(),
            name_id_qualifier: None,
            session_index: Some("_s1".into()),
        };
        let (_, session) = s
            .start_with(
                "acc-1",
                SessionStart {
                    acr: "https://www.spid.gov.it/SpidL2".into(),
                    amr: vec!["spid".into()],
                    method: SignInMethod::Spid,
                    spid: Some(spid),
                },
            )
            .await
            .unwrap();
        assert_eq!(session.method, SignInMethod::Spid);
        let found = s
            .by_spid_name_id("https://idp.example", "_abc")
            .await
            .unwrap();
        assert_eq!(found, Some(session.clone()));
        let stepped = s
            .reauthenticate(
                &session.sid,
                SessionStart {
                    acr: "https://www.spid.gov.it/SpidL3".into(),
                    amr: vec!["spid".into()],
                    method: SignInMethod::Spid,
                    spid: session.spid.clone(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stepped.sid, session.sid);
        assert_eq!(stepped.acr, "https://www.spid.gov.it/SpidL3");
        let session = stepped;
        assert_eq!(
            s.by_spid_name_id("https://other", "_abc").await.unwrap(),
            None
        );
        s.end(&session.sid).await.unwrap();
        assert_eq!(
            s.by_spid_name_id("https://idp.example", "_abc")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn an_unknown_cookie_finds_nothing() {
        let s = sessions();
        assert_eq!(s.find("not-a-session").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_sid_is_not_the_cookie() {
        let s = sessions();
        let (token, session) = s.start("acc-1", "pwd", vec![]).await.unwrap();
        assert_ne!(token.expose(), session.sid);
        assert_eq!(s.find(&session.sid).await.unwrap(), None);
    }
}
