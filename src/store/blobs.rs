//! Blob staging: bytes are written to a locked temp file in `.tmp/`, hashed as they go, and only
//! renamed into `blobs/sha256/<hex>` once the digest is known (and, for downloads, checked).
//! A temp file whose writer died is unlocked, which is how cleaners tell it from a live one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use super::{Result, Store, StoreError, io_err, set_public};
use crate::digest::{Digest, HashingWriter};

/// A temp file younger than this is never cleaned, even if unlocked: it may be between its
/// creation and its writer taking the lock.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// Writes a new blob. Dropping it without [`BlobWriter::finish`] deletes the temp file.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<NamedTempFile>>,
}

/// A fully written blob that is not in the cache yet.
pub struct StagedBlob {
    temp: NamedTempFile,
    digest: Digest,
    size: u64,
}

impl BlobWriter {
    pub(super) fn new(tmp_dir: &Path) -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp_dir)
            .map_err(io_err(tmp_dir))?;
        temp.as_file().lock().map_err(io_err(temp.path()))?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
        })
    }

    /// Flushes and returns the staged blob with its digest and size.
    pub fn finish(self) -> Result<StagedBlob> {
        let (buffered, digest, size) = self.inner.finish();
        let temp = buffered.into_inner().map_err(|e| {
            let (source, writer) = e.into_parts();
            StoreError::Io {
                path: writer.get_ref().path().to_path_buf(),
                source,
            }
        })?;
        Ok(StagedBlob { temp, digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl StagedBlob {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the staged bytes are, until commit.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The staged bytes, for validation before commit.
    pub fn reopen(&self) -> Result<File> {
        self.temp.reopen().map_err(io_err(self.temp.path()))
    }

    pub(super) fn commit(self, store: &Store, expected: Option<&Digest>) -> Result<Digest> {
        if let Some(expected) = expected
            && *expected != self.digest
        {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {expected}"),
                expected: expected.clone(),
                actual: self.digest,
            });
        }
        let dest = store.blob_path(&self.digest);
        if !dest.is_file() {
            set_public(self.temp.as_file(), self.temp.path())?;
            self.temp.persist(&dest).map_err(|e| StoreError::Io {
                path: dest.clone(),
                source: e.error,
            })?;
        }
        Ok(self.digest)
    }
}

/// Deletes temp files no live writer holds. Called under the exclusive lock.
pub(super) fn clean_stale_temps(store: &Store) -> Result<u64> {
    let dir = store.tmp_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&dir)(e)),
    };
    let now = SystemTime::now();
    let mut freed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !old || !meta.is_file() {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
            freed += meta.len();
        }
    }
    Ok(freed)
}
