//! The local cache as a place of the copy engine: a source of everything it holds (charts and
//! any other manifest, by tag or by digest, with their blobs), and a sink that takes any
//! manifest under a tag. A Helm chart is checked as `chart pull` checks it and stored in the
//! seed's layout; anything else (an image, an image index, a Docker manifest or list, an OCI
//! artifact, a referrers index) is stored byte for byte, its ref linking only its manifest. The
//! manifests an index names (and referrers) arrive by digest, before it, and are stored as
//! blobs. Blobs are staged, verified, and committed only with the manifest that names them.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::sync::Mutex;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Blob, EngineError, Result, Sink, Source, Tags, blocking};
use crate::digest::Digest;
use crate::manifest::{Kind, Node};
use crate::oci::{Descriptor, Manifest};
use crate::reference::Reference;
use crate::store::{RefTarget, StagedBlob, Store, StoreError, StoredRef};

/// The cache at `store`.
pub struct CachePlace {
    pub store: Store,
    /// Blobs written by this copy, verified and staged in the cache's `.tmp/`, but not yet
    /// committed: they are committed with the manifest that names them, once it is found to
    /// be an acceptable chart, so a refused artifact leaves nothing behind.
    staged: Mutex<HashMap<Digest, StagedBlob>>,
}

impl CachePlace {
    pub fn new(store: Store) -> Self {
        CachePlace {
            store,
            staged: Mutex::new(HashMap::new()),
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, StagedBlob>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A blob's bytes, staged by this copy or stored (small blobs: the config).
    fn read_small(&self, digest: &Digest) -> Result<Vec<u8>> {
        if let Some(blob) = self.staged().get(digest) {
            return std::fs::read(blob.path()).map_err(super::io_err(blob.path()));
        }
        self.store.read_blob(digest).map_err(store_err)
    }

    fn open(&self, digest: &Digest) -> Result<std::fs::File> {
        if let Some(blob) = self.staged().get(digest) {
            return blob.reopen().map_err(store_err);
        }
        self.store.open_blob(digest).map_err(store_err)
    }
}

fn store_err(e: StoreError) -> EngineError {
    EngineError::Unsupported {
        what: "the cache".into(),
        reason: e.to_string(),
    }
}

/// Why `bytes` is not a manifest the cache takes under a tag.
fn refusal(bytes: &[u8]) -> Option<String> {
    let node = match Node::parse(bytes) {
        Ok(n) => n,
        Err(e) => return Some(format!("not a manifest or an index: {e}")),
    };
    if node.kind != Kind::HelmChart {
        return None;
    }
    // A Helm chart must be one `chart pull` would take.
    let m = match Manifest::parse_chart(bytes) {
        Ok(m) => m,
        Err(e) => return Some(format!("not an acceptable Helm chart: {e}")),
    };
    if m.chart_layer().is_none() {
        return Some("not an acceptable Helm chart: no chart layer".into());
    }
    crate::chart::artifact::check_sizes(&m)
        .err()
        .map(|e| format!("not an acceptable Helm chart: {e}"))
}

impl CachePlace {
    /// The tags of one cached repository (none when there is no cache yet).
    fn tags_now(&self, repo: &Reference) -> Result<Vec<String>> {
        if !self.store.root().exists() {
            return Ok(Vec::new());
        }
        let guard = self.store.read().map_err(store_err)?;
        Ok(self
            .store
            .repository(&guard, repo)
            .map_err(store_err)?
            .iter()
            .filter_map(|r| r.reference().tag().map(str::to_string))
            .collect())
    }

    /// The manifest digest `name` points at, when the ref and every blob it links are there.
    fn digest_now(&self, name: &Reference) -> Result<Option<Digest>> {
        if !self.store.root().exists() {
            return Ok(None);
        }
        let guard = self.store.read().map_err(store_err)?;
        Ok(match self.store.resolve_any(&guard, name).ok() {
            Some(StoredRef::Chart(e)) => {
                let complete = [&e.config, &e.content]
                    .into_iter()
                    .chain(&e.prov)
                    .all(|d| self.store.has_blob(d));
                e.manifest.filter(|m| complete && self.store.has_blob(m))
            }
            Some(StoredRef::Artifact(a)) => Some(a.manifest).filter(|m| self.store.has_blob(m)),
            None => None,
        })
    }

    fn manifest_now(&self, name: &Reference) -> Result<(Vec<u8>, Digest)> {
        let guard = self.store.read().map_err(store_err)?;
        let not_found = || EngineError::NotFound {
            place: "the cache".into(),
            name: name.to_string(),
        };
        let digest = match name.digest() {
            // The manifests an index names, and referrers, are blobs, not refs.
            Some(d) if self.store.has_blob(d) => d.clone(),
            Some(_) => return Err(not_found()),
            None => {
                let found = self
                    .store
                    .resolve_any(&guard, name)
                    .map_err(|_| not_found())?;
                found
                    .manifest()
                    .cloned()
                    .ok_or_else(|| EngineError::Unsupported {
                        what: name.to_string(),
                        reason: "written by Helm's alpha cache, it has no manifest; save it again"
                            .into(),
                    })?
            }
        };
        let bytes = self.store.read_blob(&digest).map_err(store_err)?;
        Ok((bytes, digest))
    }

    /// Commits the staged blobs `manifest` names (it is about to be stored), under the
    /// staging lock, so a concurrent copy naming one of them finds it staged or stored, never
    /// between the two.
    fn commit_named(&self, writer: &crate::store::Writer<'_>, blobs: &[Descriptor]) -> Result<()> {
        let mut staged = self.staged();
        for desc in blobs {
            if let Some(blob) = staged.remove(&desc.digest) {
                writer
                    .commit_blob(blob, Some(&desc.digest))
                    .map_err(store_err)?;
            }
        }
        Ok(())
    }

    /// Stores a manifest under `name` once everything it names is in: by digest, as a blob;
    /// by tag, as a chart (whose config and archive must make an acceptable chart, exactly as
    /// for `chart pull`) or as any other artifact.
    fn store_manifest(&self, name: &Reference, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if let Some(want) = name.digest()
            && *want != digest
        {
            return Err(EngineError::DigestMismatch {
                what: format!("manifest {name}"),
                expected: want.clone(),
                actual: digest,
            });
        }
        let node = Node::parse(bytes).map_err(|reason| EngineError::NotAManifest {
            what: name.to_string(),
            reason,
        })?;
        if name.tag().is_some() {
            if let Some(reason) = refusal(bytes) {
                return Err(EngineError::Unsupported {
                    what: name.to_string(),
                    reason,
                });
            }
            if node.kind == Kind::HelmChart {
                return self.store_chart(name, bytes);
            }
        }
        let writer = self.store.write().map_err(store_err)?;
        self.commit_named(&writer, &node.blobs)?;
        let digest = writer.put_blob(bytes).map_err(store_err)?;
        if name.tag().is_some() {
            writer.set_artifact_ref(name, &digest).map_err(store_err)?;
        }
        Ok(digest)
    }

    /// Stores a chart manifest under `name` once its blobs are in: the config and archive
    /// must make an acceptable chart, exactly as for `chart pull`.
    fn store_chart(&self, name: &Reference, bytes: &[u8]) -> Result<Digest> {
        let not_chart = |reason: String| EngineError::Unsupported {
            what: name.to_string(),
            reason: format!("not an acceptable Helm chart: {reason}"),
        };
        let manifest = Manifest::parse_chart(bytes).map_err(|e| not_chart(e.to_string()))?;
        let layer = manifest
            .chart_layer()
            .cloned()
            .ok_or_else(|| not_chart("no chart layer".into()))?;
        let config = self.read_small(&manifest.config.digest)?;
        let content = self.open(&layer.digest)?;
        let metadata =
            crate::chart::artifact::check(&config, BufReader::new(content)).map_err(not_chart)?;
        let writer = self.store.write().map_err(store_err)?;
        let named: Vec<Descriptor> = manifest.blobs().cloned().collect();
        self.commit_named(&writer, &named)?;
        let digest = writer.put_blob(bytes).map_err(store_err)?;
        writer
            .set_ref(
                name,
                &RefTarget {
                    name: metadata.name,
                    version: metadata.version,
                    manifest: digest.clone(),
                    config: manifest.config.digest.clone(),
                    content: layer.digest,
                    prov: manifest.prov_layer().map(|d| d.digest.clone()),
                },
            )
            .map_err(store_err)?;
        Ok(digest)
    }
}

impl Source for CachePlace {
    fn describe(&self) -> String {
        "the cache".into()
    }

    fn tags<'a>(&'a self, repo: &'a Reference) -> BoxFuture<'a, Result<Vec<String>>> {
        async move { blocking(|| self.tags_now(repo)) }.boxed()
    }

    fn manifest<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<(Vec<u8>, Digest)>> {
        async move { blocking(|| self.manifest_now(name)) }.boxed()
    }

    /// The stored file itself: blobs were checked when they were stored, and every sink
    /// checks again as it writes.
    fn blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
    ) -> BoxFuture<'a, Result<Blob>> {
        async move {
            if !self.store.has_blob(&desc.digest) {
                return Err(store_err(StoreError::BlobMissing(desc.digest.clone())));
            }
            Ok(Blob::File(self.store.blob_path(&desc.digest)))
        }
        .boxed()
    }
}

