//! OCI image layouts outside the cache: `oci:DIR[:REF]` (a layout directory, as skopeo and oras
//! write it) and `oci-archive:FILE[:REF]` (the same layout as a plain tar, as `skopeo copy
//! oci-archive:` reads and writes it).
//!
//! They exist so that every place chartcache copies artifacts between (registry, cache, layout
//! directory, layout archive) is both a source and a sink. This module only knows the on-disk
//! formats; it has no idea of charts, registries or the CLI.
//!
//! What these files hold is outside input, treated like a registry's answers: every read is
//! size-capped ([`MAX_INDEX_SIZE`], [`MAX_MANIFEST_SIZE`], [`MAX_OCI_LAYOUT_SIZE`]), every blob
//! is verified against its digest as it streams, blob paths are only ever built from a parsed
//! [`Digest`] (`blobs/sha256/<64 lowercase hex>`), and a symlink in a layout directory that
//! leads outside it is refused. Every write is atomic: a temp file next to its target, then a
//! rename.
//!
//! - [`dir::LayoutDir`]: read and write a layout directory.
//! - [`archive::ArchiveReader`]: read a layout tar in place (headers scanned once, blobs read
//!   as byte ranges of the file, nothing unpacked).
//! - [`archive::ArchiveWriter`]: write a layout tar as a stream into a temp file, renamed into
//!   place by [`archive::ArchiveWriter::finish`].

pub mod archive;
pub mod dir;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::{Digest, HashingReader};
use crate::oci::{ANNOTATION_REF_NAME, Descriptor, INDEX_MEDIA_TYPE};

pub use archive::{ArchiveReader, ArchiveWriter};
pub use dir::LayoutDir;

/// The most `index.json` may weigh.
pub const MAX_INDEX_SIZE: u64 = 64 << 20;
/// The most a manifest (or image index) blob may weigh, as registries cap them.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The most the `oci-layout` file may weigh.
pub const MAX_OCI_LAYOUT_SIZE: u64 = 4 << 10;
/// The most tar headers an archive may have (extension headers included).
pub const MAX_ARCHIVE_ENTRIES: u64 = 1_000_000;

/// The file naming the layout version.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's entry point.
pub const INDEX_FILE: &str = "index.json";
/// The only layout version there is.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// Why a layout directory or archive could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not an OCI image layout (no oci-layout file)", path.display())]
    NotALayout { path: PathBuf },
    #[error("{}: not an OCI image layout marker: {reason}", path.display())]
    BadLayoutFile { path: PathBuf, reason: String },
    #[error(
        "{}: unsupported imageLayoutVersion {version:?} (only {LAYOUT_VERSION} is supported)",
        path.display()
    )]
    LayoutVersion { path: PathBuf, version: String },
    #[error("{}: not an OCI image layout index: {reason}", path.display())]
    BadIndex { path: PathBuf, reason: String },
    #[error("{}: no {INDEX_FILE} (an OCI image layout needs one)", path.display())]
    NoIndex { path: PathBuf },
    #[error("{}: {what} is {size} bytes, more than the {limit}-byte limit", path.display())]
    TooLarge {
        path: PathBuf,
        what: String,
        size: u64,
        limit: u64,
    },
    #[error("{}: no manifest is named {name:?} (names here: {available})", path.display())]
    RefNotFound {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error(
        "{}: {count} manifests match{}; name one as :REF (names here: {available})",
        path.display(),
        name.as_ref().map(|n| format!(" {n:?}")).unwrap_or_default()
    )]
    AmbiguousRef {
        path: PathBuf,
        name: Option<String>,
        count: usize,
        available: String,
    },
    #[error("{}: the layout index lists no manifests", path.display())]
    Empty { path: PathBuf },
    #[error("{}: invalid ref name {name:?}: {reason}", path.display())]
    BadRefName {
        path: PathBuf,
        name: String,
        reason: &'static str,
    },
    #[error("{}: blob {digest} is not in the layout", path.display())]
    BlobMissing { path: PathBuf, digest: Digest },
    #[error(
        "{}: leads outside the layout (a symlink?); refusing to read or write through it",
        path.display()
    )]
    OutsideLayout { path: PathBuf },
    #[error("{}: not a regular file", path.display())]
    NotRegularFile { path: PathBuf },
    #[error(
        "{}: content does not match {expected} ({expected_size} bytes): read {actual_size} bytes with digest {actual}",
        path.display()
    )]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },
    #[error("{}: archive entry {entry:?} is not allowed in an OCI image layout: {reason}", path.display())]
    BadEntry {
        path: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error("{}: archive entry {entry:?} appears twice{detail}", path.display())]
    DuplicateEntry {
        path: PathBuf,
        entry: String,
        detail: String,
    },
    #[error("{}: more than {limit} tar entries", path.display())]
    TooManyEntries { path: PathBuf, limit: u64 },
    #[error("{}: corrupt tar archive: {reason}", path.display())]
    CorruptArchive { path: PathBuf, reason: String },
    #[error(
        "{}: an earlier write failed ({reason}); the archive was not written",
        path.display()
    )]
    Poisoned { path: PathBuf, reason: String },
}

