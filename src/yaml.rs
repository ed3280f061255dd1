//! YAML from outside, read within limits.
//!
//! Chart.yaml, requirements.yaml and index.yaml arrive in archives and from servers written by
//! strangers. A YAML parser can be made to spend CPU or memory out of all proportion to its
//! input: flow collections nested a few thousand deep (`[[[[…`) take a libyaml-based parser
//! quadratic time (a 341-byte archive, 40 s), and anchors with aliases expand exponentially.
//! Every such document is read here, by `serde-saphyr`, whose budget bounds nesting depth,
//! events, nodes, aliases and scalar bytes, so each failure is a one-line error naming the
//! limit instead of a hang.

use serde::de::DeserializeOwned;

/// How deep mappings and sequences (block or flow) may nest. Real charts stay under 20.
pub const MAX_DEPTH: usize = 64;

/// A budget for a small document (Chart.yaml, requirements.yaml: at most Helm's 5 MiB per file).
fn small_budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    budget
}

/// A budget for a large document of `len` bytes (an index.yaml): as many events and nodes as
/// its bytes can describe, but the same nesting and alias limits as a small one, so an alias
/// bomb cannot expand past the input's own size.
fn large_budget(len: usize) -> serde_saphyr::Budget {
    let mut budget = small_budget();
    budget.max_events = len.max(1_000_000);
    budget.max_nodes = len.max(250_000);
    budget.max_total_scalar_bytes = len.max(64 << 20);
    budget.max_reader_input_bytes = None;
    budget
}

/// YAML 1.2 booleans only (`yes` stays a string), as `serde_norway` read Chart.yaml before.
fn options(budget: serde_saphyr::Budget) -> serde_saphyr::Options {
    serde_saphyr::options! { budget: Some(budget), strict_booleans: true }
}

/// Parses a small document (Chart.yaml and the like). The error is one line, without the
/// parser's `error: ` lead-in or source snippet.
pub fn from_small<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str_with_options(text, options(small_budget()))
        .map_err(|e| first_line(&e.to_string()))
}

/// Parses a large document (an index.yaml) in place, without building a tree of it.
pub fn from_large<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_saphyr::from_str_with_options(text, options(large_budget(text.len())))
        .map_err(|e| first_line(&e.to_string()))
}

/// The first line of a parser message (serde-saphyr adds a source snippet below it), without
/// its `error: ` lead-in.
pub fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // The budget speaks in its own struct names; say which limit in words.
    match line.split_once("budget breached: ") {
        Some((at, breach)) => {
            let kind = breach.split([' ', '{', '(']).next().unwrap_or(breach);
            let what = match kind {
                "Depth" => format!("nested deeper than {MAX_DEPTH} levels"),
                "Aliases" | "Anchors" => "too many anchors or aliases".to_string(),
                "Events" | "Nodes" => "too many YAML nodes".to_string(),
                _ => format!("over a limit for untrusted YAML ({breach})"),
            };
            format!("{at}{what}")
        }
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[derive(serde::Deserialize, Debug)]
    struct Doc {
        #[allow(dead_code)]
        #[serde(default)]
        a: Option<serde_json::Value>,
    }

    #[test]
    fn deep_flow_nesting_is_refused_quickly() {
        for opener in ["[", "{a: "] {
            let text = format!("a: {}", opener.repeat(200_000));
            let started = Instant::now();
            let err = from_small::<Doc>(&text).unwrap_err();
            // Milliseconds in practice (unlimited, 5 MiB of this took minutes); the bound
            // leaves room for a busy machine and an unoptimised build.
            assert!(started.elapsed() < Duration::from_secs(20), "{err}");
            assert!(
                err.contains("recursion limit") || err.contains("nest") || err.contains("depth"),
                "{err}"
            );
        }
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
            ));
        }
        text.push_str("a: *x11\n");
        let started = Instant::now();
        assert!(from_small::<Doc>(&text).is_err());
        assert!(from_large::<Doc>(&text).is_err());
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn ordinary_documents_parse() {
        let doc: Doc = from_small("a: {b: [1, 2, {c: d}]}\n").unwrap();
        assert!(doc.a.is_some());
    }
}
