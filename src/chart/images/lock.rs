//! `Images.lock` (or `images.lock`): the images a chart pins, with a digest per platform, as
//! VMware's Distribution Tooling for Helm (`dt`) writes it:
//!
//! ```yaml
//! apiVersion: v0
//! kind: ImagesLock
//! chart: {name: wordpress, version: 19.0.4}
//! images:
//!   - name: wordpress
//!     image: docker.io/bitnami/wordpress:6.4.3-debian-11-r0
//!     chart: wordpress
//!     digests:
//!       - {digest: "sha256:…", arch: linux/amd64}
//! ```

use super::values::{Node, Value};

/// The file names read, in this order (the first present wins).
pub const FILES: [&str; 2] = ["Images.lock", "images.lock"];

/// One digest of a locked image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PlatformDigest {
    pub digest: String,
    /// `os/arch[/variant]`, when the lock says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One locked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub index: usize,
    pub text: String,
    pub digests: Vec<PlatformDigest>,
}

impl Locked {
    pub fn path(&self) -> String {
        format!("images[{}]", self.index)
    }
}

/// The locked images, and a message for each part that could not be read. An unreadable
/// file is one message and no images.
pub fn parse(text: &str) -> (Vec<Locked>, Vec<String>) {
    let doc = match Node::from_yaml(text, 0) {
        Ok(doc) => doc,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let items = match doc.get("images").map(|n| &n.value) {
        Some(Value::List(items)) => items,
        None | Some(Value::Null) => return (Vec::new(), Vec::new()),
        Some(_) => return (Vec::new(), vec!["images is not a list".into()]),
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(text) = item
            .get("image")
            .and_then(Node::scalar_text)
            .filter(|t| !t.trim().is_empty())
        else {
            problems.push(format!("images[{index}] has no image"));
            continue;
        };
        let mut digests = Vec::new();
        if let Some(Value::List(ds)) = item.get("digests").map(|n| &n.value) {
            for (j, d) in ds.iter().enumerate() {
                let digest = d.get("digest").and_then(Node::scalar_text);
                match digest.as_deref().map(super::reference::check_digest) {
                    Some(Ok(digest)) => digests.push(PlatformDigest {
                        digest,
                        platform: d
                            .get("arch")
                            .and_then(Node::scalar_text)
                            .filter(|a| !a.is_empty()),
                    }),
                    _ => problems.push(format!(
                        "images[{index}].digests[{j}]: not a digest like sha256:<64 hex digits>"
                    )),
                }
            }
        }
        digests.sort();
        digests.dedup();
        found.push(Locked {
            index,
            text: text.trim().to_string(),
            digests,
        });
    }
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn reads_dt_locks() {
        let text = format!(
            "apiVersion: v0\nkind: ImagesLock\nimages:\n  - name: w\n    image: docker.io/bitnami/wordpress:6\n    chart: w\n    digests:\n      - digest: {B}\n        arch: linux/arm64\n      - digest: {A}\n        arch: linux/amd64\n"
        );
        let (found, problems) = parse(&text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text, "docker.io/bitnami/wordpress:6");
        assert_eq!(found[0].digests[0].digest, A);
        assert_eq!(found[0].digests[0].platform.as_deref(), Some("linux/amd64"));
    }

    #[test]
    fn bad_parts_are_reported() {
        let (found, problems) =
            parse("images:\n  - name: x\n  - image: a:1\n    digests: [{digest: md5:1}]\n");
        assert_eq!(found.len(), 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let (found, problems) = parse("images: [\n");
        assert!(found.is_empty() && problems.len() == 1);
    }
}
