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
//! - [`transport`]: the reqwest client (TLS roots, `--ca-file`, `--insecure`, the client
//!   certificate, the connect timeout), the scheme of loopback registries (HTTPS, falling back
//!   to plain HTTP only when the port does not speak TLS), and the read timeout and stall rule
//!   every request and body goes through;
//! - [`auth`]: Basic, and the Bearer token flow, with tokens cached per scope;
//! - [`paging`]: `Link` headers (and `last=`) across tag and catalog pages, bounded;
//! - [`error`]: errors from statuses and OCI error bodies, naming the host;
//! - this file: the operations, each retried with backoff on 429, 5xx and dropped connections
//!   (honouring a short `Retry-After`). One `GET /v2/` per command, in [`Registry::connect`];
//!   an open registry gets no credentials and no extra request.

pub mod auth;
mod error;
pub mod paging;
pub mod referrers;
pub mod transport;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};

pub use error::{MAX_ERROR_BODY, RegistryError, describe_reqwest};
pub use transport::{Timeouts, Transport};

use self::auth::Auth;
use self::paging::{MAX_PAGE_BYTES, PAGE_SIZE, Pager};
use self::transport::{Body, HttpFailure, Upload};
use crate::credentials::Credential;
use crate::digest::Digest;
use crate::oci::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

/// Docker's schema 2 manifest: not a chart, but `sync` copies whatever a repository holds.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list: asked for so a registry never hands one platform's manifest instead.
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

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
    http: reqwest::Client,
    timeouts: Timeouts,
    auth: Auth,
}

