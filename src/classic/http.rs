//! HTTP access to a classic chart repository: its index and its chart archives.
//!
//! Credentials go only to the repository's own origin (scheme, host and port), as Helm does,
//! unless `pass_credentials` says otherwise: an index may point chart URLs at any host.
//!
//! Requests go through the registry transport ([`crate::registry::transport`]), so a server
//! gets the same bounds as a registry: the connect and read timeouts, the stall rule for
//! bodies (less than 1 KiB per read-timeout window fails), and a cap on what is read into
//! memory (`--max-index-size` for index.yaml, [`crate::chart::artifact::MAX_PROV`] for a `.prov`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::index::{Index, IndexEntry};
use crate::credentials::Credential;
use crate::registry::transport::{self, Body, HttpFailure, Timeouts, show_size};

/// The default of `--max-index-size`.
pub const DEFAULT_MAX_INDEX_SIZE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}: not a valid repository URL")]
    BadUrl(String),
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: unauthorized (pass --username and --password-stdin)")]
    Unauthorized { url: String, status: u16 },
    #[error("{0}")]
    Config(String),
    #[error("{url}: {reason}")]
    Write { url: String, reason: String },
    #[error("{url}: larger than the limit of {limit}{flag}, refused")]
    TooLarge {
        url: String,
        limit: String,
        flag: &'static str,
    },
    #[error("chart {name} {version}: the index lists no URL")]
    NoUrl { name: String, version: String },
}

/// How to reach a repository.
#[derive(Debug, Clone)]
pub struct RepoOptions {
    pub credential: Option<Credential>,
    pub pass_credentials: bool,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub timeouts: Timeouts,
    /// index.yaml larger than this is refused.
    pub max_index_size: u64,
}

impl Default for RepoOptions {
    fn default() -> Self {
        RepoOptions {
            credential: None,
            pass_credentials: false,
            ca_file: None,
            insecure: false,
            timeouts: Timeouts::default(),
            max_index_size: DEFAULT_MAX_INDEX_SIZE,
        }
    }
}

/// A classic chart repository at one base URL.
pub struct Repo {
    base: Url,
    http: reqwest::Client,
    options: RepoOptions,
}

impl Repo {
    pub fn new(url: &str, options: RepoOptions) -> Result<Self, RepoError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut base = Url::parse(url).map_err(|_| RepoError::BadUrl(url.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(RepoError::BadUrl(url.to_string()));
        }
        // Relative chart URLs resolve under the repository path, as in Helm.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = transport::client(
            options.timeouts.connect,
            options.insecure,
            options.ca_file.as_deref(),
            None,
        )
        .map_err(|e| RepoError::Config(e.to_string()))?;
        Ok(Repo {
            base,
            http,
            options,
        })
    }

    pub fn url(&self) -> &Url {
        &self.base
    }

    /// Where an entry's chart is: `urls[0]`, resolved against the repository URL.
    pub fn chart_url(&self, entry: &IndexEntry) -> Result<Url, RepoError> {
        let first = entry.urls.first().ok_or_else(|| RepoError::NoUrl {
            name: entry.name.clone(),
            version: entry.version.clone(),
        })?;
        self.base
            .join(first)
            .map_err(|_| RepoError::BadUrl(first.clone()))
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    async fn get(&self, url: &Url) -> Result<reqwest::Response, RepoError> {
        let mut req = self.http.get(url.clone());
        if let Some(c) = &self.options.credential
            && (self.options.pass_credentials || self.same_origin(url))
        {
            req = req.basic_auth(&c.username, Some(c.secret.expose()));
        }
        let shown = redact(url);
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let attempt_req = req
                .try_clone()
                .ok_or_else(|| RepoError::Config("request cannot be retried".into()))?;
            let result = transport::send(attempt_req, &self.options.timeouts, None).await;
            let transient = match &result {
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(e) => e.is_transient(),
            };
            if transient && attempt < 4 {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            let resp = result.map_err(|e| RepoError::Unreachable {
                url: shown.clone(),
                reason: e.describe(),
            })?;
            return match resp.status().as_u16() {
                200..=299 => Ok(resp),
                status @ (401 | 403) => Err(RepoError::Unauthorized { url: shown, status }),
                status => Err(RepoError::Status { url: shown, status }),
            };
        }
    }

    /// The failure of a body read from `url`, as an error naming it.
    fn body_error(url: &Url, e: HttpFailure, flag: &'static str) -> RepoError {
        match e {
            HttpFailure::TooLarge(limit) => RepoError::TooLarge {
                url: redact(url),
                limit: show_size(limit),
                flag,
            },
            other => RepoError::Unreachable {
                url: redact(url),
                reason: other.describe(),
            },
        }
    }

    /// Downloads and parses `index.yaml`, refusing one larger than `--max-index-size`.
    pub async fn index(&self) -> Result<Index, super::ClassicError> {
        let url = self
            .base
            .join("index.yaml")
            .map_err(|_| RepoError::BadUrl(self.base.to_string()))?;
        let resp = self.get(&url).await?;
        let body = Body::new(resp, &self.options.timeouts)
            .read_to_vec(self.options.max_index_size)
            .await
            .map_err(|e| Self::body_error(&url, e, " (--max-index-size)"))?;
        Ok(Index::parse(&body, &redact(&url))?)
    }

    /// Streams `url` into `out`, returning the byte count.
    pub async fn download(&self, url: &Url, out: &mut impl Write) -> Result<u64, RepoError> {
        let resp = self.get(url).await?;
        let mut body = Body::new(resp, &self.options.timeouts);
        let mut n = 0u64;
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|e| Self::body_error(url, e, ""))?
        {
            out.write_all(&chunk).map_err(|e| RepoError::Write {
                url: redact(url),
                reason: e.to_string(),
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// A small optional file (a `.prov`): `None` when the server has none. A 403 counts as
    /// none too: object stores such as S3 answer it for a missing key when listing is denied.
    pub async fn download_optional(&self, url: &Url) -> Result<Option<Vec<u8>>, RepoError> {
        match self.get(url).await {
            Ok(resp) => Ok(Some(
                Body::new(resp, &self.options.timeouts)
                    .read_to_vec(crate::chart::artifact::MAX_PROV)
                    .await
                    .map_err(|e| Self::body_error(url, e, ""))?,
            )),
            Err(RepoError::Status {
                status: 404 | 410, ..
            })
            | Err(RepoError::Unauthorized { status: 403, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A URL without any user:password it may carry, for messages.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}
