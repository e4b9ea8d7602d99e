//! The stateful half of `bench/run` (the stateless endpoints are measured with wrk):
//!
//! - `seed`: creates N accounts through idp-core's `Directory` in the IdP's database, all
//!   with the same password (hashed once, with our argon2id parameters);
//! - `argon2`: the pure argon2id verify rate of our `PasswordHasher` on the current core;
//! - `token`: one full password login, printing the tokens (for the wrk runs);
//! - `login`: full password logins (authorize → login form → POST → resume → code →
//!   token) over many distinct accounts, C concurrent tasks for a fixed time;
//! - `refresh`: refresh-token rotation, each task following its own token chain.
//!
//! The login flow is generic (redirects, cookies and the first HTML form are followed
//! as a browser would), so the same code drives our IdP and the reference provider.
//! Results are one JSON line on stdout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Parser, Subcommand};
use idp_core::account::{AccountKind, Username};
use idp_core::directory::{Directory, NewAccount};
use idp_core::password::{HashParams, Password, PasswordHasher, PasswordPolicy, Verification};
use idp_core::store::Store;
use idp_core::store::sql::SqlStore;
use rand::RngCore;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

#[derive(Parser)]
#[command(about = "Load driver of bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create accounts PREFIX0..PREFIX(N-1) with one password in the IdP's database.
    Seed {
        #[arg(long)]
        database_url: String,
        #[command(flatten)]
        accounts: Accounts,
    },
    /// Pure argon2id verify rate with our parameters, on this thread.
    Argon2 {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// One password login; prints the token response.
    Token {
        #[command(flatten)]
        flow: Flow,
    },
    /// Full password logins for a fixed time.
    Login {
        #[command(flatten)]
        flow: Flow,
        #[command(flatten)]
        load: Load,
        /// The first login signs in account PREFIX<N>, the next N+1, and so on (wrapping
        /// at COUNT): bench/run's later slices go on where the earlier ones stopped.
        #[arg(long, default_value_t = 0)]
        first_account: usize,
    },
    /// Refresh-token rotation for a fixed time (one chain per task).
    Refresh {
        #[command(flatten)]
        flow: Flow,
        #[command(flatten)]
        load: Load,
    },
}

#[derive(Args, Clone)]
struct Accounts {
    /// Usernames are PREFIX followed by 0..COUNT.
    #[arg(long, default_value = "bench.user")]
    prefix: String,
    #[arg(long, default_value_t = 1000)]
    count: usize,
    #[arg(long, default_value = "Bench-Passw0rd!")]
    password: String,
}

#[derive(Args, Clone)]
struct Flow {
    /// The issuer (discovery is read from ISSUER/.well-known/openid-configuration).
    #[arg(long)]
    issuer: String,
    #[arg(long, default_value = "bench")]
    client_id: String,
    #[arg(long, default_value = "bench-secret")]
    client_secret: String,
    #[arg(long, default_value = "http://127.0.0.1:9/cb")]
    redirect_uri: String,
    #[arg(long, default_value = "openid profile email")]
    scope: String,
    #[command(flatten)]
    accounts: Accounts,
}

