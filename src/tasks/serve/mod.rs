//! `serve`: the cache (or a registry, pulled through the cache) as a classic chart repository
//! and a read-only OCI registry, on one port.
//!
//! ```text
//! GET  /index.yaml, /index.json                 every chart (see index.rs for names)
//! GET  /<prefix>/index.yaml                      the charts of one repository prefix
//! GET  /charts/<name>-<version>.tgz[.prov]       a chart download (and /<prefix>/charts/…)
//! GET  /v2/                                      the OCI distribution pull API, read-only:
//! HEAD|GET /v2/<name>/manifests/<tag|digest>     …
//! HEAD|GET /v2/<name>/blobs/<digest>
//! GET  /v2/<name>/tags/list, /v2/_catalog        (with n, last and Link paging)
//! ```
//!
//! [`library`] decides what is offered (with `upstream` for the pull-through mode and `names`
//! for how served names map to references); [`index`] renders the classic view; [`http`] has
//! the byte-serving plumbing; this file routes requests, checks `--htpasswd` logins, writes the
//! access log, and runs the listener (plain or TLS) until SIGTERM or Ctrl-C, then lets
//! requests in flight finish. Memory stays bounded: downloads stream from disk in 64 KiB
//! chunks past a small in-memory blob cache, and connections are capped.
//!
//! # Limits on clients
//!
//! `--max-connections` connections are served at once; more wait in the kernel's listen
//! backlog. So that slow or hostile clients cannot hold those slots for good, every connection
//! lives under these limits (the defaults are the `DEFAULT_*` constants):
//!
//! - **Request head: 10 s.** A request line and headers must arrive whole within
//!   [`DEFAULT_HEADER_TIMEOUT`] of the server starting to wait for them. The same clock runs
//!   for a kept-alive connection waiting for its next request (hyper starts it again each time
//!   a connection goes idle), so an idle socket or a client sending a header byte a second
//!   (slowloris) is closed after 10 s.
//! - **Request head size: 64 KiB, 100 headers.** Larger heads are answered with 431 and the
//!   connection is closed.
//! - **Request bodies are never read.** `serve` is read-only: a body sent with a request is
//!   left unread (hyper discards what it has buffered and closes the connection after the
//!   response), so a large body costs no memory.
//! - **Writes: 30 s without progress.** A write the client does not take any of for
//!   [`DEFAULT_WRITE_TIMEOUT`] ends the connection (a client that opened downloads and stopped
//!   reading).
//! - **Writes: at least 16 KiB per 30 s of waiting.** A client that reads a trickle makes
//!   progress now and then; [`http::RateFloor`] ends the connection when, over 30 s the server
//!   spent waiting on it, fewer than [`DEFAULT_MIN_WRITE_BYTES`] went out (about 550 bytes a
//!   second; any real client is far faster). Time spent waiting on the disk or an upstream
//!   does not count.
//! - **TLS handshake: 10 s**, and the first byte of a connection on a TLS port within 10 s.
//! - **Shutdown: 10 s.** On SIGTERM the listener closes at once, requests in flight get
//!   10 s to finish, then the server exits whatever its clients are doing.
//!
//! So a stalled client frees its slot within 10 s (idle or slow request) or 30 s (a download
//! it stopped reading); one that trickles, within 30 s of waiting on it once its pace is under
//! the floor (60 s if it slowed down in the middle of a window it then still passed).

pub mod auth;
mod blobcache;
pub mod http;
pub mod index;
pub mod library;
mod names;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::body::Incoming;
use hyper::header::{self, HeaderName};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;

pub use auth::Htpasswd;
use http::{Body, Source};
pub use library::Library;
use names::{ApiError, Object};
pub use upstream::UpstreamOptions;

use crate::digest::Digest;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
}

/// Everything `serve` is told.
pub struct ServeOptions {
    pub listen: String,
    pub base_url: Option<String>,
    pub upstream: Option<UpstreamOptions>,
    pub htpasswd: Option<Htpasswd>,
    /// Certificate chain and key, both PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub access_log: bool,
    /// Bytes of small blobs kept in memory.
    pub memory_cache: u64,
    pub max_connections: usize,
    /// How long a request line and headers may take to arrive, and how long a kept-alive
    /// connection may wait for its next request.
    pub header_timeout: Duration,
    /// How long a write may make no progress before the connection is closed.
    pub write_timeout: Duration,
    /// Bytes a client must take per `write_timeout` of waiting for its writes.
    pub min_write_bytes: u64,
}

/// Default of [`ServeOptions::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServeOptions::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServeOptions::min_write_bytes`].
pub const DEFAULT_MIN_WRITE_BYTES: u64 = 16 * 1024;
/// How long a TLS client may take to finish its handshake (and to send its first byte).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may go on after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) read.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers a request may have.
const MAX_HEADERS: usize = 100;

