//! Signature checks on charts, as `chart verify REF`, `chart pull --verify / --cosign-key` and
//! `chart export --verify` ask for them: the bytes are fetched here (from the cache, or the
//! cosign signature from the chart's registry) and judged by [`crate::sign`].
//!
//! A pull that must verify downloads into a scratch cache of its own, checks what arrived
//! there, and only then copies the chart into the real cache (the same copy as `sync cache:
//! cache:`), so a chart that does not verify leaves nothing in the cache: no ref, no blob.

use std::io::Read;

use crate::chart::artifact::MAX_PROV;
use crate::digest::Digest;
use crate::engine::cache::CachePlace;
use crate::engine::copy::{Job, copy};
use crate::engine::places::RegistryPlace;
use crate::engine::{EngineError, Source};
use crate::reference::Reference;
use crate::sign::Failure;
use crate::sign::cosign::{self, CosignError, CosignKey, MAX_PAYLOAD, SignatureLayer};
use crate::sign::provenance::{self, Keyring, VerifyError};
use crate::store::{RefEntry, Store, StoreError};
use crate::tasks::transfer::{self, Pulled, TransferError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error("{reference}: {source}")]
    Provenance {
        reference: String,
        source: VerifyError,
    },
    #[error("{reference}: {source}")]
    Cosign {
        reference: String,
        source: CosignError,
    },
    #[error("creating a scratch cache: {0}")]
    Scratch(std::io::Error),
}

impl CheckError {
    /// Why a signature check refused the chart; `None` when the check could not be made
    /// (the cache or the registry failed).
    pub fn failure(&self) -> Option<Failure> {
        match self {
            CheckError::Provenance { source, .. } => Some(source.kind()),
            CheckError::Cosign { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// What must hold for a chart to be accepted: a provenance signed by a key of `keyring`,
/// and/or a cosign signature made with `cosign_key`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub keyring: Option<Keyring>,
    pub cosign_key: Option<CosignKey>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.keyring.is_none() && self.cosign_key.is_none()
    }
}

/// The signatures that checked out.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub provenance: Option<provenance::Verified>,
    pub cosign: Option<cosign::Verified>,
}

/// Checks the provenance of the cached chart `entry` with `keyring`, as `helm verify` checks
/// `NAME-VERSION.tgz` and its `.prov`.
pub fn provenance(
    store: &Store,
    entry: &RefEntry,
    keyring: &Keyring,
) -> Result<provenance::Verified, CheckError> {
    let refuse = |source| CheckError::Provenance {
        reference: entry.reference.to_string(),
        source,
    };
    let Some(prov_digest) = &entry.prov else {
        return Err(refuse(VerifyError::Unsigned));
    };
    let _guard = store.read()?;
    let mut prov = Vec::new();
    // A copied cache is outside input too: read no more than a provenance file can be.
    store
        .open_blob(prov_digest)?
        .take(MAX_PROV + 1)
        .read_to_end(&mut prov)
        .map_err(crate::store::io_err(store.blob_path(prov_digest)))?;
    let archive = std::io::BufReader::with_capacity(256 * 1024, store.open_blob(&entry.content)?);
    let file_name = provenance::archive_file_name(&entry.name, &entry.version);
    provenance::verify_chart(&prov, archive, &file_name, keyring).map_err(refuse)
}

/// Checks the cosign signatures `source` holds for the manifest `manifest` of `repository`
/// (the tag `sha256-<hex>.sig` there) with `key`. `repository` may carry the tag the chart
/// was asked for by, which messages then name.
pub async fn cosign(
    source: &dyn Source,
    repository: &Reference,
    manifest: &Digest,
    key: &CosignKey,
) -> Result<cosign::Verified, CheckError> {
    let tag = cosign::signature_tag(manifest);
    let named = match repository.tag() {
        Some(_) => format!("{repository} ({manifest})"),
        None => format!("{}@{manifest}", repository.without_object()),
    };
    let refuse = |source| CheckError::Cosign {
        reference: named.clone(),
        source,
    };
    let sig_ref = repository
        .without_object()
        .with_tag(&tag)
        .map_err(|e| refuse(CosignError::MalformedManifest(e.to_string())))?;
    // One request: a missing tag is an unsigned chart.
    let bytes = match source.manifest(&sig_ref).await {
        Ok((bytes, _)) => bytes,
        Err(
            EngineError::NotFound { .. }
            | EngineError::Registry(crate::registry::RegistryError::NotFound { .. }),
        ) => return Err(refuse(CosignError::Unsigned { tag })),
        Err(e) => return Err(e.into()),
    };
    let layers = SignatureLayer::parse_manifest(&bytes).map_err(refuse)?;
    let mut signatures = Vec::with_capacity(layers.len());
    for layer in layers {
        if layer.payload.size > MAX_PAYLOAD {
            return Err(refuse(CosignError::MalformedPayload(format!(
                "the payload layer is {} bytes, over the limit of {} KiB",
                layer.payload.size,
                MAX_PAYLOAD >> 10
            ))));
        }
        let blob = source
            .blob(&sig_ref.without_object(), &layer.payload)
            .await?;
        let payload = blob.read()?;
        signatures.push((layer, payload));
    }
    cosign::verify_any(manifest, &signatures, key, &tag).map_err(refuse)
}

/// Checks the cached chart `entry` against `policy`; the cosign signature is read from
/// `registry` (the cache does not keep signature manifests).
pub async fn check(
    store: &Store,
    entry: &RefEntry,
    registry: Option<&dyn Source>,
    policy: &Policy,
) -> Result<Checked, CheckError> {
    let mut checked = Checked::default();
    if let Some(keyring) = &policy.keyring {
        checked.provenance = Some(provenance(store, entry, keyring)?);
    }
    if let (Some(key), Some(registry)) = (&policy.cosign_key, registry) {
        let manifest = entry
            .manifest
            .clone()
            .ok_or_else(|| TransferError::NoManifest(entry.reference.to_string()))?;
        checked.cosign = Some(cosign(registry, &entry.reference, &manifest, key).await?);
    }
    Ok(checked)
}

/// [`transfer::pull`] that keeps the chart only if it passes `policy`: the chart is pulled
/// into a scratch cache, checked there, and copied into `store` only when it verifies.
pub async fn pull(
    store: &Store,
    registry: &RegistryPlace,
    reference: &Reference,
    policy: &Policy,
) -> Result<(Pulled, Checked), CheckError> {
    let scratch_dir = tempfile::Builder::new()
        .prefix("chartcache-verify-")
        .tempdir()
        .map_err(CheckError::Scratch)?;
    let scratch = Store::new(scratch_dir.path().join("registry"));
    let mut pulled = transfer::pull(&scratch, registry, reference).await?;
    let checked = check(
        &scratch,
        &pulled.entry,
        Some(registry as &dyn Source),
        policy,
    )
    .await?;

    let name = pulled.entry.reference.clone();
    let cache = CachePlace::new(store.clone());
    let held = if store.root().exists() {
        crate::engine::Sink::digest_of(&cache, &name).await?
    } else {
        None
    };
    copy(
        &CachePlace::new(scratch),
        &name,
        &cache,
        &name,
        &Job::default(),
    )
    .await?;
    pulled.downloaded = held.as_ref() != Some(&pulled.manifest);
    pulled.entry = {
        let guard = store.read()?;
        store.resolve(&guard, &name)?
    };
    Ok((pulled, checked))
}
