//! The `idp-server` command: `demo`, `serve`, `migrate`, `keys`, `client`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use idp_core::keys::SigningAlgorithm;
use idp_server::config::Config;
use idp_server::state::AppState;
use idp_server::{BoundServer, admin, demo, jobs, shutdown_signal, telemetry};

#[derive(Parser)]
#[command(
    name = "idp-server",
    version,
    about = "Federated identity provider for the school services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole federation locally on embedded defaults (SQLite, in-process
    /// cache, dev keys, mail outbox page).
    Demo {
        /// Port of the identity provider.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Folder for the demo's SQLite database.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Port of the local SPID test IdP (default: the IdP's port + 10).
        #[arg(long)]
        spid_port: Option<u16>,
    },
    /// Run in production from a configuration file.
    Serve {
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
    /// The OIDC signing keys in the configured database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log of security events, one a line, oldest first.
    Audit(admin::audit::AuditArgs),
    /// Accounts in the configured database.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// The registered OAuth/OIDC clients in the configured database.
    Client {
        #[command(subcommand)]
        command: admin::clients::ClientCommand,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Load existing `nome_cognome` and `ministry` accounts from a CSV file, keeping
    /// their usernames and institutional emails, with no password.
    Import {
        /// CSV with header: username,kind,given_name,family_name,fiscal_code,
        /// institutional_email,personal_email
        file: PathBuf,
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
    /// Grant a role (`school_operator`) to an account.
    GrantRole {
        username: String,
        role: String,
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
    /// Revoke a role from an account.
    RevokeRole {
        username: String,
        role: String,
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new key at once that signs after `keys.rotation_delay_secs`; the older
    /// keys of its algorithm leave the JWKS `keys.max_token_lifetime_secs` after that.
    Rotate {
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
        /// ES256 or RS256; every configured algorithm when omitted.
        #[arg(long)]
        algorithm: Option<SigningAlgorithm>,
    },
    /// List the stored keys: kid, algorithm, state, created, signs from, retired at.
    List {
        #[arg(long, short, env = "IDP_CONFIG")]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idp-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until Ctrl-C or SIGTERM with the background jobs running; on shutdown the
/// server finishes its in-flight requests, then the jobs stop between runs.
async fn serve_with_jobs(state: &AppState, server: BoundServer) -> anyhow::Result<()> {
    let jobs = jobs::spawn(state);
    let served = server.run(shutdown_signal()).await;
    jobs.stop().await;
    served
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo {
            port,
            data_dir,
            spid_port,
        } => {
            let mut config = Config::demo(&data_dir, port)?;
            telemetry::init(&config.log);
            let services = demo::services(port);
            let rp_binary = demo::rp_binary();
            if rp_binary.is_some() {
                for service in &services {
                    config.clients.push(service.client_seed()?);
                }
            }
            // The SPID test IdP on its own port, on the same host name as the IdP (the
            // same site, so the sign-in's binding cookie comes back with the Response).
            std::fs::create_dir_all(&data_dir)?;
            let certs_dir = demo::certs_dir();
            let certs = certs_dir.as_path();
            let test_idp = demo::SpidTestIdp::bind(
                std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    spid_port.unwrap_or(port.saturating_add(10)),
                )),
                "localhost",
                certs,
            )
            .await?;
            test_idp.configure(
                &mut config,
                certs,
                &data_dir.join("spid-test-idp-metadata.xml"),
            )?;
            let state = AppState::build(config).await?;
            demo::seed_account(&state).await?;
            let test_idp_url = test_idp.base_url.clone();
            let _test_idp = test_idp.serve(&state)?;
            let server = BoundServer::bind(state.clone()).await?;
            let base = &state.config.server.public_url;
            println!("Demo federation started (development only):");
            println!(
                "  Identity provider     {base}  (listening on {})",
                server.local_addr
            );
            // Children stop with the demo (kill_on_drop).
            let mut _children = Vec::new();
            match &rp_binary {
                Some(rp) => {
                    for service in &services {
                        _children.push(service.spawn(rp, base)?);
                        println!("  {:<21} {}", service.name, service.base_url());
                    }
                }
                None => println!(
                    "  Services              not started: build them with \
                     `cargo build -p relying-parties`"
                ),
            }
            println!(
                "  SPID test IdP         {test_idp_url}  (\"Entra con SPID\" on the login page)"
            );
            println!("  SPID SP metadata      {base}/spid/metadata");
            println!("  Mail outbox           {base}/dev/outbox");
            println!("  Database              {}", state.config.database.url);
            println!(
                "  Ready account         username {}  password {}",
                demo::DEMO_USERNAME,
                demo::DEMO_PASSWORD
            );
            println!("Press Ctrl-C to stop.");
            serve_with_jobs(&state, server).await
        }
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            telemetry::init(&config.log);
            let state = AppState::build(config).await?;
            let server = BoundServer::bind(state.clone()).await?;
            tracing::info!(addr = %server.local_addr, issuer = %state.config.server.public_url, "serving");
            serve_with_jobs(&state, server).await
        }
        Command::Migrate { config } => {
            let config = Config::load(&config)?;
            let store = idp_core::store::sql::SqlStore::connect(&config.database.url, 1).await?;
            store.migrate().await?;
            println!("migrations applied to {}", config.database.kind_name());
            Ok(())
        }
        Command::Keys { command } => match command {
            KeysCommand::Rotate { config, algorithm } => {
                let config = Config::load(&config)?;
                print!("{}", admin::keys::rotate(&config, algorithm).await?);
                Ok(())
            }
            KeysCommand::List { config } => {
                let config = Config::load(&config)?;
                print!("{}", admin::keys::list(&config).await?);
                Ok(())
            }
        },
        Command::Accounts {
            command:
                AccountsCommand::GrantRole {
                    username,
                    role,
                    config,
                },
        } => {
            let config = Config::load(&config)?;
            admin::accounts::set_role(&config, &username, &role, true).await?;
            println!("role {role} granted to {username}");
            Ok(())
        }
        Command::Accounts {
            command:
                AccountsCommand::RevokeRole {
                    username,
                    role,
                    config,
                },
        } => {
            let config = Config::load(&config)?;
            if admin::accounts::set_role(&config, &username, &role, false).await? {
                println!("role {role} revoked from {username}");
            } else {
                println!("{username} did not have role {role}");
            }
            Ok(())
        }
        Command::Accounts {
            command: AccountsCommand::Import { file, config },
        } => {
            let config = Config::load(&config)?;
            let report = admin::accounts::import_file(&config, &file).await?;
            println!(
                "accounts imported: {} created, {} already present, {} refused",
                report.created,
                report.skipped,
                report.errors.len()
            );
            for e in &report.errors {
                println!("  {e}");
            }
            if report.errors.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} rows refused", report.errors.len())
            }
        }
        Command::Client { command } => admin::clients::run(command).await,
        Command::Audit(args) => admin::audit::run(args).await,
    }
}
