//! Tag references: `refs/<host_port>/<repo…>/tags/<tag>/` directories of relative symlinks.
//!
//! A ref is written as a hidden sibling (`tags/.new-<tag>-…`) and swapped into place with one
//! rename (`RENAME_EXCHANGE` on Linux), so readers and crashes see the old ref or the new one.
//!
//! Walking: a directory with a `tags/` child is a repository, and every child of `tags/` holding
//! a `chart` link is a tag. A repository may itself be named `…/tags`, so a `tags/` child that
//! holds anything but tag directories is walked again as a repository.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Result, Store, StoreError, atomic_write, io_err};
use crate::digest::Digest;
use crate::reference::Reference;

/// The link names of a ref directory.
const CHART: &str = "chart";
const CONTENT: &str = "content";
const META: &str = "meta";
const MANIFEST: &str = "manifest";
const PROV: &str = "prov";

/// What a tag points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTarget {
    pub name: String,
    pub version: String,
    pub manifest: Digest,
    pub config: Digest,
    pub content: Digest,
    pub prov: Option<Digest>,
}

/// A complete ref read from disk. `manifest` is absent only in caches written by Helm's alpha,
/// which had no manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    pub reference: Reference,
    pub name: String,
    pub version: String,
    pub config: Digest,
    pub content: Digest,
    pub manifest: Option<Digest>,
    pub prov: Option<Digest>,
}

/// A ref directory found by the walk, before its links are interpreted.
#[derive(Debug)]
pub(super) struct RawRef {
    pub dir: PathBuf,
    pub repo_rel: String,
    pub tag: String,
    pub links: BTreeMap<String, PathBuf>,
}

/// Why a ref directory is not a usable ref (reported by `verify`).
#[derive(Debug)]
pub(super) struct BrokenRef {
    pub dir: PathBuf,
    pub reason: String,
}

impl RawRef {
    fn interpret(self) -> std::result::Result<RefEntry, BrokenRef> {
        let broken = |reason: String| BrokenRef {
            dir: self.dir.clone(),
            reason,
        };
        let reference = Reference::from_cache_dir(&self.repo_rel, &self.tag)
            .map_err(|e| broken(e.to_string()))?;
        let blob = |name: &str| -> std::result::Result<Option<Digest>, BrokenRef> {
            match self.links.get(name) {
                None => Ok(None),
                Some(target) => target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| Digest::from_hex(n).ok())
                    .map(Some)
                    .ok_or_else(|| broken(format!("link {name:?} does not point at a blob"))),
            }
        };
        let chart = self
            .links
            .get(CHART)
            .ok_or_else(|| broken("no chart link".into()))?;
        // …/charts/<name>/versions/<version>
        let parts: Vec<&str> = chart.iter().filter_map(|c| c.to_str()).collect();
        let (name, version) = match parts.as_slice() {
            [.., name, "versions", version] => (name.to_string(), version.to_string()),
            _ => return Err(broken(format!("chart link {chart:?} is malformed"))),
        };
        // A cache copied from elsewhere is outside input too: the name names export
        // directories, so it must be a chart name, not `..`.
        crate::chart::metadata::check_name(&name)
            .and_then(|()| crate::chart::metadata::check_version(&version))
            .map_err(|e| broken(format!("chart link {chart:?}: {e}")))?;
        Ok(RefEntry {
            reference,
            name,
            version,
            config: blob(META)?.ok_or_else(|| broken("no meta link".into()))?,
            content: blob(CONTENT)?.ok_or_else(|| broken("no content link".into()))?,
            manifest: blob(MANIFEST)?,
            prov: blob(PROV)?,
        })
    }
}

