//! The pull-through half of `serve --upstream`: connecting to the upstream once, listing it
//! for the index view (its catalog, or the `--repo` names), and fetching a chart into the
//! cache the first time it is asked for, through the same `transfer::pull` as `chart pull`
//! (one copy of the copy engine, so every blob is digest-checked before it is stored). One
//! pull runs per reference; requests for it meanwhile wait and then find it cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hyper::StatusCode;
use serde_json::{Map, Value};

use super::index::{self, ChartItem, Indexes};
use super::library::Library;
use super::metrics::Fetch;
use super::names::{ApiError, Object};
use crate::credentials::Credential;
use crate::digest::Digest;
use crate::engine::EngineError;
use crate::engine::places::RegistryPlace;
use crate::oci::{ANNOTATION_CREATED, Manifest};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, Transport};
use crate::store::RefEntry;
use crate::tasks::transfer::TransferError;
use crate::tasks::verify::CheckError;

use super::signed;

/// The transfer error inside a pull's error, if that is what it is.
fn transfer_error(e: &CheckError) -> Option<&TransferError> {
    match e {
        CheckError::Transfer(t) => Some(t),
        _ => None,
    }
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
    /// `--require-signed`: the signatures a chart needs to be served (none when empty).
    pub signatures: Box<crate::tasks::verify::Policy>,
}

pub(super) struct Upstream {
    pub(super) options: UpstreamOptions,
    pub(super) registry: tokio::sync::OnceCell<RegistryPlace>,
    pub(super) index: RwLock<Option<(Instant, Arc<Indexes>)>>,
    /// Held by whoever lists the upstream, so only one listing runs at a time.
    pub(super) refreshing: Arc<tokio::sync::Mutex<()>>,
    /// One pull at a time per reference; later requests for it wait, then find it cached.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When the upstream last answered (anything, an error status included), for `/readyz`.
    answered: Mutex<Option<Instant>>,
    /// With `--require-signed`: the manifests found to verify, checked once each.
    verified: Mutex<std::collections::HashSet<Digest>>,
}

impl Upstream {
    pub(super) fn new(options: UpstreamOptions) -> Self {
        Upstream {
            options,
            registry: tokio::sync::OnceCell::new(),
            index: RwLock::new(None),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
            inflight: Mutex::new(HashMap::new()),
            answered: Mutex::new(None),
            verified: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The upstream answered a request just now.
    fn answered(&self) {
        if let Ok(mut at) = self.answered.lock() {
            *at = Some(Instant::now());
        }
    }

    /// Whether `--require-signed` found the manifest `digest` to verify already (or there
    /// is no policy).
    fn verified(&self, digest: Option<&Digest>) -> bool {
        self.options.signatures.is_empty()
            || digest.is_some_and(|d| self.verified.lock().is_ok_and(|v| v.contains(d)))
    }

    fn mark_verified(&self, digest: Digest) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(digest);
        }
    }

    /// How long ago the upstream last answered.
    pub(super) fn last_answer(&self) -> Option<Duration> {
        self.answered.lock().ok()?.map(|at| at.elapsed())
    }
}

/// Whether an upstream error came with an answer from the upstream (a status), rather than
/// from not reaching it.
fn is_answer(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::NotFound { .. } | RegistryError::Unauthorized { .. }
    )
}

impl Library {
    /// Lists the upstream and rebuilds its index view; `None` (logged) if it cannot be listed.
    pub(super) async fn refresh_upstream_index(self: &Arc<Self>) -> Option<Arc<Indexes>> {
        let up = self.upstream.as_ref()?;
        let listed = self.list_upstream(up).await;
        self.metrics.fetch(Fetch::Index, listed.is_ok());
        match listed {
            Ok(items) => {
                up.answered();
                let started = Instant::now();
                let idx = Arc::new(index::build(items, &self.urls));
                self.metrics.index_built(started.elapsed());
                if let Ok(mut slot) = up.index.write() {
                    *slot = Some((Instant::now(), Arc::clone(&idx)));
                }
                Some(idx)
            }
            Err(e) => {
                self.log
                    .event(&format!("cannot list the upstream for the index: {e}"));
                None
            }
        }
    }

