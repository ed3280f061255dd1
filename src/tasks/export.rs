//! `chart export`: unpack a cached chart into `DIR/<name>/`.
//!
//! The chart is unpacked into a hidden staging directory beside the target and then renamed
//! into place, so an interrupted export never leaves a half-written chart where one is expected.

use std::fs;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use crate::chart::archive::{self, ArchiveError};
use crate::store::{RefEntry, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} exists and is not empty (use --force to replace it)")]
    NotEmpty(PathBuf),
    #[error("{0}: not a directory (-d names the directory to write NAME/ into)")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{reference}: {source}")]
    Archive {
        reference: String,
        source: ArchiveError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Unpacks `entry` into `dest/<name>`; returns that path.
pub fn export(
    store: &Store,
    entry: &RefEntry,
    dest: &Path,
    force: bool,
) -> Result<PathBuf, ExportError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let target = if dest == Path::new(".") {
        PathBuf::from(&entry.name)
    } else {
        dest.join(&entry.name)
    };
    if fs::metadata(dest).is_ok_and(|m| !m.is_dir()) {
        return Err(ExportError::NotADirectory(dest.to_path_buf()));
    }
    let occupied = match fs::read_dir(&target) {
        Ok(mut rd) => rd.next().is_some(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        // A file, or unreadable: only --force may replace it.
        Err(_) => true,
    };
    if occupied && !force {
        return Err(ExportError::NotEmpty(target));
    }
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{}-export-", entry.name))
        .tempdir_in(dest)
        .map_err(io_err(dest))?;
    let blob = store.open_blob(&entry.content)?;
    archive::extract(BufReader::with_capacity(256 * 1024, blob), staging.path()).map_err(
        |source| ExportError::Archive {
            reference: entry.reference.to_string(),
            source,
        },
    )?;
    if fs::symlink_metadata(&target).is_ok() {
        // Move the old one aside inside the staging area, so it is deleted with it.
        let aside = staging.path().join(".replaced");
        fs::rename(&target, &aside).map_err(io_err(&target))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, &target).map_err(io_err(&target))?;
    let old = target.join(".replaced");
    if old.exists() {
        let removed = if old.is_dir() {
            fs::remove_dir_all(&old)
        } else {
            fs::remove_file(&old)
        };
        removed.map_err(io_err(&old))?;
    }
    Ok(target)
}
