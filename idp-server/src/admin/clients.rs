//! `idp-server client add|list|show|remove`: the administrator's view of the registered
//! OAuth/OIDC clients, and the `[[clients]]` of the configuration that the demo and the
//! tests register at start (with secrets fixed in advance, so their RPs know them).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use idp_core::CoreError;
use idp_core::client::{
    AccessTokenFormat, Client, ClientAuthMethod, ClientId, ClientRegistry, GrantType, NewClient,
};
use idp_core::secret::Secret;
use idp_core::store::ClientStore;
use idp_core::store::sql::SqlStore;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// A running server reads a changed client within this time (its registry's refresh).
const SEEN_WITHIN: &str = "30 seconds";

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its secret once (only its hash is stored).
    Add {
        #[command(flatten)]
        config: ConfigArg,
        // Boxed: the flags would make every other command as large.
        #[command(flatten)]
        client: Box<AddArgs>,
    },
    /// One line per registered client.
    List {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Every field of one client (never its secret, which is not stored).
    Show {
        /// The client_id.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Change a registered client (only the options given); running servers see the
    /// change within 30 seconds.
    Update {
        /// The client_id.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        changes: UpdateArgs,
    },
    /// Delete a client: it can no longer authenticate, sign people in or refresh tokens.
    Remove {
        /// The client_id.
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    #[arg(long, short, env = "IDP_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The client_id: 1 to 128 characters of A-Z a-z 0-9 . _ -
    #[arg(long)]
    pub id: String,
    /// The name shown to people (e.g. on the consent and logout pages).
    #[arg(long)]
    pub name: String,
    /// An exact redirect URI (https, or http on localhost); repeat for several.
    #[arg(long = "redirect-uri", value_name = "URI")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to; repeat for several.
    #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
    pub post_logout_redirect_uris: Vec<String>,
    /// The RP's back-channel logout endpoint.
    #[arg(long, value_name = "URI")]
    pub backchannel_logout_uri: Option<String>,
    /// authorization_code, refresh_token or client_credentials; repeat for several
    /// [default: authorization_code and refresh_token].
    #[arg(long = "grant-type", value_name = "GRANT", value_parser = parse_grant)]
    pub grant_types: Vec<GrantType>,
    /// client_secret_basic, client_secret_post, private_key_jwt or none.
    #[arg(long, value_name = "METHOD", value_parser = parse_method, default_value = "client_secret_basic")]
    pub auth_method: ClientAuthMethod,
    /// The client's public keys (a JWK set, or one JWK) for private_key_jwt.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// The service whose enablement the IdP checks for this client (e.g. istanze-online).
    #[arg(long)]
    pub service: Option<String>,
    /// Where the browser goes for the service's enablement step.
    #[arg(long, value_name = "URI")]
    pub enablement_uri: Option<String>,
    /// jwt (signed, RFC 9068) or opaque (sealed claims only the IdP opens).
    #[arg(long, value_name = "FORMAT", value_parser = parse_format, default_value = "jwt")]
    pub access_token_format: AccessTokenFormat,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// jwt (signed, RFC 9068) or opaque (sealed claims only the IdP opens); applies to
    /// the tokens issued from then on.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub access_token_format: Option<AccessTokenFormat>,
}

fn parse_format(value: &str) -> Result<AccessTokenFormat, String> {
    AccessTokenFormat::parse(value).map_err(|e| e.to_string())
}

fn parse_grant(value: &str) -> Result<GrantType, String> {
    GrantType::parse(value).map_err(|e| e.to_string())
}

fn parse_method(value: &str) -> Result<ClientAuthMethod, String> {
    ClientAuthMethod::parse(value).map_err(|e| e.to_string())
}

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
}

/// Runs a `client` command against the configured database, printing to stdout.
pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    let path = match &command {
        ClientCommand::Add { config, .. }
        | ClientCommand::List { config }
        | ClientCommand::Show { config, .. }
        | ClientCommand::Update { config, .. }
        | ClientCommand::Remove { config, .. } => config.config.clone(),
    };
    let config = Config::load(&path)?;
    let store = SqlStore::connect(&config.database.url, 1)
        .await
        .context("database: cannot connect")?;
    store
        .migrate()
        .await
        .context("database: migrations failed")?;
    let event = audit_event(&command);
    let mut out = std::io::stdout().lock();
    let result = execute(&store, command, &mut out).await;
    if result.is_ok()
        && let Some(event) = event
    {
        idp_core::audit::record(&store, event).await;
    }
    store.close().await;
    result
}

