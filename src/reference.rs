//! Chart references: `[oci://]host[:port]/path/name[:tag|@sha256:hex]`.
//!
//! Every command that names a chart in the cache or in a registry goes through [`Reference::parse`],
//! so the rules live in one place. The grammar is the OCI distribution one (lowercase path
//! components joined by `.`, `_`, `__` or dashes; tags of at most 128 word characters, dots and
//! dashes), with one difference from Docker: the first component is always the registry host, as
//! in Helm's `oci://` references, so `mychart:1.0` is an error rather than a Docker Hub image.
//!
//! The cache stores a reference under `refs/<host_port>/<path…>/tags/<tag>`. Host names never
//! contain `_`, so writing `:` as `_` in the first component (and only there) round-trips every
//! legal name, including repository paths that contain underscores.

use std::fmt;

use crate::digest::Digest;

/// Why a reference could not be parsed. Each message names the offending input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: it is empty")]
    Empty(String),
    #[error(
        "invalid reference {0:?}: it needs a registry host and a repository, like localhost:5000/myrepo/mychart:1.0.0"
    )]
    NoRepository(String),
    #[error("invalid reference {input:?}: bad registry host {host:?}")]
    BadHost { input: String, host: String },
    #[error(
        "invalid reference {input:?}: bad repository component {component:?} (lowercase letters, digits and single separators . _ __ - only)"
    )]
    BadComponent { input: String, component: String },
    #[error(
        "invalid reference {input:?}: bad tag {tag:?} (up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')"
    )]
    BadTag { input: String, tag: String },
    #[error("invalid reference {input:?}: {reason}")]
    BadDigest { input: String, reason: String },
    #[error("invalid reference {0:?}: the repository name is longer than 255 characters")]
    TooLong(String),
    #[error("invalid cache path {0:?}: not a stored reference")]
    BadRefPath(String),
}

