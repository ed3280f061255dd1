//! The built `chartcache` binary in a throwaway world: its own HOME, cache (`--home`) and
//! registry credentials file, with the user's Helm/Docker/proxy environment removed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::support::describe;

/// Variables that would let the machine's own setup leak into a test.
const SCRUBBED_ENV: &[&str] = &[
    "HELM_HOME",
    "HELM_REGISTRY_CONFIG",
    "HELM_CONFIG_HOME",
    "HELM_CACHE_HOME",
    "HELM_DATA_HOME",
    "XDG_CONFIG_HOME",
    "DOCKER_CONFIG",
    "SOURCE_DATE_EPOCH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// `sha256` of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Writes a small chart directory `parent/<name>/` (Chart.yaml, values.yaml, one template)
/// and returns its path.
pub fn chart_dir(parent: &Path, name: &str, version: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(dir.join("templates")).expect("mkdir chart");
    fs::write(
        dir.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: {name}\nversion: {version}\ndescription: A chart for the registry tests\ntype: application\n"
        ),
    )
    .expect("write Chart.yaml");
    fs::write(dir.join("values.yaml"), "replicas: 1\n").expect("write values.yaml");
    fs::write(
        dir.join("templates/configmap.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-cm\ndata:\n  version: \"{version}\"\n"
        ),
    )
    .expect("write template");
    dir
}

/// A temp dir holding `home/` (HOME), `cache/` (`--home`, so the cache is `cache/registry`),
/// `config.json` (`HELM_REGISTRY_CONFIG`) and `src/` (chart fixtures).
pub struct Sandbox {
    dir: TempDir,
    envs: Vec<(String, std::ffi::OsString)>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("chartcache-sandbox-")
            .tempdir()
            .expect("sandbox tempdir");
        for sub in ["home", "cache", "src"] {
            fs::create_dir_all(dir.path().join(sub)).expect("mkdir sandbox");
        }
        Sandbox {
            dir,
            envs: Vec::new(),
        }
    }

    /// Sets an extra environment variable for every later command of this sandbox.
    pub fn set_env(&mut self, key: &str, value: impl Into<std::ffi::OsString>) {
        self.envs.push((key.to_string(), value.into()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    /// What `--home` is given: the cache is `cache_home()/registry`.
    pub fn cache_home(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    /// The cache root.
    pub fn root(&self) -> PathBuf {
        self.cache_home().join("registry")
    }
    /// The registry credentials file (`HELM_REGISTRY_CONFIG`).
    pub fn registry_config(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// `program` with this sandbox's environment: HOME and HELM_REGISTRY_CONFIG set, the
    /// machine's Helm/Docker/proxy variables removed, then the extras of [`Sandbox::set_env`].
    pub fn std_command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home())
            .env("HELM_REGISTRY_CONFIG", self.registry_config())
            .env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// The built binary.
    pub fn bin() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_chartcache"))
    }

    /// `chartcache --home CACHE` in this sandbox's environment (see [`Sandbox::std_command`]).
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::from_std(self.std_command(Self::bin()));
        cmd.arg("--home")
            .arg(self.cache_home())
            .timeout(Duration::from_secs(120));
        cmd
    }

    /// Runs `chartcache ARGS…` and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run chartcache")
    }

    /// Runs `chartcache ARGS…` with `stdin` as standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.cmd()
            .args(args)
            .write_stdin(stdin.to_string())
            .output()
            .expect("run chartcache")
    }

    /// `chartcache registry login HOST -u USER --password-stdin`, with PASS on stdin.
    pub fn login_stdin(&self, host: &str, user: &str, pass: &str) -> Output {
        self.run_stdin(
            &["registry", "login", host, "-u", user, "--password-stdin"],
            &format!("{pass}\n"),
        )
    }

    /// Runs `chartcache ARGS…`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "chartcache {} failed: {}",
            args.join(" "),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `chartcache ARGS…`, which must fail with exit code 1 and a one-line `Error: …`
    /// on stderr; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        error_line_of(&out, &args.join(" "))
    }

    /// Writes a chart dir `src/<name>-<version>/<name>` and returns its path.
    pub fn chart(&self, name: &str, version: &str) -> PathBuf {
        let parent = self
            .dir
            .path()
            .join("src")
            .join(format!("{name}-{version}"));
        chart_dir(&parent, name, version)
    }

    /// `chart save` of a fresh fixture chart under `reference`; returns stdout.
    pub fn save(&self, name: &str, version: &str, reference: &str) -> String {
        let dir = self.chart(name, version);
        self.ok(&[
            "chart",
            "save",
            dir.to_str().expect("utf-8 path"),
            reference,
        ])
    }

    /// The cache directory of `HOST/PATH:TAG`: `refs/<host_port>/<path>/tags/<tag>`.
    pub fn ref_dir(&self, reference: &str) -> PathBuf {
        let (repo, tag) = reference.rsplit_once(':').expect("reference with a tag");
        let (host, path) = repo.split_once('/').expect("host/path");
        self.root()
            .join("refs")
            .join(host.replace(':', "_"))
            .join(path)
            .join("tags")
            .join(tag)
    }

    /// The bytes the `link` (`manifest`, `meta`, `content`, `prov`) of a cached ref points to.
    pub fn ref_blob(&self, reference: &str, link: &str) -> Vec<u8> {
        let path = self.ref_dir(reference).join(link);
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `sha256:<hex>` of the cached manifest of `reference`.
    pub fn manifest_digest(&self, reference: &str) -> String {
        format!(
            "sha256:{}",
            sha256_hex(&self.ref_blob(reference, "manifest"))
        )
    }

    /// Every path under the cache root (but `.lock`), with enough to tell a change.
    pub fn snapshot(&self) -> Snapshot {
        let mut entries = BTreeMap::new();
        let root = self.root();
        if root.exists() {
            walk(&root, &root, &mut entries);
        }
        Snapshot { entries }
    }
}

/// Asserts `out` is a failure with exit code 1 whose stderr has exactly one `Error:` line
/// (warnings may precede it); returns that line.
pub fn error_line_of(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "chartcache {what}: expected exit code 1: {}",
        describe(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "chartcache {what}: expected one `Error:` line: {}",
        describe(out)
    );
    errors[0].to_string()
}

/// What one path under the cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File { len: u64, mtime_ns: i128, ino: u64 },
    Link(PathBuf),
}

/// The state of a cache, to compare before and after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<String, Entry>,
}

impl Snapshot {
    /// Paths added, removed or changed since `before`, one per line (empty: no change).
    pub fn changes_since(&self, before: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (path, entry) in &self.entries {
            match before.entries.get(path) {
                None => out.push(format!("+ {path}")),
                Some(old) if old != entry => out.push(format!("~ {path}")),
                Some(_) => {}
            }
        }
        for path in before.entries.keys() {
            if !self.entries.contains_key(path) {
                out.push(format!("- {path}"));
            }
        }
        out
    }

    /// Paths below `prefix` (like `blobs/sha256/` or `refs/`).
    pub fn under(&self, prefix: &str) -> Vec<&str> {
        self.entries
            .keys()
            .filter(|k| k.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for entry in read.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if rel == ".lock" {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap_or_default();
            out.insert(rel, Entry::Link(target));
        } else if meta.is_dir() {
            out.insert(rel, Entry::Dir);
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                Entry::File {
                    len: meta.len(),
                    mtime_ns: i128::from(meta.mtime()) * 1_000_000_000
                        + i128::from(meta.mtime_nsec()),
                    ino: meta.ino(),
                },
            );
        }
    }
}
