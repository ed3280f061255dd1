//! Edits of `index.json` in place, computed on its bytes: an entry is appended before the
//! closing `]}`, and an entry is removed by writing spaces (JSON whitespace) over its bytes and
//! one comma next to it. The serializer is deterministic ([`crate::gojson`]), so the bytes of
//! an entry are known and found exactly; anything unexpected gives `None`, and the caller
//! rebuilds the file instead.
//!
//! The functions here only compute [`Edit`]s on bytes; [`super::lookup`] finds what to edit in
//! the file and [`super::layout`] writes the edits.

use memchr::memmem;

/// Bytes to write at an offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// What appending found at the end of the file.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Append {
    Edit(Edit),
    /// The tail given is blank back to its start: give more of the file.
    NeedMore,
    /// The file does not end like an index this cache writes.
    Malformed,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The last non-blank byte before `end`, with its position.
fn last_solid(bytes: &[u8], end: usize) -> Option<(usize, u8)> {
    bytes[..end]
        .iter()
        .rposition(|b| !is_ws(*b))
        .map(|i| (i, bytes[i]))
}

/// The first non-blank byte from `start`, with its position.
fn first_solid(bytes: &[u8], start: usize) -> Option<(usize, u8)> {
    bytes[start..]
        .iter()
        .position(|b| !is_ws(*b))
        .map(|i| (start + i, bytes[start + i]))
}

/// Appends `entry` to the manifests array. `tail` is the end of the file, starting at byte
/// `tail_start` of it (the whole file when `tail_start` is 0).
pub(super) fn append(tail: &[u8], tail_start: u64, entry: &[u8]) -> Append {
    let Some(close) = tail.strip_suffix(b"]}").map(<[u8]>::len) else {
        return Append::Malformed;
    };
    let comma = match last_solid(tail, close) {
        Some((_, b'}')) => true,
        Some((_, b'[')) => false,
        Some(_) => return Append::Malformed,
        None if tail_start > 0 => return Append::NeedMore,
        None => return Append::Malformed,
    };
    let mut bytes = Vec::with_capacity(entry.len() + 3);
    if comma {
        bytes.push(b',');
    }
    bytes.extend_from_slice(entry);
    bytes.extend_from_slice(b"]}");
    Append::Edit(Edit {
        offset: tail_start + close as u64,
        bytes,
    })
}

/// Where `entry` is as a whole element of the array: preceded by `[` or `,` and followed by
/// `,` or `]`, blanks aside. (Its bytes start with `{"` and hold quotes, so they cannot occur
/// inside a JSON string, where quotes are escaped.)
pub(super) fn find(bytes: &[u8], entry: &[u8]) -> Option<usize> {
    if entry.is_empty() {
        return None;
    }
    memmem::find_iter(bytes, entry).find(|&at| {
        matches!(last_solid(bytes, at), Some((_, b'[' | b',')))
            && matches!(first_solid(bytes, at + entry.len()), Some((_, b',' | b']')))
    })
}

/// What [`blank_span`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Span {
    /// `[start, end)` of the bytes: the entry and one separator.
    Found(usize, usize),
    /// Blanks run to an edge of the bytes given, which are not the whole file there.
    NeedMore,
    /// Not an element of an array.
    Malformed,
}

/// The bytes to blank to remove the entry of `len` bytes at `at`: the entry and the comma
/// that separates it from its neighbour, the one before it, or after it when it is the first
/// entry. `bytes` are part of the file; `file_start` and `file_end` say whether they reach its
/// start and its end.
pub(super) fn blank_span(
    bytes: &[u8],
    at: usize,
    len: usize,
    file_start: bool,
    file_end: bool,
) -> Span {
    let end = at + len;
    match last_solid(bytes, at) {
        Some((comma, b',')) => Span::Found(comma, end),
        Some((_, b'[')) => match first_solid(bytes, end) {
            Some((comma, b',')) => Span::Found(at, comma + 1),
            Some((_, b']')) => Span::Found(at, end),
            Some(_) => Span::Malformed,
            None if file_end => Span::Malformed,
            None => Span::NeedMore,
        },
        Some(_) => Span::Malformed,
        None if file_start => Span::Malformed,
        None => Span::NeedMore,
    }
}

