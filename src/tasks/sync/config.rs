//! skopeo's sync YAML (`skopeo sync --src yaml`), read as skopeo reads it, so an existing file
//! works unchanged:
//!
//! ```yaml
//! registry.example.com:
//!   images:                      # repository -> tags or digests ([] = every tag)
//!     charts/nginx: []
//!     charts/redis: ["17.0.0", "sha256:…"]
//!   images-by-tag-regex:         # repository -> regular expression over tags
//!     charts/app: ^1\.2\.
//!   images-by-semver:            # repository -> Masterminds constraint over tags
//!     charts/db: ">= 3.12.0"
//!   credentials: {username: u, password: p}
//!   tls-verify: false
//!   cert-dir: /etc/certs/registry.example.com
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::constraint::Constraint;
use crate::reference::Reference;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryConfig {
    #[serde(default)]
    pub images: BTreeMap<String, Option<Vec<String>>>,
    #[serde(default, rename = "images-by-tag-regex")]
    pub images_by_tag_regex: BTreeMap<String, String>,
    #[serde(default, rename = "images-by-semver")]
    pub images_by_semver: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Option<ConfigCredentials>,
    #[serde(default, rename = "tls-verify")]
    pub tls_verify: Option<bool>,
    #[serde(default, rename = "cert-dir")]
    pub cert_dir: Option<PathBuf>,
    /// Keys skopeo does not know either: it ignores them, so do we (with a warning).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigCredentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// registry host → what to take from it.
pub type SyncConfig = BTreeMap<String, RegistryConfig>;

pub fn read(path: &Path) -> Result<SyncConfig, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg: SyncConfig = serde_norway::from_slice(&text)
        .map_err(|e| format!("{}: invalid sync config: {e}", path.display()))?;
    if cfg.is_empty() {
        return Err(format!(
            "{}: invalid sync config: no registry in it",
            path.display()
        ));
    }
    Ok(cfg)
}

/// Which tags of one repository a config entry takes.
#[derive(Debug, Clone)]
pub enum Select {
    /// `images: {repo: []}`: every tag.
    All,
    /// `images: {repo: [tag, sha256:…]}`: exactly these, not listed first (as skopeo does, a
    /// missing one fails when it is copied).
    Only(Vec<Reference>),
    Regex(regex::Regex),
    Semver(Constraint),
}

/// One repository of a config file and what to take from it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub repo: Reference,
    pub select: Select,
}

