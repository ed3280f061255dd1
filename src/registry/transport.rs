//! The HTTP transport every registry (and classic repository) request goes through, bounded
//! in time: building the reqwest client (TLS roots, `--ca-file`, `--insecure`, a client
//! certificate, the user agent, the connect timeout), choosing the scheme of a registry, and
//! sending requests and reading bodies under the read timeout.
//!
//! It exists because an untrusted server must not be able to hold a command forever: reqwest's
//! own `read_timeout` runs from the start of a request to its response headers (it would cut
//! off a long upload) and does not notice a body trickling in one byte at a time. So here:
//!
//! - the response headers must come within the read timeout of the request being sent: of the
//!   connection being made (a connector layer, [`WatchConnects`], tells when a request had to
//!   connect first, so the connect timeout is not eaten into), and, for requests with a body,
//!   of the last upload window that moved;
//! - an upload or download that moves less than [`STALL_BYTES`] within any read-timeout
//!   window fails as stalled;
//! - bodies read into memory stop at a cap ([`Body::read_to_vec`], [`Body::read_prefix`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use tokio::time::Instant;

use super::RegistryError;
use super::error::{describe_reqwest, from_reqwest, is_tls};
use super::retry::{self, Outcome, RetryPolicy};

/// The default for `--connect-timeout`: TCP connect plus TLS handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default for `--read-timeout`: the wait for response headers, and the window in which
/// a body must move at least [`STALL_BYTES`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A body moving less than this within a read-timeout window is stalled.
pub const STALL_BYTES: u64 = 1024;

const USER_AGENT: &str = concat!("chartcache/", env!("CARGO_PKG_VERSION"));

/// How long to wait for a server (`--connect-timeout`, `--read-timeout`), and how often to
/// ask again (`--retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub retry: RetryPolicy,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            read: DEFAULT_READ_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

/// How to reach a registry: the TLS flags every registry command takes, and the timeouts.
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
    pub timeouts: Timeouts,
}

/// A duration as the flags take it: `30 s`, `1.5 s`, `2m`.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A size for messages: `4 MiB`, `64 KiB`, `123 bytes`.
pub fn show_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Why a request got no (complete) answer.
#[derive(Debug)]
pub enum HttpFailure {
    /// reqwest's own failure (connect, TLS, a dropped connection…).
    Http(reqwest::Error),
    /// The response headers did not come within the read timeout.
    NoAnswer(Duration),
    /// A body (either way) moved less than [`STALL_BYTES`] within a read-timeout window.
    Stalled(Duration),
    /// A body larger than the cap it is read with.
    TooLarge(u64),
}

impl HttpFailure {
    /// One line, for messages.
    pub fn describe(&self) -> String {
        match self {
            HttpFailure::Http(e) => describe_reqwest(e),
            HttpFailure::NoAnswer(d) => {
                format!("no answer within {} (--read-timeout)", show_duration(*d))
            }
            HttpFailure::Stalled(d) => format!(
                "stalled: less than 1 KiB in {} (--read-timeout)",
                show_duration(*d)
            ),
            HttpFailure::TooLarge(limit) => {
                format!("larger than the limit of {}, refused", show_size(*limit))
            }
        }
    }

    /// Worth another try: a connection refused or dropped, a timeout, a body cut off or
    /// stalled. A TLS failure, or an answer too large, is not.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpFailure::Http(e) => {
                !is_tls(e)
                    && (e.is_connect()
                        || e.is_timeout()
                        || e.is_request()
                        || e.is_body()
                        || e.is_decode())
            }
            HttpFailure::NoAnswer(_) | HttpFailure::Stalled(_) => true,
            HttpFailure::TooLarge(_) => false,
        }
    }

    /// As a registry error about `what` on `host`.
    pub fn into_registry(self, host: &str, what: &str) -> RegistryError {
        match self {
            HttpFailure::Http(e) if e.is_body() || e.is_decode() => RegistryError::Interrupted {
                host: host.to_string(),
                what: what.to_string(),
                reason: describe_reqwest(&e),
            },
            HttpFailure::Http(e) => from_reqwest(host, &e),
            timeout @ (HttpFailure::NoAnswer(_) | HttpFailure::Stalled(_)) => {
                RegistryError::TimedOut {
                    host: host.to_string(),
                    what: what.to_string(),
                    reason: timeout.describe(),
                }
            }
            too_large @ HttpFailure::TooLarge(_) => RegistryError::Other {
                host: host.to_string(),
                what: what.to_string(),
                message: too_large.describe(),
            },
        }
    }
}