/// The per-connection limits of [`ServeOptions`], as each connection needs them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    write_timeout: Duration,
    min_write_bytes: u64,
}

struct State {
    library: Arc<Library>,
    htpasswd: Option<Arc<Htpasswd>>,
    access_log: bool,
}

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

/// Runs the server until SIGTERM or Ctrl-C. `ready` gets the base URL once it listens.
pub async fn serve(
    store: Store,
    options: ServeOptions,
    ready: impl FnOnce(&str),
) -> Result<(), ServeError> {
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(&options.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.listen.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: options.listen.clone(),
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    ready(&format!("{scheme}://{local}"));

    let log_lines = options.access_log;
    let limits = Limits {
        header_timeout: options.header_timeout,
        write_timeout: options.write_timeout,
        min_write_bytes: options.min_write_bytes,
    };
    let state = Arc::new(State {
        library: Arc::new(Library::new(
            store,
            options.base_url,
            options.upstream,
            options.memory_cache,
            Box::new(|line| eprintln!("chartcache serve: {line}")),
        )),
        htpasswd: options.htpasswd.map(Arc::new),
        access_log: log_lines,
    });
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    eprintln!("chartcache serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(guard(stream, limits), peer, state, limits, watcher).await,
                Some(acceptor) => {
                    if !speaks_tls(&stream).await {
                        // As Go's servers do: a plain request on the TLS port gets a plain
                        // answer saying so (Docker-style clients read it as "use HTTPS").
                        use tokio::io::AsyncWriteExt;
                        let mut stream = guard(stream, limits);
                        let _ = stream
                            .write_all(
                                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                            )
                            .await;
                        return;
                    }
                    let handshake = acceptor.accept(guard(stream, limits));
                    // A client that never finishes the handshake must not hold a connection.
                    if let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await
                    {
                        connection(tls_stream, peer, state, limits, watcher).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    eprintln!(
        "chartcache serve: shutting down, finishing {} connection(s)",
        graceful.count()
    );
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            eprintln!(
                "chartcache serve: gave up waiting for connections after {} s",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
    Ok(())
}

/// A connection's socket under the write limits: no write may wait longer than the write
/// timeout, and a window of waiting must move the minimum (see [`http::RateFloor`]). Below TLS,
/// so the limits see the bytes that actually leave.
fn guard(
    stream: tokio::net::TcpStream,
    limits: Limits,
) -> std::pin::Pin<Box<TimeoutStream<http::RateFloor<tokio::net::TcpStream>>>> {
    let floor = http::RateFloor::new(stream, limits.write_timeout, limits.min_write_bytes);
    let mut timed = TimeoutStream::new(floor);
    timed.set_write_timeout(Some(limits.write_timeout));
    Box::pin(timed)
}

async fn connection<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<State>,
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let log = state.access_log;
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
    });
    // Vectored writes send a body from memory as it is, without copying it into hyper's
    // write buffer first. hyper runs the header timeout from the moment it waits for a request
    // head, which includes a kept-alive connection waiting for its next request.
    let conn = hyper::server::conn::http1::Builder::new()
        .writev(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await
        && log
        && let Some(reason) = timed_out(&e, limits)
    {
        // Only the limits' own closes are logged: resets and early closes by clients are
        // their business, and common.
        eprintln!("chartcache serve: closed a connection from {peer}: {reason}");
    }
}

/// Why a connection ended, when one of [`Limits`] ended it.
fn timed_out(e: &hyper::Error, limits: Limits) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            // tokio-io-timeout's error has no message of its own; the rate floor's has one.
            return Some(match io.get_ref() {
                Some(inner) => inner.to_string(),
                None => format!(
                    "the client took nothing for {}",
                    humantime::format_duration(limits.write_timeout)
                ),
            });
        }
        source = err.source();
    }
    e.is_timeout().then(|| {
        format!(
            "no complete request head within {}",
            humantime::format_duration(limits.header_timeout)
        )
    })
}

