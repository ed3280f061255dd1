//! The classic bridge: `serve --upstream https://charts.example.com/path`, a classic chart
//! repository served through the OCI pull API, so registry proxies (Harbor, zot, ECR pull
//! through) and `helm pull oci://` can pull from repositories that never published to OCI.
//!
//! The upstream is read through the copy engine's [`ClassicSource`]: each chart version is
//! exactly the artifact `repo migrate` pushes for it (same manifest, config and layer digests,
//! so a later migration matches what clients already pulled). Served names are the chart
//! names: `/v2/_catalog` and `tags/list` come from the index (tags are versions, `+` written
//! `_`); the first request for a version's manifest downloads its archive (checked against the
//! index digest), copies the artifact into the cache with one `engine::copy`, and everything
//! after is served from the cache, also while the upstream is away. The index itself passes
//! through: its bytes as the upstream sent them (and gzip-compressed), with the downloads it
//! names relative to the repository served here from the same cache.
//!
//! The index is read again every `--index-ttl`: a version whose index digest changed is copied
//! again when next asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::index::{Encoded, Rendered};
use super::library::Library;
use super::metrics::Fetch;
use super::names::{ApiError, Namespace, Object};
use crate::classic::{Index, Repo, RepoOptions};
use crate::engine::Source;
use crate::engine::cache::CachePlace;
use crate::engine::classic::{ClassicSource, artifact_base};
use crate::engine::copy::{Job, copy};
use crate::reference::Reference;
use crate::store::RefEntry;
use crate::version::version_to_tag;

/// A classic repository upstream.
pub struct ClassicOptions {
    /// The repository URL (where `index.yaml` is).
    pub url: String,
    pub repo: RepoOptions,
    /// How long one reading of the index is used before the index is read again.
    pub index_ttl: Duration,
}

