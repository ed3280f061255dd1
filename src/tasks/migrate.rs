//! `repo migrate`: every selected chart version of a classic repository into an OCI registry,
//! as `DEST_PREFIX/<chart>:<version with + as _>`.
//!
//! Each version is the composition the seed describes (fetch → save → push), run for many
//! versions at once: the archive is downloaded and checked against the index digest, saved byte
//! for byte (so the OCI chart layer digest is the index digest, with the index's `created` time
//! as the annotation and a `.prov` as the provenance layer), then pushed. A version whose tag
//! already holds a manifest with that chart layer is skipped, so a rerun pushes nothing; the
//! registry's tags are listed once per chart to know which to check.
//!
//! The save goes to a scratch cache of its own, in the version's temporary directory, not to the
//! user's cache: a migration of a repository's whole history would otherwise leave every version
//! in `~/.helm/registry`, and every push would work over an ever larger cache (every ref walked
//! per push for mount candidates), which makes a 10,000-version migration quadratic. It also
//! lets the `--jobs` transfers run without taking turns at one cache lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use super::Outcome;
use super::fetch;
use super::save::{self, SaveOptions};
use super::transfer;
use crate::classic::{IndexEntry, Repo};
use crate::oci::Manifest;
use crate::reference::Reference;
use crate::registry::Registry;
use crate::store::Store;
use crate::version::version_to_tag;

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub jobs: usize,
    pub dry_run: bool,
    pub keep_going: bool,
}

/// The destination reference of an index entry.
pub fn destination(prefix: &Reference, entry: &IndexEntry) -> Result<Reference, String> {
    let text = format!(
        "{}/{}:{}",
        prefix.repository(),
        entry.name,
        version_to_tag(&entry.version)
    );
    Reference::parse(&text).map_err(|e| e.to_string())
}

fn index_digest(entry: &IndexEntry) -> Option<String> {
    entry
        .digest
        .as_deref()
        .map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase())
}

/// Whether `target` already holds the chart layer the index names.
async fn up_to_date(
    registry: &Registry,
    target: &Reference,
    entry: &IndexEntry,
) -> Result<bool, String> {
    let Some(want) = index_digest(entry) else {
        return Ok(false);
    };
    let (bytes, _) = registry.manifest(target).await.map_err(|e| e.to_string())?;
    Ok(Manifest::parse_chart(&bytes)
        .ok()
        .and_then(|m| m.chart_layer().map(|l| l.digest.hex() == want))
        .unwrap_or(false))
}

/// Migrates one version.
async fn one(
    repo: &Repo,
    registry: &Registry,
    entry: &IndexEntry,
    target: &Reference,
    tag_exists: bool,
    dry_run: bool,
) -> Outcome {
    if tag_exists {
        match up_to_date(registry, target, entry).await {
            Ok(true) => return Outcome::Skipped,
            Ok(false) => {}
            Err(e) => return Outcome::Failed(e),
        }
    }
    if dry_run {
        return Outcome::Planned;
    }
    let dir = match tempfile::Builder::new()
        .prefix("chartcache-migrate-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return Outcome::Failed(format!("cannot create a temporary directory: {e}")),
    };
    let file = dir
        .path()
        .join(format!("{}-{}.tgz", entry.name, entry.version));
    let store = Store::new(dir.path().join("cache"));
    if let Err(e) = fetch::download(repo, entry, &file, true).await {
        return Outcome::Failed(e.to_string());
    }
    let options = SaveOptions {
        created: Some(entry.created.clone()).filter(|c| !c.is_empty()),
    };
    let saved = {
        let (store, file, target) = (store.clone(), file.clone(), target.to_string());
        tokio::task::spawn_blocking(move || save::save(&store, &file, Some(&target), &options))
            .await
    };
    match saved {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Outcome::Failed(e.to_string()),
        Err(e) => return Outcome::Failed(e.to_string()),
    }
    match transfer::push(&store, registry, target).await {
        Ok(_) => Outcome::Done,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Migrates `entries`, `jobs` at a time, calling `report` as each one ends.
pub async fn migrate(
    repo: &Repo,
    registry: &Registry,
    prefix: &Reference,
    entries: &[&IndexEntry],
    options: &MigrateOptions,
    mut report: impl FnMut(&IndexEntry, &str, &Outcome),
) -> Vec<Outcome> {
    // The tags each destination repository has, listed once.
    let mut existing: HashMap<String, HashSet<String>> = HashMap::new();
    for name in entries
        .iter()
        .map(|e| e.name.clone())
        .collect::<HashSet<_>>()
    {
        let tags = match Reference::parse(&format!("{}/{name}", prefix.repository())) {
            Ok(repo_ref) => registry.tags(&repo_ref).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        existing.insert(name, tags.into_iter().collect());
    }

    let stop = AtomicBool::new(false);
    let work = entries.iter().enumerate().map(|(i, entry)| {
        let (stop, existing) = (&stop, &existing);
        async move {
            let target = match destination(prefix, entry) {
                Ok(t) => t,
                Err(e) => return (i, String::new(), Outcome::Failed(e)),
            };
            let shown = target.to_string();
            if stop.load(Ordering::Relaxed) {
                return (i, shown, Outcome::NotAttempted);
            }
            let tag_exists = target
                .tag()
                .is_some_and(|t| existing.get(&entry.name).is_some_and(|s| s.contains(t)));
            let outcome = one(repo, registry, entry, &target, tag_exists, options.dry_run).await;
            if matches!(outcome, Outcome::Failed(_)) && !options.keep_going {
                stop.store(true, Ordering::Relaxed);
            }
            (i, shown, outcome)
        }
    });
    let mut outcomes = vec![Outcome::NotAttempted; entries.len()];
    let mut stream = futures_util::stream::iter(work).buffer_unordered(options.jobs.max(1));
    while let Some((i, shown, outcome)) = stream.next().await {
        report(entries[i], &shown, &outcome);
        outcomes[i] = outcome;
    }
    outcomes
}