/// One try of a request, as the retry policy sees it: an answer with a transient status, or a
/// transient failure, may be tried again (after the answer's `Retry-After`, if any).
pub fn judge(
    result: Result<reqwest::Response, HttpFailure>,
) -> Outcome<reqwest::Response, HttpFailure> {
    match result {
        Ok(resp) if retry::is_transient_status(resp.status().as_u16()) => {
            let retry_after = retry::retry_after(resp.headers(), std::time::SystemTime::now());
            Outcome::Again {
                last: Ok(resp),
                retry_after,
            }
        }
        Err(e) if e.is_transient() => Outcome::Again {
            last: Err(e),
            retry_after: None,
        },
        done => Outcome::Done(done),
    }
}

/// Bytes an upload body has handed to the connection, for the stall watchdog of [`send`].
#[derive(Debug, Clone)]
pub struct Upload {
    pub sent: Arc<AtomicU64>,
    pub total: u64,
}

impl Upload {
    pub fn new(total: u64) -> Self {
        Upload {
            sent: Arc::new(AtomicU64::new(0)),
            total,
        }
    }
}

tokio::task_local! {
    /// The connection state of the request [`send`] is driving.
    static CONNECTING: Arc<ConnectWatch>;
}

/// Whether a request had to make a connection, and when it was made (TCP and TLS).
#[derive(Debug, Default)]
struct ConnectWatch {
    started: std::sync::atomic::AtomicBool,
    done_at: std::sync::Mutex<Option<Instant>>,
}

impl ConnectWatch {
    fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    fn done_at(&self) -> Option<Instant> {
        self.done_at.lock().ok().and_then(|t| *t)
    }
}

/// A connector layer telling [`send`] when the request it drives makes a connection, so its
/// read timeout starts once the connection is there (the connect timeout bounds the rest).
#[derive(Debug, Clone, Copy)]
pub struct WatchConnects;

impl<S> tower_layer::Layer<S> for WatchConnects {
    type Service = Watched<S>;
    fn layer(&self, inner: S) -> Watched<S> {
        Watched(inner)
    }
}

/// The connector service [`WatchConnects`] wraps.
#[derive(Debug, Clone)]
pub struct Watched<S>(S);

impl<S, R> tower_service::Service<R> for Watched<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let watch = CONNECTING.try_with(Arc::clone).ok();
        if let Some(w) = &watch {
            w.started.store(true, Ordering::SeqCst);
        }
        let fut = self.0.call(req);
        Box::pin(async move {
            let result = fut.await;
            if let (Some(w), Ok(_)) = (&watch, &result)
                && let Ok(mut at) = w.done_at.lock()
            {
                *at = Some(Instant::now());
            }
            result
        })
    }
}

/// Sends `req`. The response headers must come within the read timeout of the request being
/// sent: counted from the start, or from the connection being made when the request had to
/// make one (which the connect timeout bounds). With an `upload`, the body must also move at
/// least [`STALL_BYTES`] per read-timeout window, and the headers come within a window of the
/// last one that moved.
pub async fn send(
    req: reqwest::RequestBuilder,
    timeouts: &Timeouts,
    upload: Option<&Upload>,
) -> Result<reqwest::Response, HttpFailure> {
    let watch = Arc::new(ConnectWatch::default());
    let fut = CONNECTING.scope(Arc::clone(&watch), req.send());
    tokio::pin!(fut);
    let start = Instant::now();
    let mut deadline = start + timeouts.read;
    let mut last = 0u64;
    loop {
        tokio::select! {
            result = &mut fut => return result.map_err(HttpFailure::Http),
            () = tokio::time::sleep_until(deadline) => {}
        }
        let now = Instant::now();
        let connected = watch.done_at();
        if watch.started() && connected.is_none() {
            // Still connecting: the connect timeout ends that; this is a backstop.
            let hard = start + timeouts.connect + timeouts.read;
            if now < hard {
                deadline = hard;
                continue;
            }
            return Err(HttpFailure::NoAnswer(timeouts.read));
        }
        let base = connected.unwrap_or(start) + timeouts.read;
        let Some(up) = upload else {
            if now < base {
                deadline = base;
                continue;
            }
            return Err(HttpFailure::NoAnswer(timeouts.read));
        };
        if now < base && last == 0 {
            // The first window starts with the connection.
            deadline = base;
            continue;
        }
        let sent = up.sent.load(Ordering::Relaxed);
        if sent.saturating_sub(last) < STALL_BYTES {
            return Err(if sent >= up.total {
                HttpFailure::NoAnswer(timeouts.read)
            } else {
                HttpFailure::Stalled(timeouts.read)
            });
        }
        last = sent;
        deadline = now + timeouts.read;
    }
}