    pub(super) async fn registry<'a>(
        &self,
        up: &'a Upstream,
    ) -> Result<&'a Registry, RegistryError> {
        Ok(self.place(up).await?.registry.as_ref())
    }

    /// The upstream as a place of the copy engine, connected on first use.
    async fn place<'a>(&self, up: &'a Upstream) -> Result<&'a RegistryPlace, RegistryError> {
        up.registry
            .get_or_try_init(|| async {
                Registry::connect(
                    &up.options.host,
                    &up.options.transport,
                    up.options.credential.clone(),
                )
                .await
                .map(RegistryPlace::new)
            })
            .await
    }

    /// Asks the upstream whether it is there (its `GET /v2/`), within `limit`.
    pub(super) async fn probe_upstream(&self, limit: Duration) -> Result<(), String> {
        let Some(up) = &self.upstream else {
            return Ok(());
        };
        let connect = Registry::connect(
            &up.options.host,
            &up.options.transport,
            up.options.credential.clone(),
        );
        let result = match tokio::time::timeout(limit, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "{}: no answer within {}",
                up.options.host,
                humantime::format_duration(limit)
            )),
        };
        self.metrics.fetch(Fetch::Probe, result.is_ok());
        if result.is_ok() {
            up.answered();
        }
        result
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
            let name: Arc<str> = name.as_str().into();
            tagged.extend(
                tags.into_iter()
                    .map(|t| (Arc::clone(&name), repo.clone(), t)),
            );
        }
        let items = futures_util::stream::iter(tagged)
            .map(|(name, repo, tag)| async move {
                let r = repo.with_tag(&tag).ok()?;
                let (bytes, _) = registry.manifest(&r).await.ok()?;
                let manifest = Manifest::parse_chart(&bytes).ok()?;
                let (metadata, parsed) = self.upstream_metadata(registry, &repo, &manifest).await?;
                let layer = manifest.chart_layer()?;
                Some(ChartItem {
                    repo: name,
                    tag,
                    name: parsed.get("name")?.as_str()?.to_string(),
                    version: parsed.get("version")?.as_str()?.to_string(),
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
    ) -> Option<(Arc<[u8]>, Map<String, Value>)> {
        let digest = &manifest.config.digest;
        if let Some(m) = self
            .metadata
            .lock()
            .ok()
            .and_then(|m| m.get(digest).cloned())
        {
            let parsed = serde_json::from_slice(&m).ok()?;
            return Some((m, parsed));
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
        let parsed: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
        let bytes: Arc<[u8]> = bytes.into();
        if let Ok(mut m) = self.metadata.lock() {
            m.insert(digest.clone(), Arc::clone(&bytes));
        }
        Some((bytes, parsed))
    }

    /// The cached ref for `served:object`, fetching it from the upstream first when it is not
    /// cached (or, with `--revalidate`, when the upstream's tag moved).
    pub(super) async fn pull_through(
        self: &Arc<Self>,
        up: &Upstream,
        served: &str,
        repo: &Reference,
        object: &Object,
    ) -> Result<Option<RefEntry>, ApiError> {
        let unknown = || ApiError::manifest_unknown(served, &object.to_string());
        let before = self.current().await?.find(served, object);
        let hit = |entry: Option<RefEntry>| async move {
            self.metrics.lookup(true);
            self.signed_entry(up, entry).await
        };
        if let Some(local) = &before {
            match object {
                Object::Digest(_) => return hit(before).await,
                Object::Tag(_) if !up.options.revalidate => return hit(before).await,
                Object::Tag(_) => {
                    let upstream_ref = object.on(repo).ok_or_else(unknown)?;
                    let registry = match self.registry(up).await {
                        Ok(r) => r,
                        Err(e) => {
                            self.log
                                .event(&format!("{upstream_ref}: serving the cached copy: {e}"));
                            return Ok(before);
                        }
                    };
                    let asked = registry.manifest_digest(&upstream_ref).await;
                    if asked.is_ok() {
                        up.answered();
                    }
                    match asked {
                        Ok(Some(d)) if local.manifest.as_ref() == Some(&d) => {
                            return hit(before).await;
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(unknown()),
                        Err(e) => {
                            self.log
                                .event(&format!("{upstream_ref}: serving the cached copy: {e}"));
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
        let now = self.fresh().await?.find(served, object);
        if now.is_some() && now != before {
            return hit(now).await;
        }
        self.metrics.lookup(false);
        let registry = match self.place(up).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.fetch(Fetch::Chart, false);
                return Err(ApiError::upstream(e));
            }
        };
        let policy = &up.options.signatures;
        let pulled = signed::pull(&self.store, registry, &upstream_ref, policy).await;
        self.metrics.fetch(Fetch::Chart, pulled.is_ok());
        match &pulled {
            Ok(_) => up.answered(),
            Err(e) if transfer_error(e).is_some_and(|t| {
                matches!(t, TransferError::Engine(EngineError::Registry(r)) if is_answer(r))
            }) =>
            {
                up.answered()
            }
            Err(e) if e.failure().is_some() => up.answered(),
            Err(_) => {}
        }
        let e = match pulled {
            Ok(digest) => {
                if !policy.is_empty() {
                    up.mark_verified(digest);
                }
                self.log
                    .event(&format!("pulled {upstream_ref} into the cache"));
                return Ok(self.fresh().await?.find(served, object));
            }
            Err(e) => e,
        };
        if let Some(refused) = signed::refusal(&upstream_ref, &e) {
            self.log.event(&refused.message);
            return Err(refused);
        }
        match transfer_error(&e) {
            Some(TransferError::Engine(EngineError::Registry(RegistryError::NotFound {
                ..
            }))) => Err(unknown()),
            Some(TransferError::NotAChart { reason, .. }) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("{upstream_ref} is not a Helm chart: {reason}"),
            )),
            _ => Err(ApiError::upstream(e)),
        }
    }

    /// `entry` (a cached chart) if the signature policy lets it be served, checked from the
    /// cache the first time.
    async fn signed_entry(
        &self,
        up: &Upstream,
        entry: Option<RefEntry>,
    ) -> Result<Option<RefEntry>, ApiError> {
        let Some(e) = entry else {
            return Ok(None);
        };
        if up.verified(e.manifest.as_ref()) {
            return Ok(Some(e));
        }
        match signed::check_cached(&self.store, &e, &up.options.signatures).await {
            Ok(()) => {
                if let Some(d) = &e.manifest {
                    up.mark_verified(d.clone());
                }
                Ok(Some(e))
            }
            Err(err) => Err(signed::refusal(&e.reference, &err).unwrap_or_else(|| {
                ApiError::internal(format!("{}: checking its signatures: {err}", e.reference))
            })),
        }
    }
}
