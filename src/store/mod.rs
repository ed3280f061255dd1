//! The local chart cache: content-addressed blobs, chart version markers and tag references, in
//! the layout of Helm's original experimental cache, plus an OCI image layout view.
//!
//! ```text
//! registry/
//! ├── oci-layout                        {"imageLayoutVersion":"1.0.0"}
//! ├── index.json                        one manifest entry per ref (ref.name = full reference)
//! ├── index.json.sorted                 where index.json's sorted run ends (a lookup hint)
//! ├── index.json.dirty                  only while a ref change is under way (or crashed)
//! ├── .lock                             shared by readers, exclusive for writers
//! ├── .tmp/                             blobs being written (each locked by its writer)
//! ├── blobs/sha256/<hex>                config JSON ("meta"), chart .tgz ("content"), manifest, prov,
//! │                                     and any other manifest, index or layer
//! ├── charts/<name>/versions/<version>  one marker file per stored chart version
//! └── refs/<host_port>/<repo…>/tags/<tag>/
//!         chart    -> ../../…/charts/<name>/versions/<version>
//!         content  -> ../../…/blobs/sha256/<tgz hex>
//!         meta     -> ../../…/blobs/sha256/<config hex>
//!         manifest -> ../../…/blobs/sha256/<manifest hex>
//!         prov     -> ../../…/blobs/sha256/<prov hex>          (only when the chart is signed)
//! ```
//!
//! A ref to anything that is not a Helm chart (an image, an image index, a Docker manifest or
//! list, an OCI artifact) has the `manifest` link only; the manifests an index names are blobs
//! like any other, and what a ref keeps is whatever its manifest reaches ([`graph`]).
//!
//! Crash safety comes from three rules. Blobs are written to `.tmp/`, hashed on the way, and
//! renamed into `blobs/sha256/` under their digest, so a blob file is always complete. A ref is
//! built as a hidden sibling directory and swapped into place with one atomic rename, so it is
//! always either the old ref or the new one. Writers hold the exclusive lock on `.lock` while
//! they change blobs, refs and `index.json` (heavy work such as packaging or downloading happens
//! before, into `.tmp/`), and readers hold it shared, so `prune` never races a `save`.
//! `index.json` is the one file changed in place rather than replaced, so that a ref change
//! costs the same in a cache of any size; [`layout`] says why that is safe and what an outside
//! reader can see.
//!
//! Lookups read what they return: one tag is one directory, a repository (and a digest within
//! it) is its `tags/` directory, a prefix is the subtree under it. Only `list`, `verify`,
//! `prune` and an index rebuild walk every ref.
//!
//! A write that needs the lock is a method of [`Writer`], which only [`Store::write`] hands
//! out, so the lock cannot be forgotten.

mod blobs;
mod gc;
pub mod graph;
mod layout;
mod lookup;
mod refs;
mod splice;
mod swap;
mod walk;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use blobs::{BlobWriter, StagedBlob};
pub use gc::{PruneReport, VerifyReport};
pub use refs::{ArtifactRef, RefEntry, RefTarget, StoredRef};

use crate::digest::Digest;
use crate::manifest::{Kind, Node};
use crate::reference::Reference;

/// Errors from the cache. Each names the path or ref involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("ref not found: {0}")]
    RefNotFound(String),
    #[error("{0}: not a Helm chart (see `chartcache cache list`)")]
    NotAChart(String),
    #[error("{0}: a tag or a digest is required (like {0}:1.0.0 or {0}@sha256:…)")]
    NoTagOrDigest(String),
    #[error("blob {0} is not in the cache")]
    BlobMissing(Digest),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: corrupt cache entry: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

pub(crate) fn io_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.as_ref().to_path_buf();
    move |source| StoreError::Io { path, source }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The cache at one root directory (`…/registry`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// See [`Store::change_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeToken {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

/// Held while reading: writers wait for it.
pub struct ReadGuard {
    _lock: File,
}

/// Held while writing: the only way to change blobs, refs and the index.
pub struct Writer<'a> {
    store: &'a Store,
    _lock: File,
}

