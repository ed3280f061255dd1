//! Following paged lists (tags, the catalog, referrers) as the distribution spec says: each
//! page may name the next in a `Link: <URL>; rel="next"` header, relative or absolute on the
//! same origin (credentials never follow a link elsewhere). A registry that sends none but
//! fills a page of tags or repositories is asked again from the last name seen (`last=`),
//! until a page brings nothing new.
//!
//! A hostile registry must not make this endless: a page is read at most [`MAX_PAGE_BYTES`],
//! and paging fails with an error after [`MAX_PAGES`] pages, [`MAX_ITEMS`] names, or when a
//! `Link` names a page already fetched while pages still bring new names (a loop).

use std::collections::HashSet;

/// One page of a tag list or catalog is read at most this far.
pub const MAX_PAGE_BYTES: u64 = 4 << 20;
/// Pages followed at most.
pub const MAX_PAGES: usize = 10_000;
/// Names collected at most.
pub const MAX_ITEMS: usize = 1_000_000;
/// Names asked for per page.
pub const PAGE_SIZE: usize = 1000;

/// The target of a `Link: <…>; rel="next"` header value.
pub fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// The next page an answer names in its `Link` headers, if any.
pub fn next_page(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_link)
}

/// Why paging stopped with an error.
#[derive(Debug, PartialEq, Eq)]
pub enum PagingError {
    TooManyPages,
    TooManyItems,
    Loop(String),
}

impl PagingError {
    pub fn describe(&self) -> String {
        match self {
            PagingError::TooManyPages => {
                format!("more than {MAX_PAGES} pages (endless pagination?), refused")
            }
            PagingError::TooManyItems => format!("more than {MAX_ITEMS} names, refused"),
            PagingError::Loop(url) => {
                format!("the Link header leads back to a page already read ({url}), refused")
            }
        }
    }
}

/// The names collected so far and the pages fetched.
pub struct Pager {
    origin: String,
    first: String,
    /// Whether a full page without a `Link` is followed by asking from its last name on.
    resumes: bool,
    fetched: HashSet<String>,
    seen: HashSet<String>,
    pub items: Vec<String>,
}

impl Pager {
    /// Paging from `first` (an absolute URL on `origin`, like `https://host`).
    pub fn new(origin: &str, first: &str) -> Self {
        Pager {
            origin: origin.to_string(),
            first: first.to_string(),
            resumes: true,
            fetched: HashSet::new(),
            seen: HashSet::new(),
            items: Vec::new(),
        }
    }

    /// Paging that follows `Link` headers only: for lists that have no `last=` parameter
    /// (the referrers API).
    pub fn links_only(origin: &str, first: &str) -> Self {
        Pager {
            resumes: false,
            ..Pager::new(origin, first)
        }
    }

    /// Records that `url` is about to be fetched.
    pub fn fetching(&mut self, url: &str) -> Result<(), PagingError> {
        if self.fetched.len() >= MAX_PAGES {
            return Err(PagingError::TooManyPages);
        }
        self.fetched.insert(url.to_string());
        Ok(())
    }

    /// Takes a page's names and its `Link`; returns the next URL to fetch, if any.
    pub fn page(
        &mut self,
        names: Vec<String>,
        link: Option<String>,
    ) -> Result<Option<String>, PagingError> {
        let full = names.len() >= PAGE_SIZE;
        let before = self.items.len();
        for n in names {
            if self.seen.insert(n.clone()) {
                if self.items.len() >= MAX_ITEMS {
                    return Err(PagingError::TooManyItems);
                }
                self.items.push(n);
            }
        }
        if self.items.len() == before {
            return Ok(None);
        }
        let next = match link {
            Some(l) if l.starts_with('/') && !l.starts_with("//") => format!("{}{l}", self.origin),
            Some(l) if l.starts_with(&format!("{}/", self.origin)) => l,
            Some(_) => return Ok(None),
            None if full && self.resumes => match self.items.last() {
                Some(last) => {
                    let sep = if self.first.contains('?') { '&' } else { '?' };
                    format!("{}{sep}last={last}", self.first)
                }
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        if self.fetched.contains(&next) {
            return Err(PagingError::Loop(next));
        }
        Ok(Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_link(r#"<https://h/v2/p?last=1>; rel="prev", <https://h/v2/n?last=2>; rel=next"#)
                .as_deref(),
            Some("https://h/v2/n?last=2")
        );
        assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn links_stay_on_the_origin_and_loops_are_refused() {
        let first = "https://h/v2/a/tags/list?n=1000";
        let mut p = Pager::new("https://h", first);
        p.fetching(first).expect("first");
        let next = p.page(vec!["1".into()], Some("/v2/a/tags/list?c=2".into()));
        assert_eq!(next, Ok(Some("https://h/v2/a/tags/list?c=2".into())));
        p.fetching("https://h/v2/a/tags/list?c=2").expect("second");
        // Another origin: not followed.
        assert_eq!(
            p.page(vec!["2".into()], Some("https://evil/v2/x".into())),
            Ok(None)
        );
        // Back to the first page, with new names: a loop.
        assert!(matches!(
            p.page(vec!["3".into()], Some("/v2/a/tags/list?n=1000".into())),
            Err(PagingError::Loop(_))
        ));
        // A page with nothing new ends paging quietly.
        assert_eq!(p.page(vec!["1".into()], Some("/v2/x".into())), Ok(None));
    }

    #[test]
    fn too_many_names_or_pages_are_refused() {
        let mut p = Pager::new("https://h", "https://h/v2/_catalog?n=1000");
        let names: Vec<String> = (0..=MAX_ITEMS).map(|i| i.to_string()).collect();
        assert_eq!(p.page(names, None), Err(PagingError::TooManyItems));

        let mut p = Pager::new("https://h", "https://h/v2/_catalog?n=1000");
        for i in 0..MAX_PAGES {
            p.fetching(&format!("https://h/v2/_catalog?c={i}"))
                .expect("within the limit");
        }
        assert_eq!(
            p.fetching("https://h/v2/_catalog?c=last"),
            Err(PagingError::TooManyPages)
        );
    }

    #[test]
    fn full_pages_without_a_link_continue_from_the_last_name() {
        let first = "https://h/v2/a/tags/list?n=1000";
        let mut p = Pager::new("https://h", first);
        p.fetching(first).expect("first");
        let names: Vec<String> = (0..PAGE_SIZE).map(|i| format!("t{i:04}")).collect();
        assert_eq!(
            p.page(names.clone(), None),
            Ok(Some(format!("{first}&last=t0999")))
        );
        // A list without `last=` ends there.
        let mut p = Pager::links_only("https://h", first);
        p.fetching(first).expect("first");
        assert_eq!(p.page(names, None), Ok(None));
    }
}
