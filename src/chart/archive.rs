//! Reading chart archives (`.tgz`) safely.
//!
//! Every archive that enters or leaves the cache is read through [`walk`], which enforces Helm's
//! loader rules and our safety rules before any byte reaches a caller: one top folder, no
//! absolute or `..` paths, no links leaving the chart, no devices, at most 5 MiB per file and
//! 100 MiB in all (counted on the bytes actually read, so a lying header cannot smuggle more).
//! [`inspect`], [`read_file`] and [`extract`] are small visitors on top of it.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;

use super::metadata::{Metadata, MetadataError};

/// Helm's cap on a chart's unpacked size.
pub const MAX_UNPACKED: u64 = 100 * 1024 * 1024;
/// Helm's cap on one file of a chart.
pub const MAX_FILE: u64 = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a valid chart archive: {0}")]
    Corrupt(String),
    #[error("archive entry {0:?} has an absolute path")]
    AbsolutePath(String),
    #[error("archive entry {0:?} points outside the chart (contains '..')")]
    ParentPath(String),
    #[error("archive entries must share one top folder, found {0:?} and {1:?}")]
    SeveralTops(String, String),
    #[error("archive entry {path:?} is a link to {target:?}, outside the chart")]
    LinkEscapes { path: String, target: String },
    #[error("archive entry {0:?} is a hard link, which charts do not use")]
    HardLink(String),
    #[error("archive entry {0:?} is not a regular file, directory or symlink")]
    Irregular(String),
    #[error("archive entry {path:?} is {size} bytes, over Helm's limit of 5 MiB per file")]
    FileTooLarge { path: String, size: u64 },
    #[error("the chart unpacks to more than Helm's limit of 100 MiB")]
    TooLarge,
    #[error("archive entry {0:?} is not inside the chart's top folder")]
    NotInFolder(String),
    #[error("Chart.yaml is not in the archive's top folder")]
    ChartYamlNotInBase,
    #[error("the archive has no Chart.yaml in its top folder")]
    NoChartYaml,
    #[error("Chart.yaml in the archive: {0}")]
    Metadata(#[from] MetadataError),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{0}")]
    Visitor(String),
}

/// What an entry is, as far as a chart cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink(String),
}

/// Walks a gzip'd chart archive, calling `visit(path, kind, data)` for every entry with `path`
/// relative to the top folder. Returns the top folder's name.
pub fn walk<R: Read>(
    reader: R,
    mut visit: impl FnMut(&str, &EntryKind, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<String, ArchiveError> {
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let entries = archive.entries().map_err(corrupt)?;
    let mut top: Option<String> = None;
    let mut total: u64 = 0;
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                EntryKind::Symlink(target)
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => continue,
            tar::EntryType::Link => {
                return Err(ArchiveError::HardLink(lossy_path(&entry)));
            }
            _ => return Err(ArchiveError::Irregular(lossy_path(&entry))),
        };
        let raw = lossy_path(&entry);
        let (first, rest) = match raw.split_once('/') {
            Some((f, r)) => (f.to_string(), r.trim_end_matches('/').to_string()),
            None => (raw.clone(), String::new()),
        };
        check_path(&raw)?;
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => return Err(ArchiveError::SeveralTops(t.clone(), first)),
            Some(_) => {}
        }
        if rest.is_empty() {
            if kind == EntryKind::File && raw == "Chart.yaml" {
                return Err(ArchiveError::ChartYamlNotInBase);
            }
            if kind == EntryKind::Dir {
                continue;
            }
            return Err(ArchiveError::NotInFolder(raw));
        }
        if let EntryKind::Symlink(target) = &kind
            && !link_stays_inside(&rest, target)
        {
            return Err(ArchiveError::LinkEscapes {
                path: raw,
                target: target.clone(),
            });
        }
        let size = entry.header().size().map_err(corrupt)?;
        if kind == EntryKind::File && size > MAX_FILE {
            return Err(ArchiveError::FileTooLarge { path: raw, size });
        }
        // Count what is really read, whatever the header claimed.
        let mut limited = (&mut entry).take(MAX_FILE + 1);
        let mut counting = CountingReader {
            inner: &mut limited,
            count: 0,
        };
        visit(&rest, &kind, &mut counting)?;
        io::copy(&mut counting, &mut io::sink()).map_err(corrupt)?;
        if counting.count > MAX_FILE {
            return Err(ArchiveError::FileTooLarge {
                path: raw,
                size: counting.count,
            });
        }
        total += counting.count;
        if total > MAX_UNPACKED {
            return Err(ArchiveError::TooLarge);
        }
    }
    top.ok_or_else(|| ArchiveError::Corrupt("the archive is empty".into()))
}