impl ClassicOptions {
    /// How the repository's artifacts are named in the cache (`HOST[:PORT]/PATH/NAME`), as
    /// served names (`NAME`) see them.
    pub fn namespace(&self) -> Option<Namespace> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        let base = artifact_base(&url);
        let (host, prefix) = base.split_once('/').unwrap_or((base.as_str(), ""));
        Some(Namespace::Upstream {
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// One reading of the upstream's index.
pub(super) struct Listing {
    source: ClassicSource,
    /// The index as the upstream sent it, and compressed.
    pub view: Arc<Rendered>,
    /// Chart name → tag → artifact.
    names: BTreeMap<String, BTreeMap<String, Reference>>,
    /// Download path (from the server root, decoded) → artifact, and whether it is the `.prov`.
    files: HashMap<String, (Reference, bool)>,
}

pub(super) struct Bridge {
    options: ClassicOptions,
    listing: RwLock<Option<(Instant, Arc<Listing>)>>,
    /// Held by whoever reads the index, so one reading runs at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// One copy at a time per version; later requests wait, then find it cached.
    inflight: Mutex<HashMap<Reference, Arc<tokio::sync::Mutex<()>>>>,
    answered: Mutex<Option<Instant>>,
}

/// Why the index could not be read.
pub type BridgeError = crate::classic::ClassicError;

/// Reads the repository's index: its bytes (passed through) and what they list.
pub async fn read_index(options: &ClassicOptions) -> Result<(Repo, Vec<u8>, Index), BridgeError> {
    let repo = Repo::new(&options.url, options.repo.clone())?;
    let (bytes, index) = repo.index_with_bytes().await?;
    Ok((repo, bytes, index))
}

impl Listing {
    fn new(repo: Repo, bytes: Vec<u8>, index: Index) -> Self {
        let base = repo.url().clone();
        let artifacts = artifact_base(&base);
        let mut names: BTreeMap<String, BTreeMap<String, Reference>> = BTreeMap::new();
        let mut files = HashMap::new();
        for entry in index.entries.values().flatten() {
            let tag = version_to_tag(&entry.version);
            let Ok(r) = Reference::parse(&format!("{artifacts}/{}:{tag}", entry.name)) else {
                continue;
            };
            names
                .entry(entry.name.clone())
                .or_default()
                .insert(tag, r.clone());
            // A download the index names under the repository URL is served here, at the
            // same path relative to this server (where a client resolves a relative URL).
            if let Ok(url) = repo.chart_url(entry)
                && let Some(rel) = url.as_str().strip_prefix(base.as_str())
                && let Some(path) = super::http::percent_decode(rel.split('?').next().unwrap_or(""))
            {
                files.insert(format!("{path}.prov"), (r.clone(), true));
                files.insert(path, (r, false));
            }
        }
        let view = Arc::new(Rendered {
            yaml: Encoded::new(bytes),
            json: None,
            entries: names.values().map(BTreeMap::len).sum(),
        });
        Listing {
            source: ClassicSource::from_index(repo, index),
            view,
            names,
            files,
        }
    }

    pub fn catalog(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    pub fn tags(&self, name: &str) -> Option<Vec<String>> {
        self.names.get(name).map(|t| t.keys().cloned().collect())
    }

    fn artifact(&self, name: &str, tag: &str) -> Option<&Reference> {
        self.names.get(name)?.get(tag)
    }
}

impl Bridge {
    pub(super) fn new(options: ClassicOptions) -> Self {
        Bridge {
            options,
            listing: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            inflight: Mutex::new(HashMap::new()),
            answered: Mutex::new(None),
        }
    }

    pub(super) fn last_answer(&self) -> Option<Duration> {
        self.answered.lock().ok()?.map(|at| at.elapsed())
    }

    fn answered(&self) {
        if let Ok(mut at) = self.answered.lock() {
            *at = Some(Instant::now());
        }
    }

    fn cached(&self) -> Option<(Instant, Arc<Listing>)> {
        self.listing.read().ok().and_then(|l| l.clone())
    }
}

impl Library {
    fn bridge(&self) -> Result<&Bridge, ApiError> {
        self.bridge
            .as_ref()
            .ok_or_else(|| ApiError::internal("no classic upstream"))
    }

    /// The current reading of the upstream's index: read again (once, by one request) when
    /// older than the TTL; a stale one is served while the upstream cannot be read.
    pub(super) async fn listing(self: &Arc<Self>) -> Result<Arc<Listing>, ApiError> {
        let bridge = self.bridge()?;
        if let Some((at, l)) = bridge.cached()
            && at.elapsed() < bridge.options.index_ttl
        {
            return Ok(l);
        }
        let _one = bridge.refreshing.lock().await;
        if let Some((at, l)) = bridge.cached()
            && at.elapsed() < bridge.options.index_ttl
        {
            return Ok(l);
        }
        match self.read_listing().await {
            Ok(l) => Ok(l),
            Err(e) => match bridge.cached() {
                Some((_, stale)) => {
                    self.log
                        .event(&format!("serving the index read before: {e}"));
                    Ok(stale)
                }
                None => Err(ApiError::upstream(e)),
            },
        }
    }

    /// Reads the index now.
    pub(super) async fn read_listing(self: &Arc<Self>) -> Result<Arc<Listing>, BridgeError> {
        let bridge = self
            .bridge
            .as_ref()
            .ok_or_else(|| crate::classic::RepoError::Config("no classic upstream".into()))?;
        let started = Instant::now();
        let read = read_index(&bridge.options).await;
        self.metrics.fetch(Fetch::Index, read.is_ok());
        let (repo, bytes, index) = read?;
        bridge.answered();
        let listing =
            tokio::task::spawn_blocking(move || Arc::new(Listing::new(repo, bytes, index)))
                .await
                .map_err(|e| crate::classic::RepoError::Config(e.to_string()))?;
        self.metrics.index_built(started.elapsed());
        if let Ok(mut slot) = bridge.listing.write() {
            *slot = Some((Instant::now(), Arc::clone(&listing)));
        }
        Ok(listing)
    }

    /// The cached ref of version `tag` of chart `served`, copied from the upstream first when
    /// the cache does not hold it, or holds another archive than the index now names.
    pub(super) async fn bridge_pull(
        self: &Arc<Self>,
        served: &str,
        tag: &str,
    ) -> Result<RefEntry, ApiError> {
        let unknown = || ApiError::manifest_unknown(served, tag);
        let listing = self.listing().await?;
        let object = Object::Tag(tag.to_string());
        let current = |snap: &super::library::Snapshot| -> Option<RefEntry> {
            let entry = snap.find(served, &object)?;
            let Some(name) = listing.artifact(served, tag) else {
                // No longer in the index: what was cached is still served.
                return Some(entry);
            };
            let manifest = self.store.read_blob(entry.manifest.as_ref()?).ok()?;
            listing
                .source
                .same_content(name, &manifest)
                .unwrap_or(true)
                .then_some(entry)
        };
        if let Some(entry) = current(&*self.current().await?) {
            self.metrics.lookup(true);
            return Ok(entry);
        }
        let name = listing.artifact(served, tag).ok_or_else(unknown)?.clone();
        let bridge = self.bridge()?;
        let lock = {
            let mut inflight = bridge.inflight.lock().map_err(|_| unknown())?;
            Arc::clone(inflight.entry(name.clone()).or_default())
        };
        let _one = lock.lock().await;
        if let Some(entry) = current(&*self.fresh().await?) {
            self.metrics.lookup(true);
            return Ok(entry);
        }
        self.metrics.lookup(false);
        let cache = CachePlace::new(self.store.clone());
        let copied = copy(&listing.source, &name, &cache, &name, &Job::default()).await;
        self.metrics.fetch(Fetch::Chart, copied.is_ok());
        if let Err(e) = copied {
            return Err(ApiError::upstream(e));
        }
        bridge.answered();
        self.log.event(&format!("copied {name} into the cache"));
        self.fresh()
            .await?
            .find(served, &object)
            .ok_or_else(unknown)
    }

    /// A download the passed-through index names: the archive (or its `.prov`) of a version.
    pub(super) async fn bridge_download(
        self: &Arc<Self>,
        path: &str,
    ) -> Result<Option<super::http::Download>, ApiError> {
        let listing = self.listing().await?;
        let Some((name, prov)) = listing.files.get(path) else {
            return Ok(None);
        };
        let served = name.basename().to_string();
        let tag = name.tag().unwrap_or_default().to_string();
        let entry = self.bridge_pull(&served, &tag).await?;
        let digest = if *prov {
            match entry.prov {
                Some(d) => d,
                None => return Ok(None),
            }
        } else {
            entry.content
        };
        let source = self.blob_source(&digest).await?;
        Ok(Some(super::http::Download { source, digest }))
    }
}
