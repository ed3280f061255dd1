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
//! GET  /v2/<name>/referrers/<digest>             the OCI 1.1 referrers API (?artifactType=)
//! ```
//!
//! The parts, one job each:
//!
//! - [`listener`]: the socket (plain or TLS), the connection cap and the limits below, the
//!   graceful stop;
//! - [`router`]: `--htpasswd` logins, the read-only rule, the access log, and the choice of
//!   view: [`chart_repo`] (the classic repository) or [`registry_api`] (the OCI pull API);
//! - [`library`]: what is offered (with [`names`] for how served names map to references),
//!   read from the cache as snapshots; [`index`] renders the classic view;
//! - [`attached`]: what refers to the charts (signatures, SBOMs), from the cache's referrers
//!   tag schema and cosign tags, and the referrers API answered from it;
//! - [`upstream`]: the pull-through, one copy of the copy engine per chart first asked for;
//!   [`signed`]: with `--require-signed`, only charts whose signatures verify;
//! - [`http`]: byte serving (ranges, ETags, the write-rate floor); [`blobcache`]: small blobs
//!   in memory.
//!
//! Memory stays bounded: downloads stream from disk in 64 KiB chunks past a small in-memory
//! blob cache, and connections are capped.
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

mod attached;
pub mod auth;
mod blobcache;
pub mod bridge;
mod chart_repo;
pub mod http;
pub mod index;
pub mod library;
mod listener;
pub mod log;
mod memory;
pub mod metrics;
mod names;
mod registry_api;
mod router;
mod signed;
mod upstream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use auth::Htpasswd;
pub use bridge::ClassicOptions;
use index::ChartUrls;
pub use library::Library;
use listener::Limits;
pub use log::{Log, LogFormat};
use metrics::Metrics;
use router::State;
pub use upstream::UpstreamOptions;

/// What `--upstream` names.
pub enum UpstreamSpec {
    /// A registry (and path prefix): a pull-through cache of it.
    Registry(UpstreamOptions),
    /// A classic repository: served as OCI through the copy engine (the classic bridge).
    Classic(ClassicOptions),
}

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
    #[error(
        "--chart-url oci needs the host clients reach this server by: give --base-url (listening on {0}, which is every address)"
    )]
    OciHost(String),
    #[error("--base-url {0}: not an http:// or https:// URL with a host")]
    BaseUrl(String),
}

/// Everything `serve` is told.
pub struct ServeOptions {
    pub listen: String,
    /// Where clients reach the server: chart URLs in index entries are made absolute under it.
    pub base_url: Option<String>,
    /// Index entries point at the registry API (`oci://HOST/NAME:TAG`) instead.
    pub oci_urls: bool,
    pub upstream: Option<UpstreamSpec>,
    pub htpasswd: Option<Htpasswd>,
    /// Certificate chain and key, both PEM.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub log: Log,
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

/// Runs the server until SIGTERM or Ctrl-C. `ready` gets the base URL once it listens.
pub async fn serve(
    store: Store,
    options: ServeOptions,
    ready: impl FnOnce(&str),
) -> Result<(), ServeError> {
    memory::limit_arenas();
    let tls = match &options.tls {
        Some((cert, key)) => Some(listener::tls_acceptor(cert, key)?),
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
    let urls = chart_urls(options.base_url, options.oci_urls, local)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    ready(&format!("{scheme}://{local}"));

    let limits = Limits {
        header_timeout: options.header_timeout,
        write_timeout: options.write_timeout,
        min_write_bytes: options.min_write_bytes,
    };
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(State {
        library: Arc::new(Library::new(
            store,
            urls,
            options.upstream,
            options.memory_cache,
            options.log,
            Arc::clone(&metrics),
        )),
        htpasswd: options.htpasswd.map(Arc::new),
        log: options.log,
        metrics,
    });
    listener::run(listener, tls, limits, options.max_connections, state).await;
    Ok(())
}

/// How index entries point at charts: `--chart-url oci` names this server's registry API by
/// the host of `--base-url`, else by the address it listens on (when that is one address).
fn chart_urls(
    base_url: Option<String>,
    oci: bool,
    local: std::net::SocketAddr,
) -> Result<ChartUrls, ServeError> {
    let host = |base: &str| {
        let url = reqwest::Url::parse(base).map_err(|_| ServeError::BaseUrl(base.into()))?;
        let host = url
            .host_str()
            .filter(|_| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| ServeError::BaseUrl(base.into()))?;
        Ok(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    };
    match (base_url, oci) {
        (Some(base), true) => Ok(ChartUrls::Oci(host(&base)?)),
        (None, true) if local.ip().is_unspecified() => Err(ServeError::OciHost(local.to_string())),
        (None, true) => Ok(ChartUrls::Oci(local.to_string())),
        (Some(base), false) => {
            host(&base)?;
            Ok(ChartUrls::Absolute(base))
        }
        (None, false) => Ok(ChartUrls::Relative),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_chart_urls_name_this_server() {
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        // By the host of --base-url (its port kept, its path dropped) ...
        assert_eq!(
            chart_urls(
                Some("https://charts.example.com:8443/team".into()),
                true,
                any
            )
            .unwrap(),
            ChartUrls::Oci("charts.example.com:8443".into())
        );
        assert_eq!(
            chart_urls(Some("https://charts.example.com/".into()), true, any).unwrap(),
            ChartUrls::Oci("charts.example.com".into())
        );
        // ... else by the one address it listens on; never by 0.0.0.0, which no client can use.
        assert_eq!(
            chart_urls(None, true, local).unwrap(),
            ChartUrls::Oci("127.0.0.1:8080".into())
        );
        assert!(matches!(
            chart_urls(None, true, any),
            Err(ServeError::OciHost(_))
        ));
        for bad in [
            "charts.example.com",
            "ftp://charts.example.com/",
            "https://",
        ] {
            assert!(
                matches!(
                    chart_urls(Some(bad.into()), true, local),
                    Err(ServeError::BaseUrl(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            chart_urls(Some("https://c.example/x".into()), false, local).unwrap(),
            ChartUrls::Absolute("https://c.example/x".into())
        );
        assert_eq!(chart_urls(None, false, any).unwrap(), ChartUrls::Relative);
    }
}
