//! Images written in a chart's values, in the shapes charts use, under any key path:
//!
//! - a map with `repository` (or `repo`) and any of `registry`, `tag`, `digest`, `sha`
//!   (Bitnami's `{registry, repository, tag, digest}`, with `global.imageRegistry` replacing
//!   `registry` as Bitnami's helpers do; grafana's `sha`), or with only `repository` under a key
//!   that names an image; a missing or empty tag is the chart's `appVersion`, as most charts'
//!   templates default it;
//! - `{name, tag}` (or `name` with `registry`/`digest`) under a key that names an image;
//! - a string under a key that names an image (`image`, `initImage`, `images`), completed by a
//!   sibling tag when it has none (`image` + `imageTag`, `image` + `tag`, `mcImage` +
//!   `mcImageTag`), as older charts split them;
//! - lists of such strings or maps.
//!
//! A key "names an image" when it is `image`/`images` or ends with `Image`/`Images`.
//! Everything found is text for [`super::reference::ImageRef`] to parse; this module only
//! assembles it and remembers which values it used.

use super::values::{KeyPath, Node, Origin, Value};

/// Deepest nesting walked (YAML stops at 64; `--set` could go deeper).
const MAX_WALK_DEPTH: usize = 128;

/// Why the text of an image is not just what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Note {
    /// The map has no tag: the chart's `appVersion` is used, as its templates do.
    TagFromAppVersion,
    /// No tag and no digest anywhere: a runtime pulls `:latest`.
    LatestImplied,
    /// Written in a template branch these values do not render (it runs with others).
    NotRendered,
}

/// An image assembled from values.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueImage {
    /// The reference as assembled (not yet parsed or normalised).
    pub text: String,
    /// Where the image map or string is.
    pub path: KeyPath,
    /// The origin of the repository (or the string): the image's main place.
    pub origin: Origin,
    /// The other values it used that came from elsewhere (a tag from `--set`, a parent's
    /// `global.imageRegistry`), with their paths.
    pub others: Vec<(KeyPath, Origin)>,
    pub note: Option<Note>,
}

/// Every image in `values` (a chart's coalesced values). `app_version` is the chart's.
pub fn find(values: &Node, app_version: &str) -> Vec<ValueImage> {
    let global_registry = values
        .at(&["global", "imageRegistry"])
        .and_then(|n| Some((n.scalar_text().filter(|s| !s.is_empty())?, n.origin)));
    let finder = Finder {
        app_version,
        global_registry,
    };
    let mut out = Vec::new();
    finder.walk(values, &KeyPath::root(), "", 0, &mut out);
    out
}

struct Finder<'a> {
    app_version: &'a str,
    global_registry: Option<(String, Origin)>,
}

/// `image`, `images`, `initImage`, `mcImages`…
fn names_image(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("image") || k.ends_with("images")
}

/// A non-empty scalar field of a map, with its origin.
fn field(map: &Node, key: &str) -> Option<(String, Origin)> {
    let n = map.get(key)?;
    let text = n.scalar_text()?;
    (!text.is_empty()).then_some((text, n.origin))
}

/// Whether a reference text already carries a tag or a complete digest.
fn has_tag_or_digest(text: &str) -> bool {
    let last = text.rsplit('/').next().unwrap_or(text);
    match last.split_once('@') {
        Some((_, d)) => d.contains(':'),
        None => last.contains(':'),
    }
}

