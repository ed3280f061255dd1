//! Swapping a ref directory into place in one step (`RENAME_EXCHANGE` on Linux), so readers
//! and crashes see the old ref or the new one, and finishing a swap a crash interrupted.

use std::fs;
use std::io;
use std::path::Path;

use super::{Result, Store, atomic_write, io_err};

/// Records a swap that carries subdirectories across, so the next writer can finish it.
const SWAP_JOURNAL: &str = "ref-swap.journal";

/// Puts `staging` at `target`; if `target` existed, its old links end up at `staging` and are
/// deleted. Readers never see `target` missing.
///
/// A tag directory can also hold a nested repository (`x/tags/simple/tags/1` is repository
/// `x/tags/simple`, inside the directory of `x:simple`). Such subdirectories are carried over
/// to the new directory; that takes several steps, so they are journaled and a crash between
/// them is completed by [`recover`] instead of losing the nested repository.
pub(super) fn swap_into_place(store: &Store, staging: &Path, target: &Path) -> Result<()> {
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
    let mut names: Vec<std::ffi::OsString> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(dir)(e)),
    };
    names.sort();
    Ok(names)
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
