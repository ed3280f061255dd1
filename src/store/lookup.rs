//! Finding one entry in `index.json` without reading the whole file.
//!
//! A rebuild writes the entries sorted by ref name, and records in [`SORTED`] where that sorted
//! run ends and which file it describes (its inode). Entries appended since form an unsorted
//! tail; blanking an entry or overwriting it with one of the same name keeps the run sorted.
//! An entry is found by a binary search of the run (a few reads of a few KiB), then by a scan
//! of the tail, which [`super::layout`] keeps short by compacting the file when the tail
//! grows past [`MAX_TAIL`]. Only when both miss (no record, a stale one) is the whole file
//! scanned, and only when that misses too is the file rebuilt. The record is a hint: a wrong
//! one costs time, never correctness, since every match is checked byte for byte.

use std::fs::{self, File};
use std::io;

use memchr::memmem;

use super::splice;
use super::{Result, Store, atomic_write};

/// `<inode> <end of the sorted run>` of the `index.json` a rebuild wrote.
pub(super) const SORTED: &str = "index.json.sorted";

/// A tail longer than this (about 4,000 entries) is compacted into the sorted run.
pub(super) const MAX_TAIL: u64 = 1 << 20;

/// How every entry begins; nothing else in the file begins so (quotes in strings are escaped).
const ENTRY_START: &[u8] = b"{\"mediaType\":\"";
const NAME_KEY: &[u8] = b"\"org.opencontainers.image.ref.name\":\"";
/// Bytes read per probe.
const WINDOW: usize = 4096;

/// Where the sorted run of the index open as `file` ends, if the record describes that file.
pub(super) fn sorted_end(store: &Store, file: &File) -> Option<u64> {
    let text = fs::read_to_string(store.root().join(SORTED)).ok()?;
    let (inode, end) = text.trim().split_once(' ')?;
    if inode.parse::<u64>().ok() != inode_of(file) {
        return None;
    }
    end.parse().ok()
}

/// Records that `index.json` is sorted up to byte `end` (called once a rebuilt one is in place).
/// A crash before the record is written leaves the old record, which names another inode.
pub(super) fn record(store: &Store, end: u64) -> Result<()> {
    let path = store.root().join("index.json");
    let Some(inode) = File::open(&path).ok().as_ref().and_then(inode_of) else {
        return Ok(());
    };
    atomic_write(
        &store.tmp_dir(),
        &store.root().join(SORTED),
        format!("{inode} {end}\n").as_bytes(),
    )
}

#[cfg(unix)]
fn inode_of(file: &File) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&file.metadata().ok()?).into()
}

#[cfg(not(unix))]
fn inode_of(_file: &File) -> Option<u64> {
    None
}

/// The ref name inside an entry's bytes, as serialized.
fn name_in(entry: &[u8]) -> Option<&[u8]> {
    let at = memmem::find(entry, NAME_KEY)? + NAME_KEY.len();
    let len = memchr::memchr(b'"', &entry[at..])?;
    Some(&entry[at..at + len])
}

/// The index file, read in pieces.
pub(super) struct IndexFile<'a> {
    pub file: &'a File,
    pub len: u64,
}

