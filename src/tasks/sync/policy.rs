//! `sync --require-signed`: a reference is copied only when its signatures verify, checked at
//! the source before anything is copied: its Helm provenance (the provenance layer, signed by
//! a key of the keyring, vouching for the chart layer's digest) and/or its cosign signature
//! (the `sha256-<hex>.sig` tag, made with the given key), as `chart verify` checks a cached
//! chart ([`crate::tasks::verify`]).

use std::io::{BufReader, Read};

use crate::chart::metadata::Metadata;
use crate::engine::{EngineError, Source};
use crate::oci::Manifest;
use crate::reference::Reference;
use crate::sign::provenance::{self, Keyring, VerifyError};
use crate::tasks::verify::{self, CheckError, Policy};

/// Checks what `name` names at `source` against `policy` (which is not empty).
pub async fn check(
    source: &dyn Source,
    name: &Reference,
    policy: &Policy,
) -> Result<(), CheckError> {
    let (bytes, digest) = source.manifest(name).await?;
    if let Some(keyring) = &policy.keyring {
        provenance_at(source, name, &bytes, keyring).await?;
    }
    if let Some(key) = &policy.cosign_key {
        verify::cosign(source, name, &digest, key).await?;
    }
    Ok(())
}

/// Reads a blob of at most `limit` bytes (the manifest's sizes were checked already).
async fn read_blob(
    source: &dyn Source,
    repo: &Reference,
    desc: &crate::oci::Descriptor,
    limit: u64,
) -> Result<Vec<u8>, CheckError> {
    let blob = source.blob(repo, desc).await?;
    let mut bytes = Vec::new();
    blob.open()?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(crate::engine::io_err(blob.path()))?;
    Ok(bytes)
}

/// The provenance of the chart manifest `manifest` (read from `name` at `source`), checked
/// with `keyring` as `helm verify` checks `NAME-VERSION.tgz` and its `.prov`.
async fn provenance_at(
    source: &dyn Source,
    name: &Reference,
    manifest: &[u8],
    keyring: &Keyring,
) -> Result<provenance::Verified, CheckError> {
    let refuse = |source| CheckError::Provenance {
        reference: name.to_string(),
        source,
    };
    // What is not a chart has no provenance layer.
    let Ok(chart) = Manifest::parse_chart(manifest) else {
        return Err(refuse(VerifyError::Unsigned));
    };
    let (Some(prov), Some(layer)) = (chart.prov_layer(), chart.chart_layer()) else {
        return Err(refuse(VerifyError::Unsigned));
    };
    let unsupported = |reason: String| EngineError::Unsupported {
        what: name.to_string(),
        reason,
    };
    crate::chart::artifact::check_sizes(&chart).map_err(unsupported)?;
    let repo = name.without_object();
    let config = read_blob(
        source,
        &repo,
        &chart.config,
        crate::chart::artifact::MAX_CONFIG,
    )
    .await?;
    let metadata = Metadata::from_registry_config(&config)
        .map_err(|e| unsupported(format!("its config: {e}")))?;
    let prov = read_blob(source, &repo, prov, crate::chart::artifact::MAX_PROV).await?;
    let archive = source.blob(&repo, layer).await?;
    let file_name = provenance::archive_file_name(&metadata.name, &metadata.version);
    provenance::verify_chart(
        &prov,
        BufReader::with_capacity(256 * 1024, archive.open()?),
        &file_name,
        keyring,
    )
    .map_err(refuse)
}