/// Checks every name, tag, expression and constraint of one registry's section, before
/// anything is contacted, and returns its entries (`images`, then `images-by-tag-regex`, then
/// `images-by-semver`, each by repository name). A section may have none (skopeo warns).
pub fn entries(path: &Path, host: &str, rc: &RegistryConfig) -> Result<Vec<Entry>, String> {
    let at = |key: &str, name: &str| format!("{}: {host}: {key}: {name}", path.display());
    let repo = |key: &str, name: &str| {
        let r = Reference::parse(&format!("{host}/{name}"))
            .map_err(|e| format!("{}: {e}", at(key, name)))?;
        if r.tag().is_some() || r.digest().is_some() {
            return Err(format!(
                "{}: name a repository, without a tag or digest",
                at(key, name)
            ));
        }
        Ok(r)
    };
    let mut out = Vec::new();
    for (name, tags) in &rc.images {
        let r = repo("images", name)?;
        let select = match tags.as_deref() {
            None | Some([]) => Select::All,
            Some(tags) => Select::Only(
                tags.iter()
                    .map(|t| {
                        let sep = if t.starts_with("sha256:") { '@' } else { ':' };
                        Reference::parse(&format!("{}{sep}{t}", r.repository()))
                            .map_err(|e| format!("{}: {e}", at("images", name)))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        out.push(Entry { repo: r, select });
    }
    for (name, re) in &rc.images_by_tag_regex {
        let r = repo("images-by-tag-regex", name)?;
        let re = regex::Regex::new(re).map_err(|e| {
            let e = e.to_string();
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{}: {e}", at("images-by-tag-regex", name))
        })?;
        out.push(Entry {
            repo: r,
            select: Select::Regex(re),
        });
    }
    for (name, c) in &rc.images_by_semver {
        let r = repo("images-by-semver", name)?;
        let c =
            Constraint::parse(c).map_err(|e| format!("{}: {e}", at("images-by-semver", name)))?;
        out.push(Entry {
            repo: r,
            select: Select::Semver(c),
        });
    }
    Ok(out)
}

/// A docker-style certificate directory: `*.crt` are CAs, `NAME.cert` + `NAME.key` a client
/// identity. Returns (CA file, client cert, client key), the first of each found.
pub fn cert_dir_files(dir: &Path) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let with_ext = |ext: &str| {
        files
            .iter()
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .cloned()
    };
    let cert = with_ext("cert");
    let key = cert
        .as_ref()
        .map(|c| c.with_extension("key"))
        .filter(|k| k.is_file());
    (with_ext("crt"), cert.filter(|_| key.is_some()), key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skopeos_format() {
        let yaml = r#"
registry.example.com:
  images:
    busybox: []
    redis:
      - "1.0"
      - "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  images-by-tag-regex:
    nginx: ^1\.13\.[12]-alpine-perl$
  images-by-semver:
    alpine: ">= 3.12.0"
  credentials:
    username: john
    password: this is a secret
  tls-verify: true
  cert-dir: /home/john/certs
quay.io:
  tls-verify: false
  images:
    coreos/etcd:
      - latest
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.yml");
        std::fs::write(&path, yaml).unwrap();
        let cfg = read(&path).unwrap();
        let r = &cfg["registry.example.com"];
        assert_eq!(r.images["busybox"], Some(vec![]));
        assert_eq!(r.images["redis"].as_ref().unwrap().len(), 2);
        assert_eq!(r.images_by_semver["alpine"], ">= 3.12.0");
        assert_eq!(r.credentials.as_ref().unwrap().username, "john");
        assert_eq!(cfg["quay.io"].tls_verify, Some(false));
        assert!(read(&dir.path().join("missing.yml")).is_err());
        assert!(r.unknown.is_empty());

        let entries = entries(&path, "registry.example.com", r).unwrap();
        let kinds: Vec<String> = entries
            .iter()
            .map(|e| match &e.select {
                Select::All => format!("{} all", e.repo),
                Select::Only(refs) => format!("{} {}", e.repo, refs.len()),
                Select::Regex(re) => format!("{} ~{}", e.repo, re.as_str()),
                Select::Semver(c) => format!("{} {c}", e.repo),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "registry.example.com/busybox all",
                "registry.example.com/redis 2",
                r"registry.example.com/nginx ~^1\.13\.[12]-alpine-perl$",
                "registry.example.com/alpine >= 3.12.0",
            ]
        );
        let Select::Only(refs) = &entries[1].select else {
            panic!()
        };
        assert_eq!(refs[0].tag(), Some("1.0"));
        assert!(refs[1].digest().is_some());
    }

    #[test]
    fn bad_entries_name_the_file_registry_and_repository() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.yml");
        for (yaml, mentions) in [
            (
                "h.example.com:\n  images-by-tag-regex:\n    app: \"(\"\n",
                "app",
            ),
            (
                "h.example.com:\n  images-by-semver:\n    app: \">>1\"\n",
                ">>1",
            ),
            ("h.example.com:\n  images:\n    Bad/App: []\n", "Bad/App"),
            (
                "h.example.com:\n  images:\n    app: [\"no tag\"]\n",
                "no tag",
            ),
        ] {
            std::fs::write(&path, yaml).unwrap();
            let cfg = read(&path).unwrap();
            let err = entries(&path, "h.example.com", &cfg["h.example.com"]).unwrap_err();
            assert!(
                err.contains("sync.yml") && err.contains("h.example.com") && err.contains(mentions),
                "{err}"
            );
        }
        for yaml in ["{}\n", "images: [\n", "h.example.com: 1\n"] {
            std::fs::write(&path, yaml).unwrap();
            let err = read(&path).unwrap_err();
            assert!(err.contains("sync.yml"), "{err}");
        }
        std::fs::write(&path, "h.example.com:\n  imagez: {}\n").unwrap();
        let cfg = read(&path).unwrap();
        assert!(cfg["h.example.com"].unknown.contains_key("imagez"));
    }
}
