//! Downloading one chart archive from a classic repository, as Helm does, through a hash:
//! checked against the index's digest and capped in size before it is kept (atomically, with
//! its `.prov` when asked). A download cut off is resumed ([`Repo::download_to`]). `repo fetch`, `repo migrate` and the classic repository place of
//! the copy engine all download through here.

use std::path::{Path, PathBuf};

use super::{ClassicError, IndexEntry, Repo, RepoError};
use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Classic(#[from] ClassicError),
    #[error(
        "{url}: digest mismatch: the index says {expected}, the download is {actual}; nothing was kept"
    )]
    DigestMismatch {
        url: String,
        expected: String,
        actual: Digest,
    },
    #[error("{url}: the chart archive is larger than {} MiB, refused; nothing was kept", limit >> 20)]
    TooLarge { url: String, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<RepoError> for FetchError {
    fn from(e: RepoError) -> Self {
        FetchError::Classic(e.into())
    }
}

/// A downloaded chart archive, and its `.prov` when the repository has one.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
    pub prov: Option<PathBuf>,
}

/// The largest chart archive downloaded: an archive that unpacks within Helm's 100 MiB cannot
/// be much larger than that compressed.
pub const MAX_ARCHIVE: u64 = crate::chart::artifact::MAX_LAYER;

/// The index's digest, with or without its `sha256:` prefix.
fn expected_digest(entry: &IndexEntry) -> Option<String> {
    entry
        .digest
        .as_deref()
        .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// Downloads `entry` to `dest` (a file path), atomically; with `with_prov`, also `dest.prov`
/// when the repository serves one.
pub async fn download(
    repo: &Repo,
    entry: &IndexEntry,
    dest: &Path,
    with_prov: bool,
) -> Result<Fetched, FetchError> {
    let url = repo.chart_url(entry)?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".chartcache-fetch-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let prov_url = if with_prov {
        Some(
            reqwest::Url::parse(&format!("{url}.prov"))
                .map_err(|_| RepoError::BadUrl(format!("{url}.prov")))?,
        )
    } else {
        None
    };
    // The archive and its (optional) .prov are asked for at once; the .prov is only kept once
    // the archive has passed its digest check.
    let (archive, prov_bytes) = tokio::join!(
        repo.download_to(&url, temp.as_file_mut(), MAX_ARCHIVE),
        async {
            match &prov_url {
                Some(u) => repo.download_optional(u).await,
                None => Ok(None),
            }
        }
    );
    let (digest, size) = match archive {
        Err(RepoError::TooLarge { .. }) => {
            return Err(FetchError::TooLarge {
                url: crate::classic::http::redact(&url),
                limit: MAX_ARCHIVE,
            });
        }
        other => other?,
    };
    if let Some(expected) = expected_digest(entry)
        && expected != digest.hex()
    {
        return Err(FetchError::DigestMismatch {
            url: crate::classic::http::redact(&url),
            expected,
            actual: digest,
        });
    }
    let prov = match prov_bytes? {
        Some(bytes) => {
            let path = PathBuf::from(format!("{}.prov", dest.display()));
            // Through a temp file and a rename, as the archive: never a half-written .prov.
            let mut prov_temp = tempfile::Builder::new()
                .prefix(".chartcache-fetch-")
                .tempfile_in(dir)
                .map_err(io(dir))?;
            std::io::Write::write_all(&mut prov_temp, &bytes).map_err(io(&path))?;
            prov_temp.persist(&path).map_err(|e| FetchError::Io {
                path: path.clone(),
                source: e.error,
            })?;
            Some(path)
        }
        None => None,
    };
    temp.persist(dest).map_err(|e| FetchError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(Fetched {
        path: dest.to_path_buf(),
        digest,
        size,
        prov,
    })
}