impl Sink for CachePlace {
    fn describe(&self) -> String {
        "the cache".into()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move { blocking(|| self.digest_now(name)) }.boxed()
    }

    fn existing_tags<'a>(&'a self, repo: &'a Reference) -> BoxFuture<'a, Result<Tags>> {
        async move { blocking(|| self.tags_now(repo)).map(Tags::Listed) }.boxed()
    }

    fn current_manifest<'a>(
        &'a self,
        name: &'a Reference,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        async move {
            blocking(|| match self.digest_now(name)? {
                Some(d) => Ok(Some(self.store.read_blob(&d).map_err(store_err)?)),
                None => Ok(None),
            })
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { Ok(self.staged().contains_key(digest) || self.store.has_blob(digest)) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        desc: &'a Descriptor,
        blob: Blob,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            blocking(|| {
                let mut source = blob.open()?;
                let mut staged = self.store.blob_writer().map_err(store_err)?;
                std::io::copy(&mut source, &mut staged)
                    .and_then(|_| staged.flush())
                    .map_err(super::io_err(blob.path()))?;
                let staged = staged.finish().map_err(store_err)?;
                if staged.size() != desc.size || *staged.digest() != desc.digest {
                    return Err(EngineError::DigestMismatch {
                        what: format!("blob {} ({} bytes)", desc.digest, desc.size),
                        expected: desc.digest.clone(),
                        actual: staged.digest().clone(),
                    });
                }
                self.staged().insert(desc.digest.clone(), staged);
                Ok(())
            })
        }
        .boxed()
    }

    /// Any manifest or index under a tag; a Helm chart must be an acceptable one.
    fn admit(&self, name: &Reference, manifest: &[u8]) -> Result<()> {
        let refuse = |reason: String| EngineError::Unsupported {
            what: name.to_string(),
            reason,
        };
        if name.tag().is_none() {
            return Err(refuse("the cache needs a name with a tag".into()));
        }
        match refusal(manifest) {
            Some(reason) => Err(refuse(reason)),
            None => Ok(()),
        }
    }

    fn put_manifest<'a>(
        &'a self,
        name: &'a Reference,
        bytes: &'a [u8],
        _media_type: &'a str,
    ) -> BoxFuture<'a, Result<Digest>> {
        async move { blocking(|| self.store_manifest(name, bytes)) }.boxed()
    }
}
