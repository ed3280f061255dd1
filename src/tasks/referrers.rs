//! What the cache holds that refers to a manifest: the referrers a copy brought along
//! ([`crate::engine::referrers`]), as `chart show --referrers` lists them and as `serve`
//! answers the OCI 1.1 referrers API.
//!
//! The cache keeps referrers the way every place without the referrers API does: an image
//! index tagged `sha256-<hex>` in the repository of the manifest `sha256:<hex>`, listing them
//! (the referrers tag schema), and cosign's `sha256-<hex>.sig`, `.att` and `.sbom` tags. A
//! referrer is described as the referrers API describes it (distribution-spec 1.1, "Listing
//! Referrers"): from its own manifest, not from what the index says of it: its media type,
//! digest and size, its `artifactType` (else its config's media type; an index without one
//! has none) and its annotations.
//!
//! The cache is read as outside input too (it may have been copied from elsewhere): manifests
//! are read within the manifest limit, an entry whose manifest the cache lacks is left out,
//! and the walk is bounded as the copy engine bounds it (depth, count, each digest once).

use std::collections::HashSet;
use std::io::Read;

use crate::digest::Digest;
use crate::engine::referrers::{COSIGN_SUFFIXES, MAX_DEPTH, MAX_PER_ARTIFACT, fallback_tag};
use crate::manifest::Node;
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::MAX_MANIFEST_BYTES;
use crate::store::{ReadGuard, Store, StoreError, StoredRef};

#[derive(Debug, thiserror::Error)]
pub enum ReferrersError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{repo}: {reason}")]
    Name { repo: String, reason: String },
    #[error("referrers of {subject}: more than {MAX_PER_ARTIFACT} in the cache")]
    TooMany { subject: Digest },
}

/// How a referrer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Listed in the referrers tag schema index, and its `subject` names the manifest.
    Subject,
    /// Listed in the referrers tag schema index, but its `subject` does not name the manifest
    /// (another tool's index): shown, never answered by the referrers API.
    TagSchema,
    /// One of cosign's tags (`sha256-<hex>.sig`, `.att`, `.sbom`).
    CosignTag,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Subject => "subject",
            Via::TagSchema => "tag-schema",
            Via::CosignTag => "cosign-tag",
        }
    }
}

/// One referrer the cache holds, and what refers to it in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// As the referrers API describes it.
    pub descriptor: Descriptor,
    pub via: Via,
    /// The cosign tag it is under (with [`Via::CosignTag`]).
    pub tag: Option<String>,
    pub referrers: Vec<Referrer>,
}

