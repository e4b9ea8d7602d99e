//! The `client` commands and the configured clients, on an in-memory SQLite store.

use std::sync::Arc;

use clap::Parser;
use idp_core::secret::TokenHash;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: ClientCommand,
}

fn command(args: &[&str]) -> ClientCommand {
    let mut argv = vec!["client"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--config", "unused.toml"]);
    Cli::try_parse_from(argv).expect("arguments parse").command
}

async fn store() -> Arc<SqlStore> {
    let store = SqlStore::connect("sqlite::memory:", 1)
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrations");
    Arc::new(store)
}

async fn run_on(store: &SqlStore, args: &[&str]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    execute(store, command(args), &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

fn secret_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .expect("the secret is printed")
        .to_string()
}

#[tokio::test]
async fn an_administrator_adds_a_client_and_sees_its_secret_once() {
    let store = store().await;
    let out = run_on(
        &store,
        &[
            "add",
            "--id",
            "istanze-online",
            "--name",
            "Istanze OnLine",
            "--redirect-uri",
            "https://istanze.example.it/callback",
            "--redirect-uri",
            "http://localhost:8081/callback",
            "--service",
            "istanze-online",
            "--enablement-uri",
            "https://istanze.example.it/abilitazione",
        ],
    )
    .await
    .expect("add");
    let secret = secret_of(&out);
    assert!(out.contains("WARNING: this secret is shown only now and is not stored"));
    let stored = store
        .client_by_id(&ClientId::parse("istanze-online").expect("id"))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.secret_hash, Some(TokenHash::of(&secret)));
    assert_eq!(stored.auth_method, ClientAuthMethod::ClientSecretBasic);
    assert_eq!(
        stored.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(stored.redirect_uris.len(), 2);

    let shown = run_on(&store, &["show", "istanze-online"])
        .await
        .expect("show");
    assert!(!shown.contains(&secret));
    assert!(!shown.contains(stored.secret_hash.as_ref().expect("hash").as_str()));
    assert!(shown.contains("https://istanze.example.it/abilitazione"));
    assert!(shown.contains("set (only its SHA-256 is stored)"));

    let again = run_on(
        &store,
        &[
            "add",
            "--id",
            "istanze-online",
            "--name",
            "x",
            "--grant-type",
            "client_credentials",
        ],
    )
    .await
    .expect_err("duplicate");
    assert_eq!(
        again.to_string(),
        "client istanze-online: already registered"
    );
}

#[tokio::test]
async fn a_refused_registration_says_why_and_stores_nothing() {
    let store = store().await;
    let e = run_on(
        &store,
        &[
            "add",
            "--id",
            "rp",
            "--name",
            "RP",
            "--redirect-uri",
            "http://rp.example.it/cb",
        ],
    )
    .await
    .expect_err("http is refused");
    assert!(
        e.to_string()
            .contains("redirect_uris: \"http://rp.example.it/cb\" uses http"),
        "{e}"
    );
    assert!(store.list_clients().await.expect("list").is_empty());

    let parsed = Cli::try_parse_from([
        "client",
        "add",
        "--id",
        "rp",
        "--name",
        "RP",
        "--grant-type",
        "password",
        "--config",
        "x",
    ]);
    assert!(parsed.is_err(), "unknown grant accepted");
}

#[tokio::test]
async fn list_show_and_remove() {
    let store = store().await;
    assert_eq!(
        run_on(&store, &["list"]).await.expect("list"),
        "no clients registered\n"
    );
    run_on(
        &store,
        &[
            "add",
            "--id",
            "batch",
            "--name",
            "Back office",
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "client_secret_post",
        ],
    )
    .await
    .expect("add");
    run_on(
        &store,
        &[
            "add",
            "--id",
            "app",
            "--name",
            "App pubblica",
            "--auth-method",
            "none",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
        ],
    )
    .await
    .expect("add public");
    let listed = run_on(&store, &["list"]).await.expect("list");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("app ") && lines[0].contains("none"));
    assert!(lines[1].starts_with("batch ") && lines[1].contains("client_credentials"));

    let shown = run_on(&store, &["show", "app"]).await.expect("show");
    assert!(shown.contains("none (public client)"));

    let removed = run_on(&store, &["remove", "batch"]).await.expect("remove");
    assert!(removed.starts_with("client batch removed"));
    let e = run_on(&store, &["remove", "batch"])
        .await
        .expect_err("gone");
    assert_eq!(e.to_string(), "client batch: not registered");
    let e = run_on(&store, &["show", "batch"]).await.expect_err("gone");
    assert_eq!(e.to_string(), "client batch: not registered");
}

#[tokio::test]
async fn an_administrator_chooses_opaque_access_tokens_at_registration_or_later() {
    let store = store().await;
    let out = run_on(
        &store,
        &[
            "add",
            "--id",
            "batch",
            "--name",
            "Back office",
            "--grant-type",
            "client_credentials",
            "--access-token-format",
            "opaque",
        ],
    )
    .await
    .expect("add");
    assert!(out.contains("access_token_format        opaque"), "{out}");
    assert_eq!(format_of(&store, "batch").await, AccessTokenFormat::Opaque);

    let out = run_on(&store, &["update", "batch", "--access-token-format", "jwt"])
        .await
        .expect("update");
    assert!(out.starts_with("client batch updated"), "{out}");
    assert!(out.contains("access_token_format        jwt"), "{out}");
    assert_eq!(format_of(&store, "batch").await, AccessTokenFormat::Jwt);

    let e = run_on(&store, &["update", "batch"])
        .await
        .expect_err("nothing to change");
    assert_eq!(
        e.to_string(),
        "nothing to change: give --access-token-format"
    );
    let e = run_on(
        &store,
        &["update", "gone", "--access-token-format", "opaque"],
    )
    .await
    .expect_err("unknown client");
    assert_eq!(e.to_string(), "client gone: not registered");
    for bad in [
        &[
            "add",
            "--id",
            "x",
            "--name",
            "X",
            "--access-token-format",
            "reference",
        ][..],
        &["update", "batch", "--access-token-format", "JWT"][..],
    ] {
        let mut argv = vec!["client"];
        argv.extend_from_slice(bad);
        argv.extend_from_slice(&["--config", "x"]);
        let e = Cli::try_parse_from(argv).err().expect("refused");
        assert!(
            e.to_string().contains("access_token_format: unknown"),
            "{e}"
        );
    }

    // Without the option, a client gets JWTs.
    run_on(
        &store,
        &[
            "add",
            "--id",
            "plain",
            "--name",
            "Plain",
            "--grant-type",
            "client_credentials",
        ],
    )
    .await
    .expect("add");
    assert_eq!(format_of(&store, "plain").await, AccessTokenFormat::Jwt);
}

async fn format_of(store: &SqlStore, id: &str) -> AccessTokenFormat {
    store
        .client_by_id(&ClientId::parse(id).expect("id"))
        .await
        .expect("read")
        .expect("stored")
        .access_token_format
}

#[tokio::test]
async fn a_private_key_jwt_client_is_added_from_a_jwks_file() {
    let store = store().await;
    let dir = std::env::temp_dir().join(format!("idp-admin-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("key.json");
    // One JWK (not a set) is accepted as a set of one.
    std::fs::write(
        &path,
        r#"{"kty":"EC","crv":"P-256","kid":"rp-2026",
            "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    )
    .expect("write");
    let out = run_on(
        &store,
        &[
            "add",
            "--id",
            "rp-jwt",
            "--name",
            "RP con chiave",
            "--auth-method",
            "private_key_jwt",
            "--redirect-uri",
            "https://rp.example.it/cb",
            "--jwks-file",
            path.to_str().expect("utf-8 path"),
        ],
    )
    .await
    .expect("add");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.contains("client_secret:"), "{out}");
    assert!(out.contains("1 key(s): rp-2026"), "{out}");
}

fn seed(id: &str, secret: Option<&str>) -> ClientSeed {
    ClientSeed {
        id: ClientId::parse(id).expect("id"),
        name: "Pago in rete".into(),
        secret: secret.map(str::to_string),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        redirect_uris: vec!["http://localhost:8082/callback".into()],
        post_logout_redirect_uris: vec![],
        backchannel_logout_uri: None,
        grant_types: default_grant_types(),
        jwks: None,
        jwks_file: None,
        service: None,
        enablement_uri: None,
        access_token_format: AccessTokenFormat::Jwt,
    }
}

#[tokio::test]
async fn configured_clients_are_seeded_idempotently_with_their_fixed_secret() {
    let store = store().await;
    let registry = ClientRegistry::new(store.clone());
    let id = ClientId::parse("pago-in-rete").expect("id");
    let seeds = vec![seed("pago-in-rete", Some("dev-secret-pago-in-rete"))];
    seed_clients(&registry, &seeds).await.expect("seed");
    let first = registry.get(&id).await.expect("get").expect("seeded");
    assert_eq!(
        first.secret_hash,
        Some(TokenHash::of("dev-secret-pago-in-rete"))
    );
    seed_clients(&registry, &seeds).await.expect("seed again");
    assert_eq!(store.list_clients().await.expect("list").len(), 1);

    // A changed entry updates the stored client, keeping its creation time, and the
    // registry shows the change at once.
    let mut changed = seeds.clone();
    changed[0].name = "Pago In Rete".into();
    changed[0].secret = Some("another-dev-secret".into());
    seed_clients(&registry, &changed).await.expect("update");
    let updated = registry.get(&id).await.expect("get").expect("seeded");
    assert_eq!(updated.name, "Pago In Rete");
    assert_eq!(
        updated.secret_hash,
        Some(TokenHash::of("another-dev-secret"))
    );
    assert_eq!(updated.created_at, first.created_at);
}

#[tokio::test]
async fn a_configured_client_is_checked_like_any_other() {
    let store = store().await;
    let registry = ClientRegistry::new(store.clone());
    let e = seed_clients(&registry, &[seed("rp", None)])
        .await
        .expect_err("no secret");
    assert_eq!(
        format!("{e:#}"),
        "clients: rp: secret: required for client_secret_basic (the relying party must know it)"
    );
    let mut public = seed("rp", Some("x"));
    public.auth_method = ClientAuthMethod::None;
    let e = seed_clients(&registry, &[public])
        .await
        .expect_err("public");
    assert!(format!("{e:#}").contains("a client using none has no secret"));
    let mut bad = seed("rp", Some("x"));
    bad.redirect_uris = vec!["https://rp.example.it/cb#x".into()];
    let e = seed_clients(&registry, &[bad]).await.expect_err("fragment");
    assert!(format!("{e:#}").contains("has a fragment"));
    assert!(store.list_clients().await.expect("list").is_empty());
}

#[test]
fn a_configured_secret_never_prints() {
    let shown = format!("{:?}", seed("rp", Some("hunter2-dev-secret")));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("***"));
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's own signature
fn clients_are_read_from_the_configuration_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "idp.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            public_url = "https://iam.example.it"
            [database]
            url = "sqlite::memory:"

            [[clients]]
            id = "istanze-online"
            name = "Istanze OnLine"
            secret = "dev-secret-istanze"
            redirect_uris = ["http://localhost:8081/callback"]
            service = "istanze-online"
            enablement_uri = "http://localhost:8081/abilitazione"

            [[clients]]
            id = "rp-jwt"
            name = "RP con chiave"
            auth_method = "private_key_jwt"
            grant_types = ["client_credentials"]
            jwks = { keys = [{ kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }] }
            access_token_format = "opaque"
            "#,
        )?;
        let c = Config::load(Path::new("idp.toml")).map_err(|e| e.to_string())?;
        assert_eq!(c.clients.len(), 2);
        assert_eq!(
            c.clients[0].auth_method,
            ClientAuthMethod::ClientSecretBasic
        );
        assert_eq!(c.clients[0].grant_types, default_grant_types());
        assert_eq!(c.clients[1].grant_types, vec![GrantType::ClientCredentials]);
        assert_eq!(c.clients[0].access_token_format, AccessTokenFormat::Jwt);
        assert_eq!(c.clients[1].access_token_format, AccessTokenFormat::Opaque);
        let client = c.clients[1].client().map_err(|e| e.to_string())?;
        assert_eq!(client.jwk_set().map(|s| s.keys.len()), Some(1));
        assert_eq!(client.access_token_format, AccessTokenFormat::Opaque);
        assert!(!format!("{c:?}").contains("dev-secret-istanze"));

        // A registration rule broken in the file stops the start, naming the entry.
        jail.create_file(
            "bad.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            public_url = "https://iam.example.it"
            [database]
            url = "sqlite::memory:"
            [[clients]]
            id = "rp"
            name = "RP"
            secret = "s"
            redirect_uris = ["http://rp.example.it/cb"]
            "#,
        )?;
        let e = Config::load(Path::new("bad.toml")).expect_err("http refused");
        assert!(
            e.to_string()
                .starts_with("configuration: clients[0] (rp): redirect_uris: "),
            "{e}"
        );
        jail.create_file(
            "typo.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            public_url = "https://iam.example.it"
            [database]
            url = "sqlite::memory:"
            [[clients]]
            id = "rp"
            name = "RP"
            auth_method = "client_secret"
            "#,
        )?;
        let e = Config::load(Path::new("typo.toml")).expect_err("unknown method");
        assert!(e.to_string().contains("auth_method"), "{e}");
        jail.create_file(
            "format.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"
            public_url = "https://iam.example.it"
            [database]
            url = "sqlite::memory:"
            [[clients]]
            id = "rp"
            name = "RP"
            secret = "s"
            grant_types = ["client_credentials"]
            access_token_format = "reference"
            "#,
        )?;
        let e = Config::load(Path::new("format.toml")).expect_err("unknown format");
        assert!(e.to_string().contains("access_token_format"), "{e}");
        Ok(())
    });
}
