//! Registry errors a user can act on: each names the host, keeps the registry's own words, and
//! knows whether a retry could help. `oci-client` reports one failure several ways (a wrong
//! password is a `ServerError{401}` on push, `UnauthorizedError` on manifests, a reqwest status
//! error on `blob_exists`); they all become [`RegistryError::Unauthorized`] here.

use oci_client::errors::OciDistributionError as Oci;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{host}: unauthorized: run `chartcache registry login {host}` (or check the credentials)"
    )]
    Unauthorized { host: String },
    #[error("{host}: cannot connect: {reason}")]
    Unreachable { host: String, reason: String },
    #[error(
        "{host}: TLS failed: {reason} (use --ca-file for a private CA, or --insecure to skip verification)"
    )]
    Tls { host: String, reason: String },
    #[error("{host}: {what}: not found")]
    NotFound { host: String, what: String },
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
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { code, .. } => *code == 429 || (500..=599).contains(code),
            _ => false,
        }
    }

    pub(super) fn from_oci(host: &str, what: &str, e: Oci) -> Self {
        let host = host.to_string();
        let what = what.to_string();
        if is_unauthorized(&e) {
            return RegistryError::Unauthorized { host };
        }
        if is_not_found(&e) {
            return RegistryError::NotFound { host, what };
        }
        match e {
            Oci::RequestError(r) => match r.status() {
                Some(status) if !is_tls(&describe_reqwest(&r)) => RegistryError::Status {
                    host,
                    what,
                    code: status.as_u16(),
                    message: describe_reqwest(&r),
                },
                _ => from_reqwest(&host, &r),
            },
            Oci::ServerError { code, message, .. } => RegistryError::Status {
                host,
                what,
                code,
                message,
            },
            Oci::RegistryError { envelope, .. } => RegistryError::Other {
                host,
                what,
                message: envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            Oci::AuthenticationFailure(m) => RegistryError::Other {
                host,
                what,
                message: format!("authentication failed: {}", m.trim()),
            },
            other => RegistryError::Other {
                host,
                what,
                message: other.to_string(),
            },
        }
    }
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

/// The messages of an OCI error body (`{"errors":[{"code","message"}]}`), else the text itself.
pub(super) fn registry_message(body: &str) -> String {
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
    match serde_json::from_str::<Envelope>(body) {
        Ok(env) if !env.errors.is_empty() => env
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.trim().to_string(),
    }
}

fn status_of(e: &Oci) -> Option<u16> {
    match e {
        Oci::ServerError { code, .. } => Some(*code),
        Oci::RequestError(r) => r.status().map(|s| s.as_u16()),
        Oci::UnauthorizedError { .. } => Some(401),
        _ => None,
    }
}

fn is_unauthorized(e: &Oci) -> bool {
    matches!(status_of(e), Some(401 | 403))
        || matches!(e, Oci::UnauthorizedError { .. })
        || matches!(e, Oci::AuthenticationFailure(m) if m.to_ascii_lowercase().contains("unauthorized") || m.to_ascii_lowercase().contains("invalid"))
        || matches!(e, Oci::RegistryError { envelope, .. } if envelope.errors.iter().any(|x| format!("{:?}", x.code).contains("Unauthorized") || format!("{:?}", x.code).contains("Denied")))
}

pub(super) fn is_not_found(e: &Oci) -> bool {
    matches!(status_of(e), Some(404))
        || matches!(e, Oci::ImageManifestNotFoundError(_))
        || matches!(e, Oci::RegistryError { envelope, .. } if envelope.errors.iter().any(|x| format!("{:?}", x.code).contains("Unknown")))
}

/// Whether trying again could help: rate limits, server errors, dropped connections.
pub(super) fn is_transient(e: &Oci) -> bool {
    match e {
        Oci::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.is_body()
                || matches!(r.status().map(|s| s.as_u16()), Some(429 | 500..=599))
        }
        Oci::ServerError { code, .. } => *code == 429 || (500..=599).contains(code),
        // Docker Hub says 429 in an OCI error body, which oci-client files as a registry error.
        Oci::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            let code = format!("{:?}", x.code).to_ascii_lowercase();
            code.contains("toomanyrequests") || code.contains("unavailable")
        }),
        Oci::IoError(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
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
