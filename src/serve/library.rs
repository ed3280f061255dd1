//! What a server offers: the charts of the local cache, seen as repositories, and, with an
//! upstream registry, whatever that registry holds, pulled through the cache on first use.
//!
//! The cache is read as a [`Snapshot`] (every ref, grouped by served repository name, and the
//! index views built from them), rebuilt only when the store's change token moves, so a busy
//! server does not rescan the cache per request. One rebuild runs at a time, as a task of its
//! own; a request waits for it at most [`REBUILD_PATIENCE`], so a small cache shows a
//! `chart save` at once and a large one keeps answering from the snapshot before while it
//! rebuilds. What the server itself has just written, it waits for ([`Library::fresh`]).
//! Between rebuilds the server keeps the index views and one small entry per ref; configs and
//! manifests are read again by the next rebuild (from the page cache, mostly), not kept.
//!
//! Served names: over the cache, a repository `localhost:5000/myrepo/mychart` is served as
//! `localhost_5000/myrepo/mychart` (the cache's own `refs/` path, which keeps charts from
//! different registries apart); with `--upstream HOST/PREFIX`, a name `team/web` is the
//! upstream's `HOST/PREFIX/team/web`, as in a Harbor proxy project.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::UpstreamSpec;
use super::attached::{self, Attached, Reached};
use super::blobcache::BlobCache;
use super::bridge::Bridge;
use super::index::{self, ChartFile, ChartItem, ChartUrls, Indexes, Rendered};
use super::log::Log;
use super::metrics::Metrics;
use super::names::{ApiError, Namespace, Object};
use super::upstream::Upstream;
use crate::digest::{Digest, Packed};
use crate::oci::{ANNOTATION_CREATED, Manifest};
use crate::reference::Reference;
use crate::registry::RegistryError;
use crate::store::{ChangeToken, RefEntry, Store, StoredRef};

/// The cache as the server sees it at one moment.
pub struct Snapshot {
    token: Option<ChangeToken>,
    built: Instant,
    /// False only for the empty stand-in a server starts with.
    scanned: bool,
    /// Served repository name → its refs, by tag.
    pub repos: BTreeMap<String, Tags>,
    /// Served repository name → the referrers the cache holds there.
    pub attached: BTreeMap<String, Attached>,
    pub indexes: Arc<Indexes>,
}

impl Snapshot {
    /// The chart ref `served:object` names, if the snapshot holds it.
    pub(super) fn find(&self, served: &str, object: &Object) -> Option<RefEntry> {
        let tags = self.repos.get(served)?;
        let held = match object {
            Object::Tag(t) => tags.get(t),
            Object::Digest(d) => {
                let d = Packed::from(d);
                tags.held().find(|h| h.manifest == Some(d))
            }
        }?;
        held.entry(&tags.repo)
    }

    /// Whether any ref of `served` refers to `digest`.
    fn holds_blob(&self, served: &str, digest: &Digest) -> bool {
        let d = Packed::from(digest);
        self.repos
            .get(served)
            .is_some_and(|tags| tags.held().any(|h| h.refers_to(&d)))
    }
}

/// One chart ref as a snapshot keeps it, digests packed: a server over 100,000 charts holds
/// 100,000 of them (a third of the memory of a [`RefEntry`]).
pub struct Held {
    tag: Box<str>,
    name: Box<str>,
    version: Box<str>,
    config: Packed,
    content: Packed,
    manifest: Option<Packed>,
    prov: Option<Packed>,
}

impl Held {
    fn new(tag: &str, e: &RefEntry) -> Self {
        Held {
            tag: tag.into(),
            name: e.name.as_str().into(),
            version: e.version.as_str().into(),
            config: Packed::from(&e.config),
            content: Packed::from(&e.content),
            manifest: e.manifest.as_ref().map(Packed::from),
            prov: e.prov.as_ref().map(Packed::from),
        }
    }

    /// The ref again, in `repo`.
    fn entry(&self, repo: &Reference) -> Option<RefEntry> {
        Some(RefEntry {
            reference: repo.with_tag(&self.tag).ok()?,
            name: self.name.to_string(),
            version: self.version.to_string(),
            config: self.config.digest(),
            content: self.content.digest(),
            manifest: self.manifest.map(|m| m.digest()),
            prov: self.prov.map(|p| p.digest()),
        })
    }