/// Every ref directory under `refs/`, interpreted.
pub(super) fn walk(store: &Store) -> Result<Vec<std::result::Result<RefEntry, BrokenRef>>> {
    let mut raw = Vec::new();
    let refs = store.refs_dir();
    if refs.is_dir() {
        walk_repo_dir(&refs, "", &mut raw)?;
    }
    Ok(raw.into_iter().map(RawRef::interpret).collect())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries: Vec<fs::DirEntry> = match fs::read_dir(dir) {
        Ok(rd) => rd.collect::<io::Result<_>>().map_err(io_err(dir))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

fn walk_repo_dir(dir: &Path, rel: &str, out: &mut Vec<RawRef>) -> Result<()> {
    for entry in read_dir_sorted(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type().map_err(io_err(entry.path()))?.is_dir() {
            continue;
        }
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        // `tags` is a tags directory only below a repository, i.e. below `<host>/<repo…>`.
        if name == "tags" && rel.contains('/') {
            let mut also_a_repo = false;
            for tag in read_dir_sorted(&entry.path())? {
                let tag_name = tag.file_name().to_string_lossy().into_owned();
                if tag_name.starts_with('.')
                    || !tag.file_type().map_err(io_err(tag.path()))?.is_dir()
                {
                    continue;
                }
                let tag_dir = tag.path();
                let mut links = BTreeMap::new();
                for link in read_dir_sorted(&tag_dir)? {
                    let ft = link.file_type().map_err(io_err(link.path()))?;
                    if ft.is_symlink() {
                        let target = fs::read_link(link.path()).map_err(io_err(link.path()))?;
                        links.insert(link.file_name().to_string_lossy().into_owned(), target);
                    } else if ft.is_dir() {
                        also_a_repo = true;
                    }
                }
                if !links.is_empty() {
                    out.push(RawRef {
                        dir: tag_dir,
                        repo_rel: rel.to_string(),
                        tag: tag_name,
                        links,
                    });
                } else {
                    also_a_repo = true;
                }
            }
            if also_a_repo {
                walk_repo_dir(&entry.path(), &child_rel, out)?;
            }
        } else {
            walk_repo_dir(&entry.path(), &child_rel, out)?;
        }
    }
    Ok(())
}

fn tag_of(reference: &Reference) -> Result<&str> {
    reference
        .tag()
        .ok_or_else(|| StoreError::NoTagOrDigest(reference.repository()))
}

fn tag_dir(store: &Store, reference: &Reference, tag: &str) -> PathBuf {
    store
        .refs_dir()
        .join(reference.cache_dir())
        .join("tags")
        .join(tag)
}

/// Reads one tag's ref.
fn read_tag(store: &Store, reference: &Reference) -> Result<Option<RefEntry>> {
    let tag = tag_of(reference)?;
    let dir = tag_dir(store, reference, tag);
    let mut links = BTreeMap::new();
    for name in [CHART, CONTENT, META, MANIFEST, PROV] {
        match fs::read_link(dir.join(name)) {
            Ok(target) => {
                links.insert(name.to_string(), target);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dir.join(name))(e)),
        }
    }
    if links.is_empty() {
        return Ok(None);
    }
    let raw = RawRef {
        dir: dir.clone(),
        repo_rel: reference.cache_dir(),
        tag: tag.to_string(),
        links,
    };
    raw.interpret().map(Some).map_err(|b| StoreError::Corrupt {
        path: b.dir,
        reason: b.reason,
    })
}

/// By tag; by digest, the refs of the same repository whose manifest has that digest (a tag
/// given too must match).
pub(super) fn resolve(store: &Store, reference: &Reference) -> Result<RefEntry> {
    let not_found = || StoreError::RefNotFound(reference.to_string());
    match (reference.tag(), reference.digest()) {
        (_, Some(digest)) => {
            let repo = reference.without_object();
            walk(store)?
                .into_iter()
                .filter_map(|r| r.ok())
                .find(|e| {
                    e.reference.without_object() == repo
                        && e.manifest.as_ref() == Some(digest)
                        && reference.tag().is_none_or(|t| e.reference.tag() == Some(t))
                })
                .ok_or_else(not_found)
        }
        (Some(_), None) => read_tag(store, reference)?.ok_or_else(not_found),
        (None, None) => Err(StoreError::NoTagOrDigest(reference.repository())),
    }
}

/// `../` from a tag directory up to the cache root: refs, host, each repo component, tags, tag.
fn up_to_root(reference: &Reference) -> String {
    "../".repeat(reference.path().split('/').count() + 4)
}

pub(super) fn set(store: &Store, reference: &Reference, target: &RefTarget) -> Result<()> {
    let tag = tag_of(reference)?;
    // The name and version become `charts/<name>/versions/<version>`: callers validate them
    // where they enter, and the store refuses anything that could leave that directory.
    let marker_names = crate::chart::metadata::check_name(&target.name)
        .and_then(|()| crate::chart::metadata::check_version(&target.version));
    if let Err(e) = marker_names {
        return Err(StoreError::Corrupt {
            path: store.root().join("charts"),
            reason: format!("refusing to store {reference}: {e}"),
        });
    }
    for digest in [&target.manifest, &target.config, &target.content]
        .into_iter()
        .chain(target.prov.as_ref())
    {
        if !store.has_blob(digest) {
            return Err(StoreError::BlobMissing(digest.clone()));
        }
    }
    let marker = store
        .root()
        .join("charts")
        .join(&target.name)
        .join("versions")
        .join(&target.version);
    if !marker.is_file() {
        let parent = marker.parent().unwrap_or(store.root());
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        atomic_write(&store.tmp_dir(), &marker, b"-")?;
    }

    let final_dir = tag_dir(store, reference, tag);
    let tags_dir = final_dir.parent().unwrap_or(store.root()).to_path_buf();
    fs::create_dir_all(&tags_dir).map_err(io_err(&tags_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".new-{tag}-"))
        .tempdir_in(&tags_dir)
        .map_err(io_err(&tags_dir))?;
    let up = up_to_root(reference);
    let blob = |d: &Digest| format!("{up}blobs/sha256/{}", d.hex());
    let mut links = vec![
        (
            CHART,
            format!("{up}charts/{}/versions/{}", target.name, target.version),
        ),
        (CONTENT, blob(&target.content)),
        (META, blob(&target.config)),
        (MANIFEST, blob(&target.manifest)),
    ];
    if let Some(prov) = &target.prov {
        links.push((PROV, blob(prov)));
    }
    for (name, dest) in links {
        let at = staging.path().join(name);
        crate::fsx::symlink(&dest, &at).map_err(io_err(&at))?;
    }
    let staging = staging.keep();
    swap_into_place(store, &staging, &final_dir)
}

/// Records a swap that carries subdirectories across, so the next writer can finish it.
const SWAP_JOURNAL: &str = "ref-swap.journal";

/// Puts `staging` at `target`; if `target` existed, its old links end up at `staging` and are
/// deleted. Readers never see `target` missing.
///
/// A tag directory can also hold a nested repository (`x/tags/simple/tags/1` is repository
/// `x/tags/simple`, inside the directory of `x:simple`). Such subdirectories are carried over
/// to the new directory; that takes several steps, so they are journaled and a crash between
/// them is completed by [`recover`] instead of losing the nested repository.
fn swap_into_place(store: &Store, staging: &Path, target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::rename(staging, target).map_err(io_err(target))?;
            return Ok(());
        }
        Err(e) => return Err(io_err(target)(e)),
        Ok(_) => {}
    }
    let nested = subdirectories(target)?;
    if nested.is_empty() {
        exchange(staging, target).map_err(io_err(target))?;
        return fs::remove_dir_all(staging).map_err(io_err(staging));
    }
    let journal = store.root().join(SWAP_JOURNAL);
    let record = format!("{}\n{}\n", staging.display(), target.display());
    atomic_write(&store.tmp_dir(), &journal, record.as_bytes())?;
    exchange(staging, target).map_err(io_err(target))?;
    carry_subdirectories(staging, target)?;
    fs::remove_dir_all(staging).map_err(io_err(staging))?;
    fs::remove_file(&journal).map_err(io_err(&journal))
}

