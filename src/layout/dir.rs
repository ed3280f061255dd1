//! An OCI image layout directory (`oci:DIR[:REF]`): `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`, read and written the way skopeo and oras do, so chartcache can copy
//! artifacts to and from one.
//!
//! The directory is outside input. Paths inside it are only built from a parsed [`Digest`] or
//! the two fixed file names; every file is opened through [`LayoutDir::open_inside`], which
//! refuses anything that resolves outside the layout (a symlink leading out), anything that
//! is a symlink at the last step, and anything that is not a regular file (a FIFO would block).
//!
//! Writes are atomic, each a temp file in the directory it lands in, fsynced, then renamed:
//! a crash leaves at worst a `.partial-*` file, never a partial blob, and `index.json` is
//! the old one or the new one. Two processes changing refs of one layout at once are not
//! serialized (neither are skopeo's writes): the last `index.json` written wins.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{
    BlobReader, INDEX_FILE, Index, LayoutError, LayoutRef, MAX_INDEX_SIZE, MAX_OCI_LAYOUT_SIZE,
    OCI_LAYOUT_FILE, Result, check_layout_marker, check_manifest_bytes, check_manifest_size,
    check_ref_name, io_err, layout_marker_bytes, open_regular, read_capped,
};
use crate::digest::{Digest, HashingWriter};
use crate::oci::Descriptor;

/// An OCI image layout directory, opened or created.
#[derive(Debug, Clone)]
pub struct LayoutDir {
    /// The path as given, for messages.
    root: PathBuf,
    /// The path with every symlink resolved: what everything read must stay under.
    real_root: PathBuf,
}

