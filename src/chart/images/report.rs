//! The answer: each image once, in its normalised form, with every place it was found, and
//! the warnings. [`Collector`] builds it: it parses and de-duplicates what the finders bring,
//! turns invalid references into warnings, and applies lock files last (their digests win).

use std::collections::BTreeMap;
use std::fmt;

use super::from_values::Note;
use super::lock::{Locked, PlatformDigest};
use super::reference::ImageRef;

/// Where an image was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Values,
    Template,
    Annotation,
    Lock,
}

/// One place an image was found: a file of the chart (or one of the user's values files, or
/// `--set`), and the key path in it (for templates, the values the line printed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Found {
    pub file: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        match (self.source, self.path.is_empty()) {
            (_, true) => {}
            (Source::Template, false) => write!(f, " ({})", self.path)?,
            _ => write!(f, ": {}", self.path)?,
        }
        match self.note {
            Some(Note::TagFromAppVersion) => f.write_str(" (tag from appVersion)"),
            Some(Note::LatestImplied) => f.write_str(" (no tag: latest)"),
            Some(Note::NotRendered) => f.write_str(" (not rendered with these values)"),
            None => Ok(()),
        }
    }
}

/// An image the chart runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Image {
    pub image: ImageRef,
    /// The digests an `Images.lock` pins for it, per platform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<PlatformDigest>,
    pub found: Vec<Found>,
}

/// Something the user should know: an invalid reference, a template line that cannot be
/// resolved without rendering, a subchart that could not be read or is not there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<u32>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        match self.lines.as_slice() {
            [] => {}
            [l] => write!(f, ":{l}")?,
            many => {
                let list: Vec<String> = many.iter().map(u32::to_string).collect();
                write!(f, ": lines {}", list.join(", "))?;
            }
        }
        if let Some(p) = &self.path {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every image and every warning, sorted.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImageReport {
    pub images: Vec<Image>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Default)]
struct Entry {
    digests: Vec<PlatformDigest>,
    found: Vec<Found>,
}

/// Gathers images from every finder.
#[derive(Debug, Default)]
pub struct Collector {
    images: BTreeMap<ImageRef, Entry>,
    locks: Vec<(String, Locked)>,
    warnings: Vec<Warning>,
}

