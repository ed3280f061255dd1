//! `prune` (mark and sweep from the refs) and `verify` (re-hash every blob, check every link).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::refs::{RefEntry, StoredRef};
use super::{Result, Store, blobs, graph, io_err, layout, walk};
use crate::digest::{Digest, digest_reader};
use crate::oci::Manifest;

/// What `prune` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub blobs: usize,
    pub markers: usize,
    pub bytes: u64,
}

/// What `verify` checked, and every problem found (empty when the cache is sound).
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub blobs: usize,
    pub refs: usize,
    pub problems: Vec<String>,
}

fn blob_files(store: &Store) -> Result<Vec<(String, PathBuf)>> {
    let dir = store.root().join("blobs/sha256");
    let mut out = Vec::new();
    match fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.map_err(io_err(&dir))?;
                out.push((e.file_name().to_string_lossy().into_owned(), e.path()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&dir)(e)),
    }
    out.sort();
    Ok(out)
}

pub(super) fn prune(store: &Store) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let mut keep_blobs: HashSet<String> = HashSet::new();
    let mut keep_markers: HashSet<(String, String)> = HashSet::new();
    let mut complete = Vec::new();
    // Manifests already followed (the tags of one chart share theirs).
    let mut followed: HashSet<Digest> = HashSet::new();
    for r in walk::all(store)? {
        if let Ok(r) = &r {
            complete.push(r.clone());
        }
        match r {
            Ok(StoredRef::Chart(entry)) => {
                keep_markers.insert((entry.name.clone(), entry.version.clone()));
                for d in [
                    Some(&entry.config),
                    Some(&entry.content),
                    entry.manifest.as_ref(),
                    entry.prov.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    keep_blobs.insert(d.hex().to_string());
                }
                if let Some(m) = &entry.manifest
                    && followed.insert(m.clone())
                    && let Ok(bytes) = store.read_blob(m)
                    && let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes)
                {
                    keep_blobs.extend(manifest.blobs().map(|d| d.digest.hex().to_string()));
                }
            }
            // Everything the manifest reaches (index → manifests → config and layers).
            Ok(StoredRef::Artifact(a)) => {
                if followed.insert(a.manifest.clone()) {
                    let reach = graph::reach(store, &a.manifest);
                    keep_blobs.extend(reach.digests.iter().map(|d| d.hex().to_string()));
                }
            }
            // A broken ref still holds on to whatever its links name.
            Err(broken) => {
                if let Ok(rd) = fs::read_dir(&broken.dir) {
                    for link in rd.flatten() {
                        if let Ok(t) = fs::read_link(link.path())
                            && let Some(n) = t.file_name()
                        {
                            keep_blobs.insert(n.to_string_lossy().into_owned());
                        }
                    }
                }
            }
        }
    }
    for (name, path) in blob_files(store)? {
        if !keep_blobs.contains(&name) {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io_err(&path))?;
            report.blobs += 1;
            report.bytes += len;
        }
    }
    let charts = store.root().join("charts");
    if let Ok(names) = fs::read_dir(&charts) {
        for name in names.flatten() {
            let versions = name.path().join("versions");
            let chart_name = name.file_name().to_string_lossy().into_owned();
            if let Ok(vs) = fs::read_dir(&versions) {
                for v in vs.flatten() {
                    let version = v.file_name().to_string_lossy().into_owned();
                    if !keep_markers.contains(&(chart_name.clone(), version)) {
                        fs::remove_file(v.path()).map_err(io_err(v.path()))?;
                        report.markers += 1;
                    }
                }
            }
            let _ = fs::remove_dir(&versions);
            let _ = fs::remove_dir(name.path());
        }
    }
    report.bytes += blobs::clean_stale_temps(store)?;
    remove_hidden_leftovers(&store.refs_dir())?;
    // The index's blanks go too: it is rewritten sorted and compact (when it is not already).
    layout::compact(store, &complete)?;
    Ok(report)
}

/// Staging directories of ref writes that crashed (`.new-*`, `.del-*`).
fn remove_hidden_leftovers(dir: &Path) -> Result<()> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            continue;
        }
        if name.starts_with(".new-") || name.starts_with(".del-") {
            fs::remove_dir_all(e.path()).map_err(io_err(e.path()))?;
        } else {
            remove_hidden_leftovers(&e.path())?;
        }
    }
    Ok(())
}

