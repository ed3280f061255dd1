//! Talking to OCI registries, over our own HTTP client (reqwest with rustls).
//!
//! We used to go through the `oci-client` crate and went around it more and more; now nothing
//! of it is left, because it:
//! - cannot present a TLS client certificate (we had to run a plain-HTTP forward proxy on
//!   127.0.0.1 for it, which any local user could use as the certificate's identity);
//! - gives no control of timeouts or of how much of an answer is read: an untrusted registry
//!   could hold a command forever (no answer, a body trickling in) or fill the memory (a huge
//!   manifest, token or error body);
//! - reports one failure several ways, so errors had to be classified from its Debug text;
//! - sends a `GET /v2/` before every request once credentials are involved.
//!
//! The parts, by concern:
//! - [`transport`]: the reqwest client (one per TLS setting, shared by every registry and
//!   repository of a command), the scheme of loopback registries (HTTPS, falling back to plain
//!   HTTP only when the port does not speak TLS), and the read timeout and stall rule every
//!   request and body goes through;
//! - [`tls`]: the rustls configuration, with the system's root certificates read once, when a
//!   certificate is first verified;
//! - [`retry`]: the one retry policy (which failures, how many tries, how long between them,
//!   `Retry-After`), one budget per operation;
//! - [`request`]: one authorized request, and the retry loop of an operation;
//! - [`auth`]: Basic, and the Bearer token flow, with tokens cached per scope;
//! - [`paging`]: `Link` headers (and `last=`) across tag and catalog pages, bounded;
//! - [`error`]: errors from statuses and OCI error bodies, naming the host;
//! - [`resume`]: resuming a download cut off, with `Range`;
//! - the operations: [`manifests`], [`download`] (blobs into a file, resumed), [`upload`]
//!   (blobs, started over as a whole), [`listing`] (tags, catalog).
//!
//! One `GET /v2/` per command and host, in [`Registry::connect`]; an open registry gets no
//! credentials and no extra request.

pub mod auth;
mod download;
mod error;
mod listing;
mod manifests;
pub mod paging;
pub mod referrers;
mod request;
pub mod resume;
pub mod retry;
pub mod tls;
pub mod transport;
mod upload;

use std::ops::ControlFlow;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue};

pub use error::{MAX_ERROR_BODY, RegistryError, describe_reqwest};
pub use retry::RetryPolicy;
pub use transport::{Timeouts, Transport};

use self::auth::Auth;
use self::retry::Attempts;
use crate::credentials::Credential;
use crate::digest::Digest;
use crate::oci::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

pub use crate::oci::{
    DOCKER_LIST_MEDIA_TYPE as DOCKER_MANIFEST_LIST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE,
};

/// The manifest types asked for: every type a copy can carry.
const MANIFEST_TYPES: [&str; 4] = [
    MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    DOCKER_MANIFEST_LIST_MEDIA_TYPE,
];

/// Manifests larger than this are refused rather than held in memory (containerd's limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Rounds of re-sending blobs a manifest upload was refused for (see
/// [`Registry::push_manifest_with_blobs`]).
const BLOB_UNKNOWN_ROUNDS: usize = 3;

/// One registry host, with the credential to use there.
pub struct Registry {
    host: String,
    scheme: &'static str,
    /// `scheme://host/`, parsed once.
    base: Url,
    http: reqwest::Client,
    timeouts: Timeouts,
    auth: Auth,
}

impl Registry {
    /// Connects to `host`: sends the command's one `GET /v2/`, which picks the scheme of a
    /// loopback host and tells whether and how the registry wants credentials.
    pub async fn connect(
        host: &str,
        transport: &Transport,
        credential: Option<Credential>,
    ) -> Result<Self, RegistryError> {
        let (http, with_identity) = transport::registry_client(transport)?;
        let timeouts = transport.timeouts;
        let probe = !transport.plain_http
            && (transport::is_loopback(host) || transport.http_fallback)
            && !with_identity;
        let mut attempts = Attempts::new(timeouts.retry);
        let (scheme, ping) = loop {
            let outcome = if transport.plain_http {
                transport::ping_once(&http, &timeouts, "http", host).await
            } else if probe {
                transport::probe_scheme(&http, &timeouts, host).await
            } else {
                transport::ping_once(&http, &timeouts, "https", host).await
            };
            let settled = attempts
                .settle(outcome, |asked, allowed| RegistryError::WaitTooLong {
                    host: host.to_string(),
                    what: "ping".into(),
                    asked,
                    allowed,
                })
                .await;
            if let ControlFlow::Break(answer) = settled {
                break answer?;
            }
        };
        let challenge = ping
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| auth::parse_challenge(v).is_some())
            .map(str::to_string);
        let auth = Auth::new(
            host,
            scheme,
            credential,
            ping.status().as_u16(),
            challenge.as_deref(),
        )?;
        let origin = format!("{scheme}://{host}/");
        let base = Url::parse(&origin)
            .map_err(|_| RegistryError::Config(format!("{origin}: not a valid URL")))?;
        Ok(Registry {
            host: host.to_string(),
            scheme,
            base,
            http,
            timeouts,
            auth,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    fn url(&self, path_and_query: &str) -> Result<Url, RegistryError> {
        self.base.join(path_and_query).map_err(|_| {
            RegistryError::Config(format!(
                "{}{path_and_query}: not a valid URL",
                self.origin()
            ))
        })
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && self.base.host_str() == url.host_str()
            && self.base.port_or_known_default() == url.port_or_known_default()
    }

    /// Verifies the credential against the registry, as `docker login` does: `GET /v2/` with
    /// Basic credentials, or with a token the realm issues for them.
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        if matches!(self.auth.scheme(), auth::Scheme::Open) {
            return Ok(());
        }
        self.retried("login", move || self.login_once()).await
    }

    /// One try of [`Registry::check_login`].
    async fn login_once(&self) -> Result<(), RegistryError> {
        let unauthorized = || RegistryError::Unauthorized {
            host: self.host.clone(),
        };
        let authorization = match self.auth.scheme() {
            auth::Scheme::Open => return Ok(()),
            auth::Scheme::Basic => match self.auth.credential() {
                Some(c) => auth::basic(c)?,
                None => return Err(unauthorized()),
            },
            auth::Scheme::Bearer { .. } => {
                let token = self.auth.token(&self.http, &self.timeouts, &[]).await?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| unauthorized())?;
                v.set_sensitive(true);
                v
            }
        };
        let url = self.url("/v2/")?;
        let req = self.http.get(url).header(AUTHORIZATION, authorization);
        let resp = transport::send(req, &self.timeouts, None)
            .await
            .map_err(|e| e.into_registry(&self.host, "login"))?;
        self.success("login", resp).await.map(drop)
    }

    fn pull_scope(repo: &Reference) -> Vec<String> {
        vec![format!("repository:{}:pull", repo.path())]
    }

    fn push_scope(repo: &Reference) -> Vec<String> {
        vec![format!("repository:{}:pull,push", repo.path())]
    }

    fn manifest_url(&self, r: &Reference) -> Result<Url, RegistryError> {
        let object = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        self.url(&format!("/v2/{}/manifests/{object}", r.path()))
    }

    fn blob_url(&self, repo: &Reference, digest: &Digest) -> Result<Url, RegistryError> {
        self.url(&format!("/v2/{}/blobs/{digest}", repo.path()))
    }
}