fn subdirectories(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    Ok(read_dir_sorted(dir)?
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect())
}

fn carry_subdirectories(from: &Path, to: &Path) -> Result<()> {
    for name in subdirectories(from)? {
        let dest = to.join(&name);
        if fs::symlink_metadata(&dest).is_err() {
            fs::rename(from.join(&name), &dest).map_err(io_err(&dest))?;
        }
    }
    Ok(())
}

/// Finishes a journaled swap a crashed writer left half done. Called under the write lock.
pub(super) fn recover(store: &Store) -> Result<()> {
    let journal = store.root().join(SWAP_JOURNAL);
    let Ok(record) = fs::read_to_string(&journal) else {
        return Ok(());
    };
    let mut lines = record.lines();
    if let (Some(staging), Some(target)) = (lines.next(), lines.next()) {
        let (staging, target) = (Path::new(staging), Path::new(target));
        // Only ever a hidden directory next to the target, whatever the journal says.
        let sane = staging.parent() == target.parent()
            && staging
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".new-") || n.starts_with(".del-"));
        if sane && staging.is_dir() {
            if target.is_dir() {
                carry_subdirectories(staging, target)?;
            }
            fs::remove_dir_all(staging).map_err(io_err(staging))?;
        }
    }
    fs::remove_file(&journal).map_err(io_err(&journal))
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

/// Without an atomic exchange, the old ref is moved aside first; a crash in between leaves the
/// complete new ref in its hidden staging directory, which `prune` clears.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let aside = a.with_extension("old");
    fs::rename(b, &aside)?;
    fs::rename(a, b)?;
    fs::rename(&aside, a)
}

/// Removes a tag: its links are swapped out for an empty directory in one step (keeping any
/// nested repository below it), then the directory and its empty parents are tidied away.
pub(super) fn remove(store: &Store, reference: &Reference) -> Result<bool> {
    let tag = tag_of(reference)?;
    let dir = tag_dir(store, reference, tag);
    if read_tag(store, reference)?.is_none() {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(store.root());
    let empty = tempfile::Builder::new()
        .prefix(&format!(".del-{tag}-"))
        .tempdir_in(parent)
        .map_err(io_err(parent))?
        .keep();
    swap_into_place(store, &empty, &dir)?;
    // Tidy empty directories up to refs/.
    let refs = store.refs_dir();
    let mut cur = dir;
    while cur.starts_with(&refs) && cur != refs {
        if fs::remove_dir(&cur).is_err() {
            break;
        }
        match cur.parent() {
            Some(p) => cur = p.to_path_buf(),
            None => break,
        }
    }
    Ok(true)
}
