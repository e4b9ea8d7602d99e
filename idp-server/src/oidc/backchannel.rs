//! Ending SSO sessions and telling every client that took part (OpenID Connect
//! Back-Channel Logout 1.0). Delivery runs in the background with retries, so a slow
//! or unreachable client never holds up the person's sign-out; each failure is logged.

use std::time::Duration;

use idp_core::client::ClientId;

use crate::state::AppState;

const ATTEMPTS: u32 = 4;

/// Ends a session: revokes its grants, forgets it, and notifies its clients.
pub async fn end_session(state: &AppState, sid: &str) -> idp_core::Result<()> {
    let Some((session, clients)) = state.sessions.end(sid).await? else {
        return Ok(());
    };
    state.tokens.revoke_session_grants(sid).await?;
    tracing::info!(sid, account = %session.account_id, clients = clients.len(), "SSO session ended");
    state
        .audit(
            idp_core::audit::AuditEvent::new(idp_core::audit::AuditKind::Logout)
                .account(session.account_id.clone())
                .detail(serde_json::json!({ "sid": sid, "clients": clients })),
        )
        .await;
    for client_id in clients {
        let Ok(id) = ClientId::parse(&client_id) else {
            continue;
        };
        let Some(client) = state.clients.get(&id).await? else {
            continue;
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            continue;
        };
        let token = state
            .tokens
            .logout_token(&client_id, &session.account_id, sid)?;
        let http = state.http.clone();
        tokio::spawn(async move {
            deliver(http, client_id, uri, token).await;
        });
    }
    Ok(())
}

async fn deliver(http: reqwest::Client, client_id: String, uri: String, token: String) {
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let result = http
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(client = %client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(client = %client_id, attempt, status = %r.status(), "back-channel logout refused")
            }
            Err(e) => {
                tracing::warn!(client = %client_id, attempt, error = %e, "back-channel logout failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(client = %client_id, "back-channel logout not delivered after {ATTEMPTS} attempts");
}