/// The audit record of a command that changes a client (recorded once it succeeded).
fn audit_event(command: &ClientCommand) -> Option<idp_core::audit::AuditEvent> {
    use idp_core::audit::{AuditEvent, AuditKind};
    let mut detail = serde_json::json!({ "via": "cli" });
    let (kind, id) = match command {
        ClientCommand::Add { client, .. } => (AuditKind::ClientAdded, client.id.clone()),
        ClientCommand::Update { id, changes, .. } => {
            if let Some(format) = changes.access_token_format {
                detail["access_token_format"] = format.as_str().into();
            }
            (AuditKind::ClientUpdated, id.clone())
        }
        ClientCommand::Remove { id, .. } => (AuditKind::ClientRemoved, id.clone()),
        ClientCommand::List { .. } | ClientCommand::Show { .. } => return None,
    };
    Some(AuditEvent::new(kind).client(id).detail(detail))
}

/// The commands over any client store, writing to `out` (the tests read it).
pub async fn execute(
    store: &dyn ClientStore,
    command: ClientCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        ClientCommand::Add { client, .. } => add(store, *client, out).await,
        ClientCommand::List { .. } => list(store, out).await,
        ClientCommand::Show { id, .. } => show(store, &id, out).await,
        ClientCommand::Update { id, changes, .. } => update(store, &id, changes, out).await,
        ClientCommand::Remove { id, .. } => remove(store, &id, out).await,
    }
}

async fn add(store: &dyn ClientStore, args: AddArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let jwks = args.jwks_file.as_deref().map(read_jwks).transpose()?;
    let new = NewClient {
        id: ClientId::parse(&args.id)?,
        name: args.name,
        auth_method: args.auth_method,
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        backchannel_logout_uri: args.backchannel_logout_uri,
        grant_types: if args.grant_types.is_empty() {
            default_grant_types()
        } else {
            args.grant_types
        },
        jwks,
        service: args.service,
        enablement_uri: args.enablement_uri,
        access_token_format: args.access_token_format,
    };
    let (client, secret) = Client::register(new).map_err(refusal)?;
    match store.insert_client(&client).await {
        Err(CoreError::Conflict(_)) => {
            anyhow::bail!("client {}: already registered", client.id)
        }
        other => other?,
    }
    writeln!(out, "Client registered:")?;
    describe(&client, out)?;
    if let Some(secret) = secret {
        writeln!(out)?;
        writeln!(out, "client_secret: {}", secret.expose())?;
        writeln!(
            out,
            "WARNING: this secret is shown only now and is not stored (only its hash is). \
             Give it to the relying party now; if it is lost, remove and add the client again."
        )?;
    }
    Ok(())
}

async fn list(store: &dyn ClientStore, out: &mut dyn Write) -> anyhow::Result<()> {
    let clients = store.list_clients().await?;
    if clients.is_empty() {
        writeln!(out, "no clients registered")?;
    }
    for c in clients {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        writeln!(
            out,
            "{:<24} {:<20} {:<48} {}",
            c.id,
            c.auth_method,
            grants.join(","),
            c.name
        )?;
    }
    Ok(())
}

async fn show(store: &dyn ClientStore, id: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = ClientId::parse(id)?;
    let client = store
        .client_by_id(&id)
        .await?
        .with_context(|| format!("client {id}: not registered"))?;
    Ok(describe(&client, out)?)
}

async fn update(
    store: &dyn ClientStore,
    id: &str,
    changes: UpdateArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let id = ClientId::parse(id)?;
    let Some(format) = changes.access_token_format else {
        anyhow::bail!("nothing to change: give --access-token-format");
    };
    let mut client = store
        .client_by_id(&id)
        .await?
        .with_context(|| format!("client {id}: not registered"))?;
    client.access_token_format = format;
    match store.update_client(&client).await {
        Err(CoreError::NotFound(_)) => anyhow::bail!("client {id}: not registered"),
        other => other?,
    }
    writeln!(
        out,
        "client {id} updated (running servers use the change within {SEEN_WITHIN}):"
    )?;
    Ok(describe(&client, out)?)
}

async fn remove(store: &dyn ClientStore, id: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = ClientId::parse(id)?;
    if !store.delete_client(&id).await? {
        anyhow::bail!("client {id}: not registered");
    }
    writeln!(
        out,
        "client {id} removed (running servers stop accepting it within {SEEN_WITHIN})"
    )?;
    Ok(())
}

