//! Helm's OCI format: media types, and the manifest Helm 3.8+/v4 pushes for a chart.
//!
//! A chart is three things on the wire: a config blob (Chart.yaml metadata as JSON), a content
//! layer (the chart `.tgz`) and, optionally, a provenance layer. The manifest that ties them
//! together is written here exactly as Helm writes it (no top-level `mediaType`, layers sorted by
//! digest, annotations from the metadata), so a cached chart is the artifact Helm would push.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chart::Metadata;
use crate::digest::Digest;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const PROV_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
/// What Helm 3.0–3.6 pushed; still accepted on pull.
pub const LEGACY_CHART_LAYER_MEDIA_TYPE: &str = "application/tar+gzip";
/// An OCI image's config blob.
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker's schema 2 image manifest.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list: an image index by another name.
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image's config blob.
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANNOTATION_URL: &str = "org.opencontainers.image.url";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_AUTHORS: &str = "org.opencontainers.image.authors";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest JSON: {0}")]
    Json(String),
    #[error("unsupported manifest schemaVersion {0} (expected 2)")]
    SchemaVersion(u32),
    #[error("manifest config has media type {0:?}, not a Helm chart ({CONFIG_MEDIA_TYPE})")]
    NotAChart(String),
    #[error("manifest does not contain a layer with media type {CHART_LAYER_MEDIA_TYPE}")]
    NoChartLayer,
}

/// An OCI content descriptor, fields in the image-spec's Go order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The type of an artifact (OCI 1.1), as referrers carry it in their descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: BTreeMap::new(),
            artifact_type: None,
        }
    }
}

/// An OCI image manifest, fields in the image-spec's Go order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// The manifest Helm pushes for a chart: config, content layer and optional provenance
    /// layer sorted by digest, Helm's annotations.
    pub fn for_chart(
        metadata: &Metadata,
        config: Descriptor,
        content: Descriptor,
        prov: Option<Descriptor>,
        created: Option<&str>,
    ) -> Self {
        let mut layers: Vec<Descriptor> = std::iter::once(content).chain(prov).collect();
        layers.sort_by(|a, b| a.digest.cmp(&b.digest));
        Manifest {
            schema_version: 2,
            media_type: None,
            artifact_type: None,
            config,
            layers,
            annotations: chart_annotations(metadata, created),
        }
    }

    /// The exact bytes to store and push.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::gojson::to_vec(self)
    }

    /// Parses a manifest and checks it is a Helm chart.
    pub fn parse_chart(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(m.schema_version));
        }
        if m.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(ManifestError::NotAChart(m.config.media_type.clone()));
        }
        m.chart_layer().ok_or(ManifestError::NoChartLayer)?;
        Ok(m)
    }

    /// The chart content layer (the last one, as Helm picks it), legacy media type included.
    pub fn chart_layer(&self) -> Option<&Descriptor> {
        self.layers.iter().rev().find(|l| {
            l.media_type == CHART_LAYER_MEDIA_TYPE || l.media_type == LEGACY_CHART_LAYER_MEDIA_TYPE
        })
    }

    pub fn prov_layer(&self) -> Option<&Descriptor> {
        self.layers
            .iter()
            .find(|l| l.media_type == PROV_LAYER_MEDIA_TYPE)
    }

    /// Every blob the manifest refers to: config first, then layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// Helm's `generateOCIAnnotations`: blank values left out, the chart's own annotations merged
