//! Referrers travel with what they refer to: signatures, SBOMs and attestations of a manifest
//! are copied with it, recursively (a signature of an SBOM too).
//!
//! Two ways of finding them, as the OCI distribution spec 1.1 and cosign define them:
//! - referrers: manifests whose `subject` is the manifest. A registry with the referrers API
//!   lists them itself; every other place (a registry without the API, the cache, an OCI
//!   layout or archive) keeps the **referrers tag schema**: an image index tagged
//!   `sha256-<hex>` in the same repository, listing them. It is merged, never overwritten,
//!   so referrers pushed by two tools both stay.
//! - cosign's tags: `sha256-<hex>.sig`, `.att` and `.sbom`, ordinary tagged manifests, copied
//!   under the same tags.
//!
//! Digests never change: a referrer is copied byte for byte, so its `subject` still names the
//! manifest it signs.
//!
//! A listing of referrers is outside input like any other, and a hostile registry can answer
//! anything: an index too large to hold, thousands of entries, a chain that never ends or
//! loops, descriptors that do not match what they name. So every listing is checked whole
//! ([`check_listing`]) before anything of it is copied, and the walk is bounded:
//! - an index (from the API or the tag schema) is at most [`MAX_INDEX_BYTES`];
//! - one manifest has at most [`MAX_PER_SUBJECT`] referrers;
//! - one copy takes at most [`MAX_PER_ARTIFACT`] referrers, recursion included;
//! - referrers of referrers are followed [`MAX_DEPTH`] deep, and a digest once;
//! - each entry must be a manifest or index of at most the manifest limit, and a referrer's
//!   own `subject` must name the manifest it is listed for (checked when it is fetched), so a
//!   listing cannot make up a chain.

use serde_json::Value;

use super::{EngineError, Result, Sink, Source};
use crate::digest::Digest;
use crate::oci::{Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

/// cosign's tag suffixes: signatures, attestations, SBOMs.
pub const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

pub use crate::registry::referrers::MAX_INDEX_BYTES;
/// The most referrers one manifest may have.
pub use crate::registry::referrers::MAX_REFERRERS as MAX_PER_SUBJECT;
/// The most referrers copied (or shown) with one artifact, referrers of referrers included.
pub const MAX_PER_ARTIFACT: usize = 4096;
/// How deep referrers of referrers are followed (a signature of an SBOM of an image of an
/// index is four).
pub const MAX_DEPTH: usize = 8;

/// Which referrers a copy takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerPolicy {
    /// False with `--no-referrers`.
    pub enabled: bool,
    /// Only these artifact types (`--referrers-type`, repeatable); every type when empty.
    pub types: Vec<String>,
}

impl Default for ReferrerPolicy {
    fn default() -> Self {
        ReferrerPolicy {
            enabled: true,
            types: Vec::new(),
        }
    }
}

impl ReferrerPolicy {
    /// No referrers at all.
    pub fn none() -> Self {
        ReferrerPolicy {
            enabled: false,
            types: Vec::new(),
        }
    }

    /// Whether a referrer of this descriptor is taken.
    pub fn takes(&self, referrer: &Descriptor) -> bool {
        self.enabled
            && (self.types.is_empty()
                || referrer
                    .artifact_type
                    .as_ref()
                    .is_some_and(|t| self.types.contains(t)))
    }

    /// Whether cosign's tags are taken (they carry no artifact type to filter on, so only
    /// when every type is).
    pub fn takes_cosign_tags(&self) -> bool {
        self.enabled && self.types.is_empty()
    }
}

/// What refers to one manifest at a place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Manifests whose `subject` it is.
    pub referrers: Vec<Descriptor>,
    /// cosign's tags for it that the place has (`sha256-<hex>.sig`…).
    pub cosign_tags: Vec<String>,
}

/// The tag of the referrers tag schema for `digest`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// Whether a tag is one of the referrers tag schema's (`sha256-<hex>`) or cosign's
/// (`sha256-<hex>.sig`…): such tags travel with the manifest they name, not as artifacts of
/// their own.
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = COSIGN_SUFFIXES
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
        .unwrap_or(rest);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// cosign's tags for `digest` among `tags`.
pub fn cosign_tags(tags: &[String], digest: &Digest) -> Vec<String> {
    let base = fallback_tag(digest);
    COSIGN_SUFFIXES
        .iter()
        .map(|suffix| format!("{base}{suffix}"))
        .filter(|tag| tags.contains(tag))
        .collect()
}

