//! Registry errors a user can act on: each names the host, keeps the registry's own words, and
//! knows whether a retry could help. They are classified from what the registry said: the HTTP
//! status and the OCI error body (`{"errors":[{"code","message"}]}`), read at most
//! [`MAX_ERROR_BODY`] bytes; requests that got no answer, from the error types of the HTTP
//! stack (a `rustls::Error` anywhere in the chain is a TLS failure), never from their text.

use std::time::Duration;

use super::retry::gave_up_after;
use super::transport::show_duration;
use crate::digest::Digest;

/// Error bodies are read this far, no further: they only feed a message.
pub const MAX_ERROR_BODY: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{host}: unauthorized: run `chartcache registry login {host}` (or check the credentials)"
    )]
    Unauthorized { host: String },
    #[error("{host}: cannot connect: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{host}: {what}: connection lost: {reason}")]
    Interrupted {
        host: String,
        what: String,
        reason: String,
    },
    #[error(
        "{host}: TLS failed: {reason} (use --ca-file for a private CA, or --insecure to skip verification)"
    )]
    Tls { host: String, reason: String },
    #[error("{host}: {what}: not found")]
    NotFound { host: String, what: String },
    /// A manifest refused because the registry does not know one of its blobs
    /// (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`).
    #[error("{host}: {what}: registry answered {code}: {message}")]
    BlobUnknown {
        host: String,
        what: String,
        code: u16,
        message: String,
    },
    #[error("{host}: {what}: registry answered {code}: {message}")]
    Status {
        host: String,
        what: String,
        code: u16,
        message: String,
        /// The wait its `Retry-After` asked for, if any.
        retry_after: Option<Duration>,
    },
    /// No answer in time, or a body that stalled (`--read-timeout`).
    #[error("{host}: {what}: {reason}")]
    TimedOut {
        host: String,
        what: String,
        reason: String,
    },
    /// The registry asked (`Retry-After`) for a longer wait than chartcache makes.
    #[error(
        "{host}: {what}: the registry asks to wait {} before trying again (Retry-After), more than the {} chartcache waits; try again later",
        show_duration(*asked),
        show_duration(*allowed)
    )]
    WaitTooLong {
        host: String,
        what: String,
        asked: Duration,
        allowed: Duration,
    },
    #[error("{host}: {what}: {message}")]
    Other {
        host: String,
        what: String,
        message: String,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: expected {expected} bytes, received {actual}; nothing was stored")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A transient failure that lasted through every try: not tried again by anyone.
    #[error("{last}{}", gave_up_after(*tries))]
    GaveUp {
        tries: u32,
        last: Box<RegistryError>,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Local(String),
}

impl RegistryError {
    /// Whether trying again could help (a refused or dropped connection, a timeout, a rate
    /// limit, a server error; see [`super::retry`]). A TLS failure, a refusal, or an answer too
    /// large is not asked again.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::Interrupted { .. }
            | RegistryError::TimedOut { .. } => true,
            RegistryError::Status { code, .. } => super::retry::is_transient_status(*code),
            _ => false,
        }
    }

    /// The wait the registry asked for with this error (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The error for a registry's unsuccessful answer `code` with `body` (at most
    /// [`MAX_ERROR_BODY`] of it) to a request about `what`; `retry_after` is the wait its
    /// `Retry-After` header asks for.
    pub(super) fn from_status(
        host: &str,
        what: &str,
        code: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        let host = host.to_string();
        let what = what.to_string();
        let entries = oci_errors(body);
        let has = |names: &[&str]| entries.iter().any(|(c, _)| names.contains(&c.as_str()));
        let message = if entries.is_empty() {
            one_line(&String::from_utf8_lossy(body))
        } else {
            entries
                .iter()
                .map(|(c, m)| format!("{c}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match code {
            400 | 404 if has(&["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"]) => {
                RegistryError::BlobUnknown {
                    host,
                    what,
                    code,
                    message,
                }
            }
            // Docker Hub's rate limit can come as a 4xx with this code.
            _ if has(&["TOOMANYREQUESTS"]) => RegistryError::Status {
                host,
                what,
                code: 429,
                message,
                retry_after,
            },
            401 | 403 => RegistryError::Unauthorized { host },
            404 => RegistryError::NotFound { host, what },
            _ => RegistryError::Status {
                host,
                what,
                code,
                message,
                retry_after,
            },
        }
    }
}

impl super::retry::Transient for RegistryError {
    fn is_transient(&self) -> bool {
        RegistryError::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        RegistryError::retry_after(self)
    }

    fn gave_up(self, tries: u32) -> Self {
        RegistryError::GaveUp {
            tries,
            last: Box::new(self),
        }
    }
}

/// The first line of `text`, trimmed and cut to a readable length.
fn one_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// Whether `e` failed in TLS (the handshake, or the certificate's verification): a
/// `rustls::Error` in its chain of causes, itself or inside an I/O error (as tokio-rustls
/// reports it).
pub fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A request that got no answer: a TLS failure, or a registry that cannot be reached.
pub(super) fn from_reqwest(host: &str, e: &reqwest::Error) -> RegistryError {
    let host = host.to_string();
    let reason = describe_reqwest(e);
    if is_tls(e) {
        RegistryError::Tls { host, reason }
    } else {
        RegistryError::Unreachable { host, reason }
    }
}

/// The (code, message) pairs of an OCI error body; none when it is not one.
pub(super) fn oci_errors(body: &[u8]) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => env
            .errors
            .into_iter()
            .map(|e| (e.code.to_ascii_uppercase(), one_line(&e.message)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The messages of an OCI error body (`{"errors":[{"code","message"}]}`), else the text itself.
#[cfg(test)]
fn registry_message(body: &str) -> String {
    let entries = oci_errors(body.as_bytes());
    if entries.is_empty() {
        return one_line(body);
    }
    entries
        .iter()
        .map(|(c, m)| format!("{c}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A reqwest error with its causes, on one line (reqwest's own Display hides the cause).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_messages_keep_the_registry_words() {
        let body = r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#;
        assert_eq!(
            registry_message(body),
            "NAME_UNKNOWN: repository name not known"
        );
        assert_eq!(registry_message(" slow down \n"), "slow down");
    }

    #[test]
    fn statuses_and_codes_classify() {
        let status = |code, body: &[u8]| RegistryError::from_status("h", "w", code, None, body);
        let unknown = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        assert!(matches!(
            status(400, unknown),
            RegistryError::BlobUnknown { .. }
        ));
        assert!(matches!(status(404, b""), RegistryError::NotFound { .. }));
        assert!(matches!(
            status(401, b""),
            RegistryError::Unauthorized { .. }
        ));
        let limited = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow"}]}"#;
        assert!(status(403, limited).is_transient());
        assert!(status(503, b"x").is_transient());
        assert!(status(408, b"x").is_transient());
        assert!(!status(501, b"x").is_transient());
        assert!(!status(505, b"x").is_transient());
        assert!(!status(400, b"x").is_transient());
        let given_up = super::super::retry::Transient::gave_up(status(503, b"x"), 4);
        assert!(!given_up.is_transient());
        assert!(
            given_up.to_string().ends_with("(gave up after 4 tries)"),
            "{given_up}"
        );
        let once = super::super::retry::Transient::gave_up(status(503, b"x"), 1);
        assert_eq!(once.to_string(), status(503, b"x").to_string());
        let wait = Some(Duration::from_secs(2));
        assert_eq!(
            RegistryError::from_status("h", "w", 429, wait, b"").retry_after(),
            wait
        );
    }

    #[test]
    fn tls_failures_are_found_by_type_not_text() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls(&tls));
        assert!(is_tls(&rustls::Error::DecryptError));
        // Words alone do not make a TLS failure.
        let text = std::io::Error::other("certificate TLS tls");
        assert!(!is_tls(&text));
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert!(is_tls(&Outer(tls)));
    }
}
