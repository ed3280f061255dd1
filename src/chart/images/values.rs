//! Chart values as Helm sees them, with where each one came from.
//!
//! Every node remembers its origin (a chart's `values.yaml`, a `--values` file, `--set`), so an
//! image can say which file and key it was found at. Values are read as Helm reads them:
//! through YAML to JSON, so every number from a YAML file is a float64 and prints as Go prints
//! one (`1.10` is `1.1`, `20200101` is `2.0200101e+07`), while `--set` makes integers. Merging
//! follows Helm's `coalesce`: the user's values win over the chart's, maps merge key by key, a
//! `null` from the user deletes the chart's key, and a subchart sees its parent's values under
//! its name, with the parent's `global` merged over its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// Index of an origin in [`Origins`].
pub type Origin = u16;

/// A value, as Helm's template engine holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// From `--set` only: YAML numbers are floats, as in Helm.
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

/// A value and the origin that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

/// Where values came from: each a file as the user should read it, and how deep in the chart
/// tree its chart is (0 for the chart and the user's files, 1 for a subchart's `values.yaml`,
/// and so on), so that a key can be given relative to the file it is written in.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    list: Vec<(String, usize)>,
}

impl Origins {
    pub fn add(&mut self, file: impl Into<String>, depth: usize) -> Origin {
        self.list.push((file.into(), depth));
        Origin::try_from(self.list.len() - 1).unwrap_or(Origin::MAX)
    }

    pub fn file(&self, o: Origin) -> &str {
        self.list
            .get(usize::from(o))
            .map_or("?", |(f, _)| f.as_str())
    }

    pub fn depth(&self, o: Origin) -> usize {
        self.list.get(usize::from(o)).map_or(0, |(_, d)| *d)
    }
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    pub fn empty_map(origin: Origin) -> Self {
        Node::new(Value::Map(BTreeMap::new()), origin)
    }

    /// Parses a values file (through [`crate::yaml`], so within its limits). An empty document
    /// is an empty map; anything but a map at the top is an error, as in Helm.
    pub fn from_yaml(text: &str, origin: Origin) -> Result<Node, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let parsed: Option<Node> = if text.trim().is_empty() {
            None
        } else {
            crate::yaml::from_small(text)?
        };
        let mut node = parsed.unwrap_or_else(|| Node::empty_map(origin));
        if matches!(node.value, Value::Null) {
            node = Node::empty_map(origin);
        }
        if !matches!(node.value, Value::Map(_)) {
            return Err("the document is not a map of keys to values".into());
        }
        node.set_origin(origin);
        Ok(node)
    }

    fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
        match &mut self.value {
            Value::List(items) => items.iter_mut().for_each(|n| n.set_origin(origin)),
            Value::Map(map) => map.values_mut().for_each(|n| n.set_origin(origin)),
            _ => {}
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key)
    }

    /// The node at a dotted path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |n, k| n.get(k))
    }

    /// A scalar as the template engine prints it; `None` for null, maps and lists.
    pub fn scalar_text(&self) -> Option<String> {
        self.value.scalar_text()
    }

    /// Whether Go templates take it as true (`if`): non-empty, non-zero, not false or null.
    pub fn truthy(&self) -> bool {
        self.value.truthy()
    }
}

impl Value {
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(go_float(*f)),
            Value::Str(s) => Some(s.clone()),
            Value::Null | Value::List(_) | Value::Map(_) => None,
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }
}

/// Merges `over` onto `base` as Helm merges the user's values onto a chart's: maps key by key,
/// anything else replaced, and a `null` in `over` deleting the key.
pub fn coalesce(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                if matches!(v.value, Value::Null) {
                    b.remove(&k);
                    continue;
                }
                match b.get_mut(&k) {
                    Some(existing) => coalesce(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, value) => {
            *base = Node {
                value,
                origin: over.origin,
            }
        }
    }
}

