//! A registry that misbehaves on purpose: a plain-HTTP/1.1 server on 127.0.0.1 (one thread
//! per connection, `Connection: close`) whose answers a test decides, for the faults a real
//! registry never makes. `GET /v2/` answers 200; everything else goes to the test's handler
//! (404 when it has no answer). A TLS ClientHello is dropped at once, so a loopback client
//! that probes HTTPS first learns quickly that this port speaks plain HTTP.
//!
//! Hostile answers too, for `tests/hostile_registry.rs`: none at all ([`Response::Hang`]), a
//! body trickling in ([`Response::Trickle`]), one that stops mid-way and holds the connection
//! ([`Response::Stall`]), and huge bodies streamed without being held ([`Response::Huge`]).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::sha256_hex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum Response {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `declared` bytes in `Content-Length`, sends only `body`, then closes.
    Truncated {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        declared: usize,
    },
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Headers announcing `declared` bytes, then one byte every `every`.
    Trickle {
        headers: Vec<(String, String)>,
        declared: usize,
        every: Duration,
    },
    /// Headers announcing `declared` bytes, `body`, then silence with the connection open.
    Stall {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        declared: usize,
    },
    /// `status` with `size` bytes of `fill`, streamed; with `declare` a `Content-Length`,
    /// else a body delimited by closing the connection.
    Huge {
        status: u16,
        headers: Vec<(String, String)>,
        size: u64,
        fill: u8,
        declare: bool,
    },
}

impl Response {
    /// An empty answer with `status` (an OCI error body for 4xx/5xx).
    pub fn status(status: u16) -> Response {
        let body = if status >= 400 {
            json!({"errors": [{"code": "UNKNOWN", "message": "the fake registry failed on purpose"}]})
                .to_string()
                .into_bytes()
        } else {
            Vec::new()
        };
        Response::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// `status` with a plain-text body (no OCI error envelope).
    pub fn plain_status(status: u16, text: &str) -> Response {
        Response::Full {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    /// 200 with `body` as `content_type`.
    pub fn ok(body: &[u8], content_type: &str) -> Response {
        Response::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }

    /// The first `keep` bytes of `data`, announced as all of it (`Content-Length`), then the
    /// connection closes: a body cut off.
    pub fn cut(data: &[u8], keep: usize, headers: &[(&str, &str)]) -> Response {
        Response::Truncated {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: data[..keep].to_vec(),
            declared: data.len(),
        }
    }

    /// `data` as a server honouring `Range: bytes=N-` answers `req`: 206 with a
    /// `Content-Range` for a range it can serve, 200 with all of it otherwise.
    pub fn ranged(req: &Request, data: &[u8], headers: &[(&str, &str)]) -> Response {
        let from = req
            .header("Range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < data.len());
        let mut answer = match from {
            Some(n) => Response::Full {
                status: 206,
                headers: vec![(
                    "Content-Range".into(),
                    format!("bytes {n}-{}/{}", data.len() - 1, data.len()),
                )],
                body: data[n..].to_vec(),
            },
            None => Response::ok(data, "application/octet-stream"),
        };
        for (k, v) in headers {
            answer = answer.with_header(k, v);
        }
        answer
    }

    /// The same answer with another status.
    pub fn with_status(mut self, code: u16) -> Response {
        if let Response::Full { status, .. } = &mut self {
            *status = code;
        }
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        match &mut self {
            Response::Full { headers, .. }
            | Response::Truncated { headers, .. }
            | Response::Trickle { headers, .. }
            | Response::Stall { headers, .. }
            | Response::Huge { headers, .. } => headers.push((name.into(), value.into())),
            Response::Hang => {}
        }
        self
    }
}

type Handler = dyn Fn(&Request) -> Option<Response> + Send + Sync;

struct Inner {
    stop: AtomicBool,
    handler: Box<Handler>,
    log: Mutex<Vec<String>>,
    /// The handler answers `GET /v2/` too (else it is a 200).
    handles_ping: bool,
    /// Body bytes written so far.
    sent: AtomicU64,
}

/// The server; stops on drop.
pub struct FakeRegistry {
    addr: SocketAddr,
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    /// Serves with `handler` deciding every answer but `GET /v2/` (None: 404).
    pub fn start(handler: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static) -> Self {
        Self::start_inner(handler, false)
    }

    /// Serves with `handler` deciding every answer, `GET /v2/` included (None: 200 there).
    pub fn start_with_ping(
        handler: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    ) -> Self {
        Self::start_inner(handler, true)
    }

    /// Body bytes the server has written so far (into the socket buffers, at least).
    pub fn body_bytes_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::SeqCst)
    }

    fn start_inner(
        handler: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
        handles_ping: bool,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake registry");
        let addr = listener.local_addr().expect("fake registry addr");
        let inner = Arc::new(Inner {
            stop: AtomicBool::new(false),
            handler: Box::new(handler),
            log: Mutex::new(Vec::new()),
            handles_ping,
            sent: AtomicU64::new(0),
        });
        let accept_inner = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("fake-registry".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if accept_inner.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let inner = Arc::clone(&accept_inner);
                    std::thread::spawn(move || serve(stream, &inner));
                }
            })
            .expect("spawn fake registry");
        FakeRegistry {
            addr,
            inner,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `METHOD PATH` of every request answered so far (but `/v2/` pings), oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.inner.log.lock().expect("log").clone()
    }

    /// How many requests `METHOD PATH` were made.
    pub fn count(&self, method: &str, path: &str) -> usize {
        let want = format!("{method} {path}");
        self.requests().iter().filter(|r| **r == want).count()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        // 0x16: a TLS handshake record. This server speaks plain HTTP only.
        Ok(1) if first[0] == 0x16 => {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        Ok(1) => {}
        _ => return,
    }
    let Some(req) = read_request(&stream) else {
        return;
    };
    let response = if req.method == "GET" && req.path == "/v2/" {
        let answer = if inner.handles_ping {
            (inner.handler)(&req)
        } else {
            None
        };
        answer.unwrap_or_else(|| Response::ok(b"{}", "application/json"))
    } else {
        inner
            .log
            .lock()
            .expect("log")
            .push(format!("{} {}", req.method, req.path));
        (inner.handler)(&req).unwrap_or_else(|| Response::status(404))
    };
    write_response(&mut stream, &req, response, inner);
}

/// Sleeps `d` unless the server stops first; false if it did.
fn pause(inner: &Inner, d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if inner.stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(d));
    }
    true
}

