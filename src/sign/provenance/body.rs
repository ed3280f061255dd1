//! The text a provenance file signs: the chart's metadata as YAML, the YAML document end
//! marker `...`, and the digests of the files it vouches for.
//!
//! ```text
//! apiVersion: v2
//! name: mychart
//! version: 0.1.0
//!
//! ...
//! files:
//!   mychart-0.1.0.tgz: sha256:8f6e…
//! ```
//!
//! Helm writes the metadata as `sigs.k8s.io/yaml` does (the JSON of Chart.yaml with keys
//! sorted) and `...` rather than `---` because a clear-signed message may not hold a line that
//! starts with dashes unescaped. Only the digests matter to a verifier; Helm ignores the
//! metadata when it checks, and so does [`parse`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chart::Metadata;
use crate::digest::Digest;

/// The separator between the metadata and the digests.
const SEPARATOR: &str = "\n...\n";

/// Why the signed text is not a provenance message block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the signed text has no '...' line between the chart metadata and the file digests")]
    NoSeparator,
    #[error("the file digests after '...' are not valid YAML: {0}")]
    Yaml(String),
}

/// The digests a provenance file vouches for: file name to `sha256:<hex>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Sums {
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// The message block for an archive named `file_name` (`NAME-VERSION.tgz`, as `helm package`
/// names it) whose bytes have digest `archive`, ending with a newline.
pub fn message_block(metadata: &Metadata, file_name: &str, archive: &Digest) -> String {
    let mut text = metadata_yaml(metadata);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(SEPARATOR);
    let files = BTreeMap::from([(file_name.to_string(), archive.to_string())]);
    text.push_str(&to_yaml(&BTreeMap::from([("files", files)])));
    text
}

/// Reads the digests from a message block (line endings `\n`). Like Helm, the part after the
/// first `...` line is the digests; anything after a second one is ignored.
pub fn parse(text: &str) -> Result<Sums, BodyError> {
    let mut parts = text.split(SEPARATOR);
    let _metadata = parts.next();
    let sums = parts.next().ok_or(BodyError::NoSeparator)?;
    if sums.trim().is_empty() {
        return Ok(Sums::default());
    }
    crate::yaml::from_small::<Sums>(sums).map_err(BodyError::Yaml)
}

/// Chart.yaml as Helm puts it in a provenance file: the JSON it pushes as the config blob
/// (Go's field names, empty fields left out), written as YAML with sorted keys.
fn metadata_yaml(metadata: &Metadata) -> String {
    let json: serde_json::Value =
        serde_json::from_slice(&metadata.to_config_json()).unwrap_or(serde_json::Value::Null);
    to_yaml(&Sorted::from(json))
}

fn to_yaml(value: &impl Serialize) -> String {
    // Serializing plain maps, lists and strings cannot fail.
    serde_norway::to_string(value).unwrap_or_default()
}

/// A JSON value whose objects serialize with their keys sorted, whatever order serde_json
/// keeps them in.
#[derive(Serialize)]
#[serde(untagged)]
enum Sorted {
    Null(()),
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Sorted>),
    Map(BTreeMap<String, Sorted>),
}

impl From<serde_json::Value> for Sorted {
    fn from(value: serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Sorted::Null(()),
            Value::Bool(b) => Sorted::Bool(b),
            Value::Number(n) => Sorted::Number(n),
            Value::String(s) => Sorted::String(s),
            Value::Array(items) => Sorted::List(items.into_iter().map(Sorted::from).collect()),
            Value::Object(map) => {
                Sorted::Map(map.into_iter().map(|(k, v)| (k, Sorted::from(v))).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metadata() -> Metadata {
        Metadata::from_yaml(
            b"apiVersion: v2\nname: mychart\nversion: 0.1.0+build.1\ndescription: 'A chart: signed'\nkeywords: [a, b]\nmaintainers: [{name: Ann, email: ann@example.com}]\nannotations: {z: last, a: first}\n",
        )
        .unwrap()
    }

    #[test]
    fn block_is_helms_shape() {
        let digest = Digest::of(b"archive");
        let text = message_block(&metadata(), "mychart-0.1.0+build.1.tgz", &digest);
        let expected_tail = format!("\n...\nfiles:\n  mychart-0.1.0+build.1.tgz: {digest}\n");
        assert!(text.ends_with(&expected_tail), "{text}");
        // Keys sorted at every level; lists as sigs.k8s.io/yaml writes them.
        assert!(
            text.starts_with("annotations:\n  a: first\n  z: last\napiVersion: v2\n"),
            "{text}"
        );
        assert!(text.contains("keywords:\n- a\n- b\n"), "{text}");
        assert!(
            text.contains("maintainers:\n- email: ann@example.com\n  name: Ann\n"),
            "{text}"
        );
        assert!(!text.contains("\n---"), "{text}");
        let sums = parse(&text).unwrap();
        assert_eq!(
            sums.files.get("mychart-0.1.0+build.1.tgz"),
            Some(&digest.to_string())
        );
    }

    #[test]
    fn reads_helms_own_block() {
        // The block of a .prov written by `helm package --sign` (Helm's test chart).
        let text = "apiVersion: v1\ndescription: Test chart versioning\nname: hashtest\nversion: 1.2.3\n\n...\nfiles:\n  hashtest-1.2.3.tgz: sha256:c6841b3a895f1444a6738b5d04564a57e860ce42f8519c3be807fb6d9bee7888";
        let sums = parse(text).unwrap();
        assert_eq!(
            sums.files["hashtest-1.2.3.tgz"],
            "sha256:c6841b3a895f1444a6738b5d04564a57e860ce42f8519c3be807fb6d9bee7888"
        );
    }

    #[test]
    fn refuses_what_is_not_a_block() {
        assert_eq!(parse("name: x\nfiles: {}\n"), Err(BodyError::NoSeparator));
        assert!(matches!(
            parse("name: x\n\n...\nfiles: [unclosed\n"),
            Err(BodyError::Yaml(_))
        ));
        // A digests part without `files` vouches for nothing.
        assert_eq!(parse("name: x\n\n...\n").unwrap(), Sums::default());
        assert!(matches!(
            parse("x\n...\nfiles:\n  a: [1, 2]\n"),
            Err(BodyError::Yaml(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let text = format!(
            "x\n...\nfiles: {}{}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(parse(&text), Err(BodyError::Yaml(_))));
    }

    proptest! {
        /// Any text: an answer, never a panic.
        #[test]
        fn parse_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text);
        }

        /// Texts shaped like blocks, with arbitrary names: what was written is read back.
        #[test]
        fn block_round_trips(
            name in "[a-z0-9][a-z0-9._-]{0,30}",
            version in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-z0-9.]{1,8})?(\\+[a-z0-9.]{1,8})?",
            description in "\\PC{0,60}",
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut md = metadata();
            md.name = name.clone();
            md.version = version.clone();
            md.description = description;
            let file = format!("{name}-{version}.tgz");
            let digest = Digest::of(&data);
            let text = message_block(&md, &file, &digest);
            let sums = parse(&text).unwrap();
            prop_assert_eq!(sums.files.get(&file), Some(&digest.to_string()));
            prop_assert_eq!(sums.files.len(), 1);
        }
    }
}
