//! Shared helpers for the `cache_*` integration tests: a throw-away Helm home that runs the real
//! binary with the user's environment removed, snapshots of the cache, archive builders and
//! readers, and small independent oracles (Helm's `.helmignore` rules, Helm's size format,
//! uitable's layout) to check the binary's output against.
//!
//! Every test file uses only part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

/// The chartcache binary cargo built for these tests.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("chartcache")
}

/// A chart fixture under `testdata/charts/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/charts")
        .join(name)
}

/// The shared, read-only real-world test data (`/work/shared/testdata`), or `None` with a note
/// on stderr when it is not there (the caller then skips).
pub fn shared_testdata(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata")
        .join(sub);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "note: skipping: shared test data {} is not present",
            dir.display()
        );
        None
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<64 hex>` → the hex, panicking on anything else.
pub fn digest_hex(s: &str) -> String {
    let hex = s
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {s:?}"));
    assert!(is_hex64(hex), "not a sha256 digest: {s:?}");
    hex.to_string()
}

/// What a command did, with its output as text.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts exit 1 and a stderr of exactly one line `Error: …` that contains every one of
    /// `mentions`.
    pub fn assert_error(&self, mentions: &[&str]) {
        assert_eq!(self.code, Some(1), "expected exit 1\n{}", self.describe());
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stderr should be exactly one line\n{}",
            self.describe()
        );
        assert!(
            lines[0].starts_with("Error: "),
            "stderr should start with 'Error: '\n{}",
            self.describe()
        );
        for m in mentions {
            assert!(
                lines[0].contains(m),
                "the error should name {m:?}\n{}",
                self.describe()
            );
        }
    }
}

/// The four summary lines and the status line of `chart save`.
#[derive(Debug, Clone)]
pub struct Saved {
    pub name: String,
    pub version: String,
    /// Hex of the config ("meta") blob.
    pub meta: String,
    /// Hex of the content (chart .tgz) blob.
    pub content: String,
    pub tag: String,
    pub stderr: String,
}

/// Parses `Name: … / Version: … / Meta: sha256:… / Content: sha256:… / <tag>: saved`.
pub fn parse_saved(run: &Run) -> Saved {
    let lines = run.lines();
    assert_eq!(
        lines.len(),
        5,
        "save should print 5 lines\n{}",
        run.describe()
    );
    let field = |i: usize, key: &str| -> String {
        lines[i]
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("line {i} should start with {key:?}\n{}", run.describe()))
            .to_string()
    };
    let tag = lines[4]
        .strip_suffix(": saved")
        .unwrap_or_else(|| panic!("last line should be '<tag>: saved'\n{}", run.describe()))
        .to_string();
    Saved {
        name: field(0, "Name: "),
        version: field(1, "Version: "),
        meta: digest_hex(&field(2, "Meta: ")),
        content: digest_hex(&field(3, "Content: ")),
        tag,
        stderr: run.stderr.clone(),
    }
}

/// A Helm home in a temp dir: `--home <dir>/helm` (so the cache is `<dir>/helm/registry`) and
/// `HOME=<dir>/user`, with the rest of the environment cleared.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    pub fn new() -> Home {
        Home::new_in(&std::env::temp_dir())
    }

    /// A home under `parent` (a memory file system, for tests that create many files).
    pub fn new_in(parent: &Path) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("chartcache-test-")
            .tempdir_in(parent)
            .expect("tempdir");
        fs::create_dir_all(dir.path().join("user")).expect("mkdir user");
        Home { dir }
    }

    /// The temp dir holding everything (free for scratch files under other names).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The value passed as `--home`.
    pub fn helm_home(&self) -> PathBuf {
        self.dir.path().join("helm")
    }

    /// The cache root, `<home>/registry`.
    pub fn registry(&self) -> PathBuf {
        self.helm_home().join("registry")
    }

    /// A scratch directory inside the temp dir (created).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        fs::create_dir_all(&p).expect("mkdir scratch");
        p
    }

    /// `chartcache --home <home>` as an assert_cmd command, environment cleared but for
    /// `HOME` (a temp dir) and `PATH`.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("chartcache").expect("chartcache binary");
        cmd.env_clear()
            .env("HOME", self.dir.path().join("user"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--home")
            .arg(self.helm_home());
        cmd
    }

    /// The same as a plain `std::process::Command`, for spawning and killing.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(bin());
        cmd.env_clear()
            .env("HOME", self.dir.path().join("user"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--home")
            .arg(self.helm_home());
        cmd
    }

    /// Runs `chartcache --home <home> ARGS…`.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let out = self.cmd().args(args).output().expect("run chartcache");
        Run::from_output(out)
    }

    /// Runs and asserts exit 0; returns the run.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "chartcache {:?} failed\n{}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            run.describe()
        );
        run
    }

    /// `chart save PATH [REF]`, asserted successful and parsed.
    pub fn save(&self, path: &Path, reference: Option<&str>) -> Saved {
        let mut args: Vec<std::ffi::OsString> =
            vec!["chart".into(), "save".into(), path.as_os_str().into()];
        if let Some(r) = reference {
            args.push(r.into());
        }
        parse_saved(&self.ok(&args))
    }

    /// `chart list -o json`, parsed.
    pub fn list_json(&self) -> Vec<serde_json::Value> {
        let run = self.ok(&["chart", "list", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("list -o json is not JSON: {e}\n{}", run.describe()));
        v.as_array().expect("list -o json is an array").clone()
    }

    /// The `ref` fields of `chart list -o json`, in order.
    pub fn list_refs(&self) -> Vec<String> {
        self.list_json()
            .iter()
            .map(|e| e["ref"].as_str().expect("ref").to_string())
            .collect()
    }

    /// `chart verify`, asserted successful.
    pub fn verify_ok(&self) -> Run {
        let run = self.run(&["chart", "verify"]);
        assert_eq!(run.code, Some(0), "verify failed\n{}", run.describe());
        assert!(
            run.stdout.contains(": OK"),
            "verify should say OK\n{}",
            run.describe()
        );
        run
    }

    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.registry().join("blobs/sha256").join(hex)
    }

    pub fn read_blob(&self, hex: &str) -> Vec<u8> {
        fs::read(self.blob_path(hex)).unwrap_or_else(|e| panic!("blob {hex}: {e}"))
    }

    /// Every blob file name under `blobs/sha256/`.
    pub fn blob_names(&self) -> Vec<String> {
        let dir = self.registry().join("blobs/sha256");
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// `refs/<host with ':' as '_'>/<path>/tags/<tag>` for `host/path:tag`, computed here.
    pub fn ref_dir(&self, reference: &str) -> PathBuf {
        let (host, rest) = reference.split_once('/').expect("host/path:tag");
        let (path, tag) = rest.rsplit_once(':').expect("a tag");
        self.registry()
            .join("refs")
            .join(host.replace(':', "_"))
            .join(path)
            .join("tags")
            .join(tag)
    }

    /// The blob hex a ref's link (`content`, `meta`, `manifest`, `prov`) points at.
    pub fn link_hex(&self, reference: &str, link: &str) -> String {
        let target = fs::read_link(self.ref_dir(reference).join(link))
            .unwrap_or_else(|e| panic!("{reference}: link {link}: {e}"));
        target
            .file_name()
            .expect("link file name")
            .to_string_lossy()
            .into_owned()
    }

    /// The stored manifest of a ref, parsed.
    pub fn manifest(&self, reference: &str) -> serde_json::Value {
        let hex = self.link_hex(reference, "manifest");
        serde_json::from_slice(&self.read_blob(&hex)).expect("manifest JSON")
    }

    /// The content tgz of a ref, unpacked into memory.
    pub fn content_entries(&self, reference: &str) -> Vec<TarEntry> {
        read_tgz(&self.read_blob(&self.link_hex(reference, "content")))
    }

    /// A snapshot of everything under the Helm home.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.helm_home())
    }
}

/// Path (relative, `/`-separated) → `dir`, `file <sha256>` or `link -> <target>`.
pub type Snapshot = BTreeMap<String, String>;

pub fn snapshot(root: &Path) -> Snapshot {
    fn walk(root: &Path, dir: &Path, out: &mut Snapshot) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for entry in rd {
            let entry = entry.expect("read_dir entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = entry.file_type().expect("file type");
            if ft.is_symlink() {
                let target = fs::read_link(&path).expect("read_link");
                out.insert(rel, format!("link -> {}", target.display()));
            } else if ft.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else {
                let bytes = fs::read(&path).unwrap_or_default();
                out.insert(rel, format!("file {}", sha256_hex(&bytes)));
            }
        }
    }
    let mut out = Snapshot::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two snapshots are equal, listing what differs.
pub fn assert_same_snapshot(before: &Snapshot, after: &Snapshot, what: &str) {
    if before == after {
        return;
    }
    let mut diff = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => diff.push(format!("+ {k} ({v})")),
            Some(old) if old != v => diff.push(format!("~ {k} ({old} => {v})")),
            _ => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            diff.push(format!("- {k}"));
        }
    }
    panic!("{what}: the cache changed:\n{}", diff.join("\n"));
}

/// Copies a directory tree (regular files and directories; symlinks are copied as links).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    for entry in fs::read_dir(src).expect("read_dir") {
        let entry = entry.unwrap();
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            let target = fs::read_link(&from).unwrap();
            std::os::unix::fs::symlink(target, &to).unwrap();
        } else if ft.is_dir() {
            copy_dir(&from, &to);
        } else {
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            // Shared test data is read-only; the copies must be writable for touch-ups.
            let mut perm = fs::metadata(&to).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            fs::set_permissions(&to, perm).unwrap();
        }
    }
}

/// Every regular file under `dir` (symlinks followed), as relative `/` path → bytes.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The files Helm's directory loader would load from `dir`: `.helmignore` (if any) plus the
/// default `templates/.?*`, evaluated with the oracle below; a UTF-8 BOM stripped.
pub fn helm_admitted_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let text = fs::read_to_string(dir.join(".helmignore")).unwrap_or_default();
    let rules = HelmIgnore::parse(&text);
    fn walk(rules: &HelmIgnore, root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::metadata(&path).unwrap();
            if rules.ignored(&rel, meta.is_dir()) {
                continue;
            }
            if meta.is_dir() {
                walk(rules, root, &path, out);
            } else {
                let mut data = fs::read(&path).unwrap();
                if data.starts_with(b"\xEF\xBB\xBF") {
                    data.drain(..3);
                }
                out.insert(rel, data);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&rules, dir, dir, &mut out);
    out
}

/// An independent model of Helm's `pkg/ignore` rules (not gitignore's): first decisive rule
/// wins; a negated rule ignores what it does NOT match; `/`-prefixed rules are anchored;
/// `/`-suffixed rules only match directories; rules without `/` match the base name.
pub struct HelmIgnore {
    rules: Vec<IgnoreRule>,
}

struct IgnoreRule {
    negate: bool,
    must_dir: bool,
    basename: bool,
    pattern: String,
}

impl HelmIgnore {
    pub fn parse(text: &str) -> HelmIgnore {
        let mut rules = Vec::new();
        for line in text.lines().chain(std::iter::once("templates/.?*")) {
            let mut rule = line.trim();
            if rule.is_empty() || rule.starts_with('#') {
                continue;
            }
            let negate = rule.starts_with('!');
            if negate {
                rule = &rule[1..];
            }
            let must_dir = rule.ends_with('/');
            if must_dir {
                rule = &rule[..rule.len() - 1];
            }
            let (basename, pattern) = if let Some(anchored) = rule.strip_prefix('/') {
                (false, anchored.trim_start_matches('/'))
            } else {
                (!rule.contains('/'), rule)
            };
            rules.push(IgnoreRule {
                negate,
                must_dir,
                basename,
                pattern: pattern.to_string(),
            });
        }
        HelmIgnore { rules }
    }

    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        for r in &self.rules {
            let subject = if r.basename {
                rel.rsplit('/').next().unwrap_or(rel)
            } else {
                rel
            };
            let matched = go_match(&r.pattern, subject);
            if r.negate {
                if (r.must_dir && !is_dir) || !matched {
                    return true;
                }
                continue;
            }
            if r.must_dir && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

/// Go's `path.Match` (Unix): `*` any run of non-`/`, `?` one non-`/`, `[…]`/`[^…]` classes
/// with ranges, `\` escapes. A malformed pattern matches nothing.
pub fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    matches(&p, &s)
}

fn matches(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => {
            let max = s.iter().position(|&c| c == '/').unwrap_or(s.len());
            (0..=max).any(|i| matches(&p[1..], &s[i..]))
        }
        Some('?') => !s.is_empty() && s[0] != '/' && matches(&p[1..], &s[1..]),
        Some('\\') => p.len() > 1 && !s.is_empty() && s[0] == p[1] && matches(&p[2..], &s[1..]),
        Some('[') => {
            let mut i = 1;
            let negated = p.get(i) == Some(&'^');
            if negated {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            loop {
                match p.get(i) {
                    None => return false,
                    Some(']') if !first => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                first = false;
                let mut lo = p[i];
                if lo == '\\' {
                    i += 1;
                    lo = match p.get(i) {
                        Some(&c) => c,
                        None => return false,
                    };
                }
                i += 1;
                let mut hi = lo;
                if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&c| c != ']') {
                    hi = p[i + 1];
                    i += 2;
                }
                if let Some(&c) = s.first()
                    && lo <= c
                    && c <= hi
                {
                    hit = true;
                }
            }
            !s.is_empty() && hit != negated && matches(&p[i..], &s[1..])
        }
        Some(&c) => !s.is_empty() && s[0] == c && matches(&p[1..], &s[1..]),
    }
}

/// Helm's `byteCountBinary`: `454 B`, `4.3 KiB`, `1.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut div = 1024u64;
    let mut exp = 0;
    let mut n = bytes / 1024;
    while n >= 1024 {
        div *= 1024;
        exp += 1;
        n /= 1024;
    }
    format!(
        "{:.1} {}iB",
        bytes as f64 / div as f64,
        ['K', 'M', 'G', 'T', 'P', 'E'][exp]
    )
}

