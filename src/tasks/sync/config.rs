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
    serde_norway::from_slice(&text)
        .map_err(|e| format!("{}: invalid sync config: {e}", path.display()))
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
    }
}