impl LayoutError {
    /// This error as an `io::Error` (kind `InvalidData`), for [`Read`] implementations; the
    /// original stays reachable through `get_ref`/`into_inner`.
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// An error from reading `path`: the layout error a reader of this module raised, as it
    /// was (it names its path already), else the I/O error at `path`.
    pub fn from_io(path: &Path, error: io::Error) -> LayoutError {
        match error.downcast::<LayoutError>() {
            Ok(layout) => layout,
            Err(source) => LayoutError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

pub type Result<T, E = LayoutError> = std::result::Result<T, E>;

/// A closure that wraps an `io::Error` with the path it happened on (a layout error a reader
/// raised stays as it was: it names its path already).
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::from_io(path, source)
}

/// One entry of a layout's `index.json`: a manifest (or image index) and its ref name, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The `org.opencontainers.image.ref.name` annotation: the REF of `oci:DIR:REF`.
    pub name: Option<String>,
    /// The entry as a descriptor (its annotations included).
    pub descriptor: Descriptor,
}

/// `oci-layout`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: String,
}

/// The bytes of a fresh `oci-layout` file.
fn layout_marker_bytes() -> Vec<u8> {
    format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").into_bytes()
}

/// Checks an `oci-layout` file's contents.
fn check_layout_marker(path: &Path, bytes: &[u8]) -> Result<()> {
    let marker: LayoutMarker =
        serde_json::from_slice(bytes).map_err(|e| LayoutError::BadLayoutFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if marker.image_layout_version != LAYOUT_VERSION {
        return Err(LayoutError::LayoutVersion {
            path: path.to_path_buf(),
            version: marker.image_layout_version,
        });
    }
    Ok(())
}

/// `index.json`, with whatever it holds beyond what we use kept as is, so rewriting it after a
/// ref change loses nothing another tool put there (platforms, annotations, subject…).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// One descriptor in `index.json`, unknown fields (`platform`, `artifactType`…) kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// Go writes an empty slice or map as `null`.
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Index {
    fn new() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// Parses and checks `index.json` (the caller capped its size).
    fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| LayoutError::BadIndex {
            path: path.to_path_buf(),
            reason,
        };
        let index: Index = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if index.schema_version != 2 {
            return Err(bad(format!(
                "schemaVersion {} (expected 2)",
                index.schema_version
            )));
        }
        if let Some(mt) = &index.media_type
            && mt != INDEX_MEDIA_TYPE
        {
            return Err(bad(format!(
                "mediaType {mt:?} (expected {INDEX_MEDIA_TYPE})"
            )));
        }
        Ok(index)
    }

    fn to_bytes(&self) -> Vec<u8> {
        // Plain data with string keys: serializing it cannot fail, and writing an empty
        // index instead would lose every ref.
        serde_json::to_vec(self).expect("an index always serializes")
    }

    fn refs(&self) -> Vec<LayoutRef> {
        self.manifests
            .iter()
            .map(|e| LayoutRef {
                name: e.annotations.get(ANNOTATION_REF_NAME).cloned(),
                descriptor: Descriptor {
                    media_type: e.media_type.clone(),
                    digest: e.digest.clone(),
                    size: e.size,
                    annotations: e.annotations.clone(),
                    artifact_type: e
                        .extra
                        .get("artifactType")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                },
            })
            .collect()
    }

    /// The entry `name` designates, or with no name the only entry, as skopeo resolves
    /// `oci:DIR:REF` and `oci:DIR`. Several entries of one name are accepted only when they
    /// all point at the same manifest.
    fn resolve(&self, path: &Path, name: Option<&str>) -> Result<Descriptor> {
        let refs = self.refs();
        let available = || {
            let names: Vec<String> = refs
                .iter()
                .map(|r| match &r.name {
                    Some(n) => format!("{n:?}"),
                    None => format!("(unnamed {})", r.descriptor.digest),
                })
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let matching: Vec<&LayoutRef> = match name {
            Some(n) => refs
                .iter()
                .filter(|r| r.name.as_deref() == Some(n))
                .collect(),
            None => refs.iter().collect(),
        };
        match matching.as_slice() {
            [] => match name {
                Some(n) => Err(LayoutError::RefNotFound {
                    path: path.to_path_buf(),
                    name: n.to_string(),
                    available: available(),
                }),
                None => Err(LayoutError::Empty {
                    path: path.to_path_buf(),
                }),
            },
            [first, rest @ ..]
                if rest
                    .iter()
                    .all(|r| r.descriptor.digest == first.descriptor.digest && name.is_some()) =>
            {
                Ok(first.descriptor.clone())
            }
            many => Err(LayoutError::AmbiguousRef {
                path: path.to_path_buf(),
                name: name.map(str::to_string),
                count: many.len(),
                available: available(),
            }),
        }
    }

    /// Adds `descriptor` under `name`, replacing every entry of that name.
    fn set_ref(&mut self, name: &str, descriptor: &Descriptor) {
        let mut annotations = descriptor.annotations.clone();
        annotations.insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
        let entry = IndexEntry {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            annotations,
            extra: serde_json::Map::new(),
        };
        match self
            .manifests
            .iter()
            .position(|e| e.ref_name() == Some(name))
        {
            Some(at) => {
                self.manifests[at] = entry;
                let mut i = at + 1;
                while i < self.manifests.len() {
                    if self.manifests[i].ref_name() == Some(name) {
                        self.manifests.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.manifests.push(entry),
        }
    }

    /// Removes every entry named `name`; whether there was one.
    fn remove_ref(&mut self, name: &str) -> bool {
        let before = self.manifests.len();
        self.manifests.retain(|e| e.ref_name() != Some(name));
        self.manifests.len() != before
    }
}

impl IndexEntry {
    fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }
}

/// Checks a ref name against the image-spec grammar for `org.opencontainers.image.ref.name`
/// (`component ("/" component)*`, a component alphanumerics joined by one of `-._:@+` or
/// `--`), which is also what skopeo accepts as the REF of `oci:DIR:REF`.
pub fn check_ref_name(path: &Path, name: &str) -> Result<()> {
    let bad = |reason| LayoutError::BadRefName {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 4096 {
        return Err(bad("it is longer than 4096 bytes"));
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(bad("it has an empty path component"));
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(bad(
                "each component must start and end with a letter or digit",
            ));
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let sep_len = if bytes[i..].starts_with(b"--") {
                2
            } else if b"-._:@+".contains(&b) {
                1
            } else {
                return Err(bad(
                    "only letters, digits, '/' and the separators - . _ : @ + are allowed",
                ));
            };
            i += sep_len;
            if !bytes.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                return Err(bad("separators must sit between letters or digits"));
            }
        }
    }
    Ok(())
}

/// Opens `real` for reading, refusing anything but a regular file without blocking on a FIFO;
/// with `no_follow`, a symlink at the last step is refused too. Errors name `path`.
fn open_regular(path: &Path, real: &Path, no_follow: bool) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if no_follow {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        options.custom_flags(flags.bits() as i32);
    }
    #[cfg(not(unix))]
    let _ = no_follow;
    let file = options.open(real).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.is_file() {
        return Err(LayoutError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Reads at most `limit` bytes of `r`, failing with [`LayoutError::TooLarge`] past that.
fn read_capped(mut r: impl Read, path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut r)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > limit {
        return Err(LayoutError::TooLarge {
            path: path.to_path_buf(),
            what: what.to_string(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

/// Checks that `bytes` are the content `desc` describes, manifest size cap included.
fn check_manifest_bytes(path: &Path, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of(bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(LayoutError::DigestMismatch {
            path: path.to_path_buf(),
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Refuses a manifest descriptor over [`MAX_MANIFEST_SIZE`] before anything is read.
fn check_manifest_size(path: &Path, size: u64) -> Result<()> {
    if size > MAX_MANIFEST_SIZE {
        return Err(LayoutError::TooLarge {
            path: path.to_path_buf(),
            what: "manifest".to_string(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    Ok(())
}

/// A blob being read: yields at most its recorded size and, at the end, fails with
/// [`LayoutError::DigestMismatch`] (inside an `io::Error` of kind `InvalidData`) unless what
/// went through has the expected digest and size. Only a read that returned `Ok(0)` has been
/// verified.
pub struct BlobReader<R> {
    inner: Option<HashingReader<io::Take<R>>>,
    path: PathBuf,
    expected: Digest,
    size: u64,
    /// Set once the end was reached and found wrong: every later read fails again.
    failed: Option<(Digest, u64)>,
}

impl<R: Read> BlobReader<R> {
    fn new(inner: R, path: PathBuf, expected: Digest, size: u64) -> Self {
        BlobReader {
            inner: Some(HashingReader::new(inner.take(size))),
            path,
            expected,
            size,
            failed: None,
        }
    }

    /// The blob's size as the layout records it (file size, or tar header size).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest the content is checked against.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    fn mismatch(&self, actual: Digest, actual_size: u64) -> io::Error {
        LayoutError::DigestMismatch {
            path: self.path.clone(),
            expected: self.expected.clone(),
            expected_size: self.size,
            actual,
            actual_size,
        }
        .into_io()
    }
}

impl<R: Read> Read for BlobReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((actual, n)) = &self.failed {
            return Err(self.mismatch(actual.clone(), *n));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let Some(done) = self.inner.take() else {
            return Ok(0);
        };
        let (actual, read) = done.finish();
        if actual != self.expected || read != self.size {
            self.failed = Some((actual.clone(), read));
            return Err(self.mismatch(actual, read));
        }
        Ok(0)
    }
}

/// A temp file changed this recently is left alone: its writer may have made it and not yet
/// locked it.
const PARTIAL_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Deletes the `PREFIX*` files in `dir` (other than `keep`) that no live writer holds locked
/// (and that did not change in the last [`PARTIAL_GRACE`]). Best effort: a file that cannot be
/// opened or removed is left.
pub(crate) fn remove_dead_partials(dir: &Path, prefix: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix));
        if !ours || path == keep || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let settled = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= PARTIAL_GRACE));
        if settled
            && let Ok(file) = std::fs::File::open(&path)
            && file.try_lock().is_ok()
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_follow_the_image_spec_grammar() {
        let p = Path::new("L");
        for ok in [
            "1.0.0",
            "latest",
            "a",
            "localhost:5000/charts/nginx:1.2.3",
            "v1--rc",
            "x@y+z_w",
        ] {
            assert!(check_ref_name(p, ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-a", "a-", "a//b", "/a", "a/", "a b", "a..b", "a\nb", "ü", "a---b",
        ] {
            assert!(check_ref_name(p, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blob_reader_checks_digest_and_size_at_the_end() {
        let data = b"hello world";
        let good = Digest::of(data);
        let mut r = BlobReader::new(&data[..], "b".into(), good.clone(), data.len() as u64);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        let mut r = BlobReader::new(&data[..], "b".into(), Digest::of(b"x"), data.len() as u64);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(r.read(&mut [0; 4]).is_err(), "stays failed");

        // Shorter than recorded: refused even with the right digest of what was there.
        let mut r = BlobReader::new(&data[..5], "b".into(), Digest::of(&data[..5]), 11);
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn index_keeps_unknown_fields_and_other_entries() {
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{d1}","size":1,"platform":{{"os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"a","x":"y"}}}}],"annotations":{{"k":"v"}}}}"#
        );
        let mut index = Index::parse(Path::new("i"), json.as_bytes()).unwrap();
        index.set_ref("b", &Descriptor::new("m", d2.clone(), 1));
        let out = String::from_utf8(index.to_bytes()).unwrap();
        assert!(out.contains(r#""platform":{"os":"linux"}"#), "{out}");
        assert!(out.contains(r#""x":"y""#), "{out}");
        assert!(out.contains(r#""annotations":{"k":"v"}"#), "{out}");
        let again = Index::parse(Path::new("i"), out.as_bytes()).unwrap();
        assert_eq!(again.resolve(Path::new("i"), Some("b")).unwrap().digest, d2);
        assert_eq!(again.resolve(Path::new("i"), Some("a")).unwrap().digest, d1);
        assert!(matches!(
            again.resolve(Path::new("i"), None),
            Err(LayoutError::AmbiguousRef { count: 2, .. })
        ));
        assert!(matches!(
            again.resolve(Path::new("i"), Some("c")),
            Err(LayoutError::RefNotFound { .. })
        ));
    }

    #[test]
    fn index_accepts_go_nulls_and_refuses_other_types() {
        let p = Path::new("i");
        let index = Index::parse(p, br#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        assert!(matches!(
            index.resolve(p, None),
            Err(LayoutError::Empty { .. })
        ));
        let err =
            Index::parse(p, br#"{"schemaVersion":2,"mediaType":"x","manifests":[]}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("i: not an OCI image layout index"),
            "{err}"
        );
        assert!(Index::parse(p, br#"{"schemaVersion":1,"manifests":[]}"#).is_err());
        assert!(Index::parse(p, b"[]").is_err());
    }
}
