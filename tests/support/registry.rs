//! A CNCF distribution 2.8 registry (`/usr/bin/docker-registry serve`) on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::http::{HttpResponse, basic_auth, http_get, http_request};
use super::pki::TestPki;
use super::token::TokenIssuer;
use super::{free_port, require_peer, run_ok};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// `auth.token.service` of token registries (the JWT `aud`).
const TOKEN_SERVICE: &str = "chartcache-test-registry";
/// `auth.token.issuer` of token registries (the JWT `iss`).
const TOKEN_ISSUER: &str = "chartcache-test-issuer";

#[derive(Debug, Clone)]
enum Auth {
    None,
    Htpasswd {
        user: String,
        pass: String,
    },
    Token {
        user: String,
        pass: String,
        anonymous_pull: bool,
    },
}

/// Options for [`Registry`]; the `Registry::plain/htpasswd/tls/token` shortcuts cover the
/// usual cases. Auth and TLS combine freely.
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    auth: Auth,
    tls: bool,
    client_auth: bool,
    log_level: String,
    without_port: bool,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        RegistryBuilder {
            auth: Auth::None,
            tls: false,
            client_auth: false,
            log_level: "warn".into(),
            without_port: false,
        }
    }
}

impl RegistryBuilder {
    /// Basic auth from a bcrypt htpasswd file.
    pub fn htpasswd(mut self, user: &str, pass: &str) -> Self {
        self.auth = Auth::Htpasswd {
            user: user.into(),
            pass: pass.into(),
        };
        self
    }
    /// Token auth with a [`TokenIssuer`] accepting `user`/`pass`.
    pub fn token(mut self, user: &str, pass: &str) -> Self {
        self.auth = Auth::Token {
            user: user.into(),
            pass: pass.into(),
            anonymous_pull: false,
        };
        self
    }
    /// With token auth: the issuer also hands pull-only tokens to anonymous clients
    /// (like public repositories on ghcr.io / Docker Hub).
    pub fn anonymous_pull(mut self, yes: bool) -> Self {
        if let Auth::Token { anonymous_pull, .. } = &mut self.auth {
            *anonymous_pull = yes;
        } else {
            panic!("anonymous_pull needs token auth: call .token(user, pass) first");
        }
        self
    }
    /// HTTPS with a server certificate from a fresh test CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    /// HTTPS that also requires a client certificate signed by the test CA (mTLS).
    pub fn mtls(mut self) -> Self {
        self.tls = true;
        self.client_auth = true;
        self
    }
    /// Listen on port 80 of a random 127.x.y.z address, so that [`Registry::host`] is a bare
    /// IP address: `skopeo sync --scoped` cannot name a destination after a `host:port`
    /// source. Plain HTTP only; needs root (or CAP_NET_BIND_SERVICE), as in CI.
    pub fn without_port(mut self) -> Self {
        self.without_port = true;
        self
    }
    /// distribution's `log.level` (`error`, `warn` (default), `info`, `debug`); see
    /// [`Registry::log`]. Token verification failures are only logged at `info`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// Starts the registry and waits (up to 20 s) until `GET /v2/` answers.
    pub fn start(self) -> Registry {
        require_peer(REGISTRY_BIN);
        assert!(
            !(self.without_port && self.tls),
            "without_port registries are plain HTTP (the test certificate names 127.0.0.1)"
        );
        let dir = tempfile::Builder::new()
            .prefix("chartcache-registry-")
            .tempdir()
            .expect("registry tempdir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("mkdir storage");

        let pki = self.tls.then(|| TestPki::generate(&dir.path().join("pki")));
        let mut auth_yaml = String::new();
        let mut creds = None;
        let mut token = None;
        match &self.auth {
            Auth::None => {}
            Auth::Htpasswd { user, pass } => {
                let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, pass]));
                let file = dir.path().join("htpasswd");
                fs::write(&file, line).expect("write htpasswd");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: chartcache-test\n    path: {}\n",
                    yaml_str(&file)
                );
                creds = Some((user.clone(), pass.clone()));
            }
            Auth::Token {
                user,
                pass,
                anonymous_pull,
            } => {
                let issuer = TokenIssuer::start(
                    &dir.path().join("token"),
                    TOKEN_SERVICE,
                    TOKEN_ISSUER,
                    user,
                    pass,
                    *anonymous_pull,
                );
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    yaml_str(issuer.realm()),
                    yaml_str(issuer.service()),
                    yaml_str(issuer.issuer()),
                    yaml_str(issuer.cert_path()),
                );
                creds = Some((user.clone(), pass.clone()));
                token = Some(issuer);
            }
        }
        let tls_yaml = match &pki {
            None => String::new(),
            Some(pki) => {
                let mut s = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    yaml_str(pki.server_cert_path()),
                    yaml_str(pki.server_key_path())
                );
                if self.client_auth {
                    s.push_str(&format!(
                        "    clientcas:\n      - {}\n",
                        yaml_str(pki.ca_pem_path())
                    ));
                }
                s
            }
        };

        let config_path = dir.path().join("config.yml");
        let stderr_path = dir.path().join("registry.log");
        let mut last_failure = String::new();
        // A port from free_port() can be taken by someone else before the registry binds it:
        // retry with another one when that happens.
        for attempt in 0..5 {
            let (ip, port) = if self.without_port {
                (random_loopback_ip(attempt), 80)
            } else {
                ("127.0.0.1".to_string(), free_port())
            };
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: {level}\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {ip}:{port}\n  secret: chartcache-test-secret\n{tls_yaml}\
                 {auth_yaml}",
                level = self.log_level,
                storage = yaml_str(&storage),
            );
            fs::write(&config_path, &config).expect("write registry config");
            let log = fs::File::create(&stderr_path).expect("create registry log");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            let mut registry = Registry {
                child,
                ip,
                port,
                tls: pki.clone(),
                creds: creds.clone(),
                token: None,
                stderr_path: stderr_path.clone(),
                config_path: config_path.clone(),
                storage: storage.clone(),
                dir: None,
            };
            match registry.wait_ready() {
                Ok(()) => {
                    registry.token = token;
                    registry.dir = Some(dir);
                    return registry;
                }
                Err(failure) => {
                    let in_use = failure.contains("address already in use");
                    last_failure = failure;
                    drop(registry);
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!(
            "docker-registry did not start ({}):\n--- config\n{}\n{last_failure}",
            self.describe(),
            fs::read_to_string(&config_path).unwrap_or_default()
        );
    }

    fn describe(&self) -> String {
        format!(
            "auth={:?}, tls={}, client_auth={}",
            self.auth, self.tls, self.client_auth
        )
    }
}

