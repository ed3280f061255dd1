//! Chart version parsing that accepts exactly what Helm accepts.
//!
//! Helm parses chart versions with the Go library Masterminds/semver v3, and
//! that library is more lenient than SemVer 2.0 (and than the `semver` crate):
//! `NewVersion` takes an optional leading `v`, one to three numeric parts, and
//! leading zeros in those parts. If chartcache were stricter, it could not
//! resolve charts that Helm resolves. If it were looser, it would resolve
//! charts that Helm rejects. This module copies the behaviour of Masterminds
//! v3.4 and returns ordinary [`semver::Version`] values, so the rest of the
//! crate compares and sorts with the `semver` crate.
//!
//! It also has the two helpers Helm uses to store chart versions as OCI tags.
//! OCI tags cannot contain `+`, so Helm writes `_` instead (helm/helm#10166).

use semver::{BuildMetadata, Prerelease, Version};

/// Why a version string was rejected. Each message names the input, as in
/// `invalid version "1.2.3.4": unexpected "." after the patch number`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The input was the empty string.
    #[error("invalid version \"\": version string is empty")]
    Empty,
    /// The input does not have the shape of a version.
    #[error("invalid version {input:?}: {reason}")]
    Malformed {
        /// The rejected input.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A numeric part is larger than `u64::MAX`.
    #[error("invalid version {input:?}: {part} number {value:?} is too large")]
    Overflow {
        /// The rejected input.
        input: String,
        /// `major`, `minor` or `patch`.
        part: &'static str,
        /// The digits as written.
        value: String,
    },
    /// A numeric part (strict parsing only) or a numeric pre-release
    /// identifier has a leading zero.
    #[error("invalid version {input:?}: {part} {value:?} has a leading zero")]
    LeadingZero {
        /// The rejected input.
        input: String,
        /// `major`, `minor`, `patch` or `pre-release identifier`.
        part: &'static str,
        /// The digits as written.
        value: String,
    },
    /// The pre-release (the part after `-`) is not a dot-separated list of
    /// non-empty `[0-9A-Za-z-]` identifiers.
    #[error("invalid version {input:?}: invalid pre-release {value:?}")]
    Prerelease {
        /// The rejected input.
        input: String,
        /// The pre-release text, without the leading `-`.
        value: String,
    },
    /// The build metadata (the part after `+`) is not a dot-separated list
    /// of non-empty `[0-9A-Za-z-]` identifiers.
    #[error("invalid version {input:?}: invalid build metadata {value:?}")]
    Build {
        /// The rejected input.
        input: String,
        /// The build metadata text, without the leading `+`.
        value: String,
    },
}

impl VersionError {
    /// The string that failed to parse.
    pub fn input(&self) -> &str {
        match self {
            VersionError::Empty => "",
            VersionError::Malformed { input, .. }
            | VersionError::Overflow { input, .. }
            | VersionError::LeadingZero { input, .. }
            | VersionError::Prerelease { input, .. }
            | VersionError::Build { input, .. } => input,
        }
    }
}

