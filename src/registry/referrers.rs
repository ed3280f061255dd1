//! The OCI 1.1 referrers API: `GET /v2/<name>/referrers/<digest>` answers an image index
//! listing the manifests whose `subject` is that digest (with `artifactType` filtering).
//! A long listing comes in pages, each naming the next in a `Link` header (as tag lists do).
//! Registries without it (distribution 2.8, most registries before 2024) answer 404 or 405:
//! callers then use the referrers tag schema (`sha256-<hex>` tags holding such an index),
//! which [`crate::engine::referrers`] reads and writes for every place.

use std::collections::HashSet;

use reqwest::{Method, StatusCode, Url};

use super::paging::{self, Pager};
use super::transport::Body;
use super::{MAX_ERROR_BODY, Registry, RegistryError};
use crate::digest::Digest;
use crate::oci::{Descriptor, INDEX_MEDIA_TYPE};
use crate::reference::Reference;

/// The largest referrers index read (from the referrers API or the tag schema): about 7,000
/// descriptors, where real artifacts have a handful.
pub const MAX_INDEX_BYTES: u64 = 1 << 20;
/// The most referrers one manifest may have; a listing of more is refused.
pub const MAX_REFERRERS: usize = 1000;

impl Registry {
    /// The referrers of `digest` in `repo`, from the referrers API, following its `Link`
    /// pages; `None` when the registry does not have the API (404 without an OCI error body,
    /// 400, 405, 501). Paging stops once more than [`MAX_REFERRERS`] are listed: the caller
    /// refuses such a listing whole.
    pub async fn referrers(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let what = format!("referrers of {}@{digest}", repo.without_object());
        let other = |message: String| RegistryError::Other {
            host: self.host.clone(),
            what: what.clone(),
            message,
        };
        let first = format!("{}/v2/{}/referrers/{digest}", self.origin(), repo.path());
        let mut pager = Pager::links_only(&self.origin(), &first);
        let mut found: Vec<Descriptor> = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(first);
        while let Some(url) = next {
            pager.fetching(&url).map_err(|e| other(e.describe()))?;
            let parsed = Url::parse(&url).map_err(|_| other(format!("{url}: not a URL")))?;
            let page = self
                .retried(&what, || self.referrers_once(&parsed, repo, &what))
                .await?;
            let Some((descriptors, link)) = page else {
                // Only the first page can tell that there is no API.
                return match pager.items.is_empty() {
                    true => Ok(None),
                    false => Err(other(format!("{url}: a page of the listing is missing"))),
                };
            };
            let names = descriptors.iter().map(|d| d.digest.to_string()).collect();
            found.extend(
                descriptors
                    .into_iter()
                    .filter(|d| seen.insert(d.digest.clone())),
            );
            next = pager.page(names, link).map_err(|e| other(e.describe()))?;
            if found.len() > MAX_REFERRERS {
                break;
            }
        }
        Ok(Some(found))
    }

    /// One page of referrers, with the `Link` to the next; `None` for a registry without the
    /// API.
    async fn referrers_once(
        &self,
        url: &Url,
        repo: &Reference,
        what: &str,
    ) -> Result<Option<(Vec<Descriptor>, Option<String>)>, RegistryError> {
        let scopes = Self::pull_scope(repo);
        let resp = self
            .read_once(what, Method::GET, url, &scopes, INDEX_MEDIA_TYPE)
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND
            | StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED => {
                // A registry with the API answers an empty index for a digest it does not
                // know; a 404 is a registry without the route (or, with the OCI error
                // NAME_UNKNOWN, a repository it does not have: nothing refers to anything).
                let body = Body::new(resp, &self.timeouts)
                    .read_prefix(MAX_ERROR_BODY)
                    .await;
                return Ok(names_unknown(&body).then(|| (Vec::new(), None)));
            }
            _ => return Err(self.failure(what, resp).await),
        }
        let link = paging::next_page(resp.headers());
        let bytes = self.body(what, resp, MAX_INDEX_BYTES).await?;
        parse_index(&bytes)
            .map(|found| Some((found, link)))
            .map_err(|reason| RegistryError::Other {
                host: self.host.clone(),
                what: what.to_string(),
                message: format!("not a referrers index: {reason}"),
            })
    }
}

/// The descriptors of an image index.
pub fn parse_index(bytes: &[u8]) -> Result<Vec<Descriptor>, String> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Option<Vec<Descriptor>>,
    }
    serde_json::from_slice::<Index>(bytes)
        .map(|i| i.manifests.unwrap_or_default())
        .map_err(|e| e.to_string())
}

/// Whether an error body is the OCI error `NAME_UNKNOWN`.
fn names_unknown(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<Code>,
    }
    #[derive(serde::Deserialize)]
    struct Code {
        #[serde(default)]
        code: String,
    }
    serde_json::from_slice::<Errors>(body)
        .is_ok_and(|e| e.errors.iter().any(|c| c.code == "NAME_UNKNOWN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert!(names_unknown(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#
        ));
        assert!(!names_unknown(b"404 page not found"));
        assert!(!names_unknown(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#
        ));
    }

    #[test]
    fn indexes() {
        let d = Digest::of(b"x");
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{d}","size":1,"artifactType":"a/b"}}]}}"#
        );
        let found = parse_index(text.as_bytes()).unwrap();
        assert_eq!(found[0].artifact_type.as_deref(), Some("a/b"));
        assert!(parse_index(br#"{"schemaVersion":2}"#).unwrap().is_empty());
        assert!(parse_index(b"[").is_err());
    }
}
