//! Helm version constraints (`helm pull --version '>=1.2, <2'`), with the
//! semantics of Masterminds/semver v3.
//!
//! Helm passes `--version` and dependency `version:` fields to Masterminds
//! `NewConstraint` and picks versions with `Constraints.Check`. The syntax
//! looks like Cargo or npm ranges but differs in many details (`1.2` means
//! `~1.2`, `>1.2` means `>=1.3.0`, prereleases are excluded unless the AND
//! group names one, `^*` only matches `0.0.0`, ...). The `semver` crate's
//! `VersionReq` implements Cargo syntax, and no crate that we know of
//! implements Masterminds semantics, so this module does. It copies
//! Masterminds v3.4 closely, including its odd corners, because choosing a
//! different chart version than Helm would be a correctness bug for
//! chartcache. Versions are plain [`semver::Version`] values, parsed with
//! [`crate::version::parse`].
//!
//! One difference from the library: the empty string is accepted and means
//! "no `--version` given", which Helm handles before it calls the library
//! (`*`, or `>0.0.0-0` with `--devel`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use semver::Version;

use crate::version::VersionError;

/// Why a constraint string was rejected. The message names the input, as in
/// `improper constraint: ">= bar"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The text is not valid constraint syntax.
    #[error("{}", improper_message(.input, .segment))]
    Improper {
        /// The whole constraint as given.
        input: String,
        /// The `||`-separated group that failed, after hyphen ranges were
        /// rewritten.
        segment: String,
    },
    /// The syntax is valid, but a version in it is not (for example a
    /// numeric pre-release identifier with a leading zero, or a number that
    /// does not fit in 64 bits).
    #[error("improper constraint: {input:?}: {source}")]
    Version {
        /// The whole constraint as given.
        input: String,
        /// The error for the version in the constraint.
        source: VersionError,
    },
    /// The text is longer than [`MAX_CONSTRAINT_LEN`]. The input is not
    /// repeated in the message, since it is long.
    #[error(
        "improper constraint: it is {len} bytes long, at most {MAX_CONSTRAINT_LEN} are allowed"
    )]
    TooLong {
        /// The length of the rejected input, in bytes.
        len: usize,
    },
}

/// The longest constraint [`Constraint::parse`] accepts, in bytes.
///
/// Masterminds has no limit, but real constraints are a few dozen bytes, and
/// the hyphen-range rewrite below takes time quadratic in the length of some
/// inputs (a 100 KB run of digits took minutes). At this length every input
/// parses in milliseconds.
pub const MAX_CONSTRAINT_LEN: usize = 4096;

fn improper_message(input: &str, segment: &str) -> String {
    if segment == input || !input.contains(segment) || segment.trim().is_empty() {
        format!("improper constraint: {input:?}")
    } else {
        format!("improper constraint: {input:?}: cannot parse {segment:?}")
    }
}

/// A parsed Helm version constraint: `||`-separated groups of comparators
/// that must all match.
#[derive(Debug, Clone)]
pub struct Constraint {
    text: String,
    groups: Vec<Group>,
    /// Set only for the empty constraint: Helm's `--devel` replaces an
    /// empty version with `>0.0.0-0`.
    devel_groups: Option<Vec<Group>>,
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraint::parse(s)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Constraint {
    /// Parses a constraint as Masterminds `NewConstraint` does.
    ///
    /// Supported: `||` OR groups; comparators within a group separated by
    /// spaces or commas; operators `=`, `!=`, `>`, `<`, `>=`, `=>`, `<=`,
    /// `=<`, `~`, `~>`, `^` (optionally followed by spaces); wildcards `x`,
    /// `X`, `*` in any position; partial versions; a lowercase `v` prefix;
    /// hyphen ranges `1.2 - 1.4.5` (spaces around the hyphen required); a
    /// bare version for equality.
    ///
    /// The empty string is accepted and stands for "no version given":
    /// [`matches`](Self::matches) behaves like `*` and
    /// [`matches_devel`](Self::matches_devel) like `>0.0.0-0`, as in Helm.
    /// Whitespace only is an error, as in Helm. Inputs longer than
    /// [`MAX_CONSTRAINT_LEN`] bytes are an error too (Helm has no limit).
    pub fn parse(s: &str) -> Result<Self, ConstraintError> {
        if s.is_empty() {
            return Ok(Constraint {
                text: String::new(),
                groups: parse_groups("*", "")?,
                devel_groups: Some(parse_groups(">0.0.0-0", "")?),
            });
        }
        if s.len() > MAX_CONSTRAINT_LEN {
            return Err(ConstraintError::TooLong { len: s.len() });
        }
        Ok(Constraint {
            text: s.to_owned(),
            groups: parse_groups(s, s)?,
            devel_groups: None,
        })
    }

    /// Masterminds `Constraints.Check`: true if every comparator in at least
    /// one OR group matches.
    ///
    /// A version with a pre-release matches only if a comparator in the
    /// same AND group has a pre-release itself. The pre-release does not
    /// have to be on the same MAJOR.MINOR.PATCH: `>=1.2.3-0 <2` matches
    /// `1.5.0-beta`.
    pub fn matches(&self, v: &Version) -> bool {
        groups_match(&self.groups, v, false)
    }

    /// The result Helm gives for this constraint when `--devel` is set.
    ///
    /// Helm only uses `--devel` when no `--version` is given: it then uses
    /// `>0.0.0-0`, which matches every version, pre-releases included
    /// (except `0.0.0-0` itself). With an explicit constraint Helm ignores
    /// `--devel`, so this is the same as [`matches`](Self::matches) (see
    /// `helm pull`, `helm install`, `helm upgrade`, `helm show`). Use
    /// [`matches_including_prereleases`](Self::matches_including_prereleases)
    /// to let pre-releases through an explicit constraint.
    pub fn matches_devel(&self, v: &Version) -> bool {
        groups_match(self.devel_groups.as_ref().unwrap_or(&self.groups), v, false)
    }

    /// Masterminds `Check` with `IncludePrerelease = true`: pre-releases are
    /// compared as if they were ordinary versions, so `^1.2` matches
    /// `1.3.0-beta`. Helm itself never sets this option.
    pub fn matches_including_prereleases(&self, v: &Version) -> bool {
        groups_match(&self.groups, v, true)
    }
}

fn groups_match(groups: &[Group], v: &Version, include_prereleases: bool) -> bool {
    groups.iter().any(|group| {
        let include = include_prereleases || group.has_prerelease;
        group.comparators.iter().all(|c| c.matches(v, include))
    })
}

#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    /// Some comparator in the group has a pre-release, so versions with a
    /// pre-release are compared instead of rejected.
    has_prerelease: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// No operator or `=`: equality, or tilde if the version has a wildcard.
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEq,
    LessEq,
    /// `~` and `~>`.
    Tilde,
    Caret,
}

