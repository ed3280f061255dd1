//! What a server offers: the charts of the local cache, seen as repositories, and, with an
//! upstream registry, whatever that registry holds, pulled through the cache on first use.
//!
//! The cache is read as a [`Snapshot`] (every ref, grouped by served repository name, and the
//! index views built from them), rebuilt only when the store's change token moves, so a busy
//! server neither rescans the cache per request nor serves a stale view after a `chart save`.
//! Chart metadata is memoised by config digest: configs are content-addressed, so a rebuild
//! after one new chart reads one new config.
//!
//! Served names: over the cache, a repository `localhost:5000/myrepo/mychart` is served as
//! `localhost_5000/myrepo/mychart` (the cache's own `refs/` path, which keeps charts from
//! different registries apart); with `--upstream HOST/PREFIX`, a name `team/web` is the
//! upstream's `HOST/PREFIX/team/web`, as in a Harbor proxy project.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hyper::StatusCode;
use serde_json::{Map, Value};

use super::blobcache::BlobCache;
use super::index::{self, ChartFile, ChartItem, Indexes, Rendered};
use crate::credentials::Credential;
use crate::digest::Digest;
use crate::oci::{ANNOTATION_CREATED, MANIFEST_MEDIA_TYPE, Manifest};
use crate::reference::{Reference, escape_host, unescape_host, valid_tag};
use crate::registry::{Registry, RegistryError, Transport};
use crate::store::{ChangeToken, RefEntry, Store};
use crate::tasks::transfer::{self, TransferError};

/// An answer the OCI API can give instead of content.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn name_unknown(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name:?} is not known"),
        )
    }

    fn manifest_unknown(name: &str, reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest {name}:{reference} is not known"),
        )
    }

    fn blob_unknown(digest: &Digest) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob {digest} is not known"),
        )
    }

    fn upstream(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UNKNOWN", format!("upstream: {e}"))
    }
}

/// How served repository names map to references.
#[derive(Debug, Clone)]
pub enum Namespace {
    /// `localhost_5000/myrepo/mychart` ⇄ `localhost:5000/myrepo/mychart`.
    Cache,
    /// `team/web` ⇄ `HOST/PREFIX/team/web`.
    Upstream { host: String, prefix: String },
}

impl Namespace {
    /// The repository a served name stands for, if it is a valid one.
    pub fn repository(&self, served: &str) -> Option<Reference> {
        if served.is_empty() || served.contains(['@', ':']) {
            return None;
        }
        let text = match self {
            Namespace::Cache => {
                let (host, path) = served.split_once('/')?;
                format!("{}/{path}", unescape_host(host))
            }
            Namespace::Upstream { host, prefix } if prefix.is_empty() => format!("{host}/{served}"),
            Namespace::Upstream { host, prefix } => format!("{host}/{prefix}/{served}"),
        };
        Reference::parse(&text).ok()
    }

    /// The served name of a repository, if it lies in this namespace.
    pub fn served(&self, r: &Reference) -> Option<String> {
        match self {
            Namespace::Cache => Some(format!("{}/{}", escape_host(r.host()), r.path())),
            Namespace::Upstream { host, prefix } => {
                if r.host() != host {
                    return None;
                }
                if prefix.is_empty() {
                    return Some(r.path().to_string());
                }
                r.path()
                    .strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(str::to_string)
            }
        }
    }
}

/// A tag or a digest, as the OCI API names a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Tag(String),
    Digest(Digest),
}

