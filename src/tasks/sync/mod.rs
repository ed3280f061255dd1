//! `sync`: make a destination hold what a source holds, like `skopeo sync`, but planned first
//! and done in parallel.
//!
//! Either side is any place of the copy engine ([`crate::engine`]: a registry, the local
//! cache, an OCI layout or archive, and as a source a classic repository), so an air-gapped
//! move is `sync host/repo oci-archive:app.tar` (or `cache:`) on the connected machine and the
//! reverse inside, and `repo migrate` is a sync from a classic repository. The plan lists each
//! destination repository's tags once; a tag already there is compared by manifest digest
//! (HEAD requests on both sides, many at once), by content where the source can judge it
//! cheaply, or with `immutable_tags` trusted; only what differs is copied, `jobs` at a time,
//! each copy one call of [`crate::engine::copy::copy`]. Destination names follow skopeo:
//! `DEST/<last path element>:<tag>`, or with `scoped` the whole source path, host included
//! (a `:port` written `_port`, which skopeo cannot do at all). With `--images`, each chart's
//! images go first, to the same destination under the same naming ([`images`]).

pub mod config;
pub mod images;
pub mod policy;

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::Outcome;
use crate::constraint::Constraint;
use crate::digest::Digest;
use crate::engine::copy::{Job, copy_fetched, copy_referrers_of};
use crate::engine::referrers::{ReferrerPolicy, is_referrer_tag};
use crate::engine::{EngineError, Sink, Source, Tags};
use crate::reference::{Reference, escape_host};
use crate::store::{Store, StoreError};
use crate::version::{self, tag_to_version};

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
    /// Which referrers travel with what is copied (all, by default).
    pub referrers: ReferrerPolicy,
    /// `--require-signed`: the signatures a reference needs to be copied (none needed when
    /// empty).
    pub signatures: crate::tasks::verify::Policy,
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