fn with_tag(repo: &Reference, tag: &str) -> Result<Reference> {
    repo.with_tag(tag).map_err(|e| EngineError::Unsupported {
        what: repo.to_string(),
        reason: e.to_string(),
    })
}

/// What refers to `digest` at `src`, read from the place's tags (`tags`, the repository's):
/// the referrers tag schema's index and cosign's tags. What every place but a registry with
/// the referrers API does.
pub async fn by_tags<S: Source + ?Sized>(
    src: &S,
    repo: &Reference,
    digest: &Digest,
    tags: &[String],
) -> Result<Found> {
    let fallback = fallback_tag(digest);
    let referrers = if tags.contains(&fallback) {
        let (bytes, _) = src.manifest(&with_tag(repo, &fallback)?).await?;
        let what = format!("{repo}:{fallback}");
        if bytes.len() as u64 > MAX_INDEX_BYTES {
            return Err(EngineError::Unsupported {
                what,
                reason: format!(
                    "a referrers index of {} bytes, over the limit of {} KiB",
                    bytes.len(),
                    MAX_INDEX_BYTES >> 10
                ),
            });
        }
        crate::registry::referrers::parse_index(&bytes)
            .map_err(|reason| EngineError::NotAManifest { what, reason })?
    } else {
        Vec::new()
    };
    Ok(Found {
        referrers,
        cosign_tags: cosign_tags(tags, digest),
    })
}

/// Checks a listing of the referrers of `subject` (in `repo`, at `place`) whole, before
/// anything of it is copied: not more than [`MAX_PER_SUBJECT`] entries, each a manifest or an
/// index (by media type) of a size a manifest can have, none of them `subject` itself.
pub fn check_listing(place: &str, repo: &Reference, subject: &Digest, found: &Found) -> Result<()> {
    let refuse = |reason: String| EngineError::Unsupported {
        what: format!("referrers of {repo}@{subject} at {place}"),
        reason,
    };
    let count = found.referrers.len() + found.cosign_tags.len();
    if count > MAX_PER_SUBJECT {
        return Err(refuse(format!(
            "{count} referrers listed, more than the limit of {MAX_PER_SUBJECT}"
        )));
    }
    for d in &found.referrers {
        if !MANIFEST_TYPES.contains(&d.media_type.as_str()) {
            return Err(refuse(format!(
                "{} is listed as {:?}, not a manifest or an index",
                d.digest, d.media_type
            )));
        }
        if d.size > crate::registry::MAX_MANIFEST_BYTES {
            return Err(refuse(format!(
                "{} is listed as {} bytes, over the manifest limit of {} MiB",
                d.digest,
                d.size,
                crate::registry::MAX_MANIFEST_BYTES >> 20
            )));
        }
        if d.digest == *subject {
            return Err(refuse(format!(
                "{} is listed as a referrer of itself",
                d.digest
            )));
        }
    }
    Ok(())
}

/// The media types a referrer can have: OCI manifests and indexes.
const MANIFEST_TYPES: [&str; 2] = [MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE];

/// Checks a referrer's manifest, fetched by digest, against its listing: its size is the
/// descriptor's, and its `subject` names the manifest it was listed for.
pub fn check_referrer(
    listed: &Descriptor,
    subject: &Digest,
    bytes: &[u8],
    what: &Reference,
) -> Result<()> {
    let refuse = |reason: String| EngineError::Unsupported {
        what: what.to_string(),
        reason,
    };
    if bytes.len() as u64 != listed.size {
        return Err(refuse(format!(
            "listed as a referrer of {subject} with {} bytes, but it has {}",
            listed.size,
            bytes.len()
        )));
    }
    #[derive(serde::Deserialize)]
    struct WithSubject {
        #[serde(default)]
        subject: Option<Descriptor>,
    }
    let named = serde_json::from_slice::<WithSubject>(bytes)
        .map_err(|e| refuse(format!("not a manifest: {e}")))?
        .subject
        .map(|s| s.digest);
    if named.as_ref() != Some(subject) {
        return Err(refuse(format!(
            "listed as a referrer of {subject}, but its subject is {}",
            named.map_or_else(|| "missing".to_string(), |d| d.to_string())
        )));
    }
    Ok(())
}

/// A referrers index listing nothing, as [`merge`] starts one.
pub fn empty_index() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [],
    }))
    .unwrap_or_default()
}