#[derive(Args, Clone)]
struct Load {
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The server's pid: its peak RSS is reset after the setup, and its CPU share and
    /// peak RSS over the measured window are reported.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Seed {
            database_url,
            accounts,
        } => seed(&database_url, &accounts).await,
        Command::Argon2 { seconds } => argon2_rate(seconds),
        Command::Token { flow } => {
            let driver = Driver::new(flow).await?;
            let tokens = driver.login(0).await?;
            println!("{tokens}");
            Ok(())
        }
        Command::Login {
            flow,
            load,
            first_account,
        } => {
            let driver = Arc::new(Driver::new(flow).await?);
            let next = Arc::new(AtomicUsize::new(first_account));
            let report = run_load(&load, |_| {
                let driver = driver.clone();
                let next = next.clone();
                async move {
                    anyhow::Ok(move || {
                        let driver = driver.clone();
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        async move { driver.login(n).await.map(|_| ()) }
                    })
                }
            })
            .await?;
            let mut report = report;
            let started = next.load(Ordering::Relaxed) - first_account;
            report["distinct_accounts"] = json!(started.min(driver.flow.accounts.count));
            report["logins_started"] = json!(started);
            let completed = driver.logins_completed.load(Ordering::Relaxed).max(1);
            report["requests_per_login"] =
                json!(driver.login_requests.load(Ordering::Relaxed) as f64 / completed as f64);
            println!("{report}");
            Ok(())
        }
        Command::Refresh { flow, load } => {
            let driver = Arc::new(Driver::new(flow).await?);
            let count = driver.flow.accounts.count;
            let gate = Arc::new(tokio::sync::Semaphore::new(2));
            let report = run_load(&load, |task| {
                let driver = driver.clone();
                let setup_gate = gate.clone();
                async move {
                    // Each task signs in once (untimed) and then follows its own chain.
                    let account = count - 1 - (task % count);
                    // Two setup logins at a time, so that the argon2 memory of 64 parallel
                    // logins does not weigh on the server's RSS during the measurement.
                    let first = {
                        let _permit = setup_gate.acquire().await?;
                        driver.login(account).await?
                    };
                    let chain = Arc::new(tokio::sync::Mutex::new(refresh_token_of(&first)?));
                    anyhow::Ok(move || {
                        let driver = driver.clone();
                        let chain = chain.clone();
                        async move {
                            let mut current = chain.lock().await;
                            match driver.refresh(&current).await {
                                Ok(next) => {
                                    *current = next;
                                    Ok(())
                                }
                                Err(e) => {
                                    // Start a new chain so the task keeps measuring.
                                    if let Ok(t) = driver.login(account).await
                                        && let Ok(r) = refresh_token_of(&t)
                                    {
                                        *current = r;
                                    }
                                    Err(e)
                                }
                            }
                        }
                    })
                }
            })
            .await?;
            println!("{report}");
            Ok(())
        }
    }
}

