//! Starts a real IdP on a free loopback port, on the embedded default (in-memory
//! SQLite, in-process cache) or on production storage (a throwaway PostgreSQL database
//! and a Redis namespace), and drives it like a browser would.

use std::net::SocketAddr;
use std::sync::Arc;

use idp_core::account::{AccountKind, Email, Username};
use idp_core::directory::{Account, NewAccount};
use idp_core::fiscal_code::{FiscalCode, Sex};
use idp_core::mail::Mailer;
use idp_core::password::Password;
use idp_server::admin::clients::ClientSeed;
use idp_server::config::{CacheKind, Config};
use idp_server::jobs::{self, Jobs};
use idp_server::state::AppState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{TestDatabase, redis_url, unique_suffix};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In-memory SQLite and the in-process cache.
    Embedded,
    /// PostgreSQL and Redis.
    Production,
}

/// The PostgreSQL database and Redis namespace an instance runs on, so that another
/// instance can be started on the same ones (`TestIdp::start_sharing`) or an instance
/// on private services (`TestIdp::start_on`).
#[derive(Clone, Debug)]
pub struct Stores {
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
}

/// Wraps the configured mail delivery (see `TestIdp::start_with_delivery`).
type Delivery<'a> = Box<dyn FnOnce(Arc<dyn Mailer>) -> Arc<dyn Mailer> + 'a>;

pub struct TestIdp {
    pub base: String,
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The mail sender (the periodic clean-up jobs are not run: `tests/jobs.rs` runs
    /// them one at a time).
    jobs: Option<Jobs>,
    database: Option<TestDatabase>,
    /// Whether `stop` clears the Redis namespace (the first of instances sharing it).
    owns_namespace: bool,
    /// The local SPID test IdP, when started with `start_with_spid`.
    pub spid_test_idp: Option<String>,
    spid_task: Option<tokio::task::JoinHandle<()>>,
    spid_metadata_file: Option<std::path::PathBuf>,
}

/// The development keys and certificates (`certs-dev/` at the workspace root).
pub fn certs_dev() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs-dev")
}

impl TestIdp {
    pub async fn start(backend: Backend, clients: Vec<ClientSeed>) -> TestIdp {
        Self::start_with(backend, clients, |_| {}).await
    }

    /// Like `start`, with a last word on the configuration.
    pub async fn start_with(
        backend: Backend,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
    ) -> TestIdp {
        let database = match backend {
            Backend::Embedded => None,
            Backend::Production => Some(TestDatabase::create().await),
        };
        let stores = database.as_ref().map(|db| Stores {
            database_url: db.url.clone(),
            redis_url: redis_url(),
            prefix: format!("idp-test-{}:", unique_suffix()),
        });
        Self::launch(stores, database, true, clients, configure, None).await
    }

    /// Like `start_with`, with `delivery` between the mail sender and the development
    /// outbox (a delivery that fails at first, to see the queue retry).
    pub async fn start_with_delivery(
        backend: Backend,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
        delivery: impl FnOnce(Arc<dyn Mailer>) -> Arc<dyn Mailer>,
    ) -> TestIdp {
        let database = match backend {
            Backend::Embedded => None,
            Backend::Production => Some(TestDatabase::create().await),
        };
        let stores = database.as_ref().map(|db| Stores {
            database_url: db.url.clone(),
            redis_url: redis_url(),
            prefix: format!("idp-test-{}:", unique_suffix()),
        });
        Self::launch(
            stores,
            database,
            true,
            clients,
            configure,
            Some(Box::new(delivery)),
        )
        .await
    }

    /// An instance on given stores (private services of a failure test); its `stop`
    /// clears the Redis namespace but drops no database.
    pub async fn start_on(
        stores: Stores,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
    ) -> TestIdp {
        Self::launch(Some(stores), None, true, clients, configure, None).await
    }

    /// A second instance on a free port sharing `other`'s PostgreSQL database and
    /// Redis namespace (a production instance). Stop it before `other`.
    pub async fn start_sharing(
        other: &TestIdp,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
    ) -> TestIdp {
        let stores = other
            .stores()
            .expect("start_sharing needs an instance on PostgreSQL and Redis");
        Self::launch(Some(stores), None, false, clients, configure, None).await
    }

    /// The stores of a production instance.
    pub fn stores(&self) -> Option<Stores> {
        let cache = &self.state.config.cache;
        (cache.kind == CacheKind::Redis).then(|| Stores {
            database_url: self.state.config.database.url.clone(),
            redis_url: cache.redis_url.clone().unwrap_or_default(),
            prefix: cache.prefix.clone(),
        })
    }

