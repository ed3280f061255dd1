//! A classic chart repository's `index.yaml` (or `index.json`; JSON is YAML), read the way Helm
//! reads it: entries with an invalid version are skipped with a warning, a missing apiVersion
//! means v1, and each chart's versions are sorted newest first.
//!
//! Only the fields a fetch or a migration needs are kept (name, version, urls, digest,
//! created); everything else a chart's entry carries comes from its `Chart.yaml` when the chart
//! itself is read. Indexes of tens of megabytes are normal (Bitnami's full history), so the
//! file is parsed once, streamed straight into these small structs by `serde-saphyr`, which
//! does not first buffer every YAML event (a 50 MB index takes about 100 MB of memory instead
//! of about 540 MB through `serde_norway`), within [`crate::yaml`]'s limits on nesting and
//! aliases. The caller caps the size of the download.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::chart::metadata::{check_name, check_version};
use crate::constraint::Constraint;
use crate::version;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{source_name}: invalid index: {reason}")]
    Malformed { source_name: String, reason: String },
    #[error("{source_name}: no apiVersion: this is not a chart repository index")]
    NoApiVersion { source_name: String },
    #[error("chart {0:?} is not in the repository")]
    NoChart(String),
    #[error("no version of chart {name:?} matches {constraint:?}")]
    NoVersion { name: String, constraint: String },
    #[error("no chart version in the repository matches {0:?}")]
    NoVersionAtAll(String),
    #[error(transparent)]
    Constraint(#[from] crate::constraint::ConstraintError),
}

/// One chart version as the index lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "scalar")]
    pub version: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub created: String,
    /// Parsed from `version`, for sorting and constraint checks.
    #[serde(skip)]
    pub semver: Option<semver::Version>,
}

#[derive(Debug, Deserialize)]
struct RawIndex {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default)]
    entries: Option<BTreeMap<String, Option<Vec<Option<IndexEntry>>>>>,
}

/// A parsed index: chart name → versions, newest first.
#[derive(Debug, Default)]
pub struct Index {
    pub entries: BTreeMap<String, Vec<IndexEntry>>,
    /// Entries Helm would skip, with why.
    pub warnings: Vec<String>,
}

/// Accepts any YAML scalar as a string (versions like `1.0` are floats to YAML); anything else
/// is an error saying what was expected.
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Scalar;
    impl<'de> serde::de::Visitor<'de> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(Scalar)
        }
    }
    d.deserialize_any(Scalar)
}

