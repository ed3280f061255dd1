//! Talking to OCI registries.
//!
//! The protocol itself (manifests, blobs, uploads, mounts, tag pages, the Basic and Bearer token
//! flows) is `oci-client`'s. This module extends around it where it falls short:
//!
//! - transport choice: HTTPS, `--plain-http`, and Docker's rule that a loopback registry falls
//!   back to plain HTTP only when it does not speak TLS (probed once per command);
//! - login checks: `oci-client` accepts any Basic credentials without asking the registry, so
//!   [`Registry::check_login`] sends `GET /v2/` itself;
//! - retries with backoff on 429, 5xx and dropped connections ([`retry`]);
//! - tag listing that follows `Link` pagination (`oci-client` does not expose the header),
//!   copes with registries that ignore `n`, and ends on a page that brings nothing new;
//! - errors that name the host and say what to do ([`RegistryError`]).
//!
//! - TLS client certificates, which `oci-client` cannot present ([`client_cert`]).

mod client_cert;
mod error;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use tokio::io::AsyncReadExt;

pub use error::{RegistryError, describe_reqwest};

use crate::credentials::Credential;
use crate::digest::Digest;
use crate::oci::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

/// How to reach a registry: the TLS flags every registry command takes.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    pub plain_http: bool,
    pub insecure: bool,
    /// Like loopback hosts: use HTTPS, falling back to HTTP when the server does not speak
    /// TLS (skopeo's `tls-verify: false`, with `insecure`).
    pub http_fallback: bool,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// One registry host, with the credential to use there.
pub struct Registry {
    host: String,
    scheme: &'static str,
    client: Client,
    http: reqwest::Client,
    auth: RegistryAuth,
    /// The registry answered `GET /v2/` without asking for credentials. Reads then go
    /// straight to it ([`Registry::send_direct`]): once `oci-client` has been handed any auth
    /// (even anonymous) for a registry that issues no tokens, it re-sends `GET /v2/` before
    /// every later request, which doubles the requests of a `repo migrate` or a `chart pull`.
    open: bool,
    /// Carries `oci-client`'s requests when a client certificate is in use.
    _cert_proxy: Option<client_cert::CertProxy>,
}

/// Docker's schema 2 manifest: not a chart, but `sync` copies whatever a repository holds.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

const USER_AGENT: &str = concat!("chartcache/", env!("CARGO_PKG_VERSION"));