impl Store {
    /// A store at `root`. Nothing is touched until the first read or write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub(crate) fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    /// Creates the skeleton (idempotent) and opens the lock file.
    fn open_lock(&self) -> Result<File> {
        for dir in ["blobs/sha256", "charts", "refs", ".tmp"] {
            let path = self.root.join(dir);
            fs::create_dir_all(&path).map_err(io_err(&path))?;
        }
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            atomic_write(
                &self.tmp_dir(),
                &layout,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )?;
        }
        let lock_path = self.root.join(".lock");
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))
    }

    /// Takes the shared lock.
    pub fn read(&self) -> Result<ReadGuard> {
        let lock = self.open_lock()?;
        lock.lock_shared()
            .map_err(io_err(self.root.join(".lock")))?;
        Ok(ReadGuard { _lock: lock })
    }

    /// Takes the exclusive lock, and clears what crashed writers left behind.
    pub fn write(&self) -> Result<Writer<'_>> {
        let lock = self.open_lock()?;
        lock.lock().map_err(io_err(self.root.join(".lock")))?;
        let writer = Writer {
            store: self,
            _lock: lock,
        };
        blobs::clean_stale_temps(self)?;
        swap::recover(self)?;
        layout::repair(self)?;
        Ok(writer)
    }

    /// A token that changes whenever a ref changes: every ref change rewrites `index.json`
    /// through a rename (a new inode) or edits it in place and sets its modification time past
    /// the previous one. `None` when there is no index (an empty cache, or one written by
    /// Helm's alpha), so callers cannot tell.
    pub fn change_token(&self) -> Option<ChangeToken> {
        let meta = fs::metadata(self.root.join("index.json")).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(ChangeToken {
            inode,
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Reads a (small) blob whole: configs, manifests, provenance files.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing(digest.clone()),
            _ => StoreError::Io { path, source: e },
        })
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing(digest.clone()),
            _ => StoreError::Io { path, source: e },
        })
    }

    /// A writer for a new blob, staged in `.tmp/` and hashed as it is written.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let _ = self.open_lock()?;
        BlobWriter::new(&self.tmp_dir())
    }

    /// The chart a reference names: by tag, or by manifest digest within its repository.
    /// A ref to something else is [`StoreError::NotAChart`].
    pub fn resolve(&self, _guard: &ReadGuard, reference: &Reference) -> Result<RefEntry> {
        chart_only(reference, refs::resolve(self, reference)?)
    }

    /// The ref a reference names, chart or not: by tag, or by manifest digest within its
    /// repository (reading that repository only).
    pub fn resolve_any(&self, _guard: &ReadGuard, reference: &Reference) -> Result<StoredRef> {
        refs::resolve(self, reference)
    }

    /// Every complete chart ref, sorted by host, repository and tag. Walks the whole cache.
    pub fn list(&self, _guard: &ReadGuard) -> Result<Vec<RefEntry>> {
        Ok(sorted(walk::all(self)?)
            .into_iter()
            .filter_map(StoredRef::into_chart)
            .collect())
    }

    /// Every complete ref (charts and the rest) of the repositories equal to or under `scope`
    /// (`HOST[/PATH…]`, whole path components; all of them for ""), sorted. Reads only the
    /// subtree of `refs/` under the scope; a scope no reference can have holds nothing.
    pub fn list_under(&self, _guard: &ReadGuard, scope: &str) -> Result<Vec<StoredRef>> {
        Ok(sorted(walk::under(self, scope)?))
    }

    /// Every complete ref of one repository (`repo`'s tag and digest are ignored), sorted.
    /// Reads only that repository's `tags/` directory.
    pub fn repository(&self, _guard: &ReadGuard, repo: &Reference) -> Result<Vec<StoredRef>> {
        Ok(sorted(walk::repository(self, &repo.without_object())?))
    }

    /// Re-hashes every blob and checks every ref and the index.
    pub fn verify(&self, _guard: &ReadGuard) -> Result<VerifyReport> {
        gc::verify(self)
    }
}

