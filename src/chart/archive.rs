//! Reading chart archives (`.tgz`) safely.
//!
//! Every archive that enters or leaves the cache is read through [`walk`], which enforces Helm's
//! loader rules and our safety rules before any byte reaches a caller: one top folder, no
//! absolute or `..` paths, no links leaving the chart, no devices, at most 5 MiB per file and
//! 100 MiB in all (counted on the bytes actually read, so a lying header cannot smuggle more).
//! [`inspect`], [`read_file`] and [`extract`] are small visitors on top of it.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use std::cell::Cell;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;

use super::metadata::{Metadata, MetadataError};

/// Helm's cap on a chart's unpacked size.
pub const MAX_UNPACKED: u64 = 100 * 1024 * 1024;
/// Helm's cap on one file of a chart.
pub const MAX_FILE: u64 = 5 * 1024 * 1024;
/// Go's cap on a GNU long name or a PAX extended header (`archive/tar`'s `maxSpecialFileSize`).
pub const MAX_SPECIAL: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a valid chart archive: {0}")]
    Corrupt(String),
    #[error("archive entry {0:?} has an absolute path")]
    AbsolutePath(String),
    #[error("archive entry {0:?} points outside the chart (contains '..')")]
    ParentPath(String),
    #[error("archive entry {path:?} has {what} in its path; charts never do")]
    BadPath { path: String, what: &'static str },
    #[error("archive entry {0:?}: its path is not valid UTF-8")]
    NotUtf8(String),
    #[error("an extension header (long name or PAX) of {size} bytes is over the limit of 1 MiB")]
    HeaderTooLarge { size: u64 },
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
    #[error("the chart unpacks to more than Helm's limit of 100 MiB (headers included)")]
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
///
/// The archive is read the way Helm (Go's `compress/gzip` and `archive/tar`) reads it, so what
/// is checked here is what Helm would load: every gzip member (a second member is more of the
/// same tar stream, not trailing junk), GNU long names and PAX `path`/`linkpath` records in Go's
/// order of precedence. The tar crate runs in raw mode so that long-name and PAX entries reach
/// this function as entries and can be capped before they are read into memory.
pub fn walk<R: Read>(
    reader: R,
    mut visit: impl FnMut(&str, &EntryKind, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<String, ArchiveError> {
    let stream = LimitedReader::new(MultiGzDecoder::new(reader), MAX_UNPACKED);
    let tripped = stream.tripped.clone();
    let too_large = |e: io::Error| {
        if tripped.get() {
            ArchiveError::TooLarge
        } else {
            corrupt(e)
        }
    };
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(&too_large)?.raw(true);
    let mut top: Option<String> = None;
    let mut total: u64 = 0;
    // Links and entry paths, checked together at the end: a link is only safe or unsafe in
    // the light of the other links.
    let mut links: HashMap<String, String> = HashMap::new();
    let mut paths: Vec<String> = Vec::new();
    // What the extension entries before a member say about it.
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;
    for entry in entries {
        let mut entry = entry.map_err(&too_large)?;
        let entry_type = entry.header().entry_type();
        let header_size = entry.header().size().map_err(corrupt)?;
        // Extension entries: read (capped, as Go caps them) and applied to the next member.
        let special = match entry_type {
            tar::EntryType::GNULongName => Some(&mut long_name),
            tar::EntryType::GNULongLink => Some(&mut long_link),
            tar::EntryType::XHeader => Some(&mut pax),
            tar::EntryType::XGlobalHeader => None,
            _ => None,
        };
        if matches!(
            entry_type,
            tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
                | tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
        ) {
            if header_size > MAX_SPECIAL {
                return Err(ArchiveError::HeaderTooLarge { size: header_size });
            }
            let mut data = Vec::new();
            (&mut entry)
                .take(MAX_SPECIAL)
                .read_to_end(&mut data)
                .map_err(&too_large)?;
            if let Some(slot) = special {
                if slot.is_some() {
                    return Err(ArchiveError::Corrupt(
                        "two extension headers describe the same entry".into(),
                    ));
                }
                *slot = Some(data);
            }
            continue;
        }
        let member = Member::new(
            entry.header(),
            long_name.take(),
            long_link.take(),
            pax.take(),
            header_size,
        )?;
        let raw = member.path.clone();
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink(member.link.clone().unwrap_or_default()),
            tar::EntryType::Link => return Err(ArchiveError::HardLink(raw)),
            _ => return Err(ArchiveError::Irregular(raw)),
        };
        let (first, rest) = split_entry_path(&raw)?;
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => return Err(ArchiveError::SeveralTops(t.clone(), first)),
            Some(_) => {}
        }
        if rest.is_empty() {
            if kind == EntryKind::Dir {
                continue;
            }
            if kind == EntryKind::File && raw == "Chart.yaml" {
                return Err(ArchiveError::ChartYamlNotInBase);
            }
            return Err(ArchiveError::NotInFolder(raw));
        }
        if let EntryKind::Symlink(target) = &kind {
            check_link_text(&raw, target)?;
        }
        match &kind {
            EntryKind::Symlink(target) => {
                links.insert(rest.clone(), target.clone());
            }
            _ => paths.push(rest.clone()),
        }
        let size = member.size;
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
        io::copy(&mut counting, &mut io::sink()).map_err(&too_large)?;
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
    if long_name.is_some() || long_link.is_some() || pax.is_some() {
        return Err(ArchiveError::Corrupt(
            "the archive ends with an extension header that describes no entry".into(),
        ));
    }
    let top = top.ok_or_else(|| ArchiveError::Corrupt("the archive is empty".into()))?;
    check_links(&top, &links, &paths)?;
    Ok(top)
}

/// One archive member's name, link target and size, after its extension headers: a GNU long
/// name beats a PAX `path`, which beats the header's own (ustar prefix + name), as in Go.
struct Member {
    path: String,
    link: Option<String>,
    size: u64,
}

impl Member {
    fn new(
        header: &tar::Header,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        pax: Option<Vec<u8>>,
        header_size: u64,
    ) -> Result<Self, ArchiveError> {
        let mut pax_path = None;
        let mut pax_link = None;
        if let Some(records) = &pax {
            for record in tar::PaxExtensions::new(records) {
                let record = record.map_err(|_| {
                    ArchiveError::Corrupt("a PAX extended header is malformed".into())
                })?;
                match record.key_bytes() {
                    b"path" => pax_path = Some(record.value_bytes().to_vec()),
                    b"linkpath" => pax_link = Some(record.value_bytes().to_vec()),
                    // Raw mode sizes the member by its header; Go would use this record.
                    // Charts never need it (5 MiB fits any header), so a disagreement is
                    // refused rather than read two ways.
                    b"size" => {
                        let pax_size = record.value().ok().and_then(|v| v.parse::<u64>().ok());
                        if pax_size != Some(header_size) {
                            return Err(ArchiveError::Corrupt(
                                "a PAX size record disagrees with its entry's header".into(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        let trim = |mut bytes: Vec<u8>| {
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            bytes
        };
        let path_bytes = long_name
            .map(trim)
            .or(pax_path)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link_bytes = long_link
            .map(trim)
            .or(pax_link)
            .or_else(|| header.link_name_bytes().map(|b| b.into_owned()));
        let text = |bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|e| {
                ArchiveError::NotUtf8(String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
        };
        Ok(Member {
            path: text(path_bytes)?,
            link: link_bytes.map(text).transpose()?,
            size: header_size,
        })
    }
}

/// Every link must resolve inside the chart, following the other links on the way, and no
/// entry may sit below a link (writing it would write through the link).
fn check_links(
    top: &str,
    links: &HashMap<String, String>,
    paths: &[String],
) -> Result<(), ArchiveError> {
    for path in paths.iter().chain(links.keys()) {
        let mut prefix = String::new();
        for component in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, init)| init)
        {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            if let Some(target) = links.get(&prefix) {
                return Err(ArchiveError::LinkEscapes {
                    path: format!("{top}/{path}"),
                    target: format!("{top}/{prefix} -> {target}"),
                });
            }
        }
    }
    for (path, target) in links {
        if !resolves_inside(links, path, target) {
            return Err(ArchiveError::LinkEscapes {
                path: format!("{top}/{path}"),
                target: target.clone(),
            });
        }
    }
    Ok(())
}

/// Resolves the link at `path` (relative to the chart root) to `target`, substituting any
/// other link met on the way, and tells whether it stays inside the chart. Absolute targets,
/// a climb above the root, and chains of more than 40 links are all "outside".
fn resolves_inside(links: &HashMap<String, String>, path: &str, target: &str) -> bool {
    let mut stack: Vec<String> = path.split('/').map(str::to_string).collect();
    stack.pop();
    let mut pending: VecDeque<String> = VecDeque::new();
    let push_target = |pending: &mut VecDeque<String>, t: &str| -> bool {
        if t.is_empty() || t.starts_with('/') || Path::new(t).is_absolute() {
            return false;
        }
        for c in t.split('/').rev() {
            pending.push_front(c.to_string());
        }
        true
    };
    if !push_target(&mut pending, target) {
        return false;
    }
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            name => {
                stack.push(name.to_string());
                if let Some(next) = links.get(&stack.join("/")) {
                    hops += 1;
                    stack.pop();
                    if hops > 40 || !push_target(&mut pending, next) {
                        return false;
                    }
                }
            }
        }
    }
    true
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

/// The content of the (last) regular file whose path (relative to the top folder) satisfies `want`.
pub fn read_file<R: Read>(
    reader: R,
    want: impl Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let mut found: Option<Vec<u8>> = None;
    walk(reader, |path, kind, data| {
        // The last copy of a repeated entry wins, as in Helm's loader.
        if *kind == EntryKind::File && want(path) {
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
    // Links are made last, once the whole archive has been checked, so no file is ever
    // written through one.
    let mut deferred: Vec<(PathBuf, String)> = Vec::new();
    walk(reader, |rel, kind, data| {
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        match kind {
            EntryKind::Dir => fs::create_dir_all(&target).map_err(write_err(&target))?,
            // A repeated entry replaces the earlier one, as in tar and Helm.
            EntryKind::File => {
                let mut out = fs::File::create(&target).map_err(write_err(&target))?;
                io::copy(data, &mut out).map_err(write_err(&target))?;
            }
            EntryKind::Symlink(link) => deferred.push((target, link.clone())),
        }
        Ok(())
    })?;
    for (at, link) in deferred {
        if fs::symlink_metadata(&at).is_ok() {
            fs::remove_file(&at).map_err(write_err(&at))?;
        }
        crate::fsx::symlink(&link, &at).map_err(write_err(&at))?;
    }
    Ok(())
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

/// Splits an entry path into its top folder and the path below it, after checking every
/// component: no absolute or drive paths, no empty (`a//b`), `.` or `..` components, no
/// backslashes (Helm would read them as separators) and no control characters. A trailing `/`
/// (directories) is allowed. Helm normalises some of these and refuses others; refusing them
/// all keeps what is checked and what is written the same path.
fn split_entry_path(raw: &str) -> Result<(String, String), ArchiveError> {
    let bad = |what| ArchiveError::BadPath {
        path: raw.to_string(),
        what,
    };
    let bytes = raw.as_bytes();
    if raw.starts_with('/')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err(ArchiveError::AbsolutePath(raw.to_string()));
    }
    if raw.contains('\\') {
        return Err(bad("a backslash"));
    }
    if raw.chars().any(char::is_control) {
        return Err(bad("a control character"));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    let mut components = trimmed.split('/');
    let mut parts = Vec::new();
    for c in components.by_ref() {
        match c {
            "" => return Err(bad("an empty component ('//')")),
            "." => return Err(bad("a '.' component")),
            ".." => return Err(ArchiveError::ParentPath(raw.to_string())),
            c => parts.push(c),
        }
    }
    let (first, rest) = parts.split_first().ok_or_else(|| bad("no name"))?;
    Ok((first.to_string(), rest.join("/")))
}

/// A link target must be plain text: no control characters, no backslashes. Where it leads is
/// checked by [`check_links`] once every entry is known.
fn check_link_text(path: &str, target: &str) -> Result<(), ArchiveError> {
    if target.chars().any(char::is_control) || target.contains('\\') {
        return Err(ArchiveError::LinkEscapes {
            path: path.to_string(),
            target: target.to_string(),
        });
    }
    Ok(())
}

/// The decompressed stream, capped at `limit` bytes in all (tar headers, padding and extension
/// entries included): past it, reads fail and `tripped` says why.
struct LimitedReader<R> {
    inner: R,
    left: u64,
    tripped: Rc<Cell<bool>>,
}

impl<R> LimitedReader<R> {
    fn new(inner: R, limit: u64) -> Self {
        LimitedReader {
            inner,
            left: limit,
            tripped: Rc::new(Cell::new(false)),
        }
    }
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a stream that ends exactly at the limit from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.tripped.set(true);
                    Err(io::Error::other(
                        "the decompressed archive is over the limit",
                    ))
                }
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn link_containment() {
        let none = HashMap::new();
        assert!(resolves_inside(&none, "templates/a.yaml", "b.yaml"));
        assert!(resolves_inside(&none, "templates/a.yaml", "../values.yaml"));
        assert!(!resolves_inside(
            &none,
            "templates/a.yaml",
            "../../etc/passwd"
        ));
        assert!(!resolves_inside(&none, "a", "../x"));
        assert!(!resolves_inside(&none, "a", "/etc/passwd"));
        assert!(resolves_inside(&none, "a/b/c", "../../d"));
        assert!(!resolves_inside(&none, "a/b/c", "x/../../../../d"));
    }

    #[test]
    fn chained_links_are_followed() {
        // l -> . ; l2 -> l/.. climbs out through l; l3 -> l2/.. further still.
        let chain = links(&[("l", "."), ("l2", "l/.."), ("l3", "l2/..")]);
        assert!(resolves_inside(&chain, "l", "."));
        assert!(!resolves_inside(&chain, "l2", "l/.."));
        assert!(!resolves_inside(&chain, "l3", "l2/.."));
        let loop_ = links(&[("a", "b"), ("b", "a")]);
        assert!(!resolves_inside(&loop_, "a", "b"));
        let fine = links(&[("t", "templates"), ("x", "t/a.yaml")]);
        assert!(resolves_inside(&fine, "x", "t/a.yaml"));
    }

    #[test]
    fn nothing_may_live_below_a_link() {
        let l = links(&[("l", "templates")]);
        assert!(check_links("c", &l, &["l/pwned.txt".to_string()]).is_err());
        assert!(check_links("c", &l, &["templates/a.yaml".to_string()]).is_ok());
    }

    #[test]
    fn path_checks() {
        assert_eq!(
            split_entry_path("mychart/templates/a.yaml").unwrap(),
            ("mychart".to_string(), "templates/a.yaml".to_string())
        );
        assert_eq!(
            split_entry_path("mychart/").unwrap(),
            ("mychart".to_string(), String::new())
        );
        for bad in [
            "/etc/passwd",
            "mychart/../../x",
            "C:/x",
            "..",
            "a/..",
            "\\x",
            "mychart//tmp/x",
            "mychart/./x",
            "./mychart/x",
            "mychart/a\x1b[31m",
            "mychart/a\nb",
            "",
            "mychart//",
        ] {
            assert!(split_entry_path(bad).is_err(), "{bad:?}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever an archive says, an accepted entry path joined below a directory
            /// stays below it: no empty, `.`, `..` or absolute component survives, and no
            /// control character or backslash.
            #[test]
            fn accepted_paths_stay_inside(raw in "[a-z./\\\\\\x00-\\x1f\\x7f-\\u{9f}:A-Z]{0,40}") {
                if let Ok((top, rest)) = split_entry_path(&raw) {
                    prop_assert!(!top.is_empty() && top != "." && top != "..");
                    for c in rest.split('/').filter(|_| !rest.is_empty()) {
                        prop_assert!(!c.is_empty() && c != "." && c != "..", "{raw:?}");
                    }
                    prop_assert!(!raw.chars().any(char::is_control));
                    prop_assert!(!raw.contains('\\'));
                    let base = Path::new("/base");
                    let joined = base.join(&rest);
                    prop_assert!(joined.starts_with(base));
                    prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
                }
            }

            /// Link containment never panics and never accepts an absolute or climbing target.
            #[test]
            fn link_resolution_is_total(path in "[a-z]{1,3}(/[a-z.]{1,3}){0,3}", target in "[a-z./]{0,12}") {
                let inside = resolves_inside(&HashMap::new(), &path, &target);
                if target.starts_with('/') {
                    prop_assert!(!inside);
                }
            }

            /// Arbitrary bytes never panic the walker.
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = inspect(&bytes[..]);
            }
        }
    }
}
