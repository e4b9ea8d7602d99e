//! Discovery (`/.well-known/openid-configuration`) and the JWKS. Both documents are
//! built once and served as bytes: they are the most requested and never change
//! between key reloads.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use idp_core::keys::SigningAlgorithm;
use idp_core::oidc::{ACR_VALUES, CLAIMS_SUPPORTED, SCOPES_SUPPORTED};
use serde_json::json;

use crate::state::AppState;

/// The discovery document for an issuer that keeps (and publishes) keys of `signing`
/// (`[keys] algorithms`): its tokens are signed with one of them, never with another.
pub fn document(issuer: &str, signing: &[SigningAlgorithm]) -> Vec<u8> {
    let signing: Vec<&str> = signing.iter().map(|a| a.as_str()).collect();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing,
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        // What clients sign their assertions with (private_key_jwt): both, whatever keys
        // the IdP keeps for itself.
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "claims_supported": CLAIMS_SUPPORTED,
        "acr_values_supported": ACR_VALUES,
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "ui_locales_supported": ["it"],
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn json_bytes(bytes: impl Into<axum::body::Bytes>, max_age: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(max_age)),
        ],
        bytes.into(),
    )
        .into_response()
}

pub async fn configuration(State(state): State<AppState>) -> Response {
    json_bytes(state.discovery.clone(), "public, max-age=3600")
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    json_bytes(state.keys.jwks_json(), "public, max-age=300")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised(signing: &[SigningAlgorithm]) -> serde_json::Value {
        serde_json::from_slice(&document("https://idp.example", signing)).expect("json")
    }

    #[test]
    fn only_the_algorithms_the_provider_keeps_keys_for_are_advertised_for_id_tokens() {
        let both = advertised(&SigningAlgorithm::ALL);
        assert_eq!(
            both["id_token_signing_alg_values_supported"],
            json!(["ES256", "RS256"])
        );
        let es256 = advertised(&[SigningAlgorithm::Es256]);
        assert_eq!(
            es256["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        // Client assertions are the client's choice, not the provider's keys.
        assert_eq!(
            es256["token_endpoint_auth_signing_alg_values_supported"],
            json!(["ES256", "RS256"])
        );
    }
}