    async fn launch(
        stores: Option<Stores>,
        database: Option<TestDatabase>,
        owns_namespace: bool,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
        delivery: Option<Delivery<'_>>,
    ) -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://127.0.0.1:{}", addr.port());
        let mut config =
            Config::demo(std::path::Path::new("unused"), addr.port()).expect("demo config");
        config.server.listen = addr;
        config.server.public_url = base.clone();
        match stores {
            None => config.database.url = "sqlite::memory:".into(),
            Some(stores) => {
                config.database.url = stores.database_url;
                config.cache.kind = CacheKind::Redis;
                config.cache.redis_url = Some(stores.redis_url);
                config.cache.prefix = stores.prefix;
            }
        }
        config.clients = clients;
        // Queued mail leaves at once after a request (a wake-up); the poll is for retries.
        config.mail.poll_interval_secs = 1;
        configure(&mut config);
        let state = match delivery {
            None => AppState::build(config).await,
            Some(delivery) => AppState::build_with_delivery(config, delivery).await,
        }
        .expect("build the app state");
        let mut sender = jobs::spawn_these(&state, Vec::new());
        sender.deliver_mail(&state);
        let server = idp_server::BoundServer::from_listener(state.clone(), listener);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = rx.await;
                })
                .await;
        });
        TestIdp {
            base,
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
            jobs: Some(sender),
            database,
            owns_namespace,
            spid_test_idp: None,
            spid_task: None,
            spid_metadata_file: None,
        }
    }

    /// Like `start_with`, with SPID on and the local SPID test IdP (in-process, on its
    /// own port) as the one identity provider.
    pub async fn start_with_spid(
        backend: Backend,
        clients: Vec<ClientSeed>,
        configure: impl FnOnce(&mut Config),
    ) -> TestIdp {
        let certs = certs_dev();
        let test_idp = idp_server::demo::SpidTestIdp::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "127.0.0.1",
            &certs,
        )
        .await
        .expect("bind the SPID test IdP");
        let metadata = std::env::temp_dir().join(format!("spid-test-idp-{}.xml", unique_suffix()));
        let test_idp_url = test_idp.base_url.clone();
        let mut idp = Self::start_with(backend, clients, |config| {
            test_idp
                .configure(config, &certs, &metadata)
                .expect("configure SPID");
            configure(config);
        })
        .await;
        idp.spid_task = Some(test_idp.serve(&idp.state).expect("serve the SPID test IdP"));
        idp.spid_test_idp = Some(test_idp_url);
        idp.spid_metadata_file = Some(metadata);
        idp
    }

    /// The audit events of one kind (newest first), optionally for one account.
    pub async fn audit(
        &self,
        kind: idp_core::audit::AuditKind,
        account_id: Option<&str>,
    ) -> Vec<idp_core::audit::AuditEvent> {
        self.state
            .store
            .audit_events(&idp_core::audit::AuditFilter {
                kind: Some(kind),
                account_id: account_id.map(str::to_string),
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("read the audit log")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates an active account with a chosen password.
    pub async fn account(&self, given: &str, family: &str, password: &str) -> Account {
        let account = self
            .state
            .directory
            .create_account(NewAccount {
                kind: AccountKind::Registered,
                fiscal_code: None,
                given_name: given.into(),
                family_name: family.into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 1),
                birth_place: Some("Roma".into()),
                sex: Some(Sex::Female),
                personal_email: Some(
                    Email::parse(&format!(
                        "{}.{}@example.org",
                        given.to_lowercase(),
                        family.to_lowercase()
                    ))
                    .expect("email"),
                ),
                institutional_email: None,
                username: None,
            })
            .await
            .expect("create account");
        self.state
            .directory
            .set_password(&account, Password::new(password.into()))
            .await
            .expect("set password");
        account
    }

    /// An account with a fiscal code (for claims tests).
    pub async fn account_with_fiscal_code(&self, fiscal_code: &str, password: &str) -> Account {
        let account = self
            .state
            .directory
            .create_account(NewAccount {
                kind: AccountKind::Registered,
                fiscal_code: Some(FiscalCode::parse(fiscal_code).expect("fiscal code")),
                given_name: "Mario".into(),
                family_name: "Rossi".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10),
                birth_place: Some("San Giuliano Terme".into()),
                sex: Some(Sex::Male),
                personal_email: Some(Email::parse("mario@example.org").expect("email")),
                institutional_email: None,
                username: Some(Username::parse("mario.rossi").expect("username")),
            })
            .await
            .expect("create account");
        self.state
            .directory
            .set_password(&account, Password::new(password.into()))
            .await
            .expect("set password");
        account
    }

    /// Grants a role (e.g. `school_operator`) to an account.
    pub async fn grant_role(&self, account: &Account, role: &str) {
        idp_core::role::check_role(role).expect("known role");
        self.state
            .store
            .grant_role(account.id.as_str(), role)
            .await
            .expect("grant role");
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.spid_task.take() {
            task.abort();
        }
        if let Some(file) = self.spid_metadata_file.take() {
            let _ = std::fs::remove_file(file);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(jobs) = self.jobs.take() {
            jobs.stop().await;
        }
        if let Some(cache) = self.state.redis_cache()
            && self.owns_namespace
        {
            let _ = cache.clear_namespace().await;
        }
        self.state.sql.close().await;
        if let Some(db) = self.database.take() {
            db.drop_now().await;
        }
    }
}

/// A browser: keeps cookies, does not follow redirects by itself.
pub struct Browser {
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Page {
    pub url: String,
    pub status: u16,
    pub body: String,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    /// GETs `url` and follows redirects while they stay on `stay_on` (the IdP); returns
    /// the first response outside it (a redirect to a client) or the final page.
    pub async fn follow(&self, url: &str, stay_on: &str) -> Page {
        let mut url = url.to_string();
        for _ in 0..10 {
            let r = self.http.get(&url).send().await.expect("GET");
            let status = r.status().as_u16();
            if let Some(loc) = r.headers().get("location") {
                let loc = loc.to_str().expect("location").to_string();
                let next = if loc.starts_with('/') {
                    format!("{stay_on}{loc}")
                } else {
                    loc
                };
                if !next.starts_with(stay_on) {
                    return Page {
                        url: next,
                        status,
                        body: String::new(),
                    };
                }
                url = next;
                continue;
            }
            let body = r.text().await.expect("body");
            return Page { url, status, body };
        }
        panic!("too many redirects from {url}");
    }

    /// Submits a form and follows redirects like `follow`.
    pub async fn submit(&self, action: &str, fields: &[(&str, &str)], stay_on: &str) -> Page {
        let r = self
            .http
            .post(action)
            .form(fields)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        if let Some(loc) = r.headers().get("location") {
            let loc = loc.to_str().expect("location").to_string();
            let next = if loc.starts_with('/') {
                format!("{stay_on}{loc}")
            } else {
                loc
            };
            if !next.starts_with(stay_on) {
                return Page {
                    url: next,
                    status,
                    body: String::new(),
                };
            }
            return self.follow(&next, stay_on).await;
        }
        let body = r.text().await.expect("body");
        Page {
            url: action.to_string(),
            status,
            body,
        }
    }

    /// GETs `url` and follows every redirect, across the IdP and the services.
    pub async fn visit(&self, url: &str) -> Page {
        let mut url = url::Url::parse(url).expect("url");
        for _ in 0..15 {
            let r = self.http.get(url.clone()).send().await.expect("GET");
            let status = r.status().as_u16();
            if let Some(loc) = r.headers().get("location") {
                url = url
                    .join(loc.to_str().expect("location"))
                    .expect("redirect URL");
                continue;
            }
            let body = r.text().await.expect("body");
            return Page {
                url: url.to_string(),
                status,
                body,
            };
        }
        panic!("too many redirects, last at {url}");
    }

    /// POSTs a form and follows every redirect like `visit`.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Page {
        let r = self.http.post(url).form(fields).send().await.expect("POST");
        match r.headers().get("location") {
            Some(loc) => {
                let next = url::Url::parse(url)
                    .expect("url")
                    .join(loc.to_str().expect("location"))
                    .expect("redirect URL");
                self.visit(next.as_str()).await
            }
            None => {
                let status = r.status().as_u16();
                Page {
                    url: url.into(),
                    status,
                    body: r.text().await.expect("body"),
                }
            }
        }
    }

    /// Fills the login page currently shown and submits it.
    pub async fn sign_in(
        &self,
        idp: &TestIdp,
        login_page: &Page,
        username: &str,
        password: &str,
    ) -> Page {
        let req = hidden(&login_page.body, "req").unwrap_or_default();
        let csrf = hidden(&login_page.body, "csrf").expect("login form has a csrf field");
        self.submit(
            &idp.url("/login"),
            &[
                ("req", req.as_str()),
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
            ],
            &idp.base,
        )
        .await
    }
}

/// The value of a hidden input in a page.
pub fn hidden(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(
        body[start..end]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .replace("&#x3d;", "="),
    )
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