impl LayoutDir {
    /// Opens an existing layout: `oci-layout` must say version 1.0.0 and `index.json` must
    /// parse as an image index.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        let real_root = fs::canonicalize(&root).map_err(io_err(&root))?;
        let dir = LayoutDir { root, real_root };
        dir.check_marker()?;
        dir.read_index()?;
        Ok(dir)
    }

    /// Opens the layout at `path`, creating the directory, `oci-layout` and an empty
    /// `index.json` as far as they are missing. An existing layout is kept as it is.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        let real_root = fs::canonicalize(&root).map_err(io_err(&root))?;
        let dir = LayoutDir { root, real_root };
        let marker = dir.root.join(OCI_LAYOUT_FILE);
        if fs::symlink_metadata(&marker).is_ok() {
            dir.check_marker()?;
        } else {
            dir.write_atomic(&dir.root, &marker, &layout_marker_bytes())?;
        }
        let index = dir.root.join(INDEX_FILE);
        if fs::symlink_metadata(&index).is_ok() {
            dir.read_index()?;
        } else {
            dir.write_atomic(&dir.root, &index, &Index::new().to_bytes())?;
        }
        Ok(dir)
    }

    /// The layout's path, as given.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Every `index.json` entry with its ref name (the REF of `oci:DIR:REF`), in file order.
    pub fn refs(&self) -> Result<Vec<LayoutRef>> {
        Ok(self.read_index()?.refs())
    }

    /// The manifest `name` designates or, with no name, the only one (as skopeo reads
    /// `oci:DIR`); an error names the refs there are when it is missing or ambiguous.
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor> {
        self.read_index()?
            .resolve(&self.root.join(INDEX_FILE), name)
    }

    /// Whether the blob is present (a regular file inside the layout).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.open_inside(&self.blob_path(digest)).is_ok()
    }

    /// Opens a blob; the reader fails at its end unless the content matches `digest`.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader<File>> {
        let path = self.blob_path(digest);
        let file = self.open_inside(&path).map_err(|e| match e {
            LayoutError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                LayoutError::BlobMissing {
                    path: self.root.clone(),
                    digest: digest.clone(),
                }
            }
            e => e,
        })?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        Ok(BlobReader::new(file, path, digest.clone(), size))
    }

    /// The bytes of the manifest (or image index) `desc` describes, checked against its
    /// digest and size; refused unread over [`super::MAX_MANIFEST_SIZE`].
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let path = self.blob_path(&desc.digest);
        check_manifest_size(&path, desc.size)?;
        let reader = self.open_blob(&desc.digest)?;
        let bytes = read_capped(reader, &path, "manifest", desc.size)?;
        check_manifest_bytes(&path, desc, &bytes)?;
        Ok(bytes)
    }

    /// Writes a blob from `reader`, hashing while copying. Refuses (and keeps nothing) unless
    /// the content has `expected`'s digest and size. A blob already present is not read
    /// again: returns whether anything was written.
    pub fn put_blob(&self, reader: impl Read, expected: &Descriptor) -> Result<bool> {
        if self.has_blob(&expected.digest) {
            return Ok(false);
        }
        let blobs = self.blobs_dir()?;
        let temp = temp_in(&blobs)?;
        let temp_path = temp.path().to_path_buf();
        let mut out = HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp));
        // One byte more than expected, to notice a source that is too long.
        let copied = io::copy(&mut reader.take(expected.size.saturating_add(1)), &mut out);
        let (buffered, actual, written) = out.finish();
        let temp = buffered
            .into_inner()
            .map_err(|e| io_err(&temp_path)(e.into_error()))?;
        match copied {
            Ok(_) => {}
            Err(e) => {
                return Err(LayoutError::Io {
                    path: self.blob_path(&expected.digest),
                    source: e,
                });
            }
        }
        if actual != expected.digest || written != expected.size {
            return Err(LayoutError::DigestMismatch {
                path: self.blob_path(&expected.digest),
                expected: expected.digest.clone(),
                expected_size: expected.size,
                actual,
                actual_size: written,
            });
        }
        self.commit(temp, &self.blob_path(&expected.digest))?;
        Ok(true)
    }

    /// Stores a manifest (or image index) and returns its descriptor.
    pub fn put_manifest(&self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        let desc = Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64);
        check_manifest_size(&self.blob_path(&desc.digest), desc.size)?;
        self.put_blob(bytes, &desc)?;
        Ok(desc)
    }

    /// Names `descriptor` `name` in `index.json` (mediaType, digest, size and its
    /// annotations, plus the ref name), replacing the entry of that name if there is one and
    /// keeping every other entry as it was. The blob must be in the layout already.
    pub fn set_ref(&self, name: &str, descriptor: &Descriptor) -> Result<()> {
        let index_path = self.root.join(INDEX_FILE);
        check_ref_name(&index_path, name)?;
        if !self.has_blob(&descriptor.digest) {
            return Err(LayoutError::BlobMissing {
                path: self.root.clone(),
                digest: descriptor.digest.clone(),
            });
        }
        let mut index = self.read_index()?;
        index.set_ref(name, descriptor);
        self.write_atomic(&self.root, &index_path, &index.to_bytes())
    }

    /// Removes the entry named `name` from `index.json`; whether there was one. Blobs stay.
    pub fn remove_ref(&self, name: &str) -> Result<bool> {
        let mut index = self.read_index()?;
        if !index.remove_ref(name) {
            return Ok(false);
        }
        let index_path = self.root.join(INDEX_FILE);
        self.write_atomic(&self.root, &index_path, &index.to_bytes())?;
        Ok(true)
    }

    /// Deletes the temp files writers that died left (in the layout and its blob directory);
    /// those of live writers are locked, and stay. Best effort.
    pub fn remove_dead_partials(&self) {
        let blobs = self.root.join("blobs").join("sha256");
        for dir in [&self.root, &blobs] {
            super::remove_dead_partials(dir, PARTIAL, Path::new(""));
        }
    }

    /// `blobs/sha256/<hex>`: the only way a blob path is made.
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// `blobs/sha256`, created if missing, refused if it resolves outside the layout.
    fn blobs_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let real = fs::canonicalize(&dir).map_err(io_err(&dir))?;
        if !real.starts_with(&self.real_root) {
            return Err(LayoutError::OutsideLayout { path: dir });
        }
        Ok(dir)
    }

    fn check_marker(&self) -> Result<()> {
        let path = self.root.join(OCI_LAYOUT_FILE);
        let file = self.open_inside(&path).map_err(|e| match e {
            LayoutError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                LayoutError::NotALayout {
                    path: self.root.clone(),
                }
            }
            e => e,
        })?;
        let bytes = read_capped(file, &path, OCI_LAYOUT_FILE, MAX_OCI_LAYOUT_SIZE)?;
        check_layout_marker(&path, &bytes)
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.root.join(INDEX_FILE);
        let file = self.open_inside(&path).map_err(|e| match e {
            LayoutError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                LayoutError::NoIndex {
                    path: self.root.clone(),
                }
            }
            e => e,
        })?;
        let bytes = read_capped(file, &path, INDEX_FILE, MAX_INDEX_SIZE)?;
        Index::parse(&path, &bytes)
    }

    /// Opens `path` (under the layout root) for reading, only if it resolves inside the
    /// layout and is a regular file.
    fn open_inside(&self, path: &Path) -> Result<File> {
        Ok(self.open_resolved(path)?.1)
    }

    /// [`LayoutDir::open_inside`], with the path the file really has.
    fn open_resolved(&self, path: &Path) -> Result<(PathBuf, File)> {
        let real = fs::canonicalize(path).map_err(io_err(path))?;
        if !real.starts_with(&self.real_root) {
            return Err(LayoutError::OutsideLayout {
                path: path.to_path_buf(),
            });
        }
        // The resolved path has no symlink left: refuse one swapped in since.
        let file = open_regular(path, &real, true)?;
        Ok((real, file))
    }

    /// A blob's file, opened where it really is inside the layout: that path (no symlink in
    /// it) and the file. Its content is not checked here.
    pub fn blob_file(&self, digest: &Digest) -> Result<(PathBuf, File)> {
        self.open_resolved(&self.blob_path(digest))
    }

    /// Writes `bytes` to `target` through a temp file in `dir`.
    fn write_atomic(&self, dir: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
        let mut temp = temp_in(dir)?;
        temp.write_all(bytes).map_err(io_err(temp.path()))?;
        self.commit(temp, target)
    }

    /// Makes a fully written temp file `target`: readable by all like files skopeo writes,
    /// fsynced, renamed, and the directory fsynced so the rename survives a crash.
    fn commit(&self, temp: NamedTempFile, target: &Path) -> Result<()> {
        set_public(temp.as_file(), temp.path())?;
        temp.as_file().sync_all().map_err(io_err(temp.path()))?;
        temp.persist(target).map_err(|e| LayoutError::Io {
            path: target.to_path_buf(),
            source: e.error,
        })?;
        if let Some(parent) = target.parent() {
            sync_dir(parent);
        }
        Ok(())
    }
}