/// Whether the client opens with a TLS handshake record (0x16), waiting up to 10 s for it.
async fn speaks_tls(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{}: no PEM certificate in this file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        ServeError::Tls(format!("{}: no usable PEM private key: {e}", key.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// One request: authentication, routing, the access log line.
async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let api = path == "/v2" || path.starts_with("/v2/");
    let (mut resp, user) = match authenticate(state, &req).await {
        Err(resp) => (resp, None),
        Ok(user) => (route(state, &req, &path, api).await, user),
    };
    if api {
        resp.headers_mut().insert(
            API_VERSION,
            header::HeaderValue::from_static("registry/2.0"),
        );
    }
    if state.access_log {
        use hyper::body::Body as _;
        let length = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| resp.body().size_hint().exact().map(|n| n.to_string()))
            .unwrap_or_else(|| "-".into());
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let line = format!(
            "{} - {} [{}] \"{} {} {:?}\" {} {} {}ms\n",
            peer.ip(),
            user.as_deref().unwrap_or("-"),
            crate::output::rfc3339(SystemTime::now()),
            req.method(),
            target.escape_debug(),
            req.version(),
            resp.status().as_u16(),
            length,
            started.elapsed().as_millis()
        );
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
    resp
}

/// The logged-in user (`None` without `--htpasswd`), or the 401 to send.
async fn authenticate(
    state: &State,
    req: &Request<Incoming>,
) -> Result<Option<String>, Response<Body>> {
    let Some(users) = &state.htpasswd else {
        return Ok(None);
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let users = Arc::clone(users);
    let user = match authorization {
        None => None,
        Some(a) => tokio::task::spawn_blocking(move || users.check(Some(&a)))
            .await
            .ok()
            .flatten(),
    };
    match user {
        Some(u) => Ok(Some(u)),
        None => {
            let path = req.uri().path();
            let mut resp = if path == "/v2" || path.starts_with("/v2/") {
                http::oci_error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                )
            } else {
                http::text(StatusCode::UNAUTHORIZED, "authentication required")
            };
            http::set(
                &mut resp,
                header::WWW_AUTHENTICATE,
                "Basic realm=\"chartcache\"",
            );
            Err(resp)
        }
    }
}

async fn route(state: &State, req: &Request<Incoming>, path: &str, api: bool) -> Response<Body> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        let mut resp = if api {
            http::oci_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "this registry is read-only",
            )
        } else {
            http::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served",
            )
        };
        http::set(&mut resp, header::ALLOW, "GET, HEAD");
        return resp;
    }
    let result = if api {
        registry_route(state, req, path).await
    } else {
        classic_route(state, req, path).await
    };
    result.unwrap_or_else(|e| {
        if api {
            http::oci_error(e.status, e.code, &e.message)
        } else {
            http::text(e.status, &e.message)
        }
    })
}

// ---- the classic repository ----------------------------------------------------------------

async fn classic_route(
    state: &State,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let library = &state.library;
    let Some(path) = http::percent_decode(path.trim_start_matches('/')) else {
        return Ok(http::text(StatusCode::NOT_FOUND, "not found"));
    };
    if path.is_empty() {
        return Ok(http::text(
            StatusCode::OK,
            "chartcache serve: a chart repository at /index.yaml and a read-only OCI registry at /v2/",
        ));
    }
    let index = [("index.yaml", false), ("index.json", true)]
        .into_iter()
        .find_map(|(file, json)| {
            let prefix = if path == file {
                Some("")
            } else {
                path.strip_suffix(file)?.strip_suffix('/')
            };
            prefix.map(|p| (p.to_string(), json))
        });
    if let Some((prefix, json)) = index {
        let Some(view) = library.view(&prefix).await? else {
            return Ok(http::text(
                StatusCode::NOT_FOUND,
                &format!("no charts under /{prefix}"),
            ));
        };
        let (bytes, etag, content_type) = if json {
            (view.json, view.json_etag, "application/json")
        } else {
            (view.yaml, view.yaml_etag, "application/yaml")
        };
        return Ok(http::serve(
            req.method(),
            req.headers(),
            Source::Memory(bytes),
            content_type,
            &etag,
            &[(header::CACHE_CONTROL, "no-cache".into())],
        )
        .await);
    }
    let Some(file) = library.chart_file(&path).await? else {
        return Ok(http::text(
            StatusCode::NOT_FOUND,
            &format!("/{path}: not found"),
        ));
    };
    let source = library.chart_bytes(&file).await?;
    let content_type = if path.ends_with(".prov") {
        "application/pgp-signature"
    } else {
        "application/gzip"
    };
    Ok(http::serve(
        req.method(),
        req.headers(),
        source,
        content_type,
        &format!("\"{}\"", file.digest),
        &[(header::CACHE_CONTROL, "no-cache".into())],
    )
    .await)
}

// ---- the OCI distribution API ----------------------------------------------------------------

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum ApiPath<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
}

fn parse_api_path(path: &str) -> Option<ApiPath<'_>> {
    let rest = path.strip_prefix("/v2")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(ApiPath::Base);
    }
    if rest == "_catalog" {
        return Some(ApiPath::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(ApiPath::Tags(name));
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Some(ApiPath::Manifest(name, reference));
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Some(ApiPath::Blob(name, digest));
    }
    None
}

