//! `index.json`: the OCI image layout view of the cache, one manifest entry per tag with the
//! full reference as `org.opencontainers.image.ref.name`, so `skopeo copy oci:DIR:REF` works.
//! An entry carries the manifest's own media type (and artifact type, if it has one): a chart
//! is an OCI manifest, an image index is an index, a Docker list a Docker list.
//!
//! It is derived from `refs/` and kept current by every ref change, under the write lock.
//!
//! **Changed in place.** Rewriting the whole file per ref costs time in proportion to the
//! cache (20 ms a ref at 10,000 refs), so a ref change edits the file where it stands
//! ([`super::splice`]): a new ref's entry is written over the closing `]}` (as `,{…}]}`), and
//! a removed entry is overwritten with spaces, which JSON reads as whitespace. A replaced entry
//! is overwritten in place when the new one fits, else appended before the old one is blanked.
//! The old entry is found by its exact bytes (the serializer is deterministic) without reading
//! the file: a rebuild writes the entries sorted by name and records where that run ends, so
//! the entry is found by binary search, or in the short tail of entries appended since
//! ([`super::lookup`]). When that tail passes 1 MiB, the writer sorts the file again (one
//! pass, every few thousand writes), so a ref change costs the same in a cache of 100 refs
//! and of 100,000. The blanks stay until then, or until `chart prune` rebuilds the file.
//! Anything unexpected (no file, another header, a torn end, an entry not found) makes the
//! writer rebuild the file from `refs/`, through a temp file and a rename.
//!
//! **What an outside reader can see.** Chartcache's own readers hold the shared lock, so they
//! never see an edit half done. A reader that takes no lock (skopeo reading `oci:` the cache)
//! reads a file that changes under it: each edit is a single `pwrite` of a few hundred bytes,
//! so it sees the file before or after an edit, but the kernel does not promise that a read
//! racing a write sees either whole; a torn read fails to parse, and reading again succeeds.
//! Between the two writes of a replacement that does not fit, the ref is listed twice (old
//! entry first); it is never missing.
//!
//! **Crashes.** A ref change and the index update cannot be one atomic step, so a marker file
//! ([`DIRTY`]) is created before the ref changes and removed after the index is written; a
//! writer that finds the marker (its predecessor crashed in between, possibly in the middle of
//! an edit) rebuilds the index from `refs/`, as it does when the index is missing or
//! unreadable.
//!
//! **Change token.** An edit keeps the file's inode, and a removal keeps its length, so every
//! edit also sets the file's modification time past the previous one (see
//! [`super::Store::change_token`]).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::time::{Duration, SystemTime};

use super::lookup::{self, IndexFile, write_at};
use super::refs::StoredRef;
use super::splice::{self, Append, Edit};
use super::{Result, Store, atomic_write, io_err, walk};
use crate::digest::Digest;
use crate::manifest::Node;
use crate::oci::{ANNOTATION_REF_NAME, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::reference::Reference;

/// Present while `refs/` may be ahead of `index.json`.
pub(super) const DIRTY: &str = "index.json.dirty";

const INDEX: &str = "index.json";

/// How every `index.json` this cache writes begins; edits in place need it.
const HEADER: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#;

/// The end of the file read to append (more only when it is all blanks).
const TAIL: u64 = 4096;

/// One entry, fields in the image-spec's Go order (its `Descriptor`): a chart's entry is
/// byte for byte what earlier versions wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Entry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Entry {
    pub(super) fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }

    fn bytes(&self) -> Vec<u8> {
        crate::gojson::to_vec(self)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
}