impl Collector {
    pub fn warn(
        &mut self,
        file: &str,
        path: Option<String>,
        lines: Vec<u32>,
        message: impl Into<String>,
    ) {
        let w = Warning {
            file: file.to_string(),
            path,
            lines,
            message: message.into(),
        };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Adds an image found at `places` (the first is where it is written; the others hold
    /// values it used). An invalid reference becomes a warning naming the first place.
    pub fn add(&mut self, text: &str, mut places: Vec<Found>) {
        let Some(first) = places.first_mut() else {
            return;
        };
        match ImageRef::parse(text) {
            Ok(r) => {
                if first.note.is_none() && r.latest_implied() {
                    first.note = Some(Note::LatestImplied);
                }
                self.images.entry(r).or_default().found.extend(places);
            }
            Err(e) => {
                let (file, path, lines) = (
                    first.file.clone(),
                    first.path.clone(),
                    first.line.into_iter().collect(),
                );
                let path = (!path.is_empty() && first.source != Source::Template).then_some(path);
                self.warn(
                    &file,
                    path,
                    lines,
                    format!("{:?} is not a valid image reference: {e}", text),
                );
            }
        }
    }

    /// Keeps a lock file's entries for [`Self::finish`].
    pub fn lock(&mut self, file: &str, locked: Locked) {
        self.locks.push((file.to_string(), locked));
    }

    pub fn finish(mut self) -> ImageReport {
        self.merge_digest_only();
        for (file, locked) in std::mem::take(&mut self.locks) {
            self.apply_lock(&file, locked);
        }
        let images = self
            .images
            .into_iter()
            .map(|(image, mut e)| {
                // By source; templates by file and line; the rest as found (the place an
                // image is written before the places that changed it).
                e.found.sort_by_cached_key(|f| {
                    let at = (f.source == Source::Template)
                        .then(|| (depth(&f.file), f.file.clone(), f.line, f.path.clone()));
                    (f.source, at)
                });
                let mut seen = std::collections::HashSet::new();
                e.found.retain(|f| seen.insert(f.clone()));
                Image {
                    image,
                    digests: e.digests,
                    found: e.found,
                }
            })
            .collect();
        ImageReport {
            images,
            warnings: self.warnings,
        }
    }

    /// `repo@digest` and `repo:tag@digest` are one image: the tagged form keeps both.
    fn merge_digest_only(&mut self) {
        let untagged: Vec<ImageRef> = self
            .images
            .keys()
            .filter(|r| r.tag().is_none() && r.digest().is_some())
            .cloned()
            .collect();
        for r in untagged {
            let tagged: Vec<ImageRef> = self
                .images
                .keys()
                .filter(|o| o.tag().is_some() && o.digest() == r.digest() && o.name() == r.name())
                .cloned()
                .collect();
            if tagged.len() == 1
                && let Some(e) = self.images.remove(&r)
                && let Some(t) = self.images.get_mut(&tagged[0])
            {
                t.found.extend(e.found);
            }
        }
    }

    /// A locked image's digests win over any found elsewhere for the same name and tag: one
    /// digest pins the reference to it, several (one per platform) are listed beside it.
    fn apply_lock(&mut self, file: &str, locked: Locked) {
        let place = Found {
            file: file.to_string(),
            path: locked.path(),
            line: None,
            source: Source::Lock,
            note: None,
        };
        let lr = match ImageRef::parse(&locked.text) {
            Ok(r) => r,
            Err(e) => {
                self.warn(
                    file,
                    Some(locked.path()),
                    Vec::new(),
                    format!("{:?} is not a valid image reference: {e}", locked.text),
                );
                return;
            }
        };
        let same = |r: &ImageRef| {
            r.name() == lr.name()
                && (r.tag().unwrap_or("latest") == lr.tag().unwrap_or("latest")
                    || lr.tag().is_none() && r.digest() == lr.digest())
        };
        let matched: Vec<ImageRef> = self.images.keys().filter(|r| same(r)).cloned().collect();
        let lock_digests: Vec<&str> = locked.digests.iter().map(|d| d.digest.as_str()).collect();
        let mut entry = Entry::default();
        for r in &matched {
            if let (Some(d), false) = (r.digest(), lock_digests.is_empty())
                && !lock_digests.contains(&d)
            {
                let e = &self.images[r];
                let at = e
                    .found
                    .first()
                    .map_or_else(String::new, ToString::to_string);
                self.warn(
                    file,
                    Some(locked.path()),
                    Vec::new(),
                    format!(
                        "pins {}, but {at} says {d}; the lock wins",
                        lock_digests.join(", ")
                    ),
                );
            }
            if let Some(e) = self.images.remove(r) {
                entry.found.extend(e.found);
            }
        }
        let pinned = match lock_digests.as_slice() {
            [one] => lr.with_digest(Some((*one).to_string())),
            [] => match matched.as_slice() {
                [only] => only.clone(),
                _ => lr.clone(),
            },
            _ => lr.with_digest(None),
        };
        entry.found.push(place);
        entry.digests = locked.digests;
        let slot = self.images.entry(pinned).or_default();
        slot.found.extend(entry.found);
        if !entry.digests.is_empty() {
            slot.digests = entry.digests;
        }
    }
}

/// How deep in subcharts a file is (`charts/x/charts/y/values.yaml` is 2).
fn depth(file: &str) -> usize {
    file.matches("charts/").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn at(file: &str, path: &str, source: Source) -> Vec<Found> {
        vec![Found {
            file: file.into(),
            path: path.into(),
            line: None,
            source,
            note: None,
        }]
    }

    #[test]
    fn same_image_written_differently_is_one() {
        let mut c = Collector::default();
        c.add("nginx:1.25", at("values.yaml", "image", Source::Values));
        c.add(
            "docker.io/library/nginx:1.25",
            at("templates/a.yaml", "", Source::Template),
        );
        c.add(
            "index.docker.io/nginx:1.25",
            at("Chart.yaml", "annotations", Source::Annotation),
        );
        c.add("busybox", at("values.yaml", "init.image", Source::Values));
        c.add("Not/Valid", at("values.yaml", "bad.image", Source::Values));
        let r = c.finish();
        let shown: Vec<String> = r.images.iter().map(|i| i.image.to_string()).collect();
        assert_eq!(
            shown,
            [
                "docker.io/library/busybox:latest",
                "docker.io/library/nginx:1.25"
            ]
        );
        assert_eq!(r.images[1].found.len(), 3);
        assert_eq!(r.images[0].found[0].note, Some(Note::LatestImplied));
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(
            r.warnings[0].to_string(),
            "values.yaml: bad.image: \"Not/Valid\" is not a valid image reference: bad repository path component \"Not\" (lowercase letters, digits and single . _ __ - separators)"
        );
    }

    #[test]
    fn digest_only_joins_the_tagged_form() {
        let mut c = Collector::default();
        c.add(
            &format!("a/b:1@{A}"),
            at("values.yaml", "x", Source::Values),
        );
        c.add(
            &format!("a/b@{A}"),
            at("templates/t.yaml", "", Source::Template),
        );
        let r = c.finish();
        assert_eq!(r.images.len(), 1);
        assert_eq!(r.images[0].found.len(), 2);
    }

    #[test]
    fn lock_digests_win() {
        let mut c = Collector::default();
        c.add(
            &format!("a/b:1@{B}"),
            at("values.yaml", "image", Source::Values),
        );
        c.lock(
            "Images.lock",
            Locked {
                index: 0,
                text: "docker.io/a/b:1".into(),
                digests: vec![PlatformDigest {
                    digest: A.into(),
                    platform: Some("linux/amd64".into()),
                }],
            },
        );
        c.add("c/d:2", at("values.yaml", "other", Source::Values));
        c.lock(
            "Images.lock",
            Locked {
                index: 1,
                text: "c/d:2".into(),
                digests: vec![
                    PlatformDigest {
                        digest: A.into(),
                        platform: None,
                    },
                    PlatformDigest {
                        digest: B.into(),
                        platform: None,
                    },
                ],
            },
        );
        let r = c.finish();
        let shown: Vec<String> = r.images.iter().map(|i| i.image.to_string()).collect();
        assert_eq!(
            shown,
            [
                format!("docker.io/a/b:1@{A}"),
                "docker.io/c/d:2".to_string()
            ]
        );
        assert_eq!(r.images[0].found.len(), 2);
        assert_eq!(r.images[1].digests.len(), 2);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].message.contains("the lock wins"));
    }
}