/// The crypto provider must be installed once before any TLS client exists.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    /// Connects to `host` (no request is made unless the loopback rule needs a probe).
    pub async fn connect(
        host: &str,
        transport: &Transport,
        credential: Option<Credential>,
    ) -> Result<Self, RegistryError> {
        install_crypto_provider();
        let identity = match (&transport.cert_file, &transport.key_file) {
            (Some(cert), Some(key)) => Some(read_identity(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(RegistryError::Config(
                    "--cert-file and --key-file go together".into(),
                ));
            }
        };
        if identity.is_some() && transport.plain_http {
            return Err(RegistryError::Config(
                "a client certificate needs TLS; drop --plain-http".into(),
            ));
        }
        let ca = match &transport.ca_file {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        let mut http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(15))
            .tls_danger_accept_invalid_certs(transport.insecure);
        if let Some(pem) = &ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                RegistryError::Config(format!(
                    "{}: not a PEM certificate bundle: {e}",
                    transport
                        .ca_file
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                ))
            })?;
            if certs.is_empty() {
                return Err(RegistryError::Config(format!(
                    "{}: no PEM certificate in this CA file",
                    transport
                        .ca_file
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                )));
            }
            http = http.tls_certs_merge(certs);
        }
        let with_identity = identity.is_some();
        if let Some(id) = identity {
            http = http.identity(id);
        }
        let http = http.build().map_err(|e| {
            RegistryError::Config(format!(
                "cannot set up HTTP client: {}",
                error::describe_reqwest(&e)
            ))
        })?;

        // One `GET /v2/` per command: it picks the scheme for loopback hosts and tells whether
        // the registry wants credentials at all.
        let (scheme, ping) = if transport.plain_http {
            ("http", ping(&http, "http", host).await)
        } else if (is_loopback(host) || transport.http_fallback) && !with_identity {
            probe_scheme(&http, host).await?
        } else {
            ("https", ping(&http, "https", host).await)
        };
        let cert_proxy = if with_identity {
            let proxy = client_cert::CertProxy::start(http.clone(), host.to_string())
                .await
                .map_err(|e| {
                    RegistryError::Config(format!("cannot start the client-certificate proxy: {e}"))
                })?;
            Some(proxy)
        } else {
            None
        };
        let config = ClientConfig {
            protocol: if scheme == "http" || cert_proxy.is_some() {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            http_proxy: cert_proxy.as_ref().map(client_cert::CertProxy::url),
            accept_invalid_certificates: transport.insecure,
            extra_root_certificates: ca
                .map(|data| {
                    vec![Certificate {
                        encoding: CertificateEncoding::Pem,
                        data,
                    }]
                })
                .unwrap_or_default(),
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(15)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: USER_AGENT,
            platform_resolver: None,
            ..Default::default()
        };
        let client = Client::try_from(config)
            .map_err(|e| RegistryError::Config(format!("cannot set up registry client: {e}")))?;
        let auth = match credential {
            Some(c) => RegistryAuth::Basic(c.username, c.secret.expose().to_string()),
            None => RegistryAuth::Anonymous,
        };
        // `oci-client` sends its own `GET /v2/` before every request of a client holding
        // credentials; a registry that answered our ping without asking for any needs none.
        let open = matches!(ping, Ok(status) if status.is_success());
        if !open {
            client.store_auth_if_needed(host, &auth).await;
        }
        Ok(Registry {
            host: host.to_string(),
            scheme,
            client,
            http,
            auth,
            open,
            _cert_proxy: cert_proxy,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn oci_ref(&self, r: &Reference) -> oci_client::Reference {
        match (r.digest(), r.tag()) {
            (Some(d), _) => oci_client::Reference::with_digest(
                self.host.clone(),
                r.path().to_string(),
                d.to_string(),
            ),
            (None, Some(t)) => oci_client::Reference::with_tag(
                self.host.clone(),
                r.path().to_string(),
                t.to_string(),
            ),
            (None, None) => oci_client::Reference::with_tag(
                self.host.clone(),
                r.path().to_string(),
                "latest".into(),
            ),
        }
    }

    fn err(&self, what: &str, e: oci_client::errors::OciDistributionError) -> RegistryError {
        RegistryError::from_oci(&self.host, what, e)
    }

    /// Verifies the credential against the registry, as `docker login` does.
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        let probe = oci_client::Reference::with_tag(
            self.host.clone(),
            "chartcache/login-check".into(),
            "latest".into(),
        );
        // A Bearer registry checks the credential when it issues the token.
        let token = retry(|| {
            self.client
                .auth(&probe, &self.auth, RegistryOperation::Pull)
        })
        .await
        .map_err(|e| self.err("login", e))?;
        let url = format!("{}://{}/v2/", self.scheme, self.host);
        let mut req = self.http.get(&url);
        req = match (&token, &self.auth) {
            (Some(t), _) => req.bearer_auth(t),
            (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            _ => req,
        };
        let resp = req.send().await.map_err(|e| RegistryError::Unreachable {
            host: self.host.clone(),
            reason: error::describe_reqwest(&e),
        })?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(RegistryError::Unauthorized {
                host: self.host.clone(),
            }),
            code => Err(RegistryError::Status {
                host: self.host.clone(),
                what: "login".into(),
                code,
                message: resp.text().await.unwrap_or_default(),
            }),
        }
    }

    /// The manifest `r` names, raw, with its digest (checked against `r`'s digest if it has one).
    pub async fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, Digest), RegistryError> {
        let accepted = [
            MANIFEST_MEDIA_TYPE,
            INDEX_MEDIA_TYPE,
            DOCKER_MANIFEST_MEDIA_TYPE,
        ];
        let what = format!("manifest {r}");
        let bytes = if self.open {
            let url = self.manifest_url(r)?;
            let resp = self
                .send_direct(
                    reqwest::Method::GET,
                    &url,
                    &accepted.join(", "),
                    None,
                    &what,
                )
                .await?;
            if !resp.status().is_success() {
                return Err(self.direct_error(resp, &what).await);
            }
            resp.bytes()
                .await
                .map_err(|e| RegistryError::Unreachable {
                    host: self.host.clone(),
                    reason: format!("{what}: {}", error::describe_reqwest(&e)),
                })?
                .to_vec()
        } else {
            let image = self.oci_ref(r);
            let (bytes, _header_digest) =
                retry(|| self.client.pull_manifest_raw(&image, &self.auth, &accepted))
                    .await
                    .map_err(|e| self.err(&what, e))?;
            bytes.to_vec()
        };
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
        if self.open {
            let what = format!("manifest {r}");
            let url = self.manifest_url(r)?;
            let accept = [
                MANIFEST_MEDIA_TYPE,
                INDEX_MEDIA_TYPE,
                DOCKER_MANIFEST_MEDIA_TYPE,
            ]
            .join(", ");
            let resp = self
                .send_direct(reqwest::Method::HEAD, &url, &accept, None, &what)
                .await?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(self.direct_error(resp, &what).await);
            }
            let header = resp
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|d| Digest::parse(d).ok());
            return match header {
                Some(d) => Ok(Some(d)),
                // No digest header: hash the manifest itself.
                None => Ok(Some(self.manifest(r).await?.1)),
            };
        }
        let image = self.oci_ref(r);
        match retry(|| self.client.fetch_manifest_digest(&image, &self.auth)).await {
            Ok(d) => Ok(Digest::parse(&d).ok()),
            Err(e) if error::is_not_found(&e) => Ok(None),
            Err(e) => Err(self.err(&format!("manifest {r}"), e)),
        }
    }

    fn manifest_url(&self, r: &Reference) -> Result<reqwest::Url, RegistryError> {
        let object = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        self.url(&format!("/v2/{}/manifests/{object}", r.path()))
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, RegistryError> {
        let text = format!("{}://{}{path}", self.scheme, self.host);
        reqwest::Url::parse(&text)
            .map_err(|_| RegistryError::Config(format!("{text}: not a valid registry URL")))
    }

    /// Sends a request straight to the registry rather than through `oci-client`, retrying
    /// like [`retry`] on 429, 5xx and dropped connections. Credentials (the Bearer `token`,
    /// else the Basic login) go only to the registry's own origin, wherever `url` points.
    async fn send_direct(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        accept: &str,
        token: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let ours = self
            .url("/")
            .is_ok_and(|base| base.origin() == url.origin());
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header(reqwest::header::ACCEPT, accept);
            if ours {
                req = match (token, &self.auth) {
                    (Some(t), _) => req.bearer_auth(t),
                    (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
                    _ => req,
                };
            }
            let result = req.send().await;
            let transient = match &result {
                Ok(r) => r.status().as_u16() == 429 || r.status().is_server_error(),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            };
            if transient && attempt < 4 {
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            return result.map_err(|e| RegistryError::Unreachable {
                host: self.host.clone(),
                reason: format!("{what}: {}", error::describe_reqwest(&e)),
            });
        }
    }

    /// The error for a direct request's unsuccessful answer, with the registry's own words.
    async fn direct_error(&self, resp: reqwest::Response, what: &str) -> RegistryError {
        let code = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        match code {
            401 | 403 => RegistryError::Unauthorized {
                host: self.host.clone(),
            },
            404 => RegistryError::NotFound {
                host: self.host.clone(),
                what: what.to_string(),
            },
            _ => RegistryError::Status {
                host: self.host.clone(),
                what: what.to_string(),
                code,
                message: body.split_whitespace().collect::<Vec<_>>().join(" "),
            },
        }
    }

    pub async fn blob_exists(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let (image, digest_text) = (self.oci_ref(repo), digest.to_string());
        retry(|| self.client.blob_exists(&image, &digest_text))
            .await
            .map_err(|e| self.err(&format!("blob {digest}"), e))
    }

    /// Asks the registry to mount a blob from another repository; false if it would not.
    pub async fn mount_blob(&self, repo: &Reference, from: &Reference, digest: &Digest) -> bool {
        let (image, source) = (self.oci_ref(repo), self.oci_ref(from));
        self.client
            .mount_blob(&image, &source, &digest.to_string())
            .await
            .is_ok()
    }

    /// Uploads a stored blob, streamed from its file.
    pub async fn push_blob_file(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let image = self.oci_ref(repo);
        retry(|| async {
            let file = tokio::fs::File::open(path).await?;
            self.client
                .push_blob_stream(&image, file_stream(file), &digest.to_string(), Some(size))
                .await
        })
        .await
        .map(|_| ())
        .map_err(|e| self.err(&format!("upload of blob {digest}"), e))
    }

    /// Uploads a small blob from memory.
    pub async fn push_blob_bytes(
        &self,
        repo: &Reference,
        digest: &Digest,
        data: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let image = self.oci_ref(repo);
        let (data, digest_text) = (Bytes::from(data), digest.to_string());
        retry(|| self.client.push_blob(&image, data.clone(), &digest_text))
            .await
            .map(|_| ())
            .map_err(|e| self.err(&format!("upload of blob {digest}"), e))
    }

    /// Streams a blob into `out`, returning how many bytes came. The caller checks the digest.
    pub async fn pull_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        out: &mut impl std::io::Write,
    ) -> Result<u64, RegistryError> {
        let image = self.oci_ref(repo);
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.to_string(),
            size: desc.size as i64,
            ..Default::default()
        };
        let what = format!("download of blob {}", desc.digest);
        let mut stream = retry(|| self.client.pull_blob_stream(&image, &layer))
            .await
            .map_err(|e| self.err(&what, e))?;
        let mut received: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Unreachable {
                host: self.host.clone(),
                reason: format!("{what}: {e}"),
            })?;
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
    /// checks the digest when the upload completes). A failed attempt starts over.
    pub async fn copy_blob_from(
        &self,
        source: &Registry,
        source_repo: &Reference,
        repo: &Reference,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        let (from, to) = (source.oci_ref(source_repo), self.oci_ref(repo));
        let layer = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.to_string(),
            size: desc.size as i64,
            ..Default::default()
        };
        let digest = desc.digest.to_string();
        retry(|| async {
            let stream = source.client.pull_blob_stream(&from, &layer).await?;
            let stream = stream
                .stream
                .map(|chunk| chunk.map_err(oci_client::errors::OciDistributionError::from));
            self.client
                .push_blob_stream(&to, stream, &digest, Some(desc.size))
                .await
        })
        .await
        .map(|_| ())
        .map_err(|e| {
            self.err(
                &format!("copy of blob {} from {}", desc.digest, source.host),
                e,
            )
        })
    }

    /// Uploads a manifest under `r`'s tag, byte for byte; returns its digest.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let image = self.oci_ref(r);
        let content_type = reqwest::header::HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::Config(format!("bad media type {media_type:?}")))?;
        retry(|| {
            self.client
                .push_manifest_raw(&image, bytes.to_vec(), content_type.clone())
        })
        .await
        .map_err(|e| self.err(&format!("upload of manifest {r}"), e))?;
        Ok(Digest::of(bytes))
    }

    /// Every tag of a repository. Pages are chained by `Link: <URL>; rel="next"` headers, as
    /// the distribution spec says, whatever their query holds (an opaque cursor on some
    /// registries); a registry that ignores `n` answers everything on the first page. A full
    /// page without a `Link` is followed by asking again with `last=`, which older registries
    /// understand; the listing ends at the first page that brings nothing new, so neither a
    /// looping chain nor a registry that ignores `last` can keep it going.
    pub async fn tags(&self, repo: &Reference) -> Result<Vec<String>, RegistryError> {
        const PAGE: usize = 1000;
        let what = format!("tags of {repo}");
        let image = self.oci_ref(repo);
        // A registry that wants no credentials issues no tokens; asking oci-client for one
        // would also make it re-ping before every later request.
        let token = if self.open {
            None
        } else {
            retry(|| {
                self.client
                    .auth(&image, &self.auth, RegistryOperation::Pull)
            })
            .await
            .map_err(|e| self.err(&what, e))?
        };
        let bad_url = |_| RegistryError::Config(format!("{}: not a valid registry URL", self.host));
        let first = self.url(&format!("/v2/{}/tags/list?n={PAGE}", repo.path()))?;
        let mut seen = std::collections::HashSet::new();
        let mut all: Vec<String> = Vec::new();
        let mut visited = std::collections::HashSet::new();
        let mut url = first.clone();
        loop {
            visited.insert(url.to_string());
            let (page, link) = self.tags_page(&url, token.as_deref(), &what).await?;
            let count = page.len();
            let before = all.len();
            for t in page {
                if seen.insert(t.clone()) {
                    all.push(t);
                }
            }
            if all.len() == before {
                break;
            }
            let next = match link {
                Some(next) => url.join(&next).map_err(bad_url)?,
                None if count >= PAGE => {
                    let mut next = first.clone();
                    next.query_pairs_mut()
                        .append_pair("last", all.last().map_or("", String::as_str));
                    next
                }
                None => break,
            };
            if visited.contains(next.as_str()) {
                break;
            }
            url = next;
        }
        Ok(all)
    }

    /// One page of a tag listing and the `next` link it names.
    async fn tags_page(
        &self,
        url: &reqwest::Url,
        token: Option<&str>,
        what: &str,
    ) -> Result<(Vec<String>, Option<String>), RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let resp = self
            .send_direct(reqwest::Method::GET, url, "application/json", token, what)
            .await?;
        if !resp.status().is_success() {
            return Err(self.direct_error(resp, what).await);
        }
        let link = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let body = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
            host: self.host.clone(),
            reason: format!("{what}: {}", error::describe_reqwest(&e)),
        })?;
        let page: Page = serde_json::from_slice(&body).map_err(|e| RegistryError::Other {
            host: self.host.clone(),
            what: what.to_string(),
            message: format!("unreadable tag list: {e}"),
        })?;
        Ok((page.tags.unwrap_or_default(), link))
    }
}

