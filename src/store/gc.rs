//! `prune` (mark and sweep from the refs) and `verify` (re-hash every blob, check every link).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{Result, Store, blobs, io_err, layout, refs};
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
    for r in refs::walk(store)? {
        match r {
            Ok(entry) => {
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
                    && let Ok(bytes) = store.read_blob(m)
                    && let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes)
                {
                    keep_blobs.extend(manifest.blobs().map(|d| d.digest.hex().to_string()));
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

    let walked = refs::walk(store)?;
    let mut with_manifest = HashSet::new();
    for r in walked {
        report.refs += 1;
        let entry = match r {
            Ok(e) => e,
            Err(b) => {
                report
                    .problems
                    .push(format!("{}: broken ref: {}", b.dir.display(), b.reason));
                continue;
            }
        };
        let name = entry.reference.to_string();
        let tag_dir = store
            .refs_dir()
            .join(entry.reference.cache_dir())
            .join("tags")
            .join(entry.reference.tag().unwrap_or_default());
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
        let Some(manifest_digest) = &entry.manifest else {
            continue;
        };
        with_manifest.insert((name.clone(), manifest_digest.clone()));
        let Ok(bytes) = store.read_blob(manifest_digest) else {
            continue;
        };
        match Manifest::parse_chart(&bytes) {
            Err(e) => report
                .problems
                .push(format!("{name}: manifest {manifest_digest}: {e}")),
            Ok(m) => {
                if m.config.digest != entry.config {
                    report.problems.push(format!(
                        "{name}: meta link does not match the manifest's config"
                    ));
                }
                if m.chart_layer().map(|l| &l.digest) != Some(&entry.content) {
                    report.problems.push(format!(
                        "{name}: content link does not match the manifest's chart layer"
                    ));
                }
                if m.prov_layer().map(|l| &l.digest) != entry.prov.as_ref() {
                    report
                        .problems
                        .push(format!("{name}: prov link does not match the manifest"));
                }
            }
        }
    }

    if store.root().join(layout::DIRTY).exists() {
        // A writer died between a ref change and the index update; the next write rebuilds it.
        return Ok(report);
    }
    match layout::read(store) {
        None if !with_manifest.is_empty() => report
            .problems
            .push("index.json is missing or unreadable".into()),
        None => {}
        Some(index) => {
            let listed: HashSet<(String, Digest)> = index
                .manifests
                .iter()
                .filter_map(|d| {
                    layout::Index::ref_name(d).map(|n| (n.to_string(), d.digest.clone()))
                })
                .collect();
            for (name, digest) in with_manifest.difference(&listed) {
                report
                    .problems
                    .push(format!("index.json lacks {name} ({digest})"));
            }
            for (name, digest) in listed.difference(&with_manifest) {
                report.problems.push(format!(
                    "index.json lists {name} ({digest}), which is not a ref"
                ));
            }
        }
    }
    report.problems.sort();
    Ok(report)
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
