//! `sync`: make a destination hold what a source holds, like `skopeo sync`, but planned first
//! and done in parallel.
//!
//! Either side is a registry or the local cache ([`Place`]), so an air-gapped move is
//! `sync host/repo cache:` on the connected machine and `sync cache: internal-registry` inside.
//! The plan lists each destination repository's tags once; a tag already there is compared by
//! manifest digest (HEAD requests, all at once) or, with `immutable_tags`, trusted; only what
//! differs is copied, `jobs` at a time, through the same pieces `push`, `pull` and registry
//! copies use. Destination names follow skopeo: `DEST/<last path element>:<tag>`, or with
//! `scoped` the whole source path, host included (a `:port` written `_port`, which skopeo
//! cannot do at all).

pub mod config;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::Outcome;
use super::transfer;
use crate::constraint::Constraint;
use crate::digest::Digest;
use crate::reference::{Reference, escape_host};
use crate::registry::Registry;
use crate::store::Store;
use crate::version::{self, tag_to_version};

/// A place charts are read from or written to.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    Cache(&'a Store),
    Registry(&'a Registry),
}

/// One reference to make present at the destination.
#[derive(Debug, Clone)]
pub struct Item {
    pub source: Reference,
    pub target: Reference,
}

/// Which tags of a repository to take.
#[derive(Debug, Default)]
pub struct TagFilter {
    pub constraint: Option<Constraint>,
    pub regex: Option<regex::Regex>,
    /// Exactly these tags or digests (skopeo's `images: {repo: [..]}`).
    pub only: Option<Vec<String>>,
}

impl TagFilter {
    fn accepts(&self, tag: &str) -> bool {
        if let Some(only) = &self.only
            && !only.iter().any(|t| t == tag)
        {
            return false;
        }
        if let Some(re) = &self.regex
            && !re.is_match(tag)
        {
            return false;
        }
        match &self.constraint {
            // Tags are chart versions with `+` written as `_`.
            Some(c) => version::parse(&tag_to_version(tag)).is_ok_and(|v| c.matches(&v)),
            None => true,
        }
    }
}

/// Where things go: a registry host and path prefix, or the cache (with an optional prefix;
/// without one, references keep their own names).
#[derive(Debug, Clone)]
pub struct Destination {
    /// `host[/prefix]`, or `None` for the cache under the source's own names.
    pub base: Option<String>,
    pub scoped: bool,
}

