//! The images a chart will run, found without a cluster and without Helm.
//!
//! Four sources, all read, and their findings merged per normalised reference
//! (`docker.io/library/nginx:1.25`, see [`reference`]):
//!
//! - the Chart.yaml annotations `helm.sh/images`, `images` and `artifacthub.io/images`
//!   ([`annotations`]);
//! - the values (`values.yaml`, coalesced with the user's `--values` files and `--set`s as
//!   Helm does), in the shapes charts write images in ([`from_values`]);
//! - the templates, rendered as far as they can be known ([`from_templates`]): literal
//!   references, and references built from values, helpers (`include`) and conditions; a line
//!   that needs the release or the cluster is a warning naming the file and line;
//! - `Images.lock`, whose digests win ([`lock`]).
//!
//! Subcharts (`charts/*.tgz` and `charts/<dir>/`) count as Helm counts them: their values
//! are scoped under their name (or alias) with `global` shared, a dependency whose
//! `condition` or `tags` turn it off is left out (with a warning saying so), and one declared
//! but missing from `charts/` is a warning.
//!
//! The entry points are [`LoadedChart`] (from an archive or a directory) and
//! [`chart_images`]; nothing here touches the network or the cache. A caller holding a cached
//! chart (as `sync --images` will) reads it from its content blob:
//!
//! ```no_run
//! # fn demo(store: &chartcache::store::Store, entry: &chartcache::store::RefEntry) -> anyhow::Result<()> {
//! use chartcache::chart::images::{LoadedChart, Overrides, chart_images};
//!
//! let blob = std::io::BufReader::new(store.open_blob(&entry.content)?);
//! let chart = LoadedChart::from_archive(blob)?;
//! let mut overrides = Overrides::default();
//! overrides.add_set("global.imageRegistry=mirror.local:5000");
//! let report = chart_images(&chart, &overrides)?;
//! for image in &report.images {
//!     // `image.image` is normalised: registry(), repository(), tag(), digest(); its Display is
//!     // the full reference. `image.digests` are an Images.lock's per-platform digests, and
//!     // `image.found` says where it was found (file, key path, line, source, note).
//!     println!("{} ({} places)", image.image, image.found.len());
//! }
//! for warning in &report.warnings {
//!     eprintln!("{warning}");
//! }
//! # Ok(())
//! # }
//! ```

pub mod annotations;
pub mod from_templates;
pub mod from_values;
pub mod load;
pub mod lock;
pub mod reference;
pub mod report;
pub mod setvalues;
pub mod template;
pub mod values;

use crate::chart::metadata::Dependency;
pub use from_values::Note;
pub use load::{ChartFiles, LoadError, LoadedChart};
pub use lock::PlatformDigest;
pub use reference::{ImageRef, ImageRefError};
pub use report::{Found, Image, ImageReport, Source, Warning};
pub use setvalues::SetError;

use report::Collector;
use template::eval::Env;
use values::{Node, Origins, Value};

/// Why no report could be made. Problems inside the chart that leave the rest readable (a
/// broken subchart, an invalid reference, a template that cannot be followed) are warnings in
/// the report instead.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A values file (the chart's or the user's) that is not a YAML map.
    #[error("{file}: {message}")]
    Values { file: String, message: String },
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("cannot start a thread to read the chart: {0}")]
    Thread(std::io::Error),
}

/// The user's values, applied over the chart's as `helm install` would: `--values` files in
/// order, then every `--set`, then every `--set-string`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    files: Vec<(String, String)>,
    set: Vec<String>,
    set_string: Vec<String>,
}

impl Overrides {
    /// A `--values` file: its name as it should be shown, and its text.
    pub fn add_values(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.files.push((name.into(), text.into()));
    }

    /// A `--set` argument (`a.b=c,d[0]=e`).
    pub fn add_set(&mut self, arg: impl Into<String>) {
        self.set.push(arg.into());
    }

    /// A `--set-string` argument.
    pub fn add_set_string(&mut self, arg: impl Into<String>) {
        self.set_string.push(arg.into());
    }

    /// The user's values as one tree, each node with its origin.
    fn merged(&self, origins: &mut Origins) -> Result<Node, ImagesError> {
        let mut user = Node::empty_map(0);
        for (name, text) in &self.files {
            let o = origins.add(name.clone(), 0);
            let node = Node::from_yaml(text, o).map_err(|message| ImagesError::Values {
                file: name.clone(),
                message,
            })?;
            values::merge_user(&mut user, node);
        }
        for (flag, args, strings) in [
            ("--set", &self.set, false),
            ("--set-string", &self.set_string, true),
        ] {
            if args.is_empty() {
                continue;
            }
            let o = origins.add(flag, 0);
            for arg in args {
                setvalues::parse_into(arg, strings, o, &mut user)?;
            }
        }
        Ok(user)
    }
}