/// A running registry in its own temp dir; killed (and the dir removed) on drop.
pub struct Registry {
    child: Child,
    ip: String,
    port: u16,
    tls: Option<TestPki>,
    creds: Option<(String, String)>,
    token: Option<TokenIssuer>,
    stderr_path: PathBuf,
    config_path: PathBuf,
    storage: PathBuf,
    /// Dropped last (after the child is killed and the issuer stopped).
    dir: Option<TempDir>,
}

impl Registry {
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }
    /// Anonymous plain-HTTP registry.
    pub fn plain() -> Registry {
        Self::builder().start()
    }
    /// Plain HTTP, Basic auth (bcrypt htpasswd) for `user`/`pass`.
    pub fn htpasswd(user: &str, pass: &str) -> Registry {
        Self::builder().htpasswd(user, pass).start()
    }
    /// Anonymous HTTPS with a fresh test CA; see [`Registry::ca_pem_path`].
    pub fn tls() -> Registry {
        Self::builder().tls().start()
    }
    /// Plain HTTP, token auth: a [`TokenIssuer`] accepting `user`/`pass`.
    pub fn token(user: &str, pass: &str) -> Registry {
        Self::builder().token(user, pass).start()
    }

    /// `127.0.0.1:PORT` (or a bare `127.x.y.z` for [`RegistryBuilder::without_port`]).
    pub fn host(&self) -> String {
        match self.port {
            80 => self.ip.clone(),
            port => format!("{}:{port}", self.ip),
        }
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.host())
    }
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
    /// `oci://127.0.0.1:PORT/{path}` (Helm-style reference).
    pub fn oci(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host())
    }
    /// `docker://127.0.0.1:PORT/{path}` (skopeo transport reference).
    pub fn docker(&self, path: &str) -> String {
        format!("docker://{}/{path}", self.host())
    }
    /// The filesystem driver's root (`docker/registry/v2/...` below it).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    /// The registry's temp dir (config, logs, pki, token keys, storage).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("registry dir").path()
    }
    /// What the registry wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
    /// `(user, pass)` for htpasswd and token registries.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }
    /// `user:pass`, the form of skopeo's `--creds`; panics on an anonymous registry.
    pub fn creds_arg(&self) -> String {
        let (u, p) = self
            .credentials()
            .expect("this registry has no credentials");
        format!("{u}:{p}")
    }
    /// The token issuer of a token registry.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token.as_ref()
    }
    /// The test PKI of a TLS registry.
    pub fn pki(&self) -> Option<&TestPki> {
        self.tls.as_ref()
    }
    fn pki_or_panic(&self) -> &TestPki {
        self.tls
            .as_ref()
            .expect("not a TLS registry: use Registry::tls() or the builder's .tls()/.mtls()")
    }
    /// The CA certificate (PEM) that signed the server (and client) certificate.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.pki_or_panic().ca_pem_path()
    }
    /// A dir with only `ca.crt`, for `skopeo --cert-dir`.
    pub fn cert_dir(&self) -> PathBuf {
        self.pki_or_panic().cert_dir()
    }
    /// A dir with `ca.crt`, `client.cert`, `client.key`, for `skopeo --cert-dir` with mTLS.
    pub fn client_cert_dir(&self) -> PathBuf {
        self.pki_or_panic().client_cert_dir()
    }
    /// Client certificate (PEM) signed by the registry's CA.
    pub fn client_cert_path(&self) -> PathBuf {
        self.pki_or_panic().client_cert_path()
    }
    /// Key (PKCS#8 PEM) of [`Registry::client_cert_path`].
    pub fn client_key_path(&self) -> PathBuf {
        self.pki_or_panic().client_key_path()
    }

    /// `GET {url}{path}` with extra headers (plain-HTTP registries only).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", path, headers, &[])
    }
    /// `GET {url}{path}` with this registry's Basic credentials (htpasswd registries).
    pub fn get_with_basic_auth(&self, path: &str) -> HttpResponse {
        let (u, p) = self.credentials().expect("no credentials");
        let auth = basic_auth(u, p);
        self.get(path, &[("Authorization", &auth)])
    }
    /// Any request to `{url}{path}` (plain-HTTP registries only); panics on I/O errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        assert!(
            !self.is_tls(),
            "the tiny HTTP client has no TLS: use skopeo for TLS registries"
        );
        let url = format!("{}{path}", self.url());
        http_request(method, &url, headers, body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n--- registry log\n{}", self.log()))
    }

    /// Ready when `GET /v2/` gets any HTTP answer (a TLS port answers a plain request with
    /// 400 "Client sent an HTTP request to an HTTPS server").
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("http://{}/v2/", self.host());
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "docker-registry exited with {status} before answering on {}\n--- stderr\n{}",
                    self.host(),
                    self.log()
                ));
            }
            match http_get(&url, &[]) {
                // The answer may come from someone else who took the port first (free_port()
                // races): ours then exits at once with "address already in use". Give it the
                // moment that takes before trusting the answer.
                Ok(_) => {
                    std::thread::sleep(Duration::from_millis(150));
                    if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                        return Err(format!(
                            "docker-registry exited with {status} after {} answered\n--- stderr\n{}",
                            self.host(),
                            self.log()
                        ));
                    }
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "GET {url} still fails after {START_TIMEOUT:?}: {e}\n--- stderr\n{}",
                        self.log()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 127.x.y.z address unlikely to be in use (any address of 127/8 is loopback on Linux).
fn random_loopback_ip(salt: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = nanos ^ (std::process::id() << 8) ^ (salt as u32).wrapping_mul(0x9e37_79b9);
    format!(
        "127.{}.{}.{}",
        (n >> 16) % 250 + 2,
        (n >> 8) % 256,
        n % 254 + 1
    )
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yaml_str(s: impl AsRef<std::ffi::OsStr>) -> String {
    serde_json::to_string(&s.as_ref().to_string_lossy()).expect("json string")
}
