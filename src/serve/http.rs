//! HTTP plumbing for `serve`: bodies, byte ranges, conditional requests, the error bodies
//! of the OCI distribution spec, and [`RateFloor`], the guard against clients that read a
//! download too slowly. Nothing here knows about charts.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub type Body = UnsyncBoxBody<Bytes, io::Error>;

/// How much of a file one read brings: what one streamed download holds in memory.
const CHUNK: usize = 64 * 1024;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A plain-text response (index and chart routes).
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(full(format!("{message}\n")));
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    resp
}

/// An error as the OCI distribution spec writes it: `{"errors":[{"code","message"}]}`.
pub fn oci_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    set(&mut resp, header::CONTENT_TYPE, "application/json");
    resp
}

/// Sets a header, skipping values that are not valid header text (never user secrets).
pub fn set<R>(resp: &mut Response<R>, name: header::HeaderName, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        resp.headers_mut().insert(name, v);
    }
}

/// Where the bytes of a response come from.
pub enum Source {
    Memory(Bytes),
    /// A file of the given length, streamed in [`CHUNK`]s.
    File(PathBuf, u64),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Memory(b) => b.len() as u64,
            Source::File(_, len) => *len,
        }
    }
}

/// A chart download: its bytes and the blob they are.
pub struct Download {
    pub source: Source,
    pub digest: crate::digest::Digest,
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    Whole,
    /// Inclusive first and last byte.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges, or any other unit, are answered with
/// the whole body, which RFC 9110 allows.
pub fn parse_range(value: Option<&str>, len: u64) -> Range {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, true) => return Range::Whole,
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return Range::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => None,
        },
        (false, _) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), _) if last.is_empty() => Some((a, len.saturating_sub(1))),
            (Ok(a), Ok(b)) if b >= a => Some((a, b.min(len.saturating_sub(1)))),
            _ => None,
        },
    };
    match parsed {
        None => Range::Whole,
        Some((a, _)) if len == 0 || a >= len => Range::Unsatisfiable,
        Some((a, b)) => Range::Part(a, b),
    }
}

/// Whether `Accept-Encoding` takes gzip (`gzip`, `x-gzip` or `*`, with a q-value above 0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = None;
    let mut gzip = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Whether `If-None-Match` already names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// Serves `source` for a GET or HEAD: `Content-Length`, `ETag` / `If-None-Match`, and one byte
/// range. `extra` headers go on every answer.
pub async fn serve(
    method: &Method,
    headers: &HeaderMap,
    source: Source,
    content_type: &str,
    etag: &str,
    extra: &[(header::HeaderName, String)],
) -> Response<Body> {
    let len = source.len();
    let mut resp = Response::new(empty());
    for (name, value) in extra {
        set(&mut resp, name.clone(), value);
    }
    set(&mut resp, header::ETAG, etag);
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    if not_modified(headers, etag) {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return resp;
    }
    set(&mut resp, header::CONTENT_TYPE, content_type);
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let (start, count) = match range {
        Range::Whole => (0, len),
        Range::Part(a, b) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                &mut resp,
                header::CONTENT_RANGE,
                format!("bytes {a}-{b}/{len}"),
            );
            (a, b - a + 1)
        }
        Range::Unsatisfiable => {
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(&mut resp, header::CONTENT_RANGE, format!("bytes */{len}"));
            set(&mut resp, header::CONTENT_LENGTH, "0");
            return resp;
        }
    };
    set(&mut resp, header::CONTENT_LENGTH, count.to_string());
    if method == Method::HEAD {
        return resp;
    }
    *resp.body_mut() = match source {
        Source::Memory(bytes) => {
            let (a, n) = (start as usize, count as usize);
            full(bytes.slice(a..a + n))
        }
        Source::File(path, _) => match file_body(path, start, count).await {
            Ok(body) => body,
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot read the stored file: {e}"),
                );
            }
        },
    };
    resp
}

/// `count` bytes of a file from `start`, read one chunk at a time as the client takes them.
async fn file_body(path: PathBuf, start: u64, count: u64) -> io::Result<Body> {
    let mut file = tokio::fs::File::open(&path).await?;
    if start > 0 {
        file.seek(io::SeekFrom::Start(start)).await?;
    }
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stored file is shorter than its size",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(StreamBody::new(stream).boxed_unsync())
}