/// The target of the `rel="next"` entry of a `Link` header value, like
/// `</v2/r/tags/list?n=2&last=b>; rel="next"` (RFC 8288; several entries may be comma-separated).
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|entry| {
        let (target, params) = entry.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then(|| target.to_string())
    })
}

/// `GET /v2/` without credentials: the status, or why there was none.
async fn ping(
    http: &reqwest::Client,
    scheme: &str,
    host: &str,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    http.get(format!("{scheme}://{host}/v2/"))
        .send()
        .await
        .map(|r| r.status())
}

/// Which scheme a loopback registry speaks, with its answer to the ping: HTTPS if a TLS
/// handshake works, HTTP if the port answers plain HTTP. Both are tried at once. A TLS server
/// whose certificate fails verification answers plain HTTP with a 400; then the TLS error is
/// reported rather than silently downgraded.
async fn probe_scheme(
    http: &reqwest::Client,
    host: &str,
) -> Result<(&'static str, Result<reqwest::StatusCode, reqwest::Error>), RegistryError> {
    let (tls, plain) = tokio::join!(ping(http, "https", host), ping(http, "http", host));
    match (tls, plain) {
        (Ok(status), _) => Ok(("https", Ok(status))),
        (Err(_), Ok(status)) if status != reqwest::StatusCode::BAD_REQUEST => {
            Ok(("http", Ok(status)))
        }
        (Err(tls_err), Ok(_)) => Err(RegistryError::Tls {
            host: host.to_string(),
            reason: error::describe_reqwest(&tls_err),
        }),
        (Err(_), Err(e)) => Err(RegistryError::Unreachable {
            host: host.to_string(),
            reason: error::describe_reqwest(&e),
        }),
    }
}

