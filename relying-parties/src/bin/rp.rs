//! `rp --service istanze-online|pago-in-rete|governance`: one of the three services as
//! an OpenID Connect client of the IdP, on its own port.

use clap::Parser;
use relying_parties::Service;

#[derive(Parser)]
#[command(about = "One of the three school services as a relying party of the IdP")]
struct Args {
    /// Which service to run.
    #[arg(long, value_enum)]
    service: Service,
    /// The IdP's issuer URL.
    #[arg(long, default_value = "http://localhost:8080", env = "RP_ISSUER")]
    issuer: String,
    /// The port to listen on (127.0.0.1).
    #[arg(long)]
    port: u16,
    /// The client secret registered at the IdP.
    #[arg(long, env = "RP_CLIENT_SECRET")]
    client_secret: String,
    /// The client_id [default: the service name].
    #[arg(long)]
    client_id: Option<String>,
    /// Where people reach this service [default: http://localhost:PORT].
    #[arg(long)]
    base_url: Option<String>,
    /// Istanze OnLine's database [default: in memory, lost at exit].
    #[arg(long, env = "RP_DATABASE_URL", default_value = "sqlite::memory:")]
    database_url: String,
    /// Istanze OnLine's SMTP server (lettre URL, e.g. smtps://user:pass@host); without
    /// it the mails stay in the outbox table.
    #[arg(long, env = "RP_SMTP_URL")]
    smtp_url: Option<String>,
    /// Istanze OnLine's sender address.
    #[arg(
        long,
        env = "RP_MAIL_FROM",
        default_value = "Istanze OnLine <istanze-online@localhost>"
    )]
    mail_from: String,
    /// Development only: list the mails sent at /dev/outbox.json (it shows the CPTs).
    #[arg(long, env = "RP_DEV_OUTBOX")]
    dev_outbox: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let base_url = args
        .base_url
        .unwrap_or_else(|| format!("http://localhost:{}", args.port));
    let mut config = args
        .service
        .config(&args.issuer, &args.client_secret, &base_url, args.port);
    config.istanze = relying_parties::istanze::Settings {
        database_url: args.database_url,
        smtp_url: args.smtp_url,
        mail_from: args.mail_from,
        dev_outbox: args.dev_outbox,
    };
    if let Some(id) = args.client_id {
        config.client_id = id;
    }
    // The IdP may still be starting (the demo starts us next to it): retry discovery.
    let mut attempt = 0;
    let bound = loop {
        match relying_parties::serve(config.clone()).await {
            Ok(bound) => break bound,
            Err(e) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(error = %e, "the IdP is not ready; retrying in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    println!(
        "{} listening on {} ({})",
        args.service.display_name(),
        bound.local_addr,
        bound.base_url
    );
    bound
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
