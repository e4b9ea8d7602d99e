//! A minimal SP built on `ServiceProvider` with an in-memory `SamlState`, for running
//! spid-sp-test against our real code in CI: `/metadata`, `/login/redirect` and
//! `/login/post` (a fresh AuthnRequest each time, remembered like in production), `/acs`
//! (200 on a valid response, 4xx with the reason on a rejected one), `/slo`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use spid_bridge::{
    Binding, Comparison, IdpRegistry, MemoryState, OutgoingMessage, SamlMessage, ServiceProvider,
    SpConfig, SpidLevel,
};

#[derive(Parser)]
#[command(about = "SPID SP harness for spid-sp-test (CI only)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// Our base URL, also our entity ID (ACS at <base>/acs, SLO at <base>/slo).
    #[arg(long)]
    base_url: String,
    /// IdP metadata files; the first IdP is the one logins go to.
    #[arg(long = "idp-metadata", required = true)]
    idp_metadata: Vec<PathBuf>,
    #[arg(long, default_value = "certs-dev/spid-sp.key")]
    key: PathBuf,
    #[arg(long, default_value = "certs-dev/spid-sp.crt")]
    cert: PathBuf,
    #[arg(long, default_value = "m_pi")]
    ipa_code: String,
}

struct App {
    sp: ServiceProvider,
    state: MemoryState,
    idp: String,
}

type Shared = Arc<App>;

fn level(q: &HashMap<String, String>) -> SpidLevel {
    match q.get("level").map(String::as_str) {
        Some("3") => SpidLevel::L3,
        Some("2") => SpidLevel::L2,
        _ => SpidLevel::L1,
    }
}

fn send(msg: OutgoingMessage) -> Response {
    match msg {
        OutgoingMessage::Redirect { location } => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        OutgoingMessage::Post { action, fields } => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            };
            let inputs: String = fields
                .iter()
                .map(|(k, v)| {
                    format!(
                        r#"<input type="hidden" name="{}" value="{}">"#,
                        esc(k),
                        esc(v)
                    )
                })
                .collect();
            Html(format!(
                r#"<!doctype html><html lang="it"><head><meta charset="utf-8"><title>SPID</title></head><body><form method="post" action="{}">{inputs}<button type="submit">Continua</button></form></body></html>"#,
                esc(&action)
            ))
            .into_response()
        }
    }
}

async fn login(s: &App, q: &HashMap<String, String>, binding: Binding) -> Response {
    match s
        .sp
        .start_login(&s.state, &s.idp, level(q), binding, "harness")
        .await
    {
        Ok(m) => send(m),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn login_redirect(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    login(&s, &q, Binding::HttpRedirect).await
}

async fn login_post(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    login(&s, &q, Binding::HttpPost).await
}

async fn metadata(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        s.sp.metadata_xml().to_string(),
    )
        .into_response()
}

async fn acs(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let Some(resp) = f.get("SAMLResponse") else {
        return (StatusCode::BAD_REQUEST, "no SAMLResponse").into_response();
    };
    match s
        .sp
        .finish_login(&s.state, resp, f.get("RelayState").map(String::as_str))
        .await
    {
        Ok(login) => (
            StatusCode::OK,
            format!(
                "ok {} {:?}",
                login.identity.fiscal_number, login.identity.level
            ),
        )
            .into_response(),
        Err(r) => {
            tracing::warn!(reason = r.reason, detail = %r.detail, "rejected");
            (
                StatusCode::FORBIDDEN,
                format!("rejected: {}: {}", r.reason, r.detail),
            )
                .into_response()
        }
    }
}

async fn slo_get(State(s): State<Shared>, RawQuery(q): RawQuery) -> Response {
    let raw_query = q.unwrap_or_default();
    slo(
        &s,
        SamlMessage::Redirect {
            raw_query: raw_query.clone(),
        },
        raw_query.contains("SAMLResponse="),
    )
    .await
}

async fn slo_post(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let is_response = f.contains_key("SAMLResponse");
    let saml = f
        .get("SAMLResponse")
        .or(f.get("SAMLRequest"))
        .cloned()
        .unwrap_or_default();
    slo(
        &s,
        SamlMessage::Post {
            saml,
            relay_state: f.get("RelayState").cloned(),
        },
        is_response,
    )
    .await
}

async fn slo(s: &App, msg: SamlMessage, is_response: bool) -> Response {
    if is_response {
        match s.sp.finish_logout(&s.state, &msg).await {
            Ok(relay) => (StatusCode::OK, format!("logged out {relay}")).into_response(),
            Err(r) => (StatusCode::FORBIDDEN, format!("rejected: {}", r.reason)).into_response(),
        }
    } else {
        match s.sp.handle_logout_request(&s.state, &msg).await {
            Ok((_, out)) => send(out),
            Err(r) => (StatusCode::FORBIDDEN, format!("rejected: {}", r.reason)).into_response(),
        }
    }
}

async fn run() -> Result<(), String> {
    let args = Args::parse();
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let base = args.base_url.trim_end_matches('/').to_string();
    let registry =
        IdpRegistry::from_metadata_files(&args.idp_metadata).map_err(|e| e.to_string())?;
    let idp = registry
        .all()
        .first()
        .ok_or("no IdP in the metadata")?
        .entity_id
        .clone();
    let config = SpConfig {
        entity_id: base.clone(),
        acs_url: format!("{base}/acs"),
        slo_url: format!("{base}/slo"),
        key_pem: read(&args.key)?,
        cert_pem: read(&args.cert)?,
        organization_name: "Ministero dell'istruzione e del merito".into(),
        organization_display_name: "Identità delle scuole".into(),
        organization_url: "https://www.mim.gov.it".into(),
        ipa_code: args.ipa_code,
        contact_email: "spid@example.org".into(),
        contact_phone: None,
        comparison: Comparison::Minimum,
        clock_skew_secs: 60,
        request_ttl_secs: 600,
    };
    let sp = ServiceProvider::new(config, registry).map_err(|e| e.to_string())?;
    let app = Router::new()
        .route("/metadata", get(metadata))
        .route("/login/redirect", get(login_redirect))
        .route("/login/post", get(login_post))
        .route("/acs", axum::routing::post(acs))
        .route("/slo", get(slo_get).post(slo_post))
        .with_state(Arc::new(App {
            sp,
            state: MemoryState::new(),
            idp,
        }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    axum::serve(listener, app).await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run().await {
        eprintln!("spid-sp-harness: {e}");
        std::process::exit(1);
    }
}