/// Masterminds `NewVersion`: optional leading `v`, 1 to 3 numeric parts
/// (missing ones are 0), optional `-prerelease`, optional `+build`.
///
/// This follows Masterminds v3.4 with its default `CoerceNewVersion = true`:
///
/// * only a lowercase `v` prefix is accepted (`V1.2.3` is rejected);
/// * leading zeros in the numeric parts are accepted and dropped
///   (`01.02.03` is `1.2.3`);
/// * `1.2.3.4` and a trailing or doubled dot are rejected;
/// * pre-release and build identifiers must be non-empty `[0-9A-Za-z-]`;
///   a numeric pre-release identifier must not have a leading zero
///   (`1.0.0-01` is rejected), but build identifiers may (`1.0.0+01`);
/// * surrounding whitespace is not trimmed.
pub fn parse(s: &str) -> Result<Version, VersionError> {
    if s.is_empty() {
        return Err(VersionError::Empty);
    }
    let malformed = |reason: String| VersionError::Malformed {
        input: s.to_owned(),
        reason,
    };

    if s.starts_with('V') {
        return Err(malformed(
            "only a lowercase \"v\" prefix is allowed".to_owned(),
        ));
    }
    let body = s.strip_prefix('v').unwrap_or(s);
    // The pre-release cannot contain `+`, so the first `+` starts the build.
    let (rest, build) = match body.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (body, None),
    };
    // The numeric parts cannot contain `-`, so the first `-` starts the
    // pre-release.
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };

    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 {
        return Err(malformed(format!(
            "has {} numeric parts, at most 3 are allowed",
            parts.len()
        )));
    }
    let mut numbers = [0u64; 3];
    for (i, part) in parts.iter().enumerate() {
        let name = PART_NAMES[i];
        if part.is_empty() {
            return Err(malformed(format!("{name} number is missing")));
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!(
                "{name} number {part:?} is not a decimal number"
            )));
        }
        numbers[i] = part.parse().map_err(|_| VersionError::Overflow {
            input: s.to_owned(),
            part: name,
            value: (*part).to_owned(),
        })?;
    }

    assemble(s, numbers, pre, build)
}

/// Masterminds `StrictNewVersion`: exactly MAJOR.MINOR.PATCH, no `v`,
/// SemVer 2 rules (used for registry tags).
///
/// Leading zeros in the numeric parts are rejected, unlike [`parse`].
pub fn parse_strict(s: &str) -> Result<Version, VersionError> {
    if s.is_empty() {
        return Err(VersionError::Empty);
    }
    let malformed = |reason: String| VersionError::Malformed {
        input: s.to_owned(),
        reason,
    };

    // Same split as Masterminds: three dot-separated fields, the last one
    // carrying the optional pre-release and build metadata.
    let mut fields = s.splitn(3, '.');
    let (Some(major), Some(minor), Some(last)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(
            "expected MAJOR.MINOR.PATCH with exactly three numeric parts".to_owned(),
        ));
    };
    let (rest, build) = match last.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (last, None),
    };
    let (patch, pre) = match rest.split_once('-') {
        Some((patch, pre)) => (patch, Some(pre)),
        None => (rest, None),
    };

    let mut numbers = [0u64; 3];
    for (i, part) in [major, minor, patch].into_iter().enumerate() {
        let name = PART_NAMES[i];
        if part.is_empty() {
            return Err(malformed(format!("{name} number is missing")));
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(format!(
                "{name} number {part:?} is not a decimal number"
            )));
        }
        if part.len() > 1 && part.starts_with('0') {
            return Err(VersionError::LeadingZero {
                input: s.to_owned(),
                part: name,
                value: part.to_owned(),
            });
        }
        numbers[i] = part.parse().map_err(|_| VersionError::Overflow {
            input: s.to_owned(),
            part: name,
            value: part.to_owned(),
        })?;
    }

    assemble(s, numbers, pre, build)
}

/// The version from its three numbers and its optional pre-release and build texts.
fn assemble(
    s: &str,
    numbers: [u64; 3],
    pre: Option<&str>,
    build: Option<&str>,
) -> Result<Version, VersionError> {
    let mut version = Version::new(numbers[0], numbers[1], numbers[2]);
    if let Some(pre) = pre {
        version.pre = prerelease(s, pre)?;
    }
    if let Some(build) = build {
        version.build = build_metadata(s, build)?;
    }
    Ok(version)
}

/// Chart version -> OCI tag: every `+` becomes `_` (Helm issue #10166).
pub fn version_to_tag(v: &str) -> String {
    v.replace('+', "_")
}

/// OCI tag -> chart version: every `_` becomes `+`.
pub fn tag_to_version(t: &str) -> String {
    t.replace('_', "+")
}

const PART_NAMES: [&str; 3] = ["major", "minor", "patch"];

