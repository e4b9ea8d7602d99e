//! The local SPID test IdP (DEVELOPMENT ONLY): `spid-test-idp --listen 127.0.0.1:8090
//! --sp-metadata URL|FILE --key PEM --cert PEM --base-url URL`; `--print-metadata` prints its
//! signed metadata and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use spid_bridge::test_idp::{TestIdpConfig, metadata_xml, router};

#[derive(Parser)]
#[command(about = "Local SPID test identity provider (development only)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The SP's metadata: an http(s) URL or a file; may be repeated.
    #[arg(long = "sp-metadata", required_unless_present = "print_metadata")]
    sp_metadata: Vec<String>,
    /// Print the IdP's signed metadata (for the SP's IdP registry) and exit.
    #[arg(long)]
    print_metadata: bool,
    /// PEM private key file (PKCS#8 RSA).
    #[arg(long, default_value = "certs-dev/spid-test-idp.key")]
    key: PathBuf,
    /// PEM certificate file.
    #[arg(long, default_value = "certs-dev/spid-test-idp.crt")]
    cert: PathBuf,
    /// The URL this IdP is reached at (also its entity ID).
    #[arg(long)]
    base_url: Option<String>,
}

async fn load(source: &str) -> Result<String, String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let resp = reqwest::get(source)
            .await
            .map_err(|e| format!("{source}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{source}: HTTP {}", resp.status()));
        }
        resp.text().await.map_err(|e| format!("{source}: {e}"))
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))
    }
}

async fn run() -> Result<(), String> {
    let args = Args::parse();
    let mut sp_metadata_xml = Vec::new();
    for s in &args.sp_metadata {
        sp_metadata_xml.push(load(s).await?);
    }
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let config = TestIdpConfig {
        base_url: args
            .base_url
            .unwrap_or_else(|| format!("http://{}", args.listen)),
        key_pem: read(&args.key)?,
        cert_pem: read(&args.cert)?,
        sp_metadata_xml,
    };
    if args.print_metadata {
        println!("{}", metadata_xml(&config).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let app = router(config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("{}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, "spid-test-idp: DEVELOPMENT ONLY");
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
        eprintln!("spid-test-idp: {e}");
        std::process::exit(1);
    }
}
