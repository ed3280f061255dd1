//! TLS client certificates, around `oci-client`.
//!
//! `oci-client` builds its own HTTP client and cannot present a client certificate. When one
//! is configured, `oci-client` speaks plain HTTP to this forward proxy on 127.0.0.1, which sends
//! each request on to the one registry it serves over HTTPS, presenting the certificate
//! (reqwest supports identities), and streams bodies both ways. It lives as long as the command,
//! refuses any other host, and rewrites `Location` headers so uploads come back through it.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, std::io::Error>;

/// A running proxy; stops when dropped.
pub struct CertProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl CertProxy {
    /// Starts a proxy forwarding to `https://{host}` with `https` (which carries the identity).
    pub async fn start(https: reqwest::Client, host: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (https, host) = (https.clone(), host.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(https.clone(), host.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(CertProxy { addr, task })
    }

    /// The proxy URL to give `oci-client` as its HTTP proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CertProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let body = http_body_util::Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

async fn forward(
    https: reqwest::Client,
    host: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let uri = req.uri();
    if uri.authority().map(|a| a.as_str()) != Some(host.as_str()) {
        return Ok(plain(
            StatusCode::FORBIDDEN,
            format!("this proxy only serves {host}"),
        ));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("https://{host}{path}");
    let mut headers = req.headers().clone();
    for h in [
        "host",
        "connection",
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "transfer-encoding",
    ] {
        headers.remove(h);
    }
    let method = req.method().clone();
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let upstream = https
        .request(method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                super::error::describe_reqwest(&e),
            ));
        }
    };
    let mut resp = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if name == "location"
            && let Ok(v) = value.to_str()
            && let Some(rest) = v.strip_prefix(&format!("https://{host}"))
        {
            resp = resp.header(name, format!("http://{host}{rest}"));
        } else if name != "transfer-encoding" && name != "connection" {
            resp = resp.header(name, value);
        }
    }
    let stream = upstream
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(std::io::Error::other);
    Ok(resp
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, e.to_string())))
}
