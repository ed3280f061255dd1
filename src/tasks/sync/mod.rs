//! `sync`: make a destination hold what a source holds, like `skopeo sync`, but planned first
//! and done in parallel.
//!
//! Either side is a registry, the local cache, an OCI layout or an OCI archive ([`Place`]), so
//! an air-gapped move is `sync host/repo oci-archive:app.tar` (or `cache:`) on the connected
//! machine and the reverse inside. The plan lists each destination repository's tags once; a
//! tag already there is compared by manifest digest (HEAD requests on both sides, many at
//! once) or, with `immutable_tags`, trusted; only what differs is copied, `jobs` at a time.
//! Copies go through the copy engine ([`crate::engine`]: whole artifacts, image indexes
//! included), except charts between the cache and a registry, which still go through
//! `transfer`'s push and pull (the next step is to move those onto the engine too).
//! Destination names follow skopeo: `DEST/<last path element>:<tag>`, or with `scoped` the
//! whole source path, host included (a `:port` written `_port`, which skopeo cannot do at
//! all).

pub mod config;

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::Outcome;
use super::transfer::{self, SentBlobs};
use crate::constraint::Constraint;
use crate::digest::Digest;
use crate::engine::cache::CachePlace;
use crate::engine::places::RegistryPlace;
use crate::engine::{Sink, Source};
use crate::reference::{Reference, escape_host};
use crate::registry::{Registry, RegistryError};
use crate::store::Store;
use crate::version::{self, tag_to_version};

/// A place charts are read from or written to.
///
/// `Engine` is a place of the copy engine ([`crate::engine`]: an OCI layout or archive), read
/// through its `Source` and written through its `Sink`; registry ↔ registry and the cache
/// still go through `transfer` until they move onto the engine too.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    Cache(&'a Store),
    Registry(&'a Registry),
    Engine {
        source: Option<&'a dyn Source>,
        /// `None` for a destination a dry run does not create.
        sink: Option<&'a dyn Sink>,
    },
}

/// One reference to make present at the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub source: Reference,
    pub target: Reference,
    /// The source's manifest digest, when the plan already knows it.
    pub digest: Option<Digest>,
}

/// Which tags of a repository to take.
#[derive(Debug, Default, Clone)]
pub struct TagFilter {
    pub constraint: Option<Constraint>,
    pub regex: Option<regex::Regex>,
}

impl TagFilter {
    pub fn is_empty(&self) -> bool {
        self.constraint.is_none() && self.regex.is_none()
    }

    pub fn accepts(&self, tag: &str) -> bool {
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

    /// The filter in words, for messages: `--constraint ">=1" and --tag-regex "^1\."`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.constraint {
            parts.push(format!("--constraint {:?}", c.to_string()));
        }
        if let Some(re) = &self.regex {
            parts.push(format!("--tag-regex {:?}", re.as_str()));
        }
        parts.join(" and ")
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
    /// Only these platforms of image indexes (all when empty).
    pub platforms: Vec<crate::engine::copy::Platform>,
}

/// Newest version first, then tags that are not versions, by name; digests last.
fn tag_order(a: &Reference, b: &Reference) -> CmpOrdering {
    let key = |r: &Reference| {
        r.tag()
            .map(|t| (version::parse(&tag_to_version(t)).ok(), t.to_string()))
    };
    match (key(a), key(b)) {
        (Some((Some(va), ta)), Some((Some(vb), tb))) => {
            vb.cmp_precedence(&va).then_with(|| tb.cmp(&ta))
        }
        (Some((Some(_), _)), Some((None, _))) => CmpOrdering::Less,
        (Some((None, _)), Some((Some(_), _))) => CmpOrdering::Greater,
        (Some((None, ta)), Some((None, tb))) => ta.cmp(&tb),
        (Some(_), None) => CmpOrdering::Less,
        (None, Some(_)) => CmpOrdering::Greater,
        (None, None) => a.digest().cmp(&b.digest()),
    }
}