/// Merges user value sets in order (`--values` files, then `--set`), later ones winning, as
/// Helm's `mergeMaps` does: nulls are kept here (they delete the chart's key later).
pub fn merge_user(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.as_map().is_some() && v.as_map().is_some() => {
                        merge_user(existing, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, value) => {
            *base = Node {
                value,
                origin: over.origin,
            }
        }
    }
}

/// The values a subchart sees: the parent's values under `name` over the subchart's own, with
/// the parent's `global` merged over the subchart's `global`.
pub fn scope_for_subchart(parent: &Node, name: &str, mut own: Node) -> Node {
    let mut user = parent
        .get(name)
        .filter(|n| n.as_map().is_some())
        .cloned()
        .unwrap_or_else(|| Node::empty_map(own.origin));
    if let Some(global) = parent.get("global").filter(|g| g.as_map().is_some())
        && let Value::Map(m) = &mut user.value
    {
        let mut merged = m
            .get("global")
            .filter(|g| g.as_map().is_some())
            .cloned()
            .unwrap_or_else(|| Node::empty_map(global.origin));
        merge_user(&mut merged, global.clone());
        m.insert("global".into(), merged);
    }
    coalesce(&mut own, user);
    own
}

/// A key path as it is written in `--set`: keys joined by `.`, list indexes as `[N]`, and a
/// key containing `.`, `[` or `\` escaped with `\` (`podAnnotations.prometheus\.io/scrape`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(Vec<Seg>);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without its last segment.
    pub fn parent(&self) -> KeyPath {
        let mut p = self.clone();
        p.0.pop();
        p
    }

    /// The last key, if the path ends with one.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// The path as the file that `origin` names writes it: a subchart's values sit under the
    /// subchart's name in its parent's files (`global` excepted), so `scope` (the chart's names
    /// from the top) is prefixed by the part the file does not already include.
    pub fn in_file(&self, scope: &[String], origin_depth: usize) -> KeyPath {
        if matches!(self.0.first(), Some(Seg::Key(k)) if k == "global") {
            return self.clone();
        }
        let mut segs: Vec<Seg> = scope
            .iter()
            .skip(origin_depth)
            .map(|s| Seg::Key(s.clone()))
            .collect();
        segs.extend(self.0.iter().cloned());
        KeyPath(segs)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        out.push('.');
                    }
                    for c in k.chars() {
                        if matches!(c, '.' | '[' | '\\' | '=' | ',') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                Seg::Index(n) => {
                    let _ = write!(out, "[{n}]");
                }
            }
        }
        f.write_str(&out)
    }
}

/// A float64 as Go's `fmt` prints it with `%v` (`strconv.FormatFloat(f, 'g', -1, 64)`): the
/// shortest digits that read back the same, in `%e` form when the decimal exponent is below -4
/// or at least 6. Helm users meet this as `tag: 20200101` rendering as `2.0200101e+07`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "d.ddddde[-]x".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // strconv's 'g' with the shortest precision decides with a precision of 6.
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let body = if exp >= n - 1 {
        format!("{digits}{}", "0".repeat((exp - (n - 1)) as usize))
    } else if exp >= 0 {
        let (a, b) = digits.split_at((exp + 1) as usize);
        format!("{a}.{b}")
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    format!("{sign}{body}")
}

