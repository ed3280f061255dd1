//! Resuming a download that stopped early (a connection dropped, a body stalled), for registry
//! blobs and classic chart archives alike.
//!
//! The download writes into a file it is lent for the whole time ([`Partial`]), hashing what it
//! writes; the file and the hash only change together, so a restart from byte 0 cannot leave
//! either behind. To resume, the next request asks for the rest (`Range: bytes=N-`, with
//! `If-Range` and the strong `ETag` of the first answer when there was one), and the answer
//! says what to do ([`answer`]): a `206` whose `Content-Range` starts at N (and agrees on the
//! total) is appended; a `200` is the whole thing again, written from byte 0; anything else
//! about ranges is not trusted and the download starts over without one.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_RANGE, RANGE};

use crate::digest::{Digest, HashingWriter};

/// Bytes received so far into a file, and their hash.
pub struct Partial<'f> {
    out: Option<HashingWriter<BufWriter<&'f mut File>>>,
    len: u64,
}

impl<'f> Partial<'f> {
    /// Starts with `file` emptied.
    pub fn new(file: &'f mut File) -> std::io::Result<Self> {
        empty(file)?;
        Ok(Partial {
            out: Some(writer(file)),
            len: 0,
        })
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`.
    pub fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        let out = self.out.as_mut().ok_or_else(lost)?;
        out.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Drops everything received: the file is emptied and the hash starts over.
    pub fn restart(&mut self) -> std::io::Result<()> {
        let file = self.take()?;
        empty(file)?;
        self.out = Some(writer(file));
        self.len = 0;
        Ok(())
    }

    /// The digest and length of everything written, all of it in the file.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        let out = self.out.take().ok_or_else(lost)?;
        let (buffered, digest, len) = out.finish();
        buffered.into_inner().map_err(|e| e.into_error())?.flush()?;
        Ok((digest, len))
    }

    fn take(&mut self) -> std::io::Result<&'f mut File> {
        let out = self.out.take().ok_or_else(lost)?;
        let (buffered, _, _) = out.finish();
        buffered.into_inner().map_err(|e| e.into_error())
    }
}

fn lost() -> std::io::Error {
    std::io::Error::other("the download's file was lost after a write error")
}

fn writer(file: &mut File) -> HashingWriter<BufWriter<&mut File>> {
    HashingWriter::new(BufWriter::with_capacity(256 * 1024, file))
}

fn empty(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.rewind()
}

/// What a server said that lets a download resume: its strong `ETag`, if any.
#[derive(Debug, Clone, Default)]
pub struct Validator(Option<HeaderValue>);

impl Validator {
    /// From the answer that started the download. A weak `ETag` (`W/"…"`) cannot be used with
    /// `If-Range`.
    pub fn of(headers: &HeaderMap) -> Self {
        Validator(
            headers
                .get(ETAG)
                .filter(|v| !v.as_bytes().starts_with(b"W/"))
                .cloned(),
        )
    }

    /// The headers asking for the bytes from `from` on: `Range`, and `If-Range` with the
    /// `ETag` (so a changed file comes whole, with a 200).
    pub fn range_headers(&self, from: u64) -> Vec<(HeaderName, HeaderValue)> {
        // Digits and ASCII: always a valid header value.
        let mut headers: Vec<_> = HeaderValue::try_from(format!("bytes={from}-"))
            .ok()
            .map(|range| (RANGE, range))
            .into_iter()
            .collect();
        if let Some(etag) = &self.0 {
            headers.push((IF_RANGE, etag.clone()));
        }
        headers
    }
}

/// What to do with an answer to a download request, made with `have` bytes already received
/// (a `Range` was asked for when `have > 0`) of a file of `total` bytes when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The whole file from byte 0: drop what was received, then write the body.
    Whole,
    /// The rest: append the body.
    Rest,
    /// A range answer that does not fit (not where asked, another total, unparsable, 416): do
    /// not use it; start over without a range.
    BadRange(String),
    /// Not a download answer (an error status): the caller's error.
    Failed,
}

/// Reads an answer; see [`Answer`].
pub fn answer(status: StatusCode, headers: &HeaderMap, have: u64, total: Option<u64>) -> Answer {
    match status.as_u16() {
        206 if have > 0 => {
            let range = headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok());
            match range.map(content_range) {
                Some(Some((start, end, whole))) => {
                    if start != have {
                        Answer::BadRange(format!(
                            "asked for bytes from {have}, the server sent {start}-{end}"
                        ))
                    } else if let (Some(t), Some(w)) = (total, whole)
                        && t != w
                    {
                        Answer::BadRange(format!("the file was {t} bytes, now {w}"))
                    } else {
                        Answer::Rest
                    }
                }
                _ => Answer::BadRange(format!(
                    "a partial answer with an unusable Content-Range {:?}",
                    range.unwrap_or("")
                )),
            }
        }
        206 => Answer::BadRange("a partial answer to a request for the whole".into()),
        416 if have > 0 => Answer::BadRange("the server refused the range".into()),
        200..=299 => Answer::Whole,
        _ => Answer::Failed,
    }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): start, end (inclusive) and the total if given.
fn content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, whole) = rest.split_once('/')?;
    let (start, end) = span.trim().split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let whole = match whole.trim() {
        "*" => None,
        n => Some(n.parse::<u64>().ok()?),
    };
    if end < start || whole.is_some_and(|w| end >= w) {
        return None;
    }
    Some((start, end, whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range("bytes 10-19/20"), Some((10, 19, Some(20))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 19, None)));
        assert_eq!(content_range("bytes 19-10/20"), None);
        assert_eq!(content_range("bytes 10-20/20"), None);
        assert_eq!(content_range("bytes */20"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn answers_decide_append_or_restart() {
        let ok = StatusCode::OK;
        let partial = StatusCode::PARTIAL_CONTENT;
        let h = HeaderMap::new();
        assert_eq!(answer(ok, &h, 0, Some(20)), Answer::Whole);
        assert_eq!(answer(ok, &h, 10, Some(20)), Answer::Whole);
        let rest = headers(&[(CONTENT_RANGE, "bytes 10-19/20")]);
        assert_eq!(answer(partial, &rest, 10, Some(20)), Answer::Rest);
        assert_eq!(answer(partial, &rest, 10, None), Answer::Rest);
        assert!(matches!(
            answer(partial, &rest, 5, Some(20)),
            Answer::BadRange(_)
        ));
        assert!(matches!(
            answer(partial, &rest, 10, Some(30)),
            Answer::BadRange(_)
        ));
        assert!(matches!(
            answer(partial, &h, 10, Some(20)),
            Answer::BadRange(_)
        ));
        assert!(matches!(
            answer(partial, &rest, 0, Some(20)),
            Answer::BadRange(_)
        ));
        assert!(matches!(
            answer(StatusCode::RANGE_NOT_SATISFIABLE, &h, 10, Some(20)),
            Answer::BadRange(_)
        ));
        assert_eq!(
            answer(StatusCode::NOT_FOUND, &h, 10, Some(20)),
            Answer::Failed
        );
    }

    #[test]
    fn range_headers_carry_a_strong_etag_only() {
        let strong = Validator::of(&headers(&[(ETAG, "\"sha256:abc\"")]));
        let asked = strong.range_headers(42);
        assert_eq!(asked[0], (RANGE, HeaderValue::from_static("bytes=42-")));
        assert_eq!(
            asked[1],
            (IF_RANGE, HeaderValue::from_static("\"sha256:abc\""))
        );
        let weak = Validator::of(&headers(&[(ETAG, "W/\"x\"")]));
        assert_eq!(weak.range_headers(1).len(), 1);
        assert_eq!(Validator::default().range_headers(1).len(), 1);
    }

    #[test]
    fn a_partial_file_and_its_hash_start_over_together() {
        let mut file = tempfile::tempfile().expect("tempfile");
        std::io::Write::write_all(&mut file, b"stale bytes from before").expect("write");
        let mut p = Partial::new(&mut file).expect("partial");
        p.append(b"hello ").expect("append");
        p.restart().expect("restart");
        assert!(p.is_empty());
        p.append(b"hello ").expect("append");
        p.append(b"world").expect("append");
        assert_eq!(p.len(), 11);
        let (digest, len) = p.finish().expect("finish");
        assert_eq!(len, 11);
        assert_eq!(digest, Digest::of(b"hello world"));
        let mut back = String::new();
        file.rewind().expect("rewind");
        file.read_to_string(&mut back).expect("read");
        assert_eq!(back, "hello world");
    }
}
