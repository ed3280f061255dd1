//! A chart and its subcharts read into memory, keeping only the files that can name an image:
//! `Chart.yaml`, `values.yaml`, `requirements.yaml`, `Images.lock`, `templates/**`, and the
//! same inside `charts/<dir>/` and `charts/*.tgz` (read through [`archive::walk`], so every
//! archive, nested ones included, is held to the same checks and limits).
//!
//! A chart directory is packaged in memory first, exactly as `chart save` would package it
//! (`.helmignore`, symlinks, limits), so what is read is what would be saved.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::chart::archive::{self, ArchiveError, EntryKind};
use crate::chart::metadata::{Dependency, Metadata, Requirements};
use crate::chart::package::{self, PackageError};

/// How deep `charts/*.tgz` may nest inside each other.
pub const MAX_ARCHIVE_DEPTH: usize = 8;
/// How many subchart archives one chart may hold in all.
pub const MAX_ARCHIVES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{path}: {source}")]
    Subchart { path: String, source: ArchiveError },
    #[error("{0}: subcharts nest deeper than {MAX_ARCHIVE_DEPTH} archives")]
    TooDeep(String),
    #[error("the chart holds more than {MAX_ARCHIVES} subchart archives")]
    TooMany,
}

/// One chart of the tree, with the files that matter here.
#[derive(Debug, Clone)]
pub struct ChartFiles {
    /// Where it sits in the top chart: `""` for the top, `charts/redis/` for a subchart.
    pub dir: String,
    pub metadata: Metadata,
    /// `values.yaml`, when present.
    pub values: Option<Vec<u8>>,
    /// The lock file's name and content, when present.
    pub lock: Option<(String, Vec<u8>)>,
    /// Paths relative to the chart (`templates/deployment.yaml`) and contents.
    pub templates: Vec<(String, Vec<u8>)>,
    /// The dependencies Chart.yaml (or, for apiVersion v1, requirements.yaml) declares.
    pub dependencies: Vec<Dependency>,
    pub subcharts: Vec<ChartFiles>,
    /// Subcharts that could not be read, with why (the rest of the chart still is).
    pub problems: Vec<(String, String)>,
}

/// A chart read for [`super::chart_images`].
#[derive(Debug, Clone)]
pub struct LoadedChart {
    pub root: ChartFiles,
}

impl LoadedChart {
    /// Reads a chart archive (`.tgz`), its subcharts included.
    pub fn from_archive<R: Read>(reader: R) -> Result<Self, LoadError> {
        let mut archives = 0;
        let root = load_archive(reader, None, 0, &mut archives)?;
        Ok(LoadedChart { root })
    }

    /// Reads a chart directory, as `chart save` would package it.
    pub fn from_dir(dir: &Path) -> Result<Self, LoadError> {
        let mut packed = Vec::new();
        package::package_dir(dir, &mut packed, 0)?;
        Self::from_archive(packed.as_slice())
    }
}

/// Whether a file (relative to some chart) can matter here.
fn wanted(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    matches!(
        base,
        "Chart.yaml" | "values.yaml" | "requirements.yaml" | "Images.lock" | "images.lock"
    ) || path.starts_with("templates/")
        || path.contains("/templates/")
        || (path.starts_with("charts/") && base.ends_with(".tgz"))
}

/// Reads an archive; a subchart's (`parent` is the directory of the chart holding it) is shown
/// as `<parent>charts/<its top folder>/`, as Helm's loader names it.
fn load_archive<R: Read>(
    reader: R,
    parent: Option<&str>,
    depth: usize,
    archives: &mut usize,
) -> Result<ChartFiles, LoadError> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let top = archive::walk(reader, |path, kind, data| {
        if *kind == EntryKind::File && wanted(path) {
            let mut buf = Vec::new();
            data.read_to_end(&mut buf)
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            // A repeated entry replaces the earlier one, as in Helm's loader.
            files.insert(path.to_string(), buf);
        }
        Ok(())
    })?;
    let raw = files.get("Chart.yaml").ok_or(ArchiveError::NoChartYaml)?;
    let metadata = Metadata::from_yaml(raw).map_err(ArchiveError::Metadata)?;
    let dir = parent.map_or_else(String::new, |p| format!("{p}charts/{top}/"));
    build(&mut files, "", &dir, metadata, depth, archives)
}