/// Reads YAML straight into [`Node`]s (origin 0; [`Node::from_yaml`] sets the real one).
/// Keys that are not strings become strings the way YAML-to-JSON conversion writes them.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn leaf(value: Value) -> Node {
    Node::new(value, 0)
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(leaf(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(leaf(Value::Float(v as f64)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(leaf(Value::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(leaf(Value::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(leaf(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(leaf(Value::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(leaf(Value::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(leaf(Value::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(leaf(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(leaf(Value::Null))
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(leaf(Value::List(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key.value {
                Value::Str(s) => s,
                Value::Null => "null".to_string(),
                other => other
                    .scalar_text()
                    .ok_or_else(|| de::Error::custom("a map key is a map or a list"))?,
            };
            let value = map.next_value::<Node>()?;
            out.insert(key, value);
        }
        Ok(leaf(Value::Map(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Node {
        Node::from_yaml(text, 0).unwrap()
    }

    #[test]
    fn numbers_print_as_go_prints_float64() {
        for (f, want) in [
            (5.0, "5"),
            (1.1, "1.1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (20200101.0, "2.0200101e+07"),
            (1e21, "1e+21"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-3.25, "-3.25"),
            (123456789012.0, "1.23456789012e+11"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
        let v = yaml("tag: 1.10\nn: 7\n");
        assert_eq!(v.get("tag").unwrap().scalar_text().unwrap(), "1.1");
        assert_eq!(v.get("n").unwrap().scalar_text().unwrap(), "7");
    }

    #[test]
    fn empty_and_non_map_documents() {
        assert_eq!(yaml("# only a comment\n").as_map().unwrap().len(), 0);
        assert_eq!(yaml("~\n").as_map().unwrap().len(), 0);
        assert!(Node::from_yaml("- a\n- b\n", 0).is_err());
        assert!(Node::from_yaml("a: [1, 2\n", 0).is_err());
        let keys = yaml("1: a\ntrue: b\n");
        assert!(keys.get("1").is_some() && keys.get("true").is_some());
    }

    #[test]
    fn user_values_win_and_null_deletes() {
        let mut base = yaml("image: {repository: a, tag: '1'}\nkeep: x\ndrop: y\n");
        let mut user = Node::from_yaml("image: {tag: '2'}\ndrop: null\n", 1).unwrap();
        merge_user(
            &mut user,
            Node::from_yaml("image: {registry: r}\n", 2).unwrap(),
        );
        coalesce(&mut base, user);
        let image = base.get("image").unwrap();
        assert_eq!(image.get("repository").unwrap().origin, 0);
        assert_eq!(image.get("tag").unwrap().scalar_text().unwrap(), "2");
        assert_eq!(image.get("tag").unwrap().origin, 1);
        assert_eq!(image.get("registry").unwrap().origin, 2);
        assert!(base.get("drop").is_none() && base.get("keep").is_some());
    }

    #[test]
    fn subcharts_see_their_scope_and_the_parents_globals() {
        let parent =
            yaml("global: {imageRegistry: mirror.io}\nredis: {image: {tag: '7'}}\nother: 1\n");
        let own = Node::from_yaml(
            "global: {imageRegistry: '', x: 1}\nimage: {repository: redis, tag: '6'}\n",
            3,
        )
        .unwrap();
        let scoped = scope_for_subchart(&parent, "redis", own);
        assert_eq!(
            scoped.at(&["image", "tag"]).unwrap().scalar_text().unwrap(),
            "7"
        );
        assert_eq!(scoped.at(&["image", "repository"]).unwrap().origin, 3);
        assert_eq!(
            scoped
                .at(&["global", "imageRegistry"])
                .unwrap()
                .scalar_text()
                .unwrap(),
            "mirror.io"
        );
        assert!(scoped.at(&["global", "x"]).is_some());
        assert!(scoped.get("other").is_none());
    }

    #[test]
    fn key_paths_print_as_set_writes_them() {
        let p = KeyPath::root().key("master").key("image");
        assert_eq!(p.to_string(), "master.image");
        let q = KeyPath::root().key("a").index(0).key("prometheus.io/x");
        assert_eq!(q.to_string(), "a[0].prometheus\\.io/x");
        let scope = vec!["redis".to_string()];
        assert_eq!(p.in_file(&scope, 0).to_string(), "redis.master.image");
        assert_eq!(p.in_file(&scope, 1).to_string(), "master.image");
        let g = KeyPath::root().key("global").key("imageRegistry");
        assert_eq!(g.in_file(&scope, 0).to_string(), "global.imageRegistry");
    }
}
