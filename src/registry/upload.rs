//! Uploading blobs: mounted from another repository when the registry will, else one
//! monolithic upload (`POST` for a location, `PUT` of the whole body there). An upload that
//! fails in a way a retry can mend is started over as a whole, counted once: the requests
//! inside an upload are never repeated on their own.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};

use super::request::{MakeBody, Request};
use super::transport::{self, Body, HttpFailure, Upload};
use super::{Registry, RegistryError};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::reference::Reference;

impl Registry {
    /// Asks the registry to mount a blob from another repository; false if it would not (an
    /// upload session it opened instead is cancelled). Not retried: an upload follows.
    pub async fn mount_blob(&self, repo: &Reference, from: &Reference, digest: &Digest) -> bool {
        let what = format!("mount of blob {digest}");
        let Ok(url) = self.url(&format!(
            "/v2/{}/blobs/uploads/?mount={digest}&from={}",
            repo.path(),
            from.path()
        )) else {
            return false;
        };
        let mut scopes = Self::push_scope(repo);
        scopes.extend(Self::pull_scope(from));
        let Ok(resp) = self
            .send(Request::new(&what, Method::POST, &url, &scopes))
            .await
        else {
            return false;
        };
        match resp.status().as_u16() {
            201 => true,
            202 => {
                if let Ok(location) = self.location(&url, &resp) {
                    let _ = self
                        .send(Request::new(&what, Method::DELETE, &location, &scopes))
                        .await;
                }
                false
            }
            _ => false,
        }
    }

    /// Where an answer's `Location` points, resolved against the request URL.
    fn location(&self, request: &Url, resp: &reqwest::Response) -> Result<Url, RegistryError> {
        let bad = |message: String| RegistryError::Other {
            host: self.host.clone(),
            what: "upload".into(),
            message,
        };
        let text = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("the registry gave no upload location".into()))?;
        let url = request
            .join(text)
            .map_err(|_| bad(format!("{text:?}: not an upload location")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!("{text:?}: not an upload location")));
        }
        Ok(url)
    }

    /// One monolithic upload, one try: `POST …/blobs/uploads/` → 202 with a `Location`, then
    /// `PUT` of the whole body there with `digest=`; 201 expected.
    async fn upload_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        make: MakeBody<'_>,
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest}");
        let scopes = Self::push_scope(repo);
        let start = self.url(&format!("/v2/{}/blobs/uploads/", repo.path()))?;
        let resp = self
            .send(Request::new(&what, Method::POST, &start, &scopes))
            .await?;
        if resp.status().as_u16() != 202 && !resp.status().is_success() {
            return Err(self.failure(&what, resp).await);
        }
        let mut location = self.location(&start, &resp)?;
        drop(resp);
        location
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let octets = HeaderValue::from_static("application/octet-stream");
        let resp = self
            .send(Request {
                headers: &[(CONTENT_TYPE, octets)],
                body: Some((size, make)),
                ..Request::new(&what, Method::PUT, &location, &scopes)
            })
            .await?;
        self.success(&what, resp).await.map(drop)
    }

    /// Uploads a stored blob, streamed from a file: `size` bytes from where `open` leaves it
    /// (each try opens it again; a blob inside an OCI archive is sent from where it is).
    pub async fn push_blob_file(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn() -> std::io::Result<std::fs::File> + Sync),
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest}");
        self.retried(&what, || self.push_file_once(repo, digest, size, open))
            .await
    }

    async fn push_file_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        open: &(dyn Fn() -> std::io::Result<std::fs::File> + Sync),
    ) -> Result<(), RegistryError> {
        let file =
            open().map_err(|e| RegistryError::Local(format!("upload of blob {digest}: {e}")))?;
        let mut file = Some(file);
        let mut make = |up: &Upload| {
            file.take()
                .map(|f| reqwest::Body::wrap_stream(transport::file_stream(f, size, up)))
        };
        self.upload_once(repo, digest, size, &mut make).await
    }

    /// Uploads a small blob from memory.
    pub async fn push_blob_bytes(
        &self,
        repo: &Reference,
        digest: &Digest,
        data: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let what = format!("upload of blob {digest}");
        let data = bytes::Bytes::from(data);
        self.retried(&what, || self.push_bytes_once(repo, digest, data.clone()))
            .await
    }

    async fn push_bytes_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        data: bytes::Bytes,
    ) -> Result<(), RegistryError> {
        let size = data.len() as u64;
        let mut make = |up: &Upload| {
            up.sent.store(size, std::sync::atomic::Ordering::Relaxed);
            Some(reqwest::Body::from(data.clone()))
        };
        self.upload_once(repo, digest, size, &mut make).await
    }

    /// Copies a blob from another registry, streaming it straight through (the destination
    /// checks the digest when the upload completes; more bytes than the descriptor says are
    /// refused). A failed try (of the download or of the upload) starts both over, counted once
    /// against this registry's retry budget.
    pub async fn copy_blob_from(
        &self,
        source: &Registry,
        source_repo: &Reference,
        repo: &Reference,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        let what = format!("copy of blob {}", desc.digest);
        self.retried(&what, || self.copy_once(source, source_repo, repo, desc))
            .await
    }

    async fn copy_once(
        &self,
        source: &Registry,
        source_repo: &Reference,
        repo: &Reference,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        let download = format!("download of blob {}", desc.digest);
        let resp = source
            .get_blob_once(source_repo, &desc.digest, &download, &[])
            .await?;
        let resp = source.success(&download, resp).await?;
        let failure = Arc::new(std::sync::Mutex::new(None::<HttpFailure>));
        let stream = Body::new(resp, &source.timeouts).into_stream(desc.size, Arc::clone(&failure));
        let mut stream = Some(stream);
        let mut make = |up: &Upload| {
            stream
                .take()
                .map(|s| reqwest::Body::wrap_stream(transport::counted(s, up)))
        };
        let result = self
            .upload_once(repo, &desc.digest, desc.size, &mut make)
            .await;
        let source_failure = failure.lock().ok().and_then(|mut f| f.take());
        match (result, source_failure) {
            (Err(_), Some(f)) => Err(f.into_registry(&source.host, &download)),
            (result, _) => result,
        }
    }
}
