//! The classic repository view: `index.yaml` (and `index.json`) built from the charts a server
//! offers, plus the map from chart download paths to blobs.
//!
//! Charts are grouped by *prefix*: the served repository name without its last component
//! (`localhost_5000/myrepo` for `localhost_5000/myrepo/mychart`). Each prefix is a classic
//! repository of its own, at `/<prefix>/index.yaml`, with chart URLs `charts/<name>-<version>.tgz`
//! relative to it, so `helm repo add team http://server/localhost_5000/myrepo` sees exactly the
//! charts pushed under `localhost:5000/myrepo`.
//!
//! The root index, `/index.yaml`, lists every chart. A chart name held by one prefix only keeps
//! its name as the entry key and downloads from `/charts/…`; a name held by several prefixes is
//! keyed by `<prefix>/<name>` and downloads from `/<prefix>/charts/…`, so two different charts
//! that share a name never merge (Helm resolves `repo/<prefix>/<name>` by that key).
//!
//! Building is pure: no I/O, the same items give the same bytes (entries sorted by key, versions
//! newest first, `generated` = the newest `created`), so ETags survive rebuilds and restarts,
//! and replicas over the same charts agree on them. Every view is rendered and gzip-compressed
//! once per build (views in parallel), and the items are dropped after: what stays in memory
//! is the compressed bytes and the download map. A large view's plain bytes wait in a
//! temporary file ([`Plain`]), never the parsed metadata.
//!
//! Chart URLs ([`ChartUrls`]): relative to the index that lists them (Helm resolves them
//! against the repository URL and sends its login along), absolute under `--base-url`, or
//! `oci://HOST/NAME:TAG` (`--chart-url oci`), which Helm pulls through its OCI client from
//! this server's registry API.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::http::Source;
use crate::digest::{Digest, Packed};
use crate::version::{self, version_to_tag};

/// One chart version the server offers.
#[derive(Debug, Clone)]
pub struct ChartItem {
    /// The served repository name (`localhost_5000/myrepo/mychart`), shared by its items.
    pub repo: Arc<str>,
    pub tag: String,
    pub name: String,
    pub version: String,
    /// The OCI config (Chart.yaml metadata as JSON), as stored: parsed only while the item's
    /// entries are rendered, so the memo of configs between builds is compact JSON, not trees.
    pub metadata: Arc<[u8]>,
    /// The chart archive (the OCI chart layer), and its provenance file if signed.
    pub content: Digest,
    pub prov: Option<Digest>,
    /// RFC 3339, from the manifest's `created` annotation or the time the chart was stored.
    pub created: Option<String>,
}

/// What a chart download path serves: a blob of a served repository's tag (held for every
/// chart a server offers, so the name is shared and the digest packed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    pub repo: Arc<str>,
    pub tag: Box<str>,
    pub digest: Packed,
}

/// One index, rendered in both encodings, each also gzip-compressed.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub yaml: Encoded,
    /// `index.json`; none for an index passed through as the upstream wrote it.
    pub json: Option<Encoded>,
    pub entries: usize,
}

/// One encoding of an index: the bytes, their gzip form, and an ETag for each (different
/// representations of one resource need different strong ETags).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub plain: Plain,
    pub gzip: Bytes,
    pub etag: String,
    pub gzip_etag: String,
}

/// Plain bodies larger than this are kept in a temporary file, not in memory.
const SPILL_OVER: usize = 1024 * 1024;

/// The uncompressed bytes of an index: in memory when small, else in a temporary file (private
/// to this user, removed with the last view naming it). A large repository then costs the
/// server about its compressed size in memory; the page cache serves the plain file to the
/// clients that want it (Helm).
#[derive(Debug, Clone)]
pub enum Plain {
    Memory(Bytes),
    File {
        path: Arc<tempfile::TempPath>,
        len: u64,
    },
}

