//! `sync --images`: each chart travels with the images it runs.
//!
//! For every chart a sync takes, the images are found as `chart images` finds them
//! ([`crate::chart::images`], with the chart's own values), read from the chart's archive at
//! the source (whatever place that is), plus the images a `--images-from` list adds. Each
//! image is copied from its own registry (connected lazily, once per host, with the source
//! side's TLS settings and the stored logins) to the chart's destination by the copy engine
//! ([`crate::engine::copy`]): an index with every platform (or `--platform`), digests kept,
//! referrers along. Images are named at the destination as charts are ([`Destination`]:
//! `DEST/<last path element>:<tag>`, or with `--scoped` the whole path, host included); a
//! layout or archive names each by its full reference, so one `oci-archive:` holds charts and
//! images together, and `sync oci-archive:FILE REGISTRY` restores both.
//!
//! Images go before their chart, and a chart any of whose images cannot be copied is not
//! copied: a destination never holds a chart without its images. An image several charts run
//! is copied once; two different images that would land on one name (or on a chart's name)
//! fail rather than overwrite each other.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde::Serialize;

use super::{Destination, SyncOptions};
use crate::chart::images::{
    Found, ImageRef, ImagesError, LoadedChart, Overrides, Warning, chart_images,
};
use crate::credentials::{Credential, CredentialsError};
use crate::digest::Digest;
use crate::engine::copy::{Job, copy, copy_referrers_of};
use crate::engine::places::RegistryPlace;
use crate::engine::{EngineError, Sink, Source, blocking};
use crate::oci::Manifest;
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError, Transport};
use crate::tasks::Outcome;

/// Why an image, or the images of a chart, could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The chart could not be read from the source to find its images.
    #[error("cannot read the chart to find its images: {0}")]
    ReadChart(#[source] EngineError),
    #[error("cannot find the chart's images: {0}")]
    FindImages(#[from] ImagesError),
    /// A reference `chart images` found that is not one a registry can be asked for.
    #[error("not a reference chartcache can copy: {0}")]
    Name(String),
    #[error("{host}: {source}")]
    Credentials {
        host: String,
        #[source]
        source: CredentialsError,
    },
    #[error("{0}")]
    Connect(#[source] RegistryError),
    #[error("not found at {0}")]
    NotFound(String),
    #[error("{0}")]
    Copy(#[source] EngineError),
    /// Two different things would be written under one destination name.
    #[error("{other} would be written to {target} too; sync them apart or use --scoped")]
    Clash { target: String, other: String },
}

/// How the registries images live in are reached: the source side's transport (TLS flags and
/// timeouts) and credentials.
pub struct Connector {
    pub transport: Transport,
    pub credentials: crate::credentials::Store,
    /// Credentials given on the command line, for their host only (the source's
    /// `--src-creds`): they win over the stored logins there.
    pub given: Vec<(String, Credential)>,
}

impl Connector {
    async fn connect(&self, host: &str) -> Result<Registry, ImageError> {
        let credential = match self.given.iter().find(|(h, _)| h == host) {
            Some((_, c)) => Some(c.clone()),
            None => self
                .credentials
                .get(host)
                .map_err(|source| ImageError::Credentials {
                    host: host.to_string(),
                    source,
                })?,
        };
        Registry::connect(host, &self.transport, credential)
            .await
            .map_err(ImageError::Connect)
    }
}

/// An image listed by hand (`--images-from FILE`), with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub image: ImageRef,
    pub file: String,
    pub line: u32,
}

/// Why a list of images could not be read: the line and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {text:?} is not an image reference: {source}")]
pub struct ListError {
    pub file: String,
    pub line: u32,
    pub text: String,
    #[source]
    pub source: crate::chart::images::ImageRefError,
}

/// Parses a list of images: one reference per line (as `chart images -q` prints them),
/// normalised as `chart images` normalises; blank lines and `#` comments are skipped.
pub fn parse_list(file: &str, text: &str) -> Result<Vec<Listed>, ListError> {
    let mut out: Vec<Listed> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
        let image = ImageRef::parse(text).map_err(|source| ListError {
            file: file.to_string(),
            line,
            text: text.to_string(),
            source,
        })?;
        if out.iter().all(|l| l.image != image) {
            out.push(Listed {
                image,
                file: file.to_string(),
                line,
            });
        }
    }
    Ok(out)
}

/// Why a chart needs an image: where `chart images` found it, or the list line naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Why {
    Found(Found),
    Listed {
        file: String,
        line: u32,
        /// Always `list`.
        source: &'static str,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Found(found) => found.fmt(f),
            Why::Listed { file, line, .. } => write!(f, "{file}:{line} (listed)"),
        }
    }
}

