//! `--set` and `--set-string` in Helm's syntax (`strvals`), for the common cases:
//! `a.b=c,d=e` pairs, list indexes (`a.b[0].c=x`), lists in braces (`a={x,y}`), `\` escaping
//! `.`, `,`, `=`, `[` and `\`. With `--set`, `true`/`false` are booleans, `null` deletes the
//! key, and digits without a leading zero are integers; everything else (floats included) is a
//! string, as in Helm. With `--set-string` every value is a string.

use std::collections::BTreeMap;

use super::values::{Node, Origin, Value};

/// The highest list index `--set` accepts (Helm's own limit).
pub const MAX_INDEX: usize = 65_536;
/// The most keys and indexes one `--set` path may have (values files nest at most 64 deep).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("{text:?}: key {key:?} has no value (use KEY=VALUE)")]
    NoValue { text: String, key: String },
    #[error("{text:?}: an empty key")]
    EmptyKey { text: String },
    #[error("{text:?}: a list index must be a number from 0 to {MAX_INDEX}")]
    BadIndex { text: String },
    #[error("{text:?}: {what}")]
    Syntax { text: String, what: &'static str },
    #[error("{text:?}: a key path deeper than {MAX_DEPTH} levels")]
    TooDeep { text: String },
}

/// One key step.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parses one `--set` (or `--set-string`, when `strings`) argument into `into`, as Helm's
/// `strvals.ParseInto` does: later assignments replace earlier ones.
pub fn parse_into(
    text: &str,
    strings: bool,
    origin: Origin,
    into: &mut Node,
) -> Result<(), SetError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        text,
    };
    while !p.at_end() {
        let path = p.key()?;
        if path.len() > MAX_DEPTH {
            return Err(SetError::TooDeep {
                text: text.to_string(),
            });
        }
        let value = p.value(strings, origin)?;
        set(into, &path, value, origin);
        match p.peek() {
            None => {}
            Some(',') => p.pos += 1,
            Some(_) => {
                return Err(SetError::Syntax {
                    text: text.to_string(),
                    what: "expected ',' after a value",
                });
            }
        }
    }
    Ok(())
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Reads `a.b[0].c` up to and including the `=`.
    fn key(&mut self) -> Result<Vec<Step>, SetError> {
        let mut steps = Vec::new();
        let mut current = String::new();
        let mut have_current = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(SetError::NoValue {
                    text: self.text.to_string(),
                    key: current,
                });
            };
            self.pos += 1;
            match c {
                '\\' => {
                    let next = self.peek().ok_or(SetError::Syntax {
                        text: self.text.to_string(),
                        what: "a '\\' at the end",
                    })?;
                    self.pos += 1;
                    current.push(next);
                    have_current = true;
                }
                '=' | '.' | '[' => {
                    if have_current {
                        steps.push(Step::Key(std::mem::take(&mut current)));
                        have_current = false;
                    } else if c != '[' && !matches!(steps.last(), Some(Step::Index(_))) {
                        return Err(SetError::EmptyKey {
                            text: self.text.to_string(),
                        });
                    }
                    if steps.is_empty() {
                        return Err(SetError::EmptyKey {
                            text: self.text.to_string(),
                        });
                    }
                    match c {
                        '=' => return Ok(steps),
                        '[' => steps.push(Step::Index(self.index()?)),
                        _ => {}
                    }
                }
                ',' => {
                    return Err(SetError::NoValue {
                        text: self.text.to_string(),
                        key: current,
                    });
                }
                c => {
                    current.push(c);
                    have_current = true;
                }
            }
        }
    }

    fn index(&mut self) -> Result<usize, SetError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c != ']') {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        if self.peek() != Some(']') {
            return Err(SetError::BadIndex {
                text: self.text.to_string(),
            });
        }
        self.pos += 1;
        digits
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_INDEX)
            .ok_or_else(|| SetError::BadIndex {
                text: self.text.to_string(),
            })
    }

    /// A value up to the next unescaped `,` (or a `{a,b}` list).
    fn value(&mut self, strings: bool, origin: Origin) -> Result<Node, SetError> {
        if self.peek() == Some('{') {
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                let (raw, stop) = self.scalar(&[',', '}']);
                match stop {
                    Some(',') => items.push(typed(&raw, strings, origin)),
                    Some('}') => {
                        if !(raw.is_empty() && items.is_empty()) {
                            items.push(typed(&raw, strings, origin));
                        }
                        return Ok(Node::new(Value::List(items), origin));
                    }
                    _ => {
                        return Err(SetError::Syntax {
                            text: self.text.to_string(),
                            what: "a list '{' without its '}'",
                        });
                    }
                }
            }
        }
        // The ',' is left for the caller.
        let (raw, _) = self.scalar(&[',']);
        Ok(typed(&raw, strings, origin))
    }

    /// Reads up to one of `stops` (unescaped); consumes the stop unless it is ','.
    fn scalar(&mut self, stops: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.pos += 1;
                if let Some(n) = self.peek() {
                    out.push(n);
                    self.pos += 1;
                }
                continue;
            }
            if stops.contains(&c) {
                if c != ',' || stops.contains(&'}') {
                    self.pos += 1;
                }
                return (out, Some(c));
            }
            out.push(c);
            self.pos += 1;
        }
        (out, None)
    }
}

