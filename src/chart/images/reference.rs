//! Container image references, parsed and normalised the way Docker does it.
//!
//! Charts write images every which way (`nginx`, `bitnami/redis:7`, `quay.io/x/y@sha256:…`);
//! to de-duplicate them and to copy them later, each is brought to its full form:
//! `docker.io/library/nginx:1.25`. The grammar is the one of `distribution/reference`
//! (`ParseNormalizedNamed`): a first component with a `.` or a `:`, or `localhost`, is a
//! registry, anything else is on Docker Hub; a one-element Docker Hub path is under `library/`;
//! `index.docker.io` is `docker.io`; repository paths are lowercase; tags are at most 128 word
//! characters, dots and dashes; digests are `algorithm:hex`. Where the input has neither a tag
//! nor a digest the runtime pulls `:latest`, so the full form says so
//! ([`ImageRef::latest_implied`] tells that it was not written). A tag and a digest are both
//! kept. The registry host is lowercased (registries are DNS names); nothing else is changed.

use std::fmt;

/// Longest repository name (registry included) `distribution/reference` accepts.
pub const MAX_NAME: usize = 255;
/// Longest reference text looked at (longer text from a chart is refused before parsing).
pub const MAX_INPUT: usize = 4096;

/// Why a text is not an image reference. Each message quotes what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {MAX_INPUT} characters")]
    TooLong,
    #[error("it contains whitespace or a control character")]
    Whitespace,
    #[error("bad registry host {0:?}")]
    BadRegistry(String),
    #[error(
        "bad repository path component {0:?} (lowercase letters, digits and single . _ __ - separators)"
    )]
    BadComponent(String),
    #[error("the repository name is longer than {MAX_NAME} characters")]
    NameTooLong,
    #[error(
        "bad tag {0:?} (up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')"
    )]
    BadTag(String),
    #[error("bad digest {0:?} (algorithm:hex, like sha256: and 64 hex digits)")]
    BadDigest(String),
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `text` (surrounding whitespace is not allowed: callers trim).
    pub fn parse(text: &str) -> Result<Self, ImageRefError> {
        if text.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if text.len() > MAX_INPUT {
            return Err(ImageRefError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ImageRefError::Whitespace);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, d)) => (rest, Some(parse_digest(d)?)),
            None => (text, None),
        };
        // The tag follows the last ':' after the last '/' (a registry port comes before it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ImageRefError::BadTag(t.to_string()));
        }
        let (registry, path) = split_registry(name)?;
        let path = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if path.is_empty() {
            return Err(ImageRefError::BadComponent(String::new()));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(ImageRefError::BadComponent(component.to_string()));
            }
        }
        if registry.len() + 1 + path.len() > MAX_NAME {
            return Err(ImageRefError::NameTooLong);
        }
        Ok(ImageRef {
            registry,
            repository: path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host, with its port (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag as written; `None` when there was none (see [`Self::latest_implied`]).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), when one was written.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Neither a tag nor a digest was written: a runtime pulls `:latest`.
    pub fn latest_implied(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// The same image pinned to `digest` (tag kept).
    pub fn with_digest(&self, digest: Option<String>) -> Self {
        ImageRef {
            digest,
            ..self.clone()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.tag, &self.digest) {
            (Some(t), _) => write!(f, ":{t}")?,
            (None, None) => f.write_str(":latest")?,
            (None, Some(_)) => {}
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Splits off the registry as Docker does, normalised: lowercase, `index.docker.io` is
/// `docker.io`, and a name without one is on `docker.io`.
fn split_registry(name: &str) -> Result<(String, &str), ImageRefError> {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            if !valid_host(first) {
                return Err(ImageRefError::BadRegistry(first.to_string()));
            }
            let host = first.to_ascii_lowercase();
            let host = if host == "index.docker.io" {
                "docker.io".to_string()
            } else {
                host
            };
            Ok((host, rest))
        }
        // An uppercase first component is neither a host nor a valid path: say which.
        Some((first, _)) if first.bytes().any(|b| b.is_ascii_uppercase()) => {
            Err(ImageRefError::BadComponent(first.to_string()))
        }
        _ => Ok(("docker.io".to_string(), name)),
    }
}

/// `host[:port]`: DNS labels (letters, digits, inner dashes) joined by dots, or a bracketed
/// IPv6 address; the port is digits.
fn valid_host(host: &str) -> bool {
    let (h, port) = if let Some(v6) = host.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.starts_with('[') {
        return true;
    }
    !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A digest as it may follow `@` in a reference, normalised (`sha256:` hex lowercased).
pub fn check_digest(d: &str) -> Result<String, ImageRefError> {
    parse_digest(d)
}

/// `algorithm:hex` as `distribution/reference` reads it, with the lengths of the registered
/// algorithms checked (`sha256`: 64, `sha512`: 128) and hex lowercased for those.
fn parse_digest(d: &str) -> Result<String, ImageRefError> {
    let bad = || ImageRefError::BadDigest(d.to_string());
    let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '-', '_']).all(|c| {
            c.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && c.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let want = match alg {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    match want {
        Some(n) if hex.len() != n => Err(bad()),
        Some(_) => Ok(format!("{alg}:{}", hex.to_ascii_lowercase())),
        None => Ok(d.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        ImageRef::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .to_string()
    }

    #[test]
    fn normalises_like_docker() {
        for (input, want) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("library/nginx:1.25", "docker.io/library/nginx:1.25"),
            ("bitnami/redis:7.0", "docker.io/bitnami/redis:7.0"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("index.docker.io/nginx:1", "docker.io/library/nginx:1"),
            ("Docker.IO/bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("quay.io/coreos/etcd:v3.4", "quay.io/coreos/etcd:v3.4"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            ("[::1]:5000/app:1", "[::1]:5000/app:1"),
            (
                "k8s.gcr.io/etcd-amd64:3.2.26",
                "k8s.gcr.io/etcd-amd64:3.2.26",
            ),
            ("GHCR.io/x/y:1.2", "ghcr.io/x/y:1.2"),
            ("a__b/c-d--e.f_g:T_1", "docker.io/a__b/c-d--e.f_g:T_1"),
        ] {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn tag_and_digest_are_both_kept() {
        let r = ImageRef::parse(&format!("grafana/grafana:7.1.1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("7.1.1"));
        assert_eq!(r.digest(), Some(&*format!("sha256:{HEX}")));
        assert_eq!(
            r.to_string(),
            format!("docker.io/grafana/grafana:7.1.1@sha256:{HEX}")
        );
        let d = ImageRef::parse(&format!("nginx@sha256:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(
            d.to_string(),
            format!("docker.io/library/nginx@sha256:{HEX}")
        );
        assert!(!d.latest_implied());
        assert!(ImageRef::parse("nginx").unwrap().latest_implied());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "nginx:.x",
            "nginx@sha256:abc",
            "nginx@sha256",
            &format!("nginx@md5:{HEX}x"),
            "a//b",
            "/a",
            "a/",
            "ngi nx",
            "nginx\x1b[31m",
            "https://example.com/x",
            "exa_mple.com/x",
            "-bad.io/x",
            "host:port/x",
            "a..b",
            "a/B/c",
            "x:1.2:3",
            &format!("nginx:{}", "t".repeat(129)),
            &format!("{}/x", "a".repeat(300)),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_port_is_not_a_tag() {
        let r = ImageRef::parse("registry.example.com:5000/team/app").unwrap();
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn component() -> impl Strategy<Value = String> {
            "[a-z0-9]{1,5}([._-][a-z0-9]{1,5}){0,2}"
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any text either fails or gives a reference whose printed form parses back to
            /// itself (normalisation is idempotent), with no whitespace or control characters.
            #[test]
            fn normal_form_is_a_fixed_point(text in "\\PC{0,60}") {
                if let Ok(r) = ImageRef::parse(&text) {
                    let shown = r.to_string();
                    prop_assert!(!shown.chars().any(|c| c.is_whitespace() || c.is_control()));
                    let again = ImageRef::parse(&shown).unwrap();
                    prop_assert_eq!(again.to_string(), shown.clone());
                    prop_assert!(shown.starts_with(r.registry()));
                    prop_assert!(!r.registry().bytes().any(|b| b.is_ascii_uppercase()));
                }
            }

            /// Well-formed names always parse, and keep their path and tag.
            #[test]
            fn valid_names_parse(
                host in proptest::option::of("[a-z]{1,8}\\.(io|com)(:[0-9]{2,4})?"),
                path in proptest::collection::vec(component(), 1..4),
                tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            ) {
                // Without a registry, a first component with a '.' would be read as one.
                prop_assume!(host.is_some() || !path[0].contains('.'));
                let mut text = path.join("/");
                if let Some(h) = &host {
                    text = format!("{h}/{text}");
                }
                if let Some(t) = &tag {
                    text = format!("{text}:{t}");
                }
                let r = ImageRef::parse(&text).unwrap();
                prop_assert_eq!(r.tag(), tag.as_deref());
                prop_assert!(r.repository().ends_with(&path.join("/")));
                match &host {
                    Some(h) => prop_assert_eq!(r.registry(), h.as_str()),
                    None => prop_assert_eq!(r.registry(), "docker.io"),
                }
            }
        }
    }
}
