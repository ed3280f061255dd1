//! A real Helm v4 runtime: PyPI `helm-sdkpy` (Helm as a Go shared library) in the venv that
//! `.ci/install-peers` creates, driven by small Python snippets.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::registry::Registry;
use super::{INSTALL_HINT, describe, run_with_timeout};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs before every snippet. Snippets use `config()`, `run(coro)`, `out(value)`, `ARGS`, `h`.
const PRELUDE: &str = r#"
import asyncio, json, os, sys
import helm_sdkpy as h

_OPTS = json.loads(os.environ["CHARTCACHE_HELM_OPTS"])
ARGS = sys.argv[1:]
# Configuration() insists on a kubeconfig; registry actions never use it.
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"

def config():
    return h.Configuration(
        kubeconfig=KUBECONFIG,
        plain_http=_OPTS["plain_http"],
        registry_auth=_OPTS["registry_auth"] or None,
    )

def run(coro):
    return asyncio.run(coro)

def out(value):
    with open(os.environ["CHARTCACHE_HELM_OUT"], "w") as f:
        json.dump(value, f)
"#;

/// A Helm v4 client with its own `HOME` and `HELM_*` dirs (cache, config, data, registry
/// config). `Pull` is not offered (it crashes in helm-sdkpy); `show_chart` pulls instead.
pub struct Helm {
    python: PathBuf,
    home: TempDir,
    plain_http: bool,
    ca_file: Option<PathBuf>,
    registry_auth: serde_json::Map<String, serde_json::Value>,
}