/// What became of one image.
#[derive(Debug, Clone)]
pub enum ImageOutcome {
    Copied,
    UpToDate,
    /// `--dry-run`: it would be copied.
    Planned,
    Failed(Arc<ImageError>),
}

/// One image of a chart: where it is, where it goes, why the chart needs it, what became of
/// it.
#[derive(Debug, Clone)]
pub struct ImageResult {
    /// The image as the chart names it, normalised (`docker.io/library/nginx:1.25`).
    pub image: String,
    /// Where it went (or would go).
    pub target: Option<Reference>,
    pub why: Vec<Why>,
    pub outcome: ImageOutcome,
}

/// The images of one chart, and what `chart images` warned about.
#[derive(Debug, Clone, Default)]
pub struct ChartImages {
    pub images: Vec<ImageResult>,
    pub warnings: Vec<Warning>,
}

impl ChartImages {
    /// The chart's failure, when one of its images failed: each such image and why.
    pub fn failure(&self) -> Option<String> {
        let failed: Vec<String> = self
            .images
            .iter()
            .filter_map(|i| match &i.outcome {
                ImageOutcome::Failed(e) => Some(format!("image {}: {e}", i.image)),
                _ => None,
            })
            .collect();
        match failed.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(format!(
                "{} of its images failed: {}",
                many.len(),
                many.join("; ")
            )),
        }
    }

    /// How many images were copied (or, in a dry run, would be), and how many were there.
    pub fn counts(&self) -> (usize, usize) {
        let count =
            |f: fn(&ImageOutcome) -> bool| self.images.iter().filter(|i| f(&i.outcome)).count();
        (
            count(|o| matches!(o, ImageOutcome::Copied | ImageOutcome::Planned)),
            count(|o| matches!(o, ImageOutcome::UpToDate)),
        )
    }
}

/// Images of one chart copied at once.
const IMAGES_AT_ONCE: usize = 4;

/// An image to make present, named at both ends.
struct Wanted {
    image: String,
    source: Reference,
    target: Reference,
}

/// An image a chart runs, and why; named at both ends, unless it cannot be.
struct Needed {
    why: Vec<Why>,
    wanted: Result<Wanted, (String, ImageError)>,
}

/// Who holds a destination name in this sync, and what became of the copy there.
struct Slot {
    /// The image (or chart) written there.
    owner: String,
    done: Arc<tokio::sync::OnceCell<ImageOutcome>>,
}

/// The images side of one sync: how to reach image registries, the hand-made list, where
/// images go, and what this sync did so far (each image is copied once, each registry
/// connected once).
pub struct Images {
    connector: Connector,
    listed: Vec<Listed>,
    destination: Destination,
    registries: tokio::sync::Mutex<HashMap<String, Arc<RegistryPlace>>>,
    slots: Mutex<HashMap<Reference, Slot>>,
}