/// One chart of the tree as it will be rendered: its files, the values it sees, and its names
/// from the top (`["redis"]` for the subchart `redis`).
struct Instance<'a> {
    files: &'a ChartFiles,
    values: Node,
    scope: Vec<String>,
}

/// Every image `chart` runs with `overrides`, with where each was found.
pub fn chart_images(
    chart: &LoadedChart,
    overrides: &Overrides,
) -> Result<ImageReport, ImagesError> {
    // Templates are read and rendered recursively; at their limits that takes more stack than
    // a default thread has, so the work runs on a thread with enough.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("chart-images".into())
            .stack_size(template::eval::STACK_SIZE)
            .spawn_scoped(scope, || images_of(chart, overrides))
            .map_err(ImagesError::Thread)?;
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn images_of(chart: &LoadedChart, overrides: &Overrides) -> Result<ImageReport, ImagesError> {
    let mut origins = Origins::default();
    let user = overrides.merged(&mut origins)?;
    let mut values = own_values(&chart.root, 0, &mut origins)?;
    values::coalesce(&mut values, user);
    let tags = values.get("tags").cloned();

    let mut out = Collector::default();
    let mut instances = Vec::new();
    flatten(
        &chart.root,
        values,
        Vec::new(),
        tags.as_ref(),
        &mut origins,
        &mut instances,
        &mut out,
    )?;

    let charts: Vec<&ChartFiles> = instances.iter().map(|i| i.files).collect();
    let templates = from_templates::Templates::parse(&charts);
    for (file, message) in &templates.problems {
        out.warn(file, None, Vec::new(), message.clone());
    }
    for instance in &instances {
        collect(instance, &origins, &templates, &mut out);
    }
    Ok(out.finish())
}

/// A chart's own `values.yaml` as a tree, with its origin registered.
fn own_values(
    files: &ChartFiles,
    depth: usize,
    origins: &mut Origins,
) -> Result<Node, ImagesError> {
    let file = format!("{}values.yaml", files.dir);
    let origin = origins.add(file.clone(), depth);
    let text = match &files.values {
        Some(bytes) => std::str::from_utf8(bytes).map_err(|_| ImagesError::Values {
            file: file.clone(),
            message: "not valid UTF-8".into(),
        })?,
        None => "",
    };
    Node::from_yaml(text, origin).map_err(|message| ImagesError::Values { file, message })
}

/// Lists `files` and its enabled subcharts, each with the values it sees, top first.
fn flatten<'a>(
    files: &'a ChartFiles,
    values: Node,
    scope: Vec<String>,
    tags: Option<&Node>,
    origins: &mut Origins,
    instances: &mut Vec<Instance<'a>>,
    out: &mut Collector,
) -> Result<(), ImagesError> {
    for (file, problem) in &files.problems {
        out.warn(
            file,
            None,
            Vec::new(),
            format!("{problem}; its images are not listed"),
        );
    }
    let deps = &files.dependencies;
    let mut subs = Vec::new();
    for sub in &files.subcharts {
        let matching: Vec<&Dependency> = deps
            .iter()
            .filter(|d| d.name == sub.metadata.name)
            .collect();
        let names: Vec<(String, Option<&Dependency>)> = if matching.is_empty() {
            vec![(sub.metadata.name.clone(), None)]
        } else {
            matching
                .iter()
                .map(|d| {
                    (
                        if d.alias.is_empty() {
                            d.name.clone()
                        } else {
                            d.alias.clone()
                        },
                        Some(*d),
                    )
                })
                .collect()
        };
        for (name, dep) in names {
            if let Some(d) = dep
                && let Some(why) = disabled(d, &values, tags)
            {
                out.warn(
                    &sub.dir,
                    None,
                    Vec::new(),
                    format!("not listed: the dependency {name:?} is disabled by {why}"),
                );
                continue;
            }
            let own = own_values(sub, scope.len() + 1, origins)?;
            let scoped = values::scope_for_subchart(&values, &name, own);
            let mut sub_scope = scope.clone();
            sub_scope.push(name);
            subs.push((sub, scoped, sub_scope));
        }
    }
    for d in deps {
        if files.subcharts.iter().all(|s| s.metadata.name != d.name)
            && disabled(d, &values, tags).is_none()
        {
            let declared = if files.metadata.dependencies.is_empty() {
                "requirements.yaml"
            } else {
                "Chart.yaml"
            };
            out.warn(
                &format!("{}{declared}", files.dir),
                None,
                Vec::new(),
                format!("the dependency {:?} is not in {}charts/, so its images are not listed (run helm dependency update)", d.name, files.dir),
            );
        }
    }
    instances.push(Instance {
        files,
        values,
        scope,
    });
    for (sub, scoped, sub_scope) in subs {
        flatten(sub, scoped, sub_scope, tags, origins, instances, out)?;
    }
    Ok(())
}

