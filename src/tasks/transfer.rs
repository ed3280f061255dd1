//! Moving charts between the cache and a registry: `chart push` and `chart pull`.
//!
//! Both copy a manifest and the blobs it names, and both move exactly the stored bytes: the
//! manifest digest on the registry is the one in the cache. Push skips blobs the registry has,
//! mounts blobs that another repository of the same registry holds, and streams the rest from
//! their files. Pull fetches the manifest, skips blobs the cache has, streams the rest through a
//! hash into staged files, checks each against its digest and size, and only then, under the
//! cache lock, commits the blobs and points the tag at them: a bad byte stores nothing.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use crate::digest::Digest;
use crate::oci::{INDEX_MEDIA_TYPE, LEGACY_CHART_LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Manifest};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};
use crate::store::{RefEntry, RefTarget, StagedBlob, Store, StoreError};
use crate::version::version_to_tag;

pub use crate::chart::artifact::MAX_CONFIG;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{0}: this ref was written by Helm's alpha cache and has no manifest; save the chart again"
    )]
    NoManifest(String),
    #[error("{reference}: not a Helm chart: {reason}")]
    NotAChart { reference: String, reason: String },
}

/// The blobs a job has made present in destination repositories, so that charts sharing a
/// blob (tags of one chart version, a chart saved under several names) send it once: a
/// second copy waits for the first instead of sending it again. Beyond the wasted upload,
/// distribution 2.8 can lose the repository's link to a blob committed twice at the same
/// moment, and then refuses the manifest (`MANIFEST_BLOB_UNKNOWN`).
#[derive(Default)]
pub struct SentBlobs {
    /// (registry host/repository path, digest) → how the blob got there, once it has.
    cells: std::sync::Mutex<HashMap<(String, Digest), SentCell>>,
}

type SentCell = Arc<tokio::sync::OnceCell<Sent>>;

/// How a blob came to be in a destination repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// It was there (or another copy of the job put it there).
    Present,
    Mounted,
    Uploaded,
}

impl SentBlobs {
    /// Runs `send` for `digest` in `registry`'s repository `repo` unless it ran already (or is
    /// running) in this job; a failed run lets the next caller try again. Returns what `send`
    /// did, to its caller only: the others are told the blob was present.
    async fn once<F, Fut>(
        &self,
        registry: &Registry,
        repo: &Reference,
        digest: &Digest,
        send: F,
    ) -> Result<Sent, TransferError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Sent, TransferError>>,
    {
        let key = (
            format!("{}/{}", registry.host(), repo.path()),
            digest.clone(),
        );
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(cells.entry(key).or_default())
        };
        let first = std::sync::atomic::AtomicBool::new(false);
        let sent = *cell
            .get_or_try_init(|| {
                first.store(true, std::sync::atomic::Ordering::Relaxed);
                send()
            })
            .await?;
        match first.load(std::sync::atomic::Ordering::Relaxed) {
            true => Ok(sent),
            false => Ok(Sent::Present),
        }
    }
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub entry: RefEntry,
    pub manifest: Digest,
    /// Blobs in the manifest (config and layers) and their total size.
    pub blobs: usize,
    pub total: u64,
    pub uploaded: usize,
    pub mounted: usize,
}

/// Pushes the cached chart `reference` names to its registry.
pub async fn push(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
) -> Result<Pushed, TransferError> {
    push_as(store, registry, reference, None, &SentBlobs::default()).await
}