pub(super) fn verify(store: &Store) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let files = blob_files(store)?;
    report.blobs = files.len();
    report.problems.extend(hash_all(&files));

    let mut expected: Vec<layout::Entry> = Vec::new();
    let mut entries = layout::Entries::default();
    // Problems of each manifest followed, by digest: the tags of one chart share it.
    let mut reached: HashMap<Digest, Vec<String>> = HashMap::new();
    let mut charts: HashMap<Digest, std::result::Result<Manifest, String>> = HashMap::new();
    for r in walk::all(store)? {
        report.refs += 1;
        let r = match r {
            Ok(r) => r,
            Err(b) => {
                report
                    .problems
                    .push(format!("{}: broken ref: {}", b.dir.display(), b.reason));
                continue;
            }
        };
        let name = r.reference().to_string();
        let tag_dir = store
            .refs_dir()
            .join(r.reference().cache_dir())
            .join("tags")
            .join(r.reference().tag().unwrap_or_default());
        if let Ok(rd) = fs::read_dir(&tag_dir) {
            for link in rd.flatten() {
                if fs::metadata(link.path()).is_err() {
                    report.problems.push(format!(
                        "{name}: link {} is dangling",
                        link.file_name().to_string_lossy()
                    ));
                }
            }
        }
        match &r {
            StoredRef::Chart(entry) => {
                check_chart(store, &name, entry, &mut charts, &mut report.problems)
            }
            StoredRef::Artifact(a) => {
                let problems = reached
                    .entry(a.manifest.clone())
                    .or_insert_with(|| graph::reach(store, &a.manifest).problems);
                report
                    .problems
                    .extend(problems.iter().map(|p| format!("{name}: {p}")));
            }
        }
        if let Ok(Some(e)) = entries.of(store, &r) {
            expected.push(e);
        }
    }

    if store.root().join(layout::DIRTY).exists() {
        // A writer died between a ref change and the index update; the next write rebuilds it.
        return Ok(report);
    }
    match layout::read(store) {
        None if !expected.is_empty() => report
            .problems
            .push("index.json is missing or unreadable".into()),
        None => {}
        Some(index) => report
            .problems
            .extend(index_problems(&expected, &index.manifests)),
    }
    report.problems.sort();
    Ok(report)
}

/// A chart's links against its manifest.
fn check_chart(
    store: &Store,
    name: &str,
    entry: &RefEntry,
    parsed: &mut HashMap<Digest, std::result::Result<Manifest, String>>,
    problems: &mut Vec<String>,
) {
    let Some(manifest_digest) = &entry.manifest else {
        return;
    };
    if !parsed.contains_key(manifest_digest) {
        let Ok(bytes) = store.read_blob(manifest_digest) else {
            return;
        };
        let m = Manifest::parse_chart(&bytes).map_err(|e| e.to_string());
        parsed.insert(manifest_digest.clone(), m);
    }
    let Some(m) = parsed.get(manifest_digest) else {
        return;
    };
    match m {
        Err(e) => problems.push(format!("{name}: manifest {manifest_digest}: {e}")),
        Ok(m) => {
            if m.config.digest != entry.config {
                problems.push(format!(
                    "{name}: meta link does not match the manifest's config"
                ));
            }
            if m.chart_layer().map(|l| &l.digest) != Some(&entry.content) {
                problems.push(format!(
                    "{name}: content link does not match the manifest's chart layer"
                ));
            }
            if m.prov_layer().map(|l| &l.digest) != entry.prov.as_ref() {
                problems.push(format!("{name}: prov link does not match the manifest"));
            }
        }
    }
}

/// What `index.json` lists against what the refs say it should.
fn index_problems(expected: &[layout::Entry], listed: &[layout::Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for e in listed {
        if let Some(n) = e.ref_name()
            && !seen.insert(n)
        {
            problems.push(format!("index.json lists {n} more than once"));
        }
    }
    let key = |e: &layout::Entry| (e.ref_name().map(str::to_string), e.digest.clone());
    let want: HashSet<_> = expected.iter().map(key).collect();
    let have: HashSet<_> = listed.iter().map(key).collect();
    for (name, digest) in want.difference(&have) {
        let name = name.as_deref().unwrap_or_default();
        problems.push(format!("index.json lacks {name} ({digest})"));
    }
    for (name, digest) in have.difference(&want) {
        let name = name.as_deref().unwrap_or("an entry without a name");
        problems.push(format!(
            "index.json lists {name} ({digest}), which is not a ref"
        ));
    }
    let by_key: std::collections::HashMap<_, &layout::Entry> =
        listed.iter().map(|l| (key(l), l)).collect();
    for e in expected {
        if let Some(l) = by_key.get(&key(e))
            && (l.media_type != e.media_type || l.artifact_type != e.artifact_type)
        {
            problems.push(format!(
                "index.json lists {} as {}, its manifest is {}",
                e.ref_name().unwrap_or_default(),
                l.media_type,
                e.media_type
            ));
        }
    }
    problems
}

/// Re-hashes blobs on every core; returns the problems.
fn hash_all(files: &[(String, PathBuf)]) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut problems = Vec::new();
                    for (name, path) in part {
                        let Ok(expected) = Digest::from_hex(name) else {
                            problems.push(format!("{}: not a blob name", path.display()));
                            continue;
                        };
                        match fs::File::open(path).and_then(|f| {
                            digest_reader(io::BufReader::with_capacity(256 * 1024, f))
                        }) {
                            Ok((actual, _)) if actual == expected => {}
                            Ok((actual, _)) => problems
                                .push(format!("{}: content hashes to {actual}", path.display())),
                            Err(e) => problems.push(format!("{}: {e}", path.display())),
                        }
                    }
                    problems
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}