fn is_identifier_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Validates a pre-release as Masterminds `validatePrerelease` does and
/// converts it.
fn prerelease(input: &str, pre: &str) -> Result<Prerelease, VersionError> {
    let invalid = || VersionError::Prerelease {
        input: input.to_owned(),
        value: pre.to_owned(),
    };
    for id in pre.split('.') {
        if id.is_empty() || !id.bytes().all(is_identifier_char) {
            return Err(invalid());
        }
        if id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VersionError::LeadingZero {
                input: input.to_owned(),
                part: "pre-release identifier",
                value: id.to_owned(),
            });
        }
    }
    // The rules above are the `semver` crate's rules too, so this only fails
    // if the two disagree; report that as an invalid pre-release.
    Prerelease::new(pre).map_err(|_| invalid())
}

/// Validates build metadata as Masterminds `validateMetadata` does and
/// converts it. Leading zeros are allowed here.
fn build_metadata(input: &str, build: &str) -> Result<BuildMetadata, VersionError> {
    let invalid = || VersionError::Build {
        input: input.to_owned(),
        value: build.to_owned(),
    };
    if build
        .split('.')
        .any(|id| id.is_empty() || !id.bytes().all(is_identifier_char))
    {
        return Err(invalid());
    }
    BuildMetadata::new(build).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(input, Some(canonical form))` parses; `(input, None)` is rejected.
    const LENIENT: &[(&str, Option<&str>)] = &[
        ("1.2.3", Some("1.2.3")),
        ("v1.2.3", Some("1.2.3")),
        ("1.2", Some("1.2.0")),
        ("1", Some("1.0.0")),
        ("v1", Some("1.0.0")),
        ("0.0.0", Some("0.0.0")),
        ("1.2.3-beta.1", Some("1.2.3-beta.1")),
        ("1.2.3-beta.1+build.5", Some("1.2.3-beta.1+build.5")),
        ("1.2.3+build", Some("1.2.3+build")),
        ("1.2-rc.1", Some("1.2.0-rc.1")),
        ("1-alpha", Some("1.0.0-alpha")),
        ("1+meta", Some("1.0.0+meta")),
        (
            "v1.2-beta+exp.sha.5114f85",
            Some("1.2.0-beta+exp.sha.5114f85"),
        ),
        // Leading zeros in numeric parts are coerced away (v3.4 default).
        ("01.02.03", Some("1.2.3")),
        ("1.01", Some("1.1.0")),
        ("00", Some("0.0.0")),
        // Hyphens inside identifiers and a bare `-` identifier are fine.
        ("1.2.3--", Some("1.2.3--")),
        ("1.2.3-x-y-z.--", Some("1.2.3-x-y-z.--")),
        ("1.2.3-0", Some("1.2.3-0")),
        ("1.2.3-0a", Some("1.2.3-0a")),
        ("1.2.3-alpha.0.1", Some("1.2.3-alpha.0.1")),
        // Build metadata may have leading zeros.
        ("1.2.3+001", Some("1.2.3+001")),
        ("1.2.3-rc+0.01", Some("1.2.3-rc+0.01")),
        ("18446744073709551615.0.0", Some("18446744073709551615.0.0")),
        (
            "v2.3.5-20161202202307-sha.e8fc5e5",
            Some("2.3.5-20161202202307-sha.e8fc5e5"),
        ),
        // Rejected.
        ("", None),
        ("v", None),
        ("V1.2.3", None),
        ("vv1.2.3", None),
        ("1.2.3.4", None),
        ("1.2.3.", None),
        ("1.", None),
        (".1", None),
        ("1..3", None),
        ("1.2.3-", None),
        ("1.2.3+", None),
        ("1.2.3-beta..1", None),
        ("1.2.3-beta.", None),
        ("1.2.3+build..1", None),
        ("1.2.3-01", None),
        ("1.2.3-beta.007", None),
        ("1.2.3-be_ta", None),
        ("1.2.3+bu_ild", None),
        ("1.2.3+a+b", None),
        ("1.2.3-ünï", None),
        (" 1.2.3", None),
        ("1.2.3 ", None),
        ("1.2.x", None),
        ("*", None),
        ("a.b.c", None),
        ("-1.2.3", None),
        ("18446744073709551616.0.0", None),
        ("1.2.3\n", None),
    ];

    #[test]
    fn lenient_table() {
        for (input, want) in LENIENT {
            match (parse(input), want) {
                (Ok(v), Some(want)) => assert_eq!(v.to_string(), *want, "input {input:?}"),
                (Err(e), None) => assert_eq!(e.input(), *input),
                (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    const STRICT: &[(&str, bool)] = &[
        ("1.2.3", true),
        ("0.0.0", true),
        ("10.20.30", true),
        ("1.2.3-beta.1+build.5", true),
        ("1.2.3-0", true),
        ("1.2.3-0a.1", true),
        ("1.2.3-x-y-z.--", true),
        ("1.2.3+001", true),
        ("1.2.3----RC-SNAPSHOT.12.9.1--.12+788", true),
        ("18446744073709551615.0.0", true),
        ("", false),
        ("v1.2.3", false),
        ("1.2", false),
        ("1", false),
        ("01.2.3", false),
        ("1.02.3", false),
        ("1.2.03", false),
        ("1.2.3.4", false),
        ("1.2.3-", false),
        ("1.2.3+", false),
        ("1.2.3-01", false),
        ("1.2.3-a..b", false),
        ("1.2.3+a+b", false),
        ("1..3", false),
        ("1.2-beta.3", false),
        ("1.2.x", false),
        ("18446744073709551616.0.0", false),
    ];

    #[test]
    fn strict_table() {
        for (input, ok) in STRICT {
            let got = parse_strict(input);
            assert_eq!(got.is_ok(), *ok, "input {input:?}: {got:?}");
            // StrictNewVersion is plain SemVer 2.0, which is what the
            // `semver` crate implements.
            assert_eq!(
                got.ok(),
                Version::parse(input).ok(),
                "input {input:?} disagrees with semver::Version::parse"
            );
        }
    }

    #[test]
    fn strict_versions_parse_identically_when_lenient() {
        for (input, ok) in STRICT {
            if *ok {
                assert_eq!(parse(input).ok(), parse_strict(input).ok(), "{input:?}");
            }
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid version \"\": version string is empty"),
            (
                "1.2.3.4",
                "invalid version \"1.2.3.4\": has 4 numeric parts, at most 3 are allowed",
            ),
            (
                "1.2.3-01",
                "invalid version \"1.2.3-01\": pre-release identifier \"01\" has a leading zero",
            ),
            (
                "1.2.3+a+b",
                "invalid version \"1.2.3+a+b\": invalid build metadata \"a+b\"",
            ),
            (
                "99999999999999999999",
                "invalid version \"99999999999999999999\": major number \"99999999999999999999\" is too large",
            ),
        ];
        for (input, message) in cases {
            let err = parse(input).err();
            assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(*message));
        }
        assert_eq!(
            parse_strict("1.02.3")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("invalid version \"1.02.3\": minor \"02\" has a leading zero")
        );
    }

    #[test]
    fn tags_round_trip() {
        assert_eq!(version_to_tag("1.2.3+build.1"), "1.2.3_build.1");
        assert_eq!(tag_to_version("1.2.3_build.1"), "1.2.3+build.1");
        assert_eq!(version_to_tag("1.2.3"), "1.2.3");
        assert_eq!(version_to_tag("1.2.3-rc.1+a+b"), "1.2.3-rc.1_a_b");
        assert_eq!(tag_to_version(&version_to_tag("0.1.0+abc")), "0.1.0+abc");
        let tag = version_to_tag("1.0.0+20240101");
        assert_eq!(
            parse_strict(&tag_to_version(&tag)).map(|v| v.build.to_string()),
            Ok("20240101".to_owned())
        );
    }

    mod props {
        use super::*;
        use crate::reference::valid_tag;
        use proptest::prelude::*;

        /// Any text, control characters and all of Unicode included.
        fn any_text(max: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
        }

        /// Text made of pieces of version syntax, so that random inputs get
        /// deep into the parser.
        fn near_version() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "v",
                "V",
                "0",
                "1",
                "01",
                "00",
                "7",
                "18446744073709551616",
                ".",
                "-",
                "+",
                "--",
                "alpha",
                "Beta",
                "x",
                "_",
                "/",
                " ",
                "\t",
                "\n",
                "\0",
                "\u{e9}",
                "\u{a0}",
            ]);
            prop::collection::vec(piece, 0..16).prop_map(|p| p.concat())
        }

        fn identifier() -> impl Strategy<Value = String> {
            prop_oneof!["0|[1-9][0-9]{0,5}", "[0-9]*[A-Za-z-][0-9A-Za-z-]{0,5}"]
        }

        /// A SemVer 2.0 version string.
        fn semver_text() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(prop_oneof![0u64..5, any::<u64>()], 3),
                prop::collection::vec(identifier(), 0..3),
                prop::collection::vec("[0-9A-Za-z-]{1,6}", 0..3),
            )
                .prop_map(|(numbers, pre, build)| {
                    let mut text = format!("{}.{}.{}", numbers[0], numbers[1], numbers[2]);
                    if !pre.is_empty() {
                        text = format!("{text}-{}", pre.join("."));
                    }
                    if !build.is_empty() {
                        text = format!("{text}+{}", build.join("."));
                    }
                    text
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            #[test]
            fn parsing_never_panics(text in prop_oneof![any_text(60), near_version()]) {
                let lenient = parse(&text);
                let strict = parse_strict(&text);
                if let Ok(v) = &lenient {
                    prop_assert!(
                        !text.chars().any(|c| c == '/' || c.is_control() || c.is_whitespace()),
                        "{:?}", text
                    );
                    // The canonical form is plain SemVer.
                    prop_assert_eq!(parse_strict(&v.to_string()), Ok(v.clone()));
                    if text.len() <= 128 {
                        let tag = version_to_tag(&text);
                        prop_assert!(valid_tag(&tag) && !tag.contains('+'), "{:?}", tag);
                        prop_assert_eq!(tag_to_version(&tag), text.clone());
                    }
                }
                if let Ok(v) = &strict {
                    prop_assert_eq!(lenient.clone(), Ok(v.clone()));
                }
                // Strict parsing is SemVer 2.0, as the `semver` crate implements it.
                prop_assert_eq!(strict.ok(), Version::parse(&text).ok(), "{:?}", text);
            }

            #[test]
            fn semver_versions_are_accepted(
                a in semver_text(),
                b in semver_text(),
                prefix in prop::sample::select(vec!["", "v"]),
            ) {
                let want = Version::parse(&a).map_err(|e| TestCaseError::fail(format!("{a}: {e}")))?;
                prop_assert_eq!(parse_strict(&a), Ok(want.clone()));
                prop_assert_eq!(parse(&format!("{prefix}{a}")), Ok(want.clone()));
                let (va, vb) = (parse(&a).unwrap(), parse(&b).unwrap());
                prop_assert_eq!(
                    va.cmp_precedence(&vb),
                    Version::parse(&a).unwrap().cmp_precedence(&Version::parse(&b).unwrap())
                );
                let tag = version_to_tag(&a);
                if a.len() <= 128 {
                    prop_assert!(valid_tag(&tag), "{:?}", tag);
                }
                prop_assert_eq!(parse_strict(&tag_to_version(&tag)), Ok(want));
            }

            #[test]
            fn partial_and_zero_padded_versions_fill_in_zeros(
                numbers in prop::collection::vec(0u64..1000, 1..=3),
                zeros in prop::collection::vec(0usize..3, 3),
            ) {
                let text = numbers
                    .iter()
                    .zip(&zeros)
                    .map(|(n, z)| format!("{}{n}", "0".repeat(*z)))
                    .collect::<Vec<_>>()
                    .join(".");
                let part = |i: usize| numbers.get(i).copied().unwrap_or(0);
                prop_assert_eq!(parse(&text), Ok(Version::new(part(0), part(1), part(2))));
            }
        }
    }
}
