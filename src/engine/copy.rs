//! The graph walk: one artifact from a [`Source`] to a [`Sink`], byte for byte.
//!
//! An index (OCI image index, Docker manifest list) is copied child by child, each child by
//! digest, before the index itself; a manifest's blobs (config and layers) are copied before
//! the manifest. A blob the sink has is skipped; a blob on the same registry is mounted; two
//! registries stream straight through (the destination checks the digest as the upload
//! completes); any other pair goes through a verified temporary file. So a sink never holds a
//! manifest whose content it lacks, and no unverified byte is ever kept.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use super::referrers::{self, ReferrerPolicy};
use super::{EngineError, Result, Sink, Source};
use crate::digest::Digest;
use crate::manifest::Node;
use crate::oci::Descriptor;
use crate::reference::Reference;
use crate::registry::RegistryError;

/// How deep indexes may nest (an index of indexes of …): real ones have one level.
const MAX_DEPTH: usize = 4;
/// Blobs (or children) of one manifest moved at once.
const CONCURRENCY: usize = 4;

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The digest of the top manifest or index (the same at both ends).
    pub digest: Digest,
    pub manifests: usize,
    pub blobs: usize,
    /// Blobs actually sent (not already there, not mounted).
    pub sent: usize,
    /// Referrers (and cosign's tagged manifests) copied along.
    pub referrers: usize,
}

impl Copied {
    fn add(&mut self, other: &Copied) {
        self.manifests += other.manifests;
        self.blobs += other.blobs;
        self.sent += other.sent;
        self.referrers += other.referrers;
    }
}

/// Reads `bytes` as a manifest or index; an error names `what`.
fn parse(bytes: &[u8], what: &Reference) -> Result<Node> {
    Node::parse(bytes).map_err(|reason| EngineError::NotAManifest {
        what: what.to_string(),
        reason,
    })
}

/// A platform to keep from image indexes: `OS/ARCH[/VARIANT]`, as `docker --platform` and
/// `skopeo --override-*` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!("{text:?}: not OS/ARCH[/VARIANT], like linux/arm64")),
        }
    }

    /// Whether an index entry's `platform` object is this platform (a variant asked for must
    /// match; none asked for takes any).
    fn matches(&self, platform: &serde_json::Value) -> bool {
        let field = |k: &str| platform.get(k).and_then(|v| v.as_str());
        field("os") == Some(self.os.as_str())
            && field("architecture") == Some(self.architecture.as_str())
            && self
                .variant
                .as_deref()
                .is_none_or(|v| field("variant") == Some(v))
    }
}

/// A repository at one place: the place's description and the repository.
type PlaceRepo = (String, Reference);

/// Set once a blob is present in one destination repository.
type Cell = Arc<tokio::sync::OnceCell<()>>;

/// What the copies of one job share. Blobs made present in a destination repository are
/// remembered, so artifacts sharing a blob (tags of one chart version, the platforms of two
/// images) send it once: a second copy waits for the first instead of sending it again —
/// besides the wasted upload, distribution 2.8 can lose the repository's link to a blob
/// committed twice at the same moment. Repositories known to be new at the destination are
/// not asked about blobs they cannot have.
#[derive(Default)]
pub struct Job {
    cells: Mutex<HashMap<(String, Digest), Cell>>,
    new_repositories: HashSet<Reference>,
    /// Only these platforms of an image index (all when empty).
    platforms: Vec<Platform>,
    referrers: ReferrerPolicy,
    /// Each source repository's tags, listed once (to find referrers by tag).
    source_tags: tokio::sync::Mutex<HashMap<PlaceRepo, Arc<Vec<String>>>>,
    /// The referrers tag schema indexes this job wrote, by destination, repository and
    /// subject: the next referrer of the same subject is merged into it. Held while one is
    /// written, so two referrers of one subject never race.
    referrer_indexes: tokio::sync::Mutex<HashMap<(String, Reference, Digest), Vec<u8>>>,
}