/// A request body for [`Registry::send`]: given at most once (an upload is not re-sent by
/// `send`; [`retry`] starts the whole upload over).
type MakeBody<'a> = &'a mut (dyn FnMut(&Upload) -> Option<reqwest::Body> + Send);

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
        let (scheme, ping) = if transport.plain_http {
            ("http", ping_retried(&http, &timeouts, "http", host).await?)
        } else if (transport::is_loopback(host) || transport.http_fallback) && !with_identity {
            transport::probe_scheme(&http, &timeouts, host).await?
        } else {
            (
                "https",
                ping_retried(&http, &timeouts, "https", host).await?,
            )
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
        Ok(Registry {
            host: host.to_string(),
            scheme,
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
        let text = format!("{}{path_and_query}", self.origin());
        Url::parse(&text).map_err(|_| RegistryError::Config(format!("{text}: not a valid URL")))
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && Url::parse(&self.origin()).is_ok_and(|o| {
                o.host_str() == url.host_str()
                    && o.port_or_known_default() == url.port_or_known_default()
            })
    }

    /// Verifies the credential against the registry, as `docker login` does: `GET /v2/` with
    /// Basic credentials, or with a token the realm issues for them.
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        let authorization = match self.auth.scheme() {
            auth::Scheme::Open => return Ok(()),
            auth::Scheme::Basic => match self.auth.credential() {
                Some(c) => auth::basic(c)?,
                None => {
                    return Err(RegistryError::Unauthorized {
                        host: self.host.clone(),
                    });
                }
            },
            auth::Scheme::Bearer { .. } => {
                let token = self.auth.token(&self.http, &self.timeouts, &[]).await?;
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    RegistryError::Unauthorized {
                        host: self.host.clone(),
                    }
                })?;
                v.set_sensitive(true);
                v
            }
        };
        let url = self.url("/v2/")?;
        let req = self
            .http
            .get(url)
            .header(AUTHORIZATION, authorization.clone());
        let resp = transport::send(req, &self.timeouts, None)
            .await
            .map_err(|e| e.into_registry(&self.host, "login"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.failure("login", resp).await)
        }
    }

    /// Sends a request about the repositories `scopes` name, authorized for them (a Bearer
    /// token is fetched again once if the registry answers 401), retried when `idempotent` on
    /// 429, 5xx (waiting a short `Retry-After`) and dropped connections. Any status comes
    /// back; transport failures and timeouts are errors.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        what: &str,
        method: Method,
        url: &Url,
        scopes: &[String],
        idempotent: bool,
        headers: &[(reqwest::header::HeaderName, HeaderValue)],
        mut body: Option<(u64, MakeBody<'_>)>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut scopes = scopes.to_vec();
        let mut delay = Duration::from_millis(250);
        let mut refreshed = false;
        let mut attempt = 0;
        // Credentials go to the registry's own origin only (an upload location elsewhere
        // gets none).
        let authorized = self.same_origin(url);
        loop {
            attempt += 1;
            let authorization = if authorized {
                self.auth
                    .header(&self.http, &self.timeouts, &scopes)
                    .await?
            } else {
                None
            };
            let mut req = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(v) = &authorization {
                req = req.header(AUTHORIZATION, v.clone());
            }
            let mut upload = None;
            if let Some((size, make)) = body.as_mut() {
                let up = Upload::new(*size);
                let b = make(&up).ok_or_else(|| RegistryError::Other {
                    host: self.host.clone(),
                    what: what.to_string(),
                    message: "the upload was refused and cannot be sent again".into(),
                })?;
                req = req.header(CONTENT_LENGTH, *size).body(b);
                upload = Some(up);
            }
            match transport::send(req, &self.timeouts, upload.as_ref()).await {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    if code == 401
                        && matches!(self.auth.scheme(), auth::Scheme::Bearer { .. })
                        && authorized
                        && !refreshed
                    {
                        refreshed = true;
                        self.auth.forget(&scopes).await;
                        // The registry may name the scope it wants.
                        if let Some(auth::Challenge::Bearer {
                            scope: Some(scope), ..
                        }) = resp
                            .headers()
                            .get(reqwest::header::WWW_AUTHENTICATE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(auth::parse_challenge)
                            && !scopes.contains(&scope)
                        {
                            scopes.push(scope);
                        }
                        continue;
                    }
                    if idempotent && (code == 429 || (500..=599).contains(&code)) && attempt < 4 {
                        let wait = retry_after(&resp).map_or(delay, |w| w.max(delay));
                        tokio::time::sleep(wait).await;
                        delay *= 2;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) if idempotent && e.is_transient() && attempt < 4 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e.into_registry(&self.host, what)),
            }
        }
    }

    /// A GET or HEAD, retried.
    async fn read(
        &self,
        what: &str,
        method: Method,
        url: &Url,
        scopes: &[String],
        accept: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let accept = HeaderValue::from_str(accept)
            .map_err(|_| RegistryError::Config(format!("bad Accept value {accept:?}")))?;
        self.send(what, method, url, scopes, true, &[(ACCEPT, accept)], None)
            .await
    }

    /// The error for an unsuccessful answer, with the registry's own words (the first
    /// [`MAX_ERROR_BODY`] bytes of its body, no more).
    async fn failure(&self, what: &str, resp: reqwest::Response) -> RegistryError {
        let code = resp.status().as_u16();
        let body = Body::new(resp, &self.timeouts)
            .read_prefix(MAX_ERROR_BODY)
            .await;
        RegistryError::from_status(&self.host, what, code, &body)
    }

    /// A successful answer's body, at most `limit` bytes.
    async fn body(
        &self,
        what: &str,
        resp: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        Body::new(resp, &self.timeouts)
            .read_to_vec(limit)
            .await
            .map_err(|e| e.into_registry(&self.host, what))
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

    /// The manifest `r` names, raw, with its digest (checked against `r`'s digest if it has
    /// one). At most [`MAX_MANIFEST_BYTES`].
    pub async fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, Digest), RegistryError> {
        let what = format!("manifest {r}");
        let resp = self
            .read(
                &what,
                Method::GET,
                &self.manifest_url(r)?,
                &Self::pull_scope(r),
                &MANIFEST_TYPES.join(", "),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        let bytes = self.body(&what, resp, MAX_MANIFEST_BYTES).await?;
        let actual = Digest::of(&bytes);
        if let Some(expected) = r.digest()
            && *expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: expected.clone(),
                actual,
            });
        }
        Ok((bytes, actual))
    }

    /// The manifest digest a tag points at (a HEAD request), if the tag exists.
    pub async fn manifest_digest(&self, r: &Reference) -> Result<Option<Digest>, RegistryError> {
        let what = format!("manifest {r}");
        let resp = self
            .read(
                &what,
                Method::HEAD,
                &self.manifest_url(r)?,
                &Self::pull_scope(r),
                &MANIFEST_TYPES.join(", "),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v).ok());
        match header {
            Some(d) => Ok(Some(d)),
            // Without the header, the digest is that of the bytes.
            None => self.manifest(r).await.map(|(_, d)| Some(d)),
        }
    }

    /// Whether the repository holds the blob (a HEAD request).
    pub async fn blob_exists(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let resp = self
            .read(
                &what,
                Method::HEAD,
                &self.blob_url(repo, digest)?,
                &Self::pull_scope(repo),
                "*/*",
            )
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.failure(&what, resp).await),
        }
    }

    /// Asks the registry to mount a blob from another repository; false if it would not (an
    /// upload session it opened instead is cancelled).
    pub async fn mount_blob(&self, repo: &Reference, from: &Reference, digest: &Digest) -> bool {
        let what = format!("mount of blob {digest}");
        let Ok(url) = self.url(&format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            repo.path(),
            from.path()
        )) else {
            return false;
        };
        let mut scopes = Self::push_scope(repo);
        scopes.extend(Self::pull_scope(from));
        let Ok(resp) = self
            .send(&what, Method::POST, &url, &scopes, false, &[], None)
            .await
        else {
            return false;
        };
        match resp.status().as_u16() {
            201 => true,
            202 => {
                if let Ok(location) = self.location(&url, &resp) {
                    let _ = self
                        .send(&what, Method::DELETE, &location, &scopes, false, &[], None)
                        .await;
                }
                false
            }
            _ => false,
        }
    }

    /// Where an answer's `Location` points, resolved against the request URL.
    fn location(&self, request: &Url, resp: &reqwest::Response) -> Result<Url, RegistryError> {
        let bad = |message: String| RegistryError::Other {
            host: self.host.clone(),
            what: "upload".into(),
            message,
        };
        let text = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("the registry gave no upload location".into()))?;
        let url = request
            .join(text)
            .map_err(|_| bad(format!("{text:?}: not an upload location")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("{text:?}: not an upload location")));
        }
        Ok(url)
    }

    /// One monolithic upload: `POST …/blobs/uploads/` → 202 with a `Location`, then `PUT` of
    /// the whole body there with `digest=`; 201 expected.
    async fn upload(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        make: MakeBody<'_>,
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest}");
        let scopes = Self::push_scope(repo);
        let start = self.url(&format!("/v2/{}/blobs/uploads/", repo.path()))?;
        let resp = self
            .send(&what, Method::POST, &start, &scopes, false, &[], None)
            .await?;
        if resp.status().as_u16() != 202 && !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        let mut location = self.location(&start, &resp)?;
        drop(resp);
        location
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let octets = HeaderValue::from_static("application/octet-stream");
        let resp = self
            .send(
                &what,
                Method::PUT,
                &location,
                &scopes,
                false,
                &[(CONTENT_TYPE, octets)],
                Some((size, make)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        Ok(())
    }

    /// Uploads a stored blob, streamed from its file.
    pub async fn push_blob_file(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        retry(|| async {
            let file = std::fs::File::open(path).map_err(|e| {
                RegistryError::Local(format!("upload of blob {digest}: {}: {e}", path.display()))
            })?;
            let mut file = Some(file);
            let mut make = |up: &Upload| {
                file.take()
                    .map(|f| reqwest::Body::wrap_stream(transport::file_stream(f, up)))
            };
            self.upload(repo, digest, size, &mut make).await
        })
        .await
    }

    /// Uploads a small blob from memory.
    pub async fn push_blob_bytes(
        &self,
        repo: &Reference,
        digest: &Digest,
        data: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let data = bytes::Bytes::from(data);
        retry(|| async {
            let mut make = |up: &Upload| {
                up.sent
                    .store(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Some(reqwest::Body::from(data.clone()))
            };
            self.upload(repo, digest, data.len() as u64, &mut make)
                .await
        })
        .await
    }

    /// The answer to a blob GET (redirects followed; reqwest sends no `Authorization` to
    /// another origin).
    async fn get_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let resp = self
            .read(
                what,
                Method::GET,
                &self.blob_url(repo, &desc.digest)?,
                &Self::pull_scope(repo),
                "*/*",
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(what, resp).await);
        }
        Ok(resp)
    }

    /// Streams a blob into `out`, returning how many bytes came. The caller checks the digest.
    pub async fn pull_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        out: &mut impl std::io::Write,
    ) -> Result<u64, RegistryError> {
        let what = format!("download of blob {}", desc.digest);
        let resp = self.get_blob(repo, desc, &what).await?;
        let mut body = Body::new(resp, &self.timeouts);
        let mut received: u64 = 0;
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|e| e.into_registry(&self.host, &what))?
        {
            received += chunk.len() as u64;
            if received > desc.size {
                return Err(RegistryError::SizeMismatch {
                    what,
                    expected: desc.size,
                    actual: received,
                });
            }
            out.write_all(&chunk)
                .map_err(|e| RegistryError::Local(format!("{what}: {e}")))?;
        }
        if received != desc.size {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: desc.size,
                actual: received,
            });
        }
        Ok(received)
    }

    /// Copies a blob from another registry, streaming it straight through (the destination
    /// checks the digest when the upload completes; more bytes than the descriptor says are
    /// refused). A failed attempt starts over.
    pub async fn copy_blob_from(
        &self,
        source: &Registry,
        source_repo: &Reference,
        repo: &Reference,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        let download = format!("download of blob {}", desc.digest);
        retry(|| async {
            let resp = source.get_blob(source_repo, desc, &download).await?;
            let failure = Arc::new(std::sync::Mutex::new(None::<HttpFailure>));
            let stream =
                Body::new(resp, &source.timeouts).into_stream(desc.size, Arc::clone(&failure));
            let mut stream = Some(stream);
            let mut make = |up: &Upload| {
                stream
                    .take()
                    .map(|s| reqwest::Body::wrap_stream(transport::counted(s, up)))
            };
            let result = self.upload(repo, &desc.digest, desc.size, &mut make).await;
            let source_failure = failure.lock().ok().and_then(|mut f| f.take());
            match (result, source_failure) {
                (Err(_), Some(f)) => Err(f.into_registry(&source.host, &download)),
                (result, _) => result,
            }
        })
        .await
    }

    /// Uploads a manifest under `r`'s tag (or digest), byte for byte, with `media_type` as its
    /// `Content-Type`; returns its digest.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let what = format!("upload of manifest {r}");
        let content_type = HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::Config(format!("bad media type {media_type:?}")))?;
        let url = self.manifest_url(r)?;
        let data = bytes::Bytes::copy_from_slice(bytes);
        let mut make = |up: &Upload| {
            up.sent
                .store(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Some(reqwest::Body::from(data.clone()))
        };
        let resp = self
            .send(
                &what,
                Method::PUT,
                &url,
                &Self::push_scope(r),
                true,
                &[(CONTENT_TYPE, content_type)],
                Some((bytes.len() as u64, &mut make)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        Ok(Digest::of(bytes))
    }

    /// [`Registry::push_manifest`], mending a refusal for an unknown blob
    /// (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`): distribution can lose a repository's link to
    /// a blob that two writers commit at the same moment. Each round checks every blob of
    /// `blobs` with HEAD and sends the missing ones again with `resend` (all of them when HEAD
    /// finds none missing), then tries the manifest again; up to [`BLOB_UNKNOWN_ROUNDS`]
    /// rounds.
    pub async fn push_manifest_with_blobs<'d, F, Fut>(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
        blobs: &[&'d Descriptor],
        resend: F,
    ) -> Result<Digest, RegistryError>
    where
        F: Fn(&'d Descriptor) -> Fut,
        Fut: Future<Output = Result<(), RegistryError>>,
    {
        let repo = r.without_object();
        let mut round = 0;
        loop {
            match self.push_manifest(r, bytes, media_type).await {
                Err(RegistryError::BlobUnknown { .. }) if round < BLOB_UNKNOWN_ROUNDS => {
                    round += 1;
                    let mut missing = Vec::new();
                    for d in blobs {
                        if !self.blob_exists(&repo, &d.digest).await? {
                            missing.push(*d);
                        }
                    }
                    if missing.is_empty() {
                        missing = blobs.to_vec();
                    }
                    for d in missing {
                        resend(d).await?;
                    }
                }
                other => return other,
            }
        }
    }

    /// Every tag of a repository, following the registry's `Link` header from page to page
    /// (see [`paging`] for the bounds).
    pub async fn tags(&self, repo: &Reference) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tags of {}", repo.without_object());
        let first = format!(
            "{}/v2/{}/tags/list?n={PAGE_SIZE}",
            self.origin(),
            repo.path()
        );
        self.pages(&what, &first, &Self::pull_scope(repo), |body| {
            serde_json::from_slice::<Page>(body)
                .map(|p| p.tags.unwrap_or_default())
                .map_err(|e| format!("not a tag list: {e}"))
        })
        .await
    }

    /// Every repository the registry lists in `/v2/_catalog`, following pages. Registries that
    /// keep their catalog private (most token registries) answer with an error.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let first = format!("{}/v2/_catalog?n={PAGE_SIZE}", self.origin());
        self.pages(
            "catalog",
            &first,
            &["registry:catalog:*".to_string()],
            |body| {
                serde_json::from_slice::<Page>(body)
                    .map(|p| p.repositories.unwrap_or_default())
                    .map_err(|e| format!("not a catalog: {e}"))
            },
        )
        .await
    }

    /// The names of every page from `first` on.
    async fn pages(
        &self,
        what: &str,
        first: &str,
        scopes: &[String],
        parse: impl Fn(&[u8]) -> Result<Vec<String>, String>,
    ) -> Result<Vec<String>, RegistryError> {
        let other = |message: String| RegistryError::Other {
            host: self.host.clone(),
            what: what.to_string(),
            message,
        };
        let mut pager = Pager::new(&self.origin(), first);
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            pager.fetching(&url).map_err(|e| other(e.describe()))?;
            let parsed = Url::parse(&url).map_err(|_| other(format!("{url}: not a URL")))?;
            let resp = self
                .read(what, Method::GET, &parsed, scopes, "application/json")
                .await?;
            if !resp.status().is_success() {
                return Err(self.failure(what, resp).await);
            }
            let link = resp
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(paging::next_link);
            let body = self.body(what, resp, MAX_PAGE_BYTES).await?;
            let names = parse(&body).map_err(other)?;
            next = pager.page(names, link).map_err(|e| other(e.describe()))?;
        }
        Ok(pager.items)
    }
}

/// A `Retry-After` of a few seconds (longer ones are not waited for here).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs <= 10).then(|| Duration::from_secs(secs))
}

/// The ping, retried on dropped connections and 5xx like other requests.
async fn ping_retried(
    http: &reqwest::Client,
    timeouts: &Timeouts,
    scheme: &str,
    host: &str,
) -> Result<reqwest::Response, RegistryError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transport::ping(http, timeouts, scheme, host).await {
            Ok(r)
                if (r.status().as_u16() == 429 || r.status().is_server_error()) && attempt < 4 => {}
            Ok(r) => return Ok(r),
            Err(e) if e.is_transient() && attempt < 4 => {}
            Err(e) => return Err(e.into_registry(host, "ping")),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// Runs `op` up to 4 times, backing off 0.25 s, 0.5 s, 1 s, while it fails in a way a retry can
/// mend (429, 5xx, dropped connections).
pub async fn retry<T, F, Fut>(mut op: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut delay = Duration::from_millis(250);
    for _ in 0..3 {
        match op().await {
            Err(e) if e.is_transient() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    op().await
}
