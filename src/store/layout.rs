//! `index.json`: the OCI image layout view of the cache, one manifest entry per tag with the
//! full reference as `org.opencontainers.image.ref.name`, so `skopeo copy oci:DIR:REF` works.
//!
//! It is derived from `refs/` and kept current by every ref change, under the write lock.
//! A ref change and the index update cannot be one atomic step, so a marker file
//! ([`DIRTY`]) is created before the ref changes and removed after the index is written; a
//! writer that finds the marker (its predecessor crashed in between) rebuilds the index from
//! `refs/`, as it does when the index is missing or unreadable.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;

use super::{Result, Store, atomic_write, refs};
use crate::digest::Digest;
use crate::oci::{ANNOTATION_REF_NAME, Descriptor, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

/// Present while `refs/` may be ahead of `index.json`.
pub(super) const DIRTY: &str = "index.json.dirty";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl Index {
    pub(super) fn ref_name(d: &Descriptor) -> Option<&str> {
        d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
    }
}

pub(super) fn read(store: &Store) -> Option<Index> {
    let bytes = fs::read(store.root().join("index.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn entry(store: &Store, reference: &Reference, manifest: &Digest) -> Result<Descriptor> {
    let size = fs::metadata(store.blob_path(manifest))
        .map_err(super::io_err(store.blob_path(manifest)))?
        .len();
    let mut d = Descriptor::new(MANIFEST_MEDIA_TYPE, manifest.clone(), size);
    d.annotations
        .insert(ANNOTATION_REF_NAME.to_string(), reference.to_string());
    Ok(d)
}

fn write(store: &Store, mut manifests: Vec<Descriptor>) -> Result<()> {
    manifests.sort_by(|a, b| Index::ref_name(a).cmp(&Index::ref_name(b)));
    let index = Index {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_string()),
        manifests,
    };
    atomic_write(
        &store.tmp_dir(),
        &store.root().join("index.json"),
        &crate::gojson::to_vec(&index),
    )
}

/// Rebuilds the whole index from `refs/`.
pub(super) fn rebuild(store: &Store) -> Result<()> {
    let mut manifests = Vec::new();
    for r in refs::walk(store)?.into_iter().flatten() {
        if let Some(m) = &r.manifest {
            manifests.push(entry(store, &r.reference, m)?);
        }
    }
    write(store, manifests)
}

/// Replaces (or, with `None`, removes) one reference's entry.
pub(super) fn update(
    store: &Store,
    reference: &Reference,
    target: Option<&refs::RefTarget>,
) -> Result<()> {
    let Some(index) = read(store) else {
        return rebuild(store);
    };
    let name = reference.to_string();
    let mut by_name: BTreeMap<String, Descriptor> = index
        .manifests
        .into_iter()
        .filter_map(|d| Index::ref_name(&d).map(|n| (n.to_string(), d.clone())))
        .collect();
    by_name.remove(&name);
    if let Some(t) = target {
        by_name.insert(name, entry(store, reference, &t.manifest)?);
    }
    write(store, by_name.into_values().collect())
}

/// Marks the index as possibly stale, before a ref changes.
pub(super) fn mark_dirty(store: &Store) -> Result<()> {
    atomic_write(&store.tmp_dir(), &store.root().join(DIRTY), b"")
}

/// Removes the marker once the index is current.
pub(super) fn mark_clean(store: &Store) -> Result<()> {
    let path = store.root().join(DIRTY);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(super::io_err(&path)(e)),
        _ => Ok(()),
    }
}

/// Rebuilds the index if a writer crashed between a ref change and its index update.
pub(super) fn repair(store: &Store) -> Result<()> {
    if store.root().join(DIRTY).exists() {
        rebuild(store)?;
        mark_clean(store)?;
    }
    Ok(())
}
