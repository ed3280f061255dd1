//! The listener of `serve`: accepting connections (plain or TLS) within `--max-connections`,
//! the per-connection limits on slow clients (see the module docs of [`super`]), and the
//! graceful stop on SIGTERM or Ctrl-C. What a request gets is [`super::router`]'s business.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;

use super::ServeError;
use super::http;
use super::router::{self, State};

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
pub(super) struct Limits {
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    pub min_write_bytes: u64,
}

/// Accepts connections until SIGTERM or Ctrl-C, then lets those in flight finish (within
/// [`SHUTDOWN_GRACE`]).
pub(super) async fn run(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    max_connections: usize,
    state: Arc<State>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
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
                    state.log.event(&format!("accept failed: {e}"));
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
    state.log.event(&format!(
        "shutting down, finishing {} connection(s)",
        graceful.count()
    ));
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            state.log.event(&format!(
                "gave up waiting for connections after {} s",
                SHUTDOWN_GRACE.as_secs()
            ));
        }
    }
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
    let log = state.log;
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(router::handle(&state, req, peer).await) }
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
        && log.access
        && let Some(reason) = timed_out(&e, limits)
    {
        // Only the limits' own closes are logged: resets and early closes by clients are
        // their business, and common.
        log.event(&format!("closed a connection from {peer}: {reason}"));
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

pub(super) fn tls_acceptor(
    cert: &Path,
    key: &Path,
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
