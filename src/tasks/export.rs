//! `chart export`: unpack a cached chart into `DIR/<name>/`.
//!
//! The chart is unpacked into a hidden staging directory beside the target and then renamed
//! into place, so an interrupted export never leaves a half-written chart where one is expected.
//!
//! With a keyring ([`export_verified`]), the archive and its provenance file are written too,
//! as `helm pull --verify` writes them (`DIR/NAME-VERSION.tgz` and `.tgz.prov`), checked as
//! written before they are renamed into place, and the chart is unpacked only if they verify.

use std::fs;
use std::io::{self, BufReader, Read as _};
use std::path::{Path, PathBuf};

use crate::chart::archive::{self, ArchiveError};
use crate::chart::artifact::MAX_PROV;
use crate::sign::provenance::{self, Keyring, Verified, VerifyError};
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
    #[error("{reference}: {source}")]
    Provenance {
        reference: String,
        source: VerifyError,
    },
    #[error("{0} exists (use --force to replace it)")]
    Exists(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + use<> {
    let path = path.to_path_buf();
    move |source| ExportError::Io { path, source }
}

/// `dest/<name>` (`<name>` for `.`), after checking it may be written.
fn target(entry: &RefEntry, dest: &Path, force: bool) -> Result<PathBuf, ExportError> {
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
    Ok(target)
}

/// What [`export_verified`] wrote and checked.
#[derive(Debug)]
pub struct Exported {
    /// The unpacked chart, `dest/<name>`.
    pub chart: PathBuf,
    /// `dest/<name>-<version>.tgz`; its provenance file is beside it with `.prov` added.
    pub archive: PathBuf,
    pub verified: Verified,
}

/// Writes `dest/<name>-<version>.tgz` and its `.prov` from the cache, checks them with
/// `keyring` as `helm verify` would, and unpacks the chart into `dest/<name>`. Nothing is
/// written when the provenance does not verify.
pub fn export_verified(
    store: &Store,
    entry: &RefEntry,
    dest: &Path,
    force: bool,
    keyring: &Keyring,
) -> Result<Exported, ExportError> {
    let refuse = |source| ExportError::Provenance {
        reference: entry.reference.to_string(),
        source,
    };
    let target = target(entry, dest, force)?;
    let Some(prov_digest) = &entry.prov else {
        return Err(refuse(VerifyError::Unsigned));
    };
    let file_name = provenance::archive_file_name(&entry.name, &entry.version);
    let archive_path = dest.join(&file_name);
    let prov_path = dest.join(format!("{file_name}.prov"));
    for path in [&archive_path, &prov_path] {
        if !force && fs::symlink_metadata(path).is_ok() {
            return Err(ExportError::Exists(path.clone()));
        }
    }
    fs::create_dir_all(dest).map_err(io_err(dest))?;

    // Both files are written under temporary names, checked as written, and renamed.
    let temp = |suffix: &str| {
        tempfile::Builder::new()
            .prefix(&format!(".{file_name}"))
            .suffix(suffix)
            .tempfile_in(dest)
            .map_err(io_err(dest))
    };
    let mut archive_file = temp(".tgz")?;
    io::copy(&mut store.open_blob(&entry.content)?, &mut archive_file)
        .map_err(io_err(archive_file.path()))?;
    let mut prov_file = temp(".prov")?;
    io::copy(
        &mut store.open_blob(prov_digest)?.take(MAX_PROV + 1),
        &mut prov_file,
    )
    .map_err(io_err(prov_file.path()))?;
    let prov = fs::read(prov_file.path()).map_err(io_err(prov_file.path()))?;
    let written = fs::File::open(archive_file.path()).map_err(io_err(archive_file.path()))?;
    let verified = provenance::verify_chart(
        &prov,
        BufReader::with_capacity(256 * 1024, written),
        &file_name,
        keyring,
    )
    .map_err(refuse)?;

    let chart = unpack(store, entry, dest, target)?;
    archive_file
        .persist(&archive_path)
        .map_err(|e| io_err(&archive_path)(e.error))?;
    prov_file
        .persist(&prov_path)
        .map_err(|e| io_err(&prov_path)(e.error))?;
    Ok(Exported {
        chart,
        archive: archive_path,
        verified,
    })
}

/// Unpacks `entry` into `dest/<name>`; returns that path.
pub fn export(
    store: &Store,
    entry: &RefEntry,
    dest: &Path,
    force: bool,
) -> Result<PathBuf, ExportError> {
    let target = target(entry, dest, force)?;
    unpack(store, entry, dest, target)
}

fn unpack(
    store: &Store,
    entry: &RefEntry,
    dest: &Path,
    target: PathBuf,
) -> Result<PathBuf, ExportError> {
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