    fn refers_to(&self, d: &Packed) -> bool {
        self.manifest.as_ref() == Some(d)
            || self.config == *d
            || self.content == *d
            || self.prov.as_ref() == Some(d)
    }
}

/// The chart refs of one served repository (the cache's repository `repo`), sorted by tag: a
/// sorted list rather than a map.
pub struct Tags {
    /// The served name, and the cache's repository it is.
    served: Arc<str>,
    repo: Reference,
    held: Vec<Held>,
}

impl Tags {
    fn get(&self, tag: &str) -> Option<&Held> {
        let i = self.held.binary_search_by(|h| (*h.tag).cmp(tag)).ok()?;
        Some(&self.held[i])
    }

    /// The tags, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.held.iter().map(|h| &*h.tag)
    }

    fn held(&self) -> impl Iterator<Item = &Held> {
        self.held.iter()
    }

    fn from_unsorted(served: Arc<str>, repo: Reference, mut held: Vec<Held>) -> Self {
        held.sort_by(|a, b| a.tag.cmp(&b.tag));
        held.dedup_by(|a, b| a.tag == b.tag);
        held.shrink_to_fit();
        Tags { served, repo, held }
    }
}

/// A manifest ready to send.
pub struct ServedManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
}

/// What the server offers, shared by every connection.
pub struct Library {
    pub(super) store: Store,
    pub(super) namespace: Namespace,
    pub(super) urls: ChartUrls,
    pub(super) snapshot: RwLock<Arc<Snapshot>>,
    /// The rebuild running, if one is: when it started, and its result for every waiter.
    pub(super) rebuilding: Mutex<Option<Rebuild>>,
    /// Config digest → chart metadata, of the charts an upstream registry lists (each
    /// fetched once, not at every listing).
    pub(super) metadata: Mutex<HashMap<Digest, Arc<[u8]>>>,
    /// What each referrer tag's manifest reaches, read once.
    pub(super) reached: Reached,
    pub(super) blobs: BlobCache,
    /// Whole-blob reads in flight; past this, blobs stream from disk instead.
    pub(super) reads: tokio::sync::Semaphore,
    pub(super) upstream: Option<Upstream>,
    pub(super) bridge: Option<Bridge>,
    pub(super) log: Log,
    pub(super) metrics: Arc<Metrics>,
}

/// Blobs up to this size are read whole (and kept in the memory cache); larger ones stream.
const WHOLE_READ_MAX: u64 = 4 * 1024 * 1024;

/// How recently the upstream must have answered for `/readyz` to say ready without asking it.
const READY_WINDOW: Duration = Duration::from_secs(30);
/// How long `/readyz` waits for the upstream when it asks.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// An unknown change token (no `index.json`): rescan at most this often.
const UNTRACKED_RESCAN: Duration = Duration::from_secs(2);

/// How long a request waits for a rebuild before it is answered from the snapshot before
/// (counted from when the rebuild started). A small cache rebuilds well within it, so a
/// client sees a change at once; a cache of 100,000 charts takes seconds, and its clients
/// are not held for them.
const REBUILD_PATIENCE: Duration = Duration::from_secs(1);

/// A rebuild of the snapshot, shared by every request that waits for it.
#[derive(Clone)]
pub(super) struct Rebuild {
    started: Instant,
    done: Shared<BoxFuture<'static, Result<Arc<Snapshot>, ApiError>>>,
}

