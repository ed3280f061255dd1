//! `Chart.yaml`: the chart's metadata, read leniently the way Helm reads it, validated the way
//! Helm validates it, and written back out as the JSON config blob Helm puts on the wire.
//!
//! The field order of [`Metadata`] is the order of Helm's Go struct, and empty fields are left
//! out as Go's `omitempty` does, so `serde_json` output (through [`crate::gojson`]) is byte for
//! byte the config blob `helm push` uploads for the same chart.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::version;

/// Why a Chart.yaml was refused. The caller adds the path.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("chart.metadata.apiVersion {0:?} is not supported (use v1 or v2)")]
    ApiVersion(String),
    #[error("chart.metadata.name is required")]
    NoName,
    #[error(
        "chart.metadata.name {0:?} is invalid: use at most 250 letters, digits, '.', '_' and '-', not '.' or '..'"
    )]
    BadName(String),
    #[error("chart.metadata.version is required")]
    NoVersion,
    /// `reason` is the version parser's message, which names the version.
    #[error("chart.metadata.version: {reason}")]
    BadVersion { reason: String },
    #[error("chart.metadata.type {0:?} is invalid (use application or library)")]
    BadType(String),
    #[error("dependency name or alias {0:?} is used more than once")]
    DuplicateDependency(String),
    #[error("a dependency has no name")]
    UnnamedDependency,
}

/// Helm's `chart.Metadata`, in its Go field order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub home: String,
    #[serde(
        default,
        deserialize_with = "lenient::strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sources: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    #[serde(
        default,
        deserialize_with = "lenient::strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub keywords: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub maintainers: Vec<Maintainer>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub icon: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub condition: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub tags: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub app_version: String,
    #[serde(
        default,
        deserialize_with = "lenient::boolean",
        skip_serializing_if = "is_false"
    )]
    pub deprecated: bool,
    #[serde(
        default,
        deserialize_with = "lenient::string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub kube_version: String,
    #[serde(
        default,
        deserialize_with = "lenient::seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dependencies: Vec<Dependency>,
    #[serde(
        rename = "type",
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub chart_type: String,
}

/// Helm's `chart.Maintainer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Maintainer {
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub email: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub url: String,
}

/// Helm's `chart.Dependency`. `name` and `repository` have no `omitempty` in Go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub repository: String,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub condition: String,
    #[serde(
        default,
        deserialize_with = "lenient::strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient::boolean",
        skip_serializing_if = "is_false"
    )]
    pub enabled: bool,
    #[serde(
        rename = "import-values",
        default,
        deserialize_with = "lenient::seq",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub import_values: Vec<serde_json::Value>,
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "String::is_empty"
    )]
    pub alias: String,
}

/// The dependency list of an apiVersion v1 chart, kept in `requirements.yaml`.
#[derive(Debug, Default, Deserialize)]
pub struct Requirements {
    #[serde(default, deserialize_with = "lenient::seq")]
    pub dependencies: Vec<Dependency>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Metadata {
    /// Parses and validates Chart.yaml text. A missing apiVersion means v1, as in Helm's loader.
    pub fn from_yaml(bytes: &[u8]) -> Result<Self, MetadataError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut md: Metadata = if bytes.iter().all(u8::is_ascii_whitespace) {
            Metadata::default()
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| MetadataError::Yaml("not valid UTF-8".into()))?;
            crate::yaml::from_small(text).map_err(|e| MetadataError::Yaml(one_line(&e)))?
        };
        if md.api_version.is_empty() {
            md.api_version = "v1".to_string();
        }
        md.validate()?;
        Ok(md)
    }

    /// Helm's `Metadata.Validate`, plus `helm lint`'s apiVersion check.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.api_version != "v1" && self.api_version != "v2" {
            return Err(MetadataError::ApiVersion(self.api_version.clone()));
        }
        if self.name.is_empty() {
            return Err(MetadataError::NoName);
        }
        check_name(&self.name)?;
        if self.version.is_empty() {
            return Err(MetadataError::NoVersion);
        }
        check_version(&self.version)?;
        if !matches!(self.chart_type.as_str(), "" | "application" | "library") {
            return Err(MetadataError::BadType(self.chart_type.clone()));
        }
        let mut seen = std::collections::HashSet::new();
        for dep in &self.dependencies {
            if dep.name.is_empty() {
                return Err(MetadataError::UnnamedDependency);
            }
            let key = if dep.alias.is_empty() {
                &dep.name
            } else {
                &dep.alias
            };
            if !seen.insert(key.clone()) {
                return Err(MetadataError::DuplicateDependency(key.clone()));
            }
        }
        Ok(())
    }

    /// A config blob from a registry: the chart's name and version must be valid, since they
    /// name files in the cache and are printed.
    pub fn from_registry_config(bytes: &[u8]) -> Result<Self, MetadataError> {
        let md = Self::from_config_json(bytes)?;
        if md.name.is_empty() {
            return Err(MetadataError::NoName);
        }
        check_name(&md.name)?;
        if md.version.is_empty() {
            return Err(MetadataError::NoVersion);
        }
        check_version(&md.version)?;
        Ok(md)
    }

    /// The OCI config blob: Go's `json.Marshal(metadata)`.
    pub fn to_config_json(&self) -> Vec<u8> {
        crate::gojson::to_vec(self)
    }

    /// Reads a config blob back.
    pub fn from_config_json(bytes: &[u8]) -> Result<Self, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::Yaml(e.to_string()))
    }
}

