//! An OCI archive (`oci-archive:FILE[:REF]`): a plain tar of an OCI image layout, entries
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`, as `skopeo copy oci-archive:` reads
//! and writes it.
//!
//! Reading never unpacks: [`ArchiveReader::open`] walks the tar headers once (seeking over the
//! data) and records where each blob's bytes are; a blob is then read straight from that byte
//! range of the file and verified as it streams. The headers are parsed here rather than by
//! the `tar` crate's entry iterator because that iterator reads PAX and GNU long-name records
//! into memory without a bound; here they are capped, and so are the entry count and the two
//! small files. An entry name is accepted only in the forms above (a leading `./` allowed);
//! absolute names and names with a `..` component refuse the whole archive; other names are
//! ignored, as a layout reader ignores stray files.
//!
//! Writing streams: [`ArchiveWriter`] appends each blob to a temp file next to the target
//! (`.NAME.partial-XXXXXX`) as it arrives, keeps only the index in memory, and
//! [`ArchiveWriter::finish`] appends `index.json`, fsyncs and renames the file into place.
//! A writer dropped before `finish` deletes its temp file; a process killed mid-write leaves
//! that temp file behind, never a partial archive at the target path.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::NamedTempFile;

use super::dir::{set_public, sync_dir};
use super::{
    BlobReader, INDEX_FILE, Index, LayoutError, LayoutRef, MAX_ARCHIVE_ENTRIES, MAX_INDEX_SIZE,
    MAX_OCI_LAYOUT_SIZE, OCI_LAYOUT_FILE, Result, check_layout_marker, check_manifest_bytes,
    check_manifest_size, check_ref_name, io_err, layout_marker_bytes, open_regular, read_capped,
};
use crate::digest::{Digest, HashingReader};
use crate::oci::Descriptor;

const BLOCK: u64 = 512;
/// The most a PAX record set or a GNU long name may weigh (Go caps PAX headers at 1 MiB; a
/// layout's names are short).
const MAX_EXTENSION_SIZE: u64 = 64 << 10;
const BLOB_PREFIX: &str = "blobs/sha256/";

/// Where a blob's bytes are in the archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: u64,
    size: u64,
}

/// An OCI archive opened for reading.
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    file: Arc<File>,
    blobs: HashMap<Digest, Span>,
    index: Index,
}

impl ArchiveReader {
    /// Scans the archive's headers once; fails unless it holds an `oci-layout` of version
    /// 1.0.0 and a valid `index.json`, and every entry is acceptable.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = open_regular(&path, &path, false)?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let scan = Scan::run(&path, &file, len)?;
        let marker_path = path.join(OCI_LAYOUT_FILE);
        let marker = scan
            .marker
            .ok_or_else(|| LayoutError::NotALayout { path: path.clone() })?;
        check_layout_marker(&marker_path, &marker)?;
        let index_bytes = scan
            .index
            .ok_or_else(|| LayoutError::NoIndex { path: path.clone() })?;
        let index = Index::parse(&path.join(INDEX_FILE), &index_bytes)?;
        Ok(ArchiveReader {
            path,
            file: Arc::new(file),
            blobs: scan.blobs,
            index,
        })
    }

    /// The archive's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every `index.json` entry with its ref name, in file order.
    pub fn refs(&self) -> Vec<LayoutRef> {
        self.index.refs()
    }

    /// The manifest `name` designates or, with no name, the only one (as skopeo reads
    /// `oci-archive:FILE`).
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor> {
        self.index.resolve(&self.path.join(INDEX_FILE), name)
    }

    /// Whether the archive has an entry for the blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// Where a blob's bytes are in the archive file: offset and size.
    pub fn blob_span(&self, digest: &Digest) -> Option<(u64, u64)> {
        self.blobs.get(digest).map(|s| (s.offset, s.size))
    }

    /// The archive file, open.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads a blob from its byte range of the archive; the reader fails at its end unless
    /// the content matches `digest`.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader<RangeReader>> {
        let span = self
            .blobs
            .get(digest)
            .ok_or_else(|| LayoutError::BlobMissing {
                path: self.path.clone(),
                digest: digest.clone(),
            })?;
        let range = RangeReader {
            file: Arc::clone(&self.file),
            pos: span.offset,
            end: span.offset + span.size,
        };
        let entry = self.path.join(BLOB_PREFIX).join(digest.hex());
        Ok(BlobReader::new(range, entry, digest.clone(), span.size))
    }

    /// The bytes of the manifest (or image index) `desc` describes, checked against its
    /// digest and size; refused unread over [`super::MAX_MANIFEST_SIZE`].
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let entry = self.path.join(BLOB_PREFIX).join(desc.digest.hex());
        check_manifest_size(&entry, desc.size)?;
        let reader = self.open_blob(&desc.digest)?;
        let bytes = read_capped(reader, &entry, "manifest", desc.size)?;
        check_manifest_bytes(&entry, desc, &bytes)?;
        Ok(bytes)
    }
}

/// A byte range of a file, read with positioned reads (no shared cursor, so several may be
/// open on one file at once).
#[derive(Debug)]
pub struct RangeReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = read_at(&self.file, &mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one pass over the headers found.
struct Scan {
    marker: Option<Vec<u8>>,
    index: Option<Vec<u8>>,
    blobs: HashMap<Digest, Span>,
}

/// What an entry name designates.
enum Name {
    Marker,
    Index,
    Blob(Digest),
    /// `.`, `blobs`, `blobs/sha256`: the layout's own directories.
    LayoutDir,
    /// Anything else that is harmless: ignored.
    Other,
}

impl Scan {
    fn run(path: &Path, file: &File, len: u64) -> Result<Self> {
        let corrupt = |reason: String| LayoutError::CorruptArchive {
            path: path.to_path_buf(),
            reason,
        };
        let mut scan = Scan {
            marker: None,
            index: None,
            blobs: HashMap::new(),
        };
        let mut pos = 0u64;
        let mut count = 0u64;
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK as usize];
        loop {
            if pos == len {
                // No end-of-archive blocks: Go's reader accepts that too.
                break;
            }
            if len - pos < BLOCK {
                return Err(corrupt(format!("truncated tar header at offset {pos}")));
            }
            read_exact_at(file, &mut block, pos).map_err(io_err(path))?;
            if block.iter().all(|&b| b == 0) {
                break;
            }
            count += 1;
            if count > MAX_ARCHIVE_ENTRIES {
                return Err(LayoutError::TooManyEntries {
                    path: path.to_path_buf(),
                    limit: MAX_ARCHIVE_ENTRIES,
                });
            }
            let header = tar::Header::from_byte_slice(&block);
            let stored = header
                .cksum()
                .map_err(|_| corrupt(format!("unreadable header checksum at offset {pos}")))?;
            let sum: u32 = block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| u32::from(b))
                .sum::<u32>()
                + 8 * u32::from(b' ');
            if sum != stored {
                return Err(corrupt(format!("header checksum mismatch at offset {pos}")));
            }
            let kind = header.entry_type();
            let is_extension = kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions();
            let mut size = header
                .entry_size()
                .map_err(|_| corrupt(format!("unreadable entry size at offset {pos}")))?;
            let mut pax_path = None;
            if !is_extension && let Some(records) = pax.take() {
                for record in tar::PaxExtensions::new(&records) {
                    let record = record.map_err(|_| {
                        corrupt(format!("malformed PAX header before offset {pos}"))
                    })?;
                    match record.key_bytes() {
                        b"path" => pax_path = Some(record.value_bytes().to_vec()),
                        b"size" => {
                            size = record
                                .value()
                                .ok()
                                .and_then(|v| v.parse::<u64>().ok())
                                .ok_or_else(|| {
                                    corrupt(format!("malformed PAX size before offset {pos}"))
                                })?;
                        }
                        _ => {}
                    }
                }
            }
            let data = pos + BLOCK;
            let next = size
                .checked_add(BLOCK - 1)
                .map(|s| s & !(BLOCK - 1))
                .and_then(|s| data.checked_add(s))
                .ok_or_else(|| corrupt(format!("entry size overflows at offset {pos}")))?;
            if data + size > len {
                return Err(corrupt(format!(
                    "entry at offset {pos} claims {size} bytes, past the end of the file"
                )));
            }
            let read_extension = |what: &str| -> Result<Vec<u8>> {
                if size > MAX_EXTENSION_SIZE {
                    return Err(corrupt(format!(
                        "{what} at offset {pos} is {size} bytes (limit {MAX_EXTENSION_SIZE})"
                    )));
                }
                let mut buf = vec![0; size as usize];
                read_exact_at(file, &mut buf, data).map_err(io_err(path))?;
                Ok(buf)
            };
            if kind.is_gnu_longname() {
                if long_name.is_some() {
                    return Err(corrupt(format!("two GNU long names at offset {pos}")));
                }
                let mut name = read_extension("GNU long name")?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
            } else if kind.is_pax_local_extensions() {
                if pax.is_some() {
                    return Err(corrupt(format!("two PAX headers at offset {pos}")));
                }
                pax = Some(read_extension("PAX header")?);
            } else if !is_extension {
                // Global PAX headers and GNU long link names need nothing from us.
                let raw = long_name
                    .take()
                    .or(pax_path)
                    .unwrap_or_else(|| header.path_bytes().into_owned());
                scan.entry(path, file, &raw, kind, Span { offset: data, size })?;
            }
            pos = next;
        }
        if long_name.is_some() || pax.is_some() {
            return Err(corrupt(
                "the archive ends with an extension header that describes no entry".into(),
            ));
        }
        Ok(scan)
    }

    /// Records one (non-extension) entry.
    fn entry(
        &mut self,
        path: &Path,
        file: &File,
        raw: &[u8],
        kind: tar::EntryType,
        span: Span,
    ) -> Result<()> {
        let lossy = String::from_utf8_lossy(raw).into_owned();
        let bad = |reason| LayoutError::BadEntry {
            path: path.to_path_buf(),
            entry: lossy.clone(),
            reason,
        };
        let name = classify(raw).map_err(bad)?;
        let regular = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        let duplicate = |detail: String| LayoutError::DuplicateEntry {
            path: path.to_path_buf(),
            entry: lossy.clone(),
            detail,
        };
        match name {
            Name::Other => Ok(()),
            Name::LayoutDir if kind == tar::EntryType::Directory => Ok(()),
            Name::LayoutDir => Err(bad("a layout directory must be a directory entry")),
            _ if !regular => Err(bad("not a regular file")),
            Name::Marker | Name::Index => {
                let (slot, limit, what) = match name {
                    Name::Marker => (&mut self.marker, MAX_OCI_LAYOUT_SIZE, OCI_LAYOUT_FILE),
                    _ => (&mut self.index, MAX_INDEX_SIZE, INDEX_FILE),
                };
                if slot.is_some() {
                    return Err(duplicate(String::new()));
                }
                if span.size > limit {
                    return Err(LayoutError::TooLarge {
                        path: path.join(what),
                        what: what.to_string(),
                        size: span.size,
                        limit,
                    });
                }
                let mut buf = vec![0; span.size as usize];
                read_exact_at(file, &mut buf, span.offset).map_err(io_err(path))?;
                *slot = Some(buf);
                Ok(())
            }
            Name::Blob(digest) => match self.blobs.get(&digest) {
                Some(seen) if seen.size != span.size => Err(duplicate(format!(
                    " with different sizes ({} and {} bytes)",
                    seen.size, span.size
                ))),
                // The same size twice: tar keeps the last; both are verified when read.
                _ => {
                    self.blobs.insert(digest, span);
                    Ok(())
                }
            },
        }
    }
}

/// Sorts an entry name into what the layout means by it.
fn classify(raw: &[u8]) -> std::result::Result<Name, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8")?;
    if text.starts_with('/') {
        return Err("absolute path");
    }
    if text.contains('\0') || text.contains('\\') {
        return Err("NUL or backslash in the name");
    }
    if text.split('/').any(|c| c == "..") {
        return Err("'..' in the path");
    }
    let name = text.strip_prefix("./").unwrap_or(text);
    let name = name.strip_suffix('/').unwrap_or(name);
    Ok(match name {
        OCI_LAYOUT_FILE => Name::Marker,
        INDEX_FILE => Name::Index,
        "" | "." | "blobs" | "blobs/sha256" => Name::LayoutDir,
        _ => match name.strip_prefix(BLOB_PREFIX) {
            Some(hex) => Name::Blob(
                Digest::from_hex(hex).map_err(|_| "blob names must be 64 lowercase hex digits")?,
            ),
            None => Name::Other,
        },
    })
}

/// Writes an OCI archive as a stream into a temp file next to its target, renamed into
/// place by [`ArchiveWriter::finish`]. An existing file at the target is replaced then.
pub struct ArchiveWriter {
    path: PathBuf,
    out: BufWriter<NamedTempFile>,
    written: HashSet<Digest>,
    index: Index,
    /// Why the stream can no longer become a valid archive.
    poisoned: Option<String>,
}

impl ArchiveWriter {
    /// Starts writing `path`: a temp file `.NAME.partial-XXXXXX` beside it, with the
    /// `oci-layout` entry and the blob directories.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let name = path.file_name().ok_or_else(|| LayoutError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let prefix = format!(".{}.partial-", name.to_string_lossy());
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(&parent)
            .map_err(io_err(&parent))?;
        // Held for as long as this writer lives: an unlocked partial file is one whose writer
        // died (kill -9, a crash), and is removed by the next writer of the same target.
        temp.as_file().lock().map_err(io_err(temp.path()))?;
        super::remove_dead_partials(&parent, &prefix, temp.path());
        let mut writer = ArchiveWriter {
            path,
            out: BufWriter::with_capacity(256 * 1024, temp),
            written: HashSet::new(),
            index: Index::new(),
            poisoned: None,
        };
        let marker = layout_marker_bytes();
        writer.guard(|out| {
            write_file_entry(out, OCI_LAYOUT_FILE, &marker)?;
            write_header(out, "blobs", 0, tar::EntryType::Directory, 0o755)?;
            write_header(out, "blobs/sha256", 0, tar::EntryType::Directory, 0o755)
        })?;
        Ok(writer)
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a blob was written already.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.written.contains(digest)
    }

    /// Appends `blobs/sha256/<hex>` streamed from `reader`, sized by `expected` and hashed
    /// on the way. When the content does not have `expected`'s digest and size, returns the
    /// mismatch and poisons the writer ([`ArchiveWriter::finish`] then refuses). A blob
    /// already written is not read again: returns whether anything was written.
    pub fn put_blob(&mut self, reader: impl Read, expected: &Descriptor) -> Result<bool> {
        self.check_poisoned()?;
        if self.written.contains(&expected.digest) {
            return Ok(false);
        }
        let name = format!("{BLOB_PREFIX}{}", expected.digest.hex());
        let entry = self.path.join(&name);
        let mut result = None;
        self.guard(|out| {
            write_header(out, &name, expected.size, tar::EntryType::Regular, 0o644)?;
            // One byte more than expected, to notice a source that is too long.
            let mut hashing = HashingReader::new(reader.take(expected.size.saturating_add(1)));
            io::copy(&mut hashing, out)?;
            let (actual, n) = hashing.finish();
            if actual != expected.digest || n != expected.size {
                let err = LayoutError::DigestMismatch {
                    path: entry.clone(),
                    expected: expected.digest.clone(),
                    expected_size: expected.size,
                    actual,
                    actual_size: n,
                };
                let message = err.to_string();
                result = Some(err);
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
            pad(out, n)
        })
        .map_err(|e| result.take().unwrap_or(e))?;
        self.written.insert(expected.digest.clone());
        Ok(true)
    }

    /// Appends a manifest (or image index) and returns its descriptor.
    pub fn put_manifest(&mut self, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
        let desc = Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64);
        check_manifest_size(
            &self.path.join(BLOB_PREFIX).join(desc.digest.hex()),
            desc.size,
        )?;
        self.put_blob(bytes, &desc)?;
        Ok(desc)
    }

    /// Names `descriptor` `name` in the index written by `finish`, replacing an earlier entry
    /// of that name. The blob must have been written already.
    pub fn set_ref(&mut self, name: &str, descriptor: &Descriptor) -> Result<()> {
        check_ref_name(&self.path.join(INDEX_FILE), name)?;
        if !self.written.contains(&descriptor.digest) {
            return Err(LayoutError::BlobMissing {
                path: self.path.clone(),
                digest: descriptor.digest.clone(),
            });
        }
        self.index.set_ref(name, descriptor);
        Ok(())
    }

    /// Drops the entry named `name` from the index to be written; whether there was one.
    pub fn remove_ref(&mut self, name: &str) -> bool {
        self.index.remove_ref(name)
    }

    /// The entries the index will have.
    pub fn refs(&self) -> Vec<LayoutRef> {
        self.index.refs()
    }

    /// Appends `index.json` and the end-of-archive blocks, fsyncs, and renames the archive
    /// into place (replacing any file there). Refuses when an earlier write failed.
    pub fn finish(mut self) -> Result<()> {
        self.check_poisoned()?;
        let index = self.index.to_bytes();
        self.guard(|out| {
            write_file_entry(out, INDEX_FILE, &index)?;
            out.write_all(&[0; 2 * BLOCK as usize])
        })?;
        let temp = self.out.into_inner().map_err(|e| {
            let (source, writer) = e.into_parts();
            LayoutError::Io {
                path: writer.get_ref().path().to_path_buf(),
                source,
            }
        })?;
        set_public(temp.as_file(), temp.path())?;
        temp.as_file().sync_all().map_err(io_err(temp.path()))?;
        temp.persist(&self.path).map_err(|e| LayoutError::Io {
            path: self.path.clone(),
            source: e.error,
        })?;
        if let Some(parent) = self.path.parent() {
            sync_dir(parent);
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(LayoutError::Poisoned {
                path: self.path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a write on the stream; any failure leaves the stream in an unknown state, so it
    /// poisons the writer.
    fn guard(
        &mut self,
        write: impl FnOnce(&mut BufWriter<NamedTempFile>) -> io::Result<()>,
    ) -> Result<()> {
        write(&mut self.out).map_err(|e| {
            self.poisoned = Some(e.to_string());
            LayoutError::Io {
                path: self.out.get_ref().path().to_path_buf(),
                source: e,
            }
        })
    }
}

/// One ustar header. Times and owners are zero so equal content makes equal archives.
fn write_header(
    out: &mut impl Write,
    name: &str,
    size: u64,
    kind: tar::EntryType,
    mode: u32,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    out.write_all(header.as_bytes())
}

/// Zeros up to the next block boundary after `written` bytes of data.
fn pad(out: &mut impl Write, written: u64) -> io::Result<()> {
    let rem = (written % BLOCK) as usize;
    if rem != 0 {
        out.write_all(&[0; BLOCK as usize][..BLOCK as usize - rem])?;
    }
    Ok(())
}

fn write_file_entry(out: &mut impl Write, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_header(
        out,
        name,
        bytes.len() as u64,
        tar::EntryType::Regular,
        0o644,
    )?;
    out.write_all(bytes)?;
    pad(out, bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
    use std::fs;

    fn desc(bytes: &[u8], media_type: &str) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    fn read_all(mut r: impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A tar entry's name (written verbatim), type and data.
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8]);

    /// A tar with the given entries.
    fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            let field = &mut h.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_size(data.len() as u64);
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const MARKER: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
    const REG: tar::EntryType = tar::EntryType::Regular;

    fn index_for(m: &Descriptor, name: &str) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#,
            m.media_type, m.digest, m.size
        )
        .into_bytes()
    }

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.tar");
        let config = desc(b"{}", CONFIG_MEDIA_TYPE);
        let layer_bytes = vec![9u8; 1000];
        let layer = desc(&layer_bytes, "application/octet-stream");
        let mut w = ArchiveWriter::create(&path).unwrap();
        assert!(w.put_blob(&b"{}"[..], &config).unwrap());
        assert!(w.put_blob(&layer_bytes[..], &layer).unwrap());
        assert!(!w.put_blob(&b"unread"[..], &layer).unwrap());
        let m = w
            .put_manifest(b"{\"schemaVersion\":2}", MANIFEST_MEDIA_TYPE)
            .unwrap();
        w.set_ref("v1", &m).unwrap();
        assert!(!path.exists(), "nothing at the path before finish");
        w.finish().unwrap();
        assert_eq!(dir_names(tmp.path()), ["a.tar"]);

        let r = ArchiveReader::open(&path).unwrap();
        assert_eq!(r.resolve(Some("v1")).unwrap().digest, m.digest);
        assert_eq!(r.resolve(None).unwrap().digest, m.digest);
        assert_eq!(r.read_manifest(&m).unwrap(), b"{\"schemaVersion\":2}");
        assert_eq!(
            read_all(r.open_blob(&layer.digest).unwrap()).unwrap(),
            layer_bytes
        );
        assert_eq!(
            read_all(r.open_blob(&config.digest).unwrap()).unwrap(),
            b"{}"
        );
        assert_eq!(r.refs()[0].name.as_deref(), Some("v1"));
        assert!(matches!(
            r.open_blob(&Digest::of(b"nope")),
            Err(LayoutError::BlobMissing { .. })
        ));

        // The tar crate reads it as a plain tar with the expected names, in order.
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(File::open(&path).unwrap());
        for e in ar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names[0], "oci-layout");
        assert_eq!(names.last().unwrap(), "index.json");
        assert_eq!(names.len(), 7);

        // Writing again replaces the archive at finish.
        let mut w = ArchiveWriter::create(&path).unwrap();
        let m2 = w.put_manifest(b"{}", MANIFEST_MEDIA_TYPE).unwrap();
        w.set_ref("v2", &m2).unwrap();
        w.finish().unwrap();
        let r = ArchiveReader::open(&path).unwrap();
        assert!(r.resolve(Some("v1")).is_err());
        assert_eq!(r.resolve(Some("v2")).unwrap().digest, m2.digest);
    }

    #[test]
    fn mismatch_poisons_the_writer_and_nothing_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.tar");
        fs::write(&path, b"old").unwrap();
        for wrong in [&b"wrong"[..], b"righ", b"right!"] {
            let mut w = ArchiveWriter::create(&path).unwrap();
            let err = w.put_blob(wrong, &desc(b"right", "x")).unwrap_err();
            assert!(matches!(err, LayoutError::DigestMismatch { .. }), "{err}");
            let err = w.put_blob(&b"{}"[..], &desc(b"{}", "x")).unwrap_err();
            assert!(matches!(err, LayoutError::Poisoned { .. }), "{err}");
            let err = w.finish().unwrap_err();
            assert!(err.to_string().contains("was not written"), "{err}");
        }
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(dir_names(tmp.path()), ["a.tar"]);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.tar");
        let mut w = ArchiveWriter::create(&path).unwrap();
        w.put_blob(&b"{}"[..], &desc(b"{}", "x")).unwrap();
        let partial: Vec<String> = dir_names(tmp.path());
        assert_eq!(partial.len(), 1);
        assert!(partial[0].starts_with(".a.tar.partial-"), "{partial:?}");
        drop(w);
        assert!(dir_names(tmp.path()).is_empty());
        // set_ref to a blob never written is refused.
        let mut w = ArchiveWriter::create(&path).unwrap();
        assert!(matches!(
            w.set_ref("x", &desc(b"absent", "x")),
            Err(LayoutError::BlobMissing { .. })
        ));
    }

    fn write(tmp: &Path, bytes: &[u8]) -> PathBuf {
        let p = tmp.join("t.tar");
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn accepts_dot_slash_names_and_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let m = desc(b"{}", MANIFEST_MEDIA_TYPE);
        let blob_name = format!("./blobs/sha256/{}", m.digest.hex());
        let index = index_for(&m, "x");
        let p = write(
            tmp.path(),
            &raw_tar(&[
                ("./", tar::EntryType::Directory, b""),
                ("./oci-layout", REG, MARKER),
                ("./blobs/", tar::EntryType::Directory, b""),
                (&blob_name, REG, b"{}"),
                ("./README", REG, b"hello"),
                ("./index.json", REG, &index),
            ]),
        );
        let r = ArchiveReader::open(&p).unwrap();
        assert_eq!(
            r.read_manifest(&r.resolve(Some("x")).unwrap()).unwrap(),
            b"{}"
        );
    }

    #[test]
    fn refuses_bad_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let m = desc(b"{}", MANIFEST_MEDIA_TYPE);
        let blob_name = format!("blobs/sha256/{}", m.digest.hex());
        let index = index_for(&m, "x");
        let cases: Vec<(Vec<RawEntry>, &str)> = vec![
            (vec![("../evil", REG, b"x")], "'..'"),
            (vec![("blobs/../../evil", REG, b"x")], "'..'"),
            (vec![("/etc/passwd", REG, b"x")], "absolute"),
            (vec![("blobs/sha256/ABC", REG, b"x")], "hex"),
            (vec![(&blob_name, tar::EntryType::Symlink, b"")], "regular"),
            (
                vec![("index.json", REG, &index), ("index.json", REG, &index)],
                "twice",
            ),
            (
                vec![(&blob_name, REG, b"{}"), (&blob_name, REG, b"{}x")],
                "different sizes",
            ),
            (vec![("index.json", REG, &index)], "no oci-layout"),
            (vec![("oci-layout", REG, MARKER)], "no index.json"),
        ];
        for (entries, want) in cases {
            let p = write(tmp.path(), &raw_tar(&entries));
            let err = ArchiveReader::open(&p).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        // Truncated data and a garbage file.
        let mut bytes = raw_tar(&[("oci-layout", REG, MARKER), (&blob_name, REG, &[1; 600])]);
        bytes.truncate(1024 + 512 + 100);
        let err = ArchiveReader::open(write(tmp.path(), &bytes)).unwrap_err();
        assert!(matches!(err, LayoutError::CorruptArchive { .. }), "{err}");
        let err = ArchiveReader::open(write(tmp.path(), &[7; 2048])).unwrap_err();
        assert!(matches!(err, LayoutError::CorruptArchive { .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn archive_must_be_a_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo.tar");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for p in [fifo.as_path(), tmp.path()] {
            assert!(matches!(
                ArchiveReader::open(p),
                Err(LayoutError::NotRegularFile { .. })
            ));
        }
    }

    #[test]
    fn long_names_and_caps() {
        let tmp = tempfile::tempdir().unwrap();
        // A GNU long name and a PAX path (as GNU tar and Go write long paths) are honoured.
        let m = desc(b"{}", MANIFEST_MEDIA_TYPE);
        let index = index_for(&m, "x");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(MARKER.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "oci-layout", MARKER).unwrap();
        let long = format!("docs/{}", "x".repeat(200));
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"x"[..]).unwrap();
        let blob_name = format!("blobs/sha256/{}", m.digest.hex());
        b.append_pax_extensions([("path", blob_name.as_bytes())])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("placeholder").unwrap();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"{}"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(index.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "index.json", &index[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let r = ArchiveReader::open(write(tmp.path(), &bytes)).unwrap();
        assert!(r.has_blob(&m.digest));
        assert_eq!(
            r.read_manifest(&r.resolve(Some("x")).unwrap()).unwrap(),
            b"{}"
        );

        // An oversized index.json is refused before it is read.
        let big = vec![b' '; (MAX_INDEX_SIZE + 1) as usize];
        let p = write(
            tmp.path(),
            &raw_tar(&[("oci-layout", REG, MARKER), ("index.json", REG, &big)]),
        );
        assert!(matches!(
            ArchiveReader::open(&p),
            Err(LayoutError::TooLarge { .. })
        ));
        // A corrupted blob fails at the end of reading.
        let p = write(
            tmp.path(),
            &raw_tar(&[
                ("oci-layout", REG, MARKER),
                (&format!("blobs/sha256/{}", m.digest.hex()), REG, b"[]"),
                ("index.json", REG, &index),
            ]),
        );
        let r = ArchiveReader::open(&p).unwrap();
        let err = read_all(r.open_blob(&m.digest).unwrap()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(r.read_manifest(&m).is_err());
    }
}