impl Library {
    pub fn new(
        store: Store,
        urls: ChartUrls,
        upstream: Option<UpstreamSpec>,
        memory_cache: u64,
        log: Log,
        metrics: Arc<Metrics>,
    ) -> Self {
        let namespace = match &upstream {
            Some(UpstreamSpec::Registry(u)) => Namespace::Upstream {
                host: u.host.clone(),
                prefix: u.prefix.clone(),
            },
            Some(UpstreamSpec::Classic(c)) => c.namespace().unwrap_or(Namespace::Upstream {
                host: "localhost".into(),
                prefix: String::new(),
            }),
            None => Namespace::Cache,
        };
        let (registry, classic) = match upstream {
            Some(UpstreamSpec::Registry(u)) => (Some(Upstream::new(u)), None),
            Some(UpstreamSpec::Classic(c)) => (None, Some(Bridge::new(c))),
            None => (None, None),
        };
        let empty = Snapshot {
            token: None,
            built: Instant::now() - UNTRACKED_RESCAN * 2,
            scanned: false,
            repos: BTreeMap::new(),
            attached: BTreeMap::new(),
            indexes: Arc::new(index::build(Vec::new(), &urls)),
        };
        Library {
            store,
            namespace,
            urls,
            snapshot: RwLock::new(Arc::new(empty)),
            rebuilding: Mutex::new(None),
            metadata: Mutex::new(HashMap::new()),
            reached: Reached::default(),
            blobs: BlobCache::new(memory_cache),
            reads: tokio::sync::Semaphore::new(16),
            upstream: registry,
            bridge: classic,
            log,
            metrics,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    // ---- the cache snapshot -------------------------------------------------------------

    /// The current snapshot, rebuilt first if the cache changed since it was taken; while a
    /// rebuild takes longer than [`REBUILD_PATIENCE`], the snapshot before it.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Snapshot>, ApiError> {
        self.snapshot(Some(REBUILD_PATIENCE)).await
    }

    /// The snapshot of the cache as it is now, however long the rebuild takes: for a request
    /// that has just written to the cache and looks for what it wrote.
    pub async fn fresh(self: &Arc<Self>) -> Result<Arc<Snapshot>, ApiError> {
        self.snapshot(None).await
    }

    async fn snapshot(
        self: &Arc<Self>,
        patience: Option<Duration>,
    ) -> Result<Arc<Snapshot>, ApiError> {
        loop {
            let token = self.store.change_token();
            let snap = self.snapshot_now();
            let fresh = match token {
                Some(t) => snap.token == Some(t),
                None => snap.token.is_none() && snap.built.elapsed() < UNTRACKED_RESCAN,
            };
            if fresh {
                return Ok(snap);
            }
            let Rebuild { started, done } = self.rebuild(token);
            // Until the cache has been read once there is nothing else to answer from.
            let patience = patience.filter(|_| snap.scanned);
            let Some(patience) = patience else {
                let built = done.await?;
                // Built from a token read before this request's own change, perhaps: again.
                if built.token == token || token.is_none() {
                    return Ok(built);
                }
                continue;
            };
            let left = patience.saturating_sub(started.elapsed());
            return match tokio::time::timeout(left, done).await {
                Ok(built) => built,
                Err(_) => Ok(snap),
            };
        }
    }

    /// The rebuild running, or a new one (as a task of its own, so a request that stops
    /// waiting does not stop it).
    fn rebuild(self: &Arc<Self>, token: Option<ChangeToken>) -> Rebuild {
        let mut running = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        // A rebuild that has ended is cleared by its own task; one that ended without (its
        // task cancelled or failed) is not waited for again.
        if let Some(r) = running.as_ref().filter(|r| r.done.peek().is_none()) {
            return r.clone();
        }
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let worker = Arc::clone(&me);
            let built = tokio::task::spawn_blocking(move || {
                let built = worker.build_snapshot(token);
                // What the build held only while it ran goes back to the system.
                super::memory::release_freed();
                built
            })
            .await;
            let result = match built {
                Ok(Ok(snapshot)) => {
                    me.metrics.index_built(started.elapsed());
                    let snapshot = Arc::new(snapshot);
                    let before = me
                        .snapshot
                        .write()
                        .map(|mut s| std::mem::replace(&mut *s, Arc::clone(&snapshot)))
                        .ok();
                    // The snapshot before is let go of off the runtime's threads and outside
                    // the lock (a large one takes a while to free), and its memory returned.
                    tokio::task::spawn_blocking(move || {
                        drop(before);
                        super::memory::release_freed();
                    });
                    Ok(snapshot)
                }
                Ok(Err(e)) => Err(ApiError::internal(e)),
                Err(e) => Err(ApiError::internal(e.to_string())),
            };
            if let Ok(mut running) = me.rebuilding.lock() {
                *running = None;
            }
            result
        });
        let done = async move {
            task.await
                .unwrap_or_else(|e| Err(ApiError::internal(e.to_string())))
        }
        .boxed()
        .shared();
        let rebuild = Rebuild {
            started: Instant::now(),
            done,
        };
        *running = Some(rebuild.clone());
        rebuild
    }

    fn snapshot_now(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn build_snapshot(&self, token: Option<ChangeToken>) -> Result<Snapshot, String> {
        let refs = {
            let guard = self.store.read().map_err(|e| e.to_string())?;
            self.store
                .list_under(&guard, "")
                .map_err(|e| e.to_string())?
        };
        let (mut entries, mut artifacts) = (Vec::new(), Vec::new());
        for r in refs {
            match r {
                StoredRef::Chart(e) => entries.push(e),
                StoredRef::Artifact(a) => {
                    if let Some(served) = self.namespace.served(&a.reference.without_object()) {
                        artifacts.push((served, a));
                    }
                }
            }
        }
        let attached = attached::collect(&self.store, &self.reached, artifacts);
        // Each chart ref packed as it is taken, grouped by served repository (whose name is
        // one string shared by its items and download paths).
        let mut grouped: BTreeMap<String, (Arc<str>, Reference, Vec<Held>)> = BTreeMap::new();
        for e in entries {
            let repo = e.reference.without_object();
            let (Some(served), Some(tag)) = (self.namespace.served(&repo), e.reference.tag())
            else {
                continue;
            };
            let held = Held::new(tag, &e);
            match grouped.get_mut(&served) {
                Some((_, _, all)) => all.push(held),
                None => {
                    let name: Arc<str> = served.as_str().into();
                    grouped.insert(served, (name, repo, vec![held]));
                }
            }
        }
        let repos: BTreeMap<String, Tags> = grouped
            .into_iter()
            .map(|(served, (name, repo, held))| (served, Tags::from_unsorted(name, repo, held)))
            .collect();
        let ours: Vec<(&Arc<str>, &Held)> = repos
            .values()
            .flat_map(|t| t.held().map(move |h| (&t.served, h)))
            .collect();
        // Reading configs and manifests is many small files: spread it over a few threads,
        // which matters most when they are not in the page cache.
        let item = |(served, held): &(&Arc<str>, &Held)| {
            let content = held.content.digest();
            ChartItem {
                repo: Arc::clone(served),
                tag: held.tag.to_string(),
                name: held.name.to_string(),
                version: held.version.to_string(),
                metadata: self.stored_metadata(&held.config.digest()),
                created: self.stored_created(held.manifest.map(|m| m.digest()), &content),
                content,
                prov: held.prov.map(|p| p.digest()),
            }
        };
        let items: Vec<ChartItem> = if ours.len() < 256 {
            ours.iter().map(item).collect()
        } else {
            let chunk = ours.len().div_ceil(8);
            std::thread::scope(|s| {
                let parts: Vec<_> = ours
                    .chunks(chunk)
                    .map(|part| s.spawn(move || part.iter().map(item).collect::<Vec<_>>()))
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|p| p.join().unwrap_or_default())
                    .collect()
            })
        };
        drop(ours);
        Ok(Snapshot {
            token,
            built: Instant::now(),
            scanned: true,
            repos,
            attached,
            indexes: Arc::new(index::build(items, &self.urls)),
        })
    }

    /// A chart's config as stored (empty when it cannot be read: the entry then has the
    /// fields the ref itself gives).
    fn stored_metadata(&self, config: &Digest) -> Arc<[u8]> {
        self.store.read_blob(config).unwrap_or_default().into()
    }

    /// `created` of a cached chart: the manifest's annotation, else when the chart (its
    /// `content`) was stored.
    fn stored_created(&self, manifest: Option<Digest>, content: &Digest) -> Option<String> {
        let from_manifest = manifest.as_ref().and_then(|m| {
            self.store
                .read_blob(m)
                .ok()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                .and_then(|m| m.annotations.get(ANNOTATION_CREATED).cloned())
        });
        from_manifest.or_else(|| {
            std::fs::metadata(self.store.blob_path(content))
                .and_then(|m| m.modified())
                .ok()
                .map(crate::output::rfc3339)
        })
    }

    // ---- readiness ----------------------------------------------------------------------

    /// Whether the server can serve: the cache is readable and, with an upstream, the
    /// upstream answered within [`READY_WINDOW`] (asked again now if it has not).
    /// Unready, it says which part (for the answer) and why (for the log only: `/readyz`
    /// needs no login, and error texts name hosts and paths).
    pub async fn readiness(self: &Arc<Self>) -> Result<(), (&'static str, String)> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let _guard = store.read().map_err(|e| e.to_string())?;
            let refs = store.root().join("refs");
            std::fs::read_dir(&refs)
                .map(drop)
                .map_err(|e| format!("{}: {e}", refs.display()))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| ("the cache is not readable", e))?;
        let upstream = |e: String| ("the upstream does not answer", e);
        if let Some(bridge) = &self.bridge {
            if bridge.last_answer().is_some_and(|ago| ago < READY_WINDOW) {
                return Ok(());
            }
            return match tokio::time::timeout(PROBE_LIMIT, self.read_listing()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(upstream(e.to_string())),
                Err(_) => Err(upstream(format!(
                    "no index within {}",
                    humantime::format_duration(PROBE_LIMIT)
                ))),
            };
        }
        let Some(up) = &self.upstream else {
            return Ok(());
        };
        if up.last_answer().is_some_and(|ago| ago < READY_WINDOW) {
            return Ok(());
        }
        self.probe_upstream(PROBE_LIMIT).await.map_err(upstream)
    }

    // ---- the index view -----------------------------------------------------------------

    /// The index views: of the cache, or of the upstream (listed at most once per TTL).
    pub async fn indexes(self: &Arc<Self>) -> Result<Arc<Indexes>, ApiError> {
        let Some(up) = &self.upstream else {
            return Ok(Arc::clone(&self.current().await?.indexes));
        };
        let cached = up.index.read().ok().and_then(|i| i.clone());
        match cached {
            Some((at, idx)) if at.elapsed() < up.options.index_ttl => Ok(idx),
            Some((_, idx)) => {
                // Stale: serve it, and list the upstream again in the background.
                if let Ok(guard) = Arc::clone(&up.refreshing).try_lock_owned() {
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        let _guard = guard;
                        me.refresh_upstream_index().await;
                    });
                }
                Ok(idx)
            }
            None => {
                let _one = up.refreshing.lock().await;
                if let Some((_, idx)) = up.index.read().ok().and_then(|i| i.clone()) {
                    return Ok(idx);
                }
                match self.refresh_upstream_index().await {
                    Some(idx) => Ok(idx),
                    // The upstream cannot be listed: offer what the cache holds of it.
                    None => Ok(Arc::clone(&self.current().await?.indexes)),
                }
            }
        }
    }

    /// The rendered index of `prefix`.
    pub async fn view(self: &Arc<Self>, prefix: &str) -> Result<Option<Arc<Rendered>>, ApiError> {
        if self.bridge.is_some() {
            // A classic upstream's index passes through, at the root only.
            return Ok(match prefix {
                "" => Some(Arc::clone(&self.listing().await?.view)),
                _ => None,
            });
        }
        Ok(self.indexes().await?.view(prefix))
    }

    /// A chart download (`charts/NAME-VERSION.tgz`, its `.prov`, or with a classic upstream
    /// any path its index names), pulled through when needed.
    pub async fn download(
        self: &Arc<Self>,
        path: &str,
    ) -> Result<Option<super::http::Download>, ApiError> {
        if self.bridge.is_some() {
            return self.bridge_download(path).await;
        }
        let Some(file) = self.chart_file(path).await? else {
            return Ok(None);
        };
        let source = self.chart_bytes(&file).await?;
        Ok(Some(super::http::Download {
            source,
            digest: file.digest.digest(),
        }))
    }

    pub async fn chart_file(
        self: &Arc<Self>,
        path: &str,
    ) -> Result<Option<Arc<ChartFile>>, ApiError> {
        Ok(self.indexes().await?.files.get(path).map(Arc::clone))
    }

    // ---- the OCI API --------------------------------------------------------------------

    /// The manifest `served:object` names; pulled through from the upstream when missing.
    pub async fn manifest(
        self: &Arc<Self>,
        served: &str,
        object: &Object,
    ) -> Result<ServedManifest, ApiError> {
        let repo = self
            .namespace
            .repository(served)
            .ok_or_else(|| ApiError::name_unknown(served))?;
        // What refers to a chart is served from the cache, pull-through or not.
        let referrer = match object {
            Object::Tag(tag) => self.attached_tag(served, tag).await?,
            Object::Digest(d) => self.attached_holds(served, d).await?.then(|| d.clone()),
        };
        if let Some(digest) = referrer {
            return self.stored_manifest(served, object, digest).await;
        }
        let entry = match (&self.upstream, &self.bridge, object) {
            (Some(up), _, _) => self.pull_through(up, served, &repo, object).await?,
            (None, Some(_), Object::Tag(tag)) => Some(self.bridge_pull(served, tag).await?),
            (None, Some(_), Object::Digest(_)) => self.current().await?.find(served, object),
            (None, None, _) => {
                let snap = self.current().await?;
                if !snap.repos.contains_key(served) {
                    return Err(ApiError::name_unknown(served));
                }
                snap.find(served, object)
            }
        };
        let digest = entry
            .and_then(|e| e.manifest)
            .ok_or_else(|| ApiError::manifest_unknown(served, &object.to_string()))?;
        self.stored_manifest(served, object, digest).await
    }

    /// The stored manifest `digest`, ready to send, with the media type it says it has (or
    /// its shape says: Helm writes none).
    async fn stored_manifest(
        &self,
        served: &str,
        object: &Object,
        digest: Digest,
    ) -> Result<ServedManifest, ApiError> {
        let unknown = || ApiError::manifest_unknown(served, &object.to_string());
        let bytes = Bytes::from(
            tokio::fs::read(self.store.blob_path(&digest))
                .await
                .map_err(|_| unknown())?,
        );
        let media_type = crate::store::graph::Node::parse(&bytes)
            .map_err(|_| unknown())?
            .media_type;
        Ok(ServedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// A blob of `served`, from memory or disk.
    pub async fn blob(
        self: &Arc<Self>,
        served: &str,
        digest: &Digest,
    ) -> Result<super::http::Source, ApiError> {
        let snap = self.current().await?;
        if self.upstream.is_none()
            && self.bridge.is_none()
            && !snap.repos.contains_key(served)
            && !snap.attached.contains_key(served)
        {
            return Err(ApiError::name_unknown(served));
        }
        if !snap.holds_blob(served, digest)
            && !snap
                .attached
                .get(served)
                .is_some_and(|a| a.content.contains(digest))
        {
            return Err(ApiError::blob_unknown(digest));
        }
        self.blob_source(digest).await
    }

    /// The bytes of a stored blob: from the memory cache, read whole if small, else a file.
    pub async fn blob_source(&self, digest: &Digest) -> Result<super::http::Source, ApiError> {
        use super::http::Source;
        if let Some(bytes) = self.blobs.get(digest) {
            return Ok(Source::Memory(bytes));
        }
        let path = self.store.blob_path(digest);
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|_| ApiError::blob_unknown(digest))?
            .len();
        if len <= WHOLE_READ_MAX
            && let Ok(_permit) = self.reads.try_acquire()
            && let Ok(data) = tokio::fs::read(&path).await
        {
            let bytes = Bytes::from(data);
            self.blobs.put(digest, &bytes);
            return Ok(Source::Memory(bytes));
        }
        Ok(Source::File(path, len))
    }

    /// A chart download (`charts/<name>-<version>.tgz` or `.prov`), pulled through when needed.
    pub async fn chart_bytes(
        self: &Arc<Self>,
        file: &ChartFile,
    ) -> Result<super::http::Source, ApiError> {
        let digest = file.digest.digest();
        // With --require-signed, a cached chart is checked too.
        if let Some(up) = &self.upstream
            && (!self.store.has_blob(&digest) || !up.options.signatures.is_empty())
            && let Some(repo) = self.namespace.repository(&file.repo)
        {
            self.pull_through(up, &file.repo, &repo, &Object::Tag(file.tag.to_string()))
                .await?;
        }
        self.blob_source(&digest).await
    }

    /// The tags of `served`, sorted: the upstream's when there is one (the cache's if it cannot
    /// be reached).
    pub async fn tags(self: &Arc<Self>, served: &str) -> Result<Vec<String>, ApiError> {
        let snap = self.current().await?;
        // The charts' tags and the tags of what refers to them, sorted.
        let charts = snap.repos.get(served).map(|t| t.keys().map(str::to_string));
        let referrers = snap.attached.get(served).map(|a| a.tags.keys().cloned());
        let local: Option<Vec<String>> = match (charts, referrers) {
            (None, None) => None,
            (c, r) => {
                let mut all: Vec<String> = c
                    .into_iter()
                    .flatten()
                    .chain(r.into_iter().flatten())
                    .collect();
                all.sort();
                Some(all)
            }
        };
        if self.bridge.is_some() {
            let listed = match self.listing().await {
                Ok(l) => l.tags(served),
                Err(e) if local.is_some() => {
                    self.log
                        .event(&format!("{served}: listing the cached tags: {}", e.message));
                    None
                }
                Err(e) => return Err(e),
            };
            return listed
                .or(local)
                .ok_or_else(|| ApiError::name_unknown(served));
        }
        if let Some(up) = &self.upstream {
            let repo = self
                .namespace
                .repository(served)
                .ok_or_else(|| ApiError::name_unknown(served))?;
            let listed = match self.registry(up).await {
                Ok(registry) => registry.tags(&repo).await,
                Err(e) => Err(e),
            };
            match listed {
                Ok(mut tags) => {
                    tags.sort();
                    return Ok(tags);
                }
                Err(RegistryError::NotFound { .. }) => return Err(ApiError::name_unknown(served)),
                Err(e) => {
                    if local.is_none() {
                        return Err(ApiError::upstream(e));
                    }
                    self.log
                        .event(&format!("{repo}: listing the cached tags: {e}"));
                }
            }
        }
        local.ok_or_else(|| ApiError::name_unknown(served))
    }

    /// Every served repository name, sorted.
    pub async fn catalog(self: &Arc<Self>) -> Result<Vec<String>, ApiError> {
        let snap = self.current().await?;
        let mut names: Vec<String> = snap.repos.keys().cloned().collect();
        if self.bridge.is_some() {
            names.extend(self.listing().await?.catalog());
            names.sort();
            names.dedup();
        }
        if let Some(up) = &self.upstream {
            names.extend(up.options.repos.iter().cloned());
            if let Ok(registry) = self.registry(up).await
                && let Ok(repos) = registry.catalog().await
            {
                names.extend(
                    repos
                        .iter()
                        .filter_map(|r| Reference::parse(&format!("{}/{r}", up.options.host)).ok())
                        .filter_map(|r| self.namespace.served(&r)),
                );
            }
            names.sort();
            names.dedup();
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::save::{SaveOptions, save};

    fn library(home: &std::path::Path) -> Arc<Library> {
        let store = Store::new(home.join("registry"));
        let log = Log {
            format: super::super::log::LogFormat::Plain,
            access: false,
        };
        Arc::new(Library::new(
            store,
            ChartUrls::Relative,
            None,
            0,
            log,
            Arc::new(Metrics::new()),
        ))
    }

    fn save_simple(library: &Library, reference: &str) {
        let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/charts/simple");
        save(
            library.store(),
            &chart,
            Some(reference),
            &SaveOptions::default(),
        )
        .expect("saves the test chart");
    }

    /// Stands in for a rebuild that is still running: it ends when `finish` is sent.
    fn hold_rebuild(
        library: &Library,
        started: Instant,
    ) -> tokio::sync::oneshot::Sender<Result<Arc<Snapshot>, ApiError>> {
        let (finish, finished) = tokio::sync::oneshot::channel();
        let done = async move {
            finished
                .await
                .unwrap_or_else(|_| Err(ApiError::internal("dropped")))
        }
        .boxed()
        .shared();
        *library.rebuilding.lock().expect("not poisoned") = Some(Rebuild { started, done });
        finish
    }

    #[tokio::test]
    async fn a_slow_rebuild_is_waited_for_briefly_then_the_snapshot_before_is_served() {
        let home = tempfile::tempdir().expect("tempdir");
        let library = library(home.path());
        save_simple(&library, "localhost:5000/team/simple:0.1.0");
        let before = library.current().await.expect("first scan");
        assert!(before.repos.contains_key("localhost_5000/team/simple"));

        // A change, and a rebuild for it that has run past the patience already.
        save_simple(&library, "localhost:5000/team/other:0.1.0");
        let finish = hold_rebuild(&library, Instant::now() - REBUILD_PATIENCE * 2);
        let served = library.current().await.expect("answered at once");
        assert!(
            Arc::ptr_eq(&served, &before),
            "the snapshot before is served"
        );

        // A request that wrote waits for the rebuild, whatever it takes.
        let waiting = tokio::spawn({
            let library = Arc::clone(&library);
            async move { library.fresh().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let rebuilt = {
            let library = Arc::clone(&library);
            tokio::task::spawn_blocking(move || {
                library.build_snapshot(library.store.change_token())
            })
            .await
            .expect("joins")
            .expect("builds")
        };
        let rebuilt = Arc::new(rebuilt);
        *library.snapshot.write().expect("not poisoned") = Arc::clone(&rebuilt);
        *library.rebuilding.lock().expect("not poisoned") = None;
        finish.send(Ok(Arc::clone(&rebuilt))).ok();
        let fresh = waiting.await.expect("joins").expect("rebuilt");
        assert!(fresh.repos.contains_key("localhost_5000/team/other"));
        // And from now on, every request sees it.
        let now = library.current().await.expect("current");
        assert!(Arc::ptr_eq(&now, &rebuilt));
    }

    #[tokio::test]
    async fn a_rebuild_that_ended_without_clearing_itself_is_not_waited_for_again() {
        let home = tempfile::tempdir().expect("tempdir");
        let library = library(home.path());
        save_simple(&library, "localhost:5000/team/simple:0.1.0");
        // A rebuild whose task was cancelled: it ended in an error, and is still in place.
        let done = std::future::ready(Err(ApiError::internal("cancelled")))
            .boxed()
            .shared();
        assert!(done.clone().await.is_err());
        *library.rebuilding.lock().expect("not poisoned") = Some(Rebuild {
            started: Instant::now(),
            done,
        });
        let snap = library.current().await.expect("a new rebuild");
        assert!(snap.repos.contains_key("localhost_5000/team/simple"));
    }

    #[tokio::test]
    async fn a_quick_rebuild_is_waited_for_and_the_first_scan_always_is() {
        let home = tempfile::tempdir().expect("tempdir");
        let library = library(home.path());
        save_simple(&library, "localhost:5000/team/simple:0.1.0");
        // The first scan: a rebuild "started" long ago does not make the server answer from
        // the empty stand-in.
        let finish = hold_rebuild(&library, Instant::now() - REBUILD_PATIENCE * 2);
        let waiting = tokio::spawn({
            let library = Arc::clone(&library);
            async move { library.current().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        *library.rebuilding.lock().expect("not poisoned") = None;
        let built = Arc::new(
            library
                .build_snapshot(library.store.change_token())
                .expect("builds"),
        );
        *library.snapshot.write().expect("not poisoned") = Arc::clone(&built);
        finish.send(Ok(built)).ok();
        let first = waiting.await.expect("joins").expect("scanned");
        assert!(first.repos.contains_key("localhost_5000/team/simple"));

        // A change in a small cache: its rebuild ends within the patience, and is seen.
        save_simple(&library, "localhost:5000/team/other:0.1.0");
        let after = library.current().await.expect("rebuilt");
        assert!(after.repos.contains_key("localhost_5000/team/other"));
    }
}