impl Plain {
    /// The body to send.
    pub fn source(&self) -> Source {
        match self {
            Plain::Memory(bytes) => Source::Memory(bytes.clone()),
            Plain::File { path, len } => Source::File(path.to_path_buf(), *len),
        }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Plain::Memory(bytes) => bytes.to_vec(),
            Plain::File { path, .. } => std::fs::read(path.as_ref() as &std::path::Path).unwrap(),
        }
    }
}

impl Encoded {
    pub fn new(plain: Vec<u8>) -> Self {
        let mut w = EncodedWriter::new(plain.len() > SPILL_OVER);
        let written = w.write_all(&plain);
        match written.and_then(|()| w.finish()) {
            Ok(encoded) => encoded,
            Err(_) => {
                // The temporary file failed: in memory, then (which cannot fail).
                let mut w = EncodedWriter::new(false);
                let _ = w.write_all(&plain);
                w.finish().unwrap_or_else(|_| unreachable_in_memory())
            }
        }
    }
}

/// Writing into memory only does not fail; should it, an empty index is still valid bytes.
fn unreachable_in_memory() -> Encoded {
    Encoded {
        plain: Plain::Memory(Bytes::new()),
        gzip: Bytes::new(),
        etag: "\"\"".into(),
        gzip_etag: "\"-gzip\"".into(),
    }
}

/// One encoding of an index, written as it is rendered: hashed (for its ETag), gzip-compressed
/// (at the best level: it is done once per build and served many times; with no name and no
/// time in the header, so replicas send the same bytes), and kept: in memory up to
/// [`SPILL_OVER`], past it (when `spill`) in a temporary file, so a large index is never
/// whole in memory, not even while it is rendered.
struct EncodedWriter {
    plain: Spill,
    gzip: flate2::write::GzEncoder<Vec<u8>>,
    hash: crate::digest::HashingWriter<std::io::Sink>,
}

enum Spill {
    Memory {
        bytes: Vec<u8>,
        spill: bool,
    },
    File {
        file: std::io::BufWriter<tempfile::NamedTempFile>,
        len: u64,
    },
}

impl EncodedWriter {
    fn new(spill: bool) -> Self {
        EncodedWriter {
            plain: Spill::Memory {
                bytes: Vec::new(),
                spill,
            },
            gzip: flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::best()),
            hash: crate::digest::HashingWriter::new(std::io::sink()),
        }
    }

    fn finish(self) -> std::io::Result<Encoded> {
        let (_, digest, _) = self.hash.finish();
        let hex = &digest.hex()[..32];
        let mut gzip = self.gzip.finish()?;
        // Kept as long as the view is: without the room the writing grew into.
        gzip.shrink_to_fit();
        let plain = match self.plain {
            Spill::Memory { mut bytes, .. } => {
                bytes.shrink_to_fit();
                Plain::Memory(Bytes::from(bytes))
            }
            Spill::File { file, len } => {
                let file = file.into_inner().map_err(|e| e.into_error())?;
                Plain::File {
                    path: Arc::new(file.into_temp_path()),
                    len,
                }
            }
        };
        Ok(Encoded {
            plain,
            gzip: Bytes::from(gzip),
            etag: format!("\"{hex}\""),
            gzip_etag: format!("\"{hex}-gzip\""),
        })
    }
}

