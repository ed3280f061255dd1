//! Listing: the tags of a repository and the registry's catalog, page by page (see
//! [`super::paging`] for the bounds). Each page is one operation, tried again as a whole.

use reqwest::{Method, Url};

use super::paging::{self, MAX_PAGE_BYTES, PAGE_SIZE, Pager};
use super::{Registry, RegistryError};
use crate::reference::Reference;

impl Registry {
    /// Every tag of a repository, following the registry's `Link` header from page to page.
    pub async fn tags(&self, repo: &Reference) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tags of {}", repo.without_object());
        let first = format!(
            "{}/v2/{}/tags/list?n={PAGE_SIZE}",
            self.origin(),
            repo.path()
        );
        self.pages(&what, &first, &Self::pull_scope(repo), |body| {
            serde_json::from_slice::<Page>(body)
                .map(|p| p.tags.unwrap_or_default())
                .map_err(|e| format!("not a tag list: {e}"))
        })
        .await
    }

    /// Every repository the registry lists in `/v2/_catalog`, following pages. Registries that
    /// keep their catalog private (most token registries) answer with an error.
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let first = format!("{}/v2/_catalog?n={PAGE_SIZE}", self.origin());
        self.pages(
            "catalog",
            &first,
            &["registry:catalog:*".to_string()],
            |body| {
                serde_json::from_slice::<Page>(body)
                    .map(|p| p.repositories.unwrap_or_default())
                    .map_err(|e| format!("not a catalog: {e}"))
            },
        )
        .await
    }

    /// The names of every page from `first` on.
    async fn pages(
        &self,
        what: &str,
        first: &str,
        scopes: &[String],
        parse: impl Fn(&[u8]) -> Result<Vec<String>, String>,
    ) -> Result<Vec<String>, RegistryError> {
        let other = |message: String| RegistryError::Other {
            host: self.host.clone(),
            what: what.to_string(),
            message,
        };
        let mut pager = Pager::new(&self.origin(), first);
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            pager.fetching(&url).map_err(|e| other(e.describe()))?;
            let parsed = Url::parse(&url).map_err(|_| other(format!("{url}: not a URL")))?;
            let (link, body) = self
                .retried(what, || self.page_once(what, &parsed, scopes))
                .await?;
            let names = parse(&body).map_err(other)?;
            next = pager.page(names, link).map_err(|e| other(e.describe()))?;
        }
        Ok(pager.items)
    }

    /// One page: the `Link` to the next one, if any, and the body.
    async fn page_once(
        &self,
        what: &str,
        url: &Url,
        scopes: &[String],
    ) -> Result<(Option<String>, Vec<u8>), RegistryError> {
        let resp = self
            .read_once(what, Method::GET, url, scopes, "application/json")
            .await?;
        let resp = self.success(what, resp).await?;
        let link = paging::next_page(resp.headers());
        let body = self.body(what, resp, MAX_PAGE_BYTES).await?;
        Ok((link, body))
    }
}