/// Helm's `typedVal`.
fn typed(raw: &str, strings: bool, origin: Origin) -> Node {
    let value = if strings {
        Value::Str(raw.to_string())
    } else if raw.eq_ignore_ascii_case("true") {
        Value::Bool(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Value::Bool(false)
    } else if raw.eq_ignore_ascii_case("null") {
        Value::Null
    } else if raw == "0" {
        Value::Int(0)
    } else if !raw.starts_with('0')
        && let Ok(i) = raw.parse::<i64>()
    {
        Value::Int(i)
    } else {
        Value::Str(raw.to_string())
    };
    Node::new(value, origin)
}

/// Sets `value` at `path` under `node`, making maps and lists on the way.
fn set(node: &mut Node, path: &[Step], value: Node, origin: Origin) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    match first {
        Step::Key(k) => {
            if !matches!(node.value, Value::Map(_)) {
                *node = Node::new(Value::Map(BTreeMap::new()), origin);
            }
            if let Value::Map(m) = &mut node.value {
                let child = m
                    .entry(k.clone())
                    .or_insert_with(|| Node::new(Value::Null, origin));
                set(child, rest, value, origin);
            }
        }
        Step::Index(i) => {
            if !matches!(node.value, Value::List(_)) {
                *node = Node::new(Value::List(Vec::new()), origin);
            }
            if let Value::List(items) = &mut node.value {
                while items.len() <= *i {
                    items.push(Node::new(Value::Null, origin));
                }
                set(&mut items[*i], rest, value, origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, strings: bool) -> Result<Node, SetError> {
        let mut n = Node::empty_map(0);
        parse_into(text, strings, 0, &mut n)?;
        Ok(n)
    }

    fn text(n: &Node, path: &[&str]) -> Option<String> {
        n.at(path)?.scalar_text()
    }

    #[test]
    fn common_shapes() {
        let n = parse("image.tag=1.2.3,image.repository=nginx", false).unwrap();
        assert_eq!(text(&n, &["image", "tag"]).unwrap(), "1.2.3");
        assert_eq!(text(&n, &["image", "repository"]).unwrap(), "nginx");

        let n = parse("a.b[1].c=x", false).unwrap();
        let Value::List(items) = &n.at(&["a", "b"]).unwrap().value else {
            panic!("a list")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].get("c").unwrap().scalar_text().unwrap(), "x");

        let n = parse("n=10,z=0,o=010,f=1.5,t=TRUE,e=,nil=null", false).unwrap();
        assert_eq!(n.get("n").unwrap().value, Value::Int(10));
        assert_eq!(n.get("z").unwrap().value, Value::Int(0));
        assert_eq!(n.get("o").unwrap().value, Value::Str("010".into()));
        assert_eq!(n.get("f").unwrap().value, Value::Str("1.5".into()));
        assert_eq!(n.get("t").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("e").unwrap().value, Value::Str(String::new()));
        assert_eq!(n.get("nil").unwrap().value, Value::Null);

        let n = parse("n=10,t=true", true).unwrap();
        assert_eq!(n.get("n").unwrap().value, Value::Str("10".into()));
        assert_eq!(n.get("t").unwrap().value, Value::Str("true".into()));
    }

    #[test]
    fn escapes_and_lists() {
        let n = parse(r"ann.prometheus\.io/port=9090,msg=a\,b", false).unwrap();
        assert_eq!(text(&n, &["ann", "prometheus.io/port"]).unwrap(), "9090");
        assert_eq!(text(&n, &["msg"]).unwrap(), "a,b");
        let n = parse("images={a:1,b:2},empty={}", false).unwrap();
        let Value::List(items) = &n.get("images").unwrap().value else {
            panic!("a list")
        };
        let texts: Vec<_> = items.iter().map(|i| i.scalar_text().unwrap()).collect();
        assert_eq!(texts, ["a:1", "b:2"]);
        assert!(matches!(&n.get("empty").unwrap().value, Value::List(l) if l.is_empty()));
    }

    #[test]
    fn errors_name_the_argument() {
        for bad in [
            "novalue",
            "a.=x",
            "=x",
            "a[x]=1",
            "a[99999999]=1",
            "a={x",
            "a..b=1",
            &format!("{}=1", vec!["a"; MAX_DEPTH + 1].join(".")),
        ] {
            let err = parse(bad, false).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad:?}: {err}");
        }
    }

    #[test]
    fn later_assignments_win() {
        let mut n = Node::empty_map(0);
        parse_into("image.tag=1", false, 0, &mut n).unwrap();
        parse_into("image.tag=2,image.x=y", false, 1, &mut n).unwrap();
        assert_eq!(text(&n, &["image", "tag"]).unwrap(), "2");
        assert_eq!(n.at(&["image", "tag"]).unwrap().origin, 1);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any argument either fails with an error naming it or sets values.
            #[test]
            fn arbitrary_arguments_never_panic(text in r"[a-z0-9.,=\[\]{}\\]{0,40}") {
                let mut n = Node::empty_map(0);
                if let Err(e) = parse_into(&text, false, 0, &mut n) {
                    let quoted = format!("{text:?}");
                    prop_assert!(e.to_string().contains(&quoted));
                }
            }
        }
    }
}