impl Index {
    /// Parses index bytes. `source_name` (the URL) is used in messages.
    ///
    /// The bytes are parsed in place, which is several times faster than through a reader
    /// (serde-saphyr decodes a reader character by character) and, like it, never builds a
    /// tree of the whole document: only the fields kept here are allocated.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, IndexError> {
        let malformed = |reason: String| IndexError::Malformed {
            source_name: source_name.to_string(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            malformed(format!("line {line}: not valid UTF-8"))
        })?;
        let raw: RawIndex = crate::yaml::from_large(text).map_err(malformed)?;
        Index::from_raw(raw, source_name)
    }

    fn from_raw(raw: RawIndex, source_name: &str) -> Result<Self, IndexError> {
        if raw.api_version.as_deref().is_none_or(str::is_empty) {
            return Err(IndexError::NoApiVersion {
                source_name: source_name.to_string(),
            });
        }
        let mut index = Index::default();
        for (name, versions) in raw.entries.unwrap_or_default() {
            let mut kept = Vec::new();
            for entry in versions.unwrap_or_default() {
                let Some(mut entry) = entry else {
                    index
                        .warnings
                        .push(format!("skipping an empty entry of chart {name:?}"));
                    continue;
                };
                if entry.name.is_empty() {
                    entry.name = name.clone();
                }
                // As Helm's loader: an invalid entry is skipped with a warning. The name and
                // version name files (`NAME-VERSION.tgz`) and reach the terminal, so they are
                // held to the rules of a chart's own Chart.yaml.
                let checked = check_name(&entry.name)
                    .and_then(|()| check_version(&entry.version))
                    .map_err(|e| e.to_string())
                    .and_then(|()| version::parse(&entry.version).map_err(|e| e.to_string()));
                match checked {
                    Ok(v) => {
                        entry.semver = Some(v);
                        kept.push(entry);
                    }
                    Err(e) => index.warnings.push(format!(
                        "skipping chart {name:?} version {:?}: {e}",
                        entry.version
                    )),
                }
            }
            // Newest first, as Helm's SortEntries; equal precedence keeps index order.
            kept.sort_by(|a, b| match (&a.semver, &b.semver) {
                (Some(x), Some(y)) => y.cmp_precedence(x),
                _ => std::cmp::Ordering::Equal,
            });
            if !kept.is_empty() {
                index.entries.insert(name, kept);
            }
        }
        Ok(index)
    }

    /// Helm's `IndexFile.Get`: an exact version string first, else the newest version matching
    /// the constraint; no constraint means the newest stable version (any with `devel`).
    pub fn get(
        &self,
        name: &str,
        wanted: Option<&str>,
        devel: bool,
    ) -> Result<&IndexEntry, IndexError> {
        let versions = self
            .entries
            .get(name)
            .ok_or_else(|| IndexError::NoChart(name.to_string()))?;
        let wanted = wanted.filter(|w| !w.is_empty());
        if let Some(w) = wanted
            && let Some(exact) = versions.iter().find(|e| e.version == w)
        {
            return Ok(exact);
        }
        let text = match wanted {
            Some(w) => w,
            None if devel => ">0.0.0-0",
            None => "*",
        };
        let constraint = Constraint::parse(text)?;
        versions
            .iter()
            .find(|e| e.semver.as_ref().is_some_and(|v| constraint.matches(v)))
            .ok_or_else(|| IndexError::NoVersion {
                name: name.to_string(),
                constraint: text.to_string(),
            })
    }

    /// Every version of the named charts (all charts when `names` is empty) that matches.
    pub fn select(
        &self,
        names: &[String],
        constraint: Option<&Constraint>,
        devel: bool,
    ) -> Result<Vec<&IndexEntry>, IndexError> {
        for n in names {
            if !self.entries.contains_key(n) {
                return Err(IndexError::NoChart(n.clone()));
            }
        }
        let selected: Vec<&IndexEntry> = self
            .entries
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .flat_map(|(_, versions)| versions.iter())
            .filter(|e| {
                let Some(v) = &e.semver else { return false };
                match constraint {
                    Some(c) if devel => c.matches_including_prereleases(v),
                    Some(c) => c.matches(v),
                    None => true,
                }
            })
            .collect();
        // A constraint that matches nothing is a mistake, not a migration with nothing to do.
        if let (true, Some(c)) = (selected.is_empty(), constraint) {
            return Err(match names {
                [] => IndexError::NoVersionAtAll(c.to_string()),
                _ => IndexError::NoVersion {
                    name: names.join(", "),
                    constraint: c.to_string(),
                },
            });
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"
apiVersion: v1
entries:
  alpine:
    - name: alpine
      version: 0.1.0
      urls: [alpine-0.1.0.tgz]
      digest: "aa"
    - name: alpine
      version: 0.3.0-rc.1
      urls: [alpine-0.3.0-rc.1.tgz]
    - name: alpine
      version: 0.2.0
      urls: [https://elsewhere.example.com/alpine-0.2.0.tgz]
    - name: alpine
      version: not-semver
      urls: [x.tgz]
  nginx:
    - version: 1.0
      urls: [nginx-1.0.tgz]
generated: "2020-01-01T00:00:00Z"
"#;

    #[test]
    fn parses_sorts_and_skips_invalid_versions() {
        let idx = Index::parse(INDEX.as_bytes(), "test").unwrap();
        let versions: Vec<&str> = idx.entries["alpine"]
            .iter()
            .map(|e| e.version.as_str())
            .collect();
        assert_eq!(versions, ["0.3.0-rc.1", "0.2.0", "0.1.0"]);
        assert_eq!(idx.warnings.len(), 1, "{:?}", idx.warnings);
        assert!(idx.warnings[0].contains("not-semver"));
        // A float version and a missing name are read as Helm reads them.
        assert_eq!(idx.entries["nginx"][0].version, "1");
        assert_eq!(idx.entries["nginx"][0].name, "nginx");
    }

    #[test]
    fn get_resolves_like_helm() {
        let idx = Index::parse(INDEX.as_bytes(), "test").unwrap();
        assert_eq!(idx.get("alpine", None, false).unwrap().version, "0.2.0");
        assert_eq!(idx.get("alpine", None, true).unwrap().version, "0.3.0-rc.1");
        assert_eq!(
            idx.get("alpine", Some("0.1.0"), false).unwrap().version,
            "0.1.0"
        );
        assert_eq!(
            idx.get("alpine", Some("~0.1"), false).unwrap().version,
            "0.1.0"
        );
        assert_eq!(
            idx.get("alpine", Some("0.3.0-rc.1"), false)
                .unwrap()
                .version,
            "0.3.0-rc.1"
        );
        assert!(matches!(
            idx.get("alpine", Some(">5"), false),
            Err(IndexError::NoVersion { .. })
        ));
        assert!(matches!(
            idx.get("nope", None, false),
            Err(IndexError::NoChart(_))
        ));
    }

    #[test]
    fn json_indexes_parse_too() {
        let json = r#"{"apiVersion":"v1","entries":{"a":[{"name":"a","version":"1.2.3","urls":["a-1.2.3.tgz"]}]}}"#;
        assert_eq!(
            Index::parse(json.as_bytes(), "j").unwrap().entries["a"][0].version,
            "1.2.3"
        );
    }

    #[test]
    fn malformed_index_names_line() {
        let err = Index::parse(b"apiVersion: v1\nentries:\n  a: [\n", "http://x/index.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http://x/index.yaml") && err.contains("line"),
            "{err}"
        );
        assert!(Index::parse(b"entries: {}\n", "x").is_err());
        let err = Index::parse(b"apiVersion: v1\nentries:\n  \xff: []\n", "u")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "u: invalid index: line 3: not valid UTF-8");
        // A version that is not a scalar says so, where it is.
        let err = Index::parse(
            b"apiVersion: v1\nentries:\n  a:\n    - name: a\n      version: [1]\n",
            "http://x/index.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("http://x/index.yaml: invalid index: line 5")
                && err.contains("expected a string or a number"),
            "{err}"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any index text parses or fails; every entry kept has a safe name and version.
            #[test]
            fn kept_entries_are_safe(name in "\\PC{0,16}", version in "\\PC{0,16}", key in "[a-z]{1,5}") {
                let text = format!(
                    "apiVersion: v1\nentries:\n  {key}:\n    - name: {}\n      version: {}\n      urls: [x.tgz]\n",
                    serde_json::to_string(&name).unwrap_or_default(),
                    serde_json::to_string(&version).unwrap_or_default(),
                );
                if let Ok(index) = Index::parse(text.as_bytes(), "p") {
                    for entry in index.entries.values().flatten() {
                        prop_assert!(check_name(&entry.name).is_ok());
                        prop_assert!(check_version(&entry.version).is_ok());
                    }
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
                let _ = Index::parse(&bytes, "p");
            }
        }
    }
}