/// Temp files are named so: `.partial-XXXXXX`.
const PARTIAL: &str = ".partial-";

/// A temp file in `dir` (deleted when dropped before commit), locked for as long as it is
/// open: one left unlocked was left by a writer that died (kill -9, a crash).
fn temp_in(dir: &Path) -> Result<NamedTempFile> {
    let temp = tempfile::Builder::new()
        .prefix(PARTIAL)
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    temp.as_file().lock().map_err(io_err(temp.path()))?;
    Ok(temp)
}

/// Mode 0644 (temp files start 0600).
pub(super) fn set_public(file: &File, path: &Path) -> Result<()> {
    crate::fsx::make_public(file).map_err(io_err(path))
}

/// Best effort: some filesystems refuse to fsync a directory, and the data itself is synced.
pub(super) fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};

    fn blob(bytes: &[u8], media_type: &str) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("L");
        let dir = LayoutDir::create(&root).unwrap();
        let config = blob(b"{}", CONFIG_MEDIA_TYPE);
        assert!(dir.put_blob(&b"{}"[..], &config).unwrap());
        assert!(!dir.put_blob(&b"{}"[..], &config).unwrap(), "already there");
        let manifest = dir
            .put_manifest(b"{\"schemaVersion\":2}", MANIFEST_MEDIA_TYPE)
            .unwrap();
        dir.set_ref("1.0.0", &manifest).unwrap();

        let again = LayoutDir::open(&root).unwrap();
        assert_eq!(
            again.resolve(Some("1.0.0")).unwrap().digest,
            manifest.digest
        );
        assert_eq!(again.resolve(None).unwrap().digest, manifest.digest);
        assert_eq!(
            again.read_manifest(&manifest).unwrap(),
            b"{\"schemaVersion\":2}"
        );
        let mut content = Vec::new();
        again
            .open_blob(&config.digest)
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert_eq!(content, b"{}");
        let refs = again.refs().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name.as_deref(), Some("1.0.0"));

        // Replacing keeps one entry; a second name makes the unnamed lookup ambiguous.
        again.set_ref("1.0.0", &config).unwrap();
        assert_eq!(again.refs().unwrap().len(), 1);
        again.set_ref("other", &manifest).unwrap();
        assert!(matches!(
            again.resolve(None),
            Err(LayoutError::AmbiguousRef { count: 2, .. })
        ));
        assert!(again.remove_ref("1.0.0").unwrap());
        assert!(!again.remove_ref("1.0.0").unwrap());
        assert_eq!(again.resolve(None).unwrap().digest, manifest.digest);

        // create on an existing layout keeps it; no temp files are left behind.
        LayoutDir::create(&root).unwrap();
        assert_eq!(entries(&root), ["blobs", "index.json", "oci-layout"]);
        assert_eq!(entries(&root.join("blobs/sha256")).len(), 2);
        let marker = fs::read_to_string(root.join("oci-layout")).unwrap();
        assert_eq!(marker, r#"{"imageLayoutVersion":"1.0.0"}"#);
    }

    #[test]
    fn digest_mismatch_is_refused_and_nothing_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LayoutDir::create(tmp.path()).unwrap();
        let want = blob(b"right", "x");
        for wrong in [&b"wrong"[..], b"righ", b"right!"] {
            let err = dir.put_blob(wrong, &want).unwrap_err();
            assert!(
                matches!(err, LayoutError::DigestMismatch { .. }),
                "{wrong:?}: {err}"
            );
        }
        assert!(!dir.has_blob(&want.digest));
        assert!(entries(&tmp.path().join("blobs/sha256")).is_empty());
        // A ref to a blob that is not there is refused.
        assert!(matches!(
            dir.set_ref("x", &want),
            Err(LayoutError::BlobMissing { .. })
        ));
    }

    #[test]
    fn corrupt_blob_fails_at_the_end_of_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LayoutDir::create(tmp.path()).unwrap();
        let m = dir.put_manifest(b"{\"a\":1}", MANIFEST_MEDIA_TYPE).unwrap();
        fs::write(dir.blob_path(&m.digest), b"{\"a\":2}").unwrap();
        let err = dir
            .open_blob(&m.digest)
            .unwrap()
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(matches!(
            dir.read_manifest(&m),
            Err(LayoutError::Io { .. } | LayoutError::DigestMismatch { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leading_outside_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("L");
        let dir = LayoutDir::create(&root).unwrap();
        let secret = tmp.path().join("secret");
        fs::write(&secret, b"secret").unwrap();
        let d = Digest::of(b"secret");
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.blob_path(&d)).unwrap();
        assert!(!dir.has_blob(&d));
        assert!(matches!(
            dir.open_blob(&d),
            Err(LayoutError::OutsideLayout { .. })
        ));

        // index.json pointing outside: the layout is refused.
        let outside_index = tmp.path().join("index.json");
        fs::write(&outside_index, r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        fs::remove_file(root.join("index.json")).unwrap();
        std::os::unix::fs::symlink(&outside_index, root.join("index.json")).unwrap();
        let err = LayoutDir::open(&root).unwrap_err();
        assert!(matches!(err, LayoutError::OutsideLayout { .. }), "{err}");

        // blobs/ itself leading outside: neither read nor written through.
        let root2 = tmp.path().join("L2");
        let dir2 = LayoutDir::create(&root2).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir_all(elsewhere.join("sha256")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root2.join("blobs")).unwrap();
        let err = dir2.put_blob(&b"x"[..], &blob(b"x", "t")).unwrap_err();
        assert!(matches!(err, LayoutError::OutsideLayout { .. }), "{err}");
        assert!(entries(&elsewhere.join("sha256")).is_empty());

        // A symlink that stays inside the layout is fine.
        let inside = dir.put_manifest(b"{}", MANIFEST_MEDIA_TYPE).unwrap();
        let alias = Digest::of(b"alias");
        std::os::unix::fs::symlink(inside.digest.hex(), dir.blob_path(&alias)).unwrap();
        assert!(dir.has_blob(&alias));
    }

    #[cfg(unix)]
    #[test]
    fn fifo_blob_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = LayoutDir::create(tmp.path()).unwrap();
        let d = Digest::of(b"fifo");
        fs::create_dir_all(tmp.path().join("blobs/sha256")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.blob_path(&d),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(matches!(
            dir.open_blob(&d),
            Err(LayoutError::NotRegularFile { .. })
        ));
    }

    #[test]
    fn not_a_layout_and_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let err = LayoutDir::open(tmp.path()).unwrap_err();
        assert!(matches!(err, LayoutError::NotALayout { .. }), "{err}");
        fs::write(
            tmp.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let err = LayoutDir::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("2.0.0"), "{err}");
        fs::write(tmp.path().join("oci-layout"), vec![b' '; 5000]).unwrap();
        assert!(matches!(
            LayoutDir::open(tmp.path()),
            Err(LayoutError::TooLarge { .. })
        ));
        fs::write(
            tmp.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let err = LayoutDir::open(tmp.path()).unwrap_err();
        assert!(matches!(err, LayoutError::NoIndex { .. }), "{err}");
        fs::write(tmp.path().join("index.json"), "{").unwrap();
        let err = LayoutDir::open(tmp.path()).unwrap_err();
        let want = format!(
            "{}: not an OCI image layout index",
            tmp.path().join("index.json").display()
        );
        assert!(err.to_string().starts_with(&want), "{err}");

        let dir = LayoutDir::create(tmp.path().join("ok")).unwrap();
        let big = Descriptor::new(MANIFEST_MEDIA_TYPE, Digest::of(b""), (4 << 20) + 1);
        assert!(matches!(
            dir.read_manifest(&big),
            Err(LayoutError::TooLarge { .. })
        ));
        assert!(matches!(
            dir.set_ref("bad name", &big),
            Err(LayoutError::BadRefName { .. })
        ));
    }
}