async fn seed(database_url: &str, accounts: &Accounts) -> Result<()> {
    let started = Instant::now();
    let store = Arc::new(SqlStore::connect(database_url, 8).await?);
    store.migrate().await?;
    let hasher = Arc::new(PasswordHasher::new(HashParams::default())?);
    let policy = PasswordPolicy::default();
    let history = policy.history;
    let store_dyn: Arc<dyn Store> = store.clone();
    let directory = Directory::new(store_dyn.clone(), hasher.clone(), policy);
    let hash = hasher.hash(&Password::new(accounts.password.clone()))?;
    let next = Arc::new(AtomicUsize::new(0));
    // SQLite takes one writer at a time (a second one gets "database is locked").
    let writers = if database_url.starts_with("sqlite:") {
        1
    } else {
        8
    };
    let mut workers = Vec::new();
    for _ in 0..writers {
        let directory = directory.clone();
        let store = store_dyn.clone();
        let hash = hash.clone();
        let next = next.clone();
        let accounts = accounts.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= accounts.count {
                    return anyhow::Ok(());
                }
                let username = Username::parse(&format!("{}{i}", accounts.prefix))
                    .map_err(|e| anyhow!("username: {e:?}"))?;
                let account = directory
                    .create_account(NewAccount {
                        kind: AccountKind::Registered,
                        fiscal_code: None,
                        given_name: "Bench".into(),
                        family_name: "User".into(),
                        birth_date: None,
                        birth_place: None,
                        sex: None,
                        personal_email: None,
                        institutional_email: None,
                        username: Some(username),
                    })
                    .await?;
                store
                    .replace_password(&account.id, &hash, false, None, history)
                    .await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    store.close().await;
    println!(
        "{}",
        json!({"seeded": accounts.count, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

fn argon2_rate(seconds: f64) -> Result<()> {
    let params = HashParams::default();
    let hasher = PasswordHasher::new(params)?;
    let password = Password::new("Bench-Passw0rd!".into());
    let hash = hasher.hash(&password)?;
    let _ = hasher.verify(&password, &hash)?; // warm up
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        match hasher.verify(&password, &hash)? {
            Verification::Valid { .. } => n += 1,
            Verification::Invalid => bail!("argon2 verify refused the right password"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "verifies": n,
            "seconds": elapsed,
            "per_sec": n as f64 / elapsed,
            "ms_each": elapsed * 1000.0 / n as f64,
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "parallelism": params.parallelism,
        })
    );
    Ok(())
}

/// Runs `concurrency` tasks; each first builds its operation (untimed setup), then all
/// start together, run `warmup` seconds unrecorded and `seconds` recorded: the
/// operations that complete in those seconds, and their latencies.
async fn run_load<S, SF, O, OF>(load: &Load, setup: S) -> Result<Value>
where
    S: Fn(usize) -> SF,
    SF: Future<Output = Result<O>> + 'static,
    O: FnMut() -> OF + 'static,
    OF: Future<Output = Result<()>> + 'static,
{
    let local = tokio::task::LocalSet::new();
    let result = local
        .run_until(async {
            let mut ops = Vec::new();
            let mut setups = Vec::new();
            for task in 0..load.concurrency {
                setups.push(tokio::task::spawn_local(setup(task)));
            }
            for s in setups {
                ops.push(s.await?.context("setup")?);
            }
            if let Some(pid) = load.server_pid {
                let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
            }
            let start = Instant::now();
            let measure_from = start + Duration::from_secs_f64(load.warmup);
            let end = measure_from + Duration::from_secs_f64(load.seconds);
            let mut handles = Vec::new();
            for mut op in ops {
                handles.push(tokio::task::spawn_local(async move {
                    let mut latencies: Vec<u32> = Vec::new();
                    let mut errors = 0u64;
                    let mut first_error: Option<String> = None;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        let outcome = op().await;
                        let t1 = Instant::now();
                        // Counted when it completes inside the window, wherever it
                        // started: throughput is completions per second. Counting only
                        // operations that also started inside would drop the work of
                        // the ~`concurrency` operations in flight when the window opens,
                        // about 15% of a 10 s window for logins at 1.5 s each.
                        if t1 < measure_from || t1 > end {
                            continue;
                        }
                        match outcome {
                            Ok(()) => latencies.push((t1 - t0).as_micros() as u32),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert_with(|| format!("{e:#}"));
                            }
                        }
                    }
                    (latencies, errors, first_error)
                }));
            }
            let window_cpu = load.server_pid.map(|pid| {
                let pid_ticks = move || cpu_ticks(pid);
                tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(measure_from.into()).await;
                    let (c0, t0) = (pid_ticks(), Instant::now());
                    tokio::time::sleep_until(end.into()).await;
                    let (c1, t1) = (pid_ticks(), Instant::now());
                    // Ticks are 1/100 s (CLK_TCK on Linux).
                    (c1.saturating_sub(c0)) as f64 / 100.0 / (t1 - t0).as_secs_f64() * 100.0
                })
            });
            let mut all = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            for h in handles {
                let (l, e, f) = h.await?;
                all.extend(l);
                errors += e;
                if first_error.is_none() {
                    first_error = f;
                }
            }
            let cpu = match window_cpu {
                Some(h) => Some(h.await?),
                None => None,
            };
            anyhow::Ok((all, errors, first_error, cpu))
        })
        .await?;
    let (mut all, errors, first_error, cpu) = result;
    let peak_kb = load.server_pid.and_then(|pid| status_kb(pid, "VmHWM:"));
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (all.len() as f64 - 1.0)).round() as usize;
        all[i] as f64 / 1000.0
    };
    Ok(json!({
        "ok": all.len(),
        "errors": errors,
        "first_error": first_error,
        "seconds": load.seconds,
        "rps": all.len() as f64 / load.seconds,
        "p50_ms": pct(50.0),
        "p99_ms": pct(99.0),
        "concurrency": load.concurrency,
        "server_cpu_pct": cpu,
        "server_peak_rss_kb": peak_kb,
    }))
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn refresh_token_of(tokens: &Value) -> Result<String> {
    tokens["refresh_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no refresh_token in {tokens}"))
}

struct Driver {
    flow: Flow,
    http: reqwest::Client,
    authorization_endpoint: Url,
    token_endpoint: Url,
    /// HTTP requests sent by the logins that completed (each login's hops and its code
    /// exchange), and how many completed: requests per login, per server.
    login_requests: AtomicUsize,
    logins_completed: AtomicUsize,
}

/// A minimal cookie jar for one login: every cookie goes back to the same host.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn absorb(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            let Some((name, val)) = pair.split_once('=') else {
                continue;
            };
            let (name, val) = (name.trim().to_string(), val.trim().to_string());
            let lower = text.to_ascii_lowercase();
            let expired = val.is_empty()
                || lower.contains("max-age=0")
                || lower.contains("expires=thu, 01 jan 1970");
            self.0.retain(|(n, _)| *n != name);
            if !expired {
                self.0.push((name, val));
            }
        }
    }

    fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The first form of an HTML page: its action and its inputs (name, value).
