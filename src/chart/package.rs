//! Packaging a chart directory into a `.tgz`, as `helm package` does, but reproducibly.
//!
//! Which files go in follows Helm's directory loader: `.helmignore` with Helm's own rules plus
//! the default `templates/.?*`, symlinks followed wherever they point (the archive holds the
//! file's contents, not the link; a link leaving the chart is packaged as Helm does, with a
//! warning saying so), anything that is not a regular file refused, 5 MiB per file, a UTF-8 BOM
//! stripped.
//!
//! The bytes are ours to fix: entries sit under `<name>/` with `Chart.yaml` first and the rest in
//! byte order of their paths, no directory entries, mode 0644, uid/gid 0, empty owner names, one
//! mtime for all (`SOURCE_DATE_EPOCH` or 0), and a gzip header without a timestamp. The same
//! files therefore give the same digest on any machine, whatever their mtimes or owners.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};

use super::archive::{self, MAX_FILE, MAX_UNPACKED};
use super::ignore::{IgnoreError, IgnoreRules};
use super::metadata::{Metadata, MetadataError, Requirements};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{0}: Chart.yaml file is missing")]
    NoChartYaml(PathBuf),
    #[error(
        "{0}: the rules exclude Chart.yaml, so the chart would have none (Chart.yaml file is missing)"
    )]
    ChartYamlIgnored(PathBuf),
    #[error("{path}: {source}")]
    Metadata {
        path: PathBuf,
        source: MetadataError,
    },
    #[error("{path}: {source}")]
    Ignore { path: PathBuf, source: IgnoreError },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: symlink loop")]
    LinkLoop(PathBuf),
    #[error("{0}: cannot package an irregular file (device, socket or fifo)")]
    Irregular(PathBuf),
    #[error("{path}: symlink to {target}, which is an irregular file (device, socket or fifo)")]
    IrregularTarget { path: PathBuf, target: PathBuf },
    #[error("{path}: file is {size} bytes, over Helm's limit of 5 MiB per file")]
    FileTooLarge { path: PathBuf, size: u64 },
    #[error("{0}: the chart is larger than Helm's limit of 100 MiB")]
    TooLarge(PathBuf),
    #[error("{0}: subchart directory has no Chart.yaml")]
    SubchartWithoutChartYaml(PathBuf),
    #[error("{path}: invalid subchart archive: {source}")]
    Subchart {
        path: PathBuf,
        source: archive::ArchiveError,
    },
}

/// What packaging found out besides the bytes.
#[derive(Debug)]
pub struct Packaged {
    pub metadata: Metadata,
    /// Things a user should hear about that do not stop the save (missing dependencies).
    pub warnings: Vec<String>,
}

/// A file selected for the archive: its path relative to the chart root and on disk.
struct Selected {
    rel: String,
    path: PathBuf,
}

