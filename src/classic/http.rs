//! HTTP access to a classic chart repository: its index and its chart archives.
//!
//! Credentials go only to the repository's own origin (scheme, host and port), as Helm does,
//! unless `pass_credentials` says otherwise: an index may point chart URLs at any host.
//!
//! Requests go through the registry transport ([`crate::registry::transport`]), so a server
//! gets the same bounds as a registry: the connect and read timeouts, the stall rule for
//! bodies (less than 1 KiB per read-timeout window fails), and a cap on what is read into
//! memory (`--max-index-size` for index.yaml, [`crate::chart::artifact::MAX_PROV`] for a `.prov`).
//! And the same retry policy ([`crate::registry::retry`]): each download is one operation with
//! one retry budget; a chart archive cut off is resumed with `Range`
//! ([`crate::registry::resume`]).

use std::fs::File;
use std::future::Future;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};

use super::index::{Index, IndexEntry};
use crate::credentials::Credential;
use crate::digest::Digest;
use crate::registry::resume::{self, Answer, Partial, Validator};
use crate::registry::retry::{self, Attempts, Transient, gave_up_after, judged};
use crate::registry::transport::{self, Body, HttpFailure, Timeouts, show_duration, show_size};

/// The default of `--max-index-size`.
pub const DEFAULT_MAX_INDEX_SIZE: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{0}: not a valid repository URL")]
    BadUrl(String),
    /// No (complete) answer; `transient` when another try could help.
    #[error("{url}: {reason}")]
    Unreachable {
        url: String,
        reason: String,
        transient: bool,
    },
    #[error("{url}: the server answered {status}")]
    Status {
        url: String,
        status: u16,
        /// The wait its `Retry-After` asked for, if any.
        retry_after: Option<Duration>,
    },
    #[error(
        "{url}: the server asks to wait {} before trying again (Retry-After), more than the {} chartcache waits; try again later",
        show_duration(*asked),
        show_duration(*allowed)
    )]
    WaitTooLong {
        url: String,
        asked: Duration,
        allowed: Duration,
    },
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
    /// A transient failure that lasted through every try: not tried again by anyone.
    #[error("{last}{}", gave_up_after(*tries))]
    GaveUp { tries: u32, last: Box<RepoError> },
    #[error("chart {name} {version}: the index lists no URL")]
    NoUrl { name: String, version: String },
}

impl Transient for RepoError {
    fn is_transient(&self) -> bool {
        match self {
            RepoError::Unreachable { transient, .. } => *transient,
            RepoError::Status { status, .. } => retry::is_transient_status(*status),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RepoError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn gave_up(self, tries: u32) -> Self {
        RepoError::GaveUp {
            tries,
            last: Box::new(self),
        }
    }
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

    /// Runs the operation on `url`, one try per call of `op`, under one retry budget.
    async fn retried<T, F, Fut>(&self, url: &Url, op: F) -> Result<T, RepoError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RepoError>>,
    {
        let mut attempts = Attempts::new(self.options.timeouts.retry);
        retry::run(&mut attempts, op, |asked, allowed| RepoError::WaitTooLong {
            url: redact(url),
            asked,
            allowed,
        })
        .await
    }

    /// A GET of `url` with `extra` headers, sent once: the answer whatever its status.
    /// Credentials go along to the repository's origin (or anywhere with `pass_credentials`).
    async fn get_once(
        &self,
        url: &Url,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, RepoError> {
        let mut req = self.http.get(url.clone());
        if let Some(c) = &self.options.credential
            && (self.options.pass_credentials || self.same_origin(url))
        {
            req = req.basic_auth(&c.username, Some(c.secret.expose()));
        }
        for (k, v) in extra {
            req = req.header(k, v);
        }
        transport::send(req, &self.options.timeouts, None)
            .await
            .map_err(|e| Self::body_error(url, e, ""))
    }

    /// The error for an unsuccessful answer.
    fn status_error(url: &Url, resp: &reqwest::Response) -> RepoError {
        let url = redact(url);
        match resp.status().as_u16() {
            status @ (401 | 403) => RepoError::Unauthorized { url, status },
            status => RepoError::Status {
                url,
                status,
                retry_after: retry::retry_after(resp.headers(), std::time::SystemTime::now()),
            },
        }
    }

    /// One try of a GET of `url`, its body read whole (at most `limit` bytes).
    async fn read_once(
        &self,
        url: &Url,
        limit: u64,
        flag: &'static str,
    ) -> Result<Vec<u8>, RepoError> {
        let resp = self.get_once(url, &[]).await?;
        if !resp.status().is_success() {
            return Err(Self::status_error(url, &resp));
        }
        Body::new(resp, &self.options.timeouts)
            .read_to_vec(limit)
            .await
            .map_err(|e| Self::body_error(url, e, flag))
    }

    /// The failure of a request or body read from `url`, as an error naming it.
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
                transient: other.is_transient(),
            },
        }
    }

