//! The real `idp-server` binary as a child process (`serve --config FILE`), for the
//! tests that kill it. Cargo gives integration tests the path of their own crate's
//! binaries only, so the path is built from the test's own location
//! (`<target>/<profile>/deps/<test>` → `<target>/<profile>/idp-server`) after a
//! `cargo build --workspace --bins` (a no-op when it is up to date).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The built `idp-server` binary of this profile.
pub fn idp_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("<target>/<profile>/deps/<test>")
                .to_path_buf();
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev".to_string(),
                Some(other) => other.to_string(),
            };
            let target_dir = profile_dir.parent().expect("<target>").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the workspace");
            let status = std::process::Command::new(cargo)
                // Every binary of the workspace, as .ci/spid-sp-test and
                // tests/browser/run.sh build them: one set of packages is one feature
                // resolution, compiled once.
                .args(["build", "--quiet", "--workspace", "--bins"])
                .args(["--profile", &profile])
                .arg("--target-dir")
                .arg(&target_dir)
                .current_dir(workspace)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --workspace --bins failed");
            let binary = profile_dir.join("idp-server");
            assert!(binary.is_file(), "{} was not built", binary.display());
            binary
        })
        .clone()
}

/// A running `idp-server serve`.
pub struct IdpProcess {
    pub base: String,
    child: Child,
}

impl IdpProcess {
    /// Starts `idp-server serve --config config` with its output in `log`, and waits
    /// until `/readyz` answers 200 at `base`.
    pub async fn start(config: &Path, log: &Path, base: &str) -> IdpProcess {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server log");
        let err = out.try_clone().expect("log handle");
        let child = Command::new(idp_server_binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("start idp-server");
        let mut process = IdpProcess {
            base: base.to_string(),
            child,
        };
        let start = Instant::now();
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status() == 200
            {
                return process;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "idp-server exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "idp-server not ready: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, in-flight requests cut.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL idp-server");
        let _ = self.child.wait().await;
    }

    /// SIGTERM and wait (graceful shutdown).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}
