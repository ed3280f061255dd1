//! Images a chart lists in its Chart.yaml annotations: `helm.sh/images` (HIP-0015),
//! `images` (what VMware's Distribution Tooling for Helm writes) and `artifacthub.io/images`.
//! All three hold a YAML list of `{name, image}` entries (other fields, like `whitelisted` or
//! `platforms`, are ignored); a plain list of strings is read too.

use std::collections::BTreeMap;

use super::values::{Node, Value};

/// The annotation keys read, in the order they are reported.
pub const KEYS: [&str; 3] = ["helm.sh/images", "images", "artifacthub.io/images"];

/// One listed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: &'static str,
    pub index: usize,
    pub text: String,
}

impl Listed {
    /// Where it is, as a key path into Chart.yaml.
    pub fn path(&self) -> String {
        format!("annotations[\"{}\"][{}]", self.key, self.index)
    }
}

/// The listed images, and a message for each annotation or entry that could not be read.
pub fn find(annotations: &BTreeMap<String, String>) -> (Vec<Listed>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for key in KEYS {
        let Some(text) = annotations.get(key) else {
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let parsed: Result<Node, String> = crate::yaml::from_small(text);
        let items = match parsed {
            Ok(Node {
                value: Value::List(items),
                ..
            }) => items,
            Ok(_) => {
                problems.push(format!("annotations[\"{key}\"] is not a list of images"));
                continue;
            }
            Err(e) => {
                problems.push(format!("annotations[\"{key}\"]: {e}"));
                continue;
            }
        };
        for (index, item) in items.iter().enumerate() {
            let text = match &item.value {
                Value::Str(s) => Some(s.clone()),
                Value::Map(_) => item.get("image").and_then(Node::scalar_text),
                _ => None,
            };
            match text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
                Some(text) => found.push(Listed { key, index, text }),
                None => problems.push(format!("annotations[\"{key}\"][{index}] has no image")),
            }
        }
    }
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_formats() {
        let mut a = BTreeMap::new();
        a.insert(
            "artifacthub.io/images".to_string(),
            "- name: app\n  image: ghcr.io/x/app:1.0\n  whitelisted: true\n- name: db\n  image: postgres:16\n".to_string(),
        );
        a.insert(
            "images".to_string(),
            "- name: w\n  image: docker.io/bitnami/wordpress:6\n".to_string(),
        );
        a.insert(
            "helm.sh/images".to_string(),
            "- quay.io/a/b:2\n".to_string(),
        );
        a.insert("other".to_string(), "- not: images\n".to_string());
        let (found, problems) = find(&a);
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<_> = found.iter().map(|l| (l.path(), l.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "annotations[\"helm.sh/images\"][0]".to_string(),
                    "quay.io/a/b:2"
                ),
                (
                    "annotations[\"images\"][0]".to_string(),
                    "docker.io/bitnami/wordpress:6"
                ),
                (
                    "annotations[\"artifacthub.io/images\"][0]".to_string(),
                    "ghcr.io/x/app:1.0"
                ),
                (
                    "annotations[\"artifacthub.io/images\"][1]".to_string(),
                    "postgres:16"
                ),
            ]
        );
    }

    #[test]
    fn unreadable_annotations_are_reported() {
        let mut a = BTreeMap::new();
        a.insert("images".to_string(), "name: x".to_string());
        a.insert(
            "artifacthub.io/images".to_string(),
            "- {name: x}\n- [".to_string(),
        );
        a.insert("helm.sh/images".to_string(), "- {name: x}\n".to_string());
        let (found, problems) = find(&a);
        assert!(found.is_empty());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("has no image")));
    }
}
