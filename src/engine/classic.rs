//! A classic chart repository (`https://host/path` with an `index.yaml`) as a read-only place of
//! the copy engine. Each chart version is the artifact `repo migrate` pushes for it: the
//! archive byte for byte (checked against the index digest as it downloads), its config, its
//! `.prov` as the provenance layer, and the manifest with the index's `created` time, made by
//! the same [`ChartArtifact`] as `chart save` of the package, so the digests are the same.
//!
//! Artifacts are named `HOST[:PORT]/PATH/NAME:VERSION` (`+` written `_`) after the repository
//! URL, so `sync https://charts.example.com/stable DEST` names them `DEST/NAME:VERSION`. A
//! version is downloaded once, when its manifest is first asked for, into a temporary
//! directory that lives as long as the source.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Blob, EngineError, Result, Source};
use crate::chart::archive;
use crate::classic::fetch::download;
use crate::classic::{Index, IndexEntry, Repo};
use crate::digest::Digest;
use crate::oci::{ChartArtifact, Descriptor};
use crate::reference::Reference;
use crate::version::{tag_to_version, version_to_tag};

/// One chart version, downloaded and made into its artifact.
struct Prepared {
    dir: tempfile::TempDir,
    archive: PathBuf,
    prov: Option<Vec<u8>>,
    artifact: ChartArtifact,
}

type Slot = Arc<tokio::sync::OnceCell<Arc<Prepared>>>;

/// The versions a selection takes: their artifact names, and the versions no reference can
/// name (`"NAME VERSION"`, why).
pub struct Selection {
    pub named: Vec<Reference>,
    pub unnamed: Vec<(String, String)>,
}

/// A classic repository, read through its index.
pub struct ClassicSource {
    repo: Repo,
    index: Index,
    /// `host[:port][/path]`, the prefix of every artifact name.
    base: String,
    /// Versions being copied, each prepared once (concurrent copies of one version wait for
    /// the first), and let go when its copy is over.
    prepared: Mutex<HashMap<Reference, Slot>>,
}

impl ClassicSource {
    /// Reads the repository's index (the one request made before a copy).
    pub async fn open(repo: Repo) -> Result<Self> {
        let index = repo.index().await.map_err(|e| EngineError::Unsupported {
            what: crate::classic::http::redact(repo.url()),
            reason: e.to_string(),
        })?;
        let base = artifact_base(repo.url());
        Ok(ClassicSource {
            repo,
            index,
            base,
            prepared: Mutex::new(HashMap::new()),
        })
    }

