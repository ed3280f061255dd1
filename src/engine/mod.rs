//! The copy engine: every place is a source or a sink of OCI artifacts, and a copy is "read
//! from one place, write to another" (go-containerregistry's `remote`/`layout`, crane's `copy`).
//!
//! - [`Source`]: what a place can give: the artifacts it holds, a manifest by name, a blob.
//! - [`Sink`]: what a place can take: whether it has a blob, a blob, a manifest (by tag, or by
//!   digest for the children of an index).
//! - [`copy::copy`]: one graph walk for every pair of places: index → manifests → blobs, each
//!   blob verified against its digest before it counts, children before their parents, so a
//!   sink never holds a manifest whose blobs it lacks.
//! - [`places`]: the places: a registry repository, an OCI image layout directory (`oci:DIR`)
//!   and an OCI archive (`oci-archive:FILE`).
//!
//! Names: every artifact is named by a [`Reference`] (`host/path:tag` or `@digest`), whatever
//! the place. Layouts keep that full reference as their `org.opencontainers.image.ref.name`,
//! as the cache's own `index.json` does, so a layout written here and read back keeps every
//! name; a ref name that is not a reference (skopeo's `oci:DIR:latest`) names the artifact
//! `localhost/<layout name>:<ref>`.
//!
//! What moves is bytes: manifests and blobs are copied as they are, so every digest is kept.

pub mod cache;
pub mod classic;
pub mod copy;
pub mod places;
pub mod referrers;

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use crate::digest::Digest;
use crate::layout::LayoutError;
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};

/// Why a copy failed. Each names the place and the artifact.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{place}: {name}: not found")]
    NotFound { place: String, name: String },
    #[error("{what}: not a manifest or an index: {reason}")]
    NotAManifest { what: String, reason: String },
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.as_ref().to_path_buf();
    move |source| EngineError::Io { path, source }
}

/// Runs blocking file I/O (layouts, the cache): on a multi-threaded runtime without stalling
/// its other tasks; on a single-threaded one (the CLI's) in place.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A blob ready to be written somewhere: a file whose bytes were checked against the digest
/// (a layout's own blob file, or a download spooled to a temporary file).
pub enum Blob {
    /// A file that stays where it is.
    File(PathBuf),
    /// A temporary file, deleted when dropped.
    Temp(tempfile::NamedTempFile),
    /// `size` bytes of a file, from `offset` on, read where they are (a blob in an OCI archive
    /// or layout, checked against its digest already). `id` is the file that was checked: it
    /// is opened again by path only to be that file.
    Region {
        path: PathBuf,
        offset: u64,
        size: u64,
        id: FileId,
    },
}

/// Which file an open file is (its device and inode), to know a path still leads to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    pub fn of(file: &std::fs::File) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        Ok(FileId {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
}

impl Blob {
    /// The file that holds the blob.
    pub fn path(&self) -> &Path {
        match self {
            Blob::File(p) | Blob::Region { path: p, .. } => p,
            Blob::Temp(t) => t.path(),
        }
    }

    /// The file, positioned where the blob starts (a region's file must be the one checked).
    pub fn open_file(&self) -> std::io::Result<std::fs::File> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        // Never waiting on something swapped in that is not a file (a FIFO): the identity
        // check below refuses it.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.path())?;
        if let Blob::Region { offset, id, .. } = self {
            if FileId::of(&file)? != *id {
                return Err(std::io::Error::other(
                    "replaced since its blobs were checked",
                ));
            }
            file.seek(SeekFrom::Start(*offset))?;
        }
        Ok(file)
    }

    /// The blob's bytes, and no more.
    pub fn open(&self) -> Result<std::io::Take<std::fs::File>> {
        use std::io::Read;
        let file = self.open_file().map_err(io_err(self.path()))?;
        Ok(match self {
            Blob::Region { size, .. } => file.take(*size),
            Blob::File(_) | Blob::Temp(_) => file.take(u64::MAX),
        })
    }

    /// The same bytes, without owning them: a temporary file stays with `self`.
    pub fn shared(&self) -> Blob {
        match self {
            Blob::Region {
                path,
                offset,
                size,
                id,
            } => Blob::Region {
                path: path.clone(),
                offset: *offset,
                size: *size,
                id: *id,
            },
            Blob::File(_) | Blob::Temp(_) => Blob::File(self.path().to_path_buf()),
        }
    }

    /// The whole blob in memory (for the small ones: configs, signatures).
    pub fn read(&self) -> Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        self.open()?
            .read_to_end(&mut bytes)
            .map_err(io_err(self.path()))?;
        Ok(bytes)
    }
}

/// What a sink says about the tags of one repository, for planning a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// The place does not have the repository: nothing of it is there yet.
    NoRepository,
    /// The repository's tags.
    Listed(Vec<String>),
    /// The place answers name by name only ([`Sink::digest_of`]).
    PerName,
}

/// A place artifacts are read from.
pub trait Source: Send + Sync {
    /// The place, for messages (`oci-archive:app.tar`, `registry.example.com`).
    fn describe(&self) -> String;

    /// Every artifact the place names (a layout's refs). Registries answer per repository
    /// (their tag lists), so they return `None` here.
    fn artifacts(&self) -> Result<Option<Vec<Reference>>> {
        Ok(None)
    }