/// A client certificate and its key, both PEM, as one identity.
fn read_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, RegistryError> {
    let mut pem = read_ca(cert)?;
    pem.push(b'\n');
    pem.extend(read_ca(key)?);
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        RegistryError::Config(format!(
            "{} / {}: not a PEM certificate and key: {e}",
            cert.display(),
            key.display()
        ))
    })
}

fn read_ca(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|e| RegistryError::Config(format!("{}: {e}", path.display())))
}

/// A file as a stream of 256 KiB chunks, so uploads never hold a blob in memory.
fn file_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = oci_client::errors::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e.into()), None)),
        }
    })
}

/// Runs `op` up to 4 times, backing off 0.25 s, 0.5 s, 1 s, while it fails in a way a retry can
/// mend (429, 5xx, dropped or refused connections, timeouts).
pub async fn retry<T, F, Fut>(mut op: F) -> oci_client::errors::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = oci_client::errors::Result<T>>,
{
    let mut delay = Duration::from_millis(250);
    for _ in 0..3 {
        match op().await {
            Err(e) if error::is_transient(&e) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    op().await
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_links_are_read_from_link_headers() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://h/a?c=1>; rel="prev", <https://h/a?c=3>; rel=next"#).as_deref(),
            Some("https://h/a?c=3")
        );
        assert_eq!(
            next_link(r#"<x>; title="t"; REL="Next""#).as_deref(),
            Some("x")
        );
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }
}