impl std::io::Write for EncodedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.hash.write_all(buf)?;
        self.gzip.write_all(buf)?;
        match &mut self.plain {
            Spill::Memory { bytes, spill } => {
                bytes.extend_from_slice(buf);
                if *spill && bytes.len() > SPILL_OVER {
                    let mut file = std::io::BufWriter::with_capacity(
                        256 * 1024,
                        tempfile::NamedTempFile::new()?,
                    );
                    file.write_all(bytes)?;
                    let len = bytes.len() as u64;
                    self.plain = Spill::File { file, len };
                }
            }
            Spill::File { file, len } => {
                file.write_all(buf)?;
                *len += buf.len() as u64;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How index entries point at chart archives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ChartUrls {
    /// `charts/NAME-VERSION.tgz`, relative to the index.
    #[default]
    Relative,
    /// `BASE/<path from the root>`.
    Absolute(String),
    /// `oci://HOST/<served repository>:<tag>`: the chart from this server's registry API.
    Oci(String),
}

/// One index before rendering: entry key → (item, URL), newest first.
#[derive(Debug, Default)]
struct View {
    entries: BTreeMap<String, Vec<(usize, String)>>,
    generated: String,
}

/// Every index view (by prefix, `""` for the root) and every download path (without the
/// leading `/`).
#[derive(Debug, Default)]
pub struct Indexes {
    views: HashMap<String, Arc<Rendered>>,
    /// A chart's archive and provenance are each one [`ChartFile`], shared by the paths that
    /// name it (the prefix's and the root's).
    pub files: HashMap<Box<str>, Arc<ChartFile>>,
}

impl Indexes {
    /// The index of `prefix` (`""`: the root).
    pub fn view(&self, prefix: &str) -> Option<Arc<Rendered>> {
        self.views.get(prefix).cloned()
    }

    /// Every view's prefix.
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.views.keys().map(String::as_str)
    }
}

/// The served repository name without its last component: `""` for a name with no `/`.
pub fn prefix_of(repo: &str) -> &str {
    repo.rsplit_once('/').map_or("", |(prefix, _)| prefix)
}

fn join(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

/// How an item ranks among items of the same prefix, name and version: the one stored under
/// the tag and repository Helm would push it to wins, then the first by name.
fn rank(item: &ChartItem) -> (bool, bool, &str, &str) {
    let own_repo = item.repo.rsplit('/').next() == Some(item.name.as_str());
    let own_tag = item.tag == version_to_tag(&item.version);
    (!own_tag, !own_repo, &item.repo, item.tag.as_str())
}

/// Newest first, by SemVer; versions that do not parse sort last, by text.
fn newest_first(a: &ChartItem, b: &ChartItem) -> std::cmp::Ordering {
    match (version::parse(&a.version), version::parse(&b.version)) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.version.cmp(&b.version),
    }
}

/// Builds and renders every view.
pub fn build(items: Vec<ChartItem>, urls: &ChartUrls) -> Indexes {
    // (prefix, name) → version → best item.
    let mut groups: BTreeMap<(&str, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let versions = groups
            .entry((prefix_of(&item.repo), item.name.as_str()))
            .or_default();
        versions
            .entry(item.version.as_str())
            .and_modify(|best| {
                if rank(item) < rank(&items[*best]) {
                    *best = i;
                }
            })
            .or_insert(i);
    }
    let mut prefixes_of_name: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (prefix, name) in groups.keys() {
        prefixes_of_name.entry(name).or_default().insert(prefix);
    }

    let url = |item: &ChartItem, path_from_root: &str, path_from_index: &str| match urls {
        ChartUrls::Relative => path_from_index.to_string(),
        ChartUrls::Absolute(base) => format!("{}/{path_from_root}", base.trim_end_matches('/')),
        ChartUrls::Oci(host) => format!("oci://{host}/{}:{}", item.repo, item.tag),
    };

    let mut files = HashMap::new();
    let mut root = View::default();
    let mut per_prefix: HashMap<&str, View> = HashMap::new();
    for ((prefix, name), versions) in &groups {
        let mut versions: Vec<usize> = versions.values().copied().collect();
        versions.sort_by(|a, b| newest_first(&items[*a], &items[*b]));
        let shared = prefixes_of_name.get(name).is_some_and(|p| p.len() > 1);
        // At the root, a shared name is qualified by its prefix (the unprefixed one keeps it).
        let root_dir = if shared { *prefix } else { "" };
        for i in versions {
            let item = &items[i];
            let file = format!("{}-{}.tgz", item.name, item.version);
            let in_prefix = join(prefix, &format!("charts/{file}"));
            let in_root = join(root_dir, &format!("charts/{file}"));
            let archive = Arc::new(chart_file(item, &item.content));
            let prov = item.prov.as_ref().map(|p| Arc::new(chart_file(item, p)));
            for path in [&in_prefix, &in_root] {
                files.insert(path.as_str().into(), Arc::clone(&archive));
                if let Some(prov) = &prov {
                    files.insert(format!("{path}.prov").into(), Arc::clone(prov));
                }
            }
            let created = item.created.as_deref().unwrap_or_default();
            if !prefix.is_empty() {
                let v = per_prefix.entry(prefix).or_default();
                v.entries
                    .entry(item.name.clone())
                    .or_default()
                    .push((i, url(item, &in_prefix, &format!("charts/{file}"))));
                if created > v.generated.as_str() {
                    v.generated = created.to_string();
                }
            }
            root.entries
                .entry(join(root_dir, &item.name))
                .or_default()
                .push((i, url(item, &in_root, &in_root)));
            if created > root.generated.as_str() {
                root.generated = created.to_string();
            }
        }
    }
    let mut views: Vec<(String, View)> = per_prefix
        .into_iter()
        .map(|(p, v)| (p.to_string(), v))
        .collect();
    views.push((String::new(), root));
    files.shrink_to_fit();
    Indexes {
        views: render_all(&items, views),
        files,
    }
}

/// Renders every view, spread over the machine's cores (the root, the largest, first).
fn render_all(
    items: &[ChartItem],
    mut views: Vec<(String, View)>,
) -> HashMap<String, Arc<Rendered>> {
    views.sort_by_key(|(_, v)| std::cmp::Reverse(v.entries.values().map(Vec::len).sum::<usize>()));
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(views.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let views = &views;
    let rendered = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((prefix, view)) = views.get(i) else {
                            break;
                        };
                        out.push((prefix.clone(), Arc::new(render(items, view))));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect::<Vec<_>>()
    });
    rendered.into_iter().collect()
}

