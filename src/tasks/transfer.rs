//! `chart push` and `chart pull`: each is one copy of the copy engine between the cache and a
//! registry ([`crate::engine::copy`]), with what the commands add around it.
//!
//! - Push names the cached chart it sends (a reference by digest finds its tag) and copies it
//!   under its own name: the manifest digest on the registry is the one in the cache.
//! - Pull reads the manifest once, refuses anything that is not a chart of acceptable size
//!   before a blob is downloaded, warns about Helm 3.0–3.6's legacy layer type, decides the
//!   local name (a pull by digest is tagged with the chart's version, as Helm does), and skips
//!   a chart the cache already holds under that name. The cache, as a sink, stages every blob
//!   verified and commits them with the manifest only once config and archive make an
//!   acceptable chart: a bad byte or a hostile chart stores nothing.

use crate::chart::metadata::Metadata;
use crate::digest::Digest;
use crate::engine::cache::CachePlace;
use crate::engine::copy::{Copied, Job, copy, copy_fetched};
use crate::engine::places::RegistryPlace;
use crate::engine::{EngineError, Sink, Source};
use crate::oci::{INDEX_MEDIA_TYPE, LEGACY_CHART_LAYER_MEDIA_TYPE, Manifest};
use crate::reference::Reference;
use crate::store::{RefEntry, Store, StoreError};
use crate::version::version_to_tag;

pub use crate::chart::artifact::MAX_CONFIG;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{0}: this ref was written by Helm's alpha cache and has no manifest; save the chart again"
    )]
    NoManifest(String),
    #[error("{reference}: not a Helm chart: {reason}")]
    NotAChart { reference: String, reason: String },
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub entry: RefEntry,
    pub copied: Copied,
    /// The manifest's blobs (config and layers) and their total size.
    pub total: u64,
}

/// Pushes the cached chart `reference` names to its registry, under its own name.
pub async fn push(
    store: &Store,
    registry: &RegistryPlace,
    reference: &Reference,
) -> Result<Pushed, TransferError> {
    let (entry, total) = {
        let guard = store.read()?;
        let entry = store.resolve(&guard, reference)?;
        let digest = entry
            .manifest
            .clone()
            .ok_or_else(|| TransferError::NoManifest(reference.to_string()))?;
        let manifest = Manifest::parse_chart(&store.read_blob(&digest)?).map_err(|e| {
            TransferError::NotAChart {
                reference: reference.to_string(),
                reason: e.to_string(),
            }
        })?;
        (entry, manifest.blobs().map(|d| d.size).sum())
    };
    let cache = CachePlace::new(store.clone());
    let name = &entry.reference;
    let copied = copy(&cache, name, registry, name, &Job::default()).await?;
    Ok(Pushed {
        entry,
        copied,
        total,
    })
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub entry: RefEntry,
    pub manifest: Digest,
    /// False when the cache already held this manifest under this name.
    pub downloaded: bool,
    pub warnings: Vec<String>,
}

/// Pulls `reference` (by tag or digest) from `registry` into the cache, under its own name
/// (with the chart version as the tag when pulled by digest).
pub async fn pull(
    store: &Store,
    registry: &RegistryPlace,
    reference: &Reference,
) -> Result<Pulled, TransferError> {
    let not_chart = |reason: String| TransferError::NotAChart {
        reference: reference.to_string(),
        reason,
    };
    let (bytes, digest) = registry.manifest(reference).await?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    if media_type.as_deref() == Some(INDEX_MEDIA_TYPE) {
        return Err(not_chart(
            "it is an image index, not a chart manifest (`sync` copies any artifact)".into(),
        ));
    }
    let manifest = Manifest::parse_chart(&bytes).map_err(|e| not_chart(e.to_string()))?;
    let layer = manifest
        .chart_layer()
        .ok_or_else(|| not_chart("no chart layer".into()))?;
    let mut warnings = Vec::new();
    if layer.media_type == LEGACY_CHART_LAYER_MEDIA_TYPE {
        warnings.push(format!(
            "chart media type {LEGACY_CHART_LAYER_MEDIA_TYPE} is deprecated"
        ));
    }
    // Sizes come from the manifest, which is outside input too: refused before downloading.
    crate::chart::artifact::check_sizes(&manifest).map_err(not_chart)?;

    let cache = CachePlace::new(store.clone());
    let up_to_date = |entry: RefEntry| Pulled {
        entry,
        manifest: digest.clone(),
        downloaded: false,
        warnings: warnings.clone(),
    };
    let local = match reference.tag() {
        Some(tag) => reference
            .without_object()
            .with_tag(tag)
            .map_err(|e| not_chart(e.to_string()))?,
        None => {
            // By digest: any tag of the repository holding that manifest will do; else the
            // chart's version, read from its config.
            if let Some(entry) = cached(store, &cache, reference, &digest).await? {
                return Ok(up_to_date(entry));
            }
            let config = registry
                .blob(&reference.without_object(), &manifest.config)
                .await?;
            let config = std::fs::read(config.path()).map_err(|e| not_chart(e.to_string()))?;
            let metadata = Metadata::from_registry_config(&config)
                .map_err(|e| not_chart(format!("its config: {e}")))?;
            reference
                .without_object()
                .with_tag(&version_to_tag(&metadata.version))
                .map_err(|e| not_chart(e.to_string()))?
        }
    };
    if let Some(entry) = cached(store, &cache, &local, &digest).await? {
        return Ok(up_to_date(entry));
    }
    // The chart's referrers (signatures, SBOMs) come along, kept in the cache's referrers
    // tag schema.
    let job = Job::default();
    match copy_fetched(registry, reference, Some(bytes), &cache, &local, &job).await {
        Ok(_) => {}
        // What the cache refuses (its config and archive disagree, a hostile archive) is not
        // an acceptable chart.
        Err(EngineError::Unsupported { reason, .. }) => return Err(not_chart(reason)),
        Err(e) => return Err(e.into()),
    }
    let entry = {
        let guard = store.read()?;
        store.resolve(&guard, &local)?
    };
    Ok(Pulled {
        entry,
        manifest: digest,
        downloaded: true,
        warnings,
    })
}

/// The cached ref `name` names, when it holds `digest` with all its blobs.
async fn cached(
    store: &Store,
    cache: &CachePlace,
    name: &Reference,
    digest: &Digest,
) -> Result<Option<RefEntry>, TransferError> {
    if name.tag().is_some() && cache.digest_of(name).await?.as_ref() != Some(digest) {
        return Ok(None);
    }
    if !store.root().exists() {
        return Ok(None);
    }
    let guard = store.read()?;
    Ok(store
        .resolve(&guard, name)
        .ok()
        .filter(|e| e.manifest.as_ref() == Some(digest))
        .filter(|e| [&e.config, &e.content].iter().all(|d| store.has_blob(d))))
}
