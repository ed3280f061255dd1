//! JSON written the way Go's `encoding/json` writes it, so the config blobs and manifests we
//! create are byte for byte what Helm creates for the same chart.
//!
//! `serde_json` already writes compact output with struct fields in declaration order and map
//! keys sorted (for `BTreeMap`); the one difference is that Go escapes `<`, `>`, `&`, U+2028 and
//! U+2029 inside strings (HTML-safe output). This module adds exactly that.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// The `Formatter` trait's defaults are compact output; only string fragments differ.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serializes `value` as Go's `json.Marshal` would.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = Serializer::with_formatter(&mut out, GoFormatter);
    // Our types serialize infallibly into memory: they hold only strings, numbers, maps with
    // string keys and sequences.
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"b": "<a href=\"x\">&\u{2028}é\n", "a": [1, 2]});
        assert_eq!(
            String::from_utf8(super::to_vec(&v)).unwrap(),
            r#"{"a":[1,2],"b":"\u003ca href=\"x\"\u003e\u0026\u2028é\n"}"#
        );
    }
}