impl Writer<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Moves a staged blob into `blobs/sha256/`, after checking it against `expected` when the
    /// caller knows what the digest must be (every download does).
    pub fn commit_blob(&self, staged: StagedBlob, expected: Option<&Digest>) -> Result<Digest> {
        staged.commit(self.store, expected)
    }

    /// Stores a small blob from memory.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let mut w = self.store.blob_writer()?;
        w.write_all(bytes).map_err(io_err(self.store.tmp_dir()))?;
        self.commit_blob(w.finish()?, None)
    }

    /// Points `reference` (which must carry a tag) at a stored chart, atomically, and updates
    /// `index.json`. Every blob the target names must already be stored.
    pub fn set_ref(&self, reference: &Reference, target: &RefTarget) -> Result<()> {
        self.change(reference, Some(refs::Target::Chart(target)))
            .map(|_| ())
    }

    /// Points `reference` (which must carry a tag) at a stored manifest that is not a Helm
    /// chart: an image, an image index, a Docker manifest or list, an OCI artifact. Everything
    /// it reaches (the manifests of an index, their configs and layers) must already be
    /// stored, and is kept by `prune` as long as the ref exists.
    pub fn set_artifact_ref(&self, reference: &Reference, manifest: &Digest) -> Result<()> {
        let reach = graph::reach(self.store, manifest);
        if let Some(problem) = reach.problems.first() {
            return Err(StoreError::Corrupt {
                path: self.store.blob_path(manifest),
                reason: format!("refusing to point {reference} at it: {problem}"),
            });
        }
        let bytes = self.store.read_blob(manifest)?;
        if Node::parse(&bytes).is_ok_and(|n| n.kind == Kind::HelmChart) {
            return Err(StoreError::Corrupt {
                path: self.store.blob_path(manifest),
                reason: format!(
                    "{reference}: a Helm chart is stored as a chart, not as an artifact"
                ),
            });
        }
        self.change(reference, Some(refs::Target::Artifact(manifest)))
            .map(|_| ())
    }

    /// Removes a tag, whatever it points at. Returns false if there was none.
    pub fn remove_ref(&self, reference: &Reference) -> Result<bool> {
        self.change(reference, None)
    }

    /// One ref change, with `index.json` kept current (see [`layout`] for the protocol).
    fn change(&self, reference: &Reference, target: Option<refs::Target<'_>>) -> Result<bool> {
        let before = layout::Before::of(self.store, reference);
        layout::mark_dirty(self.store)?;
        let changed = match target {
            Some(t) => refs::set(self.store, reference, t).map(|()| true)?,
            None => refs::remove(self.store, reference)?,
        };
        if changed {
            let after = match refs::read_tag(self.store, reference)? {
                Some(r) => layout::entry(self.store, &r)?,
                None => None,
            };
            layout::update(self.store, &before, after.as_ref())?;
        }
        layout::mark_clean(self.store)?;
        Ok(changed)
    }

    /// Resolves like [`Store::resolve`], under the write lock.
    pub fn resolve(&self, reference: &Reference) -> Result<RefEntry> {
        chart_only(reference, refs::resolve(self.store, reference)?)
    }

    /// Resolves like [`Store::resolve_any`], under the write lock.
    pub fn resolve_any(&self, reference: &Reference) -> Result<StoredRef> {
        refs::resolve(self.store, reference)
    }

    /// Deletes blobs and chart markers no ref reaches, and leftovers of crashed writes.
    pub fn prune(&self) -> Result<PruneReport> {
        gc::prune(self.store)
    }
}

fn chart_only(reference: &Reference, r: StoredRef) -> Result<RefEntry> {
    r.into_chart()
        .ok_or_else(|| StoreError::NotAChart(reference.to_string()))
}

/// The complete refs of a walk, sorted by reference.
fn sorted(walked: walk::Walked) -> Vec<StoredRef> {
    let mut all: Vec<StoredRef> = walked.into_iter().filter_map(|r| r.ok()).collect();
    all.sort_by(|a, b| a.reference().cmp(b.reference()));
    all
}

/// Writes `bytes` to `path` through a temp file in `tmp_dir` and a rename, mode 0644.
pub(crate) fn atomic_write(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(tmp_dir).map_err(io_err(tmp_dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix("write-")
        .tempfile_in(tmp_dir)
        .map_err(io_err(tmp_dir))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    set_public(tmp.as_file(), tmp.path())?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Cache files are world-readable like Helm's (0644); temp files start private.
pub(crate) fn set_public(file: &File, path: &Path) -> Result<()> {
    crate::fsx::make_public(file).map_err(io_err(path))
}
