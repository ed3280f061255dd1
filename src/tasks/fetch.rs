//! `repo fetch`: one chart version from a classic repository, resolved as Helm resolves it,
//! downloaded through a hash and checked against the index's digest before it is kept.

use std::path::Path;

pub use crate::classic::fetch::{FetchError, Fetched, MAX_ARCHIVE, download};
use crate::classic::{ClassicError, Index, IndexEntry, Repo};

/// Resolves `chart` at `version` (Helm's rules) and downloads it to `dir/<name>-<version>.tgz`.
pub async fn fetch(
    repo: &Repo,
    index: &Index,
    chart: &str,
    version: Option<&str>,
    devel: bool,
    dir: &Path,
) -> Result<(IndexEntry, Fetched), FetchError> {
    let entry = index
        .get(chart, version, devel)
        .map_err(ClassicError::from)?
        .clone();
    let dest = dir.join(format!("{}-{}.tgz", entry.name, entry.version));
    let fetched = download(repo, &entry, &dest, false).await?;
    Ok((entry, fetched))
}