/// Spaces over `[start, end)`.
pub(super) fn spaces(start: u64, end: u64) -> Edit {
    Edit {
        offset: start,
        bytes: vec![b' '; (end - start) as usize],
    }
}

/// `new` over the `old_len` bytes of the entry at `at`, the rest blanked; `None` when it does
/// not fit.
pub(super) fn overwrite(at: u64, old_len: usize, new: &[u8]) -> Option<Edit> {
    if new.len() > old_len {
        return None;
    }
    let mut bytes = new.to_vec();
    bytes.resize(old_len, b' ');
    Some(Edit { offset: at, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"{"schemaVersion":2,"manifests":["#;

    fn entry(name: &str) -> String {
        format!(r#"{{"mediaType":"m","digest":"d","size":1,"annotations":{{"ref":"{name}"}}}}"#)
    }

    fn index(names: &[&str]) -> Vec<u8> {
        let entries: Vec<String> = names.iter().map(|n| entry(n)).collect();
        format!("{HEAD}{}]}}", entries.join(",")).into_bytes()
    }

    /// Removes `old` from a whole file.
    fn remove(bytes: &[u8], old: &[u8]) -> Option<Edit> {
        let at = find(bytes, old)?;
        match blank_span(bytes, at, old.len(), true, true) {
            Span::Found(s, e) => Some(spaces(s as u64, e as u64)),
            _ => None,
        }
    }

    /// Replaces `old` with `new` in a whole file, as the store does.
    fn replace(bytes: &[u8], old: &[u8], new: &[u8]) -> Option<Vec<Edit>> {
        let at = find(bytes, old)?;
        if let Some(e) = overwrite(at as u64, old.len(), new) {
            return Some(vec![e]);
        }
        let Append::Edit(append) = append(bytes, 0, new) else {
            return None;
        };
        match blank_span(bytes, at, old.len(), true, true) {
            Span::Found(s, e) => Some(vec![append, spaces(s as u64, e as u64)]),
            _ => None,
        }
    }

    fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
        let at = edit.offset as usize;
        if bytes.len() < at + edit.bytes.len() {
            bytes.resize(at + edit.bytes.len(), 0);
        }
        bytes[at..at + edit.bytes.len()].copy_from_slice(&edit.bytes);
    }

    /// The ref names the index lists, parsed as any JSON reader would.
    fn names(bytes: &[u8]) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)));
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["annotations"]["ref"].as_str().unwrap().to_string())
            .collect()
    }

    fn removed(bytes: &[u8], name: &str) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let edit = remove(bytes, entry(name).as_bytes()).expect("found");
        assert!(edit.bytes.iter().all(|b| *b == b' '));
        apply(&mut out, &edit);
        assert_eq!(out.len(), bytes.len(), "blanking keeps the length");
        out
    }

    #[test]
    fn blanking_the_first_middle_last_and_only_entry() {
        let three = index(&["a", "b", "c"]);
        assert_eq!(names(&removed(&three, "a")), ["b", "c"], "first");
        assert_eq!(names(&removed(&three, "b")), ["a", "c"], "middle");
        assert_eq!(names(&removed(&three, "c")), ["a", "b"], "last");
        assert!(names(&removed(&index(&["a"]), "a")).is_empty(), "only");
        // Entries next to blanks, in every order, down to none; then appending again.
        for order in [
            ["a", "b", "c"],
            ["c", "b", "a"],
            ["b", "a", "c"],
            ["b", "c", "a"],
        ] {
            let mut bytes = three.clone();
            let mut left = vec!["a", "b", "c"];
            for name in order {
                bytes = removed(&bytes, name);
                left.retain(|n| *n != name);
                assert_eq!(names(&bytes), left, "{order:?}");
            }
            let Append::Edit(edit) = append(&bytes, 0, entry("d").as_bytes()) else {
                panic!("append after blanks");
            };
            apply(&mut bytes, &edit);
            assert_eq!(names(&bytes), ["d"]);
        }
        assert_eq!(remove(&three, entry("x").as_bytes()), None, "absent");
    }

    #[test]
    fn appending() {
        let mut bytes = index(&[]);
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let Append::Edit(edit) = append(&bytes, 0, entry(name).as_bytes()) else {
                panic!("append");
            };
            apply(&mut bytes, &edit);
            assert_eq!(names(&bytes).len(), i + 1);
        }
        assert_eq!(bytes, index(&["a", "b", "c"]), "what a rebuild writes");
        // From the tail alone.
        let start = bytes.len() - 10;
        let Append::Edit(edit) = append(&bytes[start..], start as u64, entry("d").as_bytes())
        else {
            panic!("append from the tail");
        };
        apply(&mut bytes, &edit);
        assert_eq!(names(&bytes), ["a", "b", "c", "d"]);
        // A tail that is all blanks asks for more; a torn or foreign file is refused.
        let blanked = removed(&index(&["a", "b"]), "b");
        let tail = &blanked[blanked.len() - 8..];
        assert_eq!(
            append(tail, (blanked.len() - 8) as u64, b"{}"),
            Append::NeedMore
        );
        for bad in [&b"{\"manifests\":[{\"a\":1}"[..], b"", b"]}", b"{\"a\":1}"] {
            assert_eq!(append(bad, 0, b"{}"), Append::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn replacing_in_place_or_by_appending() {
        let bytes = index(&["a", "b"]);
        let old = entry("a");
        let shorter = old.replace("\"size\":1", "\"size\":2");
        let edits = replace(&bytes, old.as_bytes(), shorter.as_bytes()).unwrap();
        assert_eq!(edits.len(), 1, "in place");
        let mut out = bytes.clone();
        apply(&mut out, &edits[0]);
        assert_eq!(out.len(), bytes.len());
        assert!(String::from_utf8_lossy(&out).contains(&shorter));
        assert_eq!(names(&out), ["a", "b"]);

        let longer = old.replace("\"size\":1", "\"size\":1234");
        let edits = replace(&bytes, old.as_bytes(), longer.as_bytes()).unwrap();
        assert_eq!(edits.len(), 2, "appended, then blanked");
        let mut out = bytes.clone();
        apply(&mut out, &edits[0]);
        assert_eq!(names(&out), ["a", "b", "a"], "both, between the writes");
        apply(&mut out, &edits[1]);
        assert_eq!(names(&out), ["b", "a"]);
        assert!(String::from_utf8_lossy(&out).contains(&longer));
    }

    #[test]
    fn blanking_within_part_of_the_file() {
        let mut bytes = index(&["a", "b", "c"]);
        bytes = removed(&bytes, "b");
        let c = entry("c");
        let at = find(&bytes, c.as_bytes()).unwrap();
        // The comma before `c` is right there.
        let part = &bytes[at - 1..at + c.len()];
        assert_eq!(
            blank_span(part, 1, c.len(), false, false),
            Span::Found(0, part.len())
        );
        // After `a` and `c` are gone, `b`'s blanks separate the start from what is left.
        let a_gone = removed(&index(&["a", "b", "c"]), "a");
        let b = entry("b");
        let at = find(&a_gone, b.as_bytes()).unwrap();
        let part = &a_gone[at - 2..at + b.len() + 1];
        assert_eq!(blank_span(part, 2, b.len(), false, false), Span::NeedMore);
        assert_eq!(
            blank_span(&a_gone, at, b.len(), true, true),
            Span::Found(at, at + b.len() + 1)
        );
        assert_eq!(blank_span(b"x{}", 1, 2, true, true), Span::Malformed);
    }

    #[test]
    fn only_whole_entries_are_found() {
        // The same bytes inside a longer entry are not that entry.
        let bytes = format!(r#"{HEAD}{{"x":{}}},{}]}}"#, entry("a"), entry("b")).into_bytes();
        assert_eq!(find(&bytes, entry("a").as_bytes()), None);
        assert!(find(&bytes, entry("b").as_bytes()).is_some());
    }
}