fn describe(c: &Client, out: &mut dyn Write) -> std::io::Result<()> {
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(" ")
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let grants: Vec<String> = c.grant_types.iter().map(|g| g.to_string()).collect();
    let secret = match (&c.secret_hash, c.auth_method) {
        (Some(_), _) => "set (only its SHA-256 is stored)",
        (None, ClientAuthMethod::PrivateKeyJwt) => "none (authenticates with its keys)",
        (None, _) => "none (public client)",
    };
    let keys = c.jwk_set().map(|set| {
        let kids: Vec<String> = set
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap_or_else(|| "(no kid)".into()))
            .collect();
        format!("{} key(s): {}", set.keys.len(), kids.join(" "))
    });
    let created = chrono::DateTime::from_timestamp(c.created_at, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| c.created_at.to_string());
    writeln!(out, "  client_id                  {}", c.id)?;
    writeln!(out, "  name                       {}", c.name)?;
    writeln!(out, "  auth_method                {}", c.auth_method)?;
    writeln!(out, "  client_secret              {secret}")?;
    writeln!(out, "  grant_types                {}", grants.join(" "))?;
    writeln!(
        out,
        "  redirect_uris              {}",
        list(&c.redirect_uris)
    )?;
    writeln!(
        out,
        "  post_logout_redirect_uris  {}",
        list(&c.post_logout_redirect_uris)
    )?;
    writeln!(
        out,
        "  backchannel_logout_uri     {}",
        opt(&c.backchannel_logout_uri)
    )?;
    writeln!(out, "  jwks                       {}", opt(&keys))?;
    writeln!(out, "  service                    {}", opt(&c.service))?;
    writeln!(
        out,
        "  enablement_uri             {}",
        opt(&c.enablement_uri)
    )?;
    writeln!(
        out,
        "  access_token_format        {}",
        c.access_token_format
    )?;
    writeln!(out, "  created_at                 {created}")?;
    Ok(())
}

/// A refused registration says which field and why, without the generic prefix.
fn refusal(e: CoreError) -> anyhow::Error {
    match e {
        CoreError::Invalid(detail) => anyhow::anyhow!(detail),
        other => other.into(),
    }
}

/// A JWK set, or a single JWK taken as a set of one.
fn read_jwks(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("jwks file {}: cannot read", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("jwks file {}: not JSON", path.display()))?;
    Ok(if value.get("kty").is_some() {
        serde_json::json!({ "keys": [value] })
    } else {
        value
    })
}

/// A client of the configuration (`[[clients]]`): the fields of `client add`, plus a
/// `secret` fixed in advance for the secret methods. Development and tests only: a
/// production client gets a generated secret with `client add`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSeed {
    pub id: ClientId,
    pub name: String,
    /// Stored hashed; required for client_secret_basic and client_secret_post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default = "default_auth_method")]
    pub auth_method: ClientAuthMethod,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<GrantType>,
    /// The public keys for private_key_jwt, inline (a JWK set)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// ...or in a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enablement_uri: Option<String>,
    /// "jwt" (default) or "opaque".
    #[serde(default)]
    pub access_token_format: AccessTokenFormat,
}

fn default_auth_method() -> ClientAuthMethod {
    ClientAuthMethod::ClientSecretBasic
}

impl fmt::Debug for ClientSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSeed")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("auth_method", &self.auth_method)
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("backchannel_logout_uri", &self.backchannel_logout_uri)
            .field("grant_types", &self.grant_types)
            .field("jwks", &self.jwks)
            .field("jwks_file", &self.jwks_file)
            .field("service", &self.service)
            .field("enablement_uri", &self.enablement_uri)
            .field("access_token_format", &self.access_token_format)
            .finish()
    }
}

impl ClientSeed {
    /// The client this entry registers, checked by the registration rules.
    pub fn client(&self) -> anyhow::Result<Client> {
        let jwks = match (&self.jwks, &self.jwks_file) {
            (Some(_), Some(_)) => anyhow::bail!("jwks: give jwks or jwks_file, not both"),
            (Some(jwks), None) => Some(jwks.clone()),
            (None, Some(path)) => Some(read_jwks(path)?),
            (None, None) => None,
        };
        let new = NewClient {
            id: self.id.clone(),
            name: self.name.clone(),
            auth_method: self.auth_method,
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            grant_types: self.grant_types.clone(),
            jwks,
            service: self.service.clone(),
            enablement_uri: self.enablement_uri.clone(),
            access_token_format: self.access_token_format,
        };
        match (&self.secret, self.auth_method.uses_secret()) {
            (Some(secret), _) => {
                Client::register_with_secret(new, &Secret::new(secret.clone())).map_err(refusal)
            }
            (None, true) => anyhow::bail!(
                "secret: required for {} (the relying party must know it)",
                self.auth_method
            ),
            (None, false) => Ok(Client::register(new).map_err(refusal)?.0),
        }
    }
}

/// Registers the configured clients, updating those already stored (idempotent: run at
/// every start). Each is invalidated in `registry` so the change shows at once.
pub async fn seed_clients(registry: &ClientRegistry, seeds: &[ClientSeed]) -> anyhow::Result<()> {
    let store = registry.store();
    for seed in seeds {
        let mut client = seed
            .client()
            .with_context(|| format!("clients: {}", seed.id))?;
        match store.client_by_id(&client.id).await? {
            Some(existing) => {
                client.created_at = existing.created_at;
                if existing != client {
                    store.update_client(&client).await?;
                }
            }
            None => match store.insert_client(&client).await {
                // Another instance seeded it in the meantime: same content.
                Err(CoreError::Conflict(_)) => store.update_client(&client).await?,
                other => other?,
            },
        }
        registry.invalidate(&client.id);
        tracing::debug!(client_id = %client.id, "configured client registered");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