// ---- the write-rate floor ------------------------------------------------------------------

/// A connection's IO that fails its writes once the client, in a full `window` of waiting,
/// took fewer than `min_bytes`.
///
/// A write timeout alone ends a connection whose writes make no progress at all; a client
/// that reads a trickle (a segment now and then) makes some progress and would hold its
/// connection for as long as a download lasts at that pace: days, for a large chart. Only the
/// time the server spends waiting for the client (writes that return `Pending`) counts towards
/// a window, so a connection with nothing to send (idle, or waiting on the disk or an upstream)
/// is never held against its client.
pub struct RateFloor<S> {
    inner: S,
    meter: Meter,
    /// Wakes the connection when the window ends while its write is still waiting.
    timer: Pin<Box<Sleep>>,
}

impl<S> RateFloor<S> {
    pub fn new(inner: S, window: Duration, min_bytes: u64) -> Self {
        RateFloor {
            inner,
            meter: Meter::new(window, min_bytes),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// What a write that returned `Pending` does: fail if the window is over and too little
    /// went out in it, else wait for the inner IO or the end of the window, whichever is first.
    fn waiting(&mut self, cx: &mut Context<'_>, mut now: Instant) -> Poll<io::Result<usize>> {
        loop {
            let ends = self.meter.blocked(now);
            // The same end while one wait goes on: re-arm only when it moved.
            if self.timer.deadline() != ends {
                self.timer.as_mut().reset(ends);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            now = Instant::now();
            self.meter.check(now)?;
        }
    }

    /// Books the outcome of a write begun at `now`.
    fn after(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
        now: Instant,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) => {
                self.meter.wrote(now, n as u64);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.waiting(cx, now),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RateFloor<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RateFloor<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let now = Instant::now();
        this.meter.check(now)?;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after(result, cx, now)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let now = Instant::now();
        this.meter.check(now)?;
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after(result, cx, now)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The bookkeeping of [`RateFloor`], apart from any IO or clock so it can be tested with
/// made-up instants.
#[derive(Debug)]
struct Meter {
    window: Duration,
    min_bytes: u64,
    /// Waiting time of this window, not counting the wait under way.
    waited: Duration,
    /// When the wait under way began.
    waiting_since: Option<Instant>,
    /// Bytes written in this window.
    written: u64,
}

impl Meter {
    fn new(window: Duration, min_bytes: u64) -> Self {
        Meter {
            window: window.max(Duration::from_millis(1)),
            min_bytes,
            waited: Duration::ZERO,
            waiting_since: None,
            written: 0,
        }
    }

    /// Ends the window if a full one has been waited: an error if too little was written in
    /// it, else a new window begins.
    fn check(&mut self, now: Instant) -> io::Result<()> {
        let ongoing = self
            .waiting_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        if self.waited + ongoing < self.window {
            return Ok(());
        }
        let window = humantime::format_duration(self.window);
        if self.written == 0 {
            // The same end as the write timeout's, whichever of the two sees it first.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing for {window}"),
            ));
        }
        if self.written < self.min_bytes {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took {} bytes in {window} of waiting, under the {} required",
                    self.written, self.min_bytes
                ),
            ));
        }
        self.waited = Duration::ZERO;
        self.written = 0;
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
        Ok(())
    }

    /// A write of `n` bytes went out; any wait is over.
    fn wrote(&mut self, now: Instant, n: u64) {
        self.written = self.written.saturating_add(n);
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
    }

    /// A write has to wait (from `now`, unless it already was); returns when the window ends
    /// if the wait goes on. A window counts from its first wait: what went out before it went
    /// into socket buffers at once and says nothing of the client's pace.
    fn blocked(&mut self, now: Instant) -> Instant {
        if self.waiting_since.is_none() && self.waited.is_zero() {
            self.written = 0;
        }
        let since = *self.waiting_since.get_or_insert(now);
        since + self.window.saturating_sub(self.waited)
    }
}