    /// The tags of `repo` here (an error naming it when the place does not have it).
    fn tags<'a>(&'a self, repo: &'a Reference) -> BoxFuture<'a, Result<Vec<String>>> {
        let tags = self.artifacts().map(|all| {
            all.unwrap_or_default()
                .into_iter()
                .filter(|r| r.without_object() == *repo)
                .filter_map(|r| r.tag().map(str::to_string))
                .collect()
        });
        Box::pin(std::future::ready(tags))
    }

    /// The manifest (or index) `name` names, byte for byte, with its digest.
    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>>;

    /// The digest of what `name` names (`None` when the place does not have it), without
    /// more work than that takes (a registry answers a HEAD request).
    fn digest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        Box::pin(async move {
            match self.manifest(name).await {
                Ok((_, digest)) => Ok(Some(digest)),
                Err(EngineError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// What refers to the manifest `digest` in `repo`: its referrers and cosign's tags for it.
    /// `tags` are the repository's tags here (listed once per copy job). By default from the
    /// tags: the referrers tag schema's index and cosign's tags.
    fn referrers<'a>(
        &'a self,
        repo: &'a Reference,
        digest: &'a Digest,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<referrers::Found>> {
        Box::pin(referrers::by_tags(self, repo, digest, tags))
    }

    /// Whether `held` (the manifest a destination holds under the name `name` is copied to)
    /// is already what `name` names, when this place can tell without preparing the artifact
    /// (a classic repository compares the chart layer with its index's digest, so a rerun
    /// downloads nothing). `None`: compare manifest digests.
    fn same_content(&self, _name: &Reference, _held: &[u8]) -> Option<bool> {
        None
    }

    /// Whether [`Source::same_content`] can answer (so fetching the destination's manifest
    /// is worth it).
    fn compares_content(&self) -> bool {
        false
    }

    /// The blob `desc` names, in `repo`, checked against its digest and size.
    fn blob<'a>(&'a self, repo: &'a Reference, desc: &'a Descriptor)
    -> BoxFuture<'a, Result<Blob>>;

    /// The registry behind this place, if it is one (so a sink on the same registry can mount
    /// blobs, and a registry sink can stream from it without spooling).
    fn registry(&self) -> Option<&Registry> {
        None
    }

    /// A blob this place holds already, checked against its digest, at no cost (a source
    /// that kept what a signature check downloaded): a copy writes it from there rather than
    /// downloading it again.
    fn held(&self, _digest: &Digest) -> Option<Blob> {
        None
    }

    /// The copy of `name` is over: a source that prepared it (downloaded a classic
    /// repository's archive) may let it go.
    fn release(&self, _name: &Reference) {}
}

/// A place artifacts are written to.
pub trait Sink: Send + Sync {
    fn describe(&self) -> String;

    /// The digest `name` (a tag) points at now, if any.
    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>>;

    /// The tags `repo` has here, listed once per repository when planning.
    fn existing_tags<'a>(&'a self, _repo: &'a Reference) -> BoxFuture<'a, Result<Tags>> {
        Box::pin(std::future::ready(Ok(Tags::PerName)))
    }

    /// The manifest `name` points at now, if the place has it and can say.
    fn current_manifest<'a>(
        &'a self,
        _name: &'a Reference,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn has_blob<'a>(
        &'a self,
        repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Refuses, before anything is copied, a manifest this place cannot hold under `name`
    /// (the cache takes Helm charts only).
    fn admit(&self, _name: &Reference, _manifest: &[u8]) -> Result<()> {
        Ok(())
    }

    /// Writes a verified blob.
    fn put_blob<'a>(
        &'a self,
        repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>>;

    /// Writes a manifest under `name`: by tag for what was asked for, by digest for the
    /// children of an index. Every blob and child it names is already there.
    fn put_manifest<'a>(
        &'a self,
        name: &'a Reference,
        bytes: &'a [u8],
        media_type: &'a str,
    ) -> BoxFuture<'a, Result<Digest>>;

    /// Records that `referrer` (written here already, by digest) refers to `subject` in
    /// `repo`, so readers of this place find it: by default in the referrers tag schema
    /// ([`referrers::write_tag_schema`]; `current` is that index as this job last wrote it).
    /// Returns the index written, if one was.
    fn put_referrer<'a>(
        &'a self,
        repo: &'a Reference,
        subject: &'a Digest,
        referrer: &'a Descriptor,
        current: Option<Vec<u8>>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(referrers::write_tag_schema(
            self, repo, subject, referrer, current,
        ))
    }

    /// Names the manifest `digest` (written already) `name`, a reference by digest only, for
    /// places that list what they hold by name: a layout's `ref.name` may be a digest
    /// reference, so `host/repo@sha256:…` stays listed and is read back. A registry holds
    /// manifests by digest already.
    fn name_artifact<'a>(
        &'a self,
        _name: &'a Reference,
        _digest: &'a Digest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The registry behind this place, if it is one.
    fn registry(&self) -> Option<&Registry> {
        None
    }

    /// Ends the job: an archive is completed and renamed into place. Called once, after the
    /// last copy; a sink dropped without it leaves nothing half written.
    fn finish(&self) -> Result<()> {
        Ok(())
    }
}
