//! What a stored manifest names, and what it is.
//!
//! An image index (or Docker manifest list) names manifests, stored as blobs under their
//! digests; a manifest names its config and layers. A ref keeps everything reachable that way
//! (index → manifests → config and layers). A `subject` is not followed: a referrer names the
//! artifact it refers to, not the other way round, so a signature never keeps its image alive.

use std::collections::HashSet;
use std::fs;

use super::Store;
use crate::digest::Digest;
pub use crate::manifest::{Kind, Node};

/// How deep indexes may nest below a ref (real ones have one level).
pub const MAX_DEPTH: usize = 8;

/// What a stored manifest is, as `cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub kind: Kind,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// Bytes of the manifest and everything it reaches, each blob counted once.
    pub size: u64,
}

/// Reads `manifest` and follows it: what it is and how much it holds.
pub fn summarize(store: &Store, manifest: &Digest) -> Result<Summary, super::StoreError> {
    let bytes = store.read_blob(manifest)?;
    let node = Node::parse(&bytes).map_err(|reason| super::StoreError::Corrupt {
        path: store.blob_path(manifest),
        reason,
    })?;
    Ok(Summary {
        kind: node.kind,
        media_type: node.media_type,
        artifact_type: node.artifact_type,
        size: reach(store, manifest).size,
    })
}

/// Everything a ref's manifest reaches, and what is wrong on the way.
#[derive(Debug, Default)]
pub struct Reach {
    /// Every digest reached, the manifest's own included.
    pub digests: HashSet<Digest>,
    /// Bytes of every distinct manifest (as stored) and blob (as its descriptor says) reached.
    pub size: u64,
    /// Missing blobs, sizes that differ from their descriptors, manifests that do not parse.
    pub problems: Vec<String>,
}

/// Follows `manifest` through every index and manifest below it.
pub fn reach(store: &Store, manifest: &Digest) -> Reach {
    let mut out = Reach::default();
    visit(store, manifest, None, 0, &mut out);
    out
}

/// Visits one manifest; `size` is what its descriptor says, if something names it.
fn visit(store: &Store, digest: &Digest, size: Option<u64>, depth: usize, out: &mut Reach) {
    if !out.digests.insert(digest.clone()) {
        return;
    }
    let bytes = match store.read_blob(digest) {
        Ok(b) => b,
        Err(e) => return out.problems.push(e.to_string()),
    };
    out.size += bytes.len() as u64;
    if let Some(size) = size
        && bytes.len() as u64 != size
    {
        out.problems.push(format!(
            "manifest {digest} is {} bytes, its descriptor says {size}",
            bytes.len()
        ));
    }
    let node = match Node::parse(&bytes) {
        Ok(n) => n,
        Err(e) => return out.problems.push(format!("manifest {digest}: {e}")),
    };
    if !node.children.is_empty() && depth >= MAX_DEPTH {
        out.problems.push(format!(
            "index {digest}: indexes nested more than {MAX_DEPTH} deep"
        ));
        return;
    }
    for child in &node.children {
        visit(store, &child.digest, Some(child.size), depth + 1, out);
    }
    for blob in &node.blobs {
        if !out.digests.insert(blob.digest.clone()) {
            continue;
        }
        out.size += blob.size;
        match fs::metadata(store.blob_path(&blob.digest)) {
            Ok(m) if m.len() == blob.size => {}
            Ok(m) => out.problems.push(format!(
                "blob {} is {} bytes, its descriptor says {}",
                blob.digest,
                m.len(),
                blob.size
            )),
            Err(_) => out
                .problems
                .push(format!("blob {} is not in the cache", blob.digest)),
        }
    }
}
