//! Downloading blobs into a file, checked against their descriptor (size, then digest).
//!
//! A body that stops early (a connection dropped, a stall) is asked for again from where it
//! stopped (see [`super::resume`]), within the operation's one retry budget; a server that
//! answers the range with the whole blob is written from byte 0 again. A complete body with the
//! wrong digest is a [`RegistryError::DigestMismatch`], never tried again.

use std::fs::File;
use std::io::Seek;
use std::ops::ControlFlow;

use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};

use super::request::Request;
use super::resume::{self, Answer, Partial, Validator};
use super::transport::Body;
use super::{Registry, RegistryError};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::reference::Reference;

/// Where a download stands between tries.
struct Progress<'f> {
    partial: Partial<'f>,
    validator: Validator,
    /// False once a server's answer to a range could not be used: then the blob is asked for
    /// whole.
    ranges: bool,
}

impl Registry {
    /// The answer to a blob GET with `extra` headers, sent once (redirects followed; reqwest
    /// sends no `Authorization` to another origin). Any status comes back.
    pub(super) async fn get_blob_once(
        &self,
        repo: &Reference,
        digest: &Digest,
        what: &str,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<reqwest::Response, RegistryError> {
        let url = self.blob_url(repo, digest)?;
        let scopes = Self::pull_scope(repo);
        let mut headers = vec![(ACCEPT, HeaderValue::from_static("*/*"))];
        headers.extend_from_slice(extra);
        self.send(Request {
            headers: &headers,
            ..Request::new(what, Method::GET, &url, &scopes)
        })
        .await
    }

    /// Downloads a blob into `file`, which it empties first and, on success, leaves holding
    /// exactly the blob: its size and digest checked against `desc`. On failure the file's
    /// content is unspecified.
    pub async fn pull_blob_to_file(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        file: &mut File,
    ) -> Result<(), RegistryError> {
        let what = format!("download of blob {}", desc.digest);
        let local = |e: std::io::Error| RegistryError::Local(format!("{what}: {e}"));
        let mut progress = Progress {
            partial: Partial::new(file).map_err(local)?,
            validator: Validator::default(),
            ranges: true,
        };
        let mut attempts = self.attempts();
        loop {
            let result = self.blob_try(repo, desc, &what, &mut progress).await;
            if let ControlFlow::Break(r) = self.settle(&mut attempts, &what, result).await {
                r?;
                break;
            }
        }
        let (actual, size) = progress.partial.finish().map_err(local)?;
        if size != desc.size {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: desc.size,
                actual: size,
            });
        }
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// One try: asks for what is missing, and appends what comes. `Ok` once all
    /// `desc.size` bytes are there.
    async fn blob_try(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        what: &str,
        progress: &mut Progress<'_>,
    ) -> Result<(), RegistryError> {
        let local = |e: std::io::Error| RegistryError::Local(format!("{what}: {e}"));
        if !progress.ranges && !progress.partial.is_empty() {
            progress.partial.restart().map_err(local)?;
        }
        let have = progress.partial.len();
        let extra = if have > 0 {
            progress.validator.range_headers(have)
        } else {
            Vec::new()
        };
        let resp = self.get_blob_once(repo, &desc.digest, what, &extra).await?;
        match resume::answer(resp.status(), resp.headers(), have, Some(desc.size)) {
            Answer::Failed => return Err(self.failure(what, resp).await),
            Answer::BadRange(why) => {
                progress.ranges = false;
                progress.partial.restart().map_err(local)?;
                return Err(RegistryError::Interrupted {
                    host: self.host.clone(),
                    what: what.to_string(),
                    reason: format!("cannot resume: {why}; asking for the whole blob"),
                });
            }
            Answer::Whole => {
                if have > 0 {
                    progress.partial.restart().map_err(local)?;
                }
                progress.validator = Validator::of(resp.headers());
            }
            Answer::Rest => {}
        }
        let mut body = Body::new(resp, &self.timeouts);
        while let Some(chunk) = body
            .chunk()
            .await
            .map_err(|e| e.into_registry(&self.host, what))?
        {
            let received = progress.partial.len() + chunk.len() as u64;
            if received > desc.size {
                return Err(RegistryError::SizeMismatch {
                    what: what.to_string(),
                    expected: desc.size,
                    actual: received,
                });
            }
            progress.partial.append(&chunk).map_err(local)?;
        }
        let received = progress.partial.len();
        if received < desc.size {
            return Err(RegistryError::Interrupted {
                host: self.host.clone(),
                what: what.to_string(),
                reason: format!("the body ended after {received} of {} bytes", desc.size),
            });
        }
        Ok(())
    }

    /// Downloads a blob and writes it to `out` once its size and digest are checked (through
    /// an anonymous temporary file, so a download resumed or started over never shows in
    /// `out`); returns its size. [`Registry::pull_blob_to_file`] saves the copy.
    pub async fn pull_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        out: &mut impl std::io::Write,
    ) -> Result<u64, RegistryError> {
        let what = format!("download of blob {}", desc.digest);
        let local = |e: std::io::Error| RegistryError::Local(format!("{what}: {e}"));
        let mut file = tempfile::tempfile().map_err(local)?;
        self.pull_blob_to_file(repo, desc, &mut file).await?;
        file.rewind().map_err(local)?;
        std::io::copy(&mut file, out).map_err(local)
    }
}