pub(super) fn read(store: &Store) -> Option<Index> {
    let bytes = fs::read(store.root().join(INDEX)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The entry of a stored ref; `None` for a chart of Helm's alpha cache (no manifest).
pub(super) fn entry(store: &Store, r: &StoredRef) -> Result<Option<Entry>> {
    Entries::default().of(store, r)
}

/// Entries of many refs, each manifest read once however many refs name it (the tags of one
/// chart version share it).
#[derive(Default)]
pub(super) struct Entries {
    seen: HashMap<(bool, Digest), (String, Option<String>, u64)>,
}

impl Entries {
    pub(super) fn of(&mut self, store: &Store, r: &StoredRef) -> Result<Option<Entry>> {
        let Some(manifest) = r.manifest() else {
            return Ok(None);
        };
        let chart = matches!(r, StoredRef::Chart(_));
        let key = (chart, manifest.clone());
        let (media_type, artifact_type, size) = match self.seen.get(&key) {
            Some(known) => known.clone(),
            None => {
                let known = describe(store, manifest, chart)?;
                self.seen.insert(key, known.clone());
                known
            }
        };
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_REF_NAME.to_string(), r.reference().to_string());
        Ok(Some(Entry {
            media_type,
            digest: manifest.clone(),
            size,
            annotations,
            artifact_type,
        }))
    }
}

/// A manifest's media type, artifact type and size. A chart's entry says it is an OCI
/// manifest (Helm writes none in the manifest), as it always has.
fn describe(
    store: &Store,
    manifest: &Digest,
    chart: bool,
) -> Result<(String, Option<String>, u64)> {
    let path = store.blob_path(manifest);
    if chart {
        let size = fs::metadata(&path).map_err(io_err(&path))?.len();
        return Ok((MANIFEST_MEDIA_TYPE.to_string(), None, size));
    }
    let bytes = store.read_blob(manifest)?;
    let node = Node::parse(&bytes).map_err(|reason| super::StoreError::Corrupt { path, reason })?;
    Ok((node.media_type, node.artifact_type, bytes.len() as u64))
}

/// An index of `manifests`, sorted by name, as this cache writes it.
fn serialize(mut manifests: Vec<Entry>) -> Vec<u8> {
    manifests.sort_by(|a, b| a.ref_name().cmp(&b.ref_name()));
    crate::gojson::to_vec(&Index {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_string()),
        manifests,
    })
}

/// The index `refs` make, and how many entries it has. A ref whose manifest cannot be read
/// is left out (`verify` reports it).
fn from_refs(store: &Store, refs: &[StoredRef]) -> (Vec<u8>, usize) {
    let mut entries = Entries::default();
    let manifests: Vec<Entry> = refs
        .iter()
        .filter_map(|r| entries.of(store, r).ok().flatten())
        .collect();
    let count = manifests.len();
    (serialize(manifests), count)
}

/// Puts a whole, sorted index in place (temp file and rename) and records its sorted run.
fn install(store: &Store, bytes: &[u8]) -> Result<()> {
    atomic_write(&store.tmp_dir(), &store.root().join(INDEX), bytes)?;
    lookup::record(store, bytes.len().saturating_sub(2) as u64)
}

/// Rebuilds the whole index from `refs/`.
pub(super) fn rebuild(store: &Store) -> Result<()> {
    let refs: Vec<StoredRef> = walk::all(store)?.into_iter().flatten().collect();
    install(store, &from_refs(store, &refs).0)
}

/// Rebuilds the index from `refs` (every complete ref, as a walk found them) unless it is
/// already exactly what a rebuild writes (sorted, no blanks), or there is neither an index nor
/// a ref.
pub(super) fn compact(store: &Store, refs: &[StoredRef]) -> Result<()> {
    let (bytes, count) = from_refs(store, refs);
    let path = store.root().join(INDEX);
    match fs::read(&path) {
        Ok(current) if current == bytes => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && count == 0 => Ok(()),
        _ => install(store, &bytes),
    }
}

/// Sorts the index's own entries into one run, without blanks: what keeps lookups short once
/// the unsorted tail has grown. The index is current here (this runs under the dirty marker,
/// after the edit), so it need not be rebuilt from `refs/`; if it does not parse, it is.
fn resort(store: &Store) -> Result<()> {
    match read(store) {
        Some(index) => install(store, &serialize(index.manifests)),
        None => rebuild(store),
    }
}

/// What a ref was before a change, as far as the index is concerned.
#[derive(Debug)]
pub(super) enum Before {
    /// No entry: no such ref, or a chart without a manifest.
    Absent,
    Entry(Entry),
    /// The old ref could not be read: its entry is not known.
    Unknown,
}

impl Before {
    pub(super) fn of(store: &Store, reference: &Reference) -> Self {
        match super::refs::read_tag(store, reference) {
            Ok(None) => Before::Absent,
            Ok(Some(r)) => match entry(store, &r) {
                Ok(None) => Before::Absent,
                Ok(Some(e)) => Before::Entry(e),
                Err(_) => Before::Unknown,
            },
            Err(_) => Before::Unknown,
        }
    }
}