impl Destination {
    /// The destination reference of `source`.
    pub fn target(&self, source: &Reference) -> Result<Reference, String> {
        let Some(base) = &self.base else {
            return Ok(source.clone());
        };
        let repo = if self.scoped {
            format!("{}/{}", escape_host(source.host()), source.path())
        } else {
            source.basename().to_string()
        };
        let object = match (source.tag(), source.digest()) {
            (Some(t), _) => format!(":{t}"),
            (None, Some(d)) => format!("@{d}"),
            (None, None) => String::new(),
        };
        Reference::parse(&format!("{}/{repo}{object}", base.trim_end_matches('/')))
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub jobs: usize,
    pub dry_run: bool,
    pub keep_going: bool,
    pub immutable_tags: bool,
}

/// The tagged references of `repo` at `place` that `filter` accepts. Digests named in
/// `filter.only` are taken as they are.
pub async fn list(
    place: Place<'_>,
    repo: &Reference,
    filter: &TagFilter,
) -> Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    if let Some(only) = &filter.only {
        for r in only.iter().filter(|r| r.starts_with("sha256:")) {
            let with = Reference::parse(&format!("{}@{r}", repo.repository()))
                .map_err(|e| e.to_string())?;
            out.push(with);
        }
    }
    let tags: Vec<String> = match place {
        Place::Registry(registry) => registry.tags(repo).await.map_err(|e| e.to_string())?,
        Place::Cache(store) => {
            let guard = store.read().map_err(|e| e.to_string())?;
            store
                .list(&guard)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|e| e.reference.without_object() == *repo)
                .filter_map(|e| e.reference.tag().map(str::to_string))
                .collect()
        }
    };
    for tag in tags.into_iter().filter(|t| filter.accepts(t)) {
        out.push(repo.with_tag(&tag).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Every repository the cache holds (for `sync cache: …`).
pub fn cache_repositories(store: &Store) -> Result<Vec<Reference>, String> {
    let guard = store.read().map_err(|e| e.to_string())?;
    let mut repos: Vec<Reference> = store
        .list(&guard)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e.reference.without_object())
        .collect();
    repos.sort();
    repos.dedup();
    Ok(repos)
}

/// The manifest digest a reference has at a place, if it is there.
async fn digest_at(place: Place<'_>, r: &Reference) -> Option<Digest> {
    match place {
        Place::Registry(registry) => registry.manifest_digest(r).await.ok().flatten(),
        Place::Cache(store) => {
            let guard = store.read().ok()?;
            store.resolve(&guard, r).ok()?.manifest
        }
    }
}

/// What the destination already has, listed once per repository.
async fn existing(place: Place<'_>, items: &[Item]) -> HashMap<Reference, HashSet<String>> {
    let repos: HashSet<Reference> = items.iter().map(|i| i.target.without_object()).collect();
    let mut out = HashMap::new();
    for repo in repos {
        let tags = list(place, &repo, &TagFilter::default())
            .await
            .unwrap_or_default();
        out.insert(
            repo,
            tags.iter()
                .filter_map(|r| r.tag().map(str::to_string))
                .collect(),
        );
    }
    out
}

async fn one(
    source: Place<'_>,
    target: Place<'_>,
    item: &Item,
    exists: bool,
    options: &SyncOptions,
) -> Outcome {
    let by_digest = item.target.digest().is_some();
    if exists || by_digest {
        if options.immutable_tags && exists {
            return Outcome::Skipped;
        }
        let (have, want) = tokio::join!(digest_at(target, &item.target), async {
            match item.source.digest() {
                Some(d) => Some(d.clone()),
                None => digest_at(source, &item.source).await,
            }
        });
        if have.is_some() && have == want {
            return Outcome::Skipped;
        }
    }
    if options.dry_run {
        return Outcome::Planned;
    }
    let result = match (source, target) {
        (Place::Registry(from), Place::Registry(to)) => {
            transfer::copy(from, &item.source, to, &item.target)
                .await
                .map(|_| ())
        }
        (Place::Registry(from), Place::Cache(store)) => {
            transfer::pull_as(store, from, &item.source, Some(&item.target))
                .await
                .map(|_| ())
        }
        (Place::Cache(store), Place::Registry(to)) => {
            transfer::push_as(store, to, &item.source, Some(&item.target))
                .await
                .map(|_| ())
        }
        (Place::Cache(_), Place::Cache(_)) => {
            return Outcome::Failed("the cache cannot sync into itself (use `chart tag`)".into());
        }
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Syncs `items` from `source` to `target`, calling `report` as each one ends.
pub async fn sync(
    source: Place<'_>,
    target: Place<'_>,
    items: &[Item],
    options: &SyncOptions,
    mut report: impl FnMut(&Item, &Outcome),
) -> Vec<Outcome> {
    let existing = existing(target, items).await;
    let stop = AtomicBool::new(false);
    let work = items.iter().enumerate().map(|(i, item)| {
        let (stop, existing) = (&stop, &existing);
        async move {
            if stop.load(Ordering::Relaxed) {
                return (i, Outcome::NotAttempted);
            }
            let exists = item.target.tag().is_some_and(|t| {
                existing
                    .get(&item.target.without_object())
                    .is_some_and(|tags| tags.contains(t))
            });
            let outcome = one(source, target, item, exists, options).await;
            if matches!(outcome, Outcome::Failed(_)) && !options.keep_going {
                stop.store(true, Ordering::Relaxed);
            }
            (i, outcome)
        }
    });
    let mut outcomes = vec![Outcome::NotAttempted; items.len()];
    let mut stream = futures_util::stream::iter(work).buffer_unordered(options.jobs.max(1));
    while let Some((i, outcome)) = stream.next().await {
        report(&items[i], &outcome);
        outcomes[i] = outcome;
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn destination_names_follow_skopeo() {
        let plain = Destination {
            base: Some("dest.example.com/mirror".into()),
            scoped: false,
        };
        let scoped = Destination {
            base: Some("dest.example.com".into()),
            scoped: true,
        };
        let src = r("registry.example.com/charts/nginx:1.2.3");
        assert_eq!(
            plain.target(&src).unwrap(),
            r("dest.example.com/mirror/nginx:1.2.3")
        );
        assert_eq!(
            scoped.target(&src).unwrap(),
            r("dest.example.com/registry.example.com/charts/nginx:1.2.3")
        );
        assert_eq!(
            scoped.target(&r("localhost:5000/a/b:1")).unwrap(),
            r("dest.example.com/localhost_5000/a/b:1")
        );
        let cache = Destination {
            base: None,
            scoped: false,
        };
        assert_eq!(cache.target(&src).unwrap(), src);
    }

    #[test]
    fn tag_filters() {
        let f = TagFilter {
            constraint: Some(Constraint::parse(">=1.2 <2").unwrap()),
            ..Default::default()
        };
        assert!(
            f.accepts("1.2.0")
                && f.accepts("1.9.9_build.1")
                && !f.accepts("2.0.0")
                && !f.accepts("latest")
        );
        let f = TagFilter {
            regex: Some(regex::Regex::new(r"^1\.13\.").unwrap()),
            ..Default::default()
        };
        assert!(f.accepts("1.13.1") && !f.accepts("1.14.0"));
        let f = TagFilter {
            only: Some(vec!["latest".into()]),
            ..Default::default()
        };
        assert!(f.accepts("latest") && !f.accepts("1.0.0"));
    }
}