impl Object {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.contains(':') {
            return Digest::parse(text).map(Object::Digest).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
            });
        }
        if valid_tag(text) {
            Ok(Object::Tag(text.to_string()))
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("{text:?} is not a valid tag"),
            ))
        }
    }

    fn on(&self, repo: &Reference) -> Option<Reference> {
        match self {
            Object::Tag(t) => repo.with_tag(t).ok(),
            Object::Digest(d) => Reference::parse(&format!("{}@{d}", repo.repository())).ok(),
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Tag(t) => f.write_str(t),
            Object::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// The cache as the server sees it at one moment.
pub struct Snapshot {
    token: Option<ChangeToken>,
    built: Instant,
    /// Served repository name → tag → ref.
    pub repos: BTreeMap<String, BTreeMap<String, RefEntry>>,
    pub indexes: Arc<Indexes>,
}

impl Snapshot {
    fn find(&self, served: &str, object: &Object) -> Option<&RefEntry> {
        let tags = self.repos.get(served)?;
        match object {
            Object::Tag(t) => tags.get(t),
            Object::Digest(d) => tags.values().find(|e| e.manifest.as_ref() == Some(d)),
        }
    }

    /// Whether any ref of `served` refers to `digest`.
    fn holds_blob(&self, served: &str, digest: &Digest) -> bool {
        self.repos.get(served).is_some_and(|tags| {
            tags.values().any(|e| {
                e.manifest.as_ref() == Some(digest)
                    || e.config == *digest
                    || e.content == *digest
                    || e.prov.as_ref() == Some(digest)
            })
        })
    }
}

/// A manifest ready to send.
pub struct ServedManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
}

/// The upstream registry of a pull-through server.
pub struct UpstreamOptions {
    pub host: String,
    pub prefix: String,
    pub transport: Transport,
    pub credential: Option<Credential>,
    /// Served names to list in the index when the upstream keeps its catalog private.
    pub repos: Vec<String>,
    /// Check a cached tag against the upstream (HEAD) before serving it.
    pub revalidate: bool,
    /// How long the upstream's index view is served before it is listed again.
    pub index_ttl: Duration,
}

struct Upstream {
    options: UpstreamOptions,
    registry: tokio::sync::OnceCell<Registry>,
    index: RwLock<Option<(Instant, Arc<Indexes>)>>,
    /// Held by whoever lists the upstream, so only one listing runs at a time.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    /// One pull at a time per reference; later requests for it wait, then find it cached.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What the server offers, shared by every connection.
pub struct Library {
    store: Store,
    namespace: Namespace,
    base_url: Option<String>,
    snapshot: RwLock<Arc<Snapshot>>,
    rebuilding: tokio::sync::Mutex<()>,
    /// Config digest → chart metadata; manifest digest → `created`.
    metadata: Mutex<HashMap<Digest, Arc<Map<String, Value>>>>,
    created: Mutex<HashMap<Digest, Option<String>>>,
    blobs: BlobCache,
    /// Whole-blob reads in flight; past this, blobs stream from disk instead.
    reads: tokio::sync::Semaphore,
    upstream: Option<Upstream>,
    log: Box<dyn Fn(&str) + Send + Sync>,
}

/// Blobs up to this size are read whole (and kept in the memory cache); larger ones stream.
const WHOLE_READ_MAX: u64 = 4 * 1024 * 1024;

/// An unknown change token (no `index.json`): rescan at most this often.
const UNTRACKED_RESCAN: Duration = Duration::from_secs(2);

impl Library {
    pub fn new(
        store: Store,
        base_url: Option<String>,
        upstream: Option<UpstreamOptions>,
        memory_cache: u64,
        log: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        let namespace = match &upstream {
            Some(u) => Namespace::Upstream {
                host: u.host.clone(),
                prefix: u.prefix.clone(),
            },
            None => Namespace::Cache,
        };
        let empty = Snapshot {
            token: None,
            built: Instant::now() - UNTRACKED_RESCAN * 2,
            repos: BTreeMap::new(),
            indexes: Arc::new(index::build(Vec::new(), base_url.as_deref())),
        };
        Library {
            store,
            namespace,
            base_url,
            snapshot: RwLock::new(Arc::new(empty)),
            rebuilding: tokio::sync::Mutex::new(()),
            metadata: Mutex::new(HashMap::new()),
            created: Mutex::new(HashMap::new()),
            blobs: BlobCache::new(memory_cache),
            reads: tokio::sync::Semaphore::new(16),
            upstream: upstream.map(|options| Upstream {
                options,
                registry: tokio::sync::OnceCell::new(),
                index: RwLock::new(None),
                refreshing: Arc::new(tokio::sync::Mutex::new(())),
                inflight: Mutex::new(HashMap::new()),
            }),
            log,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    // ---- the cache snapshot -------------------------------------------------------------

    /// The current snapshot, rebuilt first if the cache changed since it was taken.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Snapshot>, ApiError> {
        let token = self.store.change_token();
        let fresh = |s: &Snapshot| match token {
            Some(t) => s.token == Some(t),
            None => s.token.is_none() && s.built.elapsed() < UNTRACKED_RESCAN,
        };
        let snap = self.snapshot_now();
        if fresh(&snap) {
            return Ok(snap);
        }
        let _one = self.rebuilding.lock().await;
        let snap = self.snapshot_now();
        if fresh(&snap) {
            return Ok(snap);
        }
        let me = Arc::clone(self);
        let built = tokio::task::spawn_blocking(move || me.build_snapshot(token))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
            })?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e))?;
        let built = Arc::new(built);
        if let Ok(mut s) = self.snapshot.write() {
            *s = Arc::clone(&built);
        }
        Ok(built)
    }

    fn snapshot_now(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn build_snapshot(&self, token: Option<ChangeToken>) -> Result<Snapshot, String> {
        let entries = {
            let guard = self.store.read().map_err(|e| e.to_string())?;
            self.store.list(&guard).map_err(|e| e.to_string())?
        };
        let ours: Vec<(String, String, RefEntry)> = entries
            .into_iter()
            .filter_map(|e| {
                let served = self.namespace.served(&e.reference.without_object())?;
                let tag = e.reference.tag()?.to_string();
                Some((served, tag, e))
            })
            .collect();
        // Reading configs and manifests is many small files: spread it over a few threads,
        // which matters most when they are not in the page cache.
        let item = |(served, tag, e): &(String, String, RefEntry)| ChartItem {
            repo: served.clone(),
            tag: tag.clone(),
            name: e.name.clone(),
            version: e.version.clone(),
            metadata: self.cached_metadata(&e.config),
            content: e.content.clone(),
            prov: e.prov.clone(),
            created: self.cached_created(e),
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
        let mut repos: BTreeMap<String, BTreeMap<String, RefEntry>> = BTreeMap::new();
        for (served, tag, e) in ours {
            repos.entry(served).or_default().insert(tag, e);
        }
        Ok(Snapshot {
            token,
            built: Instant::now(),
            repos,
            indexes: Arc::new(index::build(items, self.base_url.as_deref())),
        })
    }

    fn cached_metadata(&self, config: &Digest) -> Arc<Map<String, Value>> {
        if let Some(m) = self
            .metadata
            .lock()
            .ok()
            .and_then(|m| m.get(config).cloned())
        {
            return m;
        }
        let parsed: Map<String, Value> = self
            .store
            .read_blob(config)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let parsed = Arc::new(parsed);
        if let Ok(mut m) = self.metadata.lock() {
            m.insert(config.clone(), Arc::clone(&parsed));
        }
        parsed
    }

    /// `created` of a cached chart: the manifest's annotation, else when the chart was stored.
    fn cached_created(&self, e: &RefEntry) -> Option<String> {
        let from_manifest = e.manifest.as_ref().and_then(|m| {
            if let Some(c) = self.created.lock().ok().and_then(|c| c.get(m).cloned()) {
                return c;
            }
            let c = self
                .store
                .read_blob(m)
                .ok()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
                .and_then(|m| m.annotations.get(ANNOTATION_CREATED).cloned());
            if let Ok(mut memo) = self.created.lock() {
                memo.insert(m.clone(), c.clone());
            }
            c
        });
        from_manifest.or_else(|| {
            std::fs::metadata(self.store.blob_path(&e.content))
                .and_then(|m| m.modified())
                .ok()
                .map(crate::output::rfc3339)
        })
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

    /// Lists the upstream and rebuilds its index view; `None` (logged) if it cannot be listed.
    async fn refresh_upstream_index(self: &Arc<Self>) -> Option<Arc<Indexes>> {
        let up = self.upstream.as_ref()?;
        match self.list_upstream(up).await {
            Ok(items) => {
                let idx = Arc::new(index::build(items, self.base_url.as_deref()));
                if let Ok(mut slot) = up.index.write() {
                    *slot = Some((Instant::now(), Arc::clone(&idx)));
                }
                Some(idx)
            }
            Err(e) => {
                (self.log)(&format!("cannot list the upstream for the index: {e}"));
                None
            }
        }
    }

    async fn registry<'a>(&self, up: &'a Upstream) -> Result<&'a Registry, RegistryError> {
        up.registry
            .get_or_try_init(|| {
                Registry::connect(
                    &up.options.host,
                    &up.options.transport,
                    up.options.credential.clone(),
                )
            })
            .await
    }

    /// Every chart the upstream holds under the prefix: its catalog where allowed, else the
    /// `--repo` names. Manifests are fetched per tag; configs only once per digest.
    async fn list_upstream(&self, up: &Upstream) -> Result<Vec<ChartItem>, RegistryError> {
        let registry = self.registry(up).await?;
        let mut names: Vec<String> = match registry.catalog().await {
            Ok(repos) => repos
                .iter()
                .filter_map(|r| Reference::parse(&format!("{}/{r}", up.options.host)).ok())
                .filter_map(|r| self.namespace.served(&r))
                .collect(),
            Err(e) if up.options.repos.is_empty() => return Err(e),
            Err(_) => Vec::new(),
        };
        names.extend(up.options.repos.iter().cloned());
        names.sort();
        names.dedup();
        let mut tagged = Vec::new();
        for name in &names {
            let Some(repo) = self.namespace.repository(name) else {
                continue;
            };
            let tags = match registry.tags(&repo).await {
                Ok(t) => t,
                Err(RegistryError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            tagged.extend(tags.into_iter().map(|t| (name.clone(), repo.clone(), t)));
        }
        let items = futures_util::stream::iter(tagged)
            .map(|(name, repo, tag)| async move {
                let r = repo.with_tag(&tag).ok()?;
                let (bytes, _) = registry.manifest(&r).await.ok()?;
                let manifest = Manifest::parse_chart(&bytes).ok()?;
                let metadata = self.upstream_metadata(registry, &repo, &manifest).await?;
                let layer = manifest.chart_layer()?;
                Some(ChartItem {
                    repo: name,
                    tag,
                    name: metadata.get("name")?.as_str()?.to_string(),
                    version: metadata.get("version")?.as_str()?.to_string(),
                    metadata,
                    content: layer.digest.clone(),
                    prov: manifest.prov_layer().map(|d| d.digest.clone()),
                    created: manifest.annotations.get(ANNOTATION_CREATED).cloned(),
                })
            })
            .buffer_unordered(8)
            .filter_map(|i| async move { i })
            .collect::<Vec<_>>()
            .await;
        Ok(items)
    }

    async fn upstream_metadata(
        &self,
        registry: &Registry,
        repo: &Reference,
        manifest: &Manifest,
    ) -> Option<Arc<Map<String, Value>>> {
        let digest = &manifest.config.digest;
        if let Some(m) = self
            .metadata
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
        {
            return Some(m);
        }
        if manifest.config.size > 1024 * 1024 {
            return None;
        }
        let mut bytes = Vec::new();
        registry
            .pull_blob(repo, &manifest.config, &mut bytes)
            .await
            .ok()?;
        if Digest::of(&bytes) != *digest {
            return None;
        }
        let parsed: Arc<Map<String, Value>> = Arc::new(serde_json::from_slice(&bytes).ok()?);
        if let Ok(mut m) = self.metadata.lock() {
            m.insert(digest.clone(), Arc::clone(&parsed));
        }
        Some(parsed)
    }

    /// The rendered index of `prefix`; the first request renders it, off the async threads.
    pub async fn view(self: &Arc<Self>, prefix: &str) -> Result<Option<Rendered>, ApiError> {
        let indexes = self.indexes().await?;
        if indexes.is_rendered(prefix) {
            return Ok(indexes.view(prefix).cloned());
        }
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || indexes.view(&prefix).cloned())
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string()))
    }

    pub async fn chart_file(self: &Arc<Self>, path: &str) -> Result<Option<ChartFile>, ApiError> {
        Ok(self.indexes().await?.files.get(path).cloned())
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
        let entry = match &self.upstream {
            None => {
                let snap = self.current().await?;
                if !snap.repos.contains_key(served) {
                    return Err(ApiError::name_unknown(served));
                }
                snap.find(served, object).cloned()
            }
            Some(up) => self.pull_through(up, served, &repo, object).await?,
        };
        let digest = entry
            .and_then(|e| e.manifest)
            .ok_or_else(|| ApiError::manifest_unknown(served, &object.to_string()))?;
        let bytes = Bytes::from(
            tokio::fs::read(self.store.blob_path(&digest))
                .await
                .map_err(|_| ApiError::manifest_unknown(served, &object.to_string()))?,
        );
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .unwrap_or_else(|| MANIFEST_MEDIA_TYPE.to_string());
        Ok(ServedManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// The cached ref for `served:object`, fetching it from the upstream first when it is not
    /// cached (or, with `--revalidate`, when the upstream's tag moved).
    async fn pull_through(
        self: &Arc<Self>,
        up: &Upstream,
        served: &str,
        repo: &Reference,
        object: &Object,
    ) -> Result<Option<RefEntry>, ApiError> {
        let unknown = || ApiError::manifest_unknown(served, &object.to_string());
        let before = self.current().await?.find(served, object).cloned();
        if let Some(local) = &before {
            match object {
                Object::Digest(_) => return Ok(before),
                Object::Tag(_) if !up.options.revalidate => return Ok(before),
                Object::Tag(_) => {
                    let upstream_ref = object.on(repo).ok_or_else(unknown)?;
                    let registry = match self.registry(up).await {
                        Ok(r) => r,
                        Err(e) => {
                            (self.log)(&format!("{upstream_ref}: serving the cached copy: {e}"));
                            return Ok(before);
                        }
                    };
                    match registry.manifest_digest(&upstream_ref).await {
                        Ok(Some(d)) if local.manifest.as_ref() == Some(&d) => return Ok(before),
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(unknown()),
                        Err(e) => {
                            (self.log)(&format!("{upstream_ref}: serving the cached copy: {e}"));
                            return Ok(before);
                        }
                    }
                }
            }
        }
        let upstream_ref = object.on(repo).ok_or_else(unknown)?;
        let lock = {
            let mut inflight = up.inflight.lock().map_err(|_| unknown())?;
            Arc::clone(inflight.entry(upstream_ref.to_string()).or_default())
        };
        let _one = lock.lock().await;
        // Someone else may have fetched it while this request waited.
        let now = self.current().await?.find(served, object).cloned();
        if now.is_some() && now != before {
            return Ok(now);
        }
        let registry = self.registry(up).await.map_err(ApiError::upstream)?;
        match transfer::pull(&self.store, registry, &upstream_ref).await {
            Ok(_) => {
                (self.log)(&format!("pulled {upstream_ref} into the cache"));
                Ok(self.current().await?.find(served, object).cloned())
            }
            Err(TransferError::Registry(RegistryError::NotFound { .. })) => Err(unknown()),
            Err(TransferError::NotAChart { reason, .. }) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("{upstream_ref} is not a Helm chart: {reason}"),
            )),
            Err(e) => Err(ApiError::upstream(e)),
        }
    }

    /// A blob of `served`, from memory or disk.
    pub async fn blob(
        self: &Arc<Self>,
        served: &str,
        digest: &Digest,
    ) -> Result<super::http::Source, ApiError> {
        let snap = self.current().await?;
        if self.upstream.is_none() && !snap.repos.contains_key(served) {
            return Err(ApiError::name_unknown(served));
        }
        if !snap.holds_blob(served, digest) {
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
        if let Some(up) = &self.upstream
            && !self.store.has_blob(&file.digest)
            && let Some(repo) = self.namespace.repository(&file.repo)
        {
            self.pull_through(up, &file.repo, &repo, &Object::Tag(file.tag.clone()))
                .await?;
        }
        self.blob_source(&file.digest).await
    }

    /// The tags of `served`, sorted: the upstream's when there is one (the cache's if it cannot
    /// be reached).
    pub async fn tags(self: &Arc<Self>, served: &str) -> Result<Vec<String>, ApiError> {
        let snap = self.current().await?;
        let local: Option<Vec<String>> =
            snap.repos.get(served).map(|t| t.keys().cloned().collect());
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
                    (self.log)(&format!("{repo}: listing the cached tags: {e}"));
                }
            }
        }
        local.ok_or_else(|| ApiError::name_unknown(served))
    }

    /// Every served repository name, sorted.
    pub async fn catalog(self: &Arc<Self>) -> Result<Vec<String>, ApiError> {
        let snap = self.current().await?;
        let mut names: Vec<String> = snap.repos.keys().cloned().collect();
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

    #[test]
    fn cache_names_round_trip() {
        let ns = Namespace::Cache;
        let r = Reference::parse("localhost:5000/my_repo/chart").unwrap();
        let served = ns.served(&r).unwrap();
        assert_eq!(served, "localhost_5000/my_repo/chart");
        assert_eq!(ns.repository(&served).unwrap(), r);
        assert!(ns.repository("localhost_5000").is_none());
        assert!(ns.repository("").is_none());
        assert!(ns.repository("a_b_c/x").is_none());
        assert!(ns.repository("localhost_5000/Upper").is_none());
    }

    #[test]
    fn upstream_names_are_relative_to_the_prefix() {
        let ns = Namespace::Upstream {
            host: "reg.example.com:5000".into(),
            prefix: "charts".into(),
        };
        let r = ns.repository("team/web").unwrap();
        assert_eq!(r.to_string(), "reg.example.com:5000/charts/team/web");
        assert_eq!(ns.served(&r).as_deref(), Some("team/web"));
        let other = Reference::parse("reg.example.com:5000/chartsx/web").unwrap();
        assert_eq!(ns.served(&other), None);
        let elsewhere = Reference::parse("other.example.com/charts/web").unwrap();
        assert_eq!(ns.served(&elsewhere), None);
        let bare = Namespace::Upstream {
            host: "reg".into(),
            prefix: String::new(),
        };
        assert_eq!(bare.repository("web").unwrap().to_string(), "reg/web");
    }

    #[test]
    fn objects() {
        assert_eq!(Object::parse("1.0.0").unwrap(), Object::Tag("1.0.0".into()));
        let d = Digest::of(b"x");
        assert_eq!(Object::parse(&d.to_string()).unwrap(), Object::Digest(d));
        assert_eq!(
            Object::parse("sha256:zz").unwrap_err().code,
            "DIGEST_INVALID"
        );
        assert_eq!(
            Object::parse("md5:abc").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(Object::parse("-bad").unwrap_err().code, "MANIFEST_UNKNOWN");
    }
}