/// Adds `referrer` to the referrers index `current` (or to a new one), keeping every other
/// field and entry as it was; `None` when the index lists it already.
pub fn merge(current: Option<&[u8]>, referrer: &Descriptor) -> Result<Option<Vec<u8>>, String> {
    let empty = empty_index();
    let mut index: Value =
        serde_json::from_slice(current.unwrap_or(&empty)).map_err(|e| e.to_string())?;
    let object = index
        .as_object_mut()
        .ok_or("the referrers index is not a JSON object")?;
    let manifests = object
        .entry("manifests")
        .or_insert_with(|| Value::Array(Vec::new()));
    if manifests.is_null() {
        *manifests = Value::Array(Vec::new());
    }
    let list = manifests
        .as_array_mut()
        .ok_or("the referrers index's `manifests` is not a list")?;
    let digest = referrer.digest.to_string();
    if list.iter().any(|d| d["digest"] == digest.as_str()) {
        return Ok(None);
    }
    list.push(serde_json::to_value(referrer).map_err(|e| e.to_string())?);
    serde_json::to_vec(&index)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Records `referrer` of `subject` in `sink`'s referrers tag schema: the index at
/// `repo:sha256-<hex>`, as `current` (what this job last wrote there) or else the sink holds
/// it, merged. Returns the index now there, when it was written.
pub async fn write_tag_schema<S: Sink + ?Sized>(
    sink: &S,
    repo: &Reference,
    subject: &Digest,
    referrer: &Descriptor,
    current: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>> {
    let name = with_tag(repo, &fallback_tag(subject))?;
    let current = match current {
        Some(c) => Some(c),
        None => sink.current_manifest(&name).await?,
    };
    let merged =
        merge(current.as_deref(), referrer).map_err(|reason| EngineError::NotAManifest {
            what: name.to_string(),
            reason,
        })?;
    match merged {
        Some(bytes) => {
            sink.put_manifest(&name, &bytes, INDEX_MEDIA_TYPE).await?;
            Ok(Some(bytes))
        }
        None => Ok(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(data: &[u8], artifact_type: &str) -> Descriptor {
        let mut d = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            Digest::of(data),
            data.len() as u64,
        );
        d.artifact_type = Some(artifact_type.into());
        d
    }

    #[test]
    fn merging_keeps_what_is_there() {
        let sig = referrer(b"sig", "application/vnd.dev.sigstore.bundle.v0.3+json");
        let sbom = referrer(b"sbom", "application/spdx+json");
        let first = merge(None, &sig).unwrap().unwrap();
        assert!(
            merge(Some(&first), &sig).unwrap().is_none(),
            "listed already"
        );
        // Another tool's index, with fields of its own, keeps them.
        let theirs = format!(
            r#"{{"schemaVersion":2,"mediaType":"{INDEX_MEDIA_TYPE}","annotations":{{"x":"y"}},"manifests":[{}]}}"#,
            serde_json::to_string(&sig).unwrap()
        );
        let both = merge(Some(theirs.as_bytes()), &sbom).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&both).unwrap();
        assert_eq!(v["annotations"]["x"], "y");
        let listed = crate::registry::referrers::parse_index(&both).unwrap();
        assert_eq!(listed, vec![sig, sbom]);
        assert!(merge(Some(b"[]"), &referrer(b"z", "t")).is_err());
        assert!(merge(Some(br#"{"manifests":null}"#), &referrer(b"z", "t")).is_ok());
    }

    #[test]
    fn policies() {
        let sbom = referrer(b"sbom", "application/spdx+json");
        assert!(ReferrerPolicy::default().takes(&sbom));
        assert!(!ReferrerPolicy::none().takes(&sbom));
        let only_sigs = ReferrerPolicy {
            enabled: true,
            types: vec!["application/vnd.dev.sigstore.bundle.v0.3+json".into()],
        };
        assert!(!only_sigs.takes(&sbom) && !only_sigs.takes_cosign_tags());
    }

    #[test]
    fn referrer_tags() {
        let hex = "a".repeat(64);
        for tag in [
            format!("sha256-{hex}"),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.sbom"),
        ] {
            assert!(is_referrer_tag(&tag), "{tag}");
        }
        for tag in [
            "1.0.0".to_string(),
            format!("sha256-{hex}.x"),
            format!("sha256-{}", &hex[1..]),
            "sha256-".into(),
        ] {
            assert!(!is_referrer_tag(&tag), "{tag}");
        }
    }

    #[test]
    fn cosign_tag_names() {
        let d = Digest::of(b"m");
        let tags = vec![format!("sha256-{}.sig", d.hex()), "1.0.0".into()];
        assert_eq!(
            cosign_tags(&tags, &d),
            vec![format!("sha256-{}.sig", d.hex())]
        );
    }
}