/// Sorts references by repository, then newest version first: the order items are worked
/// through and reported in with `--jobs 1`.
pub fn sort(refs: &mut [Reference]) {
    refs.sort_by(|a, b| {
        a.without_object()
            .cmp(&b.without_object())
            .then_with(|| tag_order(a, b))
    });
}

/// The tags a repository holds at a place; `None` when a registry does not know the
/// repository at all (the cache always answers, possibly with no tags).
async fn tags_at(place: Place<'_>, repo: &Reference) -> Result<Option<Vec<String>>, String> {
    match place {
        Place::Registry(registry) => match registry.tags(repo).await {
            Ok(tags) => Ok(Some(tags)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        // No cache yet: nothing in it (and a dry run does not create one).
        Place::Cache(store) if !store.root().exists() => Ok(Some(Vec::new())),
        Place::Cache(store) => {
            let guard = store.read().map_err(|e| e.to_string())?;
            Ok(Some(
                store
                    .repository(&guard, repo)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .filter_map(|r| r.reference().tag().map(str::to_string))
                    .collect(),
            ))
        }
        Place::Engine { source, .. } => Ok(Some(
            source
                .and_then(|s| s.artifacts())
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.without_object() == *repo)
                .filter_map(|r| r.tag().map(str::to_string))
                .collect(),
        )),
    }
}

/// The tagged references of `repo` at `place` that `filter` accepts, newest first. A
/// repository a registry does not know is an error naming it.
pub async fn list(
    place: Place<'_>,
    repo: &Reference,
    filter: &TagFilter,
) -> Result<Vec<Reference>, String> {
    let tags: Vec<String> = match place {
        Place::Registry(registry) => registry.tags(repo).await.map_err(|e| match e {
            RegistryError::NotFound { host, .. } => {
                format!("{repo}: no such repository at {host}")
            }
            other => other.to_string(),
        })?,
        Place::Cache(_) | Place::Engine { .. } => tags_at(place, repo).await?.unwrap_or_default(),
    };
    let mut out = Vec::new();
    for tag in tags.into_iter().filter(|t| filter.accepts(t)) {
        out.push(repo.with_tag(&tag).map_err(|e| e.to_string())?);
    }
    sort(&mut out);
    Ok(out)
}

/// The cached references of the repositories equal to or under `scope` (everything for ""),
/// sorted as [`sort`] does, before and after `filter`: `sync cache:SCOPE …` tells "no such
/// repository" from "no tag matches". Reads the part of the cache under the scope only.
pub fn list_cached_under(
    store: &Store,
    scope: &str,
    filter: &TagFilter,
) -> Result<(usize, Vec<Reference>), String> {
    if !store.root().exists() {
        return Ok((0, Vec::new()));
    }
    let guard = store.read().map_err(|e| e.to_string())?;
    let all = store.list_under(&guard, scope).map_err(|e| e.to_string())?;
    let found = all.len();
    let mut out: Vec<Reference> = all
        .into_iter()
        .map(|r| r.reference().clone())
        .filter(|r| r.tag().is_some_and(|t| filter.accepts(t)))
        .collect();
    sort(&mut out);
    Ok((found, out))
}

/// Pairs each source reference with its destination name, dropping repeats (a config file may
/// name one tag twice). Two different sources that would land on one destination name fail
/// both, rather than letting the faster copy win. Returns the items and the failures.
pub fn items(
    refs: Vec<(Reference, Option<Digest>)>,
    destination: &Destination,
) -> (Vec<Item>, Vec<(String, Outcome)>) {
    let mut items: Vec<Item> = Vec::new();
    let mut failed = Vec::new();
    let mut seen = HashSet::new();
    for (source, digest) in refs {
        if !seen.insert(source.clone()) {
            continue;
        }
        match destination.target(&source) {
            Ok(target) => items.push(Item {
                source,
                target,
                digest,
            }),
            Err(e) => failed.push((source.to_string(), Outcome::Failed(e))),
        }
    }
    let mut by_target: HashMap<&Reference, Vec<&Reference>> = HashMap::new();
    for item in &items {
        by_target
            .entry(&item.target)
            .or_default()
            .push(&item.source);
    }
    let clashes: HashMap<Reference, String> = by_target
        .into_iter()
        .filter(|(_, sources)| sources.len() > 1)
        .map(|(target, sources)| {
            let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
            (
                target.clone(),
                format!(
                    "{} would all be written to {target}; sync them one at a time or use --scoped",
                    names.join(", ")
                ),
            )
        })
        .collect();
    items.retain(|item| match clashes.get(&item.target) {
        Some(reason) => {
            failed.push((
                format!("{} -> {}", item.source, item.target),
                Outcome::Failed(reason.clone()),
            ));
            false
        }
        None => true,
    });
    (items, failed)
}

/// The manifest digest a reference has at a place, if it is there.
async fn digest_at(place: Place<'_>, r: &Reference) -> Result<Option<Digest>, String> {
    match place {
        Place::Registry(registry) => registry.manifest_digest(r).await.map_err(|e| e.to_string()),
        Place::Cache(store) if !store.root().exists() => Ok(None),
        Place::Cache(store) => {
            let guard = store.read().map_err(|e| e.to_string())?;
            Ok(store
                .resolve_any(&guard, r)
                .ok()
                .and_then(|e| e.manifest().cloned()))
        }
        Place::Engine {
            sink: Some(sink), ..
        } => sink.digest_of(r).await.map_err(|e| e.to_string()),
        Place::Engine {
            source: Some(source),
            ..
        } => match source.manifest(r).await {
            Ok((_, digest)) => Ok(Some(digest)),
            Err(crate::engine::EngineError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        Place::Engine { .. } => Ok(None),
    }
}

/// What the destination already has: the tags of each repository the items go to (`None`
/// for a repository it does not have), listed once per repository, all at once. A
/// repository that cannot be listed (other than by not existing yet) is an error: a
/// destination that refuses to list will refuse the copies too.
async fn existing(
    place: Place<'_>,
    items: &[Item],
    concurrency: usize,
) -> Result<HashMap<Reference, Option<HashSet<String>>>, String> {
    let repos: HashSet<Reference> = items.iter().map(|i| i.target.without_object()).collect();
    if let Place::Engine { sink, .. } = place {
        // A layout answers per name (`digest_of`): every item is checked by digest, and a
        // destination a dry run has not created holds nothing.
        return Ok(repos
            .into_iter()
            .map(|repo| (repo, sink.map(|_| HashSet::new())))
            .collect());
    }
    futures_util::stream::iter(repos)
        .map(|repo| async move {
            let tags = tags_at(place, &repo).await?;
            Ok((repo, tags.map(|t| t.into_iter().collect())))
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<Result<_, String>>>()
        .await
        .into_iter()
        .collect()
}

/// Whether an item needs copying: `Ok(false)` when the destination already has it.
async fn needs_copy(
    source: Place<'_>,
    target: Place<'_>,
    item: &Item,
    existing: &HashMap<Reference, Option<HashSet<String>>>,
    options: &SyncOptions,
) -> Result<bool, String> {
    let Some(Some(there)) = existing.get(&item.target.without_object()) else {
        return Ok(true);
    };
    let engine_target = matches!(target, Place::Engine { .. });
    match item.target.tag() {
        _ if engine_target => {}
        Some(tag) if !there.contains(tag) => return Ok(true),
        Some(_) if options.immutable_tags => return Ok(false),
        _ => {}
    }
    let (have, want) = tokio::join!(digest_at(target, &item.target), async {
        match (&item.digest, item.source.digest()) {
            (Some(d), _) | (None, Some(d)) => Ok(Some(d.clone())),
            (None, None) => digest_at(source, &item.source).await,
        }
    });
    let want = want?.ok_or_else(|| format!("{}: not found", item.source))?;
    // The destination answering badly is the copy's problem to report.
    Ok(have.ok().flatten().as_ref() != Some(&want))
}

async fn copy(
    source: Place<'_>,
    target: Place<'_>,
    item: &Item,
    sent: &SentBlobs,
    job: &crate::engine::copy::Job,
) -> Outcome {
    let result = match (source, target) {
        // Charts as `chart pull` and `chart push` move them; anything else (images, indexes,
        // other artifacts) through the copy engine, whole.
        (Place::Registry(from), Place::Cache(store)) => {
            match transfer::pull_as(store, from, &item.source, Some(&item.target)).await {
                Err(e @ transfer::TransferError::NotAChart { .. }) => {
                    if helm_chart_at(from, &item.source).await {
                        Err(e)
                    } else {
                        return copy_with_engine(source, target, item, job).await;
                    }
                }
                other => other.map(|_| ()),
            }
        }
        (Place::Cache(store), Place::Registry(_)) if !cached_chart(store, &item.source) => {
            return copy_with_engine(source, target, item, job).await;
        }
        (Place::Cache(store), Place::Registry(to)) => {
            transfer::push_as(store, to, &item.source, Some(&item.target), sent)
                .await
                .map(|_| ())
        }
        (Place::Cache(_), Place::Cache(_)) => {
            return Outcome::Failed("the cache cannot sync into itself (use `chart tag`)".into());
        }
        (from, to) => return copy_with_engine(from, to, item, job).await,
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Whether `r` at `registry` is a Helm chart's manifest, acceptable or not (so that a chart
/// `chart pull` refuses is not stored as something else); true when that cannot be told.
async fn helm_chart_at(registry: &Registry, r: &Reference) -> bool {
    match (RegistryPlace { registry }).manifest(r).await {
        Ok((bytes, _)) => crate::store::graph::Node::parse(&bytes)
            .is_ok_and(|n| n.kind == crate::store::graph::Kind::HelmChart),
        Err(_) => true,
    }
}

/// Whether the cache holds `r` as a Helm chart (anything it does not hold at all is left to
/// `chart push` to report).
fn cached_chart(store: &Store, r: &Reference) -> bool {
    store
        .read()
        .and_then(|guard| store.resolve_any(&guard, r))
        .map_or(true, |found| {
            matches!(found, crate::store::StoredRef::Chart(_))
        })
}

/// A copy where either side is a place of the copy engine: one graph walk, whole artifacts
/// (image indexes included), every blob verified.
async fn copy_with_engine(
    source: Place<'_>,
    target: Place<'_>,
    item: &Item,
    job: &crate::engine::copy::Job,
) -> Outcome {
    let (registry_source, cache_source);
    let src: &dyn Source = match source {
        Place::Engine {
            source: Some(s), ..
        } => s,
        Place::Registry(r) => {
            registry_source = RegistryPlace { registry: r };
            &registry_source
        }
        Place::Cache(store) => {
            cache_source = CachePlace { store };
            &cache_source
        }
        Place::Engine { source: None, .. } => return Outcome::Failed(unsupported_pair()),
    };
    let (registry_sink, cache_sink);
    let dst: &dyn Sink = match target {
        Place::Engine { sink: Some(s), .. } => s,
        Place::Registry(r) => {
            registry_sink = RegistryPlace { registry: r };
            &registry_sink
        }
        Place::Cache(store) => {
            cache_sink = CachePlace { store };
            &cache_sink
        }
        Place::Engine { sink: None, .. } => return Outcome::Failed(unsupported_pair()),
    };
    match crate::engine::copy::copy(src, &item.source, dst, &item.target, job).await {
        Ok(_) => Outcome::Done,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn unsupported_pair() -> String {
    "this place cannot be read from or written to here".into()
}

/// Syncs `items` from `source` to `target`, calling `report` as each one ends: first the
/// plan (what is already there is skipped, all checks at once), then the copies, `jobs` at a
/// time. Without `keep_going`, a failure stops new copies. An error (nothing was copied)
/// when the destination cannot say what it holds.
pub async fn sync(
    source: Place<'_>,
    target: Place<'_>,
    items: &[Item],
    options: &SyncOptions,
    mut report: impl FnMut(&Item, &Outcome),
) -> Result<Vec<Outcome>, String> {
    let jobs = options.jobs.max(1);
    // HEAD requests are cheap for a registry: check several per copy slot.
    let checks = (jobs * 4).clamp(8, 64);
    let existing = existing(target, items, checks).await?;
    let stop = AtomicBool::new(false);
    let mut outcomes = vec![Outcome::NotAttempted; items.len()];

    let mut to_copy = Vec::new();
    {
        let existing = &existing;
        let mut plan = futures_util::stream::iter(items.iter().enumerate())
            .map(|(i, item)| async move {
                (i, needs_copy(source, target, item, existing, options).await)
            })
            .buffered(checks);
        while let Some((i, needed)) = plan.next().await {
            let outcome = match needed {
                Ok(true) if options.dry_run => Outcome::Planned,
                Ok(true) => {
                    to_copy.push(i);
                    continue;
                }
                Ok(false) => Outcome::Skipped,
                Err(e) => Outcome::Failed(e),
            };
            if matches!(outcome, Outcome::Failed(_)) && !options.keep_going {
                stop.store(true, Ordering::Relaxed);
            }
            report(&items[i], &outcome);
            outcomes[i] = outcome;
        }
    }

    let sent = &SentBlobs::default();
    // Repositories the destination does not have yet: no blob of theirs is asked about.
    let new_repositories = existing
        .iter()
        .filter(|(_, tags)| tags.is_none())
        .map(|(repo, _)| repo.clone())
        .collect();
    let job =
        &crate::engine::copy::Job::new(new_repositories).with_platforms(options.platforms.clone());
    let stop = &stop;
    let mut copies = futures_util::stream::iter(to_copy)
        .map(|i| async move {
            if stop.load(Ordering::Relaxed) {
                return (i, Outcome::NotAttempted);
            }
            let outcome = copy(source, target, &items[i], sent, job).await;
            if matches!(outcome, Outcome::Failed(_)) && !options.keep_going {
                stop.store(true, Ordering::Relaxed);
            }
            (i, outcome)
        })
        .buffer_unordered(jobs);
    while let Some((i, outcome)) = copies.next().await {
        report(&items[i], &outcome);
        outcomes[i] = outcome;
    }
    Ok(outcomes)
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
        assert!(TagFilter::default().is_empty() && TagFilter::default().accepts("x"));
    }

    #[test]
    fn references_sort_by_repository_then_newest_version() {
        let mut refs = vec![
            r("h/b/x:1.0.0"),
            r("h/a/x:latest"),
            r("h/a/x:1.10.0"),
            r("h/a/x:1.9.0"),
            r("h/a/x:2.0.0-rc.1"),
            r("h/a/x:edge"),
        ];
        sort(&mut refs);
        let names: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            names,
            [
                "h/a/x:2.0.0-rc.1",
                "h/a/x:1.10.0",
                "h/a/x:1.9.0",
                "h/a/x:edge",
                "h/a/x:latest",
                "h/b/x:1.0.0"
            ]
        );
    }

    #[test]
    fn repeats_are_dropped_and_clashing_names_fail() {
        let dest = Destination {
            base: Some("d.example.com/m".into()),
            scoped: false,
        };
        let (items, failed) = items(
            vec![
                (r("s.example.com/a/app:1.0.0"), None),
                (r("s.example.com/a/app:1.0.0"), None),
                (r("s.example.com/b/app:2.0.0"), None),
                (r("s.example.com/c/app:2.0.0"), None),
            ],
            &dest,
        );
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].target, r("d.example.com/m/app:1.0.0"));
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(
            failed.iter().all(|(_, o)| matches!(o, Outcome::Failed(e)
            if e.contains("s.example.com/b/app:2.0.0") && e.contains("s.example.com/c/app:2.0.0")))
        );
    }
}