/// Brings the index from `before` to `after` for one ref, in place when it can, else by a
/// rebuild.
pub(super) fn update(store: &Store, before: &Before, after: Option<&Entry>) -> Result<()> {
    let path = store.root().join(INDEX);
    let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(&path) else {
        return rebuild(store);
    };
    let sorted = lookup::sorted_end(store, &file);
    let edits = match plan(&file, sorted, before, after) {
        Ok(Some(edits)) => edits,
        Ok(None) | Err(_) => return rebuild(store),
    };
    if edits.is_empty() {
        return Ok(());
    }
    let previous = file.metadata().and_then(|m| m.modified()).ok();
    for edit in &edits {
        write_at(&file, &edit.bytes, edit.offset).map_err(io_err(&path))?;
    }
    // The change token must move even when the clock has not (see the module docs).
    let now = SystemTime::now();
    let stamp = match previous {
        Some(p) if p >= now => p + Duration::from_nanos(1),
        _ => now,
    };
    file.set_modified(stamp).map_err(io_err(&path))?;
    let len = file.metadata().map_err(io_err(&path))?.len();
    if len - sorted.unwrap_or(HEADER.len() as u64).min(len) > lookup::MAX_TAIL {
        resort(store)?;
    }
    Ok(())
}

/// The edits for one ref change; `None` when only a rebuild will do.
fn plan(
    file: &File,
    sorted: Option<u64>,
    before: &Before,
    after: Option<&Entry>,
) -> io::Result<Option<Vec<Edit>>> {
    let index = IndexFile {
        file,
        len: file.metadata()?.len(),
    };
    if index.read(0, HEADER.len() as u64)? != HEADER {
        return Ok(None);
    }
    let old = match before {
        Before::Unknown => return Ok(None),
        Before::Absent => {
            return Ok(match after {
                None => Some(Vec::new()),
                Some(new) => append(&index, new)?.map(|e| vec![e]),
            });
        }
        Before::Entry(old) => old,
    };
    let old_bytes = old.bytes();
    let Some(at) = index.locate(sorted, HEADER.len() as u64, &old_bytes)? else {
        return Ok(None);
    };
    let new = match after {
        Some(new) if new == old => return Ok(Some(Vec::new())),
        Some(new) => Some(new),
        None => None,
    };
    if let Some(new) = new
        && let Some(e) = splice::overwrite(at, old_bytes.len(), &new.bytes())
    {
        return Ok(Some(vec![e]));
    }
    let Some((start, end)) = index.blank_span(at, old_bytes.len() as u64)? else {
        return Ok(None);
    };
    let blank = splice::spaces(start, end);
    let Some(new) = new else {
        return Ok(Some(vec![blank]));
    };
    // Appended first, blanked after: a reader in between sees the ref twice, never not at all.
    Ok(append(&index, new)?.map(|e| vec![e, blank]))
}

/// The edit appending `new`, from the end of the file (reading further back while the end is
/// blank, as removing the last entries leaves it).
fn append(index: &IndexFile<'_>, new: &Entry) -> io::Result<Option<Edit>> {
    let bytes = new.bytes();
    let mut back = TAIL;
    loop {
        let start = index.len.saturating_sub(back);
        match splice::append(&index.read(start, index.len)?, start, &bytes) {
            Append::Edit(e) => return Ok(Some(e)),
            Append::NeedMore => back *= 16,
            Append::Malformed => return Ok(None),
        }
    }
}

/// Marks the index as possibly stale, before a ref changes.
pub(super) fn mark_dirty(store: &Store) -> Result<()> {
    atomic_write(&store.tmp_dir(), &store.root().join(DIRTY), b"")
}

/// Removes the marker once the index is current.
pub(super) fn mark_clean(store: &Store) -> Result<()> {
    let path = store.root().join(DIRTY);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_what_the_serializer_writes() {
        let empty = Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
        };
        let bytes = crate::gojson::to_vec(&empty);
        assert_eq!(&bytes[..HEADER.len()], HEADER);
        assert_eq!(&bytes[HEADER.len()..], b"]}");
    }

    #[test]
    fn a_chart_entry_is_what_earlier_versions_wrote() {
        let digest = Digest::of(b"m");
        let mut d = crate::oci::Descriptor::new(MANIFEST_MEDIA_TYPE, digest.clone(), 7);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "h/a:1".into());
        let e = Entry {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            digest,
            size: 7,
            annotations: d.annotations.clone(),
            artifact_type: None,
        };
        assert_eq!(e.bytes(), crate::gojson::to_vec(&d));
    }
}