/// The Chart.yaml of an archive, validated, with its raw text. Reads the whole archive, so
/// every entry is checked.
pub fn inspect<R: Read>(reader: R) -> Result<(Metadata, Vec<u8>), ArchiveError> {
    let mut chart_yaml: Option<Vec<u8>> = None;
    walk(reader, |path, kind, data| {
        if path == "Chart.yaml" && *kind == EntryKind::File {
            let mut buf = Vec::new();
            data.read_to_end(&mut buf).map_err(corrupt)?;
            chart_yaml = Some(buf);
        }
        Ok(())
    })?;
    let raw = chart_yaml.ok_or(ArchiveError::NoChartYaml)?;
    let md = Metadata::from_yaml(&raw)?;
    Ok((md, raw))
}

/// The content of the first regular file whose path (relative to the top folder) satisfies `want`.
pub fn read_file<R: Read>(
    reader: R,
    want: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let mut found: Option<Vec<u8>> = None;
    walk(reader, |path, kind, data| {
        if found.is_none() && *kind == EntryKind::File && want(path) {
            let mut buf = Vec::new();
            data.read_to_end(&mut buf).map_err(corrupt)?;
            found = Some(buf);
        }
        Ok(())
    })?;
    Ok(found)
}

/// Unpacks the archive into `dest` (which should be a fresh, empty directory), dropping the
/// top folder: `mychart/templates/a.yaml` becomes `dest/templates/a.yaml`.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<(), ArchiveError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Write { path, source }
    };
    walk(reader, |rel, kind, data| {
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        match kind {
            EntryKind::Dir => fs::create_dir_all(&target).map_err(write_err(&target))?,
            EntryKind::File => {
                let mut out = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(write_err(&target))?;
                io::copy(data, &mut out).map_err(write_err(&target))?;
            }
            EntryKind::Symlink(link) => symlink(link, &target).map_err(write_err(&target))?,
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &str, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(not(unix))]
fn symlink(_target: &str, at: &Path) -> io::Result<()> {
    Err(io::Error::other(format!(
        "cannot create symlink {}",
        at.display()
    )))
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn corrupt(e: io::Error) -> ArchiveError {
    ArchiveError::Corrupt(e.to_string())
}

fn lossy_path<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).into_owned()
}

/// Rejects absolute paths, Windows drive paths and any `..` component.
fn check_path(raw: &str) -> Result<(), ArchiveError> {
    let bytes = raw.as_bytes();
    if raw.starts_with('/')
        || raw.starts_with('\\')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err(ArchiveError::AbsolutePath(raw.to_string()));
    }
    if raw.split(['/', '\\']).any(|c| c == "..") {
        return Err(ArchiveError::ParentPath(raw.to_string()));
    }
    Ok(())
}

/// Whether a symlink at `rel` (relative to the chart's top folder) pointing at `target`
/// resolves, lexically, to a place inside the chart.
fn link_stays_inside(rel: &str, target: &str) -> bool {
    if target.is_empty() || Path::new(target).is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.split('/').filter(|c| !c.is_empty()).count() as i64 - 1;
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_containment() {
        assert!(link_stays_inside("templates/a.yaml", "b.yaml"));
        assert!(link_stays_inside("templates/a.yaml", "../values.yaml"));
        assert!(!link_stays_inside("templates/a.yaml", "../../etc/passwd"));
        assert!(!link_stays_inside("a", "../x"));
        assert!(!link_stays_inside("a", "/etc/passwd"));
        assert!(link_stays_inside("a/b/c", "../../d"));
        assert!(!link_stays_inside("a/b/c", "x/../../../../d"));
    }

    #[test]
    fn path_checks() {
        assert!(check_path("mychart/Chart.yaml").is_ok());
        for bad in [
            "/etc/passwd",
            "mychart/../../x",
            "C:/x",
            "..",
            "a/..",
            "\\x",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
