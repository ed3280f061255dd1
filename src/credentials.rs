//! Registry credentials, kept where Helm keeps them so `helm registry login` and
//! `chartcache registry login` share logins.
//!
//! The file is Docker's `config.json` format (`auths`, `credsStore`, `credHelpers`), at
//! `--registry-config` > `$HELM_REGISTRY_CONFIG` > `$HELM_CONFIG_HOME/registry/config.json` >
//! `$XDG_CONFIG_HOME/helm/registry/config.json` > `~/.config/helm/registry/config.json`.
//! Lookups fall back to Docker's own `config.json`. A host with a credential helper
//! (`credHelpers[host]`, else `credsStore`) is served by running `docker-credential-<name>`.
//! Writes keep unknown keys, and go through a temp file and a rename, mode 0600 in a 0700
//! directory, so a crash never leaves a torn or world-readable file.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::env;

/// A password or token. Its `Debug` never shows it, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A username and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a valid credentials file: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper} failed for {host}: {reason}")]
    Helper {
        helper: String,
        host: String,
        reason: String,
    },
    #[error("not logged in to {0}")]
    NotLoggedIn(String),
}

type Result<T> = std::result::Result<T, CredentialsError>;

/// The credential store: Helm's file, read and written, and Docker's, read only.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    docker_path: Option<PathBuf>,
}

impl Store {
    /// The store at Helm's place (or `explicit`, from `--registry-config`/`$HELM_REGISTRY_CONFIG`).
    pub fn locate(explicit: Option<PathBuf>) -> Self {
        let path = explicit.unwrap_or_else(default_path);
        let docker_path = std::env::var_os(env::DOCKER_CONFIG)
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".docker")))
            .map(|d| d.join("config.json"));
        Store { path, docker_path }
    }

    /// A store at exactly `path`, without the Docker fallback (tests).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Store {
            path: path.into(),
            docker_path: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential for `host`, from Helm's file, then Docker's.
    pub fn get(&self, host: &str) -> Result<Option<Credential>> {
        for path in std::iter::once(&self.path).chain(self.docker_path.as_ref()) {
            let Some(doc) = read_doc(path)? else { continue };
            if let Some(helper) = helper_for(&doc, host) {
                if let Some(c) = helper_get(&helper, host)? {
                    return Ok(Some(c));
                }
                continue;
            }
            if let Some(c) = auth_entry(&doc, host, path)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Saves a login to Helm's file (or to its configured helper).
    pub fn put(&self, host: &str, cred: &Credential) -> Result<()> {
        let mut doc = read_doc(&self.path)?.unwrap_or_default();
        if let Some(helper) = helper_for(&doc, host) {
            return helper_store(&helper, host, cred);
        }
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let token = BASE64.encode(format!("{}:{}", cred.username, cred.secret.expose()));
        if let Some(map) = auths.as_object_mut() {
            // An entry already there under another spelling of the host is updated, not doubled.
            let key = map
                .keys()
                .find(|k| normalize_host(k) == normalize_host(host))
                .cloned()
                .unwrap_or_else(|| server_address(host));
            let entry = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Some(e) = entry.as_object_mut() {
                e.insert("auth".into(), Value::String(token));
            }
        }
        write_doc(&self.path, &doc)
    }

    /// Removes a login. `NotLoggedIn` when there was none.
    pub fn remove(&self, host: &str) -> Result<()> {
        let mut doc =
            read_doc(&self.path)?.ok_or_else(|| CredentialsError::NotLoggedIn(host.into()))?;
        if let Some(helper) = helper_for(&doc, host) {
            return helper_erase(&helper, host);
        }
        let removed = doc
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|m| {
                let key = m
                    .keys()
                    .find(|k| normalize_host(k) == normalize_host(host))
                    .cloned()?;
                m.remove(&key)
            });
        if removed.is_none() {
            return Err(CredentialsError::NotLoggedIn(host.into()));
        }
        write_doc(&self.path, &doc)
    }
}

fn default_path() -> PathBuf {
    let var = |n| {
        std::env::var_os(n)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let config = var(env::HELM_CONFIG_HOME)
        .or_else(|| var(env::XDG_CONFIG_HOME).map(|x| x.join("helm")))
        .or_else(|| dirs::home_dir().map(|h| h.join(".config/helm")))
        .unwrap_or_else(|| PathBuf::from(".config/helm"));
    config.join("registry/config.json")
}

/// The key Docker and Helm (oras-go) file a login under: the host itself, but Docker Hub's
/// historical `https://index.docker.io/v1/` for Docker Hub.
fn server_address(host: &str) -> String {
    if normalize_host(host) == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// `https://host:5000/v2/` → `host:5000`; Docker Hub's legacy key → `docker.io`.
fn normalize_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.into(),
    }
}

fn read_doc(path: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::Io {
                path: path.into(),
                source,
            });
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(CredentialsError::Invalid {
            path: path.into(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(CredentialsError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        }),
    }
}

fn write_doc(path: &Path, doc: &Map<String, Value>) -> Result<()> {
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CredentialsError::Io { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        }
    }
    let mut bytes = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, formatter);
    serde::Serialize::serialize(doc, &mut ser).map_err(|e| CredentialsError::Invalid {
        path: path.into(),
        reason: e.to_string(),
    })?;
    // tempfile creates the file 0600, and persist keeps that mode.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json-")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(&bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| CredentialsError::Io {
        path: path.into(),
        source: e.error,
    })?;
    Ok(())
}