impl Images {
    pub fn new(connector: Connector, listed: Vec<Listed>, destination: Destination) -> Self {
        Images {
            connector,
            listed,
            destination,
            registries: tokio::sync::Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Marks the names the items of a sync (charts, or the images an archive holds) are
    /// written to, so no other image is written over one.
    pub fn reserve(&self, items: &[super::Item]) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for item in items {
            slots.entry(item.target.clone()).or_insert_with(|| Slot {
                owner: item.source.to_string(),
                done: Arc::new(tokio::sync::OnceCell::new()),
            });
        }
    }

    /// Runs `copy`, the copy of an item of the sync, once with the copy of an image of the
    /// same name (an archive's images are items, and images of its charts): whichever comes
    /// first copies, the other is told what became of it.
    pub async fn item_once(
        &self,
        target: &Reference,
        copy: impl std::future::Future<Output = Result<Outcome, EngineError>>,
    ) -> Outcome {
        let cell = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.get(target).map(|s| Arc::clone(&s.done))
        };
        let Some(cell) = cell else {
            return copy
                .await
                .unwrap_or_else(|e| Outcome::Failed(e.to_string()));
        };
        let done = cell
            .get_or_init(|| async {
                match copy.await {
                    Ok(Outcome::Done) => ImageOutcome::Copied,
                    Ok(Outcome::Planned) => ImageOutcome::Planned,
                    Ok(_) => ImageOutcome::UpToDate,
                    Err(e) => ImageOutcome::Failed(Arc::new(ImageError::Copy(e))),
                }
            })
            .await;
        match done {
            ImageOutcome::Copied => Outcome::Done,
            ImageOutcome::Planned => Outcome::Planned,
            ImageOutcome::UpToDate => Outcome::Skipped,
            ImageOutcome::Failed(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// Finds the images of the chart `name` names at `source` (reading its archive there),
    /// and makes each present at `sink` (in a dry run, says whether it would be copied).
    /// `manifest`: the chart's manifest, read here, so the chart's copy need not read it
    /// again. An error when the chart cannot be read.
    pub async fn of_chart(
        &self,
        source: &dyn Source,
        name: &Reference,
        sink: Option<&dyn Sink>,
        job: &Job,
        options: &SyncOptions,
    ) -> Result<(ChartImages, Vec<u8>), ImageError> {
        let (manifest, _) = source.manifest(name).await.map_err(ImageError::ReadChart)?;
        let (wanted, warnings) = self.find(source, name, &manifest).await?;
        // Charts already run `jobs` at a time: a few images of each at once is enough.
        let jobs = options.jobs.clamp(1, IMAGES_AT_ONCE);
        let images = futures_util::stream::iter(wanted)
            .map(|n: Needed| async move {
                let (image, target, outcome) = match n.wanted {
                    Ok(w) => {
                        let outcome = self.make_present(&w, source, sink, job, options).await;
                        (w.image, Some(w.target), outcome)
                    }
                    Err((image, e)) => (image, None, ImageOutcome::Failed(Arc::new(e))),
                };
                ImageResult {
                    image,
                    target,
                    why: n.why,
                    outcome,
                }
            })
            .buffered(jobs)
            .collect()
            .await;
        Ok((ChartImages { images, warnings }, manifest))
    }

    /// The images a chart runs (none when the artifact is not a Helm chart), and the list's,
    /// each named at both ends; an image that cannot be named is a failed result already.
    async fn find(
        &self,
        source: &dyn Source,
        name: &Reference,
        manifest: &[u8],
    ) -> Result<(Vec<Needed>, Vec<Warning>), ImageError> {
        let mut found: Vec<(ImageRef, Vec<Why>)> = Vec::new();
        let mut warnings = Vec::new();
        // Not a Helm chart (an image synced as such): it runs no images of its own.
        if let Ok(chart) = Manifest::parse_chart(manifest)
            && let Some(layer) = chart.chart_layer()
        {
            let repo = name.without_object();
            let blob = source
                .blob(&repo, layer)
                .await
                .map_err(ImageError::ReadChart)?;
            let report = blocking(|| -> Result<_, ImageError> {
                let file = blob.open().map_err(ImageError::ReadChart)?;
                let chart = LoadedChart::from_archive(BufReader::with_capacity(256 * 1024, file))
                    .map_err(ImagesError::from)?;
                Ok(chart_images(&chart, &Overrides::default())?)
            })?;
            warnings = report.warnings;
            found.extend(
                report
                    .images
                    .into_iter()
                    .map(|i| (i.image, i.found.into_iter().map(Why::Found).collect())),
            );
        }
        for l in &self.listed {
            let why = Why::Listed {
                file: l.file.clone(),
                line: l.line,
                source: "list",
            };
            match found.iter_mut().find(|(i, _)| *i == l.image) {
                Some((_, whys)) => whys.push(why),
                None => found.push((l.image.clone(), vec![why])),
            }
        }
        let wanted = found
            .into_iter()
            .map(|(image, why)| Needed {
                why,
                wanted: self.name(&image).map_err(|e| (image.to_string(), e)),
            })
            .collect();
        Ok((wanted, warnings))
    }

    /// Where `image` is read from and written to. An image with a tag and a digest is read by
    /// its digest (what the chart runs) and written under its tag.
    fn name(&self, image: &ImageRef) -> Result<Wanted, ImageError> {
        let shown = image.to_string();
        let source = Reference::parse(&shown).map_err(|e| ImageError::Name(e.to_string()))?;
        let named = match source.tag() {
            Some(tag) => source.without_object().with_tag(tag),
            None => Ok(source.clone()),
        };
        let target = named
            .map_err(|e| e.to_string())
            .and_then(|n| self.destination.target(&n))
            .map_err(ImageError::Name)?;
        Ok(Wanted {
            image: shown,
            source,
            target,
        })
    }

    /// The registry `host`, connected once.
    async fn registry(&self, host: &str) -> Result<Arc<RegistryPlace>, ImageError> {
        let mut registries = self.registries.lock().await;
        if let Some(r) = registries.get(host) {
            return Ok(Arc::clone(r));
        }
        let place = Arc::new(RegistryPlace::new(self.connector.connect(host).await?));
        registries.insert(host.to_string(), Arc::clone(&place));
        Ok(place)
    }

    /// [`Self::copy_one`] once per destination name in this sync: a chart sharing an image
    /// with another waits for the one copy; another image (or a chart) named the same fails.
    async fn make_present(
        &self,
        w: &Wanted,
        source: &dyn Source,
        sink: Option<&dyn Sink>,
        job: &Job,
        options: &SyncOptions,
    ) -> ImageOutcome {
        let done = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(w.target.clone()).or_insert_with(|| Slot {
                owner: w.image.clone(),
                done: Arc::new(tokio::sync::OnceCell::new()),
            });
            if slot.owner != w.image {
                return ImageOutcome::Failed(Arc::new(ImageError::Clash {
                    target: w.target.to_string(),
                    other: slot.owner.clone(),
                }));
            }
            Arc::clone(&slot.done)
        };
        done.get_or_init(|| async {
            match self.copy_one(w, source, sink, job, options).await {
                Ok(outcome) => outcome,
                Err(e) => ImageOutcome::Failed(Arc::new(e)),
            }
        })
        .await
        .clone()
    }

    /// Makes one image present at `sink` unless it is there (then only its referrers may be
    /// new); in a dry run, says what would happen. The image is read from the chart's own
    /// place when that is a layout, an archive or the cache holding it under its name (inside
    /// an air gap nothing else is reachable), else from its registry.
    async fn copy_one(
        &self,
        w: &Wanted,
        chart_source: &dyn Source,
        sink: Option<&dyn Sink>,
        job: &Job,
        options: &SyncOptions,
    ) -> Result<ImageOutcome, ImageError> {
        let held = match chart_source.registry() {
            // A registry answers for its own host only.
            Some(_) => None,
            None => chart_source.digest(&w.source).await.ok().flatten(),
        };
        let registry;
        let (src, want): (&dyn Source, Digest) = match held {
            Some(digest) => (chart_source, digest),
            None => {
                registry = self.registry(w.source.host()).await?;
                let want = match w.source.digest() {
                    Some(d) => d.clone(),
                    None => registry
                        .digest(&w.source)
                        .await
                        .map_err(ImageError::Copy)?
                        .ok_or_else(|| ImageError::NotFound(w.source.host().to_string()))?,
                };
                (registry.as_ref(), want)
            }
        };
        let Some(sink) = sink else {
            return Ok(ImageOutcome::Planned);
        };
        let have = sink.digest_of(&w.target).await.map_err(ImageError::Copy)?;
        if have.as_ref() == Some(&want) {
            if options.dry_run || !options.referrers.enabled {
                return Ok(ImageOutcome::UpToDate);
            }
            let c = copy_referrers_of(src, &w.source, sink, &w.target, &want, job)
                .await
                .map_err(ImageError::Copy)?;
            return Ok(match c.referrers {
                0 => ImageOutcome::UpToDate,
                _ => ImageOutcome::Copied,
            });
        }
        if let Some(have) = &have
            && job.holds_selection(src, &w.source, have).await
        {
            return Ok(ImageOutcome::UpToDate);
        }
        if options.dry_run {
            return Ok(ImageOutcome::Planned);
        }
        let copied = copy(src, &w.source, sink, &w.target, job)
            .await
            .map_err(ImageError::Copy)?;
        if w.target.tag().is_none() {
            // Named by digest only: a layout still lists it, under that name.
            sink.name_artifact(&w.target, &copied.digest)
                .await
                .map_err(ImageError::Copy)?;
        }
        Ok(ImageOutcome::Copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_line_by_line() {
        let text = "# images the chart builds at run time\n\nnginx:1.25\n  ghcr.io/x/y@sha256:0123456789012345678901234567890123456789012345678901234567890123 # pinned\nnginx:1.25\n";
        let listed = parse_list("extra.txt", text).unwrap();
        let names: Vec<(String, u32)> = listed
            .iter()
            .map(|l| (l.image.to_string(), l.line))
            .collect();
        assert_eq!(
            names,
            [
                ("docker.io/library/nginx:1.25".to_string(), 3),
                (
                    "ghcr.io/x/y@sha256:0123456789012345678901234567890123456789012345678901234567890123"
                        .to_string(),
                    4
                ),
            ]
        );
        let err = parse_list("extra.txt", "ok:1\nNot A Ref\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().starts_with("extra.txt:2: \"Not A Ref\""),
            "{err}"
        );
    }

    #[test]
    fn images_are_named_as_charts_are() {
        let connector = Connector {
            transport: Transport::default(),
            credentials: crate::credentials::Store::at("/nonexistent/config.json"),
            given: Vec::new(),
        };
        let plain = Images::new(
            connector,
            Vec::new(),
            Destination {
                base: Some("mirror.example.com/vendor".into()),
                scoped: false,
            },
        );
        let named = |text: &str| {
            let image = ImageRef::parse(text).unwrap();
            match plain.name(&image) {
                Ok(w) => (w.source.to_string(), w.target.to_string()),
                Err(e) => panic!("{text}: {e}"),
            }
        };
        assert_eq!(
            named("nginx:1.25"),
            (
                "docker.io/library/nginx:1.25".into(),
                "mirror.example.com/vendor/nginx:1.25".into()
            )
        );
        let pinned = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
        // Read by digest, written under the tag.
        assert_eq!(
            named(&format!("quay.io/team/app:2.0@{pinned}")),
            (
                format!("quay.io/team/app:2.0@{pinned}"),
                "mirror.example.com/vendor/app:2.0".into()
            )
        );
        assert_eq!(
            named(&format!("quay.io/team/app@{pinned}")).1,
            format!("mirror.example.com/vendor/app@{pinned}")
        );
    }
}
