//! Shared by the `repo_*` integration tests: a classic chart repository on 127.0.0.1.
//!
//! - [`FileServer`]: a small threaded static HTTP/1.1 file server (std::net, one thread per
//!   connection, `Connection: close`) serving a directory. Optionally requires Basic auth
//!   (401 without it), answers a chosen status for missing files (404, or 403 as S3 does),
//!   overrides single paths (a status or a redirect), and records every request it gets:
//!   path and the `Authorization` header it carried.
//! - [`RepoFixture`]: chart archives built here (tar + flate2, distinct and realistic) and the
//!   `index.yaml` (or JSON) describing them, with sha256 digests and Helm-style `created`.
//!
//! Use with `mod classic;` (it needs nothing from `support` or `fault`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// `sha256` of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

// ---------------------------------------------------------------------------------------------
// The file server
// ---------------------------------------------------------------------------------------------

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    /// Decoded path, without the query.
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// What the server answered.
    pub status: u16,
}

/// A per-path answer that replaces serving the file.
#[derive(Debug, Clone)]
pub enum Rule {
    /// An empty answer with this status.
    Status(u16),
    /// `302 Found` to this absolute URL.
    Redirect(String),
}

struct Shared {
    root: PathBuf,
    /// The exact `Authorization` value required, if any.
    auth: Option<String>,
    missing: u16,
    hits: Mutex<Vec<Hit>>,
    rules: Mutex<HashMap<String, Rule>>,
    stop: AtomicBool,
}

/// Options for [`FileServer`].
pub struct FileServerBuilder {
    root: PathBuf,
    auth: Option<String>,
    missing: u16,
}

impl FileServerBuilder {
    /// Require `Authorization: Basic base64(user:pass)` on every request (401 otherwise).
    pub fn basic_auth(mut self, user: &str, pass: &str) -> Self {
        self.auth = Some(basic(user, pass));
        self
    }
    /// The status for a path with no file (404 by default; S3 buckets answer 403).
    pub fn missing_status(mut self, status: u16) -> Self {
        self.missing = status;
        self
    }
    pub fn start(self) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            root: self.root,
            auth: self.auth,
            missing: self.missing,
            hits: Mutex::new(Vec::new()),
            rules: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, stream);
                });
            }
        });
        FileServer {
            port,
            shared,
            accept: Some(accept),
        }
    }
}

/// A static file server on 127.0.0.1 serving a directory; stopped on drop.
pub struct FileServer {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FileServer {
    pub fn builder(root: &Path) -> FileServerBuilder {
        FileServerBuilder {
            root: root.to_path_buf(),
            auth: None,
            missing: 404,
        }
    }
    /// Serves `root` to anyone.
    pub fn start(root: &Path) -> FileServer {
        Self::builder(root).start()
    }
    /// Serves `root` to requests carrying Basic `user:pass`; 401 to everything else.
    pub fn with_basic_auth(root: &Path, user: &str, pass: &str) -> FileServer {
        Self::builder(root).basic_auth(user, pass).start()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
    /// `http://127.0.0.1:PORT/` + `path` (without its leading `/`).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{}", self.url(), path.trim_start_matches('/'))
    }

    /// Answer `path` (like `/a-1.0.0.tgz`) with `rule` instead of the file.
    pub fn set_rule(&self, path: &str, rule: Rule) {
        self.shared
            .rules
            .lock()
            .unwrap()
            .insert(path.to_string(), rule);
    }