impl IndexFile<'_> {
    /// Bytes `[start, end)`, clipped to the file.
    pub fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let end = end.min(self.len);
        let start = start.min(end);
        read_at(self.file, start, (end - start) as usize)
    }

    /// Where `entry` is: by binary search of the sorted run `[run_start, sorted_end)`, then in
    /// the tail, then anywhere. `None` when it is not in the file.
    pub fn locate(
        &self,
        sorted_end: Option<u64>,
        run_start: u64,
        entry: &[u8],
    ) -> io::Result<Option<u64>> {
        let tail_start = match sorted_end {
            Some(end) if (run_start..=self.len).contains(&end) => {
                if let Some(name) = name_in(entry)
                    && let Some(at) = self.search_run(run_start, end, name, entry)?
                {
                    return Ok(Some(at));
                }
                end
            }
            _ => run_start,
        };
        // One byte before the tail, so its first entry's separator is seen.
        let from = tail_start.saturating_sub(1);
        if let Some(at) = splice::find(&self.read(from, self.len)?, entry) {
            return Ok(Some(from + at as u64));
        }
        if tail_start <= run_start {
            return Ok(None);
        }
        // The record was wrong: everything.
        Ok(splice::find(&self.read(0, self.len)?, entry).map(|at| at as u64))
    }

    /// Binary search of the run for the entry named `name`, checked to be `entry` exactly.
    fn search_run(&self, lo: u64, hi: u64, name: &[u8], entry: &[u8]) -> io::Result<Option<u64>> {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some((start, found)) = self.first_entry(mid, hi)? else {
                hi = mid;
                continue;
            };
            match found.as_slice().cmp(name) {
                std::cmp::Ordering::Less => lo = start + 1,
                std::cmp::Ordering::Greater => hi = mid,
                // An entry starts at `start`, so the same bytes there are that whole entry.
                std::cmp::Ordering::Equal => {
                    let bytes = self.read(start, start + entry.len() as u64)?;
                    return Ok((bytes == entry).then_some(start));
                }
            }
        }
        Ok(None)
    }

    /// The first entry starting in `[pos, hi)`, with its name.
    fn first_entry(&self, pos: u64, hi: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        let mut pos = pos;
        while pos < hi {
            let window = self.read(pos, pos + WINDOW as u64)?;
            if window.is_empty() {
                return Ok(None);
            }
            if let Some(i) = memmem::find(&window, ENTRY_START) {
                let start = pos + i as u64;
                if start >= hi {
                    return Ok(None);
                }
                let bytes = self.read(start, start + WINDOW as u64)?;
                // An entry longer than a window is not one this cache writes.
                let name = name_in(&bytes).ok_or_else(|| io::Error::other("entry too long"))?;
                return Ok(Some((start, name.to_vec())));
            }
            if window.len() < WINDOW {
                return Ok(None);
            }
            pos += (WINDOW - ENTRY_START.len()) as u64;
        }
        Ok(None)
    }

    /// The span to blank to remove the entry of `len` bytes at `at` (see
    /// [`splice::blank_span`]), reading as far around it as the blanks next to it need.
    pub fn blank_span(&self, at: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
        let mut margin = WINDOW as u64;
        loop {
            let start = at.saturating_sub(margin);
            let end = at + len + margin;
            let window = self.read(start, end)?;
            let (whole_start, whole_end) = (start == 0, end >= self.len);
            let offset = (at - start) as usize;
            match splice::blank_span(&window, offset, len as usize, whole_start, whole_end) {
                splice::Span::Found(s, e) => return Ok(Some((start + s as u64, start + e as u64))),
                splice::Span::Malformed => return Ok(None),
                splice::Span::NeedMore => margin *= 16,
            }
        }
    }
}

#[cfg(unix)]
pub(super) fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

#[cfg(unix)]
pub(super) fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
}

#[cfg(not(unix))]
pub(super) fn read_at(mut file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; len];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

#[cfg(not(unix))]
pub(super) fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entry(name: &str) -> String {
        format!(
            r#"{{"mediaType":"m","digest":"d","size":1,"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}"#
        )
    }

    #[test]
    fn entries_are_found_in_the_sorted_run_and_in_the_tail() {
        let head = r#"{"schemaVersion":2,"manifests":["#;
        let run: Vec<String> = (0..600).map(|i| format!("h/r:{i:04}")).collect();
        let tail = ["h/z:1", "h/a:1", "h/m:1"];
        let blanked = "h/r:0100";
        let mut text = head.to_string();
        text.push_str(&run.iter().map(|n| entry(n)).collect::<Vec<_>>().join(","));
        let sorted_end = text.len() as u64;
        for n in tail {
            text.push(',');
            text.push_str(&entry(n));
        }
        text.push_str("]}");
        let gone = format!(",{}", entry(blanked));
        let text = text.replace(&gone, &" ".repeat(gone.len()));
        serde_json::from_str::<serde_json::Value>(&text).unwrap();

        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(text.as_bytes()).unwrap();
        let file = tmp.reopen().unwrap();
        let index = IndexFile {
            file: &file,
            len: text.len() as u64,
        };
        let run_start = head.len() as u64;
        let wrong = Some(text.len() as u64 / 3);
        for name in run.iter().map(String::as_str).chain(tail) {
            let e = entry(name);
            let want = (name != blanked)
                .then(|| text.find(&e).map(|at| at as u64))
                .flatten();
            for record in [Some(sorted_end), None, wrong] {
                assert_eq!(
                    index.locate(record, run_start, e.as_bytes()).unwrap(),
                    want,
                    "{name} with the record {record:?}"
                );
            }
        }
        // Same name, other bytes: not this entry.
        let other = entry("h/r:0200").replace("\"size\":1", "\"size\":2");
        assert_eq!(
            index
                .locate(Some(sorted_end), run_start, other.as_bytes())
                .unwrap(),
            None
        );
    }
}
