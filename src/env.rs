//! Every environment variable chartcache reads, and the places derived from them.

use std::path::PathBuf;

/// Helm 2 / experimental-cache home; the cache is `$HELM_HOME/registry`.
pub const HELM_HOME: &str = "HELM_HOME";
/// Credentials file used by `helm registry login`.
pub const HELM_REGISTRY_CONFIG: &str = "HELM_REGISTRY_CONFIG";
/// Helm's config directory (`registry/config.json` lives below it).
pub const HELM_CONFIG_HOME: &str = "HELM_CONFIG_HOME";
/// XDG base for Helm's config directory.
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
/// Docker's config directory (credential fallback).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// `--connect-timeout`: how long to wait for a TCP connection and TLS handshake (`30s`).
pub const CHARTCACHE_CONNECT_TIMEOUT: &str = "CHARTCACHE_CONNECT_TIMEOUT";
/// `--read-timeout`: how long to wait for an answer, and for a body to move 1 KiB (`60s`).
pub const CHARTCACHE_READ_TIMEOUT: &str = "CHARTCACHE_READ_TIMEOUT";
/// `--retries`: how many times to try a request a retry can mend, the first included (`4`).
pub const CHARTCACHE_RETRIES: &str = "CHARTCACHE_RETRIES";
/// `--max-index-size`: the largest classic repository index.yaml read (`256MiB`).
pub const CHARTCACHE_MAX_INDEX_SIZE: &str = "CHARTCACHE_MAX_INDEX_SIZE";
/// Reproducible builds: fixes archive mtimes and the `created` annotation.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// GnuPG's home: the default `--keyring` is `$GNUPGHOME/pubring.gpg` (else `~/.gnupg`).
pub const GNUPGHOME: &str = "GNUPGHOME";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_dir() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("."))
}

/// The cache root: `--home DIR` (clap also reads `$HELM_HOME` into it) or `~/.helm`, then
/// `registry`.
pub fn cache_root(home: Option<PathBuf>) -> PathBuf {
    home.unwrap_or_else(|| home_dir().join(".helm"))
        .join("registry")
}

/// `SOURCE_DATE_EPOCH`, if set; an unparsable value is an error naming it.
pub fn source_date_epoch() -> Result<Option<u64>, String> {
    match var(SOURCE_DATE_EPOCH) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            format!("{SOURCE_DATE_EPOCH}={v:?} is not a number of seconds since 1970")
        }),
    }
}

/// Helm's default `--keyring`: `$GNUPGHOME/pubring.gpg`, else `~/.gnupg/pubring.gpg`; where
/// that is missing and GnuPG 2.1+'s `pubring.kbx` is there, that one.
pub fn default_keyring() -> PathBuf {
    let dir = var(GNUPGHOME)
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".gnupg"));
    let gpg = dir.join("pubring.gpg");
    let kbx = dir.join("pubring.kbx");
    if !gpg.exists() && kbx.exists() {
        kbx
    } else {
        gpg
    }
}