async fn registry_route(
    state: &State,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let library = &state.library;
    let (method, headers) = (req.method(), req.headers());
    let query = req.uri().query();
    match parse_api_path(path) {
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "NAME_UNKNOWN",
            message: format!("{path}: not a registry API path"),
        }),
        Some(ApiPath::Base) => Ok(json_response(method, "{}".into(), None)),
        Some(ApiPath::Catalog) => {
            let all = library.catalog().await?;
            let (page, next) = paginate(&all, query, "/v2/_catalog")?;
            let body = serde_json::json!({ "repositories": page }).to_string();
            Ok(json_response(method, body, next))
        }
        Some(ApiPath::Tags(name)) => {
            let all = library.tags(name).await?;
            let (page, next) = paginate(&all, query, &format!("/v2/{name}/tags/list"))?;
            let body = serde_json::json!({ "name": name, "tags": page }).to_string();
            Ok(json_response(method, body, next))
        }
        Some(ApiPath::Manifest(name, reference)) => {
            let object = Object::parse(reference)?;
            let m = library.manifest(name, &object).await?;
            let etag = format!("\"{}\"", m.digest);
            Ok(http::serve(
                method,
                headers,
                Source::Memory(m.bytes),
                &m.media_type,
                &etag,
                &[(CONTENT_DIGEST, m.digest.to_string())],
            )
            .await)
        }
        Some(ApiPath::Blob(name, digest)) => {
            let digest = Digest::parse(digest).map_err(|e| ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "DIGEST_INVALID",
                message: e.to_string(),
            })?;
            let source = library.blob(name, &digest).await?;
            Ok(http::serve(
                method,
                headers,
                source,
                "application/octet-stream",
                &format!("\"{digest}\""),
                &[
                    (CONTENT_DIGEST, digest.to_string()),
                    (header::CACHE_CONTROL, "max-age=31536000, immutable".into()),
                ],
            )
            .await)
        }
    }
}

fn json_response(method: &Method, body: String, link: Option<String>) -> Response<Body> {
    let len = body.len();
    let mut resp = Response::new(if method == Method::HEAD {
        http::empty()
    } else {
        http::full(body)
    });
    http::set(&mut resp, header::CONTENT_TYPE, "application/json");
    http::set(&mut resp, header::CONTENT_LENGTH, len.to_string());
    if let Some(link) = link {
        http::set(&mut resp, header::LINK, link);
    }
    resp
}

/// One page of a sorted list by the spec's `n` and `last`, and the `Link` to the next page.
fn paginate<'a>(
    all: &'a [String],
    query: Option<&str>,
    path: &str,
) -> Result<(&'a [String], Option<String>), ApiError> {
    let last = http::query_param(query, "last");
    let start = match &last {
        Some(l) => all.partition_point(|x| x.as_str() <= l.as_str()),
        None => 0,
    };
    let rest = &all[start..];
    let n = match http::query_param(query, "n") {
        None => return Ok((rest, None)),
        Some(n) => n.parse::<usize>().map_err(|_| ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "PAGINATION_NUMBER_INVALID",
            message: format!("n={n:?} is not a number"),
        })?,
    };
    if n >= rest.len() {
        return Ok((rest, None));
    }
    let page = &rest[..n];
    let next = page
        .last()
        .map(|l| format!("<{path}?last={}&n={n}>; rel=\"next\"", query_escape(l)));
    Ok((page, next))
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert_eq!(parse_api_path("/v2/"), Some(ApiPath::Base));
        assert_eq!(parse_api_path("/v2"), Some(ApiPath::Base));
        assert_eq!(parse_api_path("/v2/_catalog"), Some(ApiPath::Catalog));
        assert_eq!(
            parse_api_path("/v2/a/b/tags/list"),
            Some(ApiPath::Tags("a/b"))
        );
        assert_eq!(
            parse_api_path("/v2/a/manifests/b/manifests/1.0"),
            Some(ApiPath::Manifest("a/manifests/b", "1.0"))
        );
        assert_eq!(
            parse_api_path("/v2/a/blobs/sha256:00"),
            Some(ApiPath::Blob("a", "sha256:00"))
        );
        assert_eq!(parse_api_path("/v2/a/other"), None);
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let (page, next) = paginate(&all, Some("n=2"), "/v2/x/tags/list").unwrap();
        assert_eq!(page, ["a", "b"]);
        assert_eq!(
            next.as_deref(),
            Some("</v2/x/tags/list?last=b&n=2>; rel=\"next\"")
        );
        let (page, next) = paginate(&all, Some("n=2&last=b"), "/p").unwrap();
        assert_eq!((page, next), (&all[2..], None));
        let (page, _) = paginate(&all, Some("last=bb"), "/p").unwrap();
        assert_eq!(page, ["c", "d"]);
        let (page, next) = paginate(&all, Some("n=0"), "/p").unwrap();
        assert!(page.is_empty() && next.is_none());
        assert_eq!(
            paginate(&all, Some("n=x"), "/p").unwrap_err().code,
            "PAGINATION_NUMBER_INVALID"
        );
        assert_eq!(query_escape("a/b:c"), "a%2Fb%3Ac");
    }
}
