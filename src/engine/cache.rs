//! The local cache as a place of the copy engine: a source of everything it holds (charts and
//! any other manifest, by tag or by digest, with their blobs), and a sink that takes any
//! manifest under a tag. A Helm chart is checked as `chart pull` checks it and stored in the
//! seed's layout; anything else (an image, an image index, a Docker manifest or list, an OCI
//! artifact) is stored byte for byte, its ref linking only its manifest. The manifests an index
//! names arrive by digest, before it, and are stored as blobs.

use std::io::{BufReader, Write};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Blob, EngineError, Result, Sink, Source, blocking};
use crate::digest::Digest;
use crate::oci::{Descriptor, Manifest};
use crate::reference::Reference;
use crate::store::graph::{Kind, Node};
use crate::store::{RefTarget, Store, StoreError};

/// The cache at `store`.
pub struct CachePlace<'s> {
    pub store: &'s Store,
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

impl CachePlace<'_> {
    fn manifest_now(&self, name: &Reference) -> Result<(Vec<u8>, Digest)> {
        let guard = self.store.read().map_err(store_err)?;
        let not_found = || EngineError::NotFound {
            place: "the cache".into(),
            name: name.to_string(),
        };
        let digest = match name.digest() {
            // The manifests an index names are blobs, not refs.
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

    /// Stores a manifest under `name` once everything it names is in: by digest, as a blob;
    /// by tag, as a chart (whose config and archive must make an acceptable chart, exactly as
    /// for `chart pull`) or as any other artifact.
    fn store_manifest(&self, name: &Reference, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if name.tag().is_none() {
            if let Some(want) = name.digest()
                && *want != digest
            {
                return Err(EngineError::DigestMismatch {
                    what: format!("manifest {name}"),
                    expected: want.clone(),
                    actual: digest,
                });
            }
            let writer = self.store.write().map_err(store_err)?;
            return writer.put_blob(bytes).map_err(store_err);
        }
        if let Some(reason) = refusal(bytes) {
            return Err(EngineError::Unsupported {
                what: name.to_string(),
                reason,
            });
        }
        let is_chart = Node::parse(bytes).is_ok_and(|n| n.kind == Kind::HelmChart);
        if is_chart {
            return self.store_chart(name, bytes);
        }
        let writer = self.store.write().map_err(store_err)?;
        let digest = writer.put_blob(bytes).map_err(store_err)?;
        writer.set_artifact_ref(name, &digest).map_err(store_err)?;
        Ok(digest)
    }

    /// Stores a chart manifest under `name`: the config and archive must make an acceptable
    /// chart, exactly as for `chart pull`.
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
        let config = self
            .store
            .read_blob(&manifest.config.digest)
            .map_err(store_err)?;
        let content = self.store.open_blob(&layer.digest).map_err(store_err)?;
        let metadata =
            crate::chart::artifact::check(&config, BufReader::new(content)).map_err(not_chart)?;
        let writer = self.store.write().map_err(store_err)?;
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

impl Source for CachePlace<'_> {
    fn describe(&self) -> String {
        "the cache".into()
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

impl Sink for CachePlace<'_> {
    fn describe(&self) -> String {
        "the cache".into()
    }

    fn digest_of<'a>(&'a self, name: &'a Reference) -> BoxFuture<'a, Result<Option<Digest>>> {
        async move {
            if !self.store.root().exists() {
                return Ok(None);
            }
            blocking(|| {
                let guard = self.store.read().map_err(store_err)?;
                Ok(self
                    .store
                    .resolve_any(&guard, name)
                    .ok()
                    .and_then(|r| r.manifest().cloned()))
            })
        }
        .boxed()
    }

    fn has_blob<'a>(
        &'a self,
        _repo: &'a Reference,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool>> {
        async move { Ok(self.store.has_blob(digest)) }.boxed()
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
                if staged.size() != desc.size {
                    return Err(EngineError::DigestMismatch {
                        what: format!("blob {} ({} bytes)", desc.digest, desc.size),
                        expected: desc.digest.clone(),
                        actual: staged.digest().clone(),
                    });
                }
                self.store
                    .write()
                    .and_then(|w| w.commit_blob(staged, Some(&desc.digest)))
                    .map_err(store_err)?;
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
