//! The places of the copy engine: a registry, an OCI image layout directory (`oci:DIR[:REF]`)
//! and an OCI archive (`oci-archive:FILE[:REF]`), each a [`Source`], a [`Sink`] or both.
//!
//! Layout files are read and written with blocking I/O (`std::fs`, the `tar` format), inside
//! `block_in_place` so the runtime's other tasks go on. A blob leaving a registry is
//! downloaded to a temporary file, checked on the way; one leaving a layout or an archive is
//! read once through a hash and then handed over where it is, in its file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::referrers::Found;
use super::{Blob, EngineError, FileId, Result, Sink, Source, Tags, blocking, io_err};
use crate::digest::{Digest, HashingWriter};
use crate::layout::{ArchiveReader, ArchiveWriter, LayoutDir, LayoutError, LayoutRef};
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};

/// Where a place is, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceName {
    /// `oci:DIR[:REF]`
    Layout {
        path: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`
    Archive {
        path: PathBuf,
        reference: Option<String>,
    },
}

impl PlaceName {
    /// `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`; `None` for anything else (a registry
    /// reference, `cache:`). As in skopeo, the path ends at the first `:`.
    pub fn parse(text: &str) -> Option<PlaceName> {
        let split = |rest: &str| -> (PathBuf, Option<String>) {
            match rest.split_once(':') {
                Some((path, r)) if !r.is_empty() => (PathBuf::from(path), Some(r.to_string())),
                Some((path, _)) => (PathBuf::from(path), None),
                None => (PathBuf::from(rest), None),
            }
        };
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (path, reference) = split(rest);
            return Some(PlaceName::Archive { path, reference });
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            let (path, reference) = split(rest);
            return Some(PlaceName::Layout { path, reference });
        }
        None
    }

    pub fn path(&self) -> &Path {
        match self {
            PlaceName::Layout { path, .. } | PlaceName::Archive { path, .. } => path,
        }
    }

    /// The `:REF` part, if one was given.
    pub fn reference(&self) -> Option<&str> {
        match self {
            PlaceName::Layout { reference, .. } | PlaceName::Archive { reference, .. } => {
                reference.as_deref()
            }
        }
    }
}

impl std::fmt::Display for PlaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, path, reference) = match self {
            PlaceName::Layout { path, reference } => ("oci", path, reference),
            PlaceName::Archive { path, reference } => ("oci-archive", path, reference),
        };
        write!(f, "{scheme}:{}", path.display())?;
        if let Some(r) = reference {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// The ref name an artifact gets in a layout: its full reference, as in the cache's
/// `index.json`, so names survive a round trip through a layout.
pub fn ref_name(r: &Reference) -> String {
    r.to_string()
}

/// The artifact a layout's ref name stands for: a full reference with a tag, or with a digest
/// only (an image a chart pins by digest), as written by [`ref_name`]; a reference without a
/// host (`team/web:1.0`) under `localhost/`; else (skopeo's `oci:DIR:latest`) a tag,
/// `localhost/<layout name>:<ref>`, with a `+` (a version's build metadata) written `_` as Helm
/// writes it in tags. `None` for a name that is none of these.
pub fn artifact_name(layout: &Path, name: &str) -> Option<Reference> {
    let looks_like_a_host = |h: &str| h.contains(['.', ':']) || h == "localhost";
    let one_object = |r: &Reference| r.tag().is_some() != r.digest().is_some();
    if let Ok(r) = Reference::parse(name)
        && one_object(&r)
        && looks_like_a_host(r.host())
    {
        return Some(r);
    }
    if name.contains('/')
        && let Ok(r) = Reference::parse(&format!("localhost/{name}"))
        && one_object(&r)
    {
        return Some(r);
    }
    let stem = layout
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("layout")
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let stem = stem.trim_matches('-');
    let stem = if stem.is_empty() { "layout" } else { stem };
    let tag = name.replace('+', "_");
    Reference::parse(&format!("localhost/{stem}:{tag}")).ok()
}

/// The refs of a layout as artifact names, each with its descriptor. A layout of one manifest
/// that no ref names (`skopeo copy … oci-archive:FILE`) holds it as `latest`, as skopeo reads
/// it; other entries without a name are not artifacts to copy.
fn named(layout: &Path, refs: Vec<LayoutRef>) -> Vec<(Reference, Descriptor)> {
    let only = refs.len() == 1;
    refs.into_iter()
        .filter_map(|r| {
            let name = match r.name.as_deref() {
                Some(name) => name,
                None if only => "latest",
                None => return None,
            };
            Some((artifact_name(layout, name)?, r.descriptor))
        })
        .collect()
}

/// Refuses a layout place that cannot be one, before anything is read or written: no path,
/// an archive that is a directory, a layout directory that is a file.
fn check_path(place: &PlaceName) -> Result<()> {
    let path = place.path();
    let refuse = |reason: &str| {
        Err(EngineError::Unsupported {
            what: place.to_string(),
            reason: reason.to_string(),
        })
    };
    if path.as_os_str().is_empty() {
        return refuse("no path given");
    }
    match (place, std::fs::metadata(path)) {
        (PlaceName::Archive { .. }, Ok(m)) if m.is_dir() => refuse("a directory, not an archive"),
        (PlaceName::Layout { .. }, Ok(m)) if !m.is_dir() => {
            refuse("a file, not a layout directory")
        }
        _ => Ok(()),
    }
}

/// Refuses a layout's `:REF` that no artifact name stands for (a ref name this tool could
/// not read back).
fn check_ref(place: &PlaceName) -> Result<()> {
    match place.reference() {
        Some(r) if artifact_name(place.path(), r).is_none() => Err(unnamed(place, r)),
        _ => Ok(()),
    }
}

fn unnamed(place: &PlaceName, name: &str) -> EngineError {
    EngineError::Unsupported {
        what: format!("{}: ref name {name:?}", place.path().display()),
        reason: "not a tag or an image reference".into(),
    }
}

/// Reads `reader` through a hash and checks size and digest against `desc`: the bytes a sink
/// is then given are known good.
fn verify(mut reader: impl Read, desc: &Descriptor, path: &Path) -> Result<()> {
    let mut hashed = HashingWriter::new(std::io::sink());
    std::io::copy(&mut reader, &mut hashed).map_err(io_err(path))?;
    let (_, digest, size) = hashed.finish();
    check(desc, &digest, size, path)
}

fn check(desc: &Descriptor, digest: &Digest, size: u64, path: &Path) -> Result<()> {
    if *digest != desc.digest || size != desc.size {
        return Err(EngineError::DigestMismatch {
            what: format!(
                "blob {} ({} bytes) at {}",
                desc.digest,
                desc.size,
                path.display()
            ),
            expected: desc.digest.clone(),
            actual: digest.clone(),
        });
    }
    Ok(())
}

fn not_found(place: &str, name: &Reference) -> EngineError {
    EngineError::NotFound {
        place: place.to_string(),
        name: name.to_string(),
    }
}

/// Reads a manifest blob by digest, within the manifest limit.
fn read_small(mut reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| EngineError::Io {
            path: PathBuf::from(what),
            source: e,
        })?;
    if bytes.len() as u64 > limit {
        return Err(EngineError::Unsupported {
            what: what.to_string(),
            reason: format!("a manifest larger than {} MiB", limit >> 20),
        });
    }
    Ok(bytes)
}

// ---- registry ------------------------------------------------------------------------

/// A registry, as a source and a sink. Names carry their repository.
pub struct RegistryPlace {
    pub registry: std::sync::Arc<Registry>,
    /// Whether the registry has the referrers API, once a request has told.
    referrers_api: std::sync::OnceLock<bool>,
    /// Held while the first request tells whether the registry has the referrers API, so
    /// concurrent copies ask once.
    probing: tokio::sync::Mutex<()>,
    /// With [`RegistryPlace::listing_once`], each repository's tags as first listed.
    listed: Option<tokio::sync::Mutex<std::collections::HashMap<Reference, Vec<String>>>>,
}

impl RegistryPlace {
    pub fn new(registry: Registry) -> Self {
        RegistryPlace {
            registry: std::sync::Arc::new(registry),
            referrers_api: std::sync::OnceLock::new(),
            probing: tokio::sync::Mutex::new(()),
            listed: None,
        }
    }

    /// A source for one command: each repository's tags are listed once, and that listing is
    /// the command's view of them (a sync plans from the listing, and its copies find
    /// referrers' tags in it, without a second request for the same page).
    pub fn listing_once(mut self) -> Self {
        self.listed = Some(tokio::sync::Mutex::default());
        self
    }

    /// `repo`'s tags, from the registry or the listing this place remembers.
    async fn list_tags(&self, repo: &Reference) -> std::result::Result<Vec<String>, RegistryError> {
        let Some(listed) = &self.listed else {
            return self.registry.tags(repo).await;
        };
        let mut listed = listed.lock().await;
        if let Some(tags) = listed.get(repo) {
            return Ok(tags.clone());
        }
        let tags = self.registry.tags(repo).await?;
        listed.insert(repo.clone(), tags.clone());
        Ok(tags)
    }

    /// The referrers API's answer, `None` once the registry is known not to have it.
    async fn api_referrers(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let _probing = match self.referrers_api.get() {
            Some(false) => return Ok(None),
            Some(true) => None,
            None => {
                let held = self.probing.lock().await;
                if self.referrers_api.get() == Some(&false) {
                    return Ok(None);
                }
                Some(held)
            }
        };
        let found = self.registry.referrers(repo, digest).await?;
        let _ = self.referrers_api.set(found.is_some());
        Ok(found)
    }
}

impl Source for RegistryPlace {
    fn describe(&self) -> String {
        self.registry.host().to_string()
    }

    fn tags<'a>(&'a self, repo: &'a Reference) -> BoxFuture<'a, Result<Vec<String>>> {
        async move {
            match self.list_tags(repo).await {
                Err(RegistryError::NotFound { host, .. }) => Err(EngineError::NotFound {
                    place: host,
                    name: format!("{repo} (no such repository)"),
                }),
                other => Ok(other?),
            }
        }
        .boxed()
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move { Ok(self.registry.manifest(name).await?) }.boxed()
    }

    fn digest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            match self.registry.manifest_digest(name).await {
                Err(RegistryError::NotFound { .. }) => Ok(None),
                other => Ok(other?),
            }
        }
        .boxed()
    }

    /// The referrers API where the registry has it (cosign's tags from the tag list either
    /// way), else the referrers tag schema.
    fn referrers<'a>(
        &'a self,
        repo: &'a Reference,
        digest: &'a Digest,
        tags: &'a [String],
    ) -> BoxFuture<'a, Result<Found>> {
        async move {
            match self.api_referrers(repo, digest).await? {
                Some(referrers) => Ok(Found {
                    referrers,
                    cosign_tags: crate::engine::referrers::cosign_tags(tags, digest),
                }),
                None => crate::engine::referrers::by_tags(self, repo, digest, tags).await,
            }
        }
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move {
            // The registry checks size and digest, resuming or starting over in the file.
            let mut temp = tempfile::NamedTempFile::new().map_err(io_err(std::env::temp_dir()))?;
            self.registry
                .pull_blob_to_file(repo, desc, temp.as_file_mut())
                .await?;
            Ok(Blob::Temp(temp))
        }
        .boxed()
    }

    fn registry(&self) -> Option<&Registry> {
        Some(self.registry.as_ref())
    }
}

impl Sink for RegistryPlace {
    fn describe(&self) -> String {
        self.registry.host().to_string()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            match self.registry.manifest_digest(name).await {
                Ok(d) => Ok(d),
                Err(RegistryError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn existing_tags<'a>(&'a self, repo: &'a Reference) -> BoxFuture<'a, Result<Tags>> {
        async move {
            match self.registry.tags(repo).await {
                Ok(tags) => Ok(Tags::Listed(tags)),
                Err(RegistryError::NotFound { .. }) => Ok(Tags::NoRepository),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn current_manifest<'a>(
        &'a self,
        name: &'a Reference,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            match self.registry.manifest(name).await {
                Ok((bytes, _)) => Ok(Some(bytes)),
                Err(RegistryError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { Ok(self.registry.blob_exists(repo, digest).await?) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            self.registry
                .push_blob_file(repo, &desc.digest, desc.size, &|| {
                    let path = blob.path().display();
                    blob.open_file()
                        .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
                })
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn put_manifest<'a>(
        &'a self,
        name: &'a Reference,
        bytes: &'a [u8],
        media_type: &'a str,
    ) -> BoxFuture<'a, Result<Digest>> {
        async move { Ok(self.registry.push_manifest(name, bytes, media_type).await?) }.boxed()
    }

    /// A registry with the referrers API indexes a referrer's `subject` itself; any other
    /// gets the referrers tag schema.
    fn put_referrer<'a>(
        &'a self,
        repo: &'a Reference,
        subject: &'a Digest,
        referrer: &'a Descriptor,
        current: Option<Vec<u8>>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            if self.api_referrers(repo, subject).await?.is_some() {
                return Ok(None);
            }
            crate::engine::referrers::write_tag_schema(self, repo, subject, referrer, current).await
        }
        .boxed()
    }

    fn registry(&self) -> Option<&Registry> {
        Some(self.registry.as_ref())
    }
}

// ---- OCI image layouts: directories and archives ---------------------------------------

/// Reading a layout: a directory and an archive both can.
pub trait LayoutRead: Send + Sync {
    fn location(&self) -> &Path;
    fn layout_refs(&self) -> Result<Vec<LayoutRef>>;
    fn blob_reader(&self, digest: &Digest) -> Result<Box<dyn Read + '_>>;
    fn manifest_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>>;
    /// The blob `desc` describes, checked, as the bytes of a file where they are: nothing is
    /// unpacked or copied to be read.
    fn blob_in_place(&self, desc: &Descriptor) -> Result<Blob>;
}

impl LayoutRead for LayoutDir {
    fn location(&self) -> &Path {
        self.path()
    }
    fn layout_refs(&self) -> Result<Vec<LayoutRef>> {
        Ok(self.refs()?)
    }
    fn blob_reader(&self, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.open_blob(digest)?))
    }
    fn manifest_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        Ok(self.read_manifest(desc)?)
    }
    fn blob_in_place(&self, desc: &Descriptor) -> Result<Blob> {
        let (path, file) = self.blob_file(&desc.digest)?;
        let id = FileId::of(&file).map_err(io_err(&path))?;
        verify(
            std::io::BufReader::with_capacity(256 * 1024, file),
            desc,
            &path,
        )?;
        Ok(Blob::Region {
            path,
            offset: 0,
            size: desc.size,
            id,
        })
    }
}

impl LayoutRead for ArchiveReader {
    fn location(&self) -> &Path {
        self.path()
    }
    fn layout_refs(&self) -> Result<Vec<LayoutRef>> {
        Ok(self.refs())
    }
    fn blob_reader(&self, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.open_blob(digest)?))
    }
    fn manifest_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        Ok(self.read_manifest(desc)?)
    }
    fn blob_in_place(&self, desc: &Descriptor) -> Result<Blob> {
        let (offset, size) = self.blob_span(&desc.digest).ok_or_else(|| {
            EngineError::Layout(LayoutError::BlobMissing {
                path: self.path().to_path_buf(),
                digest: desc.digest.clone(),
            })
        })?;
        let entry = self.path().join("blobs/sha256").join(desc.digest.hex());
        if size != desc.size {
            return Err(EngineError::Unsupported {
                what: entry.display().to_string(),
                reason: format!("{size} bytes, where its descriptor says {}", desc.size),
            });
        }
        // The archive's reader checks the digest as it reaches the end: one pass, one hash.
        let blob = self.open_blob(&desc.digest)?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, blob);
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|e| LayoutError::from_io(&entry, e))?;
        Ok(Blob::Region {
            path: self.path().to_path_buf(),
            offset,
            size,
            id: FileId::of(self.file()).map_err(io_err(self.path()))?,
        })
    }
}

/// Writing a layout: a directory in place, an archive as a stream finished at the end.
pub trait LayoutWrite: Send {
    fn layout_refs(&self) -> Result<Vec<LayoutRef>>;
    fn contains(&self, digest: &Digest) -> bool;
    fn write_blob(&mut self, reader: &mut dyn Read, desc: &Descriptor) -> Result<()>;
    fn write_manifest(&mut self, bytes: &[u8], media_type: &str) -> Result<Descriptor>;
    fn write_ref(&mut self, name: &str, desc: &Descriptor) -> Result<()>;
    fn complete(self) -> Result<()>;
    /// A manifest already in the layout (`None` for a layout being written from scratch).
    fn written_manifest(&self, _desc: &Descriptor) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

impl LayoutWrite for LayoutDir {
    fn layout_refs(&self) -> Result<Vec<LayoutRef>> {
        Ok(self.refs()?)
    }
    fn contains(&self, digest: &Digest) -> bool {
        self.has_blob(digest)
    }
    fn write_blob(&mut self, reader: &mut dyn Read, desc: &Descriptor) -> Result<()> {
        self.put_blob(reader, desc)?;
        Ok(())
    }
    fn write_manifest(&mut self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        Ok(self.put_manifest(bytes, media_type)?)
    }
    fn write_ref(&mut self, name: &str, desc: &Descriptor) -> Result<()> {
        Ok(self.set_ref(name, desc)?)
    }
    fn complete(self) -> Result<()> {
        Ok(())
    }
    fn written_manifest(&self, desc: &Descriptor) -> Result<Option<Vec<u8>>> {
        Ok(Some(self.read_manifest(desc)?))
    }
}

impl LayoutWrite for ArchiveWriter {
    fn layout_refs(&self) -> Result<Vec<LayoutRef>> {
        Ok(self.refs())
    }
    fn contains(&self, digest: &Digest) -> bool {
        self.has_blob(digest)
    }
    fn write_blob(&mut self, reader: &mut dyn Read, desc: &Descriptor) -> Result<()> {
        self.put_blob(std::io::BufReader::with_capacity(256 * 1024, reader), desc)?;
        Ok(())
    }
    fn write_manifest(&mut self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        Ok(self.put_manifest(bytes, media_type)?)
    }
    fn write_ref(&mut self, name: &str, desc: &Descriptor) -> Result<()> {
        Ok(self.set_ref(name, desc)?)
    }
    fn complete(self) -> Result<()> {
        Ok(self.finish()?)
    }
}

/// Only the artifact `:REF` names, when one was given.
fn select(place: &PlaceName, all: Vec<(Reference, Descriptor)>) -> Result<Vec<Reference>> {
    let wanted = match place.reference() {
        Some(r) => Some(artifact_name(place.path(), r).ok_or_else(|| unnamed(place, r))?),
        None => None,
    };
    Ok(all
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| wanted.as_ref().is_none_or(|w| w == r))
        .collect())
}

/// The ref name written for `name`: the `:REF` the user gave for the layout, else the full
/// reference.
fn target_ref(place: &PlaceName, name: &Reference) -> String {
    place
        .reference()
        .map(str::to_string)
        .unwrap_or_else(|| ref_name(name))
}

/// A layout being read: `oci:DIR` or `oci-archive:FILE`.
pub struct LayoutSource<R> {
    layout: R,
    name: PlaceName,
}

impl LayoutSource<LayoutDir> {
    pub fn open_dir(name: PlaceName) -> Result<Self> {
        check_path(&name)?;
        Ok(LayoutSource {
            layout: LayoutDir::open(name.path())?,
            name,
        })
    }
}

impl LayoutSource<ArchiveReader> {
    pub fn open_archive(name: PlaceName) -> Result<Self> {
        check_path(&name)?;
        Ok(LayoutSource {
            layout: ArchiveReader::open(name.path())?,
            name,
        })
    }
}

impl<R: LayoutRead> LayoutSource<R> {
    /// Every artifact named in the layout (only `:REF`, when one was given).
    pub fn list(&self) -> Result<Vec<Reference>> {
        let refs = self.layout.layout_refs()?;
        // Every named entry is copied, or the sync says why not: none is left out unsaid.
        if self.name.reference().is_none()
            && let Some(name) = refs
                .iter()
                .filter_map(|r| r.name.as_deref())
                .find(|n| artifact_name(self.layout.location(), n).is_none())
        {
            return Err(unnamed(&self.name, name));
        }
        select(&self.name, named(self.layout.location(), refs))
    }

    fn manifest_now(&self, name: &Reference) -> Result<(Vec<u8>, Digest)> {
        let bytes = match name.digest() {
            Some(d) => read_small(
                self.layout.blob_reader(d)?,
                crate::layout::MAX_MANIFEST_SIZE,
                &name.to_string(),
            )?,
            None => {
                let desc = named(self.layout.location(), self.layout.layout_refs()?)
                    .into_iter()
                    .find(|(r, _)| r == name)
                    .map(|(_, d)| d)
                    .ok_or_else(|| not_found(&self.name.to_string(), name))?;
                self.layout.manifest_bytes(&desc)?
            }
        };
        let digest = Digest::of(&bytes);
        Ok((bytes, digest))
    }
}

impl<R: LayoutRead> Source for LayoutSource<R> {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn artifacts(&self) -> Result<Option<Vec<Reference>>> {
        self.list().map(Some)
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move { blocking(|| self.manifest_now(name)) }.boxed()
    }

    fn blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move { blocking(|| self.layout.blob_in_place(desc)) }.boxed()
    }
}

/// A layout being written: a directory (changed in place, each write atomic) or an archive
/// (streamed to a temporary file beside the target and renamed into place by
/// [`Sink::finish`]; dropped unfinished, it leaves nothing at the target). Writes take turns.
pub struct LayoutSink<W> {
    writer: Mutex<Option<W>>,
    name: PlaceName,
    /// The manifests written in this job, by digest (to name one later).
    manifests: Mutex<std::collections::HashMap<Digest, Descriptor>>,
}

impl LayoutSink<LayoutDir> {
    /// Opens a layout directory, creating it when `create` and it is missing.
    pub fn dir(name: PlaceName, create: bool) -> Result<Self> {
        check_path(&name)?;
        check_ref(&name)?;
        let dir = match create {
            true => LayoutDir::create(name.path())?,
            false => LayoutDir::open(name.path())?,
        };
        dir.remove_dead_partials();
        Ok(LayoutSink {
            writer: Mutex::new(Some(dir)),
            name,
            manifests: Mutex::default(),
        })
    }
}

impl LayoutSink<ArchiveWriter> {
    /// Starts a new archive (replacing the file at its path when finished).
    pub fn archive(name: PlaceName) -> Result<Self> {
        check_path(&name)?;
        check_ref(&name)?;
        Ok(LayoutSink {
            writer: Mutex::new(Some(ArchiveWriter::create(name.path())?)),
            name,
            manifests: Mutex::default(),
        })
    }
}

impl<W: LayoutWrite> LayoutSink<W> {
    fn with<T>(&self, f: impl FnOnce(&mut W) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(EngineError::Layout(LayoutError::Poisoned {
                path: self.name.path().to_path_buf(),
                reason: "the layout was already finished".into(),
            })),
        }
    }
}

impl<W: LayoutWrite> Sink for LayoutSink<W> {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            blocking(|| {
                self.with(|w| {
                    Ok(named(self.name.path(), w.layout_refs()?)
                        .into_iter()
                        .find(|(r, _)| r == name)
                        .map(|(_, d)| d.digest))
                })
            })
        }
        .boxed()
    }

    fn current_manifest<'a>(
        &'a self,
        name: &'a Reference,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            blocking(|| {
                self.with(|w| {
                    let found = named(self.name.path(), w.layout_refs()?)
                        .into_iter()
                        .find(|(r, _)| r == name);
                    match found {
                        Some((_, desc)) => w.written_manifest(&desc),
                        None => Ok(None),
                    }
                })
            })
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { self.with(|w| Ok(w.contains(digest))) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            blocking(|| {
                let mut file = blob.open()?;
                self.with(|w| w.write_blob(&mut file, desc))
            })
        }
        .boxed()
    }

    fn put_manifest<'a>(
        &'a self,
        name: &'a Reference,
        bytes: &'a [u8],
        media_type: &'a str,
    ) -> BoxFuture<'a, Result<Digest>> {
        async move {
            blocking(|| {
                self.with(|w| {
                    let desc = w.write_manifest(bytes, media_type)?;
                    if name.tag().is_some() {
                        w.write_ref(&target_ref(&self.name, name), &desc)?;
                    }
                    self.manifests
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(desc.digest.clone(), desc.clone());
                    Ok(desc.digest)
                })
            })
        }
        .boxed()
    }

    fn name_artifact<'a>(
        &'a self,
        name: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let desc = self
                .manifests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(digest)
                .cloned()
                .ok_or_else(|| not_found(&self.name.to_string(), name))?;
            blocking(|| self.with(|w| w.write_ref(&target_ref(&self.name, name), &desc)))
        }
        .boxed()
    }

    fn finish(&self) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        match writer {
            Some(w) => blocking(|| w.complete()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_names() {
        assert_eq!(
            PlaceName::parse("oci:/tmp/x:reg.example.com/a/b:1.0"),
            Some(PlaceName::Layout {
                path: "/tmp/x".into(),
                reference: Some("reg.example.com/a/b:1.0".into())
            })
        );
        assert_eq!(
            PlaceName::parse("oci-archive:app.tar"),
            Some(PlaceName::Archive {
                path: "app.tar".into(),
                reference: None
            })
        );
        assert_eq!(PlaceName::parse("cache:"), None);
        assert_eq!(PlaceName::parse("reg.example.com/a"), None);
    }

    #[test]
    fn layout_names_round_trip() {
        let r = Reference::parse("localhost:5000/charts/app:1.0.0").unwrap();
        assert_eq!(artifact_name(Path::new("x"), &ref_name(&r)), Some(r));
        let pinned = format!("localhost:5000/team/web@{}", Digest::of(b"x"));
        let pinned = Reference::parse(&pinned).unwrap();
        assert_eq!(
            artifact_name(Path::new("x"), &ref_name(&pinned)),
            Some(pinned)
        );
        let skopeo = artifact_name(Path::new("/tmp/My App.tar"), "latest").unwrap();
        assert_eq!(skopeo.to_string(), "localhost/my-app:latest");
        let name = |n: &str| artifact_name(Path::new("app.tar"), n).map(|r| r.to_string());
        assert_eq!(
            name("team/web:1.0").as_deref(),
            Some("localhost/team/web:1.0")
        );
        assert_eq!(
            name("1.1.0+build.7").as_deref(),
            Some("localhost/app:1.1.0_build.7")
        );
        for bad in ["x@y", "has space", ".dot", "-dash", "a/b", ""] {
            assert_eq!(name(bad), None, "{bad}");
        }
    }
}