fn parse_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let rest = &html[start..];
    let end = rest.find("</form>").unwrap_or(rest.len());
    let form = &rest[..end];
    let tag_end = form.find('>')?;
    let action = attribute(&form[..tag_end], "action").unwrap_or_default();
    let mut inputs = Vec::new();
    let mut at = 0;
    while let Some(i) = form[at..].find("<input") {
        let tag_start = at + i;
        let close = form[tag_start..].find('>')? + tag_start;
        let tag = &form[tag_start..close];
        if let Some(name) = attribute(tag, "name") {
            inputs.push((name, attribute(tag, "value").unwrap_or_default()));
        }
        at = close;
    }
    Some((action, inputs))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let j = tag[i..].find('"')? + i;
    Some(unescape(&tag[i..j]))
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Driver {
    async fn new(flow: Flow) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()?;
        let discovery: Value = http
            .get(format!(
                "{}/.well-known/openid-configuration",
                flow.issuer.trim_end_matches('/')
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let endpoint = |name: &str| -> Result<Url> {
            Ok(Url::parse(
                discovery[name]
                    .as_str()
                    .ok_or_else(|| anyhow!("discovery has no {name}"))?,
            )?)
        };
        Ok(Self {
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            flow,
            http,
            login_requests: AtomicUsize::new(0),
            logins_completed: AtomicUsize::new(0),
        })
    }

    /// One full password login for account `n` (modulo the account count): returns the
    /// token response of the code exchange.
    async fn login(&self, n: usize) -> Result<Value> {
        let accounts = &self.flow.accounts;
        let username = format!("{}{}", accounts.prefix, n % accounts.count);
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token();
        let mut url = self.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.flow.client_id)
            .append_pair("redirect_uri", &self.flow.redirect_uri)
            .append_pair("scope", &self.flow.scope)
            .append_pair("state", &state)
            .append_pair("nonce", &random_token())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let mut jar = Jar::default();
        let mut form_body: Option<String> = None;
        let mut posted = false;
        let mut code = None;
        let mut requests = 1; // the code exchange
        for _hop in 0..12 {
            requests += 1;
            let mut request = match form_body.take() {
                Some(body) => self
                    .http
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
                None => self.http.get(url.clone()),
            };
            if let Some(cookies) = jar.header() {
                request = request.header(COOKIE, cookies);
            }
            let response = request.send().await?;
            jar.absorb(&response);
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .ok_or_else(|| anyhow!("redirect without Location"))?
                    .to_str()?
                    .to_string();
                if location.starts_with(&self.flow.redirect_uri) {
                    let back = Url::parse(&location)?;
                    let pairs: Vec<(String, String)> = back.query_pairs().into_owned().collect();
                    if let Some((_, e)) = pairs.iter().find(|(k, _)| k == "error") {
                        bail!("authorization error {e}: {location}");
                    }
                    if !pairs.iter().any(|(k, v)| k == "state" && *v == state) {
                        bail!("state mismatch: {location}");
                    }
                    code = pairs.into_iter().find(|(k, _)| k == "code").map(|(_, v)| v);
                    break;
                }
                url = url.join(&location)?;
                continue;
            }
            let html = response.text().await?;
            if status != StatusCode::OK {
                bail!(
                    "{status} at {url}: {}",
                    html.chars().take(200).collect::<String>()
                );
            }
            if posted {
                bail!("login refused for {username} at {url}");
            }
            let (action, inputs) = parse_form(&html).ok_or_else(|| anyhow!("no form at {url}"))?;
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            let mut has_user = false;
            for (name, value) in inputs {
                match name.as_str() {
                    "username" | "login" => {
                        has_user = true;
                        form.append_pair(&name, &username);
                    }
                    "password" => {
                        form.append_pair(&name, &accounts.password);
                    }
                    _ => {
                        form.append_pair(&name, &value);
                    }
                }
            }
            if !has_user {
                bail!("the form at {url} has no username field");
            }
            form_body = Some(form.finish());
            url = url.join(if action.is_empty() {
                url.as_str()
            } else {
                &action
            })?;
            posted = true;
        }
        let code = code.ok_or_else(|| anyhow!("no code after the login of {username}"))?;
        let response = self
            .http
            .post(self.token_endpoint.clone())
            .basic_auth(&self.flow.client_id, Some(&self.flow.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", self.flow.redirect_uri.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("code exchange: {status} {body}");
        }
        self.login_requests.fetch_add(requests, Ordering::Relaxed);
        self.logins_completed.fetch_add(1, Ordering::Relaxed);
        Ok(body)
    }

    /// One rotation: returns the new refresh token.
    async fn refresh(&self, refresh_token: &str) -> Result<String> {
        let response = self
            .http
            .post(self.token_endpoint.clone())
            .basic_auth(&self.flow.client_id, Some(&self.flow.client_secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("refresh: {status} {body}");
        }
        refresh_token_of(&body)
    }
}