/// Packages the chart at `dir` into `out` as a gzip'd tar. `mtime` is written for every entry.
pub fn package_dir(dir: &Path, out: impl Write, mtime: u64) -> Result<Packaged, PackageError> {
    let chart_yaml = dir.join("Chart.yaml");
    let raw = match fs::read(&chart_yaml) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PackageError::NoChartYaml(dir.to_path_buf()));
        }
        Err(source) => {
            return Err(PackageError::Io {
                path: chart_yaml,
                source,
            });
        }
    };
    let metadata = Metadata::from_yaml(&raw).map_err(|source| PackageError::Metadata {
        path: chart_yaml.clone(),
        source,
    })?;

    let ignore_path = dir.join(".helmignore");
    let rules = match fs::read_to_string(&ignore_path) {
        Ok(text) => IgnoreRules::parse(&text).map_err(|source| PackageError::Ignore {
            path: ignore_path.clone(),
            source,
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(source) => {
            return Err(PackageError::Io {
                path: ignore_path,
                source,
            });
        }
    }
    .with_defaults();

    let root = fs::canonicalize(dir).map_err(io_err(dir))?;
    let mut walk = Walk {
        root: &root,
        rules: &rules,
        files: Vec::new(),
        visiting: HashSet::new(),
        warnings: Vec::new(),
    };
    walk.collect(&root, "")?;
    let Walk {
        mut files,
        warnings: mut link_warnings,
        ..
    } = walk;
    if !files.iter().any(|f| f.rel == "Chart.yaml") {
        return Err(PackageError::ChartYamlIgnored(ignore_path));
    }
    // Chart.yaml first, then byte order of the relative paths.
    files.sort_by(|a, b| {
        (a.rel != "Chart.yaml", a.rel.as_bytes()).cmp(&(b.rel != "Chart.yaml", b.rel.as_bytes()))
    });

    let mut warnings = check_subcharts(dir, &metadata, &files)?;
    link_warnings.append(&mut warnings);
    let warnings = link_warnings;

    let gz = GzBuilder::new().write(out, Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut total: u64 = 0;
    for file in &files {
        let mut data = fs::read(&file.path).map_err(io_err(&file.path))?;
        if data.starts_with(b"\xEF\xBB\xBF") {
            data.drain(..3);
        }
        total += data.len() as u64;
        if total > MAX_UNPACKED {
            return Err(PackageError::TooLarge(dir.to_path_buf()));
        }
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let name = format!("{}/{}", metadata.name, file.rel);
        tar.append_data(&mut header, &name, data.as_slice())
            .map_err(io_err(&file.path))?;
    }
    let gz = tar.into_inner().map_err(io_err(dir))?;
    gz.finish().map_err(io_err(dir))?;
    Ok(Packaged { metadata, warnings })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory walk: what Helm's loader would load, and what the user should hear about.
struct Walk<'a> {
    /// The chart directory, canonical.
    root: &'a Path,
    rules: &'a IgnoreRules,
    files: Vec<Selected>,
    /// Canonical directories being walked, to refuse a symlink loop.
    visiting: HashSet<PathBuf>,
    warnings: Vec<String>,
}

impl Walk<'_> {
    /// Walks `dir` (canonical), whose path relative to the chart root is `rel_dir`.
    fn collect(&mut self, dir: &Path, rel_dir: &str) -> Result<(), PackageError> {
        if !self.visiting.insert(dir.to_path_buf()) {
            return Err(PackageError::LinkLoop(dir.to_path_buf()));
        }
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let link = entry.path();
            let mut path = link.clone();
            let mut file_type = entry.file_type().map_err(io_err(&link))?;
            let mut outside = false;
            if file_type.is_symlink() {
                // Like Helm's sympath walk: follow it, wherever it leads.
                let resolved = fs::canonicalize(&link).map_err(io_err(&link))?;
                file_type = fs::metadata(&resolved).map_err(io_err(&link))?.file_type();
                outside = !resolved.starts_with(self.root);
                path = resolved;
            }
            if file_type.is_dir() {
                if !self.rules.ignored(&rel, true) {
                    self.warn_outside(outside, &link, &path);
                    self.collect(&path, &rel)?;
                }
            } else if self.rules.ignored(&rel, false) {
                continue;
            } else if file_type.is_file() {
                let size = fs::metadata(&path).map_err(io_err(&path))?.len();
                if size > MAX_FILE {
                    return Err(PackageError::FileTooLarge { path: link, size });
                }
                self.warn_outside(outside, &link, &path);
                self.files.push(Selected { rel, path });
            } else if link != path {
                return Err(PackageError::IrregularTarget {
                    path: link,
                    target: path,
                });
            } else {
                return Err(PackageError::Irregular(path));
            }
        }
        self.visiting.remove(dir);
        Ok(())
    }

    fn warn_outside(&mut self, outside: bool, link: &Path, target: &Path) {
        if outside {
            self.warnings.push(format!(
                "{} is a symlink to {}, outside the chart: its contents are packaged, as helm package does",
                link.display(),
                target.display()
            ));
        }
    }
}

/// Validates the subcharts under `charts/` and lists dependencies that are declared but absent.
fn check_subcharts(
    dir: &Path,
    metadata: &Metadata,
    files: &[Selected],
) -> Result<Vec<String>, PackageError> {
    let mut present = HashSet::new();
    let mut subdirs_with_chart_yaml = HashSet::new();
    let mut subdirs = HashSet::new();
    for file in files {
        let Some(rest) = file.rel.strip_prefix("charts/") else {
            continue;
        };
        match rest.split_once('/') {
            Some((sub, inner)) if !sub.starts_with(['_', '.']) => {
                subdirs.insert(sub.to_string());
                if inner == "Chart.yaml" {
                    let raw = fs::read(&file.path).map_err(io_err(&file.path))?;
                    let md =
                        Metadata::from_yaml(&raw).map_err(|source| PackageError::Metadata {
                            path: file.path.clone(),
                            source,
                        })?;
                    subdirs_with_chart_yaml.insert(sub.to_string());
                    present.insert(md.name);
                }
            }
            None if rest.ends_with(".tgz") && !rest.starts_with(['_', '.']) => {
                let f = fs::File::open(&file.path).map_err(io_err(&file.path))?;
                let (md, _) = archive::inspect(io::BufReader::new(f)).map_err(|source| {
                    PackageError::Subchart {
                        path: file.path.clone(),
                        source,
                    }
                })?;
                present.insert(md.name);
            }
            _ => {}
        }
    }
    if let Some(sub) = subdirs.difference(&subdirs_with_chart_yaml).min() {
        return Err(PackageError::SubchartWithoutChartYaml(
            dir.join("charts").join(sub),
        ));
    }

    let mut declared = metadata.dependencies.clone();
    if declared.is_empty() {
        let req_path = dir.join("requirements.yaml");
        if let Ok(raw) = fs::read(&req_path)
            && let Ok(text) = std::str::from_utf8(&raw)
            && let Ok(req) = crate::yaml::from_small::<Requirements>(text)
        {
            declared = req.dependencies;
        }
    }
    Ok(declared
        .iter()
        .filter(|d| !present.contains(&d.name))
        .map(|d| {
            format!(
                "dependency {:?} is declared but not found in {}/charts (run 'helm dependency update' to fetch it)",
                d.name,
                dir.display()
            )
        })
        .collect())
}