/// The first part that was a wildcard or missing. Masterminds' `dirty`
/// flag is "not `None`", `minorDirty` is `Minor`, `patchDirty` is `Patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wildcard {
    None,
    Major,
    Minor,
    Patch,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    /// The version with wildcard and missing parts set to 0.
    version: Version,
    wildcard: Wildcard,
}

impl Comparator {
    fn matches(&self, v: &Version, include_prereleases: bool) -> bool {
        if !v.pre.is_empty() && !include_prereleases {
            return false;
        }
        match self.op {
            Op::Equal => {
                if self.wildcard == Wildcard::None {
                    self.cmp(v) == Ordering::Equal
                } else {
                    self.tilde(v)
                }
            }
            Op::NotEqual => self.not_equal(v),
            Op::Greater => self.greater(v),
            Op::Less => self.cmp(v) == Ordering::Less,
            Op::GreaterEq => self.cmp(v) != Ordering::Less,
            Op::LessEq => self.less_eq(v),
            Op::Tilde => self.tilde(v),
            Op::Caret => self.caret(v),
        }
    }

    /// Masterminds `Version.Compare`: SemVer precedence, build ignored.
    fn cmp(&self, v: &Version) -> Ordering {
        v.cmp_precedence(&self.version)
    }

    fn not_equal(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.wildcard != Wildcard::None {
            if c.major != v.major {
                return true;
            }
            if self.wildcard == Wildcard::Minor {
                return false;
            }
            if c.minor != v.minor {
                return true;
            }
            if self.wildcard == Wildcard::Patch {
                return v.pre != c.pre;
            }
            if c.patch != v.patch {
                return true;
            }
        }
        self.cmp(v) != Ordering::Equal
    }

    fn greater(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.wildcard == Wildcard::None {
            return self.cmp(v) == Ordering::Greater;
        }
        if v.major != c.major {
            return v.major > c.major;
        }
        match self.wildcard {
            // `>1` and `>1.x` mean `>=2.0.0`.
            Wildcard::Minor => false,
            // `>1.2` means `>=1.3.0`.
            Wildcard::Patch => v.minor > c.minor,
            // `>*` means `>0.0.0`.
            Wildcard::Major | Wildcard::None => self.cmp(v) == Ordering::Greater,
        }
    }

    fn less_eq(&self, v: &Version) -> bool {
        let c = &self.version;
        match self.wildcard {
            Wildcard::None => self.cmp(v) != Ordering::Greater,
            // `<=1.2` means `<1.3.0` and `<=1` means `<2.0.0`; `<=*` is
            // treated as `<=0.0` and so means `<0.1.0`.
            _ if v.major > c.major => false,
            Wildcard::Minor => true,
            Wildcard::Major | Wildcard::Patch => !(v.major == c.major && v.minor > c.minor),
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.cmp(v) == Ordering::Less {
            return false;
        }
        // `~0.0.0` and `~*` accept everything from 0.0.0 up.
        let minor_or_patch_wild = matches!(self.wildcard, Wildcard::Minor | Wildcard::Patch);
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !minor_or_patch_wild {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.wildcard == Wildcard::Minor
    }

    fn caret(&self, v: &Version) -> bool {
        let c = &self.version;
        if self.cmp(v) == Ordering::Less {
            return false;
        }
        if c.major > 0 || self.wildcard == Wildcard::Minor {
            return v.major == c.major;
        }
        if v.major > 0 {
            return false;
        }
        if c.minor > 0 || self.wildcard == Wildcard::Patch {
            return v.minor == c.minor;
        }
        if v.minor > 0 {
            return false;
        }
        // Also reached by `^*`, which therefore only matches 0.0.0
        // (Masterminds/semver#317).
        v.patch == c.patch
    }
}

/// Parses `s` (with hyphen ranges already allowed) into OR groups.
/// `input` is what error messages report.
fn parse_groups(s: &str, input: &str) -> Result<Vec<Group>, ConstraintError> {
    let rewritten = rewrite_ranges(s);
    rewritten
        .split("||")
        .map(|segment| {
            let improper = || ConstraintError::Improper {
                input: input.to_owned(),
                segment: segment.to_owned(),
            };
            let tokens = tokenize_group(segment).ok_or_else(improper)?;
            let mut comparators = Vec::with_capacity(tokens.len());
            for (op, cv) in tokens {
                let op = parse_op(op).ok_or_else(improper)?;
                let (version, wildcard) =
                    comparator_version(cv).map_err(|source| ConstraintError::Version {
                        input: input.to_owned(),
                        source,
                    })?;
                comparators.push(Comparator {
                    op,
                    version,
                    wildcard,
                });
            }
            let has_prerelease = comparators.iter().any(|c| !c.version.pre.is_empty());
            Ok(Group {
                comparators,
                has_prerelease,
            })
        })
        .collect()
}

fn parse_op(op: &str) -> Option<Op> {
    Some(match op {
        "" | "=" => Op::Equal,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEq,
        "<=" | "=<" => Op::LessEq,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return None,
    })
}

/// Go's `\s`: ASCII space, `\t`, `\n`, `\f`, `\r` (the same set as
/// `u8::is_ascii_whitespace`).
fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace()
}

fn is_op_char(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'<' | b'>' | b'~' | b'^')
}

