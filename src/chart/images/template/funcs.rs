//! The text functions of Go templates and Sprig that charts build image references with
//! (`printf`, `quote`, `trimSuffix`, `nindent`, …), on texts already known. Each keeps its
//! output within [`MAX_STRING`], so a template cannot grow a string until memory runs out.

use std::fmt::Write as _;

/// Longest string a function may make (image references are short; this only stops a
/// template that doubles a string over and over).
pub const MAX_STRING: usize = 4 << 20;

/// What a text function gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Bool(bool),
}

/// `name` applied to `texts` (each argument as Go prints it); `numbers` has each argument's
/// value when it is a whole number. `None` for a function not known here, wrong arguments, or
/// an output over [`MAX_STRING`].
pub fn call(name: &str, texts: &[String], numbers: &[Option<i64>]) -> Option<Value> {
    if texts.iter().map(String::len).sum::<usize>() > MAX_STRING {
        return None;
    }
    let text = |x: String| Some(Value::Text(x));
    let count = |i: usize| {
        numbers
            .get(i)
            .copied()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
    };
    // Sprig puts the string operated on last: `trimSuffix "-" .x`, `replace "a" "b" .x`.
    match (name, texts) {
        ("quote", _) => text(
            texts
                .iter()
                .map(|x| go_quote(x))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("squote", _) => text(
            texts
                .iter()
                .map(|x| format!("'{x}'"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("toString", [one]) => text(one.clone()),
        ("print", _) => text(texts.concat()),
        ("cat", _) => text(texts.join(" ")),
        ("printf", [format, rest @ ..]) => text(printf(format, rest, &numbers[1..])?),
        ("trim", [one]) => text(one.trim().to_string()),
        ("trimSuffix", [suffix, s]) => {
            text(s.strip_suffix(suffix.as_str()).unwrap_or(s).to_string())
        }
        ("trimPrefix", [prefix, s]) => {
            text(s.strip_prefix(prefix.as_str()).unwrap_or(s).to_string())
        }
        ("lower", [one]) => text(one.to_lowercase()),
        ("upper", [one]) => text(one.to_uppercase()),
        ("replace", [old, new, s]) if !old.is_empty() => {
            let most = (s.len() / old.len() + 1).saturating_mul(new.len());
            (most.saturating_add(s.len()) <= MAX_STRING)
                .then(|| Value::Text(s.replace(old.as_str(), new)))
        }
        ("contains", [sub, s]) => Some(Value::Bool(s.contains(sub.as_str()))),
        ("hasPrefix", [prefix, s]) => Some(Value::Bool(s.starts_with(prefix.as_str()))),
        ("hasSuffix", [suffix, s]) => Some(Value::Bool(s.ends_with(suffix.as_str()))),
        ("indent" | "nindent", [_, s]) => {
            let pad = " ".repeat(count(0)?.min(1024));
            let lines = s.lines().count() + 1;
            if pad.len().saturating_mul(lines).saturating_add(s.len()) > MAX_STRING {
                return None;
            }
            let body = s
                .lines()
                .map(|l| format!("{pad}{l}"))
                .collect::<Vec<_>>()
                .join("\n");
            text(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        ("trunc", [_, s]) => text(s.chars().take(count(0)?).collect()),
        _ => None,
    }
}

/// Go's `%q` for plain strings (what sprig's `quote` writes).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `printf` with the verbs charts use for references: `%s`, `%v`, `%d` (whole numbers only),
/// `%q`, `%%`. Anything else, or too few arguments, is `None`.
pub fn printf(format: &str, texts: &[String], numbers: &[Option<i64>]) -> Option<String> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next()?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = texts.get(next)?;
        match verb {
            'v' | 's' => out.push_str(arg),
            'd' if numbers.get(next).copied().flatten().is_some() => out.push_str(arg),
            'q' => out.push_str(&go_quote(arg)),
            _ => return None,
        }
        next += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, args: &[&str]) -> Option<Value> {
        let texts: Vec<String> = args.iter().map(ToString::to_string).collect();
        let numbers: Vec<Option<i64>> = args.iter().map(|a| a.parse().ok()).collect();
        call(name, &texts, &numbers)
    }

    fn text(v: &str) -> Option<Value> {
        Some(Value::Text(v.to_string()))
    }

    #[test]
    fn sprig_argument_order() {
        assert_eq!(t("trimSuffix", &["-", "a-"]), text("a"));
        assert_eq!(t("trimPrefix", &["v", "v1.2"]), text("1.2"));
        assert_eq!(t("replace", &["_", "-", "a_b_c"]), text("a-b-c"));
        assert_eq!(t("contains", &["b", "abc"]), Some(Value::Bool(true)));
        assert_eq!(t("nindent", &["2", "a\nb"]), text("\n  a\n  b"));
        assert_eq!(t("trunc", &["3", "abcdef"]), text("abc"));
        assert_eq!(t("quote", &["a\"b"]), text("\"a\\\"b\""));
        assert_eq!(t("cat", &["a", "b"]), text("a b"));
        assert_eq!(t("nosuch", &["a"]), None);
    }

    #[test]
    fn printf_verbs() {
        let texts = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            printf(
                "%s/%s:%s",
                &texts(&["r", "a/b", "1"]),
                &[None, None, Some(1)]
            )
            .as_deref(),
            Some("r/a/b:1")
        );
        assert_eq!(
            printf("%d%%", &texts(&["5"]), &[Some(5)]).as_deref(),
            Some("5%")
        );
        assert_eq!(printf("%d", &texts(&["x"]), &[None]), None);
        assert_eq!(printf("%s %s", &texts(&["x"]), &[None]), None);
        assert_eq!(printf("%x", &texts(&["x"]), &[None]), None);
    }

    #[test]
    fn outputs_stay_bounded() {
        let big = "a".repeat(100_000);
        assert_eq!(t("replace", &["a", &"b".repeat(1000), &big]), None);
        assert_eq!(t("nindent", &["1024", &"x\n".repeat(10_000)]), None);
        assert_eq!(t("replace", &["", "b", "abc"]), None);
    }
}
