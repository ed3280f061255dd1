//! What refers to the served charts: the referrers a pull or sync brought into the cache,
//! served as a registry with the OCI 1.1 referrers API serves them.
//!
//! The cache keeps referrers in the referrers tag schema (`sha256-<hex>` tags holding an image
//! index) and cosign's `sha256-<hex>.sig/.att/.sbom` tags ([`crate::tasks::referrers`]). So
//! that clients of either kind find them:
//!
//! - those tags are listed by `tags/list` and served by `manifests/<tag>`, so a client
//!   without the referrers API (or cosign) reads them as from any registry;
//! - every manifest and blob those tags reach is served by digest (`manifests/<digest>`,
//!   `blobs/<digest>`) from the repository they are in, and nothing else is: a digest of
//!   another repository is unknown here, as in a registry;
//! - `GET /v2/<name>/referrers/<digest>[?artifactType=…]` answers an image index of the
//!   referrers whose `subject` is that manifest (each described from its own manifest, as the
//!   spec says), filtered by artifact type with `OCI-Filters-Applied: artifactType`; a
//!   digest nothing refers to answers the empty index.
//!
//! What a tag reaches is read once per manifest digest (manifests are content-addressed) and
//! kept with the snapshot of the cache it was read for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::library::Library;
use super::names::ApiError;
use crate::digest::Digest;
use crate::engine::referrers::is_referrer_tag;
use crate::oci::INDEX_MEDIA_TYPE;
use crate::store::{ArtifactRef, Store};

/// The referrers of one served repository that the cache holds.
#[derive(Debug, Default)]
pub struct Attached {
    /// Referrer tags (the tag schema's and cosign's) → the manifest each points at.
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest and blob those tags reach.
    pub content: HashSet<Digest>,
}

/// What each manifest digest reaches, read once.
#[derive(Default)]
pub(super) struct Reached(Mutex<HashMap<Digest, Arc<HashSet<Digest>>>>);

impl Reached {
    fn of(&self, store: &Store, manifest: &Digest) -> Arc<HashSet<Digest>> {
        if let Some(known) = self.0.lock().ok().and_then(|m| m.get(manifest).cloned()) {
            return known;
        }
        let reach = crate::store::graph::reach(store, manifest);
        // What cannot be read whole is not served (a later snapshot reads it again).
        let digests = Arc::new(match reach.problems.is_empty() {
            true => reach.digests,
            false => HashSet::new(),
        });
        if let Ok(mut m) = self.0.lock()
            && !digests.is_empty()
        {
            m.insert(manifest.clone(), Arc::clone(&digests));
        }
        digests
    }
}

/// The referrers held for each served repository, from the cache's artifact refs.
pub(super) fn collect(
    store: &Store,
    reached: &Reached,
    refs: impl IntoIterator<Item = (String, ArtifactRef)>,
) -> BTreeMap<String, Attached> {
    let mut out: BTreeMap<String, Attached> = BTreeMap::new();
    for (served, artifact) in refs {
        let Some(tag) = artifact.reference.tag().filter(|t| is_referrer_tag(t)) else {
            continue;
        };
        let content = reached.of(store, &artifact.manifest);
        if content.is_empty() {
            continue;
        }
        let entry = out.entry(served).or_default();
        entry
            .tags
            .insert(tag.to_string(), artifact.manifest.clone());
        entry.content.extend(content.iter().cloned());
    }
    out
}

impl Library {
    /// `GET /v2/<served>/referrers/<digest>`: the image index of what refers to `digest`
    /// (of `artifact_type` only, when given).
    pub async fn referrers(
        self: &Arc<Self>,
        served: &str,
        digest: &Digest,
        artifact_type: Option<String>,
    ) -> Result<Vec<u8>, ApiError> {
        let repo = self
            .namespace
            .repository(served)
            .ok_or_else(|| ApiError::name_unknown(served))?;
        let snap = self.current().await?;
        let known = snap.repos.contains_key(served) || snap.attached.contains_key(served);
        // Over the cache, a repository it does not hold is unknown; a pull-through answers
        // for any repository of its upstream (what has been pulled through so far).
        if !known && self.upstream.is_none() && self.bridge.is_none() {
            return Err(ApiError::name_unknown(served));
        }
        let listed = match snap.attached.get(served) {
            None => Vec::new(),
            Some(_) => {
                let store = self.store.clone();
                let digest = digest.clone();
                tokio::task::spawn_blocking(move || {
                    let guard = store.read()?;
                    crate::tasks::referrers::api_listing(
                        &store,
                        &guard,
                        &repo,
                        &digest,
                        artifact_type.as_deref(),
                    )
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": listed,
        });
        serde_json::to_vec(&index).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// The manifest a referrer tag of `served` points at, if the cache holds one.
    pub(super) async fn attached_tag(
        self: &Arc<Self>,
        served: &str,
        tag: &str,
    ) -> Result<Option<Digest>, ApiError> {
        if !is_referrer_tag(tag) {
            return Ok(None);
        }
        let snap = self.current().await?;
        Ok(snap
            .attached
            .get(served)
            .and_then(|a| a.tags.get(tag))
            .cloned())
    }

    /// Whether `digest` is a manifest or blob a referrer tag of `served` reaches.
    pub(super) async fn attached_holds(
        self: &Arc<Self>,
        served: &str,
        digest: &Digest,
    ) -> Result<bool, ApiError> {
        let snap = self.current().await?;
        Ok(snap
            .attached
            .get(served)
            .is_some_and(|a| a.content.contains(digest)))
    }
}
