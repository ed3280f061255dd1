//! `serve --upstream REGISTRY --require-signed`: the pull-through serves only charts whose
//! signatures pass the policy (Helm provenance with `--keyring`, cosign with `--cosign-key`),
//! judged by the same checks as `chart pull --verify` and `sync --require-signed`
//! ([`crate::tasks::verify`], [`crate::tasks::sync::policy`]): no second verifier.
//!
//! - A chart not yet cached is pulled into a scratch cache, checked there, and copied into
//!   the cache only when it verifies ([`crate::tasks::verify::pull`]): a refused chart is
//!   never stored, not one blob of it.
//! - A chart already cached (pulled before the policy was on, or saved locally) is checked
//!   from the cache, its provenance layer and its cosign tag, once per manifest digest for
//!   the life of the server.
//! - A refusal is answered as a registry answers a policy: `403 Forbidden` with the OCI error
//!   `DENIED` and a message saying which check failed (`unsigned: …`, `bad signature: …`,
//!   `unknown signer: …`). Not a 404: the chart exists, and a client (or the person reading
//!   Helm's error) should learn that a policy stopped it rather than look elsewhere.

use hyper::StatusCode;

use super::names::ApiError;
use crate::digest::Digest;
use crate::engine::cache::CachePlace;
use crate::engine::places::RegistryPlace;
use crate::reference::Reference;
use crate::store::{RefEntry, Store};
use crate::tasks::transfer;
use crate::tasks::verify::{self, CheckError, Policy};

/// Pulls `reference` from the upstream into the cache, as `chart pull` does; with a policy,
/// only once it verifies. Returns the manifest digest.
pub(super) async fn pull(
    store: &Store,
    registry: &RegistryPlace,
    reference: &Reference,
    policy: &Policy,
) -> Result<Digest, CheckError> {
    if policy.is_empty() {
        return Ok(transfer::pull(store, registry, reference).await?.manifest);
    }
    Ok(verify::pull(store, registry, reference, policy)
        .await?
        .0
        .manifest)
}

/// Checks a cached chart against `policy`, reading its signatures from the cache.
pub(super) async fn check_cached(
    store: &Store,
    entry: &RefEntry,
    policy: &Policy,
) -> Result<(), CheckError> {
    let cache = CachePlace::new(store.clone());
    crate::tasks::sync::policy::check(&cache, &entry.reference, policy).await
}

/// The answer to a chart the policy refuses; `None` when `e` is not a refusal (the check
/// could not be made).
pub(super) fn refusal(reference: &Reference, e: &CheckError) -> Option<ApiError> {
    let kind = e.failure()?;
    Some(ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        format!("{reference}: refused by the signature policy (--require-signed): {kind}: {e}"),
    ))
}