/// Bytes that can appear in a version inside a constraint. Masterminds'
/// numeric class `[0-9|x|X|\*]` contains a literal `|`.
fn is_version_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'*' | b'|')
}

/// Masterminds' numeric-part class `[0-9|x|X|\*]`.
fn is_part_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'x' | b'X' | b'*' | b'|')
}

fn is_identifier_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// Splits one `||` group into `(operator, version)` pairs, accepting
/// exactly what Masterminds' validation regex accepts:
/// `\s*OP\s*V\s*` followed by any number of `(\s+|,\s*)OP\s*V\s*`.
/// The operator is not checked here, only its characters.
fn tokenize_group(segment: &str) -> Option<Vec<(&str, &str)>> {
    let b = segment.as_bytes();
    let mut tokens = Vec::new();
    let mut i = skip_spaces(b, 0);
    loop {
        let op_start = i;
        while i < b.len() && is_op_char(b[i]) {
            i += 1;
        }
        let op = &segment[op_start..i];
        i = skip_spaces(b, i);
        let v_start = i;
        while i < b.len() && is_version_char(b[i]) {
            i += 1;
        }
        let cv = &segment[v_start..i];
        if !is_constraint_version(cv) {
            return None;
        }
        tokens.push((op, cv));
        let after_version = i;
        i = skip_spaces(b, i);
        if i == b.len() {
            return Some(tokens);
        }
        if b[i] == b',' {
            i = skip_spaces(b, i + 1);
        } else if i == after_version {
            // Something other than a separator right after the version,
            // as in `1.2>=3` or `1.2.3~ 1.2.4`.
            return None;
        }
    }
}

/// The version part of a constraint, split like Masterminds' regex groups.
struct ConstraintVersion<'a> {
    major: &'a str,
    /// Without the leading `.`; empty if absent.
    minor: &'a str,
    patch: &'a str,
    /// With the leading `-`; empty if absent.
    pre: &'a str,
}

/// Reads the longest prefix of `s` that matches Masterminds' constraint
/// version pattern:
/// `v?P(\.P)?(\.P)?(-I(\.I)*)?(\+I(\.I)*)?` where `P` is `[0-9|xX*]+` and
/// `I` is `[0-9A-Za-z-]+`. Returns the parts and the length read.
fn scan_constraint_version(s: &str) -> Option<(ConstraintVersion<'_>, usize)> {
    let b = s.as_bytes();
    let run = |start: usize, class: fn(u8) -> bool| {
        let mut end = start;
        while end < b.len() && class(b[end]) {
            end += 1;
        }
        end
    };
    // A `.`, `-` or `+` at `i` followed by at least one `class` byte.
    let starts_run = |i: usize, lead: u8, class: fn(u8) -> bool| {
        b.get(i) == Some(&lead) && b.get(i + 1).is_some_and(|&c| class(c))
    };
    let dotted_identifiers = |start: usize| {
        let mut end = run(start, is_identifier_char);
        while starts_run(end, b'.', is_identifier_char) {
            end = run(end + 1, is_identifier_char);
        }
        end
    };

    let mut i = usize::from(b.first() == Some(&b'v'));
    let major_end = run(i, is_part_char);
    if major_end == i {
        return None;
    }
    let major = &s[i..major_end];
    i = major_end;
    let mut parts = ["", ""];
    for part in &mut parts {
        if starts_run(i, b'.', is_part_char) {
            let end = run(i + 1, is_part_char);
            *part = &s[i + 1..end];
            i = end;
        } else {
            break;
        }
    }
    let pre_start = i;
    if starts_run(i, b'-', is_identifier_char) {
        i = dotted_identifiers(i + 1);
    }
    let pre = &s[pre_start..i];
    if starts_run(i, b'+', is_identifier_char) {
        i = dotted_identifiers(i + 1);
    }
    let [minor, patch] = parts;
    Some((
        ConstraintVersion {
            major,
            minor,
            patch,
            pre,
        },
        i,
    ))
}

fn is_constraint_version(s: &str) -> bool {
    scan_constraint_version(s).is_some_and(|(_, len)| len == s.len())
}

fn is_wildcard(part: &str) -> bool {
    matches!(part, "x" | "X" | "*")
}

/// Masterminds `parseConstraint`: replaces wildcard or missing parts with 0,
/// notes the first such part, and parses the result with
/// [`crate::version::parse`]. Parts after the first wildcard are ignored,
/// and build metadata is dropped if there is a wildcard.
fn comparator_version(cv: &str) -> Result<(Version, Wildcard), VersionError> {
    let Some((parts, _)) = scan_constraint_version(cv) else {
        // Unreachable after tokenize_group; parse it to get an error.
        return crate::version::parse(cv).map(|v| (v, Wildcard::None));
    };
    let ConstraintVersion {
        major,
        minor,
        patch,
        pre,
    } = parts;
    let (text, wildcard) = if is_wildcard(major) {
        (format!("0.0.0{pre}"), Wildcard::Major)
    } else if minor.is_empty() || is_wildcard(minor) {
        (format!("{major}.0.0{pre}"), Wildcard::Minor)
    } else if patch.is_empty() || is_wildcard(patch) {
        (format!("{major}.{minor}.0{pre}"), Wildcard::Patch)
    } else {
        (cv.to_owned(), Wildcard::None)
    };
    let version = crate::version::parse(&text)?;
    Ok((version, wildcard))
}

