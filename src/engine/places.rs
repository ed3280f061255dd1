//! The places of the copy engine: a registry, an OCI image layout directory (`oci:DIR[:REF]`)
//! and an OCI archive (`oci-archive:FILE[:REF]`), each a [`Source`], a [`Sink`] or both.
//!
//! Layout files are read and written with blocking I/O (`std::fs`, the `tar` format), inside
//! `block_in_place` so the runtime's other tasks go on. Blobs leaving a registry or an archive
//! are spooled to a temporary file through a hash and checked before a sink sees them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Blob, EngineError, Result, Sink, Source, io_err};
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

/// The artifact a layout's ref name stands for: a full reference with a tag as written by
/// [`ref_name`], else (skopeo's `oci:DIR:latest`) `localhost/<layout name>:<ref>`.
pub fn artifact_name(layout: &Path, name: &str) -> Option<Reference> {
    let looks_like_a_host = |h: &str| h.contains(['.', ':']) || h == "localhost";
    if let Ok(r) = Reference::parse(name)
        && r.tag().is_some()
        && r.digest().is_none()
        && looks_like_a_host(r.host())
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
    Reference::parse(&format!("localhost/{stem}:{name}")).ok()
}

/// The refs of a layout as artifact names, each with its descriptor.
fn named(layout: &Path, refs: Vec<LayoutRef>) -> Vec<(Reference, Descriptor)> {
    refs.into_iter()
        .filter_map(|r| {
            let name = r.name.as_deref()?;
            Some((artifact_name(layout, name)?, r.descriptor))
        })
        .collect()
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Copies `reader` (which verifies itself) into a temporary file, and checks size and digest
/// once more on the way, so the sink gets a file that is known good.
fn spool(mut reader: impl Read, desc: &Descriptor) -> Result<Blob> {
    let temp = tempfile::NamedTempFile::new().map_err(io_err(std::env::temp_dir()))?;
    let path = temp.path().to_path_buf();
    let mut writer = HashingWriter::new(std::io::BufWriter::with_capacity(256 * 1024, temp));
    std::io::copy(&mut reader, &mut writer).map_err(io_err(&path))?;
    let (buffered, digest, size) = writer.finish();
    let temp = buffered
        .into_inner()
        .map_err(|e| io_err(&path)(e.into_error()))?;
    check(desc, &digest, size, &path)?;
    Ok(Blob::Temp(temp))
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
pub struct RegistryPlace<'r> {
    pub registry: &'r Registry,
}

impl Source for RegistryPlace<'_> {
    fn describe(&self) -> String {
        self.registry.host().to_string()
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move { Ok(self.registry.manifest(name).await?) }.boxed()
    }

    fn blob<'a>(
        &'a self,
        repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move {
            let temp = tempfile::NamedTempFile::new().map_err(io_err(std::env::temp_dir()))?;
            let path = temp.path().to_path_buf();
            let mut writer = HashingWriter::new(std::io::BufWriter::new(temp));
            self.registry.pull_blob(repo, desc, &mut writer).await?;
            writer.flush().map_err(io_err(&path))?;
            let (buffered, digest, size) = writer.finish();
            let temp = buffered
                .into_inner()
                .map_err(|e| io_err(&path)(e.into_error()))?;
            check(desc, &digest, size, &path)?;
            Ok(Blob::Temp(temp))
        }
        .boxed()
    }

    fn registry(&self) -> Option<&Registry> {
        Some(self.registry)
    }
}

impl Sink for RegistryPlace<'_> {
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
                .push_blob_file(repo, &desc.digest, desc.size, blob.path())
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

    fn registry(&self) -> Option<&Registry> {
        Some(self.registry)
    }
}

// ---- OCI image layout directory ------------------------------------------------------

/// An OCI image layout directory, as a source and a sink.
pub struct LayoutPlace {
    dir: LayoutDir,
    name: PlaceName,
}

impl LayoutPlace {
    /// Opens an existing layout (a source).
    pub fn open(name: PlaceName) -> Result<Self> {
        Ok(LayoutPlace {
            dir: LayoutDir::open(name.path())?,
            name,
        })
    }

    /// Opens a layout, creating it if it is missing (a sink).
    pub fn create(name: PlaceName) -> Result<Self> {
        Ok(LayoutPlace {
            dir: LayoutDir::create(name.path())?,
            name,
        })
    }

    /// Every artifact named in the layout (only `:REF` when one was given).
    pub fn list(&self) -> Result<Vec<Reference>> {
        let all = named(self.dir.path(), self.dir.refs()?);
        Ok(select(&self.name, all))
    }

    fn descriptor(&self, name: &Reference) -> Result<Descriptor> {
        named(self.dir.path(), self.dir.refs()?)
            .into_iter()
            .find(|(r, _)| r == name)
            .map(|(_, d)| d)
            .ok_or_else(|| not_found(&self.name.to_string(), name))
    }
}

