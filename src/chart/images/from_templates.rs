//! Images in a chart's templates: every file under `templates/` is rendered as far as it can be
//! known ([`super::template::eval`]) and each `image:` line of the output is read. A line
//! whose value depends on something unknown (the release, the cluster, `tpl`, a loop over
//! unknown data) is reported as unresolved, never guessed.

use std::collections::HashMap;

use super::load::ChartFiles;
use super::template::eval::{CapturedLine, Define, Env, FileId, Out, Renderer, UNKNOWN};
use super::template::parse::{self, Parsed};
use super::values::{KeyPath, Node, Value};

/// Every template of the charts being rendered, parsed once, with the `define`s they share.
#[derive(Default)]
pub struct Templates<'a> {
    /// Display path of each file (`charts/redis/templates/master.yaml`), by [`FileId`].
    pub files: Vec<String>,
    sources: Vec<Option<&'a str>>,
    parsed: Vec<Option<Parsed>>,
    pub defines: HashMap<String, Define>,
    /// Files that could not be read as templates, with why.
    pub problems: Vec<(String, String)>,
}

impl<'a> Templates<'a> {
    /// Parses the templates of `charts` (each once). Defines are shared between all of them
    /// as in Helm, where the one parsed last wins: files are taken deepest first (most path
    /// components), then in reverse name order, as Helm's `sortTemplates` orders them.
    pub fn parse(charts: &[&'a ChartFiles]) -> Templates<'a> {
        let mut all: Vec<(String, &'a [u8])> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chart in charts {
            if !seen.insert(chart.dir.clone()) {
                continue;
            }
            for (path, bytes) in &chart.templates {
                all.push((format!("{}{path}", chart.dir), bytes));
            }
        }
        all.sort_by(|(a, _), (b, _)| {
            let depth = |p: &str| p.matches('/').count();
            depth(b).cmp(&depth(a)).then_with(|| b.cmp(a))
        });
        let mut t = Templates::default();
        for (shown, bytes) in all {
            let id = FileId::try_from(t.files.len()).unwrap_or(FileId::MAX);
            t.files.push(shown.clone());
            let Ok(text) = std::str::from_utf8(bytes) else {
                t.problems
                    .push((shown, "not valid UTF-8; its images are not listed".into()));
                t.sources.push(None);
                t.parsed.push(None);
                continue;
            };
            match parse::parse(text) {
                Ok(parsed) => {
                    for (name, body) in &parsed.defines {
                        t.defines.insert(
                            name.clone(),
                            Define {
                                file: id,
                                body: body.clone(),
                            },
                        );
                    }
                    t.sources.push(Some(text));
                    t.parsed.push(Some(parsed));
                }
                Err(e) => {
                    t.problems.push((
                        shown,
                        format!("not a valid template ({e}); its images are not listed"),
                    ));
                    t.sources.push(None);
                    t.parsed.push(None);
                }
            }
        }
        t
    }

    /// The files of the chart shown at `dir` that Helm renders: not partials (`_*`), and not
    /// `NOTES.txt` or other text.
    pub fn rendered_files(&self, dir: &str) -> Vec<FileId> {
        let prefix = format!("{dir}templates/");
        (0..self.files.len())
            .filter(|&i| {
                let f = &self.files[i];
                let Some(rest) = f.strip_prefix(&prefix) else {
                    return false;
                };
                let base = rest.rsplit('/').next().unwrap_or(rest);
                !base.starts_with('_')
                    && [".yaml", ".yml", ".tpl", ".json"]
                        .iter()
                        .any(|e| base.ends_with(e))
                    && self.parsed[i].is_some()
            })
            .filter_map(|i| FileId::try_from(i).ok())
            .collect()
    }

    /// Line `line` (1-based) of a file, trimmed, for messages.
    pub fn source_line(&self, file: FileId, line: u32) -> Option<String> {
        let text = (*self.sources.get(usize::try_from(file).ok()?)?)?;
        let l = text
            .lines()
            .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let l = l.trim();
        Some(if l.chars().count() > 120 {
            format!("{}…", l.chars().take(120).collect::<String>())
        } else {
            l.to_string()
        })
    }
}

/// An image reference read from rendered output.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateImage {
    pub text: String,
    pub file: FileId,
    pub line: u32,
    /// The values the line printed: their common key path, or the paths themselves.
    pub values: Option<String>,
    /// Whether the line is rendered with these values (else it sits in a branch they skip).
    pub rendered: bool,
}

/// What the templates of one chart gave.
#[derive(Debug, Default)]
pub struct Scanned {
    pub images: Vec<TemplateImage>,
    /// `image:` lines whose value depends on what cannot be known, by file and line.
    pub unresolved: Vec<(FileId, u32)>,
    /// Files that took more work than allowed to render.
    pub aborted: Vec<FileId>,
}

/// Renders `files` (of one chart) and reads their `image:` lines.
pub fn scan(templates: &Templates, files: &[FileId], env: &Env) -> Scanned {
    let paths = value_paths(env.values);
    let mut renderer = Renderer::new(env, |line| {
        line.contains("image") && image_value(line).is_some()
    });
    let mut scanned = Scanned::default();
    for &file in files {
        let Some(Some(parsed)) = templates.parsed.get(file as usize) else {
            continue;
        };
        match renderer.render_file(&parsed.nodes, file) {
            Ok(out) => read_image_lines(&out, &renderer.captured, &paths, &mut scanned),
            Err(_) => scanned.aborted.push(file),
        }
    }
    // Literal references in branches these values do not render: images the chart runs
    // with other values, as the images of disabled parts are listed from values.
    for (file, line, text) in std::mem::take(&mut renderer.dormant) {
        let Some(text) = image_value(&text).and_then(|(_, v)| scalar(v)) else {
            continue;
        };
        if !text.is_empty() && !text.contains(UNKNOWN) {
            scanned.images.push(TemplateImage {
                text,
                file,
                line,
                values: None,
                rendered: false,
            });
        }
    }
    scanned
}

/// Every node of a values tree, by address, with its key path.
fn value_paths(values: &Node) -> HashMap<*const Node, KeyPath> {
    fn walk(n: &Node, path: KeyPath, out: &mut HashMap<*const Node, KeyPath>, depth: usize) {
        if depth > 128 {
            return;
        }
        match &n.value {
            Value::Map(m) => m
                .iter()
                .for_each(|(k, c)| walk(c, path.key(k), out, depth + 1)),
            Value::List(l) => l
                .iter()
                .enumerate()
                .for_each(|(i, c)| walk(c, path.index(i), out, depth + 1)),
            _ => {}
        }
        out.insert(n as *const Node, path);
    }
    let mut out = HashMap::new();
    walk(values, KeyPath::root(), &mut out, 0);
    out
}

/// The value of an `image:` key on a line of YAML (or JSON), if the line is one.
pub fn image_value(line: &str) -> Option<(usize, &str)> {
    let mut t = line.trim_start();
    while let Some(rest) = t.strip_prefix("- ") {
        t = rest.trim_start();
    }
    let key_at = line.len() - t.len();
    let rest = t
        .strip_prefix("image:")
        .or_else(|| t.strip_prefix("\"image\":"))
        .or_else(|| t.strip_prefix("'image':"))?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((key_at, rest.trim()))
}

/// The scalar an `image:` line holds: quotes removed, a trailing comment or JSON comma
/// dropped. `None` when it is not a plain scalar (a map follows, a block scalar, an alias).
pub fn scalar(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() || v.starts_with(['{', '[', '|', '>', '&', '*', '!', '#']) {
        return None;
    }
    let v = v.strip_suffix(',').unwrap_or(v).trim_end();
    if let Some(inner) = v.strip_prefix('"') {
        let end = inner.rfind('"')?;
        return Some(inner[..end].replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    if let Some(inner) = v.strip_prefix('\'') {
        let end = inner.rfind('\'')?;
        return Some(inner[..end].replace("''", "'"));
    }
    let plain = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Some(plain.trim().to_string())
}

fn read_image_lines(
    out: &Out,
    captured: &[CapturedLine],
    paths: &HashMap<*const Node, KeyPath>,
    scanned: &mut Scanned,
) {
    for (line_start, start) in lines_with(&out.text, "image") {
        let line = &out.text[line_start..start];
        let Some((key_at, value)) = image_value(line.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        let Some((mut file, mut src_line, literal)) = out.origin(line_start + key_at) else {
            continue;
        };
        let Some(text) = scalar(value) else {
            continue;
        };
        let mut reads: Vec<*const Node> = out.reads_between(line_start, start).collect();
        // Printed by an action: if an include wrote it, the include knows the line.
        if !literal {
            let content = line.trim();
            if let Some(c) = captured.iter().rev().find(|c| c.text == content) {
                (file, src_line, reads) = (c.file, c.line, c.reads.clone());
            }
        }
        if text.contains(UNKNOWN) {
            scanned.unresolved.push((file, src_line));
            continue;
        }
        if text.is_empty() {
            continue;
        }
        let read: Vec<&KeyPath> = reads.iter().filter_map(|p| paths.get(p)).collect();
        scanned.images.push(TemplateImage {
            text,
            file,
            line: src_line,
            values: describe(&read),
            rendered: true,
        });
    }
}

/// The `(start, end)` of each line of `text` holding `needle` (end past its line break), in
/// order, each once: a substring search finds the few candidates in long output.
pub fn lines_with<'t>(text: &'t str, needle: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
    let mut next_free = 0;
    text.match_indices(needle).filter_map(move |(at, _)| {
        if at < next_free {
            return None;
        }
        let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
        next_free = end;
        Some((start, end))
    })
}

/// `.Values.image` for reads under one key, else each path read.
fn describe(read: &[&KeyPath]) -> Option<String> {
    let first = read.first()?;
    let mut common = first.segments().len();
    for p in &read[1..] {
        common = common.min(
            first
                .segments()
                .iter()
                .zip(p.segments())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    if common > 0 {
        let mut prefix = KeyPath::root();
        for s in &first.segments()[..common] {
            prefix = match s {
                super::values::Seg::Key(k) => prefix.key(k),
                super::values::Seg::Index(i) => prefix.index(*i),
            };
        }
        return Some(format!(".Values.{prefix}"));
    }
    let mut all: Vec<String> = read.iter().map(|p| format!(".Values.{p}")).collect();
    all.sort();
    all.dedup();
    Some(all.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_lines() {
        assert_eq!(image_value("  image: nginx"), Some((2, "nginx")));
        assert_eq!(image_value("- image: \"a:1\""), Some((2, "\"a:1\"")));
        assert_eq!(image_value("  - - image: x"), Some((6, "x")));
        assert_eq!(image_value("\"image\": \"x\","), Some((0, "\"x\",")));
        assert_eq!(image_value("  imagePullPolicy: Always"), None);
        assert_eq!(image_value("  baseimage: x"), None);
        assert_eq!(image_value("  image:"), Some((2, "")));
        assert_eq!(scalar("\"a:1\""), Some("a:1".into()));
        assert_eq!(scalar("'a:1' # pinned"), Some("a:1".into()));
        assert_eq!(scalar("a:1 # pinned"), Some("a:1".into()));
        assert_eq!(scalar("\"x\","), Some("x".into()));
        assert_eq!(scalar(""), None);
        assert_eq!(scalar("{repository: x}"), None);
        assert_eq!(scalar("|"), None);
    }

    #[test]
    fn common_paths() {
        let a = KeyPath::root().key("image").key("repository");
        let b = KeyPath::root().key("image").key("tag");
        let c = KeyPath::root().key("imageTag");
        assert_eq!(describe(&[&a, &b]).unwrap(), ".Values.image");
        assert_eq!(describe(&[&a]).unwrap(), ".Values.image.repository");
        assert_eq!(
            describe(&[&a, &c]).unwrap(),
            ".Values.image.repository, .Values.imageTag"
        );
        assert_eq!(describe(&[]), None);
    }
}
