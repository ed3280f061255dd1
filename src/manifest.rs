//! What a manifest or image index is, and what it names: the one reading of the graph
//! (index → manifests → config and layers) that the cache and the copy engine share.
//!
//! A `subject` is not followed: a referrer names the artifact it refers to, not the other
//! way round.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::oci::{
    CONFIG_MEDIA_TYPE, DOCKER_CONFIG_MEDIA_TYPE, DOCKER_LIST_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE, Descriptor, IMAGE_CONFIG_MEDIA_TYPE, INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
};

/// What kind of artifact a manifest is, as `cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    ImageIndex,
    Image,
    DockerList,
    DockerImage,
    HelmChart,
    /// Anything else, by its artifact type (or its config's media type, before OCI 1.1).
    Artifact(String),
}

impl Kind {
    pub fn label(&self) -> &str {
        match self {
            Kind::ImageIndex => "image index",
            Kind::Image => "image",
            Kind::DockerList => "docker list",
            Kind::DockerImage => "docker image",
            Kind::HelmChart => "helm chart",
            Kind::Artifact(t) => t,
        }
    }
}

/// A manifest or index: what it is, and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its own `mediaType`, or what its shape says when it has none (Helm writes none).
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub kind: Kind,
    /// An image index or Docker manifest list (it may name no manifest at all).
    pub index: bool,
    /// The manifests an index names.
    pub children: Vec<Descriptor>,
    /// The config and layers a manifest names.
    pub blobs: Vec<Descriptor>,
    /// What it refers to (a signature's or an SBOM's image), never followed as a child.
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Node {
    /// Reads a manifest or index; an error says why it is neither.
    pub fn parse(bytes: &[u8]) -> Result<Node, String> {
        let shape: Shape = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let own = shape.media_type.filter(|m| !m.is_empty());
        let artifact_type = shape.artifact_type.filter(|a| !a.is_empty());
        if let Some(children) = shape.manifests {
            let media_type = own.unwrap_or_else(|| INDEX_MEDIA_TYPE.to_string());
            let kind = match (media_type.as_str(), &artifact_type) {
                (DOCKER_LIST_MEDIA_TYPE, _) => Kind::DockerList,
                (_, Some(t)) => Kind::Artifact(t.clone()),
                _ => Kind::ImageIndex,
            };
            return Ok(Node {
                media_type,
                artifact_type,
                kind,
                index: true,
                children,
                blobs: Vec::new(),
                subject: shape.subject,
                annotations: shape.annotations,
            });
        }
        let Some(config) = shape.config else {
            return Err("it has neither `manifests` nor `config`".into());
        };
        let media_type = own.unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_string());
        let kind = match (media_type.as_str(), &artifact_type) {
            (DOCKER_MANIFEST_MEDIA_TYPE, _) => Kind::DockerImage,
            _ if config.media_type == CONFIG_MEDIA_TYPE => Kind::HelmChart,
            (_, Some(t)) => Kind::Artifact(t.clone()),
            _ if [IMAGE_CONFIG_MEDIA_TYPE, DOCKER_CONFIG_MEDIA_TYPE]
                .contains(&config.media_type.as_str()) =>
            {
                Kind::Image
            }
            _ => Kind::Artifact(config.media_type.clone()),
        };
        let blobs = std::iter::once(config)
            .chain(shape.layers.into_iter().flatten())
            .collect();
        Ok(Node {
            media_type,
            artifact_type,
            kind,
            index: false,
            children: Vec::new(),
            blobs,
            subject: shape.subject,
            annotations: shape.annotations,
        })
    }

    /// Its artifact type as the referrers API gives it: its own, else its config's media
    /// type (an index without one has none).
    pub fn listed_artifact_type(&self) -> Option<String> {
        match (&self.artifact_type, self.index) {
            (Some(t), _) => Some(t.clone()),
            (None, false) => self.blobs.first().map(|config| config.media_type.clone()),
            (None, true) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn d(b: &[u8]) -> String {
        Digest::of(b).to_string()
    }

    #[test]
    fn kinds() {
        let kind = |json: String| Node::parse(json.as_bytes()).unwrap().kind;
        let desc = |mt: &str| format!(r#"{{"mediaType":"{mt}","digest":"{}","size":1}}"#, d(b"x"));
        assert_eq!(
            kind(format!(
                r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
                desc("m")
            )),
            Kind::ImageIndex
        );
        assert_eq!(
            kind(format!(
                r#"{{"mediaType":"{DOCKER_LIST_MEDIA_TYPE}","manifests":[]}}"#
            )),
            Kind::DockerList
        );
        let manifest = |mt: &str, at: &str, config: &str| {
            kind(format!(
                r#"{{"schemaVersion":2,{mt}{at}"config":{},"layers":[{}]}}"#,
                desc(config),
                desc("l")
            ))
        };
        assert_eq!(
            manifest("", "", IMAGE_CONFIG_MEDIA_TYPE),
            Kind::Image,
            "an OCI manifest without a mediaType"
        );
        assert_eq!(
            manifest(
                &format!(r#""mediaType":"{DOCKER_MANIFEST_MEDIA_TYPE}","#),
                "",
                DOCKER_CONFIG_MEDIA_TYPE
            ),
            Kind::DockerImage
        );
        assert_eq!(manifest("", "", CONFIG_MEDIA_TYPE), Kind::HelmChart);
        assert_eq!(
            manifest(
                "",
                r#""artifactType":"application/vnd.example.sbom","#,
                "application/vnd.oci.empty.v1+json"
            ),
            Kind::Artifact("application/vnd.example.sbom".into())
        );
        assert_eq!(
            manifest("", "", "application/vnd.example.config"),
            Kind::Artifact("application/vnd.example.config".into())
        );
    }

    #[test]
    fn media_types_and_what_a_manifest_names() {
        let n = Node::parse(
            format!(
                r#"{{"schemaVersion":2,"artifactType":"a/b","config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[{{"mediaType":"l","digest":"{}","size":2}}],"subject":{{"mediaType":"m","digest":"{}","size":3}}}}"#,
                d(b"c"),
                d(b"l"),
                d(b"s")
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(n.media_type, MANIFEST_MEDIA_TYPE);
        assert_eq!(n.artifact_type.as_deref(), Some("a/b"));
        // Config and layers; never the subject.
        assert_eq!(n.blobs.len(), 2);
        assert!(n.children.is_empty());
        assert!(!n.index);
        let index = Node::parse(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert!(index.index && index.media_type == INDEX_MEDIA_TYPE);
        assert!(Node::parse(b"{}").is_err());
        assert!(Node::parse(b"[").is_err());
    }
}