impl Finder<'_> {
    fn walk(
        &self,
        node: &Node,
        path: &KeyPath,
        key: &str,
        depth: usize,
        out: &mut Vec<ValueImage>,
    ) {
        if depth > MAX_WALK_DEPTH {
            return;
        }
        match &node.value {
            Value::Map(map) => {
                if let Some(image) = self.image_map(node, path, key) {
                    out.push(image);
                    return;
                }
                for (k, child) in map {
                    if matches!(child.value, Value::Str(_)) && names_image(k) {
                        if let Some(image) = self.image_string(node, child, &path.key(k), k) {
                            out.push(image);
                        }
                    } else {
                        self.walk(child, &path.key(k), k, depth + 1, out);
                    }
                }
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = path.index(i);
                    match &item.value {
                        Value::Str(s) if names_image(key) && !s.is_empty() => {
                            out.push(ValueImage {
                                text: s.clone(),
                                path: item_path,
                                origin: item.origin,
                                others: Vec::new(),
                                note: (!has_tag_or_digest(s)).then_some(Note::LatestImplied),
                            });
                        }
                        _ => self.walk(item, &item_path, key, depth + 1, out),
                    }
                }
            }
            _ => {}
        }
    }

    /// A map in one of the image shapes, assembled.
    fn image_map(&self, map: &Node, path: &KeyPath, key: &str) -> Option<ValueImage> {
        let has = |k: &str| field(map, k).is_some();
        let pinned = has("tag") || has("digest") || has("sha") || has("registry");
        let (repo, origin) = match field(map, "repository").or_else(|| field(map, "repo")) {
            Some(r) if names_image(key) || pinned => r,
            Some(_) => return None,
            None if names_image(key) && (has("tag") || has("digest") || has("registry")) => {
                field(map, "name")?
            }
            None => return None,
        };
        let mut others = Vec::new();
        let mut used = |p: KeyPath, o: Origin| {
            if o != origin {
                others.push((p, o));
            }
        };
        let mut note = None;
        // Bitnami: a set global.imageRegistry replaces every image's registry.
        let registry = match (&self.global_registry, map.get("registry")) {
            (Some((g, o)), Some(_)) => {
                used(KeyPath::root().key("global").key("imageRegistry"), *o);
                Some(g.clone())
            }
            _ => field(map, "registry").map(|(r, o)| {
                used(path.key("registry"), o);
                r
            }),
        };
        let mut text = match registry {
            Some(r) => format!("{}/{}", r.trim_end_matches('/'), repo),
            None => repo.clone(),
        };
        let digest = ["digest", "sha"].iter().find_map(|k| {
            let (d, o) = field(map, k)?;
            used(path.key(k), o);
            Some(if d.contains(':') {
                d
            } else {
                format!("sha256:{d}")
            })
        });
        if !has_tag_or_digest(&repo) {
            match field(map, "tag") {
                Some((t, o)) => {
                    used(path.key("tag"), o);
                    text = format!("{text}:{t}");
                }
                None if !self.app_version.is_empty() && digest.is_none() => {
                    note = Some(Note::TagFromAppVersion);
                    text = format!("{text}:{}", self.app_version);
                }
                None if digest.is_none() => note = Some(Note::LatestImplied),
                None => {}
            }
            if let Some(d) = digest {
                text = format!("{text}@{d}");
            }
        }
        Some(ValueImage {
            text,
            path: path.clone(),
            origin,
            others,
            note,
        })
    }

    /// `image: "repo[:tag]"`, completed by a sibling tag when it has none.
    fn image_string(
        &self,
        parent: &Node,
        node: &Node,
        path: &KeyPath,
        key: &str,
    ) -> Option<ValueImage> {
        let text = node.scalar_text().filter(|s| !s.trim().is_empty())?;
        let text = text.trim().to_string();
        let mut others = Vec::new();
        if has_tag_or_digest(&text) {
            return Some(ValueImage {
                text,
                path: path.clone(),
                origin: node.origin,
                others,
                note: None,
            });
        }
        let parent_path = path.parent();
        let tag_keys = [format!("{key}Tag"), format!("{key}_tag"), "tag".to_string()];
        let tag = tag_keys
            .iter()
            .find_map(|k| field(parent, k).map(|(t, o)| (k.clone(), t, o)));
        match tag {
            Some((k, t, o)) => {
                if o != node.origin {
                    others.push((parent_path.key(&k), o));
                }
                Some(ValueImage {
                    text: format!("{text}:{t}"),
                    path: path.clone(),
                    origin: node.origin,
                    others,
                    note: None,
                })
            }
            None => Some(ValueImage {
                text,
                path: path.clone(),
                origin: node.origin,
                others,
                note: Some(Note::LatestImplied),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(yaml: &str, app_version: &str) -> Vec<(String, String, Option<Note>)> {
        let values = Node::from_yaml(yaml, 0).unwrap();
        let mut v: Vec<_> = find(&values, app_version)
            .into_iter()
            .map(|i| (i.path.to_string(), i.text, i.note))
            .collect();
        v.sort();
        v
    }

    fn texts(yaml: &str, app_version: &str) -> Vec<String> {
        found(yaml, app_version)
            .into_iter()
            .map(|(p, t, _)| format!("{p}={t}"))
            .collect()
    }

    #[test]
    fn bitnami_maps() {
        let yaml = "image: {registry: docker.io, repository: bitnami/redis, tag: 7.0.5-debian-11-r0}\n\
                    metrics: {image: {registry: docker.io, repository: bitnami/redis-exporter, tag: '1.4', digest: ''}}\n";
        assert_eq!(
            texts(yaml, "7.0.5"),
            [
                "image=docker.io/bitnami/redis:7.0.5-debian-11-r0",
                "metrics.image=docker.io/bitnami/redis-exporter:1.4"
            ]
        );
        let global = format!("global: {{imageRegistry: mirror.local:5000}}\n{yaml}");
        assert_eq!(
            texts(&global, ""),
            [
                "image=mirror.local:5000/bitnami/redis:7.0.5-debian-11-r0",
                "metrics.image=mirror.local:5000/bitnami/redis-exporter:1.4"
            ]
        );
        let digest = "image: {registry: r.io, repository: a/b, tag: '1', digest: 'sha256:abc'}\n";
        assert_eq!(texts(digest, ""), ["image=r.io/a/b:1@sha256:abc"]);
    }

    #[test]
    fn repository_and_tag_with_app_version_default() {
        assert_eq!(
            found("image: {repository: nginx, tag: ''}\n", "1.25"),
            [(
                "image".into(),
                "nginx:1.25".into(),
                Some(Note::TagFromAppVersion)
            )]
        );
        assert_eq!(
            found("image: {repository: nginx}\n", ""),
            [("image".into(), "nginx".into(), Some(Note::LatestImplied))]
        );
        assert_eq!(
            texts(
                "sidecar: {repository: kiwigrid/k8s-sidecar, tag: 0.1.151, sha: ''}\n",
                ""
            ),
            ["sidecar=kiwigrid/k8s-sidecar:0.1.151"]
        );
        assert_eq!(
            texts("initImage: {repo: busybox, tag: latest}\n", ""),
            ["initImage=busybox:latest"]
        );
        // A repository already tagged keeps its tag.
        assert_eq!(
            texts("image: {repository: 'a/b:2'}\n", "9"),
            ["image=a/b:2"]
        );
        // A git repository URL beside no image keys is not an image.
        assert!(texts("git: {repository: 'https://github.com/x/y'}\n", "").is_empty());
    }

    #[test]
    fn name_and_tag() {
        assert_eq!(
            texts("image: {name: nginx, tag: '1.2'}\n", ""),
            ["image=nginx:1.2"]
        );
        assert!(texts("serviceAccount: {name: x, tag: y}\n", "").is_empty());
    }

    #[test]
    fn strings_and_sibling_tags() {
        let yaml = "image: confluentinc/cp-kafka\nimageTag: '5.0.1'\n\
                    jmx: {image: 'solsson/exporter@sha256', imageTag: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}\n\
                    test: {image: bats/bats, tag: v1.1.0}\n\
                    sidecar: {image: 'kiwigrid/k8s-sidecar:0.1.144'}\n\
                    bare: {image: busybox}\n\
                    mcImage: minio/mc\nmcImageTag: RELEASE\n\
                    empty: {image: ''}\n";
        assert_eq!(
            texts(yaml, "9.9"),
            [
                "bare.image=busybox",
                "image=confluentinc/cp-kafka:5.0.1",
                "jmx.image=solsson/exporter@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "mcImage=minio/mc:RELEASE",
                "sidecar.image=kiwigrid/k8s-sidecar:0.1.144",
                "test.image=bats/bats:v1.1.0",
            ]
        );
    }

    #[test]
    fn lists() {
        let yaml = "images: [a:1, 'b@sha256:00']\n\
                    extraContainers: [{name: x, image: 'busybox:1.36'}]\n\
                    more: {images: [{repository: c, tag: '3'}]}\n";
        assert_eq!(
            texts(yaml, ""),
            [
                "extraContainers[0].image=busybox:1.36",
                "images[0]=a:1",
                "images[1]=b@sha256:00",
                "more.images[0]=c:3"
            ]
        );
    }

    #[test]
    fn other_origins_are_remembered() {
        let mut values = Node::from_yaml("image: {repository: nginx, tag: '1'}\n", 0).unwrap();
        let over = Node::from_yaml("image: {tag: '2'}\n", 1).unwrap();
        super::super::values::coalesce(&mut values, over);
        let found = find(&values, "");
        assert_eq!(found[0].text, "nginx:2");
        assert_eq!(found[0].origin, 0);
        assert_eq!(
            found[0].others,
            [(KeyPath::root().key("image").key("tag"), 1)]
        );
    }

    #[test]
    fn non_images_are_left_alone() {
        let yaml = "imagePullPolicy: Always\nimagePullSecrets: [a]\nimage: {pullPolicy: IfNotPresent}\n\
                    useImage: true\nreplicas: 3\n";
        assert!(texts(yaml, "1").is_empty());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any values give images whose text is what the values hold, never a panic.
            #[test]
            fn arbitrary_values_never_panic(
                yaml in "((image|tag|repository|registry|name|digest|sha|imageTag|x)(: (\\{|\\[|[a-z0-9:/@.]{0,8}|\\}|\\]|, )*)?\n  ?){0,12}",
                app_version in "[0-9.]{0,4}",
            ) {
                if let Ok(values) = Node::from_yaml(&yaml, 0) {
                    for image in find(&values, &app_version) {
                        prop_assert!(!image.text.is_empty());
                    }
                }
            }
        }
    }
}