/// Pushes the cached chart `reference` names to `target` (same name by default) on `registry`,
/// sending each blob at most once per `sent`.
pub async fn push_as(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    target: Option<&Reference>,
    sent: &SentBlobs,
) -> Result<Pushed, TransferError> {
    let (entry, manifest_bytes, mount_sources) = {
        let guard = store.read()?;
        let entry = store.resolve(&guard, reference)?;
        let digest = entry
            .manifest
            .clone()
            .ok_or_else(|| TransferError::NoManifest(reference.to_string()))?;
        let bytes = store.read_blob(&digest)?;
        // Other repositories of the same registry that hold this chart: mount candidates.
        let sources: Vec<Reference> = store
            .list(&guard)?
            .into_iter()
            .filter(|e| {
                let to = target.unwrap_or(reference);
                e.reference.host() == to.host()
                    && e.reference.path() != to.path()
                    && e.content == entry.content
            })
            .map(|e| e.reference.without_object())
            .take(3)
            .collect();
        (entry, bytes, sources)
    };
    let manifest =
        Manifest::parse_chart(&manifest_bytes).map_err(|e| TransferError::NotAChart {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
    let target = target.cloned().unwrap_or_else(|| entry.reference.clone());
    let repo = &target.without_object();
    let mount_sources = &mount_sources;
    // Every blob at once: asked about, then mounted or uploaded if missing.
    let sends = manifest.blobs().map(|desc| async move {
        sent.once(registry, repo, &desc.digest, || async move {
            if registry.blob_exists(repo, &desc.digest).await? {
                return Ok(Sent::Present);
            }
            for from in mount_sources {
                if registry.mount_blob(repo, from, &desc.digest).await {
                    return Ok(Sent::Mounted);
                }
            }
            registry
                .push_blob_file(
                    repo,
                    &desc.digest,
                    desc.size,
                    &store.blob_path(&desc.digest),
                )
                .await?;
            Ok(Sent::Uploaded)
        })
        .await
    });
    let sends = futures_util::future::try_join_all(sends).await?;
    let count = |what: Sent| sends.iter().filter(|s| **s == what).count();
    let (uploaded, mounted) = (count(Sent::Uploaded), count(Sent::Mounted));
    let (blobs, total) = manifest
        .blobs()
        .fold((0, 0), |(n, size), d| (n + 1, size + d.size));
    // A blob another writer committed at the same moment can be lost by the registry: the
    // manifest upload then names it unknown, and it is sent again.
    let blob_list: Vec<&crate::oci::Descriptor> = manifest.blobs().collect();
    let digest = registry
        .push_manifest_with_blobs(
            &target,
            &manifest_bytes,
            MANIFEST_MEDIA_TYPE,
            &blob_list,
            |desc| async move {
                registry
                    .push_blob_file(
                        repo,
                        &desc.digest,
                        desc.size,
                        &store.blob_path(&desc.digest),
                    )
                    .await
            },
        )
        .await?;
    Ok(Pushed {
        entry,
        manifest: digest,
        blobs,
        total,
        uploaded,
        mounted,
    })
}

/// Downloads one blob into a staged file and checks it. A body cut off or a connection dropped
/// mid-way is fetched again from the start (up to three tries); a complete body with the wrong
/// digest is a digest mismatch, whatever the transport layer called it.
async fn download(
    store: &Store,
    registry: &Registry,
    repo: &Reference,
    desc: &crate::oci::Descriptor,
    reference: &Reference,
) -> Result<(StagedBlob, Digest), TransferError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut writer = store.blob_writer()?;
        let result = registry.pull_blob(repo, desc, &mut writer).await;
        let blob = writer.finish()?;
        if blob.size() == desc.size && *blob.digest() != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {} of {reference}", desc.digest),
                expected: desc.digest.clone(),
                actual: blob.digest().clone(),
            }
            .into());
        }
        match result {
            Ok(_) => return Ok((blob, desc.digest.clone())),
            Err(e) if e.is_transient() && attempt < 3 => {
                drop(blob);
                tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub entry: RefEntry,
    pub manifest: Digest,
    /// False when the cache already held this manifest under this tag.
    pub downloaded: bool,
    pub warnings: Vec<String>,
}

/// Pulls `reference` (by tag or digest) from its registry into the cache.
pub async fn pull(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
) -> Result<Pulled, TransferError> {
    pull_as(store, registry, reference, None).await
}

/// Pulls `reference` into the cache under `local` (by default its own name, with the chart
/// version as tag when pulled by digest).
pub async fn pull_as(
    store: &Store,
    registry: &Registry,
    reference: &Reference,
    local: Option<&Reference>,
) -> Result<Pulled, TransferError> {
    let (manifest_bytes, manifest_digest) = registry.manifest(reference).await?;
    let not_chart = |reason: String| TransferError::NotAChart {
        reference: reference.to_string(),
        reason,
    };
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest_bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    if media_type.as_deref() == Some(INDEX_MEDIA_TYPE) {
        return Err(not_chart(
            "it is an image index, not a chart manifest".into(),
        ));
    }
    let manifest = Manifest::parse_chart(&manifest_bytes).map_err(|e| not_chart(e.to_string()))?;
    let chart_layer = manifest
        .chart_layer()
        .cloned()
        .ok_or_else(|| not_chart("no chart layer".into()))?;
    let mut warnings = Vec::new();
    if chart_layer.media_type == LEGACY_CHART_LAYER_MEDIA_TYPE {
        warnings.push(format!(
            "chart media type {LEGACY_CHART_LAYER_MEDIA_TYPE} is deprecated"
        ));
    }

    // Already cached under this tag? Then nothing to download.
    let cached_name = match (local, reference.tag()) {
        (Some(l), _) => Some(l.clone()),
        (None, Some(tag)) => Some(
            reference
                .without_object()
                .with_tag(tag)
                .map_err(|e| not_chart(e.to_string()))?,
        ),
        (None, None) => None,
    };
    // By digest without a local name: any tag of the repository holding that manifest will do.
    let lookup = cached_name.clone().unwrap_or_else(|| reference.clone());
    {
        let guard = store.read()?;
        if let Ok(entry) = store.resolve(&guard, &lookup)
            && entry.manifest.as_ref() == Some(&manifest_digest)
            && [&entry.config, &entry.content]
                .iter()
                .all(|d| store.has_blob(d))
        {
            return Ok(Pulled {
                entry,
                manifest: manifest_digest,
                downloaded: false,
                warnings,
            });
        }
    }

    // Download what is missing into staged files, verified before anything is committed.
    let repo = &reference.without_object();
    let wanted: Vec<_> = std::iter::once(manifest.config.clone())
        .chain(std::iter::once(chart_layer.clone()))
        .chain(manifest.prov_layer().cloned())
        .collect();
    // Sizes come from the manifest, which is outside input too: refuse before downloading.
    crate::chart::artifact::check_sizes(&manifest).map_err(not_chart)?;
    let downloads = wanted
        .iter()
        .filter(|d| !store.has_blob(&d.digest))
        .map(|desc| download(store, registry, repo, desc, reference));
    // Config, chart and provenance come in at once; any failure drops every staged file.
    let staged: Vec<(StagedBlob, Digest)> = futures_util::future::try_join_all(downloads).await?;

    let config_bytes = match staged.iter().find(|(_, d)| *d == manifest.config.digest) {
        Some((blob, _)) => std::fs::read(blob.path()).map_err(|e| not_chart(e.to_string()))?,
        None => store.read_blob(&manifest.config.digest)?,
    };
    // The content must be a chart archive we can read safely, naming the chart the config
    // names.
    let content_file = match staged.iter().find(|(_, d)| *d == chart_layer.digest) {
        Some((blob, _)) => blob.reopen()?,
        None => store.open_blob(&chart_layer.digest)?,
    };
    let metadata = crate::chart::artifact::check(&config_bytes, BufReader::new(content_file))
        .map_err(not_chart)?;

    let local = match cached_name {
        Some(name) => name,
        None => repo
            .with_tag(&version_to_tag(&metadata.version))
            .map_err(|e| not_chart(e.to_string()))?,
    };
    let writer = store.write()?;
    for (blob, digest) in staged {
        writer.commit_blob(blob, Some(&digest))?;
    }
    let stored_manifest = writer.put_blob(&manifest_bytes)?;
    debug_assert_eq!(stored_manifest, manifest_digest);
    let target = RefTarget {
        name: metadata.name.clone(),
        version: metadata.version.clone(),
        manifest: manifest_digest.clone(),
        config: manifest.config.digest.clone(),
        content: chart_layer.digest.clone(),
        prov: manifest.prov_layer().map(|d| d.digest.clone()),
    };
    writer.set_ref(&local, &target)?;
    Ok(Pulled {
        entry: RefEntry {
            reference: local,
            name: target.name,
            version: target.version,
            config: target.config,
            content: target.content,
            manifest: Some(target.manifest),
            prov: target.prov,
        },
        manifest: manifest_digest,
        downloaded: true,
        warnings,
    })
}