    /// Every request so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }
    /// The paths requested so far, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.path).collect()
    }
    /// How many requests asked for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.hits().iter().filter(|h| h.path == path).count()
    }
    /// Requests for paths ending in `.tgz`.
    pub fn tgz_requests(&self) -> Vec<String> {
        self.paths()
            .into_iter()
            .filter(|p| p.ends_with(".tgz"))
            .collect()
    }
    /// Forgets the requests recorded so far.
    pub fn clear_hits(&self) {
        self.shared.hits.lock().unwrap().clear();
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(shared: &Shared, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let path = percent_decode(target.split('?').next().unwrap_or("/"));

    let (status, headers, body): (u16, Vec<(String, String)>, Vec<u8>) = if shared
        .auth
        .as_ref()
        .is_some_and(|want| authorization.as_deref() != Some(want.as_str()))
    {
        (
            401,
            vec![(
                "WWW-Authenticate".into(),
                "Basic realm=\"chartcache-test\"".into(),
            )],
            b"unauthorized\n".to_vec(),
        )
    } else if let Some(rule) = shared.rules.lock().unwrap().get(&path).cloned() {
        match rule {
            Rule::Status(s) => (s, Vec::new(), format!("status {s}\n").into_bytes()),
            Rule::Redirect(to) => (302, vec![("Location".into(), to)], Vec::new()),
        }
    } else if method != "GET" && method != "HEAD" {
        (405, Vec::new(), Vec::new())
    } else {
        match resolve(&shared.root, &path).and_then(|p| fs::read(p).ok()) {
            Some(data) => (
                200,
                vec![("Content-Type".into(), content_type(&path).into())],
                data,
            ),
            None => (shared.missing, Vec::new(), b"not found\n".to_vec()),
        }
    };
    // Recorded before answering, so a client that is done has been counted.
    shared.hits.lock().unwrap().push(Hit {
        method: method.clone(),
        path,
        authorization,
        status,
    });
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// The file under `root` that `path` names; `None` for anything escaping it or a directory.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let full = root.join(rel);
    full.is_file().then_some(full)
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with(".yaml") {
        "application/x-yaml"
    } else if path.ends_with(".tgz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------------------------
// Charts and the index
// ---------------------------------------------------------------------------------------------

/// One chart version of a [`RepoFixture`]: its archive and its index entry.
#[derive(Debug, Clone)]
pub struct ChartFile {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `urls[0]` as written into the index (relative or absolute).
    pub url: String,
    /// The index `digest` (hex, no prefix).
    pub digest: String,
    /// The index `created`.
    pub created: String,
    /// The archive bytes.
    pub bytes: Vec<u8>,
    /// The `.prov` bytes, when one was written.
    pub prov: Option<Vec<u8>>,
}

impl ChartFile {
    /// `sha256:<digest>`.
    pub fn oci_digest(&self) -> String {
        format!("sha256:{}", self.digest)
    }
    /// The OCI tag: the version with `+` written as `_`.
    pub fn tag(&self) -> String {
        self.version.replace('+', "_")
    }
    /// `<name>-<version>.tgz`
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// The text of `Chart.yaml` for the fixtures.
pub fn chart_yaml(name: &str, version: &str, description: &str) -> String {
    format!(
        "apiVersion: v2\n\
         name: {name}\n\
         version: {version}\n\
         description: {description}\n\
         type: application\n\
         appVersion: \"{version}\"\n\
         home: https://example.com/charts/{name}\n\
         sources:\n  - https://github.com/example/{name}\n  - https://github.com/example/{name}-extra\n\
         keywords:\n  - {name}\n  - test\n\
         maintainers:\n  - name: Jane Doe\n    email: jane@example.com\n  - name: Ops Team\n"
    )
}

/// A realistic, distinct chart archive: Chart.yaml, values.yaml, templates, a README,
/// entries under `<name>/`, as `helm package` lays them out.
pub fn chart_tgz_bytes(name: &str, version: &str, description: &str) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "Chart.yaml".into(),
            chart_yaml(name, version, description).into_bytes(),
        ),
        (
            "values.yaml".into(),
            format!(
                "replicaCount: 1\nimage:\n  repository: example/{name}\n  tag: \"{version}\"\n  pullPolicy: IfNotPresent\nservice:\n  type: ClusterIP\n  port: 80\n"
            )
            .into_bytes(),
        ),
        (
            "templates/_helpers.tpl".into(),
            format!("{{{{- define \"{name}.fullname\" -}}}}{{{{ .Release.Name }}}}-{name}{{{{- end }}}}\n")
                .into_bytes(),
        ),
        (
            "templates/deployment.yaml".into(),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{{{ include \"{name}.fullname\" . }}}}\n  labels:\n    app.kubernetes.io/version: \"{version}\"\nspec:\n  replicas: {{{{ .Values.replicaCount }}}}\n  template:\n    spec:\n      containers:\n        - name: {name}\n          image: \"{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}\"\n"
            )
            .into_bytes(),
        ),
        (
            "templates/service.yaml".into(),
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{{{ include \"{name}.fullname\" . }}}}\nspec:\n  type: {{{{ .Values.service.type }}}}\n  ports:\n    - port: {{{{ .Values.service.port }}}}\n"
            )
            .into_bytes(),
        ),
        (
            "README.md".into(),
            format!("# {name}\n\n{description}\n\nVersion {version}.\n").into_bytes(),
        ),
    ];
    let gz = GzEncoder::new(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (rel, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{name}/{rel}"), data.as_slice())
            .expect("tar entry");
    }
    tar.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip")
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// A classic repository in a temp dir: chart archives and the index that lists them.
pub struct RepoFixture {
    dir: TempDir,
    pub charts: Vec<ChartFile>,
    /// Entries with versions Helm skips (`(name, version)`), written into the index too.
    pub invalid: Vec<(String, String)>,
}

impl Default for RepoFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl RepoFixture {
    pub fn new() -> RepoFixture {
        RepoFixture {
            dir: tempfile::Builder::new()
                .prefix("chartcache-classic-")
                .tempdir()
                .expect("repo tempdir"),
            charts: Vec::new(),
            invalid: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Builds `name-version.tgz` at the repository root, listed with a relative URL.
    pub fn add(&mut self, name: &str, version: &str) -> &mut ChartFile {
        let file = format!("{name}-{version}.tgz");
        self.add_at(name, version, &file)
    }

    /// Builds the archive at `rel_path` (under the root) and lists it with that relative URL.
    pub fn add_at(&mut self, name: &str, version: &str, rel_path: &str) -> &mut ChartFile {
        let n = self.charts.len();
        let description = format!("The {name} chart, version {version}, for the repo tests");
        let bytes = chart_tgz_bytes(name, version, &description);
        let path = self.root().join(rel_path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, &bytes).expect("write tgz");
        self.charts.push(ChartFile {
            name: name.into(),
            version: version.into(),
            description,
            url: rel_path.into(),
            digest: sha256_hex(&bytes),
            // Helm writes nanoseconds and a zone; each version gets its own time.
            created: format!(
                "2024-0{}-{:02}T10:{:02}:05.123456789+02:00",
                1 + n % 9,
                1 + n % 28,
                n % 60
            ),
            bytes,
            prov: None,
        });
        self.charts.last_mut().expect("just pushed")
    }

    /// Writes `<archive>.prov` beside the archive of `name` `version` (a file path URL).
    pub fn add_prov(&mut self, name: &str, version: &str) -> Vec<u8> {
        let root = self.root().to_path_buf();
        let c = self.chart_mut(name, version);
        let prov = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nname: {}\nversion: {}\n...\nfiles:\n  {}: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n\nwsBcBAEBCgAQBQJnot-a-real-signature\n-----END PGP SIGNATURE-----\n",
            c.name,
            c.version,
            c.file_name(),
            c.digest
        )
        .into_bytes();
        fs::write(root.join(format!("{}.prov", c.url)), &prov).expect("write prov");
        c.prov = Some(prov.clone());
        prov
    }

    /// An index entry whose version Helm cannot parse (skipped with a warning).
    pub fn add_invalid(&mut self, name: &str, version: &str) {
        self.invalid.push((name.into(), version.into()));
    }

    pub fn chart(&self, name: &str, version: &str) -> &ChartFile {
        self.charts
            .iter()
            .find(|c| c.name == name && c.version == version)
            .unwrap_or_else(|| panic!("no fixture {name} {version}"))
    }
    pub fn chart_mut(&mut self, name: &str, version: &str) -> &mut ChartFile {
        self.charts
            .iter_mut()
            .find(|c| c.name == name && c.version == version)
            .unwrap_or_else(|| panic!("no fixture {name} {version}"))
    }

    /// The index as Helm writes it (YAML, entries grouped by chart).
    pub fn index_yaml(&self) -> String {
        let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for c in &self.charts {
            by_name.entry(&c.name).or_default().push(format!(
                "  - apiVersion: v2\n    appVersion: {}\n    created: {}\n    description: {}\n    digest: {}\n    home: https://example.com/charts/{}\n    maintainers:\n      - email: jane@example.com\n        name: Jane Doe\n    name: {}\n    sources:\n      - https://github.com/example/{}\n    type: application\n    urls:\n      - {}\n    version: {}\n",
                q(&c.version),
                q(&c.created),
                q(&c.description),
                c.digest,
                c.name,
                c.name,
                c.name,
                q(&c.url),
                q(&c.version),
            ));
        }
        for (name, version) in &self.invalid {
            by_name.entry(name).or_default().push(format!(
                "  - apiVersion: v2\n    created: \"2024-01-01T00:00:00Z\"\n    digest: {}\n    name: {name}\n    urls:\n      - {name}-{version}.tgz\n    version: {}\n",
                "0".repeat(64),
                q(version)
            ));
        }
        let mut out = String::from("apiVersion: v1\nentries:\n");
        for (name, versions) in by_name {
            out.push_str(&format!("  {name}:\n"));
            for v in versions {
                // Indent the list items under the chart name.
                for line in v.lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.push_str("generated: \"2024-06-01T12:00:00.000000000Z\"\n");
        out
    }

    /// The same index as JSON.
    pub fn index_json(&self) -> String {
        let mut entries = serde_json::Map::new();
        for c in &self.charts {
            let list = entries
                .entry(c.name.clone())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            list.as_array_mut().expect("array").push(serde_json::json!({
                "apiVersion": "v2",
                "name": c.name,
                "version": c.version,
                "description": c.description,
                "created": c.created,
                "digest": c.digest,
                "urls": [c.url],
            }));
        }
        for (name, version) in &self.invalid {
            let list = entries
                .entry(name.clone())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            list.as_array_mut().expect("array").push(serde_json::json!({
                "name": name, "version": version, "urls": [format!("{name}-{version}.tgz")],
            }));
        }
        serde_json::to_string_pretty(&serde_json::json!({
            "apiVersion": "v1",
            "entries": entries,
            "generated": "2024-06-01T12:00:00Z",
        }))
        .expect("json")
    }

    /// Writes [`RepoFixture::index_yaml`] to `index.yaml` at the root.
    pub fn write_index(&self) {
        self.write_file("index.yaml", self.index_yaml().as_bytes());
    }

    /// Writes `data` to `rel` under the root.
    pub fn write_file(&self, rel: &str, data: &[u8]) {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, data).expect("write file");
    }

    /// Removes `rel` under the root.
    pub fn remove_file(&self, rel: &str) {
        fs::remove_file(self.root().join(rel)).expect("remove file");
    }
}

/// The names of the files in `dir` (sorted), hidden ones included.
pub fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A 127.0.0.1 port where nothing listens (bound, read, closed).
pub fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}