    /// Downloads and parses `index.yaml`, refusing one larger than `--max-index-size`.
    pub async fn index(&self) -> Result<Index, super::ClassicError> {
        Ok(self.index_with_bytes().await?.1)
    }

    /// [`Repo::index`], with the bytes it was parsed from (a server passes them through).
    pub async fn index_with_bytes(&self) -> Result<(Vec<u8>, Index), super::ClassicError> {
        let url = self
            .base
            .join("index.yaml")
            .map_err(|_| RepoError::BadUrl(self.base.to_string()))?;
        let limit = self.options.max_index_size;
        let body = self
            .retried(&url, || self.read_once(&url, limit, " (--max-index-size)"))
            .await?;
        let index = Index::parse(&body, &redact(&url))?;
        Ok((body, index))
    }

    /// Downloads `url` into `file` (emptied first), refusing more than `limit` bytes; returns
    /// the digest and size of what the file then holds. A body that stops early is asked for
    /// again from where it stopped (`Range`); a server that answers with the whole file again
    /// is written from byte 0.
    pub async fn download_to(
        &self,
        url: &Url,
        file: &mut File,
        limit: u64,
    ) -> Result<(Digest, u64), RepoError> {
        let write = |e: std::io::Error| RepoError::Write {
            url: redact(url),
            reason: e.to_string(),
        };
        let mut progress = Progress {
            partial: Partial::new(file).map_err(write)?,
            validator: Validator::default(),
            total: None,
            ranges: true,
        };
        let mut attempts = Attempts::new(self.options.timeouts.retry);
        loop {
            let result = self.download_try(url, limit, &mut progress).await;
            let settled = attempts
                .settle(judged(result), |asked, allowed| RepoError::WaitTooLong {
                    url: redact(url),
                    asked,
                    allowed,
                })
                .await;
            if let ControlFlow::Break(r) = settled {
                r?;
                break;
            }
        }
        progress.partial.finish().map_err(write)
    }

    /// One try of [`Repo::download_to`]: asks for what is missing, appends what comes.
    async fn download_try(
        &self,
        url: &Url,
        limit: u64,
        progress: &mut Progress<'_>,
    ) -> Result<(), RepoError> {
        let write = |e: std::io::Error| RepoError::Write {
            url: redact(url),
            reason: e.to_string(),
        };
        let cut = |reason: String| RepoError::Unreachable {
            url: redact(url),
            reason,
            transient: true,
        };
        if !progress.ranges && !progress.partial.is_empty() {
            progress.partial.restart().map_err(write)?;
        }
        let have = progress.partial.len();
        let extra = if have > 0 {
            progress.validator.range_headers(have)
        } else {
            Vec::new()
        };
        let resp = self.get_once(url, &extra).await?;
        match resume::answer(resp.status(), resp.headers(), have, progress.total) {
            Answer::Failed => return Err(Self::status_error(url, &resp)),
            Answer::BadRange(why) => {
                progress.ranges = false;
                progress.partial.restart().map_err(write)?;
                return Err(cut(format!(
                    "cannot resume: {why}; asking for the whole file"
                )));
            }
            Answer::Whole => {
                if have > 0 {
                    progress.partial.restart().map_err(write)?;
                }
                progress.validator = Validator::of(resp.headers());
                progress.total = resp.content_length();
            }
            Answer::Rest => {}
        }
        let mut body = Body::new(resp, &self.options.timeouts);
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|e| Self::body_error(url, e, ""))?
        {
            if progress.partial.len() + chunk.len() as u64 > limit {
                return Err(RepoError::TooLarge {
                    url: redact(url),
                    limit: show_size(limit),
                    flag: "",
                });
            }
            progress.partial.append(&chunk).map_err(write)?;
        }
        let received = progress.partial.len();
        match progress.total {
            Some(total) if received < total => Err(cut(format!(
                "the body ended after {received} of {total} bytes"
            ))),
            _ => Ok(()),
        }
    }

    /// A small optional file (a `.prov`): `None` when the server has none. A 403 counts as
    /// none too: object stores such as S3 answer it for a missing key when listing is denied.
    pub async fn download_optional(&self, url: &Url) -> Result<Option<Vec<u8>>, RepoError> {
        let limit = crate::chart::artifact::MAX_PROV;
        match self.retried(url, || self.read_once(url, limit, "")).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(RepoError::Status {
                status: 404 | 410, ..
            })
            | Err(RepoError::Unauthorized { status: 403, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Where a download stands between tries.
struct Progress<'f> {
    partial: Partial<'f>,
    validator: Validator,
    /// The whole file's size, when the server said.
    total: Option<u64>,
    /// False once a server's answer to a range could not be used.
    ranges: bool,
}

/// A URL without any user:password it may carry, for messages.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}