/// A response body read under the stall rule.
pub struct Body {
    resp: reqwest::Response,
    read: Duration,
    deadline: Instant,
    window: u64,
}

impl Body {
    pub fn new(resp: reqwest::Response, timeouts: &Timeouts) -> Self {
        Body {
            resp,
            read: timeouts.read,
            deadline: Instant::now() + timeouts.read,
            window: 0,
        }
    }

    /// The declared length, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpFailure> {
        match tokio::time::timeout_at(self.deadline, self.resp.chunk()).await {
            Err(_) => Err(HttpFailure::Stalled(self.read)),
            Ok(Err(e)) if e.is_timeout() => Err(HttpFailure::Stalled(self.read)),
            Ok(Err(e)) => Err(HttpFailure::Http(e)),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(chunk))) => {
                self.window += chunk.len() as u64;
                if self.window >= STALL_BYTES {
                    self.window = 0;
                    self.deadline = Instant::now() + self.read;
                }
                Ok(Some(chunk))
            }
        }
    }

    /// The whole body, refused beyond `limit` bytes (before reading, when declared).
    pub async fn read_to_vec(mut self, limit: u64) -> Result<Vec<u8>, HttpFailure> {
        if self.content_length().is_some_and(|n| n > limit) {
            return Err(HttpFailure::TooLarge(limit));
        }
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(HttpFailure::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// At most the first `limit` bytes (the rest is never read; the connection is dropped).
    /// For error bodies, which only feed a message: a failure just ends the text.
    pub async fn read_prefix(mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.chunk().await {
                Ok(Some(chunk)) => {
                    let room = limit - out.len();
                    out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                _ => break,
            }
        }
        out
    }

    /// The body as a stream for an upload elsewhere, erroring (into `failure`) on a stall or
    /// on more than `limit` bytes.
    pub fn into_stream(
        self,
        limit: u64,
        failure: Arc<std::sync::Mutex<Option<HttpFailure>>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(Some((self, 0u64)), move |state| {
            let failure = Arc::clone(&failure);
            async move {
                let (mut body, seen) = state?;
                let fail = |f: HttpFailure| {
                    let text = f.describe();
                    if let Ok(mut slot) = failure.lock() {
                        *slot = Some(f);
                    }
                    Some((Err(std::io::Error::other(text)), None))
                };
                match body.chunk().await {
                    Ok(Some(chunk)) => {
                        let seen = seen + chunk.len() as u64;
                        if seen > limit {
                            return fail(HttpFailure::TooLarge(limit));
                        }
                        Some((Ok(chunk), Some((body, seen))))
                    }
                    Ok(None) => None,
                    Err(e) => fail(e),
                }
            }
        })
    }
}

/// `size` bytes of a file, from where it stands, as a stream of 256 KiB chunks counted into
/// `upload`, so uploads never hold a blob in memory and the watchdog of [`send`] sees them
/// move.
pub fn file_stream(
    file: std::fs::File,
    size: u64,
    upload: &Upload,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let sent = Arc::clone(&upload.sent);
    let file = tokio::fs::File::from_std(file).take(size);
    futures_util::stream::unfold(Some(file), move |state| {
        let sent = Arc::clone(&sent);
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Counts the bytes of `stream` into `upload`.
pub fn counted<S>(
    stream: S,
    upload: &Upload,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    use futures_util::StreamExt;
    let sent = Arc::clone(&upload.sent);
    stream.map(move |chunk| {
        if let Ok(c) = &chunk {
            sent.fetch_add(c.len() as u64, Ordering::Relaxed);
        }
        chunk
    })
}

/// The crypto provider rustls uses when none is named (the clients here name theirs).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What makes two clients different: one is built per distinct set, per runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientKey {
    runtime: Option<tokio::runtime::Id>,
    connect_timeout: Duration,
    insecure: bool,
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
}

/// A reqwest client: the user agent, the connect timeout, TLS (see [`super::tls`]: system
/// roots read on first use, plus a CA bundle, or no verification with `insecure`) and an
/// optional client certificate (`identity`: certificate and key files). Redirects are followed
/// (reqwest drops `Authorization` when one leads to another origin).
///
/// Every registry and repository of a command with the same settings gets the same client, so
/// one connection pool serves them all; clients are kept per tokio runtime, as their pooled
/// connections belong to the runtime that made them.
pub fn client(
    connect_timeout: Duration,
    insecure: bool,
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<reqwest::Client, RegistryError> {
    static CLIENTS: std::sync::Mutex<Vec<(ClientKey, reqwest::Client)>> =
        std::sync::Mutex::new(Vec::new());
    let key = ClientKey {
        runtime: tokio::runtime::Handle::try_current().ok().map(|h| h.id()),
        connect_timeout,
        insecure,
        ca_file: ca_file.map(Path::to_path_buf),
        identity: identity.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
    };
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Clients of runtimes gone (or of another one running now) are not shared.
    clients.retain(|(k, _)| k.runtime.is_some() && k.runtime == key.runtime);
    if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let tls = super::tls::client_config(&super::tls::TlsFiles {
        insecure,
        ca_file,
        identity,
    })?;
    let http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .connector_layer(WatchConnects)
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| {
            RegistryError::Config(format!(
                "cannot set up HTTP client: {}",
                describe_reqwest(&e)
            ))
        })?;
    if key.runtime.is_some() {
        clients.push((key, http.clone()));
    }
    Ok(http)
}

/// The client for `transport`, and whether it presents a client certificate.
pub(super) fn registry_client(
    transport: &Transport,
) -> Result<(reqwest::Client, bool), RegistryError> {
    let identity = match (&transport.cert_file, &transport.key_file) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
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
    let http = client(
        transport.timeouts.connect,
        transport.insecure,
        transport.ca_file.as_deref(),
        identity,
    )?;
    Ok((http, identity.is_some()))
}

pub(super) fn is_loopback(host: &str) -> bool {
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

/// `GET /v2/` without credentials: the answer, or why there was none.
pub(super) async fn ping(
    http: &reqwest::Client,
    timeouts: &Timeouts,
    scheme: &str,
    host: &str,
) -> Result<reqwest::Response, HttpFailure> {
    send(http.get(format!("{scheme}://{host}/v2/")), timeouts, None).await
}

/// One try of the ping over `scheme`.
pub(super) async fn ping_once(
    http: &reqwest::Client,
    timeouts: &Timeouts,
    scheme: &'static str,
    host: &str,
) -> Outcome<(&'static str, reqwest::Response), RegistryError> {
    judge(ping(http, timeouts, scheme, host).await)
        .map(|resp| (scheme, resp))
        .map_err(|e| e.into_registry(host, "ping"))
}

/// One try of finding which scheme a loopback registry speaks, with its answer to the ping:
/// HTTPS if a TLS handshake works, HTTP if the port answers plain HTTP. Both are tried at once.
/// A TLS server whose certificate fails verification answers plain HTTP with a 400; then the
/// TLS error is reported rather than silently downgraded.
pub(super) async fn probe_scheme(
    http: &reqwest::Client,
    timeouts: &Timeouts,
    host: &str,
) -> Outcome<(&'static str, reqwest::Response), RegistryError> {
    let (tls, plain) = tokio::join!(
        ping(http, timeouts, "https", host),
        ping(http, timeouts, "http", host)
    );
    let (scheme, result) = match (tls, plain) {
        (Ok(resp), _) => ("https", Ok(resp)),
        (Err(_), Ok(resp)) if resp.status() != StatusCode::BAD_REQUEST => ("http", Ok(resp)),
        (Err(HttpFailure::Http(tls_err)), Ok(_)) => {
            return Outcome::Done(Err(RegistryError::Tls {
                host: host.to_string(),
                reason: describe_reqwest(&tls_err),
            }));
        }
        (Err(e), Ok(_)) | (Err(_), Err(e)) => ("http", Err(e)),
    };
    judge(result)
        .map(|resp| (scheme, resp))
        .map_err(|e| e.into_registry(host, "ping"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(show_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(show_duration(Duration::from_millis(500)), "500 ms");
        assert_eq!(show_size(4 << 20), "4 MiB");
        assert_eq!(show_size(64 << 10), "64 KiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("example.com:5000"));
    }
}