/// Why Helm would leave a dependency out, if it would: its first `condition` path holding a
/// boolean decides; without one, its `tags` (any true enables, all false disable).
fn disabled(d: &Dependency, values: &Node, tags: Option<&Node>) -> Option<String> {
    for path in d
        .condition
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let keys: Vec<&str> = path.split('.').collect();
        if let Some(Node {
            value: Value::Bool(b),
            ..
        }) = values.at(&keys)
        {
            return (!b).then(|| format!("its condition {path} (false)"));
        }
    }
    let tag_values: Vec<bool> = d
        .tags
        .iter()
        .filter_map(|t| match tags.and_then(|n| n.get(t)) {
            Some(Node {
                value: Value::Bool(b),
                ..
            }) => Some(*b),
            _ => None,
        })
        .collect();
    if !tag_values.is_empty() && !tag_values.contains(&true) {
        return Some(format!("its tags {} (false)", d.tags.join(", ")));
    }
    None
}

/// Everything one chart instance contributes.
fn collect(
    instance: &Instance,
    origins: &Origins,
    templates: &from_templates::Templates,
    out: &mut Collector,
) {
    let files = instance.files;
    let md = &files.metadata;
    let chart_yaml = format!("{}Chart.yaml", files.dir);

    let (listed, problems) = annotations::find(&md.annotations);
    for p in problems {
        out.warn(&chart_yaml, None, Vec::new(), p);
    }
    for l in listed {
        out.add(
            &l.text,
            vec![Found {
                file: chart_yaml.clone(),
                path: l.path(),
                line: None,
                source: Source::Annotation,
                note: None,
            }],
        );
    }

    for v in from_values::find(&instance.values, &md.app_version) {
        let place = |o: values::Origin, path: &values::KeyPath| -> (String, String) {
            (
                origins.file(o).to_string(),
                path.in_file(&instance.scope, origins.depth(o)).to_string(),
            )
        };
        let (file, path) = place(v.origin, &v.path);
        let mut found = vec![Found {
            file,
            path,
            line: None,
            source: Source::Values,
            note: v.note,
        }];
        for (p, o) in &v.others {
            let (file, path) = place(*o, p);
            found.push(Found {
                file,
                path,
                line: None,
                source: Source::Values,
                note: None,
            });
        }
        out.add(&v.text, found);
    }

    let env = Env {
        values: &instance.values,
        chart_name: &md.name,
        chart_version: &md.version,
        app_version: &md.app_version,
        defines: &templates.defines,
    };
    let scanned = from_templates::scan(templates, &templates.rendered_files(&files.dir), &env);
    for image in scanned.images {
        let file = templates.files[image.file as usize].clone();
        out.add(
            &image.text,
            vec![Found {
                file,
                path: image.values.unwrap_or_default(),
                line: Some(image.line),
                source: Source::Template,
                note: (!image.rendered).then_some(Note::NotRendered),
            }],
        );
    }
    // One warning per template file, in file name order.
    let mut unresolved: std::collections::BTreeMap<&str, (u32, Vec<u32>)> = Default::default();
    for (file, line) in scanned.unresolved {
        let shown = templates.files[file as usize].as_str();
        unresolved
            .entry(shown)
            .or_insert((file, Vec::new()))
            .1
            .push(line);
    }
    for (shown, (file, mut lines)) in unresolved {
        lines.sort_unstable();
        lines.dedup();
        let what = match lines.as_slice() {
            [one] => templates
                .source_line(file, *one)
                .map(|l| format!(" ({l})"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        out.warn(shown, None, lines, format!("an image is built by template logic that cannot be resolved without rendering{what}; it is not listed from here"));
    }
    for file in scanned.aborted {
        out.warn(&templates.files[file as usize], None, Vec::new(), "the template takes more work to follow than allowed; images it builds are not listed from here");
    }

    if let Some((name, bytes)) = &files.lock {
        let file = format!("{}{name}", files.dir);
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                let (locked, problems) = lock::parse(text);
                for p in problems {
                    out.warn(&file, None, Vec::new(), p);
                }
                for l in locked {
                    out.lock(&file, l);
                }
            }
            Err(_) => out.warn(&file, None, Vec::new(), "not valid UTF-8; ignored"),
        }
    }
}
