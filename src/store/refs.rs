//! Tag references: `refs/<host_port>/<repo…>/tags/<tag>/` directories of relative symlinks.
//!
//! A chart's ref links its chart version marker, config (`meta`), archive (`content`),
//! manifest and provenance. A ref to any other manifest (an image, an image index, a Docker
//! manifest list, an OCI artifact) has the `manifest` link only: what the manifest names is
//! found by reading it ([`super::graph`]).
//!
//! A ref is written as a hidden sibling (`tags/.new-<tag>-…`) and swapped into place with one
//! rename ([`super::swap`]), so readers and crashes see the old ref or the new one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use super::swap::swap_into_place;
use super::{Result, Store, StoreError, atomic_write, io_err, walk};
use crate::digest::Digest;
use crate::reference::Reference;

/// The link names of a ref directory.
const CHART: &str = "chart";
const CONTENT: &str = "content";
const META: &str = "meta";
const MANIFEST: &str = "manifest";
const PROV: &str = "prov";

/// What a chart's tag points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTarget {
    pub name: String,
    pub version: String,
    pub manifest: Digest,
    pub config: Digest,
    pub content: Digest,
    pub prov: Option<Digest>,
}

/// A complete chart ref read from disk. `manifest` is absent only in caches written by Helm's
/// alpha, which had no manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    pub reference: Reference,
    pub name: String,
    pub version: String,
    pub config: Digest,
    pub content: Digest,
    pub manifest: Option<Digest>,
    pub prov: Option<Digest>,
}

/// A ref to a manifest that is not a Helm chart: an image, an image index, a Docker manifest
/// or list, an OCI artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRef {
    pub reference: Reference,
    pub manifest: Digest,
}

/// Any ref the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRef {
    Chart(RefEntry),
    Artifact(ArtifactRef),
}

impl StoredRef {
    pub fn reference(&self) -> &Reference {
        match self {
            StoredRef::Chart(e) => &e.reference,
            StoredRef::Artifact(a) => &a.reference,
        }
    }

    /// The manifest digest (absent only for charts of Helm's alpha cache).
    pub fn manifest(&self) -> Option<&Digest> {
        match self {
            StoredRef::Chart(e) => e.manifest.as_ref(),
            StoredRef::Artifact(a) => Some(&a.manifest),
        }
    }

    pub fn into_chart(self) -> Option<RefEntry> {
        match self {
            StoredRef::Chart(e) => Some(e),
            StoredRef::Artifact(_) => None,
        }
    }
}

/// What a ref is to point at.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    Chart(&'a RefTarget),
    Artifact(&'a Digest),
}

/// A ref directory found on disk, before its links are interpreted.
#[derive(Debug)]
pub(super) struct RawRef {
    pub dir: PathBuf,
    pub repo_rel: String,
    pub tag: String,
    pub links: BTreeMap<String, PathBuf>,
}

/// Why a ref directory is not a usable ref (reported by `verify`).
#[derive(Debug)]
pub(super) struct BrokenRef {
    pub dir: PathBuf,
    pub reason: String,
}

impl RawRef {
    pub(super) fn interpret(self) -> std::result::Result<StoredRef, BrokenRef> {
        let broken = |reason: String| BrokenRef {
            dir: self.dir.clone(),
            reason,
        };
        let reference = Reference::from_cache_dir(&self.repo_rel, &self.tag)
            .map_err(|e| broken(e.to_string()))?;
        let blob = |name: &str| -> std::result::Result<Option<Digest>, BrokenRef> {
            match self.links.get(name) {
                None => Ok(None),
                Some(target) => target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| Digest::from_hex(n).ok())
                    .map(Some)
                    .ok_or_else(|| broken(format!("link {name:?} does not point at a blob"))),
            }
        };
        let Some(chart) = self.links.get(CHART) else {
            // Not a chart: a manifest link and nothing else.
            return match (blob(MANIFEST)?, self.links.len()) {
                (Some(manifest), 1) => Ok(StoredRef::Artifact(ArtifactRef {
                    reference,
                    manifest,
                })),
                _ => Err(broken("no chart link".into())),
            };
        };
        // …/charts/<name>/versions/<version>
        let parts: Vec<&str> = chart.iter().filter_map(|c| c.to_str()).collect();
        let (name, version) = match parts.as_slice() {
            [.., name, "versions", version] => (name.to_string(), version.to_string()),
            _ => return Err(broken(format!("chart link {chart:?} is malformed"))),
        };
        // A cache copied from elsewhere is outside input too: the name names export
        // directories, so it must be a chart name, not `..`.
        crate::chart::metadata::check_name(&name)
            .and_then(|()| crate::chart::metadata::check_version(&version))
            .map_err(|e| broken(format!("chart link {chart:?}: {e}")))?;
        Ok(StoredRef::Chart(RefEntry {
            reference,
            name,
            version,
            config: blob(META)?.ok_or_else(|| broken("no meta link".into()))?,
            content: blob(CONTENT)?.ok_or_else(|| broken("no content link".into()))?,
            manifest: blob(MANIFEST)?,
            prov: blob(PROV)?,
        }))
    }
}

fn tag_of(reference: &Reference) -> Result<&str> {
    reference
        .tag()
        .ok_or_else(|| StoreError::NoTagOrDigest(reference.repository()))
}

fn tag_dir(store: &Store, reference: &Reference, tag: &str) -> PathBuf {
    store
        .refs_dir()
        .join(reference.cache_dir())
        .join("tags")
        .join(tag)
}