impl Helm {
    /// `$CHARTCACHE_PEERS/venv`, default `$HOME/.cache/chartcache-peers/venv`.
    pub fn venv_dir() -> PathBuf {
        let root = std::env::var_os("CHARTCACHE_PEERS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".cache").join("chartcache-peers")
            });
        root.join("venv")
    }

    /// A client using plain HTTP for registries; `None` when the venv (with helm-sdkpy) is
    /// missing.
    pub fn new() -> Option<Helm> {
        let venv = Self::venv_dir();
        let python = venv.join("bin").join("python");
        let installed = fs::read_dir(venv.join("lib"))
            .ok()?
            .filter_map(Result::ok)
            .any(|e| e.path().join("site-packages").join("helm_sdkpy").is_dir());
        if !python.exists() || !installed {
            return None;
        }
        let home = tempfile::Builder::new()
            .prefix("chartcache-helm-")
            .tempdir()
            .expect("helm home");
        for sub in ["cache", "config", "data"] {
            fs::create_dir_all(home.path().join(sub)).expect("mkdir helm dirs");
        }
        Some(Helm {
            python,
            home,
            plain_http: true,
            ca_file: None,
            registry_auth: serde_json::Map::new(),
        })
    }

    /// [`Helm::new`] or a panic telling how to install the peer.
    pub fn require() -> Helm {
        Self::new().unwrap_or_else(|| {
            panic!(
                "Helm v4 peer (helm-sdkpy venv) not found at {}: {INSTALL_HINT}",
                Self::venv_dir().display()
            )
        })
    }

    /// A client set up for `registry`: plain HTTP or its CA (TLS).
    pub fn for_registry(registry: &Registry) -> Option<Helm> {
        let helm = Self::new()?;
        Some(if registry.is_tls() {
            helm.with_ca_file(&registry.ca_pem_path())
        } else {
            helm
        })
    }

    /// HTTPS trusting `ca_pem` (through `SSL_CERT_FILE`: helm-sdkpy ignores `ca_file`).
    pub fn with_ca_file(mut self, ca_pem: &Path) -> Self {
        self.ca_file = Some(ca_pem.to_path_buf());
        self.plain_http = false;
        self
    }

    /// Whether `show_chart` and `login` use plain HTTP (default true).
    pub fn with_plain_http(mut self, plain_http: bool) -> Self {
        self.plain_http = plain_http;
        self
    }

    /// In-memory credentials for `host` (`Configuration(registry_auth=…)`), not written to
    /// the registry config file.
    pub fn with_registry_auth(mut self, host: &str, user: &str, pass: &str) -> Self {
        self.registry_auth.insert(
            host.to_string(),
            json!({"username": user, "password": pass}),
        );
        self
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }
    pub fn cache_home(&self) -> PathBuf {
        self.home.path().join("cache")
    }
    pub fn config_home(&self) -> PathBuf {
        self.home.path().join("config")
    }
    pub fn data_home(&self) -> PathBuf {
        self.home.path().join("data")
    }
    /// Helm's registry credentials file (`HELM_REGISTRY_CONFIG`), written by [`Helm::login`].
    pub fn registry_config(&self) -> PathBuf {
        self.config_home().join("registry").join("config.json")
    }

    /// The isolated environment Helm runs with: `HOME`, `HELM_CACHE_HOME`,
    /// `HELM_CONFIG_HOME`, `HELM_DATA_HOME`, `HELM_REGISTRY_CONFIG` (and `SSL_CERT_FILE` with
    /// a CA). Handy to run chartcache against the same Helm home.
    pub fn envs(&self) -> Vec<(&'static str, OsString)> {
        let mut envs = vec![
            ("HOME", self.home.path().into()),
            ("HELM_CACHE_HOME", self.cache_home().into()),
            ("HELM_CONFIG_HOME", self.config_home().into()),
            ("HELM_DATA_HOME", self.data_home().into()),
            ("HELM_REGISTRY_CONFIG", self.registry_config().into()),
            (
                "HELM_REPOSITORY_CONFIG",
                self.config_home().join("repositories.yaml").into(),
            ),
            (
                "HELM_REPOSITORY_CACHE",
                self.cache_home().join("repository").into(),
            ),
        ];
        if let Some(ca) = &self.ca_file {
            envs.push(("SSL_CERT_FILE", ca.into()));
        }
        envs
    }

    /// `helm push TGZ REMOTE` (REMOTE like `oci://HOST/REPO`); returns the manifest digest.
    pub fn push(&self, tgz: &Path, remote: &str, plain_http: bool) -> Result<String, String> {
        let tgz = tgz.to_string_lossy();
        let flag = if plain_http { "1" } else { "0" };
        let (_, stdout) = self.run_python(
            "run(h.Push(config()).run(ARGS[0], ARGS[1], plain_http=ARGS[2] == '1'))\nout(None)",
            &[&tgz, remote, flag],
        )?;
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Digest: "))
            .map(|d| d.trim().to_string())
            .next_back()
            .ok_or_else(|| format!("helm push printed no digest:\n{stdout}"))
    }

    /// `helm show chart REF` (REF like `oci://HOST/REPO/NAME:TAG`): pulls through Helm's own
    /// OCI client (caching under `$HELM_CACHE_HOME/content/`) and returns `Chart.yaml`.
    pub fn show_chart(&self, reference: &str) -> Result<String, String> {
        let (value, _) =
            self.run_python("out(run(h.Show(config()).chart(ARGS[0])))", &[reference])?;
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("Show.chart returned {value}"))
    }

    /// `helm repo add repo URL [--username U --password P]`, then `helm show chart repo/CHART`:
    /// Helm reads the classic `index.yaml` at URL and downloads the chart archive it lists.
    pub fn show_chart_from_repo(
        &self,
        url: &str,
        chart: &str,
        auth: Option<(&str, &str)>,
    ) -> Result<String, String> {
        let (user, pass) = auth.unwrap_or(("", ""));
        let (value, _) = self.run_python(
            r#"
p = os.environ["HELM_REPOSITORY_CONFIG"]
os.makedirs(os.path.dirname(p), exist_ok=True)
if not os.path.exists(p):
    with open(p, "w") as f:
        f.write('apiVersion: ""\nrepositories: []\n')
run(h.RepoAdd(config()).run("repo", ARGS[0], username=ARGS[2] or None, password=ARGS[3] or None))
out(run(h.Show(config()).chart("repo/" + ARGS[1])))
"#,
            &[url, chart, user, pass],
        )?;
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("Show.chart returned {value}"))
    }

    /// `helm show values REF`.
    pub fn show_values(&self, reference: &str) -> Result<String, String> {
        let (value, _) =
            self.run_python("out(run(h.Show(config()).values(ARGS[0])))", &[reference])?;
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("Show.values returned {value}"))
    }

    /// `helm registry login HOST -u USER -p PASS`: writes [`Helm::registry_config`].
    pub fn login(&self, host: &str, user: &str, pass: &str) -> Result<(), String> {
        let flag = if self.plain_http { "1" } else { "0" };
        self.run_python(
            "run(h.RegistryLogin(config()).run(hostname=ARGS[0], username=ARGS[1], password=ARGS[2], plain_http=ARGS[3] == '1'))\nout(None)",
            &[host, user, pass, flag],
        )
        .map(|_| ())
    }

    /// Runs `snippet` after the prelude (`h` = helm_sdkpy, `config()`, `run(coro)`,
    /// `out(value)`, `ARGS`). Returns what `out()` got (JSON null if not called) and stdout
    /// (Helm prints `Pushed:` / `Digest:` lines there). `Err` holds stdout+stderr.
    pub fn run_python(
        &self,
        snippet: &str,
        args: &[&str],
    ) -> Result<(serde_json::Value, String), String> {
        let out_file = tempfile::NamedTempFile::new_in(self.home.path()).expect("out file");
        let opts = json!({"plain_http": self.plain_http, "registry_auth": self.registry_auth});
        let mut cmd = Command::new(&self.python);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .env("LANG", "C.UTF-8")
            .envs(self.envs())
            .env("CHARTCACHE_HELM_OPTS", opts.to_string())
            .env("CHARTCACHE_HELM_OUT", out_file.path())
            .arg("-c")
            .arg(format!("{PRELUDE}\n{snippet}\n"))
            .args(args);
        let output = run_with_timeout(&mut cmd, TIMEOUT);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(format!("helm-sdkpy snippet failed: {}", describe(&output)));
        }
        let text = fs::read_to_string(out_file.path()).unwrap_or_default();
        let value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| format!("bad snippet output {text:?}: {e}"))?
        };
        Ok((value, stdout))
    }
}
