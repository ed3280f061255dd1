//! `/usr/bin/skopeo` with an isolated environment.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use tempfile::TempDir;

use super::{describe, require_peer, run_with_timeout};

const SKOPEO_BIN: &str = "/usr/bin/skopeo";
const TIMEOUT: Duration = Duration::from_secs(60);

/// skopeo with its own `HOME`, `REGISTRY_AUTH_FILE`, `XDG_*` dirs, an accept-anything
/// signature policy and an empty registries.conf, so nothing from the machine leaks in.
/// State (e.g. `skopeo login`) persists across [`Skopeo::run`] calls on the same value.
pub struct Skopeo {
    home: TempDir,
}

impl Default for Skopeo {
    fn default() -> Self {
        Self::new()
    }
}

impl Skopeo {
    pub fn new() -> Skopeo {
        require_peer(SKOPEO_BIN);
        let home = tempfile::Builder::new()
            .prefix("chartcache-skopeo-")
            .tempdir()
            .expect("skopeo home");
        fs::write(
            home.path().join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy.json");
        fs::write(home.path().join("registries.conf"), "").expect("write registries.conf");
        fs::create_dir_all(home.path().join("run")).expect("mkdir run");
        Skopeo { home }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The auth file `skopeo login` writes and every command reads (`REGISTRY_AUTH_FILE`).
    pub fn auth_file(&self) -> PathBuf {
        self.home.path().join("auth.json")
    }

    /// Runs `skopeo ARGS…` (60 s timeout) and returns its output, success or not.
    pub fn run(&self, args: &[&str]) -> Output {
        let home = self.home.path();
        let mut cmd = Command::new(SKOPEO_BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TMPDIR", std::env::temp_dir())
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("CONTAINERS_REGISTRIES_CONF", home.join("registries.conf"))
            .arg("--policy")
            .arg(home.join("policy.json"))
            .args(args);
        run_with_timeout(&mut cmd, TIMEOUT)
    }

    /// Like [`Skopeo::run`], panicking with the output when skopeo fails; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "skopeo {} failed: {}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `skopeo ARGS…` in a fresh isolated environment; see [`Skopeo`].
pub fn skopeo(args: &[&str]) -> Output {
    Skopeo::new().run(args)
}

/// [`skopeo`] that must succeed; returns stdout.
pub fn skopeo_ok(args: &[&str]) -> String {
    Skopeo::new().run_ok(args)
}