fn chart_file(item: &ChartItem, digest: &Digest) -> ChartFile {
    ChartFile {
        repo: Arc::clone(&item.repo),
        tag: item.tag.as_str().into(),
        digest: Packed::from(digest),
    }
}

/// One index entry: the chart's metadata plus `urls`, `digest` and `created`, keys sorted.
fn entry(item: &ChartItem, url: &str) -> BTreeMap<String, Value> {
    // A config that is not a JSON object was refused when it was stored; here it gives an
    // entry of the fields below only.
    let metadata: Map<String, Value> = serde_json::from_slice(&item.metadata).unwrap_or_default();
    let mut fields: BTreeMap<String, Value> = metadata.into_iter().collect();
    fields.insert("name".into(), Value::String(item.name.clone()));
    fields.insert("version".into(), Value::String(item.version.clone()));
    // Helm reads a chart without apiVersion as v1; say so rather than leave it empty.
    fields
        .entry("apiVersion".into())
        .or_insert_with(|| Value::String("v1".into()));
    fields.insert(
        "urls".into(),
        Value::Array(vec![Value::String(url.to_string())]),
    );
    fields.insert(
        "digest".into(),
        Value::String(item.content.hex().to_string()),
    );
    if let Some(created) = &item.created {
        fields.insert("created".into(), Value::String(created.clone()));
    }
    fields
}

/// A YAML scalar on one line (`web`, `'1.0'`), as the YAML serializer quotes it.
fn yaml_scalar(s: &str) -> String {
    serde_norway::to_string(s)
        .unwrap_or_else(|_| format!("{s:?}"))
        .trim_end()
        .to_string()
}

/// Renders a view entry by entry, so memory holds one entry's tree at a time, not the index's,
/// and writes it out as it goes ([`EncodedWriter`]): a large view is in memory only
/// compressed. The YAML is what a serializer writes for the whole document (keys sorted,
/// sequences of mappings), put together from each entry's own document indented into place.
/// Should a temporary file fail, the view is rendered again in memory.
fn render(items: &[ChartItem], view: &View) -> Rendered {
    render_into(items, view, true).unwrap_or_else(|_| {
        render_into(items, view, false).unwrap_or_else(|_| Rendered {
            yaml: unreachable_in_memory(),
            json: None,
            entries: 0,
        })
    })
}

/// The text written between flushes into the encoders.
const CHUNK: usize = 64 * 1024;