/// The chart whose files sit under `prefix` in `files`, shown as `dir`.
fn build(
    files: &mut BTreeMap<String, Vec<u8>>,
    prefix: &str,
    dir: &str,
    metadata: Metadata,
    depth: usize,
    archives: &mut usize,
) -> Result<ChartFiles, LoadError> {
    // Each file is moved out of the map: it belongs to this chart only.
    let mut take = |name: &str| files.remove(&format!("{prefix}{name}"));
    let lock = super::lock::FILES
        .iter()
        .find_map(|name| Some((name.to_string(), take(name)?)));
    let values = take("values.yaml");
    let requirements = take("requirements.yaml");
    let mut dependencies = metadata.dependencies.clone();
    if dependencies.is_empty()
        && let Some(raw) = requirements
        && let Ok(text) = std::str::from_utf8(&raw)
        && let Ok(req) = crate::yaml::from_small::<Requirements>(text)
    {
        dependencies = req.dependencies;
    }
    let templates_prefix = format!("{prefix}templates/");
    let names: Vec<String> = files
        .range(templates_prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&templates_prefix))
        .map(|(k, _)| k.clone())
        .collect();
    let templates = names
        .into_iter()
        .filter_map(|k| {
            let v = files.remove(&k)?;
            Some((k[prefix.len()..].to_string(), v))
        })
        .collect();
    let mut chart = ChartFiles {
        dir: dir.to_string(),
        metadata,
        values,
        lock,
        templates,
        dependencies,
        subcharts: Vec::new(),
        problems: Vec::new(),
    };

    // Subcharts: directories with a Chart.yaml, and archives, directly under charts/.
    let charts_prefix = format!("{prefix}charts/");
    let mut subdirs: Vec<String> = Vec::new();
    let mut tgzs: Vec<String> = Vec::new();
    for key in files
        .range(charts_prefix.clone()..)
        .map(|(k, _)| k)
        .take_while(|k| k.starts_with(&charts_prefix))
    {
        let rest = &key[charts_prefix.len()..];
        if rest.starts_with(['_', '.']) {
            continue;
        }
        match rest.split_once('/') {
            Some((sub, "Chart.yaml")) => subdirs.push(sub.to_string()),
            None if rest.ends_with(".tgz") => tgzs.push(key.clone()),
            _ => {}
        }
    }
    for sub in subdirs {
        let sub_prefix = format!("{charts_prefix}{sub}/");
        let shown = format!("{dir}charts/{sub}/");
        let Some(raw) = files.remove(&format!("{sub_prefix}Chart.yaml")) else {
            continue;
        };
        match Metadata::from_yaml(&raw) {
            Ok(md) => chart
                .subcharts
                .push(build(files, &sub_prefix, &shown, md, depth, archives)?),
            Err(e) => chart
                .problems
                .push((format!("{shown}Chart.yaml"), e.to_string())),
        }
    }
    for key in tgzs {
        let shown_file = format!("{dir}{}", &key[prefix.len()..]);
        if depth + 1 > MAX_ARCHIVE_DEPTH {
            return Err(LoadError::TooDeep(shown_file));
        }
        *archives += 1;
        if *archives > MAX_ARCHIVES {
            return Err(LoadError::TooMany);
        }
        let Some(bytes) = files.remove(&key) else {
            continue;
        };
        match load_archive(bytes.as_slice(), Some(dir), depth + 1, archives) {
            Ok(sub) => chart.subcharts.push(sub),
            Err(LoadError::Archive(e)) => chart.problems.push((shown_file, e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    pub(crate) fn tgz(top: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, format!("{top}/{path}"), *data)
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn subcharts_in_dirs_and_archives() {
        let inner = tgz(
            "redis",
            &[
                ("Chart.yaml", b"name: redis\nversion: 1.0.0\n"),
                ("values.yaml", b"image: {repository: redis}\n"),
            ],
        );
        let outer = tgz(
            "app",
            &[
                ("Chart.yaml", b"apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies: [{name: redis, version: 1.0.0}]\n"),
                ("values.yaml", b"a: 1\n"),
                ("README.md", b"# not kept\n"),
                ("templates/deploy.yaml", b"image: x\n"),
                ("charts/redis-1.0.0.tgz", &inner),
                ("charts/db/Chart.yaml", b"name: db\nversion: 2.0.0\n"),
                ("charts/db/templates/db.yaml", b"image: y\n"),
                ("charts/_ignored/Chart.yaml", b"name: x\nversion: 1.0.0\n"),
                ("charts/broken-1.0.0.tgz", b"not gzip"),
            ],
        );
        let chart = LoadedChart::from_archive(outer.as_slice()).unwrap().root;
        assert_eq!(chart.metadata.name, "app");
        assert_eq!(chart.templates.len(), 1);
        assert_eq!(chart.dependencies.len(), 1);
        let dirs: Vec<_> = chart.subcharts.iter().map(|s| s.dir.as_str()).collect();
        assert_eq!(dirs, ["charts/db/", "charts/redis/"]);
        assert_eq!(chart.subcharts[0].templates[0].0, "templates/db.yaml");
        assert!(chart.subcharts[1].values.is_some());
        assert_eq!(chart.problems.len(), 1);
        assert_eq!(chart.problems[0].0, "charts/broken-1.0.0.tgz");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut inner = tgz("c0", &[("Chart.yaml", b"name: c0\nversion: 1.0.0\n")]);
        for i in 1..=MAX_ARCHIVE_DEPTH + 1 {
            let chart_yaml = format!("name: c{i}\nversion: 1.0.0\n");
            inner = tgz(
                &format!("c{i}"),
                &[
                    ("Chart.yaml", chart_yaml.as_bytes()),
                    ("charts/sub.tgz", &inner),
                ],
            );
        }
        let err = LoadedChart::from_archive(inner.as_slice()).unwrap_err();
        assert!(err.to_string().contains("nest deeper"), "{err}");
    }
}