/// Masterminds `rewriteRange`: every match of `\s*(V)\s+-\s+(V)\s*` becomes
/// `>= A, <= B ` (with a trailing space), replacing the first occurrence of
/// the matched text, exactly as the Go code does.
fn rewrite_ranges(s: &str) -> String {
    let b = s.as_bytes();
    let mut found = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        match match_range_at(s, pos) {
            Some((end, low, high)) => {
                found.push((&s[pos..end], low, high));
                pos = end;
            }
            None => pos += 1,
        }
    }
    let mut out = s.to_owned();
    for (matched, low, high) in found {
        out = out.replacen(matched, &format!(">= {low}, <= {high} "), 1);
    }
    out
}

/// Tries to match `\s*(V)\s+-\s+(V)\s*` at byte `pos` with Go's leftmost-first
/// semantics. Returns the end of the match and the two versions.
fn match_range_at(s: &str, pos: usize) -> Option<(usize, &str, &str)> {
    let b = s.as_bytes();
    if !b[pos].is_ascii() {
        return None;
    }
    let low_start = skip_spaces(b, pos);
    // The first version must be followed by whitespace, so it is the whole
    // run of version bytes.
    let mut low_end = low_start;
    while low_end < b.len() && is_version_char(b[low_end]) {
        low_end += 1;
    }
    let low = &s[low_start..low_end];
    if !is_constraint_version(low) || !b.get(low_end).copied().is_some_and(is_space) {
        return None;
    }
    let dash = skip_spaces(b, low_end);
    if b.get(dash) != Some(&b'-') || !b.get(dash + 1).copied().is_some_and(is_space) {
        return None;
    }
    let high_start = skip_spaces(b, dash + 1);
    // The second version is whatever the greedy pattern reads.
    let (_, high_len) = scan_constraint_version(&s[high_start..])?;
    let high_end = high_start + high_len;
    Some((skip_spaces(b, high_end), low, &s[high_start..high_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        match crate::version::parse(s) {
            Ok(v) => v,
            Err(e) => panic!("bad test version {s:?}: {e}"),
        }
    }

    fn c(s: &str) -> Constraint {
        match Constraint::parse(s) {
            Ok(c) => c,
            Err(e) => panic!("bad test constraint {s:?}: {e}"),
        }
    }

    /// (constraint, version, `matches`).
    const MATCHES: &[(&str, &str, bool)] = &[
        // Exact versions and `=`.
        ("1.2.3", "1.2.3", true),
        ("1.2.3", "1.2.4", false),
        ("=1.2.3", "1.2.3+build.7", true),
        ("v1.2.3", "1.2.3", true),
        ("= v1.2.3", "1.2.3", true),
        ("01.002.3", "1.2.3", true),
        ("1.2.3-rc.1", "1.2.3-rc.1", true),
        ("1.2.3-rc.1", "1.2.3", false),
        // Partial versions without an operator behave like `~`.
        ("1.2", "1.2.0", true),
        ("1.2", "1.2.9", true),
        ("1.2", "1.3.0", false),
        ("=3", "3.9.9", true),
        ("=3", "4.0.0", false),
        ("1.2.x", "1.2.7", true),
        ("1.X", "1.9.0", true),
        ("1.*", "2.0.0", false),
        ("*", "0.0.0", true),
        ("*", "99.1.0", true),
        ("*", "1.0.0-beta", false),
        ("x", "3.1.4", true),
        ("*-0", "1.0.0-beta", true),
        ("1.x.3", "1.7.0", true),
        // `!=`.
        ("!=1.2.3", "1.2.3", false),
        ("!=1.2.3", "1.2.4", true),
        ("!=1.2", "1.2.5", false),
        ("!=1.2", "1.3.0", true),
        ("!=1.x", "1.9.9", false),
        ("!=1.x", "2.0.0", true),
        ("!=1.2-rc", "1.2.0", true),
        ("!=1.2-rc", "1.2.0-rc", false),
        ("!=*", "1.0.0", true),
        ("!=*", "0.0.0", false),
        // `>` with partial versions rounds up.
        (">1.2.3", "1.2.4", true),
        (">1.2.3", "1.2.3", false),
        (">1.2", "1.2.9", false),
        (">1.2", "1.3.0", true),
        (">1", "1.9.0", false),
        (">1", "2.0.0", true),
        (">*", "0.0.0", false),
        (">*", "0.0.1", true),
        // `<` does not round.
        ("<1.2", "1.1.9", true),
        ("<1.2", "1.2.0", false),
        ("<1.x", "0.9.9", true),
        ("<1.x", "1.0.0", false),
        ("<*", "0.0.0", false),
        // `>=`, `=>`, `<=`, `=<`.
        (">=1.2", "1.2.0", true),
        (">= 1.2", "1.1.9", false),
        ("=>1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.3", true),
        ("<=1.2.3", "1.2.4", false),
        ("<=1.2", "1.2.99", true),
        ("<=1.2", "1.3.0", false),
        ("=<1", "1.99.0", true),
        ("=< 1", "2.0.0", false),
        ("<=*", "0.0.5", true),
        ("<=*", "0.1.0", false),
        ("<=*", "1.0.0", false),
        // Tilde.
        ("~1.2.3", "1.2.3", true),
        ("~1.2.3", "1.2.9", true),
        ("~1.2.3", "1.3.0", false),
        ("~1.2.3", "1.2.2", false),
        ("~>1.2", "1.2.5", true),
        ("~> 1.2", "1.3.0", false),
        ("~1", "1.9.9", true),
        ("~1", "2.0.0", false),
        ("~0", "0.9.0", true),
        ("~0.0", "0.1.0", false),
        ("~0.0.0", "5.4.3", true),
        ("~*", "7.0.0", true),
        ("~1.2.3-beta.2", "1.2.3-beta.4", true),
        ("~1.2.3-beta.2", "1.2.9-alpha", true),
        ("~1.2.3-beta.2", "1.3.0-alpha", false),
        // Caret.
        ("^1.2.3", "1.2.3", true),
        ("^1.2.3", "1.99.0", true),
        ("^1.2.3", "2.0.0", false),
        ("^1.2.3", "1.2.2", false),
        ("^1.2", "1.2.0", true),
        ("^1", "1.5.0", true),
        ("^1.x", "2.0.0", false),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.2", "0.2.0", true),
        ("^0.x", "0.9.0", true),
        ("^0.x", "1.0.0", false),
        ("^0.0.3", "0.0.3", true),
        ("^0.0.3", "0.0.4", false),
        ("^0.0", "0.0.9", true),
        ("^0.0", "0.1.0", false),
        ("^0.0.x", "0.0.9", true),
        ("^0.0.x", "0.1.0", false),
        ("^0", "0.99.0", true),
        ("^0", "1.0.0", false),
        ("^*", "0.0.0", true),
        ("^*", "0.0.1", false),
        ("^*", "1.0.0", false),
        ("^1.2.0-alpha.0", "1.3.0-beta", true),
        ("^1.2.0", "1.3.0-beta", false),
        // AND groups with spaces and commas.
        (">=1.2.0, <2.0.0", "1.5.0", true),
        (">=1.2.0, <2.0.0", "2.0.0", false),
        (">=1.2.0, <2.0.0", "1.1.0", false),
        (">=1.2.0 <2.0.0", "1.9.9", true),
        (">=1.2.0,<2.0.0", "1.2.0", true),
        (">= 1.2 , < 2", "1.2.0", true),
        (">=1, <2, !=1.5.0", "1.5.0", false),
        (">=1 <2 !=1.5.0", "1.5.1", true),
        ("\t>=1.2\n<2 ", "1.4.0", true),
        ("1 2", "1.0.0", false),
        // OR groups.
        ("<1.0.0 || >=2.0.0", "1.5.0", false),
        ("<1.0.0 || >=2.0.0", "2.1.0", true),
        ("<1.0.0||>=2.0.0", "0.9.0", true),
        ("1.2.3 || 1.2.5", "1.2.5", true),
        // Hyphen ranges (inclusive, partial upper bound rounds up).
        ("1.2 - 1.4.5", "1.2.0", true),
        ("1.2 - 1.4.5", "1.4.5", true),
        ("1.2 - 1.4.5", "1.4.6", false),
        ("1.2.3 - 2", "2.9.9", true),
        ("1.2.3 - 2", "3.0.0", false),
        ("1 - 2 || 5 - 6", "5.5.0", true),
        ("1.0.0 - 2.0.0, !=1.5.0", "1.5.0", false),
        ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
        ("1.2-3", "1.2.0-3", true),
        ("1.2-3", "1.1.0", false),
        ("1.2-3", "1.2.9", true),
        // Pre-releases need a pre-release comparator in the same group.
        (">=1.0.0", "1.5.0-beta", false),
        (">=1.0.0-0", "1.5.0-beta", true),
        (">=1.0.0-0 <2", "1.5.0-beta", true),
        (">=1.0.0-0 <2", "2.0.0-beta", true),
        (">=1.0.0 <2.0.0-0", "1.5.0-beta", true),
        (">=1.0.0-0 || >=1.0.0", "1.5.0-beta", true),
        (">=1.0.0 || <0.5.0-0", "1.5.0-beta", false),
        (">0.0.0-0", "0.0.1-alpha", true),
        (">0-0", "0.0.1-alpha", false),
        ("<1.0.0-0", "1.0.0-alpha", false),
        ("<1.0.0-z", "1.0.0-alpha", true),
    ];

    #[test]
    fn matches_table() {
        for (constraint, version, want) in MATCHES {
            let got = c(constraint).matches(&v(version));
            assert_eq!(got, *want, "{constraint:?} against {version:?}");
        }
    }

    /// Cases from the `Constraints.Check` table of Masterminds/semver's own test suite
    /// (`TestConstraintsCheck`), a second opinion independent of the table above.
    #[test]
    fn masterminds_check_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("~0.0.0", "1.2.3", true),
            ("0.x.x", "1.2.3", false),
            ("0.0.x", "1.2.3", false),
            ("0.0.0", "1.2.3", false),
            ("^0.0.0", "1.2.3", false),
            ("= 2.0", "1.2.3", false),
            ("= 2.0", "2.0.0", true),
            ("4.1.x", "4.1.3", true),
            ("1.x", "1.4", true),
            ("!=4.1-alpha", "4.1.0-alpha", false),
            ("!=4.1-alpha", "4.1.1-alpha", false),
            ("!=4.1-alpha", "4.1.0", true),
            ("!=4.x", "5.1.0", true),
            ("!=4.x", "4.1.0", false),
            ("!=4.1.x", "4.2.0", true),
            ("!=4.2.x", "4.2.3", false),
            ("<1.x", "1.1.1", false),
            ("<1.x", "2.0.0", false),
            ("<1.1.x", "1.1.500", false),
            ("<1.1.x", "1.0.500", true),
            (">=1.1", "4.1.0-beta", false),
            ("<=1.1", "0.1.0-alpha", false),
            ("<=1.1-a", "0.1.0-alpha", true),
            ("<=2.x", "3.0.0", false),
            ("<=1.1.x", "1.2.500", false),
            ("<=4.5", "3.7.0", true),
            ("<=4.5", "4.6.3", false),
            (">1.1, <2", "1.1.1", false),
            (">1.1, <2", "1.2.1", true),
            (">=1.1, <2, !=1.2.3", "1.2.3", false),
            (">1.1    <3", "4.3.2", false),
            (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
            (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
            (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
            (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", false),
            ("> 1.1, <     2", "1.1.1", false),
            (">=1.1    < 2    != 1.2.3", "1.2.3", false),
            ("1.1 - 2", "1.1.1", true),
            ("1.5.0 - 4.5", "3.7.0", true),
            ("1.1-3", "4.3.2", false),
            ("^2.x", "1.1.1", false),
            ("^1.x", "1.1.1-beta1", false),
            ("^1.1.2-alpha", "1.2.1-beta1", true),
            ("^1.2.x-alpha", "1.1.1-beta1", false),
            ("^0.0.1", "0.3.1", false),
            ("~1", "1.4", true),
            ("~1.x", "2.1.1", false),
            ("~1.1", "1.1.1-alpha", false),
            ("~1.1-alpha", "1.1.1-beta", true),
            ("~1.1.1-beta", "1.1.1-alpha", false),
            ("~1.1.1-beta", "1.1.1", true),
            ("~1.3", "2.4.5", false),
            (">0", "0", false),
            (">0", "0.0.1-alpha", false),
            (">0.0-0", "0.0.1-alpha", false),
            (">0.0.0-0", "0.0.0-alpha", true),
            (">1.2.3-alpha.1", "1.3.3-alpha.2", true),
            (">11.1", "11.1.1", false),
            (">=0-0", "0.0.0-alpha", true),
            ("<0-z", "0.0.0-alpha", true),
            ("=0", "1", false),
            ("2.1.*", "2.2.1", false),
            ("~1.2.3-beta.2", "1.2.4-beta.2", true),
            ("^0.2.3-beta.2", "0.3.4-beta.2", false),
            ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
        ];
        for (constraint, version, want) in cases {
            let got = c(constraint).matches(&v(version));
            assert_eq!(got, *want, "{constraint:?} against {version:?}");
        }
    }

    #[test]
    fn nodejs_semver_comma_pitfall() {
        // `nodejs-semver` reads the comma form wrongly; here it is the
        // same as the space form.
        let comma = c(">=1.2.0, <2.0.0");
        let space = c(">=1.2.0 <2.0.0");
        for version in ["1.1.9", "1.2.0", "1.9.9", "2.0.0", "2.0.1", "3.0.0"] {
            let version = v(version);
            assert_eq!(comma.matches(&version), space.matches(&version));
        }
        assert!(!comma.matches(&v("2.5.0")));
    }

    #[test]
    fn devel_follows_helm() {
        // No --version: Helm uses `*`, or `>0.0.0-0` with --devel.
        let any = c("");
        assert!(any.matches(&v("1.2.3")));
        assert!(!any.matches(&v("1.2.3-rc.1")));
        assert!(any.matches_devel(&v("1.2.3-rc.1")));
        assert!(any.matches_devel(&v("0.0.0-alpha")));
        assert!(any.matches_devel(&v("0.0.0")));
        assert!(!any.matches_devel(&v("0.0.0-0")));
        assert_eq!(any.to_string(), "");

        // An explicit constraint ignores --devel.
        let caret = c("^1.2");
        assert!(!caret.matches_devel(&v("1.3.0-beta")));
        assert!(caret.matches_devel(&v("1.3.0")));
        assert!(caret.matches_including_prereleases(&v("1.3.0-beta")));
        assert!(!caret.matches_including_prereleases(&v("2.0.0-beta")));
        let pre = c(">=1.2.3-0 <2");
        assert!(pre.matches_devel(&v("1.9.0-beta")));
    }

    #[test]
    fn including_prereleases_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "1.0.0-beta", true),
            ("*", "0.0.0-beta", false),
            (">=1.0.0 <2.0.0", "1.5.0-rc.1", true),
            (">=1.0.0 <2.0.0", "2.0.0-rc.1", true),
            ("~1.2", "1.2.5-rc.1", true),
            ("~1.2", "1.2.0-rc.1", false),
            ("<=1.2", "1.2.5-rc.1", true),
            ("!=1.2.x", "1.2.5-rc.1", true),
        ];
        for (constraint, version, want) in cases {
            let got = c(constraint).matches_including_prereleases(&v(version));
            assert_eq!(got, *want, "{constraint:?} against {version:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let bad = [
            " ",
            "\t",
            ">= bar",
            "BAR >= 1.2.3",
            "foo",
            "1.2.3.4",
            "12.3.34.1234",
            "12.3.34~ 1.2.3",
            "1.2>=3",
            ">=1.2,",
            ",>=1.2",
            ">=1.2,,<2",
            ">=1 ||",
            "|| >=1",
            ">=1 || || <3",
            "> =1",
            "==1",
            ">>1",
            "=>=1",
            "<>1",
            "!1",
            ">= 1.2 - 1.4",
            "1.2.3 -1.4",
            "1.2.3- 1.4",
            "V1.2.3",
            "1x",
            "xx",
            "1.2.|",
            ">1 |2",
            "1.2.3-01",
            "1.x-01",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "18446744073709551616",
            ">=1.2.3 ||| 4",
            "1.2.3 - ",
            "^",
            "~>",
        ];
        for input in bad {
            let err = Constraint::parse(input).err();
            assert!(err.is_some(), "{input:?} should not parse");
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.starts_with(&format!("improper constraint: {input:?}")),
                "{input:?}: {message}"
            );
        }
    }

    #[test]
    fn accepted_oddities() {
        // Accepted by Masterminds, so accepted here.
        for input in [
            "x.|",
            "1.x.|",
            "x.2.3",
            "1 , 2",
            ">=1.2.3, <2.0.0 || 3.x",
            "v2.3.5-20161202202307-sha.e8fc5e5",
            "~> 1.2.3+build",
            "*.*.*",
        ] {
            assert!(Constraint::parse(input).is_ok(), "{input:?}");
        }
    }

    #[test]
    fn error_messages() {
        let message = |s: &str| Constraint::parse(s).err().map(|e| e.to_string());
        assert_eq!(
            message(">= bar").as_deref(),
            Some("improper constraint: \">= bar\"")
        );
        assert_eq!(
            message(">=1 || bar").as_deref(),
            Some("improper constraint: \">=1 || bar\": cannot parse \" bar\"")
        );
        assert_eq!(
            message(">=1.0.0-01").as_deref(),
            Some(
                "improper constraint: \">=1.0.0-01\": invalid version \"1.0.0-01\": \
                 pre-release identifier \"01\" has a leading zero"
            )
        );
    }

    #[test]
    fn display_and_from_str_keep_the_text() {
        let text = ">= 1.2, <2 || 3.x";
        let parsed: Constraint = match text.parse() {
            Ok(parsed) => parsed,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn rewrite_ranges_like_masterminds() {
        let cases = [
            ("4 - 5", ">= 4, <= 5 "),
            ("1.0 - 2.0, 3 - 4", ">= 1.0, <= 2.0 ,>= 3, <= 4 "),
            ("1 - 2 3.0.0 - 3.1", ">= 1, <= 2 >= 3.0.0, <= 3.1 "),
            ("1.0.0 - 2.0.0 !=1.5.0", ">= 1.0.0, <= 2.0.0 !=1.5.0"),
            ("1.2.3-rc.1 - 2", ">= 1.2.3-rc.1, <= 2 "),
            (">=1 - 2", ">=>= 1, <= 2 "),
            ("1-2", "1-2"),
            ("1 -2", "1 -2"),
            (">=1.2.3", ">=1.2.3"),
        ];
        for (input, want) in cases {
            assert_eq!(rewrite_ranges(input), want, "{input:?}");
        }
    }

    /// Regression: a 100 KB run of digits took two minutes to parse, because
    /// the hyphen-range rewrite rescans from every byte. Parsing is now
    /// capped at `MAX_CONSTRAINT_LEN`, where every shape that was slow takes
    /// milliseconds.
    #[test]
    fn quadratic_time_on_long_input_is_capped() {
        let shapes = |n: usize| -> Vec<String> {
            vec![
                "1".repeat(n),
                " ".repeat(n),
                format!("{}1", " ".repeat(n - 1)),
                format!("{} - 1", "a".repeat(n - 4)),
                format!("{} - 1", "1".repeat(n - 4)),
                "1.".repeat(n / 2),
                format!("1.2.3-{}", "a.".repeat((n - 6) / 2)),
                "|".repeat(n),
                "1 - 2 ".repeat(n / 6),
                "1 || ".repeat(n / 5),
                ">=1, ".repeat(n / 5),
                format!("{}+a+b - 1", "1-".repeat((n - 8) / 2)),
            ]
        };
        for input in shapes(100_000) {
            let start = std::time::Instant::now();
            let err = Constraint::parse(&input).err();
            assert_eq!(err, Some(ConstraintError::TooLong { len: input.len() }));
            // Refused by length before any parsing: microseconds; the bound is for a busy
            // machine and an unoptimised build.
            assert!(start.elapsed() < std::time::Duration::from_secs(2));
        }
        for input in shapes(MAX_CONSTRAINT_LEN) {
            assert!(input.len() <= MAX_CONSTRAINT_LEN);
            let start = std::time::Instant::now();
            let _ = Constraint::parse(&input);
            let took = start.elapsed();
            // Milliseconds in practice; the bound leaves room for a slow,
            // busy machine and an unoptimised build.
            assert!(
                took < std::time::Duration::from_secs(2),
                "{} bytes starting {:?} took {took:?}",
                input.len(),
                &input[..20]
            );
        }
        let message = Constraint::parse(&"1".repeat(MAX_CONSTRAINT_LEN + 1))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("improper constraint: it is 4097 bytes long, at most 4096 are allowed")
        );
    }

    /// Property tests: the parser never panics, and `OP VERSION` comparators
    /// and their `,`, space and `||` combinations mean what they should.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Any text, control characters and all of Unicode included.
        fn any_text(max: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
        }

        /// Text made of pieces of the constraint grammar, so that random
        /// inputs get past the first byte of the parser.
        fn near_constraint() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                " ",
                ",",
                "||",
                "|",
                " - ",
                "-",
                ".",
                "+",
                "=",
                "!=",
                ">",
                "<",
                ">=",
                "=<",
                "~",
                "~>",
                "^",
                "v",
                "V",
                "x",
                "X",
                "*",
                "0",
                "1",
                "2",
                "01",
                "3.4.5",
                "18446744073709551616",
                "alpha",
                "\t",
                "\n",
                "\u{e9}",
                "\0",
                "\u{85}",
            ]);
            prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
        }

        const OPS: &[&str] = &[
            "", "=", "!=", ">", "<", ">=", "=>", "<=", "=<", "~", "~>", "^",
        ];

        /// `OP VERSION` with 1 to 3 numeric parts, maybe a wildcard part
        /// after them, a `v` prefix and spaces after the operator.
        #[derive(Debug, Clone)]
        struct Simple {
            op: &'static str,
            parts: Vec<u64>,
            text: String,
        }

        fn simple() -> impl Strategy<Value = Simple> {
            (
                prop::sample::select(OPS),
                prop::collection::vec(0u64..4, 1..=3),
                any::<bool>(),
                any::<bool>(),
                prop::sample::select(vec!["", ".x", ".X", ".*"]),
            )
                .prop_map(|(op, parts, space, v, wild)| {
                    let numbers: Vec<String> = parts.iter().map(u64::to_string).collect();
                    let wild = if parts.len() < 3 { wild } else { "" };
                    let text = format!(
                        "{op}{}{}{}{wild}",
                        if space && !op.is_empty() { " " } else { "" },
                        if v { "v" } else { "" },
                        numbers.join("."),
                    );
                    Simple { op, parts, text }
                })
        }

        /// A release version (no pre-release) with small numbers, so that
        /// the boundaries of the comparators are hit often.
        fn release() -> impl Strategy<Value = Version> {
            (0u64..5, 0u64..5, 0u64..5, any::<bool>()).prop_map(|(a, b, c, build)| {
                v(&format!("{a}.{b}.{c}{}", if build { "+b.1" } else { "" }))
            })
        }

        /// What `OP VERSION` means, written as half-open ranges of
        /// `(major, minor, patch)` independently of the implementation.
        fn model(op: &str, parts: &[u64], version: &Version) -> bool {
            let got = (version.major, version.minor, version.patch);
            let part = |i: usize| parts.get(i).copied().unwrap_or(0);
            let low = (part(0), part(1), part(2));
            // The end of the versions a partial version names: `1.2` names
            // 1.2.*, which ends before 1.3.0.
            let named_end = match parts.len() {
                1 => (low.0 + 1, 0, 0),
                2 => (low.0, low.1 + 1, 0),
                _ => (low.0, low.1, low.2 + 1),
            };
            let named = low <= got && got < named_end;
            match op {
                "" | "=" => named,
                "!=" => !named,
                ">" => got >= named_end,
                "<" => got < low,
                ">=" | "=>" => got >= low,
                "<=" | "=<" => got < named_end,
                "~" | "~>" => {
                    if parts.len() == 3 && low == (0, 0, 0) {
                        true
                    } else if parts.len() == 1 {
                        low <= got && got < (low.0 + 1, 0, 0)
                    } else {
                        low <= got && got < (low.0, low.1 + 1, 0)
                    }
                }
                "^" => {
                    // The first non-zero part is fixed; if all given parts
                    // are zero, the last given one is.
                    let end = if low.0 > 0 || parts.len() == 1 {
                        (low.0 + 1, 0, 0)
                    } else if low.1 > 0 || parts.len() == 2 {
                        (0, low.1 + 1, 0)
                    } else {
                        (0, 0, low.2 + 1)
                    };
                    low <= got && got < end
                }
                _ => unreachable!("{op}"),
            }
        }

        fn join(group: &[Simple], sep: &str) -> String {
            group
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(sep)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn parse_never_panics(text in prop_oneof![any_text(80), near_constraint()]) {
                if let Ok(constraint) = Constraint::parse(&text) {
                    prop_assert_eq!(constraint.to_string(), text);
                    let _ = constraint.matches(&v("1.2.3"));
                    let _ = constraint.matches_devel(&v("1.2.3-rc.1"));
                    let _ = constraint.matches_including_prereleases(&v("0.0.0-0"));
                }
            }

            #[test]
            fn single_comparators_match_the_model(s in simple(), version in release()) {
                let constraint = Constraint::parse(&s.text)
                    .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", s.text)))?;
                prop_assert_eq!(
                    constraint.matches(&version),
                    model(s.op, &s.parts, &version),
                    "{:?} against {}", s.text, version
                );
            }

            #[test]
            fn and_or_combine_their_parts(
                groups in prop::collection::vec(prop::collection::vec(simple(), 1..4), 1..4),
                and in prop::sample::select(vec![",", ", ", " ", " , ", "\t"]),
                or in prop::sample::select(vec!["||", " || ", "|| "]),
                version in release(),
            ) {
                let text = groups.iter().map(|g| join(g, and)).collect::<Vec<_>>().join(or);
                let want = groups
                    .iter()
                    .any(|g| g.iter().all(|s| c(&s.text).matches(&version)));
                prop_assert_eq!(c(&text).matches(&version), want, "{:?} against {}", text, version);
            }

            #[test]
            fn prereleases_need_a_prerelease_comparator(
                group in prop::collection::vec(simple(), 1..4),
                version in release(),
                pre in "(alpha|beta|rc|0|1)(\\.([a-z-][0-9a-z-]{0,3}|0|[1-9][0-9]{0,2})){0,2}",
            ) {
                let text = join(&group, ", ");
                let mut version = version;
                version.pre = semver::Prerelease::new(&pre)
                    .map_err(|e| TestCaseError::fail(format!("{pre:?}: {e}")))?;
                prop_assert!(!c(&text).matches(&version), "{:?} against {}", text, version);
            }

            #[test]
            fn hyphen_ranges_are_inclusive_bounds(
                low in simple(),
                high in simple(),
                version in release(),
            ) {
                let bare = |s: &Simple| {
                    s.text.trim_start_matches(['=', '!', '<', '>', '~', '^', ' ']).to_owned()
                };
                let (low, high) = (bare(&low), bare(&high));
                let range = c(&format!("{low} - {high}"));
                let bounds = c(&format!(">={low}, <={high}"));
                prop_assert_eq!(
                    range.matches(&version),
                    bounds.matches(&version),
                    "{} - {} against {}", low, high, version
                );
            }
        }
    }
}