impl Job {
    /// A job whose destination does not have `new_repositories` yet.
    pub fn new(new_repositories: HashSet<Reference>) -> Self {
        Job {
            new_repositories,
            ..Job::default()
        }
    }

    /// Which referrers the copies take (all, by default).
    pub fn with_referrers(mut self, policy: ReferrerPolicy) -> Self {
        self.referrers = policy;
        self
    }

    pub fn referrer_policy(&self) -> &ReferrerPolicy {
        &self.referrers
    }

    /// `repo`'s tags at `src`, listed once per job (none when it has no such repository).
    async fn tags_of(&self, src: &dyn Source, repo: &Reference) -> Result<Arc<Vec<String>>> {
        let key = (src.describe(), repo.clone());
        let mut lists = self.source_tags.lock().await;
        if let Some(tags) = lists.get(&key) {
            return Ok(Arc::clone(tags));
        }
        let tags = match src.tags(repo).await {
            Ok(tags) => Arc::new(tags),
            Err(EngineError::NotFound { .. }) => Arc::new(Vec::new()),
            Err(e) => return Err(e),
        };
        lists.insert(key, Arc::clone(&tags));
        Ok(tags)
    }

    /// Records `referrer` of `subject` at `dst`, merged with what this job wrote there.
    async fn record_referrer(
        &self,
        dst: &dyn Sink,
        repo: &Reference,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Result<()> {
        let key = (dst.describe(), repo.clone(), subject.clone());
        let mut written = self.referrer_indexes.lock().await;
        // A repository new at the destination has no index but what this job wrote.
        let current = written.get(&key).cloned().or_else(|| {
            self.new_repositories
                .contains(repo)
                .then(referrers::empty_index)
        });
        if let Some(index) = dst.put_referrer(repo, subject, referrer, current).await? {
            written.insert(key, index);
        }
        Ok(())
    }

    /// Copies only these platforms of image indexes: an index keeps its bytes (and digest)
    /// when every platform it holds is taken, and is rewritten with only the chosen ones
    /// otherwise.
    pub fn with_platforms(mut self, platforms: Vec<Platform>) -> Self {
        self.platforms = platforms;
        self
    }

    /// The index as it is to be copied: its bytes and children, after `--platform`.
    fn select(
        &self,
        bytes: Vec<u8>,
        node: &Node,
        what: &Reference,
    ) -> Result<(Vec<u8>, Vec<Descriptor>)> {
        let children = node.children.clone();
        if self.platforms.is_empty() {
            return Ok((bytes, children));
        }
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::NotAManifest {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        let entries = value
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let keep: Vec<bool> = entries
            .iter()
            .map(|e| {
                e.get("platform")
                    .is_some_and(|p| self.platforms.iter().any(|want| want.matches(p)))
            })
            .collect();
        if !keep.iter().any(|k| *k) {
            return Err(EngineError::Unsupported {
                what: what.to_string(),
                reason: "no platform of this index matches --platform".into(),
            });
        }
        if keep.iter().all(|k| *k) {
            return Ok((bytes, children));
        }
        let kept: Vec<serde_json::Value> = entries
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(e, _)| e)
            .collect();
        let children = children
            .into_iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(d, _)| d)
            .collect();
        value["manifests"] = serde_json::Value::Array(kept);
        let bytes = serde_json::to_vec(&value).map_err(|e| EngineError::NotAManifest {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        Ok((bytes, children))
    }

    /// Whether `held`, the digest a destination has for `from` and not the source's, is what
    /// copying `from` writes all the same: an index rewritten with only the `--platform`s
    /// asked for (the source's index is read to tell; anything else is not).
    pub async fn holds_selection(&self, src: &dyn Source, from: &Reference, held: &Digest) -> bool {
        if self.platforms.is_empty() {
            return false;
        }
        let Ok((bytes, _)) = src.manifest(from).await else {
            return false;
        };
        match parse(&bytes, from) {
            Ok(node) if node.index => self
                .select(bytes, &node, from)
                .is_ok_and(|(selected, _)| Digest::of(&selected) == *held),
            _ => false,
        }
    }

    fn cell(&self, dst: &dyn Sink, repo: &Reference, digest: &Digest) -> Cell {
        let key = (format!("{}/{}", dst.describe(), repo), digest.clone());
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(cells.entry(key).or_default())
    }
}

/// Copies the artifact `from` names in `src` to `to` in `dst` (whose tag, if any, is set last).
pub async fn copy(
    src: &dyn Source,
    from: &Reference,
    dst: &dyn Sink,
    to: &Reference,
    job: &Job,
) -> Result<Copied> {
    copy_fetched(src, from, None, dst, to, job).await
}

/// [`copy`], with the top manifest's bytes when the caller has read them already (from `src`,
/// under `from`): they are not asked for again.
pub async fn copy_fetched(
    src: &dyn Source,
    from: &Reference,
    manifest: Option<Vec<u8>>,
    dst: &dyn Sink,
    to: &Reference,
    job: &Job,
) -> Result<Copied> {
    let mut seen = HashSet::new();
    let copied = walk(src, from, manifest, dst, to, 0, &mut seen, job).await;
    src.release(from);
    copied
}

/// Manifest uploads refused for a missing blob are retried this many times, each after the
/// manifest's blobs were checked and the missing ones sent again.
const BLOB_UNKNOWN_ROUNDS: usize = 3;

#[allow(clippy::too_many_arguments)]
fn walk<'a>(
    src: &'a dyn Source,
    from: &'a Reference,
    fetched: Option<Vec<u8>>,
    dst: &'a dyn Sink,
    to: &'a Reference,
    depth: usize,
    seen: &'a mut HashSet<Digest>,
    job: &'a Job,
) -> futures_util::future::BoxFuture<'a, Result<Copied>> {
    Box::pin(async move {
        let bytes = match fetched {
            Some(bytes) => bytes,
            None => src.manifest(from).await?.0,
        };
        let source_digest = Digest::of(&bytes);
        let node = parse(&bytes, from)?;
        let (bytes, children) = match node.index {
            true => job.select(bytes, &node, from)?,
            false => (bytes, Vec::new()),
        };
        // A rewritten index (some platforms left out) is a new document with a digest of its
        // own; anything else keeps the source's.
        let digest = Digest::of(&bytes);
        if depth == 0 {
            dst.admit(to, &bytes)?;
        }
        let mut copied = Copied {
            digest: digest.clone(),
            manifests: 1,
            blobs: 0,
            sent: 0,
            referrers: 0,
        };
        if node.index {
            if depth >= MAX_DEPTH {
                return Err(EngineError::Unsupported {
                    what: from.to_string(),
                    reason: format!("indexes nested more than {MAX_DEPTH} deep"),
                });
            }
            for child in &children {
                if !seen.insert(child.digest.clone()) {
                    continue;
                }
                let child_from = by_digest(from, &child.digest);
                let child_to = by_digest(to, &child.digest);
                let c = walk(src, &child_from, None, dst, &child_to, depth + 1, seen, job).await?;
                copied.add(&c);
            }
        } else {
            copied.blobs = node.blobs.len();
            copied.sent = copy_blobs(src, from, dst, to, &node.blobs, Some(job)).await?;
        }
        let mut round = 0;
        let pushed = loop {
            match dst.put_manifest(to, &bytes, &node.media_type).await {
                // Another writer into the same repository can make a registry lose a blob
                // link: check the blobs again, send what is missing, and retry.
                Err(EngineError::Registry(RegistryError::BlobUnknown { .. }))
                    if round < BLOB_UNKNOWN_ROUNDS && !node.index =>
                {
                    round += 1;
                    copy_blobs(src, from, dst, to, &node.blobs, None).await?;
                }
                other => break other?,
            }
        };
        if pushed != digest {
            return Err(EngineError::DigestMismatch {
                what: format!("manifest {to} at {}", dst.describe()),
                expected: digest,
                actual: pushed,
            });
        }
        // What refers to a rewritten index refers to the source's, which is not copied.
        if digest == source_digest {
            let c = copy_referrers(src, from, dst, to, &digest, depth, seen, job).await?;
            copied.add(&c);
        }
        Ok(copied)
    })
}