    /// A repository whose index was already read (`serve`'s classic bridge reads the bytes
    /// itself, to pass them through to its clients).
    pub fn from_index(repo: Repo, index: Index) -> Self {
        let base = artifact_base(repo.url());
        ClassicSource {
            repo,
            index,
            base,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// What Helm would warn about in the index (entries skipped).
    pub fn warnings(&self) -> &[String] {
        &self.index.warnings
    }

    fn name_of(&self, entry: &IndexEntry) -> Option<Reference> {
        Reference::parse(&format!(
            "{}/{}:{}",
            self.base,
            entry.name,
            version_to_tag(&entry.version)
        ))
        .ok()
    }

    /// The artifacts of the versions `repo migrate`'s selection takes (chart names, a version
    /// constraint, pre-releases or not), and the versions that cannot be named (a name or
    /// version no reference can hold), each with why.
    pub fn select(
        &self,
        charts: &[String],
        constraint: Option<&crate::constraint::Constraint>,
        devel: bool,
    ) -> std::result::Result<Selection, crate::classic::IndexError> {
        let mut named = Vec::new();
        let mut unnamed = Vec::new();
        for entry in self.index.select(charts, constraint, devel)? {
            match self.name_of(entry) {
                Some(r) => named.push(r),
                None => unnamed.push((
                    format!("{} {}", entry.name, entry.version),
                    format!("{}/{}: not a valid OCI reference", self.base, entry.name),
                )),
            }
        }
        Ok(Selection { named, unnamed })
    }

    fn entry(&self, name: &Reference) -> Option<&IndexEntry> {
        let version = tag_to_version(name.tag()?);
        self.index
            .entries
            .get(name.basename())?
            .iter()
            .find(|e| e.version == version)
    }

    async fn prepare(&self, name: &Reference) -> Result<Arc<Prepared>> {
        let slot = {
            let mut slots = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(slots.entry(name.clone()).or_default())
        };
        slot.get_or_try_init(|| self.download(name))
            .await
            .map(Arc::clone)
    }

    /// Downloads one version (checked against the index) and makes its artifact.
    async fn download(&self, name: &Reference) -> Result<Arc<Prepared>> {
        let entry = self.entry(name).ok_or_else(|| EngineError::NotFound {
            place: crate::classic::http::redact(self.repo.url()),
            name: name.to_string(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("chartcache-classic-")
            .tempdir()
            .map_err(super::io_err(std::env::temp_dir()))?;
        let file = dir.path().join("chart.tgz");
        let fetched = download(&self.repo, entry, &file, true)
            .await
            .map_err(|e| EngineError::Unsupported {
                what: name.to_string(),
                reason: e.to_string(),
            })?;
        let (metadata, _) = super::blocking(|| {
            let f = std::fs::File::open(&file).map_err(super::io_err(&file))?;
            archive::inspect(BufReader::new(f)).map_err(|e| EngineError::Unsupported {
                what: name.to_string(),
                reason: e.to_string(),
            })
        })?;
        let prov = match &fetched.prov {
            Some(p) => Some(std::fs::read(p).map_err(super::io_err(p))?),
            None => None,
        };
        // As `repo migrate` saves it: the index's time, else SOURCE_DATE_EPOCH, else none.
        let created = Some(entry.created.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| {
                crate::env::source_date_epoch().ok().flatten().map(|secs| {
                    crate::output::rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                    )
                })
            });
        let artifact = ChartArtifact::new(
            &metadata,
            fetched.digest,
            fetched.size,
            prov.as_deref(),
            created.as_deref(),
        );
        Ok(Arc::new(Prepared {
            dir,
            archive: file,
            prov,
            artifact,
        }))
    }
}

/// `host[:port]/path` of a repository URL, as far as it is a valid repository name
/// (a path that is not falls back to the host alone).
pub fn artifact_base(url: &reqwest::Url) -> String {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => "localhost".to_string(),
    };
    let path = url.path().trim_matches('/');
    let with_path = format!("{host}/{path}");
    if !path.is_empty() && Reference::parse(&format!("{with_path}/x")).is_ok() {
        with_path
    } else {
        host
    }
}

impl Source for ClassicSource {
    fn describe(&self) -> String {
        crate::classic::http::redact(self.repo.url())
    }

    /// Deletes the version's downloaded files: a sync of a whole repository keeps only the
    /// versions being copied on disk, not every one it has copied.
    fn release(&self, name: &Reference) {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    fn artifacts(&self) -> Result<Option<Vec<Reference>>> {
        Ok(Some(
            self.index
                .entries
                .values()
                .flatten()
                .filter_map(|e| self.name_of(e))
                .collect(),
        ))
    }

    /// A chart manifest whose chart layer is the archive the index names is this version
    /// (as `repo migrate` always judged it): nothing is downloaded to tell.
    fn same_content(&self, name: &Reference, held: &[u8]) -> Option<bool> {
        let want = self.entry(name)?.digest.as_deref()?;
        let want = want
            .strip_prefix("sha256:")
            .unwrap_or(want)
            .to_ascii_lowercase();
        Some(
            crate::oci::Manifest::parse_chart(held)
                .ok()
                .and_then(|m| m.chart_layer().map(|l| l.digest.hex() == want))
                .unwrap_or(false),
        )
    }

    fn compares_content(&self) -> bool {
        true
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move {
            if name.digest().is_some() {
                return Err(EngineError::NotFound {
                    place: self.describe(),
                    name: name.to_string(),
                });
            }
            let p = self.prepare(name).await?;
            let bytes = p.artifact.manifest_bytes.clone();
            let digest = Digest::of(&bytes);
            Ok((bytes, digest))
        }
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move {
            let prepared: Vec<Arc<Prepared>> = {
                let slots = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
                slots
                    .iter()
                    .filter(|(k, _)| k.without_object() == *repo)
                    .filter_map(|(_, slot)| slot.get().cloned())
                    .collect()
            };
            for p in prepared {
                let a = &p.artifact;
                if a.content.digest == desc.digest {
                    return Ok(Blob::File(p.archive.clone()));
                }
                let small = if a.config.digest == desc.digest {
                    Some(a.config_bytes.as_slice())
                } else if a.prov.as_ref().is_some_and(|d| d.digest == desc.digest) {
                    p.prov.as_deref()
                } else {
                    None
                };
                if let Some(bytes) = small {
                    let mut temp = tempfile::NamedTempFile::new_in(p.dir.path())
                        .map_err(super::io_err(p.dir.path()))?;
                    std::io::Write::write_all(&mut temp, bytes)
                        .map_err(super::io_err(p.dir.path()))?;
                    return Ok(Blob::Temp(temp));
                }
            }
            Err(EngineError::NotFound {
                place: self.describe(),
                name: format!("{repo}@{}", desc.digest),
            })
        }
        .boxed()
    }
}