/// Decodes `%XX` escapes in a URL path once; `None` if that does not give UTF-8.
pub fn percent_decode(path: &str) -> Option<String> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// What [`query_escape`] leaves as it is: RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` escaped for a query value (`a/b:c` is `a%2Fb%3Ac`).
pub fn query_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// The value of `key` in a query string, percent-decoded.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| percent_decode(&v.replace('+', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Range::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Range::Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Range::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Range::Part(0, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Range::Part(5, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=3-1"), 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Range::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Range::Whole);
    }

    #[test]
    fn gzip_is_taken_when_offered_without_q_zero() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, gzip;q=0.5, br"));
        assert!(with("GZIP"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("*, gzip;q=0"));
        assert!(!with("identity"));
        assert!(!with("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn etags_match_lists_and_weak_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(not_modified(&h, "\"a\"") && not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
        assert!(!not_modified(&HeaderMap::new(), "\"a\""));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_meter_counts_only_time_spent_waiting_for_the_client() {
        let t0 = Instant::now();
        let mut m = Meter::new(ms(1000), 100);
        // Writes that never wait never end a window, however long the connection lives.
        m.wrote(t0, 10);
        assert!(m.check(t0 + ms(5000)).is_ok());
        // Waits add up across writes: 600 ms, then 300 ms, then 100 ms more is a full window.
        m.blocked(t0 + ms(5000));
        m.wrote(t0 + ms(5600), 30);
        assert!(m.check(t0 + ms(9000)).is_ok(), "idle time does not count");
        assert_eq!(
            m.blocked(t0 + ms(9000)),
            t0 + ms(9400),
            "the window ends 400 ms on"
        );
        m.wrote(t0 + ms(9300), 30);
        m.blocked(t0 + ms(9300));
        let e = m.check(t0 + ms(9400)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("took 60 bytes"), "{e}");
    }

    #[test]
    fn the_meter_lets_a_client_at_the_floor_go_on_with_a_new_window() {
        let t0 = Instant::now();
        let mut m = Meter::new(ms(1000), 100);
        // What went out before the first wait (into socket buffers) does not count.
        m.wrote(t0, 1_000_000);
        assert_eq!(m.blocked(t0), t0 + ms(1000));
        m.wrote(t0 + ms(900), 100);
        m.blocked(t0 + ms(900));
        assert!(m.check(t0 + ms(1000)).is_ok(), "100 bytes in the window");
        // A new window began at 1000 ms, while the write still waits.
        assert_eq!(m.blocked(t0 + ms(1500)), t0 + ms(2000));
        assert!(m.check(t0 + ms(1999)).is_ok());
        assert!(
            m.check(t0 + ms(2000)).is_err(),
            "nothing in the second window"
        );
    }

    /// Writes `total` bytes through a [`RateFloor`] into a pipe whose other end reads `chunk`
    /// bytes every `every`; returns what the writer got.
    async fn pipe(total: usize, chunk: usize, every: Duration) -> io::Result<usize> {
        use tokio::io::AsyncWriteExt;
        let (near, mut far) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; chunk];
            loop {
                tokio::time::sleep(every).await;
                match far.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        let mut floor = RateFloor::new(near, ms(200), 256);
        let data = vec![7u8; total];
        let result = floor.write_all(&data).await.map(|()| total);
        reader.abort();
        result
    }

    #[tokio::test]
    async fn a_trickle_reader_is_cut_off_and_a_steady_one_is_not() {
        // 64 bytes every 10 ms is ~1280 bytes per 200 ms window: above the 256-byte floor.
        let started = std::time::Instant::now();
        assert_eq!(pipe(8 * 1024, 64, ms(10)).await.unwrap(), 8 * 1024);
        assert!(started.elapsed() >= ms(1000), "it did wait for the reader");
        // 1 byte every 10 ms makes progress all the time, but ~20 bytes a window.
        let started = std::time::Instant::now();
        let e = pipe(8 * 1024, 1, ms(10)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < ms(2000), "cut off after one window");
        // A reader that stops: the floor catches that too (the write timeout would first).
        let e = pipe(8 * 1024, 64, ms(60_000)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn paths_and_queries_decode() {
        assert_eq!(percent_decode("a%2Bb%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(
            query_param(Some("n=2&last=a%2Fb"), "last").as_deref(),
            Some("a/b")
        );
        assert_eq!(query_param(Some("n=2"), "last"), None);
        assert_eq!(query_param(None, "n"), None);
    }
}
