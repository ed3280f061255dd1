//! A source that keeps what a signature check read, so that the copy after it reads nothing
//! twice: `sync --require-signed` checks a reference at the source (its manifest, its config,
//! provenance and chart archive, its cosign signature manifest and payload) and then copies
//! it, and without this every one of those would be downloaded again.
//!
//! It also makes the copy take exactly what was checked: a tag that moves between the check
//! and the copy cannot slip another manifest in, since the manifest the check read is the
//! one the copy gets.
//!
//! What it keeps lives as long as it does (one reference's check and copy): manifests in
//! memory (each within the manifest limit), blobs in the temporary files the source
//! downloaded them to. Only what is read before [`Recall::done_checking`] is kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::digest::Digest;
use crate::engine::referrers::Found;
use crate::engine::{Blob, Result, Source};
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::Registry;

/// `inner`, remembering what is read from it until the check is done.
pub struct Recall<'a> {
    inner: &'a dyn Source,
    manifests: Mutex<HashMap<Reference, (Vec<u8>, Digest)>>,
    blobs: Mutex<HashMap<Digest, Blob>>,
    checking: AtomicBool,
}

impl<'a> Recall<'a> {
    pub fn new(inner: &'a dyn Source) -> Self {
        Recall {
            inner,
            manifests: Mutex::new(HashMap::new()),
            blobs: Mutex::new(HashMap::new()),
            checking: AtomicBool::new(true),
        }
    }

    /// The check is over: what is read from now on (the copy) is passed through, not kept.
    pub fn done_checking(&self) {
        self.checking.store(false, Ordering::Relaxed);
    }

    fn checking(&self) -> bool {
        self.checking.load(Ordering::Relaxed)
    }

    fn known(&self, name: &Reference) -> Option<(Vec<u8>, Digest)> {
        self.manifests.lock().ok()?.get(name).cloned()
    }
}

impl Source for Recall<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn artifacts(&self) -> Result<Option<Vec<Reference>>> {
        self.inner.artifacts()
    }

    fn tags<'b>(&'b self, repo: &'b Reference) -> BoxFuture<'b, Result<Vec<String>>> {
        self.inner.tags(repo)
    }

    fn manifest<'b>(&'b self, name: &'b Reference) -> BoxFuture<'b, Result<(Vec<u8>, Digest)>> {
        async move {
            if let Some(known) = self.known(name) {
                return Ok(known);
            }
            let read = self.inner.manifest(name).await?;
            if self.checking()
                && let Ok(mut m) = self.manifests.lock()
            {
                m.insert(name.clone(), read.clone());
            }
            Ok(read)
        }
        .boxed()
    }

    fn digest<'b>(&'b self, name: &'b Reference) -> BoxFuture<'b, Result<Option<Digest>>> {
        async move {
            match self.known(name) {
                Some((_, digest)) => Ok(Some(digest)),
                None => self.inner.digest(name).await,
            }
        }
        .boxed()
    }

    fn referrers<'b>(
        &'b self,
        repo: &'b Reference,
        digest: &'b Digest,
        tags: &'b [String],
    ) -> BoxFuture<'b, Result<Found>> {
        self.inner.referrers(repo, digest, tags)
    }

    fn same_content(&self, name: &Reference, held: &[u8]) -> Option<bool> {
        self.inner.same_content(name, held)
    }

    fn compares_content(&self) -> bool {
        self.inner.compares_content()
    }

    fn blob<'b>(
        &'b self,
        repo: &'b Reference,
        desc: &'b Descriptor,
    ) -> BoxFuture<'b, Result<Blob>> {
        async move {
            if let Some(kept) = self.held(&desc.digest) {
                return Ok(kept);
            }
            let blob = self.inner.blob(repo, desc).await?;
            if !self.checking() {
                return Ok(blob);
            }
            let shared = blob.shared();
            if let Ok(mut b) = self.blobs.lock() {
                b.insert(desc.digest.clone(), blob);
            }
            Ok(shared)
        }
        .boxed()
    }

    fn registry(&self) -> Option<&Registry> {
        self.inner.registry()
    }

    fn held(&self, digest: &Digest) -> Option<Blob> {
        let kept = self
            .blobs
            .lock()
            .ok()
            .and_then(|b| b.get(digest).map(Blob::shared));
        kept.or_else(|| self.inner.held(digest))
    }

    fn release(&self, name: &Reference) {
        self.inner.release(name)
    }
}