/// A stored manifest read whole, within the manifest limit; `None` when the cache does not
/// hold it (or holds something too large to be one).
fn read_manifest(store: &Store, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match store.open_blob(digest) {
        Ok(f) => f,
        Err(StoreError::BlobMissing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(crate::store::io_err(store.blob_path(digest)))?;
    Ok((bytes.len() as u64 <= MAX_MANIFEST_BYTES).then_some(bytes))
}

/// The descriptor the referrers API gives for the manifest `bytes` (`digest`), and the
/// digest its `subject` names; `None` when it is not a manifest or an index.
fn describe(bytes: &[u8], digest: &Digest) -> Option<(Descriptor, Option<Digest>)> {
    let node = Node::parse(bytes).ok()?;
    let mut descriptor = Descriptor::new(&node.media_type, digest.clone(), bytes.len() as u64);
    descriptor.artifact_type = node.listed_artifact_type();
    descriptor.annotations = node.annotations;
    Some((descriptor, node.subject.map(|s| s.digest)))
}

/// The manifest digest the tag `tag` of `repo` points at in the cache, if any.
fn tagged(
    store: &Store,
    guard: &ReadGuard,
    repo: &Reference,
    tag: &str,
) -> Result<Option<Digest>, ReferrersError> {
    let name = repo.with_tag(tag).map_err(|e| ReferrersError::Name {
        repo: repo.to_string(),
        reason: e.to_string(),
    })?;
    Ok(match store.resolve_any(guard, &name) {
        Ok(StoredRef::Artifact(a)) => Some(a.manifest),
        Ok(StoredRef::Chart(_)) | Err(StoreError::RefNotFound(_)) => None,
        Err(e) => return Err(e.into()),
    })
}

/// The referrers of `subject` in `repo` that the cache holds, one level: those its referrers
/// tag schema index lists (with [`Via::Subject`] or [`Via::TagSchema`]), then its cosign tags.
/// Each is described from its own manifest; entries the cache lacks are left out.
pub fn direct(
    store: &Store,
    guard: &ReadGuard,
    repo: &Reference,
    subject: &Digest,
) -> Result<Vec<Referrer>, ReferrersError> {
    let repo = repo.without_object();
    let mut out = Vec::new();
    if let Some(index) = tagged(store, guard, &repo, &fallback_tag(subject))?
        && let Some(bytes) = read_manifest(store, &index)?
    {
        let listed = crate::registry::referrers::parse_index(&bytes).unwrap_or_default();
        let mut seen = HashSet::new();
        for entry in listed {
            if !seen.insert(entry.digest.clone()) {
                continue;
            }
            let Some(bytes) = read_manifest(store, &entry.digest)? else {
                continue;
            };
            if Digest::of(&bytes) != entry.digest {
                continue;
            }
            let Some((descriptor, named)) = describe(&bytes, &entry.digest) else {
                continue;
            };
            let via = match named {
                Some(d) if d == *subject => Via::Subject,
                _ => Via::TagSchema,
            };
            out.push(Referrer {
                descriptor,
                via,
                tag: None,
                referrers: Vec::new(),
            });
        }
    }
    for suffix in COSIGN_SUFFIXES {
        let tag = format!("{}{suffix}", fallback_tag(subject));
        let Some(digest) = tagged(store, guard, &repo, &tag)? else {
            continue;
        };
        let Some(bytes) = read_manifest(store, &digest)? else {
            continue;
        };
        if let Some((descriptor, _)) = describe(&bytes, &digest) {
            out.push(Referrer {
                descriptor,
                via: Via::CosignTag,
                tag: Some(tag),
                referrers: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// What the referrers API answers for `subject` in `repo`: the descriptors of the referrers
/// whose `subject` names it, of `artifact_type` when one is given.
pub fn api_listing(
    store: &Store,
    guard: &ReadGuard,
    repo: &Reference,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>, ReferrersError> {
    Ok(direct(store, guard, repo, subject)?
        .into_iter()
        .filter(|r| r.via == Via::Subject)
        .map(|r| r.descriptor)
        .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
        .collect())
}

/// Everything the cache holds that refers to `subject` in `repo`, recursively (a signature
/// of an SBOM under the SBOM): at most [`MAX_DEPTH`] deep, each digest expanded once.
pub fn tree(
    store: &Store,
    repo: &Reference,
    subject: &Digest,
) -> Result<Vec<Referrer>, ReferrersError> {
    let guard = store.read()?;
    let mut seen = HashSet::from([subject.clone()]);
    let mut count = 0;
    expand(store, &guard, repo, subject, 0, &mut seen, &mut count)
}

fn expand(
    store: &Store,
    guard: &ReadGuard,
    repo: &Reference,
    subject: &Digest,
    depth: usize,
    seen: &mut HashSet<Digest>,
    count: &mut usize,
) -> Result<Vec<Referrer>, ReferrersError> {
    let mut found = direct(store, guard, repo, subject)?;
    *count += found.len();
    if *count > MAX_PER_ARTIFACT {
        return Err(ReferrersError::TooMany {
            subject: subject.clone(),
        });
    }
    if depth + 1 < MAX_DEPTH {
        for r in &mut found {
            if seen.insert(r.descriptor.digest.clone()) {
                r.referrers = expand(
                    store,
                    guard,
                    repo,
                    &r.descriptor.digest,
                    depth + 1,
                    seen,
                    count,
                )?;
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

    /// A cache holding, for the subject `s`: `r1` (whose subject is `s`), `r2` (no subject)
    /// both listed in the tag schema index of `s`, and `r1` listed again.
    #[test]
    fn the_tag_schema_index_is_read_and_each_entry_judged_by_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("registry"));
        let repo = Reference::parse("localhost:5000/charts/app").unwrap();
        let s = Digest::of(b"subject");
        let writer = store.write().unwrap();
        let empty = writer.put_blob(b"{}").unwrap();
        let manifest = |extra: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","artifactType":"a/sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[]{extra}}}"#
            )
        };
        let r1 = manifest(&format!(
            r#","subject":{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{s}","size":1}}"#
        ));
        let r2 = manifest("");
        let (d1, d2) = (
            writer.put_blob(r1.as_bytes()).unwrap(),
            writer.put_blob(r2.as_bytes()).unwrap(),
        );
        let entry = |d: &Digest, len: usize| {
            format!(r#"{{"mediaType":"{MANIFEST_MEDIA_TYPE}","digest":"{d}","size":{len}}}"#)
        };
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{INDEX_MEDIA_TYPE}","manifests":[{},{},{}]}}"#,
            entry(&d1, r1.len()),
            entry(&d2, r2.len()),
            entry(&d1, r1.len())
        );
        let index = writer.put_blob(index.as_bytes()).unwrap();
        writer
            .set_artifact_ref(&repo.with_tag(&fallback_tag(&s)).unwrap(), &index)
            .unwrap();
        drop(writer);

        let guard = store.read().unwrap();
        let found = direct(&store, &guard, &repo, &s).unwrap();
        let seen: Vec<(&Digest, Via)> = found
            .iter()
            .map(|r| (&r.descriptor.digest, r.via))
            .collect();
        assert_eq!(seen, [(&d1, Via::Subject), (&d2, Via::TagSchema)]);
        // The API answers those whose subject names it, filtered by type.
        let listed = |t: Option<&str>| {
            api_listing(&store, &guard, &repo, &s, t)
                .unwrap()
                .into_iter()
                .map(|d| d.digest)
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(None), vec![d1.clone()]);
        assert_eq!(listed(Some("a/sbom")), vec![d1.clone()]);
        assert!(listed(Some("other/type")).is_empty());
        // Nothing refers to anything else; the tree of `s` is one level deep.
        assert!(direct(&store, &guard, &repo, &d1).unwrap().is_empty());
        drop(guard);
        assert_eq!(tree(&store, &repo, &s).unwrap().len(), 2);
    }

    #[test]
    fn descriptors_are_made_as_the_referrers_api_makes_them() {
        let d = Digest::of(b"x");
        let subject = Digest::of(b"s");
        let artifact = format!(
            r#"{{"schemaVersion":2,"artifactType":"a/b","config":{{"mediaType":"c/d","digest":"{d}","size":1}},"subject":{{"mediaType":"m","digest":"{subject}","size":1}},"annotations":{{"k":"v"}}}}"#
        );
        let (desc, named) = describe(artifact.as_bytes(), &d).unwrap();
        assert_eq!(desc.media_type, MANIFEST_MEDIA_TYPE);
        assert_eq!(desc.artifact_type.as_deref(), Some("a/b"));
        assert_eq!(desc.size, artifact.len() as u64);
        assert_eq!(desc.annotations.get("k").map(String::as_str), Some("v"));
        assert_eq!(named, Some(subject));
        // Without an artifact type: the config's media type; an index has none.
        let plain = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c/d","digest":"{d}","size":1}}}}"#
        );
        let (desc, named) = describe(plain.as_bytes(), &d).unwrap();
        assert_eq!((desc.artifact_type.as_deref(), named), (Some("c/d"), None));
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let (desc, _) = describe(index, &d).unwrap();
        assert_eq!(desc.media_type, INDEX_MEDIA_TYPE);
        assert_eq!(desc.artifact_type, None);
        assert!(describe(b"{}", &d).is_none());
        assert!(describe(br#"{"config":1}"#, &d).is_none());
        assert!(describe(br#"{"annotations":{"k":1},"manifests":[]}"#, &d).is_none());
    }
}