/// Copies what refers to `digest` (copied already, from `from` to `to`): its referrers,
/// each recorded at the destination, and cosign's tags for it, each under its tag; and
/// recursively what refers to those.
#[allow(clippy::too_many_arguments)]
pub fn copy_referrers<'a>(
    src: &'a dyn Source,
    from: &'a Reference,
    dst: &'a dyn Sink,
    to: &'a Reference,
    digest: &'a Digest,
    depth: usize,
    seen: &'a mut HashSet<Digest>,
    job: &'a Job,
) -> futures_util::future::BoxFuture<'a, Result<Copied>> {
    Box::pin(async move {
        let mut copied = Copied {
            digest: digest.clone(),
            manifests: 0,
            blobs: 0,
            sent: 0,
            referrers: 0,
        };
        if !job.referrers.enabled || depth >= referrers::MAX_DEPTH {
            return Ok(copied);
        }
        let (from_repo, to_repo) = (from.without_object(), to.without_object());
        // A repository new at the destination holds nothing yet: nothing to ask it.
        let new_there = job.new_repositories.contains(&to_repo);
        let tags = job.tags_of(src, &from_repo).await?;
        let found = src.referrers(&from_repo, digest, &tags).await?;
        // A hostile listing is refused whole, before anything of it is copied.
        referrers::check_listing(&src.describe(), &from_repo, digest, &found)?;
        for referrer in found.referrers.iter().filter(|d| job.referrers.takes(d)) {
            let (f, t) = (
                by_digest(from, &referrer.digest),
                by_digest(to, &referrer.digest),
            );
            // Checked against its listing before anything of it is copied or recorded: its
            // size, and that it refers to `digest` indeed (so a listing cannot make a chain
            // loop, or claim an unrelated manifest).
            let (bytes, _) = src.manifest(&f).await?;
            referrers::check_referrer(referrer, digest, &bytes, &f)?;
            if seen.insert(referrer.digest.clone()) {
                if seen.len() > referrers::MAX_PER_ARTIFACT {
                    return Err(EngineError::Unsupported {
                        what: to.to_string(),
                        reason: format!(
                            "more than {} referrers and manifests in one copy",
                            referrers::MAX_PER_ARTIFACT
                        ),
                    });
                }
                let there = match new_there {
                    true => None,
                    false => dst.digest_of(&t).await?,
                };
                let c = match there {
                    // There already (an earlier copy): only what refers to it may be new.
                    Some(d) if d == referrer.digest => {
                        copy_referrers(src, &f, dst, &t, &referrer.digest, depth + 1, seen, job)
                            .await?
                    }
                    _ => {
                        copied.referrers += 1;
                        walk(src, &f, Some(bytes), dst, &t, depth + 1, seen, job).await?
                    }
                };
                copied.add(&c);
            }
            job.record_referrer(dst, &to_repo, digest, referrer).await?;
        }
        if job.referrers.takes_cosign_tags() {
            for tag in &found.cosign_tags {
                let (Ok(f), Ok(t)) = (from_repo.with_tag(tag), to_repo.with_tag(tag)) else {
                    continue;
                };
                if !new_there {
                    let (want, have) = tokio::join!(src.digest(&f), dst.digest_of(&t));
                    if let (Ok(Some(want)), Ok(Some(have))) = (want, have)
                        && want == have
                    {
                        continue;
                    }
                }
                let c = walk(src, &f, None, dst, &t, depth + 1, seen, job).await?;
                copied.add(&c);
                copied.referrers += 1;
            }
        }
        Ok(copied)
    })
}

