//! Names the OCI API deals in: which repository a served name stands for ([`Namespace`]), a
//! tag or digest ([`Object`]), and the errors the API answers with ([`ApiError`]).

use hyper::StatusCode;

use crate::digest::Digest;
use crate::reference::{Reference, escape_host, unescape_host, valid_tag};

/// An answer the OCI API can give instead of content.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name:?} is not known"),
        )
    }

    pub(super) fn manifest_unknown(name: &str, reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {name}:{reference} is not known"),
        )
    }

    pub(super) fn blob_unknown(digest: &Digest) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {digest} is not known"),
        )
    }

    /// The server's own failure (500), with what went wrong.
    pub(super) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message)
    }

    pub(super) fn upstream(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UNKNOWN", format!("upstream: {e}"))
    }
}

/// How served repository names map to references.
#[derive(Debug, Clone)]
pub enum Namespace {
    /// `localhost_5000/myrepo/mychart` ⇄ `localhost:5000/myrepo/mychart`.
    Cache,
    /// `team/web` ⇄ `HOST/PREFIX/team/web`.
    Upstream { host: String, prefix: String },
}

impl Namespace {
    /// The repository a served name stands for, if it is a valid one.
    pub fn repository(&self, served: &str) -> Option<Reference> {
        if served.is_empty() || served.contains(['@', ':']) {
            return None;
        }
        let text = match self {
            Namespace::Cache => {
                let (host, path) = served.split_once('/')?;
                format!("{}/{path}", unescape_host(host))
            }
            Namespace::Upstream { host, prefix } if prefix.is_empty() => format!("{host}/{served}"),
            Namespace::Upstream { host, prefix } => format!("{host}/{prefix}/{served}"),
        };
        // The parser is lenient with user input (a leading `oci://`, surrounding spaces);
        // a served name must name its repository exactly, so it must map back to itself.
        let r = Reference::parse(&text).ok()?;
        (self.served(&r).as_deref() == Some(served)).then_some(r)
    }

    /// The served name of a repository, if it lies in this namespace.
    pub fn served(&self, r: &Reference) -> Option<String> {
        match self {
            Namespace::Cache => Some(format!("{}/{}", escape_host(r.host()), r.path())),
            Namespace::Upstream { host, prefix } => {
                if r.host() != host {
                    return None;
                }
                if prefix.is_empty() {
                    return Some(r.path().to_string());
                }
                r.path()
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(str::to_string)
            }
        }
    }
}

/// A tag or a digest, as the OCI API names a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Tag(String),
    Digest(Digest),
}

impl Object {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.contains(':') {
            return Digest::parse(text).map(Object::Digest).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
            });
        }
        if valid_tag(text) {
            Ok(Object::Tag(text.to_string()))
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("{text:?} is not a valid tag"),
            ))
        }
    }

    pub(super) fn on(&self, repo: &Reference) -> Option<Reference> {
        match self {
            Object::Tag(t) => repo.with_tag(t).ok(),
            Object::Digest(d) => Reference::parse(&format!("{}@{d}", repo.repository())).ok(),
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Tag(t) => f.write_str(t),
            Object::Digest(d) => write!(f, "{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_round_trip() {
        let ns = Namespace::Cache;
        let r = Reference::parse("localhost:5000/my_repo/chart").unwrap();
        let served = ns.served(&r).unwrap();
        assert_eq!(served, "localhost_5000/my_repo/chart");
        assert_eq!(ns.repository(&served).unwrap(), r);
        assert!(ns.repository("localhost_5000").is_none());
        assert!(ns.repository("").is_none());
        assert!(ns.repository("a_b_c/x").is_none());
        assert!(ns.repository("localhost_5000/Upper").is_none());
    }

    #[test]
    fn served_names_that_parse_as_another_repository_are_refused() {
        let ns = Namespace::Cache;
        // `oci_` unescapes to `oci:`, and the parser drops a leading `oci://`.
        assert!(ns.repository("oci_//localhost/x").is_none());
        assert!(ns.repository(" localhost_5000/x").is_none());
        assert!(ns.repository("localhost_5000/x ").is_none());
    }

    #[test]
    fn upstream_names_are_relative_to_the_prefix() {
        let ns = Namespace::Upstream {
            host: "reg.example.com:5000".into(),
            prefix: "charts".into(),
        };
        let r = ns.repository("team/web").unwrap();
        assert_eq!(r.to_string(), "reg.example.com:5000/charts/team/web");
        assert_eq!(ns.served(&r).as_deref(), Some("team/web"));
        let other = Reference::parse("reg.example.com:5000/chartsx/web").unwrap();
        assert_eq!(ns.served(&other), None);
        let elsewhere = Reference::parse("other.example.com/charts/web").unwrap();
        assert_eq!(ns.served(&elsewhere), None);
        let bare = Namespace::Upstream {
            host: "reg".into(),
            prefix: String::new(),
        };
        assert_eq!(bare.repository("web").unwrap().to_string(), "reg/web");
    }

    #[test]
    fn objects() {
        assert_eq!(Object::parse("1.0.0").unwrap(), Object::Tag("1.0.0".into()));
        let d = Digest::of(b"x");
        assert_eq!(Object::parse(&d.to_string()).unwrap(), Object::Digest(d));
        assert_eq!(
            Object::parse("sha256:zz").unwrap_err().code,
            "DIGEST_INVALID"
        );
        assert_eq!(
            Object::parse("md5:abc").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(Object::parse("-bad").unwrap_err().code, "MANIFEST_UNKNOWN");
    }
}
