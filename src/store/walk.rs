//! Finding ref directories under `refs/`: all of them, those of the repositories under one
//! path prefix, or those of one repository. The tree is keyed by host and repository path, so
//! the narrower walks read only the directories of what they return.
//!
//! A directory with a `tags/` child is a repository, and every child of `tags/` holding links
//! is a tag. A repository may itself be named `…/tags`, so a `tags/` child that holds anything
//! but tag directories is walked again as a repository.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::refs::{BrokenRef, RawRef, StoredRef};
use super::{Result, Store, io_err};
use crate::reference::Reference;

/// What a walk yields: each ref directory found, interpreted.
pub(super) type Walked = Vec<std::result::Result<StoredRef, BrokenRef>>;

/// Every ref directory under `refs/`.
pub(super) fn all(store: &Store) -> Result<Walked> {
    under_dir(store, "")
}

/// The refs of the repositories equal to or under `scope` (`HOST[/PATH…]`, path components
/// whole: `h/team` holds `h/team/app`, not `h/teams/app`); every ref for an empty scope.
pub(super) fn under(store: &Store, scope: &str) -> Result<Walked> {
    let scope = scope.trim().trim_end_matches('/');
    if scope.is_empty() {
        return all(store);
    }
    let Some((rel, name)) = scope_dir(scope) else {
        return Ok(Vec::new());
    };
    let mut found = under_dir(store, &rel)?;
    // The directory holds only repositories under the scope; checked again by name.
    found.retain(|r| match r {
        Ok(r) => {
            let repo = r.reference().repository();
            repo == name || repo.starts_with(&format!("{name}/"))
        }
        Err(_) => true,
    });
    Ok(found)
}

/// The refs of one repository: the tag directories of `refs/<repo>/tags/`.
pub(super) fn repository(store: &Store, repo: &Reference) -> Result<Walked> {
    let rel = repo.cache_dir();
    let tags = store.refs_dir().join(&rel).join("tags");
    let mut found = Vec::new();
    read_tags(&tags, &rel, &mut found)?;
    Ok(found)
}

/// The directory (relative to `refs/`) of a scope, and the scope as a repository prefix
/// (`localhost:5000/team` → `localhost_5000/team`); `None` for a scope no reference can have.
fn scope_dir(scope: &str) -> Option<(String, String)> {
    let probe = Reference::parse(&format!("{scope}/x")).ok()?;
    if probe.tag().is_some() || probe.digest().is_some() {
        return None;
    }
    let rel = probe.cache_dir();
    let name = probe.repository();
    Some((
        rel.strip_suffix("/x")?.to_string(),
        name.strip_suffix("/x")?.to_string(),
    ))
}

fn under_dir(store: &Store, rel: &str) -> Result<Walked> {
    let mut found = Vec::new();
    let dir = store.refs_dir().join(rel);
    if dir.is_dir() {
        walk_repo_dir(&dir, rel, &mut found)?;
    }
    Ok(found)
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

fn walk_repo_dir(dir: &Path, rel: &str, out: &mut Walked) -> Result<()> {
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
            if read_tags(&entry.path(), rel, out)? {
                walk_repo_dir(&entry.path(), &child_rel, out)?;
            }
        } else {
            walk_repo_dir(&entry.path(), &child_rel, out)?;
        }
    }
    Ok(())
}

/// Reads the tag directories of one `tags/` directory of repository `rel`, each interpreted as
/// it is read (a walk of 100,000 refs never holds them all as raw links); true when it also
/// holds something else (a nested repository), to be walked as a repository too.
fn read_tags(tags: &Path, rel: &str, out: &mut Walked) -> Result<bool> {
    let mut also_a_repo = false;
    for tag in read_dir_sorted(tags)? {
        let tag_name = tag.file_name().to_string_lossy().into_owned();
        if tag_name.starts_with('.') || !tag.file_type().map_err(io_err(tag.path()))?.is_dir() {
            continue;
        }
        let tag_dir = tag.path();
        let (links, has_dirs) = read_links(&tag_dir)?;
        also_a_repo |= has_dirs;
        if links.is_empty() {
            also_a_repo = true;
        } else {
            let raw = RawRef {
                dir: tag_dir,
                repo_rel: rel.to_string(),
                tag: tag_name,
                links,
            };
            out.push(raw.interpret());
        }
    }
    Ok(also_a_repo)
}

/// The symlinks of a tag directory, and whether it also holds directories.
fn read_links(dir: &Path) -> Result<(BTreeMap<String, PathBuf>, bool)> {
    let mut links = BTreeMap::new();
    let mut has_dirs = false;
    for link in read_dir_sorted(dir)? {
        let ft = link.file_type().map_err(io_err(link.path()))?;
        if ft.is_symlink() {
            let target = fs::read_link(link.path()).map_err(io_err(link.path()))?;
            links.insert(link.file_name().to_string_lossy().into_owned(), target);
        } else if ft.is_dir() {
            has_dirs = true;
        }
    }
    Ok((links, has_dirs))
}

#[cfg(test)]
mod tests {
    use super::scope_dir;

    #[test]
    fn scopes_map_to_their_directories() {
        assert_eq!(
            scope_dir("localhost:5000/team"),
            Some(("localhost_5000/team".into(), "localhost:5000/team".into()))
        );
        assert_eq!(
            scope_dir("oci://example.com"),
            Some(("example.com".into(), "example.com".into()))
        );
        assert_eq!(scope_dir("h/Bad"), None);
        assert_eq!(scope_dir("h/a:1"), None);
    }
}