/// in except title and version.
pub fn chart_annotations(md: &Metadata, created: Option<&str>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut add = |k: &str, v: &str| {
        if !v.trim().is_empty() {
            a.insert(k.to_string(), v.to_string());
        }
    };
    add(ANNOTATION_DESCRIPTION, &md.description);
    add(ANNOTATION_TITLE, &md.name);
    add(ANNOTATION_VERSION, &md.version);
    add(ANNOTATION_URL, &md.home);
    add(ANNOTATION_CREATED, created.unwrap_or(""));
    if let Some(source) = md.sources.first() {
        add(ANNOTATION_SOURCE, source);
    }
    let authors = md
        .maintainers
        .iter()
        .map(|m| {
            if m.email.is_empty() {
                m.name.clone()
            } else {
                format!("{} ({})", m.name, m.email)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    add(ANNOTATION_AUTHORS, &authors);
    for (k, v) in &md.annotations {
        if k != ANNOTATION_TITLE && k != ANNOTATION_VERSION {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

/// A chart archive as the OCI artifact Helm pushes for it: the config blob (Chart.yaml as
/// JSON), the content layer (the archive, byte for byte), the provenance layer when there is a
/// `.prov`, and the manifest tying them together. `chart save` of a package and a classic
/// repository read as a place of the copy engine both make it here, so the same archive gives
/// the same digests either way.
#[derive(Debug, Clone)]
pub struct ChartArtifact {
    pub config_bytes: Vec<u8>,
    pub config: Descriptor,
    pub content: Descriptor,
    pub prov: Option<Descriptor>,
    pub manifest_bytes: Vec<u8>,
}

impl ChartArtifact {
    /// The artifact of an archive whose Chart.yaml is `metadata`, whose bytes have `digest`
    /// and `size`; `created` is the `org.opencontainers.image.created` annotation, if any.
    pub fn new(
        metadata: &Metadata,
        digest: Digest,
        size: u64,
        prov: Option<&[u8]>,
        created: Option<&str>,
    ) -> Self {
        let config_bytes = metadata.to_config_json();
        let config = Descriptor::new(
            CONFIG_MEDIA_TYPE,
            Digest::of(&config_bytes),
            config_bytes.len() as u64,
        );
        let content = Descriptor::new(CHART_LAYER_MEDIA_TYPE, digest, size);
        let prov =
            prov.map(|p| Descriptor::new(PROV_LAYER_MEDIA_TYPE, Digest::of(p), p.len() as u64));
        let manifest = Manifest::for_chart(
            metadata,
            config.clone(),
            content.clone(),
            prov.clone(),
            created,
        );
        ChartArtifact {
            config_bytes,
            config,
            content,
            prov,
            manifest_bytes: manifest.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_helms_shape() {
        let md = Metadata::from_yaml(
            b"apiVersion: v2\nname: mychart\nversion: 0.1.0\ndescription: d\nmaintainers: [{name: A, email: a@x}, {name: B}]\nannotations: {org.opencontainers.image.title: nope, extra: yes}\n",
        )
        .unwrap();
        let config = Descriptor::new(CONFIG_MEDIA_TYPE, Digest::of(b"c"), 1);
        let content = Descriptor::new(CHART_LAYER_MEDIA_TYPE, Digest::of(b"t"), 2);
        let m = Manifest::for_chart(&md, config, content, None, None);
        let json = String::from_utf8(m.to_bytes()).unwrap();
        assert!(json.starts_with(r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:"#), "{json}");
        assert!(json.contains(r#""annotations":{"extra":"yes","org.opencontainers.image.authors":"A (a@x), B","org.opencontainers.image.description":"d","org.opencontainers.image.title":"mychart","org.opencontainers.image.version":"0.1.0"}}"#), "{json}");
        assert_eq!(Manifest::parse_chart(json.as_bytes()).unwrap(), m);
    }

    #[test]
    fn layers_sorted_by_digest_and_legacy_accepted() {
        let md = Metadata::from_yaml(b"apiVersion: v2\nname: x\nversion: 1.0.0\n").unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let m = Manifest::for_chart(
            &md,
            Descriptor::new(CONFIG_MEDIA_TYPE, Digest::of(b"c"), 1),
            Descriptor::new(CHART_LAYER_MEDIA_TYPE, hi.clone(), 1),
            Some(Descriptor::new(PROV_LAYER_MEDIA_TYPE, lo.clone(), 1)),
            Some("2026-01-01T00:00:00Z"),
        );
        assert_eq!(m.layers[0].digest, lo);
        assert_eq!(m.chart_layer().unwrap().digest, hi);
        assert_eq!(m.annotations[ANNOTATION_CREATED], "2026-01-01T00:00:00Z");

        let mut legacy = m.clone();
        legacy.layers = vec![Descriptor::new(LEGACY_CHART_LAYER_MEDIA_TYPE, hi, 1)];
        assert!(Manifest::parse_chart(&legacy.to_bytes()).is_ok());
        legacy.layers.clear();
        assert!(matches!(
            Manifest::parse_chart(&legacy.to_bytes()),
            Err(ManifestError::NoChartLayer)
        ));
    }
}