/// gosuri/uitable's rendering with `MaxColWidth = 60`: every cell padded with spaces to its
/// column's width, a cell over 60 characters cut to 57 plus `...`, `\t` between cells, `\n`
/// after every row.
pub fn uitable(rows: &[Vec<String>]) -> String {
    const MAX: usize = 60;
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count().min(MAX);
            if i >= widths.len() {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if c.chars().count() > MAX {
                    format!("{}...", c.chars().take(MAX - 3).collect::<String>())
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

/// One entry of a tar archive, as read back.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub username: Vec<u8>,
    pub groupname: Vec<u8>,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// Every entry of a gzip'd tar, in order.
pub fn read_tgz(bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("tar data");
        out.push(TarEntry {
            path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            kind: h.entry_type(),
            mode: h.mode().expect("mode"),
            uid: h.uid().expect("uid"),
            gid: h.gid().expect("gid"),
            mtime: h.mtime().expect("mtime"),
            username: h.username_bytes().unwrap_or_default().to_vec(),
            groupname: h.groupname_bytes().unwrap_or_default().to_vec(),
            link: entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned()),
            data,
        });
    }
    out
}

/// Builds gzip'd tar archives byte by byte, including ones a well-behaved tar library refuses
/// to write (`..`, absolute paths, escaping links, sizes that lie).
pub struct TgzBuilder {
    gz: GzEncoder<Vec<u8>>,
}

impl Default for TgzBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TgzBuilder {
    pub fn new() -> TgzBuilder {
        TgzBuilder {
            gz: GzEncoder::new(Vec::new(), Compression::fast()),
        }
    }

    fn header(
        path: &str,
        kind: tar::EntryType,
        size: u64,
        link: Option<&str>,
        mode: u32,
    ) -> tar::Header {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            let name = path.as_bytes();
            assert!(name.len() <= 100, "entry name too long for this builder");
            old.name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                let l = link.as_bytes();
                assert!(l.len() <= 100, "link name too long for this builder");
                old.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_cksum();
        h
    }

    fn pad(&mut self, len: u64) {
        let rem = (len % 512) as usize;
        if rem != 0 {
            self.gz.write_all(&vec![0u8; 512 - rem]).unwrap();
        }
    }

    /// A regular file, mode 0644.
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        let h = Self::header(
            path,
            tar::EntryType::Regular,
            data.len() as u64,
            None,
            0o644,
        );
        self.gz.write_all(h.as_bytes()).unwrap();
        self.gz.write_all(data).unwrap();
        self.pad(data.len() as u64);
        self
    }

    /// A regular file of `size` zero bytes, streamed (for size limits).
    pub fn zeros(mut self, path: &str, size: u64) -> Self {
        let h = Self::header(path, tar::EntryType::Regular, size, None, 0o644);
        self.gz.write_all(h.as_bytes()).unwrap();
        let chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64);
            self.gz.write_all(&chunk[..n as usize]).unwrap();
            left -= n;
        }
        self.pad(size);
        self
    }

    /// A regular file whose header claims `claimed` bytes but which carries only `data` (the
    /// archive then ends).
    pub fn lying_file(mut self, path: &str, claimed: u64, data: &[u8]) -> Self {
        let h = Self::header(path, tar::EntryType::Regular, claimed, None, 0o644);
        self.gz.write_all(h.as_bytes()).unwrap();
        self.gz.write_all(data).unwrap();
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Directory, 0, None, 0o755);
        self.gz.write_all(h.as_bytes()).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Symlink, 0, Some(target), 0o777);
        self.gz.write_all(h.as_bytes()).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Link, 0, Some(target), 0o644);
        self.gz.write_all(h.as_bytes()).unwrap();
        self
    }

    pub fn char_device(mut self, path: &str) -> Self {
        let h = Self::header(path, tar::EntryType::Char, 0, None, 0o644);
        self.gz.write_all(h.as_bytes()).unwrap();
        self
    }

    /// The gzip'd bytes, with the tar end-of-archive marker.
    pub fn finish(mut self) -> Vec<u8> {
        self.gz.write_all(&[0u8; 1024]).unwrap();
        self.gz.finish().unwrap()
    }

    /// The gzip'd bytes without the end-of-archive marker (a truncated archive).
    pub fn finish_truncated(self) -> Vec<u8> {
        self.gz.finish().unwrap()
    }

    /// Writes the archive to `path` and returns it.
    pub fn write(self, path: &Path) -> PathBuf {
        fs::write(path, self.finish()).expect("write tgz");
        path.to_path_buf()
    }
}

/// A deterministic pseudo-random generator (64-bit LCG), for test data and delays.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 17
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` bytes of lowercase words and spaces, with newlines (barely compressible text).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let r = self.next_u64();
            for i in 0..6 {
                let b = ((r >> (i * 7)) & 0x7f) as u8 % 32;
                out.push(match b {
                    0..=25 => b'a' + b,
                    26..=29 => b' ',
                    _ => b'\n',
                });
            }
        }
        out.truncate(len);
        out
    }
}

/// Writes a chart directory with `Chart.yaml` and the given files.
pub fn write_chart(dir: &Path, name: &str, version: &str, files: &[(&str, &[u8])]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )
    .unwrap();
    for (rel, data) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}