/// Copies what refers to the artifact `from` names (`digest`, already at `to`): for a copy
/// that found the artifact itself up to date.
pub async fn copy_referrers_of(
    src: &dyn Source,
    from: &Reference,
    dst: &dyn Sink,
    to: &Reference,
    digest: &Digest,
    job: &Job,
) -> Result<Copied> {
    let mut seen = HashSet::new();
    seen.insert(digest.clone());
    copy_referrers(src, from, dst, to, digest, 0, &mut seen, job).await
}

/// The same repository, by digest.
fn by_digest(r: &Reference, digest: &Digest) -> Reference {
    let text = format!("{}@{digest}", r.repository());
    // A repository name that parsed once parses again with a digest.
    Reference::parse(&text).unwrap_or_else(|_| r.clone())
}

/// Makes every blob present in `dst`; returns how many were sent. With a `job`, each blob is
/// handled once per destination repository in the job; without one, every blob is checked.
async fn copy_blobs(
    src: &dyn Source,
    from: &Reference,
    dst: &dyn Sink,
    to: &Reference,
    blobs: &[Descriptor],
    job: Option<&Job>,
) -> Result<usize> {
    let (from_repo, to_repo) = (from.without_object(), to.without_object());
    let (from_repo, to_repo) = (&from_repo, &to_repo);
    let unique: Vec<&Descriptor> = {
        let mut seen = HashSet::new();
        blobs
            .iter()
            .filter(|d| seen.insert(d.digest.clone()))
            .collect()
    };
    let copies: Vec<_> = unique
        .into_iter()
        .map(|desc| once(src, from_repo, dst, to_repo, desc, job))
        .collect();
    let results: Vec<Result<bool>> = futures_util::stream::iter(copies)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut sent = 0;
    for r in results {
        if r? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// [`copy_blob`] at most once per job and destination repository: a later copy of the same
/// blob waits for the first and is told it was there. A failed copy lets the next one try.
async fn once(
    src: &dyn Source,
    from_repo: &Reference,
    dst: &dyn Sink,
    to_repo: &Reference,
    desc: &Descriptor,
    job: Option<&Job>,
) -> Result<bool> {
    let Some(job) = job else {
        return copy_blob(src, from_repo, dst, to_repo, desc, true).await;
    };
    let cell = job.cell(dst, to_repo, &desc.digest);
    let first = std::sync::atomic::AtomicBool::new(false);
    let ask = !job.new_repositories.contains(to_repo);
    cell.get_or_try_init(|| async {
        let sent = copy_blob(src, from_repo, dst, to_repo, desc, ask).await?;
        first.store(sent, std::sync::atomic::Ordering::Relaxed);
        Ok::<(), EngineError>(())
    })
    .await?;
    Ok(first.load(std::sync::atomic::Ordering::Relaxed))
}

/// Makes one blob present in `dst`; true if it was sent (not there, not mounted). `ask`:
/// whether the destination may have it already.
async fn copy_blob(
    src: &dyn Source,
    from_repo: &Reference,
    dst: &dyn Sink,
    to_repo: &Reference,
    desc: &Descriptor,
    ask: bool,
) -> Result<bool> {
    if ask && dst.has_blob(to_repo, &desc.digest).await? {
        return Ok(false);
    }
    let registries = (src.registry(), dst.registry());
    if let (Some(from_reg), Some(to_reg)) = registries
        && from_reg.host() == to_reg.host()
        && to_reg.mount_blob(to_repo, from_repo, &desc.digest).await
    {
        return Ok(false);
    }
    // Downloaded already (by a signature check): written from there.
    if let Some(blob) = src.held(&desc.digest) {
        dst.put_blob(to_repo, desc, blob).await?;
        return Ok(true);
    }
    if let (Some(from_reg), Some(to_reg)) = registries {
        to_reg
            .copy_blob_from(from_reg, from_repo, to_repo, desc)
            .await?;
        return Ok(true);
    }
    let blob = src.blob(from_repo, desc).await?;
    dst.put_blob(to_repo, desc, blob).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert!(p.matches(
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        ));
        assert!(!p.matches(&serde_json::json!({"os": "linux", "architecture": "arm64"})));
        let any = Platform::parse("linux/arm64").unwrap();
        assert!(any.matches(
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        ));
        for bad in ["amd64", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
