//! HTTP access to a classic chart repository: its index and its chart archives.
//!
//! Credentials go only to the repository's own origin (scheme, host and port), as Helm does,
//! unless `pass_credentials` says otherwise: an index may point chart URLs at any host.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;

use super::index::{Index, IndexEntry};
use crate::credentials::Credential;

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
    #[error("chart {name} {version}: the index lists no URL")]
    NoUrl { name: String, version: String },
}

/// How to reach a repository.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    pub credential: Option<Credential>,
    pub pass_credentials: bool,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
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
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("chartcache/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .tls_danger_accept_invalid_certs(options.insecure);
        if let Some(ca) = &options.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| RepoError::Config(format!("{}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RepoError::Config(format!(
                    "{}: not a PEM certificate bundle: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(RepoError::Config(format!(
                    "{}: no PEM certificate in this CA file",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| RepoError::Config(format!("cannot set up HTTP client: {e}")))?;
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
            let result = req
                .try_clone()
                .ok_or_else(|| RepoError::Config("request cannot be retried".into()))?
                .send()
                .await;
            let transient = match &result {
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if transient && attempt < 4 {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            let resp = result.map_err(|e| RepoError::Unreachable {
                url: shown.clone(),
                reason: crate::registry::describe_reqwest(&e),
            })?;
            return match resp.status().as_u16() {
                200..=299 => Ok(resp),
                status @ (401 | 403) => Err(RepoError::Unauthorized { url: shown, status }),
                status => Err(RepoError::Status { url: shown, status }),
            };
        }
    }

    /// Downloads and parses `index.yaml`.
    pub async fn index(&self) -> Result<Index, super::ClassicError> {
        let url = self
            .base
            .join("index.yaml")
            .map_err(|_| RepoError::BadUrl(self.base.to_string()))?;
        let body = self
            .get(&url)
            .await?
            .bytes()
            .await
            .map_err(|e| RepoError::Unreachable {
                url: redact(&url),
                reason: e.to_string(),
            })?;
        Ok(Index::parse(&body, &redact(&url))?)
    }

    /// Streams `url` into `out`, returning the byte count.
    pub async fn download(&self, url: &Url, out: &mut impl Write) -> Result<u64, RepoError> {
        let resp = self.get(url).await?;
        let mut stream = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RepoError::Unreachable {
                url: redact(url),
                reason: e.to_string(),
            })?;
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
                resp.bytes()
                    .await
                    .map_err(|e| RepoError::Unreachable {
                        url: redact(url),
                        reason: e.to_string(),
                    })?
                    .to_vec(),
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