/// Longest chart name accepted: it is a directory name and part of `NAME-VERSION.tgz`.
pub const MAX_NAME: usize = 250;
/// Longest version accepted: it becomes an OCI tag, which holds at most 128 characters.
pub const MAX_VERSION: usize = 128;

/// Helm's chart name rule (`helm create`: `^[a-zA-Z0-9._-]+$`), which every real chart
/// follows, and never `.` or `..`. Names from any source (Chart.yaml, a registry's config
/// blob, an index entry) pass here before they name a file or reach a terminal; Helm's own
/// loader only refuses path separators, which leaves control characters and `..` through.
pub fn check_name(name: &str) -> Result<(), MetadataError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(MetadataError::BadName(name.to_string()))
    }
}

/// A chart version: SemVer as Helm reads it, at most [`MAX_VERSION`] characters. Its
/// characters are then letters, digits, `.`, `-` and `+` only.
pub fn check_version(v: &str) -> Result<(), MetadataError> {
    if v.len() > MAX_VERSION {
        return Err(MetadataError::BadVersion {
            reason: format!("the version is longer than {MAX_VERSION} characters"),
        });
    }
    version::parse(v).map_err(|e| MetadataError::BadVersion {
        reason: e.to_string(),
    })?;
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Deserializers that accept what Go's YAML-to-JSON conversion accepts: scalars of any kind
/// where a string is expected, and `null` wherever a value may be left empty.
mod lenient {
    use super::*;
    use serde::de::Error;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Str(String),
        Bool(bool),
        Int(i64),
        Uint(u64),
        Float(f64),
    }

    impl Scalar {
        fn into_string(self) -> String {
            match self {
                Scalar::Str(s) => s,
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Uint(u) => u.to_string(),
                Scalar::Float(f) => f.to_string(),
            }
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?
            .map(Scalar::into_string)
            .unwrap_or_default())
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Option::<Vec<Option<Scalar>>>::deserialize(d)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.map(Scalar::into_string).unwrap_or_default())
            .collect())
    }

    pub fn string_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(Option::<BTreeMap<String, Option<Scalar>>>::deserialize(d)?
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.map(Scalar::into_string).unwrap_or_default()))
            .collect())
    }

    pub fn seq<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Option::<Scalar>::deserialize(d)? {
            None => Ok(false),
            Some(Scalar::Bool(b)) => Ok(b),
            Some(Scalar::Str(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(other) => Err(D::Error::custom(format!(
                "expected a boolean, found {:?}",
                other.into_string()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_matches_helm_field_order_and_omitempty() {
        let yaml = br#"
apiVersion: v2
name: mychart
version: 0.1.0
description: A Helm chart for <Kubernetes> & friends
type: application
appVersion: 1.16
home: https://example.com
sources: [https://github.com/x/y]
keywords: [a, b]
maintainers:
  - name: Jane
    email: jane@example.com
annotations:
  z: last
  a: "1"
dependencies:
  - name: sub
    version: ">=0.1.0"
    repository: ""
"#;
        let md = Metadata::from_yaml(yaml).unwrap();
        let json = String::from_utf8(md.to_config_json()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"name":"mychart","home":"https://example.com","sources":["https://github.com/x/y"],"#,
                r#""version":"0.1.0","description":"A Helm chart for \u003cKubernetes\u003e \u0026 friends","#,
                r#""keywords":["a","b"],"maintainers":[{"name":"Jane","email":"jane@example.com"}],"#,
                r#""apiVersion":"v2","appVersion":"1.16","annotations":{"a":"1","z":"last"},"#,
                r#""dependencies":[{"name":"sub","version":"\u003e=0.1.0","repository":""}],"type":"application"}"#
            )
        );
        assert_eq!(Metadata::from_config_json(json.as_bytes()).unwrap(), md);
    }

    #[test]
    fn missing_api_version_means_v1() {
        let md = Metadata::from_yaml(b"name: x\nversion: 1.0.0\n").unwrap();
        assert_eq!(md.api_version, "v1");
    }

    #[test]
    fn scalars_are_read_as_strings_and_nulls_as_empty() {
        let md = Metadata::from_yaml(b"apiVersion: v2\nname: x\nversion: 1\nappVersion: 2\nkeywords:\nsources: ~\ndeprecated: true\n")
            .unwrap();
        assert_eq!((md.version.as_str(), md.app_version.as_str()), ("1", "2"));
        assert!(md.keywords.is_empty() && md.sources.is_empty() && md.deprecated);
    }

    #[test]
    fn rejects_invalid_metadata() {
        let cases: &[(&str, &str)] = &[
            ("apiVersion: v3\nname: x\nversion: 1.0.0", "apiVersion"),
            ("apiVersion: v2\nversion: 1.0.0", "name is required"),
            ("apiVersion: v2\nname: a/b\nversion: 1.0.0", "name"),
            ("apiVersion: v2\nname: ..\nversion: 1.0.0", "name"),
            (
                "apiVersion: v2\nname: \"a\\e[31mb\"\nversion: 1.0.0",
                "name",
            ),
            ("apiVersion: v2\nname: \"a b\"\nversion: 1.0.0", "name"),
            ("apiVersion: v2\nname: \"\"\nversion: 1.0.0", "name"),
            ("apiVersion: v2\nname: x", "version is required"),
            (
                "apiVersion: v2\nname: x\nversion: one",
                "invalid version \"one\"",
            ),
            (
                "apiVersion: v2\nname: x\nversion: 1.0.0\ntype: plugin",
                "type",
            ),
            (
                "apiVersion: v2\nname: x\nversion: 1.0.0\ndependencies: [{name: a}, {name: a}]",
                "more than once",
            ),
            ("apiVersion: v2\nname: [x\n", "invalid YAML"),
            ("", "name is required"),
        ];
        for (yaml, want) in cases {
            let err = Metadata::from_yaml(yaml.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml:?}: {err}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any Chart.yaml text either fails with an error or gives metadata whose name and
            /// version are safe as file names and on a terminal.
            #[test]
            fn accepted_metadata_is_safe(name in "\\PC{0,20}", version in "\\PC{0,20}", extra in "\\PC{0,40}") {
                let yaml = format!("apiVersion: v2\nname: {name}\nversion: {version}\n{extra}\n");
                if let Ok(md) = Metadata::from_yaml(yaml.as_bytes()) {
                    prop_assert!(check_name(&md.name).is_ok());
                    prop_assert!(md.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
                    prop_assert!(md.name != "." && md.name != "..");
                    prop_assert!(!md.version.contains('/') && !md.version.chars().any(char::is_control));
                }
            }

            /// Arbitrary bytes never panic the parser.
            #[test]
            fn arbitrary_yaml_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = Metadata::from_yaml(&bytes);
                let _ = Metadata::from_registry_config(&bytes);
            }

            /// Names that follow Helm's rule are accepted, and nothing else is.
            #[test]
            fn name_rule(name in "[a-zA-Z0-9._-]{1,40}") {
                prop_assert_eq!(check_name(&name).is_ok(), name != "." && name != "..");
            }
        }
    }
}
