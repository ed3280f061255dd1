//! Manifests: reading one (or only the digest a tag points at), asking whether a blob is there,
//! and uploading one, mending a refusal for a blob the registry lost.

use std::future::Future;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};

use super::request::Request;
use super::transport::Upload;
use super::{BLOB_UNKNOWN_ROUNDS, MANIFEST_TYPES, MAX_MANIFEST_BYTES, Registry, RegistryError};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::reference::Reference;

impl Registry {
    /// The manifest `r` names, raw, with its digest (checked against `r`'s digest if it has
    /// one). At most [`MAX_MANIFEST_BYTES`]. A body cut off is asked for again.
    pub async fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, Digest), RegistryError> {
        let what = format!("manifest {r}");
        let bytes = self.retried(&what, || self.manifest_once(r, &what)).await?;
        let actual = Digest::of(&bytes);
        if let Some(expected) = r.digest()
            && *expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: expected.clone(),
                actual,
            });
        }
        Ok((bytes, actual))
    }

    async fn manifest_once(&self, r: &Reference, what: &str) -> Result<Vec<u8>, RegistryError> {
        let url = self.manifest_url(r)?;
        let resp = self
            .read_once(
                what,
                Method::GET,
                &url,
                &Self::pull_scope(r),
                &MANIFEST_TYPES.join(", "),
            )
            .await?;
        let resp = self.success(what, resp).await?;
        self.body(what, resp, MAX_MANIFEST_BYTES).await
    }

    /// The manifest digest a tag points at (a HEAD request), if the tag exists.
    pub async fn manifest_digest(&self, r: &Reference) -> Result<Option<Digest>, RegistryError> {
        let what = format!("manifest {r}");
        let header = self
            .retried(&what, || self.manifest_digest_once(r, &what))
            .await?;
        match header {
            Some(Some(d)) => Ok(Some(d)),
            Some(None) => self.manifest(r).await.map(|(_, d)| Some(d)),
            None => Ok(None),
        }
    }

    /// One HEAD: `None` for no such tag, `Some(None)` when the registry sent no usable
    /// `Docker-Content-Digest` (then the digest is that of the bytes).
    async fn manifest_digest_once(
        &self,
        r: &Reference,
        what: &str,
    ) -> Result<Option<Option<Digest>>, RegistryError> {
        let url = self.manifest_url(r)?;
        let resp = self
            .read_once(
                what,
                Method::HEAD,
                &url,
                &Self::pull_scope(r),
                &MANIFEST_TYPES.join(", "),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.success(what, resp).await?;
        Ok(Some(
            resp.headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v).ok()),
        ))
    }

    /// Whether the repository holds the blob (a HEAD request).
    pub async fn blob_exists(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        self.retried(&what, || self.blob_exists_once(repo, digest, &what))
            .await
    }

    async fn blob_exists_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        what: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.blob_url(repo, digest)?;
        let resp = self
            .read_once(what, Method::HEAD, &url, &Self::pull_scope(repo), "*/*")
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.failure(what, resp).await),
        }
    }

    /// Uploads a manifest under `r`'s tag (or digest), byte for byte, with `media_type` as its
    /// `Content-Type`; returns its digest. The PUT is safe to repeat, and is.
    pub async fn push_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let what = format!("upload of manifest {r}");
        let content_type = HeaderValue::from_str(media_type)
            .map_err(|_| RegistryError::Config(format!("bad media type {media_type:?}")))?;
        let data = bytes::Bytes::copy_from_slice(bytes);
        self.retried(&what, || {
            self.push_manifest_once(r, data.clone(), content_type.clone(), &what)
        })
        .await?;
        Ok(Digest::of(bytes))
    }

    async fn push_manifest_once(
        &self,
        r: &Reference,
        data: bytes::Bytes,
        content_type: HeaderValue,
        what: &str,
    ) -> Result<(), RegistryError> {
        let url = self.manifest_url(r)?;
        let size = data.len() as u64;
        let mut make = |up: &Upload| {
            up.sent.store(size, std::sync::atomic::Ordering::Relaxed);
            Some(reqwest::Body::from(data.clone()))
        };
        let scopes = Self::push_scope(r);
        let resp = self
            .send(Request {
                headers: &[(CONTENT_TYPE, content_type)],
                body: Some((size, &mut make)),
                ..Request::new(what, Method::PUT, &url, &scopes)
            })
            .await?;
        self.success(what, resp).await.map(drop)
    }

    /// [`Registry::push_manifest`], mending a refusal for an unknown blob
    /// (`MANIFEST_BLOB_UNKNOWN`, `BLOB_UNKNOWN`): distribution can lose a repository's link to
    /// a blob that two writers commit at the same moment. Each round checks every blob of
    /// `blobs` with HEAD and sends the missing ones again with `resend` (all of them when HEAD
    /// finds none missing), then tries the manifest again; up to [`BLOB_UNKNOWN_ROUNDS`]
    /// rounds.
    pub async fn push_manifest_with_blobs<'d, F, Fut>(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
        blobs: &[&'d Descriptor],
        resend: F,
    ) -> Result<Digest, RegistryError>
    where
        F: Fn(&'d Descriptor) -> Fut,
        Fut: Future<Output = Result<(), RegistryError>>,
    {
        let repo = r.without_object();
        let mut round = 0;
        loop {
            match self.push_manifest(r, bytes, media_type).await {
                Err(RegistryError::BlobUnknown { .. }) if round < BLOB_UNKNOWN_ROUNDS => {
                    round += 1;
                    let mut missing = Vec::new();
                    for d in blobs {
                        if !self.blob_exists(&repo, &d.digest).await? {
                            missing.push(*d);
                        }
                    }
                    if missing.is_empty() {
                        missing = blobs.to_vec();
                    }
                    for d in missing {
                        resend(d).await?;
                    }
                }
                other => return other,
            }
        }
    }
}