/// Only the artifact `:REF` names, when one was given.
fn select(place: &PlaceName, all: Vec<(Reference, Descriptor)>) -> Vec<Reference> {
    let wanted = place
        .reference()
        .and_then(|r| artifact_name(place.path(), r));
    all.into_iter()
        .map(|(r, _)| r)
        .filter(|r| wanted.as_ref().is_none_or(|w| w == r))
        .collect()
}

impl Source for LayoutPlace {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn artifacts(&self) -> Option<Vec<Reference>> {
        self.list().ok()
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move {
            blocking(|| {
                let bytes = match name.digest() {
                    Some(d) => {
                        let reader = self.dir.open_blob(d)?;
                        read_small(reader, crate::layout::MAX_MANIFEST_SIZE, &name.to_string())?
                    }
                    None => self.dir.read_manifest(&self.descriptor(name)?)?,
                };
                let digest = Digest::of(&bytes);
                Ok((bytes, digest))
            })
        }
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move { blocking(|| spool(self.dir.open_blob(&desc.digest)?, desc)) }.boxed()
    }
}

impl Sink for LayoutPlace {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            blocking(|| match self.descriptor(name) {
                Ok(d) => Ok(Some(d.digest)),
                Err(EngineError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            })
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { Ok(self.dir.has_blob(digest)) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            blocking(|| {
                self.dir.put_blob(blob.open()?, desc)?;
                Ok(())
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
                let desc = self.dir.put_manifest(bytes, media_type)?;
                if name.tag().is_some() {
                    self.dir.set_ref(&target_ref(&self.name, name), &desc)?;
                }
                Ok(desc.digest)
            })
        }
        .boxed()
    }
}

/// The ref name written for `name`: the `:REF` the user gave for the layout, else the full
/// reference.
fn target_ref(place: &PlaceName, name: &Reference) -> String {
    place
        .reference()
        .map(str::to_string)
        .unwrap_or_else(|| ref_name(name))
}

// ---- OCI archive --------------------------------------------------------------------

/// An OCI archive being read.
pub struct ArchiveSource {
    reader: ArchiveReader,
    name: PlaceName,
}

impl ArchiveSource {
    pub fn open(name: PlaceName) -> Result<Self> {
        Ok(ArchiveSource {
            reader: ArchiveReader::open(name.path())?,
            name,
        })
    }

    pub fn list(&self) -> Vec<Reference> {
        select(&self.name, named(self.reader.path(), self.reader.refs()))
    }
}

impl Source for ArchiveSource {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn artifacts(&self) -> Option<Vec<Reference>> {
        Some(self.list())
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move {
            blocking(|| {
                let bytes = match name.digest() {
                    Some(d) => {
                        let reader = self.reader.open_blob(d)?;
                        read_small(reader, crate::layout::MAX_MANIFEST_SIZE, &name.to_string())?
                    }
                    None => {
                        let desc = named(self.reader.path(), self.reader.refs())
                            .into_iter()
                            .find(|(r, _)| r == name)
                            .map(|(_, d)| d)
                            .ok_or_else(|| not_found(&self.name.to_string(), name))?;
                        self.reader.read_manifest(&desc)?
                    }
                };
                let digest = Digest::of(&bytes);
                Ok((bytes, digest))
            })
        }
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move { blocking(|| spool(self.reader.open_blob(&desc.digest)?, desc)) }.boxed()
    }
}

/// An OCI archive being written: streamed to a temporary file beside the target and renamed
/// into place by [`Sink::finish`]; dropped unfinished, it leaves nothing at the target.
pub struct ArchiveSink {
    writer: Mutex<Option<ArchiveWriter>>,
    name: PlaceName,
}

impl ArchiveSink {
    pub fn create(name: PlaceName) -> Result<Self> {
        Ok(ArchiveSink {
            writer: Mutex::new(Some(ArchiveWriter::create(name.path())?)),
            name,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut ArchiveWriter) -> Result<T>) -> Result<T> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(EngineError::Layout(LayoutError::Poisoned {
                path: self.name.path().to_path_buf(),
                reason: "the archive was already finished".into(),
            })),
        }
    }
}

impl Sink for ArchiveSink {
    fn describe(&self) -> String {
        self.name.to_string()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            self.with(|w| {
                Ok(named(self.name.path(), w.refs())
                    .into_iter()
                    .find(|(r, _)| r == name)
                    .map(|(_, d)| d.digest))
            })
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { self.with(|w| Ok(w.has_blob(digest))) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            blocking(|| {
                let file = blob.open()?;
                self.with(|w| {
                    w.put_blob(std::io::BufReader::with_capacity(256 * 1024, file), desc)?;
                    Ok(())
                })
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
                    let desc = w.put_manifest(bytes, media_type)?;
                    if name.tag().is_some() {
                        w.set_ref(&target_ref(&self.name, name), &desc)?;
                    }
                    Ok(desc.digest)
                })
            })
        }
        .boxed()
    }

    fn finish(&self) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        match writer {
            Some(w) => blocking(|| Ok(w.finish()?)),
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
        let skopeo = artifact_name(Path::new("/tmp/My App.tar"), "latest").unwrap();
        assert_eq!(skopeo.to_string(), "localhost/my-app:latest");
    }
}