fn render_into(items: &[ChartItem], view: &View, spill: bool) -> std::io::Result<Rendered> {
    let generated = if view.generated.is_empty() {
        "1970-01-01T00:00:00Z"
    } else {
        view.generated.as_str()
    };
    let (mut yaml_out, mut json_out) = (EncodedWriter::new(spill), EncodedWriter::new(spill));
    let mut yaml = String::from("apiVersion: v1\n");
    let mut json = Vec::from(&br#"{"apiVersion":"v1","entries":{"#[..]);
    if view.entries.is_empty() {
        yaml.push_str("entries: {}\n");
    } else {
        yaml.push_str("entries:\n");
    }
    let mut count = 0;
    for (k, (key, versions)) in view.entries.iter().enumerate() {
        yaml.push_str("  ");
        yaml.push_str(&yaml_scalar(key));
        yaml.push_str(":\n");
        if k > 0 {
            json.push(b',');
        }
        let _ = serde_json::to_writer(&mut json, key);
        json.extend_from_slice(b":[");
        for (v, (i, url)) in versions.iter().enumerate() {
            let fields = entry(&items[*i], url);
            let doc = serde_norway::to_string(&fields).unwrap_or_default();
            for (n, line) in doc.lines().enumerate() {
                yaml.push_str(if n == 0 { "  - " } else { "    " });
                yaml.push_str(line);
                yaml.push('\n');
            }
            if v > 0 {
                json.push(b',');
            }
            let _ = serde_json::to_writer(&mut json, &fields);
            count += 1;
            if yaml.len() >= CHUNK {
                yaml_out.write_all(yaml.as_bytes())?;
                yaml.clear();
            }
            if json.len() >= CHUNK {
                json_out.write_all(&json)?;
                json.clear();
            }
        }
        json.push(b']');
    }
    yaml.push_str("generated: ");
    yaml.push_str(&yaml_scalar(generated));
    yaml.push('\n');
    json.extend_from_slice(b"},\"generated\":");
    let _ = serde_json::to_writer(&mut json, generated);
    json.push(b'}');
    yaml_out.write_all(yaml.as_bytes())?;
    json_out.write_all(&json)?;
    Ok(Rendered {
        yaml: yaml_out.finish()?,
        json: Some(json_out.finish()?),
        entries: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(repo: &str, tag: &str, name: &str, version: &str, seed: &str) -> ChartItem {
        let metadata = serde_json::json!({
            "apiVersion": "v2",
            "description": format!("chart {seed}"),
            "name": name,
            "version": version,
        });
        ChartItem {
            repo: repo.into(),
            tag: tag.into(),
            name: name.into(),
            version: version.into(),
            metadata: serde_json::to_vec(&metadata).unwrap().into(),
            content: Digest::of(seed.as_bytes()),
            prov: None,
            created: Some(format!("2026-01-0{}T00:00:00Z", seed.len() % 9 + 1)),
        }
    }

    fn yaml(view: &Rendered) -> serde_json::Value {
        serde_norway::from_slice(&view.yaml.plain.bytes()).unwrap()
    }

    #[test]
    fn one_prefix_is_a_classic_repository() {
        let items = [
            item("localhost_5000/team/web", "1.0.0", "web", "1.0.0", "a"),
            item("localhost_5000/team/web", "1.10.0", "web", "1.10.0", "bb"),
            item("localhost_5000/team/web", "1.2.0", "web", "1.2.0", "ccc"),
            item("localhost_5000/team/db", "0.1.0_b", "db", "0.1.0+b", "dddd"),
        ];
        let idx = build(items.to_vec(), &ChartUrls::Relative);
        let team = yaml(&idx.view("localhost_5000/team").unwrap());
        assert_eq!(team["apiVersion"], "v1");
        let versions: Vec<&str> = team["entries"]["web"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_str().unwrap())
            .collect();
        assert_eq!(
            versions,
            ["1.10.0", "1.2.0", "1.0.0"],
            "newest first, SemVer order"
        );
        let db = &team["entries"]["db"][0];
        assert_eq!(db["urls"][0], "charts/db-0.1.0+b.tgz");
        assert_eq!(db["digest"], Digest::of(b"dddd").hex());
        assert_eq!(db["description"], "chart dddd");
        assert_eq!(db["apiVersion"], "v2");
        assert_eq!(
            idx.files["localhost_5000/team/charts/db-0.1.0+b.tgz"].digest,
            Digest::of(b"dddd")
        );
        // The root lists the same charts under their plain names, downloadable from /charts/.
        let root = yaml(&idx.view("").unwrap());
        assert_eq!(
            root["entries"]["web"][0]["urls"][0],
            "charts/web-1.10.0.tgz"
        );
        assert_eq!(idx.files["charts/web-1.2.0.tgz"].digest, Digest::of(b"ccc"));
        assert_eq!(idx.view("").unwrap().entries, 4);
    }

    #[test]
    fn the_same_name_in_two_prefixes_stays_two_charts() {
        let items = [
            item("reg/a/web", "1.0.0", "web", "1.0.0", "from-a"),
            item("reg/b/web", "1.0.0", "web", "1.0.0", "from-b"),
            item("reg/b/api", "2.0.0", "api", "2.0.0", "api"),
        ];
        let idx = build(items.to_vec(), &ChartUrls::Relative);
        let root = yaml(&idx.view("").unwrap());
        let entries = root["entries"].as_object().unwrap();
        let keys: Vec<&String> = entries.keys().collect();
        assert_eq!(keys, ["api", "reg/a/web", "reg/b/web"]);
        assert_eq!(root["entries"]["reg/a/web"][0]["name"], "web");
        assert_eq!(
            root["entries"]["reg/a/web"][0]["urls"][0],
            "reg/a/charts/web-1.0.0.tgz"
        );
        assert_eq!(
            idx.files["reg/b/charts/web-1.0.0.tgz"].digest,
            Digest::of(b"from-b")
        );
        assert!(!idx.files.contains_key("charts/web-1.0.0.tgz"));
        assert_eq!(idx.files["charts/api-2.0.0.tgz"].digest, Digest::of(b"api"));
        // Each prefix still has its own plain index.
        let a = yaml(&idx.view("reg/a").unwrap());
        assert_eq!(
            a["entries"]["web"][0]["digest"],
            Digest::of(b"from-a").hex()
        );
    }

    #[test]
    fn duplicates_prefer_the_tag_helm_would_write() {
        let items = [
            item("reg/a/web", "latest", "web", "1.0.0", "latest"),
            item("reg/a/web", "1.0.0", "web", "1.0.0", "tagged"),
        ];
        let idx = build(items.to_vec(), &ChartUrls::Relative);
        let root = yaml(&idx.view("").unwrap());
        assert_eq!(root["entries"]["web"].as_array().unwrap().len(), 1);
        assert_eq!(&*idx.files["charts/web-1.0.0.tgz"].tag, "1.0.0");
    }

    #[test]
    fn base_url_makes_urls_absolute_and_provenance_is_served() {
        let mut signed = item("reg/a/web", "1.0.0", "web", "1.0.0", "x");
        signed.prov = Some(Digest::of(b"prov"));
        let idx = build(
            vec![signed],
            &ChartUrls::Absolute("https://charts.example.com/".into()),
        );
        let a = yaml(&idx.view("reg/a").unwrap());
        assert_eq!(
            a["entries"]["web"][0]["urls"][0],
            "https://charts.example.com/reg/a/charts/web-1.0.0.tgz"
        );
        assert_eq!(
            idx.files["reg/a/charts/web-1.0.0.tgz.prov"].digest,
            Digest::of(b"prov")
        );
        assert_eq!(
            idx.files["charts/web-1.0.0.tgz.prov"].digest,
            Digest::of(b"prov")
        );
    }

    #[test]
    fn a_large_plain_body_is_kept_in_a_file_that_goes_with_the_view() {
        let small = Encoded::new(b"apiVersion: v1\n".to_vec());
        assert!(matches!(small.plain, Plain::Memory(_)));
        let body: Vec<u8> = (0..SPILL_OVER + 1).map(|i| b'a' + (i % 26) as u8).collect();
        let large = Encoded::new(body.clone());
        let Plain::File { path, len } = &large.plain else {
            panic!("a body over {SPILL_OVER} bytes stays in memory");
        };
        let path = path.to_path_buf();
        assert_eq!(*len, body.len() as u64);
        assert_eq!(large.plain.bytes(), body);
        assert!(large.gzip.len() < body.len() / 10);
        // A clone (a response being sent) keeps the file; the last one removes it.
        let sending = large.clone();
        drop(large);
        assert!(path.exists());
        drop(sending);
        assert!(!path.exists());
    }

    #[test]
    fn a_view_rendered_into_a_file_as_it_goes_has_the_bytes_rendered_in_memory() {
        // Enough entries for both encodings to pass the spill size several chunks over.
        let items: Vec<ChartItem> = (0..12_000)
            .map(|i| {
                let version = format!("1.{}.{}", i / 100, i % 100);
                let seed = format!("seed-{i}");
                item("reg/team/web", &version, "web", &version, &seed)
            })
            .collect();
        let mut view = View::default();
        let versions = view.entries.entry("web".into()).or_default();
        for (i, it) in items.iter().enumerate() {
            versions.push((i, format!("charts/web-{}.tgz", it.version)));
        }
        let spilled = render_into(&items, &view, true).expect("renders");
        let in_memory = render_into(&items, &view, false).expect("renders");
        for (a, b) in [
            (&spilled.yaml, &in_memory.yaml),
            (
                spilled.json.as_ref().unwrap(),
                in_memory.json.as_ref().unwrap(),
            ),
        ] {
            assert!(matches!(a.plain, Plain::File { .. }), "spilled to a file");
            assert!(matches!(b.plain, Plain::Memory(_)));
            let plain = b.plain.bytes();
            assert!(plain.len() > 2 * SPILL_OVER);
            assert_eq!(a.plain.bytes(), plain);
            assert_eq!((&a.etag, &a.gzip_etag), (&b.etag, &b.gzip_etag));
            assert_eq!(a.gzip, b.gzip);
            let mut unzipped = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&a.gzip[..]),
                &mut unzipped,
            )
            .expect("gunzips");
            assert_eq!(unzipped, plain);
            assert_eq!(a.etag, format!("\"{}\"", &Digest::of(&plain).hex()[..32]));
        }
        assert_eq!(spilled.entries, 12_000);
    }

    #[test]
    fn oci_urls_name_the_served_repository_and_the_tag_helm_pushed() {
        let items = [
            item("reg/a/web", "1.0.0", "web", "1.0.0", "a"),
            item("reg/a/web", "1.1.0_build.7", "web", "1.1.0+build.7", "bb"),
            item("solo", "0.1.0", "solo", "0.1.0", "ccc"),
        ];
        let idx = build(
            items.to_vec(),
            &ChartUrls::Oci("charts.example.com:8443".into()),
        );
        let a = yaml(&idx.view("reg/a").unwrap());
        let urls: Vec<&str> = a["entries"]["web"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["urls"][0].as_str().unwrap())
            .collect();
        // The `+` of a version is `_` in its tag, as Helm pushes it.
        assert_eq!(
            urls,
            [
                "oci://charts.example.com:8443/reg/a/web:1.1.0_build.7",
                "oci://charts.example.com:8443/reg/a/web:1.0.0",
            ]
        );
        // The root lists the same URLs (no relative path to resolve), and an unprefixed
        // chart is at the top of the server's namespace.
        let root = yaml(&idx.view("").unwrap());
        assert_eq!(root["entries"]["web"][0]["urls"][0], urls[0]);
        assert_eq!(
            root["entries"]["solo"][0]["urls"][0],
            "oci://charts.example.com:8443/solo:0.1.0"
        );
        // Archives stay downloadable by path for clients that still ask for them.
        assert_eq!(idx.files["charts/web-1.0.0.tgz"].digest, Digest::of(b"a"));
    }

    #[test]
    fn rebuilding_gives_the_same_bytes_and_an_empty_index_is_valid() {
        let items = [
            item("reg/a/web", "1.0.0", "web", "1.0.0", "a"),
            item("reg/a/web", "2.0.0", "web", "2.0.0", "bb"),
        ];
        let (x, y) = (
            build(items.to_vec(), &ChartUrls::Relative),
            build(items.to_vec(), &ChartUrls::Relative),
        );
        let (xv, yv) = (x.view("").unwrap(), y.view("").unwrap());
        assert_eq!(xv.yaml.plain.bytes(), yv.yaml.plain.bytes());
        assert_eq!(
            xv.yaml.gzip, yv.yaml.gzip,
            "compressed the same way every time"
        );
        assert_eq!(xv.yaml.etag, yv.yaml.etag);
        assert_ne!(Some(&xv.yaml.etag), xv.json.as_ref().map(|j| &j.etag));
        assert_ne!(xv.yaml.etag, xv.yaml.gzip_etag);
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&xv.yaml.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, xv.yaml.plain.bytes());
        let root = yaml(&x.view("").unwrap());
        assert_eq!(root["generated"], "2026-01-03T00:00:00Z");

        let empty = build(Vec::new(), &ChartUrls::Relative);
        let root = yaml(&empty.view("").unwrap());
        assert_eq!(root["apiVersion"], "v1");
        assert!(root["entries"].as_object().unwrap().is_empty());
    }

    #[test]
    fn the_yaml_put_together_per_entry_is_one_valid_document_equal_to_the_json() {
        let mut tricky = item("reg/a/web", "1.0.0", "web", "1.0.0", "x");
        let mut metadata: Map<String, Value> = serde_json::from_slice(&tricky.metadata).unwrap();
        metadata.insert(
            "description".into(),
            "line one\n  indented: line two\n\nafter a blank: - dash # hash".into(),
        );
        metadata.insert("appVersion".into(), "1.0".into());
        metadata.insert("deprecated".into(), true.into());
        metadata.insert(
            "annotations".into(),
            serde_json::json!({"example.com/x": "yes", "n": "123"}),
        );
        metadata.insert("keywords".into(), serde_json::json!(["a: b", "- c", ""]));
        tricky.metadata = serde_json::to_vec(&metadata).unwrap().into();
        let odd_name = item("reg/a/1.0", "2.0.0", "true", "2.0.0", "odd");
        let idx = build(vec![tricky, odd_name], &ChartUrls::Relative);
        let view = idx.view("").unwrap();
        let from_yaml = yaml(&view);
        let from_json: serde_json::Value =
            serde_json::from_slice(&view.json.as_ref().unwrap().plain.bytes()).unwrap();
        assert_eq!(from_yaml, from_json);
        let web = &from_yaml["entries"]["web"][0];
        assert_eq!(web["description"], metadata["description"]);
        assert_eq!(
            web["appVersion"], "1.0",
            "a version-like string stays a string"
        );
        assert_eq!(web["annotations"]["n"], "123");
        assert_eq!(web["keywords"], serde_json::json!(["a: b", "- c", ""]));
        assert_eq!(from_yaml["entries"]["true"][0]["name"], "true");
        assert_eq!(view.entries, 2);
    }

    #[test]
    fn unprefixed_names_are_root_charts() {
        let items = [
            item("web", "1.0.0", "web", "1.0.0", "top"),
            item("team/web", "1.0.0", "web", "1.0.0", "team"),
        ];
        let idx = build(items.to_vec(), &ChartUrls::Relative);
        let root = yaml(&idx.view("").unwrap());
        assert_eq!(
            root["entries"]["web"][0]["digest"],
            Digest::of(b"top").hex()
        );
        assert_eq!(
            root["entries"]["team/web"][0]["urls"][0],
            "team/charts/web-1.0.0.tgz"
        );
        assert_eq!(idx.files["charts/web-1.0.0.tgz"].digest, Digest::of(b"top"));
        assert!(idx.view("team").is_some());
    }
}