/// A parsed chart reference. The tag is optional (commands fill in a default) and so is the
/// digest; both may be present (`repo:tag@sha256:…`), in which case the digest wins for lookups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    host: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a user-supplied reference, with or without the `oci://` scheme.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let text = input.trim();
        let text = text.strip_prefix("oci://").unwrap_or(text);
        if text.is_empty() {
            return Err(ReferenceError::Empty(input.to_string()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|e| ReferenceError::BadDigest {
                    input: input.to_string(),
                    reason: e.to_string(),
                })?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        let (host, remainder) = rest
            .split_once('/')
            .ok_or_else(|| ReferenceError::NoRepository(input.to_string()))?;
        if !valid_host(host) {
            return Err(ReferenceError::BadHost {
                input: input.to_string(),
                host: host.to_string(),
            });
        }
        // A tag follows the last ':' of the path, which can never contain ':' itself.
        let (path, tag) = match remainder.rsplit_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (remainder, None),
        };
        if path.is_empty() {
            return Err(ReferenceError::NoRepository(input.to_string()));
        }
        if path.len() > 255 {
            return Err(ReferenceError::TooLong(input.to_string()));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(ReferenceError::BadComponent {
                    input: input.to_string(),
                    component: component.to_string(),
                });
            }
        }
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::BadTag {
                input: input.to_string(),
                tag: t.to_string(),
            });
        }
        Ok(Reference {
            host: host.to_string(),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host, with its port if one was given (`localhost:5000`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The repository path inside the registry (`myrepo/mychart`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last path component, which Helm expects to be the chart name.
    pub fn basename(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `host/path`, the name Docker prints as "the repository".
    pub fn repository(&self) -> String {
        format!("{}/{}", self.host, self.path)
    }

    /// The same repository with the given tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag {
                input: format!("{}:{}", self.repository(), tag),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            host: self.host.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same reference without a tag or digest.
    pub fn without_object(&self) -> Self {
        Reference {
            host: self.host.clone(),
            path: self.path.clone(),
            tag: None,
            digest: None,
        }
    }

    /// The directory of this repository under `refs/`, relative to it: `localhost_5000/myrepo/mychart`.
    pub fn cache_dir(&self) -> String {
        format!("{}/{}", escape_host(&self.host), self.path)
    }

    /// Rebuilds a reference from a path relative to `refs/` (`localhost_5000/myrepo/mychart`) and a tag.
    pub fn from_cache_dir(dir: &str, tag: &str) -> Result<Self, ReferenceError> {
        let (host, path) = dir
            .split_once('/')
            .ok_or_else(|| ReferenceError::BadRefPath(dir.to_string()))?;
        let bad = || ReferenceError::BadRefPath(format!("{dir}/tags/{tag}"));
        let r = Reference::parse(&format!("{}/{}:{}", unescape_host(host), path, tag))
            .map_err(|_| bad())?;
        // `parse` trims, strips `oci://` and reads `@…` as a digest, so a directory or tag file
        // named ` x`, `oci_//…` or `1.0@sha256:…` would otherwise stand for another reference.
        if r.digest.is_some() || r.tag() != Some(tag) || r.cache_dir() != dir {
            return Err(bad());
        }
        Ok(r)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// `localhost:5000` → `localhost_5000`; `[::1]:5000` → `[__1]_5000`. Hosts never contain `_`.
pub fn escape_host(host: &str) -> String {
    host.replace(':', "_")
}

/// The inverse of [`escape_host`].
pub fn unescape_host(escaped: &str) -> String {
    escaped.replace('_', ":")
}

/// A registry host: DNS labels (letters, digits, inner dashes) joined by dots, or an IPv4
/// address, or a bracketed IPv6 address, then an optional `:port`.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, after)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => return valid_port(port),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port
        && !valid_port(p)
    {
        return false;
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_port(port: &str) -> bool {
    !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| p <= 65535)
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= bytes.len() || !alnum(bytes[i]) {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let bytes = t.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_references() {
        let hex = "a".repeat(64);
        let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
            (
                "localhost:5000/myrepo/mychart:2.7.0",
                "localhost:5000",
                "myrepo/mychart",
                Some("2.7.0"),
                false,
            ),
            (
                "oci://localhost:5000/myrepo/mychart:2.7.0",
                "localhost:5000",
                "myrepo/mychart",
                Some("2.7.0"),
                false,
            ),
            (
                "localhost:5000/mychart",
                "localhost:5000",
                "mychart",
                None,
                false,
            ),
            (
                "example.com/a/b/c/d:1.0.0_build.1",
                "example.com",
                "a/b/c/d",
                Some("1.0.0_build.1"),
                false,
            ),
            (
                "127.0.0.1:5000/my_repo/my__chart:v1",
                "127.0.0.1:5000",
                "my_repo/my__chart",
                Some("v1"),
                false,
            ),
            ("[::1]:5000/x/y:1", "[::1]:5000", "x/y", Some("1"), false),
            (
                "reg-1.example.com/a-b---c/x.y:latest",
                "reg-1.example.com",
                "a-b---c/x.y",
                Some("latest"),
                false,
            ),
            (
                &format!("localhost/x@sha256:{hex}"),
                "localhost",
                "x",
                None,
                true,
            ),
            (
                &format!("localhost/x:1.0@sha256:{hex}"),
                "localhost",
                "x",
                Some("1.0"),
                true,
            ),
        ];
        for (input, host, path, tag, has_digest) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.host(), *host, "{input}");
            assert_eq!(r.path(), *path, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(r.digest().is_some(), *has_digest, "{input}");
            // Display is the canonical form without the scheme and parses back to the same value.
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn rejects_invalid_references() {
        let cases = [
            "",
            "oci://",
            "mychart",
            "mychart:1.0",
            "localhost:5000/",
            "localhost:5000/MyChart:1.0",
            "localhost:5000/my..chart",
            "localhost:5000/-chart",
            "localhost:5000/chart_",
            "localhost:5000/a___b",
            "localhost:5000/a//b",
            "localhost:5000/chart:",
            "localhost:5000/chart:.hidden",
            "localhost:5000/chart:-x",
            "localhost:5000/chart:1.0+build",
            "localhost:99999/chart",
            "local_host/chart",
            "-host/chart",
            "host:port/chart",
            "localhost/chart@sha256:abc",
            "localhost/chart@md5:0123",
            "[zz]:5000/x",
            "localhost/a/../b",
        ];
        for input in cases {
            assert!(
                Reference::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
        let long_tag = format!("localhost/x:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
    }

    #[test]
    fn errors_name_the_input() {
        let err = Reference::parse("localhost:5000/Bad:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("localhost:5000/Bad:1") && err.contains("\"Bad\""),
            "{err}"
        );
    }

    #[test]
    fn cache_dir_round_trips_underscores_and_ports() {
        for input in [
            "localhost:5000/myrepo/mychart:2.7.0",
            "localhost/my_repo/my__chart:1_0",
            "127.0.0.1:1/a_b/c:x",
            "[::1]:5000/x_y:1",
            "example.com/tags/tags:tags",
        ] {
            let r = Reference::parse(input).unwrap();
            let back = Reference::from_cache_dir(&r.cache_dir(), r.tag().unwrap()).unwrap();
            assert_eq!(back, r, "{input}");
        }
        assert_eq!(
            Reference::parse("localhost:5000/myrepo/mychart")
                .unwrap()
                .cache_dir(),
            "localhost_5000/myrepo/mychart"
        );
    }

    /// Regression: `from_cache_dir` parsed `host/path:tag` leniently, so a tag file named
    /// `1.0@sha256:…` (or ` 1.0`) or a directory named `oci_//host` was read as another
    /// reference than the one whose files it is.
    #[test]
    fn from_cache_dir_rejects_names_that_parse_as_another_reference() {
        let hex = "a".repeat(64);
        for (dir, tag) in [
            ("localhost/x", format!("1.0@sha256:{hex}")),
            ("localhost/x", " 1.0".to_string()),
            ("localhost/x", "1.0\n".to_string()),
            (" localhost/x", "1.0".to_string()),
            ("oci_//localhost/x", "1.0".to_string()),
        ] {
            assert!(
                Reference::from_cache_dir(dir, &tag).is_err(),
                "{dir:?} {tag:?}"
            );
        }
        assert!(Reference::from_cache_dir("localhost/x", "1.0").is_ok());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Any text, control characters and all of Unicode included.
        fn any_text(max: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
        }

        /// Text made of pieces of the reference grammar, so that random inputs get deep into
        /// the parser.
        fn near_reference() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "oci://",
                "localhost",
                "example.com",
                "127.0.0.1",
                "[::1]",
                "[",
                "]",
                ":",
                "5000",
                "/",
                "a",
                "b0",
                "_",
                "__",
                "-",
                ".",
                "..",
                "@",
                "sha256:",
                "tags",
                "A",
                " ",
                "\t",
                "\n",
                "\0",
                "\\",
                "\u{e9}",
                "\u{200b}",
                "%2e",
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]);
            prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
        }

        fn dns_host() -> impl Strategy<Value = String> {
            prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", 1..4)
                .prop_map(|labels| labels.join("."))
        }

        fn host() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                dns_host(),
                any::<std::net::Ipv4Addr>().prop_map(|ip| ip.to_string()),
                any::<std::net::Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
            ];
            (name, prop::option::of(0u32..=65535)).prop_map(|(name, port)| match port {
                Some(port) => format!("{name}:{port}"),
                None => name,
            })
        }

        fn component() -> impl Strategy<Value = String> {
            "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+){0,3}"
        }

        fn tag() -> impl Strategy<Value = String> {
            "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
        }

        /// A reference the grammar allows, as `(text, host, path, tag)`.
        fn valid() -> impl Strategy<Value = (String, String, String, Option<String>)> {
            (
                any::<bool>(),
                host(),
                prop::collection::vec(component(), 1..5),
                prop::option::of(tag()),
            )
                .prop_filter("repository name too long", |(_, _, path, _)| {
                    path.join("/").len() <= 255
                })
                .prop_map(|(scheme, host, path, tag)| {
                    let path = path.join("/");
                    let text = format!(
                        "{}{host}/{path}{}",
                        if scheme { "oci://" } else { "" },
                        tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
                    );
                    (text, host, path, tag)
                })
        }

        /// What every accepted reference must satisfy.
        fn check_accepted(r: &Reference) -> Result<(), TestCaseError> {
            prop_assert_eq!(&Reference::parse(&r.to_string()).ok(), &Some(r.clone()));
            for text in [r.host(), r.path(), r.tag().unwrap_or("")] {
                prop_assert!(
                    !text
                        .chars()
                        .any(|c| c.is_control() || c.is_whitespace() || c == '\\'),
                    "{:?}",
                    text
                );
            }
            if let Some(tag) = r.tag() {
                prop_assert!(valid_tag(tag) && !tag.contains('/') && !tag.starts_with('.'));
            }
            let dir = r.cache_dir();
            for c in dir.split('/') {
                prop_assert!(
                    !c.is_empty() && c != "." && c != ".." && !c.contains(['\0', '\\', ':']),
                    "{:?} has component {:?}",
                    dir,
                    c
                );
                prop_assert!(!c.chars().any(char::is_control), "{:?}", dir);
            }
            prop_assert!(std::path::Path::new(&dir).is_relative());
            prop_assert_eq!(unescape_host(&escape_host(r.host())), r.host());
            let tag = r.tag().unwrap_or("latest");
            let back = Reference::from_cache_dir(&dir, tag)
                .map_err(|e| TestCaseError::fail(format!("{dir:?} {tag:?}: {e}")))?;
            prop_assert_eq!(back.repository(), r.repository());
            prop_assert_eq!(back.tag(), Some(tag));
            prop_assert_eq!(back, r.without_object().with_tag(tag).unwrap());
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn parse_never_panics(text in prop_oneof![any_text(100), near_reference()]) {
                if let Ok(r) = Reference::parse(&text) {
                    check_accepted(&r)?;
                }
            }

            #[test]
            fn long_inputs_never_panic(unit in near_reference(), n in 1usize..2000) {
                let text = unit.repeat(n.min(20_000 / unit.len().max(1)));
                if let Ok(r) = Reference::parse(&text) {
                    check_accepted(&r)?;
                }
            }

            #[test]
            fn valid_references_are_accepted((text, host, path, tag) in valid()) {
                let r = Reference::parse(&text)
                    .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
                prop_assert_eq!(r.host(), host.as_str());
                prop_assert_eq!(r.path(), path.as_str());
                prop_assert_eq!(r.tag(), tag.as_deref());
                check_accepted(&r)?;
            }

            #[test]
            fn from_cache_dir_only_gives_back_what_cache_dir_made(
                dir in prop_oneof![near_reference(), any_text(40)],
                tag in prop_oneof![tag(), near_reference(), any_text(20)],
            ) {
                if let Ok(r) = Reference::from_cache_dir(&dir, &tag) {
                    prop_assert_eq!(r.cache_dir(), dir);
                    prop_assert_eq!(r.tag(), Some(tag.as_str()));
                    prop_assert!(r.digest().is_none());
                }
            }

            #[test]
            fn from_cache_dir_refuses_altered_names(
                (text, _, _, _) in valid(),
                tag in tag(),
                before in prop::sample::select(vec!["", " ", "\t", "oci_//", "oci://"]),
                after in prop::sample::select(vec![
                    "", " ", "\n", "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ]),
                in_tag in any::<bool>(),
            ) {
                let dir = Reference::parse(&text).unwrap().cache_dir();
                let (dir, tag) = if in_tag {
                    (dir, format!("{before}{tag}{after}"))
                } else {
                    (format!("{before}{dir}"), format!("{tag}{after}"))
                };
                let altered = !before.is_empty() || !after.is_empty();
                let got = Reference::from_cache_dir(&dir, &tag);
                prop_assert_eq!(got.is_ok(), !altered, "{:?} {:?}: {:?}", dir, tag, got);
            }
        }
    }
}