/// The tagged references of `repo` at `source` that `filter` accepts, newest first (not the
/// tags of referrers, which go with what they refer to). A repository the place does not
/// have is an error naming it.
pub async fn list(
    source: &dyn Source,
    repo: &Reference,
    filter: &TagFilter,
) -> Result<Vec<Reference>, EngineError> {
    let mut out = Vec::new();
    let tags = source.tags(repo).await?;
    // Referrer tags travel with the manifests they name.
    let artifacts = tags.into_iter().filter(|t| !is_referrer_tag(t));
    for tag in artifacts.filter(|t| filter.accepts(t)) {
        out.push(repo.with_tag(&tag).map_err(|e| EngineError::Unsupported {
            what: repo.to_string(),
            reason: e.to_string(),
        })?);
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
) -> Result<(usize, Vec<Reference>), StoreError> {
    if !store.root().exists() {
        return Ok((0, Vec::new()));
    }
    let guard = store.read()?;
    let all = store.list_under(&guard, scope)?;
    let found = all.len();
    let mut out: Vec<Reference> = all
        .into_iter()
        .map(|r| r.reference().clone())
        .filter(|r| {
            r.tag()
                .is_some_and(|t| filter.accepts(t) && !is_referrer_tag(t))
        })
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

/// What the destination already has: the tags of each repository the items go to, listed
/// once per repository, all at once. A repository that cannot be listed (other than by not
/// existing yet) is an error: a destination that refuses to list will refuse the copies too.
/// Without a destination (a dry run that does not create one) nothing is there.
async fn existing(
    sink: Option<&dyn Sink>,
    items: &[Item],
    concurrency: usize,
) -> Result<HashMap<Reference, Tags>, EngineError> {
    let repos: HashSet<Reference> = items.iter().map(|i| i.target.without_object()).collect();
    let Some(sink) = sink else {
        return Ok(repos
            .into_iter()
            .map(|repo| (repo, Tags::NoRepository))
            .collect());
    };
    futures_util::stream::iter(repos)
        .map(|repo| async move {
            let tags = sink.existing_tags(&repo).await?;
            Ok((repo, tags))
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<Result<_, EngineError>>>()
        .await
        .into_iter()
        .collect()
}

/// What the plan says of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    Copy,
    /// The destination has it (with this digest, when the check learnt it: what refers to
    /// it may still be new).
    Have(Option<Digest>),
}

/// Whether an item needs copying.
async fn plan(
    source: &dyn Source,
    sink: Option<&dyn Sink>,
    item: &Item,
    existing: &HashMap<Reference, Tags>,
    options: &SyncOptions,
    job: &Job,
) -> Result<Plan, EngineError> {
    let Some(sink) = sink else {
        return Ok(Plan::Copy);
    };
    let there = existing.get(&item.target.without_object());
    match (there, item.target.tag()) {
        (Some(Tags::NoRepository) | None, _) => return Ok(Plan::Copy),
        (Some(Tags::Listed(tags)), Some(tag)) if !tags.iter().any(|t| t == tag) => {
            return Ok(Plan::Copy);
        }
        (Some(Tags::Listed(_)), Some(_)) if options.immutable_tags => {
            return Ok(Plan::Have(None));
        }
        _ => {}
    }
    // A source that can judge the destination's manifest by its content does (nothing is
    // prepared to tell); the destination answering badly is the copy's problem to report.
    if source.compares_content() {
        return Ok(match sink.current_manifest(&item.target).await {
            Ok(Some(held)) if source.same_content(&item.source, &held) == Some(true) => {
                Plan::Have(None)
            }
            _ => Plan::Copy,
        });
    }
    let (have, want) = tokio::join!(sink.digest_of(&item.target), async {
        match (&item.digest, item.source.digest()) {
            (Some(d), _) | (None, Some(d)) => Ok(Some(d.clone())),
            (None, None) => source.digest(&item.source).await,
        }
    });
    let want = want?.ok_or_else(|| EngineError::NotFound {
        place: source.describe(),
        name: item.source.to_string(),
    })?;
    Ok(match have.ok().flatten() {
        Some(have) if have == want => Plan::Have(Some(want)),
        // What refers to the source's index does not refer to a selection of it: nothing of
        // it to bring either.
        Some(have) if job.holds_selection(source, &item.source, &have).await => Plan::Have(None),
        _ => Plan::Copy,
    })
}

/// With `--require-signed`, why `item` may not be copied (a refusal, or a check that could
/// not be made); `None` when it may.
async fn signed(
    source: &dyn Source,
    item: &Item,
    signatures: &crate::tasks::verify::Policy,
) -> Option<Outcome> {
    if signatures.is_empty() {
        return None;
    }
    match policy::check(source, &item.source, signatures).await {
        Ok(()) => None,
        Err(e) => Some(match e.failure() {
            Some(kind) => Outcome::Refused(format!("{kind}: {e}")),
            None => Outcome::Failed(e.to_string()),
        }),
    }
}

/// An item the destination has already (as `digest`): only what refers to it may be new.
async fn referrers_of(
    source: &dyn Source,
    item: &Item,
    sink: &dyn Sink,
    digest: &Digest,
    job: &Job,
) -> Result<Outcome, EngineError> {
    let c = copy_referrers_of(source, &item.source, sink, &item.target, digest, job).await?;
    Ok(match c.referrers {
        0 => Outcome::Skipped,
        _ => Outcome::Done,
    })
}

/// What the plan says comes next for an item.
enum Next {
    /// Nothing: it has ended so.
    Ended(Outcome),
    /// Its copy (or, with images, its images and then its copy).
    Work(Plan),
}

/// Syncs `items` from `source` to `sink`, calling `report` as each one ends: first the plan
/// (what is already there is skipped, all checks at once), then the copies, `jobs` at a time,
/// each one call into the copy engine. With `images`, every chart's images are made present
/// (or, in a dry run, planned) before the chart, and a chart whose images fail is not copied.
/// Without `keep_going`, a failure stops new copies. An error (nothing was copied) when the
/// destination cannot say what it holds. `sink` is `None` only for a dry run whose
/// destination does not exist yet.
pub async fn sync(
    source: &dyn Source,
    sink: Option<&dyn Sink>,
    items: &[Item],
    options: &SyncOptions,
    images: Option<&images::Images>,
    mut report: impl FnMut(&Item, &Outcome, &images::ChartImages),
) -> Result<Vec<Outcome>, EngineError> {
    let jobs = options.jobs.max(1);
    // A registry answers a HEAD in about the time it takes to open a connection: a few checks
    // at once, each on a kept-alive connection, beat many each on a new one.
    let checks = jobs.clamp(4, 16);
    let existing = existing(sink, items, checks).await?;
    // Repositories the destination does not have yet: no blob of theirs is asked about.
    let new_repositories = existing
        .iter()
        .filter(|(_, tags)| **tags == Tags::NoRepository)
        .map(|(repo, _)| repo.clone())
        .collect();
    let job = &Job::new(new_repositories)
        .with_platforms(options.platforms.clone())
        .with_referrers(options.referrers.clone());
    let stop = &AtomicBool::new(false);
    let failed = |outcome: &Outcome| {
        if matches!(outcome, Outcome::Failed(_)) && !options.keep_going {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let mut outcomes = vec![Outcome::NotAttempted; items.len()];
    let no_images = images::ChartImages::default();
    if let Some(images) = images {
        images.reserve(items);
    }

    // The plan: what is there already is done with here (only what refers to it may still
    // be new), as each check ends; what is not is copied next. With images, every item goes
    // on, there or not: its images are still to be checked.
    let mut to_copy: Vec<(usize, Plan)> = Vec::new();
    {
        let existing = &existing;
        let mut plans = futures_util::stream::iter(items.iter().enumerate())
            .map(|(i, item)| async move {
                let outcome = match plan(source, sink, item, existing, options, job).await {
                    Ok(plan) if images.is_some() => return (i, Next::Work(plan)),
                    Ok(Plan::Copy) if options.dry_run => Outcome::Planned,
                    Ok(Plan::Copy) => return (i, Next::Work(Plan::Copy)),
                    Ok(Plan::Have(Some(digest)))
                        if options.referrers.enabled && !options.dry_run =>
                    {
                        match sink {
                            Some(sink) => referrers_of(source, item, sink, &digest, job)
                                .await
                                .unwrap_or_else(|e| Outcome::Failed(e.to_string())),
                            None => Outcome::Skipped,
                        }
                    }
                    Ok(Plan::Have(_)) => Outcome::Skipped,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                (i, Next::Ended(outcome))
            })
            .buffer_unordered(checks);
        while let Some((i, next)) = plans.next().await {
            match next {
                Next::Work(plan) => to_copy.push((i, plan)),
                Next::Ended(outcome) => {
                    failed(&outcome);
                    report(&items[i], &outcome, &no_images);
                    outcomes[i] = outcome;
                }
            }
        }
    }
    // In the order the items came (newest first), whatever order the checks ended in.
    to_copy.sort_unstable_by_key(|(i, _)| *i);

    let mut copies = futures_util::stream::iter(to_copy)
        .map(|(i, plan)| async move {
            if stop.load(Ordering::Relaxed) {
                return (i, Outcome::NotAttempted, images::ChartImages::default());
            }
            let item = &items[i];
            let (outcome, found) = work(source, sink, item, plan, images, job, options).await;
            failed(&outcome);
            (i, outcome, found)
        })
        .buffer_unordered(jobs);
    while let Some((i, outcome, found)) = copies.next().await {
        report(&items[i], &outcome, &found);
        outcomes[i] = outcome;
    }
    Ok(outcomes)
}

/// One item after planning: its signatures checked (`--require-signed`), its images made
/// present (`--images`), then the item copied, or only its referrers when it is there.
async fn work(
    source: &dyn Source,
    sink: Option<&dyn Sink>,
    item: &Item,
    plan: Plan,
    images: Option<&images::Images>,
    job: &Job,
    options: &SyncOptions,
) -> (Outcome, images::ChartImages) {
    let mut found = images::ChartImages::default();
    // Nothing of a refused chart moves, its images neither. What the check reads is kept for
    // the copy: read once, and the copy takes exactly what was checked.
    let checked = crate::tasks::recall::Recall::new(source);
    let source: &dyn Source =
        if plan == Plan::Copy && !options.dry_run && !options.signatures.is_empty() {
            if let Some(refused) = signed(&checked, item, &options.signatures).await {
                return (refused, found);
            }
            checked.done_checking();
            &checked
        } else {
            source
        };
    let mut manifest = None;
    if let Some(images) = images {
        match images
            .of_chart(source, &item.source, sink, job, options)
            .await
        {
            Ok((chart_images, bytes)) => {
                found = chart_images;
                manifest = Some(bytes);
            }
            Err(e) => {
                source.release(&item.source);
                return (Outcome::Failed(e.to_string()), found);
            }
        }
        if let Some(failure) = found.failure() {
            source.release(&item.source);
            return (Outcome::Failed(failure), found);
        }
    }
    let copied = copy_item(source, sink, item, plan, manifest, job, options);
    let outcome = match images {
        // The same name may be an image of a chart of this sync too: copied once.
        Some(images) => images.item_once(&item.target, copied).await,
        None => copied
            .await
            .unwrap_or_else(|e| Outcome::Failed(e.to_string())),
    };
    source.release(&item.source);
    (outcome, found)
}

/// The copy of one item itself, after planning: `Done`, `Skipped` (there already, with no
/// new referrers) or, in a dry run, `Planned`.
async fn copy_item(
    source: &dyn Source,
    sink: Option<&dyn Sink>,
    item: &Item,
    plan: Plan,
    manifest: Option<Vec<u8>>,
    job: &Job,
    options: &SyncOptions,
) -> Result<Outcome, EngineError> {
    match (plan, sink) {
        (Plan::Copy, _) if options.dry_run => Ok(Outcome::Planned),
        (Plan::Have(_), _) if options.dry_run => Ok(Outcome::Skipped),
        (_, None) => Err(EngineError::Unsupported {
            what: item.target.to_string(),
            reason: "no destination".into(),
        }),
        (Plan::Copy, Some(sink)) => {
            copy_fetched(source, &item.source, manifest, sink, &item.target, job).await?;
            Ok(Outcome::Done)
        }
        // There already: only what refers to it may be new.
        (Plan::Have(Some(digest)), Some(sink)) if options.referrers.enabled => {
            referrers_of(source, item, sink, &digest, job).await
        }
        (Plan::Have(_), Some(_)) => Ok(Outcome::Skipped),
    }
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
