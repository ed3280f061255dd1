//! Registry errors a user can act on: each names the host, keeps the registry's own words, and
//! knows whether a retry could help. They are classified from what the registry said: the HTTP
//! status and the OCI error body (`{"errors":[{"code","message"}]}`), read at most
//! [`MAX_ERROR_BODY`] bytes.

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
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Local(String),
}

impl RegistryError {
    /// Whether trying again could help (a dropped connection, a rate limit, a server error).
    /// A registry that does not answer in time, or answers too much, is not asked again.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } | RegistryError::Interrupted { .. } => true,
            RegistryError::Status { code, .. } => *code == 429 || (500..=599).contains(code),
            _ => false,
        }
    }

    /// The error for a registry's unsuccessful answer `code` with `body` (at most
    /// [`MAX_ERROR_BODY`] of it) to a request about `what`.
    pub(super) fn from_status(host: &str, what: &str, code: u16, body: &[u8]) -> Self {
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
            },
            401 | 403 => RegistryError::Unauthorized { host },
            404 => RegistryError::NotFound { host, what },
            _ => RegistryError::Status {
                host,
                what,
                code,
                message,
            },
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

fn is_tls(reason: &str) -> bool {
    reason.contains("certificate") || reason.contains("TLS") || reason.contains("tls")
}

/// A request that got no answer: a TLS failure, or a registry that cannot be reached.
pub(super) fn from_reqwest(host: &str, e: &reqwest::Error) -> RegistryError {
    let host = host.to_string();
    let reason = describe_reqwest(e);
    if is_tls(&reason) {
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
        let unknown = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
        assert!(matches!(
            RegistryError::from_status("h", "w", 400, unknown),
            RegistryError::BlobUnknown { .. }
        ));
        assert!(matches!(
            RegistryError::from_status("h", "w", 404, b""),
            RegistryError::NotFound { .. }
        ));
        assert!(matches!(
            RegistryError::from_status("h", "w", 401, b""),
            RegistryError::Unauthorized { .. }
        ));
        let limited = br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow"}]}"#;
        assert!(RegistryError::from_status("h", "w", 403, limited).is_transient());
        assert!(RegistryError::from_status("h", "w", 503, b"x").is_transient());
        assert!(!RegistryError::from_status("h", "w", 400, b"x").is_transient());
    }
}