fn helper_for(doc: &Map<String, Value>, host: &str) -> Option<String> {
    let by_host = doc
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_host(k) == normalize_host(host))
        })
        .and_then(|(_, v)| v.as_str());
    by_host
        .or_else(|| doc.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn auth_entry(doc: &Map<String, Value>, host: &str, path: &Path) -> Result<Option<Credential>> {
    let Some(entry) = doc
        .get("auths")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_host(k) == normalize_host(host))
        })
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let invalid = |reason: &str| CredentialsError::Invalid {
        path: path.into(),
        reason: format!("auths[{host:?}]: {reason}"),
    };
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credential {
            username: "<token>".into(),
            secret: Secret::new(token),
        }));
    }
    let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    else {
        let user = entry.get("username").and_then(Value::as_str);
        let pass = entry.get("password").and_then(Value::as_str);
        return Ok(user.zip(pass).map(|(u, p)| Credential {
            username: u.into(),
            secret: Secret::new(p),
        }));
    };
    let decoded = BASE64
        .decode(auth.trim())
        .map_err(|_| invalid("auth is not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid("auth is not UTF-8"))?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(|| invalid("auth is not user:password"))?;
    Ok(Some(Credential {
        username: user.into(),
        secret: Secret::new(pass),
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, host: &str, input: &[u8]) -> Result<(bool, String)> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| CredentialsError::Helper {
        helper: helper.into(),
        host: host.into(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((out.status.success(), text))
}

fn helper_get(helper: &str, host: &str) -> Result<Option<Credential>> {
    let server = server_address(host);
    let (ok, out) = run_helper(helper, "get", host, server.as_bytes())?;
    if !ok {
        // Helpers say "credentials not found in native keychain" for an unknown host.
        if out.to_ascii_lowercase().contains("not found") || out.is_empty() {
            return Ok(None);
        }
        return Err(CredentialsError::Helper {
            helper: helper.into(),
            host: host.into(),
            reason: out,
        });
    }
    let v: Value = serde_json::from_str(&out).map_err(|e| CredentialsError::Helper {
        helper: helper.into(),
        host: host.into(),
        reason: format!("unreadable answer: {e}"),
    })?;
    let user = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    Ok(Some(Credential {
        username: if user.is_empty() {
            "<token>".into()
        } else {
            user.into()
        },
        secret: Secret::new(secret),
    }))
}

fn helper_store(helper: &str, host: &str, cred: &Credential) -> Result<()> {
    let body = serde_json::json!({"ServerURL": server_address(host), "Username": cred.username, "Secret": cred.secret.expose()});
    helper_must_succeed(helper, "store", host, body.to_string().as_bytes())
}

fn helper_erase(helper: &str, host: &str) -> Result<()> {
    helper_must_succeed(helper, "erase", host, server_address(host).as_bytes())
}

/// Runs a helper action whose only answer is success or a reason.
fn helper_must_succeed(helper: &str, action: &str, host: &str, input: &[u8]) -> Result<()> {
    match run_helper(helper, action, host, input)? {
        (true, _) => Ok(()),
        (false, reason) => Err(CredentialsError::Helper {
            helper: helper.into(),
            host: host.into(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(u: &str, p: &str) -> Credential {
        Credential {
            username: u.into(),
            secret: Secret::new(p),
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let c = cred("me", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn put_get_remove_round_trip_keeping_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helm/registry/config.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            r#"{"auths":{"other:1":{"auth":"eDp5"}},"experimental":"keep"}"#,
        )
        .unwrap();
        let store = Store::at(&path);
        store.put("localhost:5000", &cred("u", "p:w")).unwrap();
        assert_eq!(store.get("localhost:5000").unwrap(), Some(cred("u", "p:w")));
        assert_eq!(store.get("other:1").unwrap(), Some(cred("x", "y")));
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"experimental\": \"keep\"") && text.contains("\n\t"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        store.remove("localhost:5000").unwrap();
        assert_eq!(store.get("localhost:5000").unwrap(), None);
        assert!(matches!(
            store.remove("localhost:5000"),
            Err(CredentialsError::NotLoggedIn(_))
        ));
    }

    #[test]
    fn new_file_gets_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/config.json");
        Store::at(&path).put("h", &cred("a", "b")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(dir.path().join("new"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
    }

    #[test]
    fn docker_hub_is_filed_under_its_legacy_key_and_spellings_are_not_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"https://localhost:5000/v2/":{"auth":"eDp5"}}}"#,
        )
        .unwrap();
        let store = Store::at(&path);
        store.put("docker.io", &cred("hub", "pw")).unwrap();
        store.put("localhost:5000", &cred("u", "p")).unwrap();
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let keys: Vec<&String> = doc["auths"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["https://index.docker.io/v1/", "https://localhost:5000/v2/"],
            "{doc}"
        );
        assert_eq!(store.get("docker.io").unwrap(), Some(cred("hub", "pw")));
        assert_eq!(
            store.get("index.docker.io").unwrap(),
            Some(cred("hub", "pw"))
        );
        assert_eq!(store.get("localhost:5000").unwrap(), Some(cred("u", "p")));
        store.remove("docker.io").unwrap();
        assert_eq!(store.get("docker.io").unwrap(), None);
    }

    #[test]
    fn keys_are_normalized() {
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(
            normalize_host("http://localhost:5000/v2/"),
            "localhost:5000"
        );
        assert_eq!(normalize_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn invalid_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "{not json").unwrap();
        let err = Store::at(&path).get("h").unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("not a valid credentials file"),
            "{err}"
        );
    }
}