fn head(status: u16, declared: Option<u64>, headers: &[(String, String)]) -> String {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
    );
    if let Some(n) = declared {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The hostile answers; false if `response` is an ordinary one.
fn write_hostile(stream: &mut TcpStream, response: &Response, inner: &Inner) -> bool {
    // Hostile answers outlive the usual 10 s write timeout only as long as the test runs.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    match response {
        Response::Hang => {
            pause(inner, Duration::from_secs(120));
        }
        Response::Trickle {
            headers,
            declared,
            every,
        } => {
            let _ = stream.write_all(head(200, Some(*declared as u64), headers).as_bytes());
            for _ in 0..*declared {
                if !pause(inner, *every) || stream.write_all(b"x").is_err() {
                    break;
                }
                inner.sent.fetch_add(1, Ordering::SeqCst);
            }
        }
        Response::Stall {
            headers,
            body,
            declared,
        } => {
            let _ = stream.write_all(head(200, Some(*declared as u64), headers).as_bytes());
            if stream.write_all(body).is_ok() {
                inner.sent.fetch_add(body.len() as u64, Ordering::SeqCst);
            }
            let _ = stream.flush();
            pause(inner, Duration::from_secs(120));
        }
        Response::Huge {
            status,
            headers,
            size,
            fill,
            declare,
        } => {
            let declared = declare.then_some(*size);
            let _ = stream.write_all(head(*status, declared, headers).as_bytes());
            let chunk = vec![*fill; 64 << 10];
            let mut left = *size;
            while left > 0 && !inner.stop.load(Ordering::SeqCst) {
                let n = left.min(chunk.len() as u64) as usize;
                if stream.write_all(&chunk[..n]).is_err() {
                    break;
                }
                inner.sent.fetch_add(n as u64, Ordering::SeqCst);
                left -= n as u64;
            }
        }
        _ => return false,
    }
    let _ = stream.shutdown(Shutdown::Both);
    true
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn write_response(stream: &mut TcpStream, req: &Request, response: Response, inner: &Inner) {
    if write_hostile(stream, &response, inner) {
        return;
    }
    let (status, headers, body, declared) = match response {
        Response::Full {
            status,
            headers,
            body,
        } => {
            let n = body.len();
            (status, headers, body, n)
        }
        Response::Truncated {
            headers,
            body,
            declared,
        } => (200, headers, body, declared),
        _ => return,
    };
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {declared}\r\nConnection: close\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if req.method != "HEAD" {
        let _ = stream.write_all(&body);
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// A Helm chart artifact (manifest, config, chart layer) a [`FakeRegistry`] can serve.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Repository path, like `myrepo/mychart`.
    pub repo: String,
    pub tag: String,
    pub manifest: Vec<u8>,
    /// `sha256:…` of `manifest`.
    pub manifest_digest: String,
    pub config_digest: String,
    pub chart_digest: String,
    /// `sha256:…` → bytes.
    pub blobs: HashMap<String, Vec<u8>>,
}

impl Artifact {
    /// The artifact `helm push` would make of `tgz` (a chart `name`/`version`).
    pub fn chart(repo: &str, tag: &str, name: &str, version: &str, tgz: &[u8]) -> Artifact {
        let config = json!({"apiVersion": "v2", "name": name, "version": version})
            .to_string()
            .into_bytes();
        let config_digest = format!("sha256:{}", sha256_hex(&config));
        let chart_digest = format!("sha256:{}", sha256_hex(tgz));
        let manifest = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": chart_digest, "size": tgz.len()}],
            "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": version},
        })
        .to_string()
        .into_bytes();
        let manifest_digest = format!("sha256:{}", sha256_hex(&manifest));
        let mut blobs = HashMap::new();
        blobs.insert(config_digest.clone(), config);
        blobs.insert(chart_digest.clone(), tgz.to_vec());
        Artifact {
            repo: repo.into(),
            tag: tag.into(),
            manifest,
            manifest_digest,
            config_digest,
            chart_digest,
            blobs,
        }
    }

    pub fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.repo)
    }

    pub fn blob_path(&self, digest: &str) -> String {
        format!("/v2/{}/blobs/{digest}", self.repo)
    }

    /// The manifest (by tag or digest, GET or HEAD) and blobs, as a registry serves them.
    pub fn serve(&self, req: &Request) -> Option<Response> {
        if req.method != "GET" && req.method != "HEAD" {
            return None;
        }
        if req.path == self.manifest_path(&self.tag)
            || req.path == self.manifest_path(&self.manifest_digest)
        {
            return Some(
                Response::ok(&self.manifest, OCI_MANIFEST)
                    .with_header("Docker-Content-Digest", &self.manifest_digest),
            );
        }
        let digest = req
            .path
            .strip_prefix(&format!("/v2/{}/blobs/", self.repo))?;
        let data = self.blobs.get(digest)?;
        Some(
            Response::ok(data, "application/octet-stream")
                .with_header("Docker-Content-Digest", digest),
        )
    }
}
