//! Classic chart repositories: an `index.yaml` and chart archives served over HTTP(S), the
//! format ChartMuseum, GitHub Pages and bucket-hosted repositories use. Read-only here: the
//! `repo fetch` and `repo migrate` tasks build on it.

pub mod fetch;
pub mod http;
pub mod index;

pub use http::{Repo, RepoError, RepoOptions};
pub use index::{Index, IndexEntry, IndexError};

#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Index(#[from] IndexError),
}