/// The links of one tag's directory (empty when there is no such tag).
fn read_links(store: &Store, reference: &Reference) -> Result<RawRef> {
    let tag = tag_of(reference)?;
    let dir = tag_dir(store, reference, tag);
    let mut links = BTreeMap::new();
    for name in [CHART, CONTENT, META, MANIFEST, PROV] {
        match fs::read_link(dir.join(name)) {
            Ok(target) => {
                links.insert(name.to_string(), target);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dir.join(name))(e)),
        }
    }
    Ok(RawRef {
        dir,
        repo_rel: reference.cache_dir(),
        tag: tag.to_string(),
        links,
    })
}

/// Reads one tag's ref.
pub(super) fn read_tag(store: &Store, reference: &Reference) -> Result<Option<StoredRef>> {
    let raw = read_links(store, reference)?;
    if raw.links.is_empty() {
        return Ok(None);
    }
    raw.interpret().map(Some).map_err(|b| StoreError::Corrupt {
        path: b.dir,
        reason: b.reason,
    })
}

/// By tag; by digest, the refs of the same repository whose manifest has that digest (a tag
/// given too must match). Only that repository's directory is read.
pub(super) fn resolve(store: &Store, reference: &Reference) -> Result<StoredRef> {
    let not_found = || StoreError::RefNotFound(reference.to_string());
    match (reference.tag(), reference.digest()) {
        (_, Some(digest)) => walk::repository(store, &reference.without_object())?
            .into_iter()
            .filter_map(|r| r.ok())
            .find(|r| {
                r.manifest() == Some(digest)
                    && reference
                        .tag()
                        .is_none_or(|t| r.reference().tag() == Some(t))
            })
            .ok_or_else(not_found),
        (Some(_), None) => read_tag(store, reference)?.ok_or_else(not_found),
        (None, None) => Err(StoreError::NoTagOrDigest(reference.repository())),
    }
}

/// `../` from a tag directory up to the cache root: refs, host, each repo component, tags, tag.
fn up_to_root(reference: &Reference) -> String {
    "../".repeat(reference.path().split('/').count() + 4)
}

/// Points `reference` at `target`. Every blob the ref links must be stored already.
pub(super) fn set(store: &Store, reference: &Reference, target: Target<'_>) -> Result<()> {
    let tag = tag_of(reference)?;
    let up = up_to_root(reference);
    let blob = |d: &Digest| format!("{up}blobs/sha256/{}", d.hex());
    let links = match target {
        Target::Chart(chart) => {
            chart_marker(store, reference, chart)?;
            let mut links = vec![
                (
                    CHART,
                    format!("{up}charts/{}/versions/{}", chart.name, chart.version),
                ),
                (CONTENT, blob(&chart.content)),
                (META, blob(&chart.config)),
                (MANIFEST, blob(&chart.manifest)),
            ];
            if let Some(prov) = &chart.prov {
                links.push((PROV, blob(prov)));
            }
            links
        }
        Target::Artifact(manifest) => {
            if !store.has_blob(manifest) {
                return Err(StoreError::BlobMissing(manifest.clone()));
            }
            vec![(MANIFEST, blob(manifest))]
        }
    };

    let final_dir = tag_dir(store, reference, tag);
    let tags_dir = final_dir.parent().unwrap_or(store.root()).to_path_buf();
    fs::create_dir_all(&tags_dir).map_err(io_err(&tags_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".new-{tag}-"))
        .tempdir_in(&tags_dir)
        .map_err(io_err(&tags_dir))?;
    for (name, dest) in links {
        let at = staging.path().join(name);
        crate::fsx::symlink(&dest, &at).map_err(io_err(&at))?;
    }
    let staging = staging.keep();
    swap_into_place(store, &staging, &final_dir)
}

/// Checks a chart's blobs are stored and writes its version marker.
fn chart_marker(store: &Store, reference: &Reference, target: &RefTarget) -> Result<()> {
    // The name and version become `charts/<name>/versions/<version>`: callers validate them
    // where they enter, and the store refuses anything that could leave that directory.
    let marker_names = crate::chart::metadata::check_name(&target.name)
        .and_then(|()| crate::chart::metadata::check_version(&target.version));
    if let Err(e) = marker_names {
        return Err(StoreError::Corrupt {
            path: store.root().join("charts"),
            reason: format!("refusing to store {reference}: {e}"),
        });
    }
    for digest in [&target.manifest, &target.config, &target.content]
        .into_iter()
        .chain(target.prov.as_ref())
    {
        if !store.has_blob(digest) {
            return Err(StoreError::BlobMissing(digest.clone()));
        }
    }
    let marker = store
        .root()
        .join("charts")
        .join(&target.name)
        .join("versions")
        .join(&target.version);
    if !marker.is_file() {
        let parent = marker.parent().unwrap_or(store.root());
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        atomic_write(&store.tmp_dir(), &marker, b"-")?;
    }
    Ok(())
}

/// Removes a tag: its links are swapped out for an empty directory in one step (keeping any
/// nested repository below it), then the directory and its empty parents are tidied away.
pub(super) fn remove(store: &Store, reference: &Reference) -> Result<bool> {
    let tag = tag_of(reference)?;
    let dir = tag_dir(store, reference, tag);
    if read_links(store, reference)?.links.is_empty() {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(store.root());
    let empty = tempfile::Builder::new()
        .prefix(&format!(".del-{tag}-"))
        .tempdir_in(parent)
        .map_err(io_err(parent))?
        .keep();
    swap_into_place(store, &empty, &dir)?;
    // Tidy empty directories up to refs/.
    let refs = store.refs_dir();
    let mut cur = dir;
    while cur.starts_with(&refs) && cur != refs {
        if fs::remove_dir(&cur).is_err() {
            break;
        }
        match cur.parent() {
            Some(p) => cur = p.to_path_buf(),
            None => break,
        }
    }
    Ok(true)
}
