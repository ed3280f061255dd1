//! Helm's `.helmignore` rules, reproduced so that a chart packaged or
//! digested by chartcache contains exactly the files Helm would include.
//!
//! `.helmignore` looks like `.gitignore` but is not: Helm
//! (`pkg/ignore/rules.go`) matches each rule with Go's `filepath.Match`,
//! has no `**`, no `{a,b}` alternation, negates character classes with
//! `[^...]` (so `[!a]` means "`!` or `a`"), and evaluates `!` rules in a
//! peculiar way. This module keeps Helm's behaviour, including the odd parts:
//!
//! * lines are trimmed; blank lines and lines starting with `#` are skipped;
//! * a rule containing `**` is an error, and so is a rule `filepath.Match`
//!   would reject (unclosed or empty `[...]`, a trailing `\`, ...);
//! * a leading `!` negates the rule, a trailing `/` restricts it to
//!   directories, a leading `/` anchors it to the chart root; a rule that
//!   still contains `/` is matched against the whole slash-separated path
//!   relative to the chart root, any other rule against the base name only;
//! * rules are evaluated in order and the first decisive rule wins: a plain
//!   rule decides "ignore" when it matches; a negated rule decides "ignore"
//!   when it does *not* match (and a negated directory-only rule ignores
//!   every non-directory), and otherwise lets evaluation continue — so `!`
//!   never re-includes a path an earlier rule ignored;
//! * the chart root (`""`, `.`, `./`) is never ignored;
//! * Helm always appends the default rule `templates/.?*` after the file's
//!   rules ([`IgnoreRules::with_defaults`]).
//!
//! Each Go pattern is translated into an equivalent `globset` pattern
//! (`literal_separator`, backslash escapes; `{`, `}` and other glob
//! metacharacters escaped; Go classes rewritten in globset syntax).
//!
//! Known, deliberate differences from Helm, all in corners no real chart is
//! expected to reach:
//!
//! * `globset` matches bytes, so `?` and `[...]` applied to a *non-ASCII*
//!   character of a path consume one UTF-8 byte instead of one character
//!   (ASCII characters, and literal non-ASCII characters, match exactly);
//! * Go's `filepath.Match` never backtracks into an earlier `*`; a regex
//!   does. The results differ only for a pattern in which a `[...]` class
//!   that can match `/` (e.g. `[^a]`) follows a `*` and is followed by more
//!   pattern, e.g. `dir/*[^a]*` against `dir/b/c`;
//! * Helm strips one more leading `/` from an anchored rule each time the
//!   rule is evaluated (a Go closure reassigns its captured pattern), so
//!   `//a.txt` eventually behaves like `/a.txt`; here all leading slashes of
//!   an anchored rule are stripped up front (Helm's steady state);
//! * paths are always slash-separated, as on Unix.

use globset::{GlobBuilder, GlobMatcher};

/// The default rule Helm appends after the rules of every `.helmignore`:
/// ignore dotfiles directly inside `templates/`.
const DEFAULT_RULE: &str = "templates/.?*";

/// An error in the text of a `.helmignore` file.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The rule contains `**`, which Helm rejects.
    #[error(".helmignore line {line}: double-star (**) syntax is not supported")]
    DoubleStar {
        /// 1-based line number.
        line: usize,
    },
    /// The rule is not a valid Go `filepath.Match` pattern.
    #[error(".helmignore line {line}: syntax error in pattern {pattern:?}")]
    BadPattern {
        /// 1-based line number.
        line: usize,
        /// The rule, trimmed.
        pattern: String,
    },
    /// The rule is valid for Helm but its translation was rejected by `globset`.
    #[error(".helmignore line {line}: cannot compile pattern {pattern:?}: {source}")]
    Compile {
        /// 1-based line number.
        line: usize,
        /// The rule, trimmed.
        pattern: String,
        /// The `globset` error.
        source: globset::Error,
    },
}

/// A parsed `.helmignore`: an ordered list of rules.
#[derive(Debug, Default, Clone)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// One parsed rule.
#[derive(Debug, Clone)]
struct Rule {
    /// `!` prefix: Helm's inverted evaluation.
    negate: bool,
    /// `/` suffix: only directories can match.
    must_dir: bool,
    /// Match the base name only (the rule has no `/` once `!` and the
    /// trailing `/` are stripped) rather than the whole relative path.
    basename: bool,
    /// `None` when the pattern can never match anything (Go would fail or
    /// return false on every call).
    matcher: Option<GlobMatcher>,
}

/// Why a single line was rejected.
enum RuleError {
    DoubleStar,
    BadPattern,
    Compile(globset::Error),
}

impl IgnoreRules {
    /// Parse the text of a .helmignore file.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let pattern = raw.trim();
            match parse_rule(pattern) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(RuleError::DoubleStar) => return Err(IgnoreError::DoubleStar { line }),
                Err(RuleError::BadPattern) => {
                    return Err(IgnoreError::BadPattern {
                        line,
                        pattern: pattern.to_owned(),
                    });
                }
                Err(RuleError::Compile(source)) => {
                    return Err(IgnoreError::Compile {
                        line,
                        pattern: pattern.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(Self { rules })
    }

    /// Helm's defaults, always added after the file's rules: `templates/.?*`.
    pub fn with_defaults(mut self) -> Self {
        self.add_defaults();
        self
    }

    /// In-place form of [`IgnoreRules::with_defaults`] (Helm's `AddDefaults`).
    pub fn add_defaults(&mut self) {
        if let Ok(Some(rule)) = parse_rule(DEFAULT_RULE) {
            self.rules.push(rule);
        }
    }

    /// Number of rules (comments and blank lines excluded, defaults included
    /// once added).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `rel_path` is slash-separated and relative to the chart root, e.g. "templates/a.yaml".
    pub fn ignored(&self, rel_path: &str, is_dir: bool) -> bool {
        if matches!(rel_path, "" | "." | "./") {
            return false;
        }
        for rule in &self.rules {
            if rule.negate {
                // Helm: a negated rule ignores what it does not match and
                // passes on what it matches.
                if rule.must_dir && !is_dir {
                    return true;
                }
                if !rule.matches(rel_path) {
                    return true;
                }
                continue;
            }
            if rule.must_dir && !is_dir {
                continue;
            }
            if rule.matches(rel_path) {
                return true;
            }
        }
        false
    }
}

impl Rule {
    fn matches(&self, rel_path: &str) -> bool {
        let Some(matcher) = &self.matcher else {
            return false;
        };
        if self.basename {
            matcher.is_match(go_base(rel_path))
        } else {
            matcher.is_match(rel_path)
        }
    }
}

/// Parse one trimmed line; `Ok(None)` for blank lines and comments.
fn parse_rule(line: &str) -> Result<Option<Rule>, RuleError> {
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    if line.contains("**") {
        return Err(RuleError::DoubleStar);
    }
    // Helm validates the whole line, `!` and trailing `/` included.
    if tokenize(line).is_none() {
        return Err(RuleError::BadPattern);
    }

    let (negate, rest) = match line.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (must_dir, rest) = match rest.strip_suffix('/') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (basename, pattern) = if rest.starts_with('/') {
        (false, rest.trim_start_matches('/'))
    } else {
        (!rest.contains('/'), rest)
    };

    // Stripping the trailing `/` can leave a dangling `\` (`foo\/`): Go then
    // fails on every match and Helm treats that as "no match".
    let matcher = match tokenize(pattern).and_then(|tokens| to_globset(&tokens)) {
        None => None,
        Some(glob) => Some(
            GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(RuleError::Compile)?
                .compile_matcher(),
        ),
    };

    Ok(Some(Rule {
        negate,
        must_dir,
        basename,
        matcher,
    }))
}

/// Go's `filepath.Base` on a slash-separated path.
fn go_base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(slash) => &trimmed[slash + 1..],
        None => trimmed,
    }
}

/// One element of a Go `filepath.Match` pattern.
#[derive(Debug, PartialEq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    Any,
    /// `[...]`: one character (possibly `/`) in, or with `negated` not in,
    /// the ranges. Ranges with `lo > hi` are legal and match nothing.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Tokenize a pattern with Go's `filepath.Match` syntax (Unix flavour);
/// `None` where Go returns `ErrBadPattern`.
fn tokenize(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '?' => {
                tokens.push(Token::Any);
                i += 1;
            }
            '\\' => {
                let escaped = *chars.get(i + 1)?;
                tokens.push(Token::Literal(escaped));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i)?;
                    let hi = if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            literal => {
                tokens.push(Token::Literal(literal));
                i += 1;
            }
        }
    }
    Some(tokens)
}

/// Go's `getEsc`: one (possibly `\`-escaped) character of a class, which
/// may not be `-` or `]` and must not end the pattern.
fn class_char(chars: &[char], i: &mut usize) -> Option<char> {
    let mut c = *chars.get(*i)?;
    if c == '-' || c == ']' {
        return None;
    }
    if c == '\\' {
        *i += 1;
        c = *chars.get(*i)?;
    }
    *i += 1;
    if *i >= chars.len() {
        return None;
    }
    Some(c)
}

/// Translate Go tokens into a `globset` pattern (to be built with
/// `literal_separator(true)` and `backslash_escape(true)`); `None` when the
/// pattern can never match.
fn to_globset(tokens: &[Token]) -> Option<String> {
    let mut glob = String::new();
    for token in tokens {
        match token {
            Token::Literal(c) => push_literal(&mut glob, *c),
            Token::Star => glob.push('*'),
            Token::Any => glob.push('?'),
            Token::Class { negated, ranges } => {
                let set = normalize(ranges);
                if *negated {
                    push_negated_class(&mut glob, &set);
                } else {
                    push_class(&mut glob, &set)?;
                }
            }
        }
    }
    Some(glob)
}

/// A literal character, escaped when globset would give it a meaning.
fn push_literal(glob: &mut String, c: char) {
    if c.is_ascii_punctuation() && c != '/' {
        glob.push('\\');
    }
    glob.push(c);
}

/// A non-negated Go class as a globset alternation of single characters and
/// simple ranges, which sidesteps globset's rules for `]`, `-`, `!` and `^`
/// inside brackets. `None` when the class is empty (matches nothing).
fn push_class(glob: &mut String, set: &[(char, char)]) -> Option<()> {
    let pieces = split_out(set, &[']', '-', '!', '^']);
    let push_piece = |glob: &mut String, &(lo, hi): &(char, char)| {
        if lo == hi {
            push_literal(glob, lo);
        } else {
            glob.push('[');
            glob.push(lo);
            glob.push('-');
            glob.push(hi);
            glob.push(']');
        }
    };
    match pieces.as_slice() {
        [] => return None,
        [piece] => push_piece(glob, piece),
        _ => {
            glob.push('{');
            for (n, piece) in pieces.iter().enumerate() {
                if n > 0 {
                    glob.push(',');
                }
                push_piece(glob, piece);
            }
            glob.push('}');
        }
    }
    Some(())
}

/// A negated Go class as a globset `[^...]` class: `]` first, `-` last,
/// everything else as characters or ranges. Like Go's, it can match `/`.
fn push_negated_class(glob: &mut String, set: &[(char, char)]) {
    if set.is_empty() {
        // Excludes nothing: any one character, `/` included.
        glob.push_str("{?,/}");
        return;
    }
    let pieces = split_out(set, &[']', '-']);
    glob.push_str("[^");
    if pieces.contains(&(']', ']')) {
        glob.push(']');
    }
    for &(lo, hi) in &pieces {
        if lo == ']' || lo == '-' {
            continue;
        }
        glob.push(lo);
        if lo != hi {
            glob.push('-');
            glob.push(hi);
        }
    }
    if pieces.contains(&('-', '-')) {
        glob.push('-');
    }
    glob.push(']');
}

/// Drop empty (`lo > hi`) ranges, sort, and merge overlapping or adjacent ones.
fn normalize(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut sorted: Vec<(char, char)> =
        ranges.iter().copied().filter(|(lo, hi)| lo <= hi).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(char, char)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        if let Some(last) = merged.last_mut()
            && u32::from(lo) <= u32::from(last.1).saturating_add(1)
        {
            last.1 = last.1.max(hi);
            continue;
        }
        merged.push((lo, hi));
    }
    merged
}

/// Split disjoint ranges so that each of the (ASCII) `specials` they contain
/// becomes a single-character range of its own.
fn split_out(set: &[(char, char)], specials: &[char]) -> Vec<(char, char)> {
    let mut specials: Vec<char> = specials.to_vec();
    specials.sort_unstable();
    let mut pieces = Vec::new();
    for &(lo, hi) in set {
        let mut start = Some(lo);
        for &special in specials.iter().filter(|&&s| lo <= s && s <= hi) {
            if let Some(from) = start.filter(|&from| from < special) {
                pieces.push((from, ascii_offset(special, -1)));
            }
            pieces.push((special, special));
            start = (special < hi).then(|| ascii_offset(special, 1));
        }
        if let Some(from) = start {
            pieces.push((from, hi));
        }
    }
    pieces
}

/// The ASCII character `delta` away from `c` (callers stay inside ASCII
/// punctuation, so this never leaves the ASCII range).
fn ascii_offset(c: char, delta: i8) -> char {
    let byte = u8::try_from(c).unwrap_or(b'~');
    char::from(byte.wrapping_add_signed(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(rules, path, is_dir, ignored)`: every rule file is parsed on its own.
    const CASES: &[(&str, &str, bool, bool)] = &[
        // Helm's own rules_test.go table, re-expressed.
        ("helm.txt", "helm.txt", false, true),
        ("helm.*", "helm.txt", false, true),
        ("helm.*", "rudder.txt", false, false),
        ("*.txt", "tiller.txt", false, true),
        ("*.txt", "cargo/a.txt", false, true),
        ("cargo/*.txt", "cargo/a.txt", false, true),
        ("cargo/*.*", "cargo/a.txt", false, true),
        ("cargo/*.txt", "mast/a.txt", false, false),
        ("ru[c-e]?er.txt", "rudder.txt", false, true),
        ("templates/.?*", "templates/.dotfile", false, true),
        (".*", ".", true, false),
        (".*", "./", true, false),
        (".*", ".joonix", false, true),
        (".*", "helm.txt", false, false),
        (".*", "", true, false),
        ("cargo/", "cargo", true, true),
        ("cargo/", "cargo/", true, true),
        ("cargo/", "mast/", true, false),
        ("helm.txt/", "helm.txt", false, false),
        ("!helm.txt", "helm.txt", false, false),
        ("!helm.txt", "tiller.txt", false, true),
        ("!*.txt", "cargo", true, true),
        ("!cargo/", "mast/", true, true),
        ("/a.txt", "a.txt", false, true),
        ("/a.txt", "cargo/a.txt", false, false),
        ("/cargo/a.txt", "cargo/a.txt", false, true),
        // Trimming, blank lines and comments.
        (
            "# comment\n\n   \n\t helm.txt \r\n",
            "helm.txt",
            false,
            true,
        ),
        ("#helm.txt", "helm.txt", false, false),
        ("  # helm.txt", "helm.txt", false, false),
        ("\\#helm.txt", "#helm.txt", false, true),
        // First decisive rule wins; `!` never re-includes.
        ("*.txt\n!keep.txt", "keep.txt", false, true),
        ("!*.yaml\n*.yaml", "a.yaml", false, true),
        ("!*.yaml\n*.yaml", "b.txt", false, true),
        ("!*.yaml", "a.yaml", false, false),
        ("!helm.txt\nother", "helm.txt", false, false),
        // Directory-only rules.
        ("cargo/", "cargo", false, false),
        ("!templates/", "templates", true, false),
        ("!templates/", "Chart.yaml", false, true),
        ("!templates/", "charts", true, true),
        ("/cargo/", "cargo", true, true),
        ("/cargo/", "x/cargo", true, false),
        // Base name versus whole path.
        ("*.txt", "a/b/c.txt", false, true),
        ("cargo", "x/cargo/", true, true),
        ("a/b", "x/a/b", false, false),
        ("templates/*.yaml", "templates/sub/a.yaml", false, false),
        ("x/a?b", "x/a/b", false, false),
        ("*", "a/b", false, true),
        // Go syntax, not gitignore/globset syntax.
        ("{a,b}.txt", "a.txt", false, false),
        ("{a,b}.txt", "{a,b}.txt", false, true),
        ("[!a].txt", "b.txt", false, false),
        ("[!a].txt", "!.txt", false, true),
        ("[!a].txt", "a.txt", false, true),
        ("[^a].txt", "b.txt", false, true),
        ("[^a].txt", "a.txt", false, false),
        ("[\\]a]", "]", false, true),
        ("[\\]-a]", "^", false, true),
        ("[+-\\-]", ",", false, true),
        ("[+-\\-]", ".", false, false),
        ("[^\\]\\-]x", "-x", false, false),
        ("[^\\]\\-]x", "]x", false, false),
        ("[^\\]\\-]x", "ax", false, true),
        ("[!^]", "^", false, true),
        ("[!^]", "a", false, false),
        ("[z-a]x", "zx", false, false),
        ("[z-a]x", "ax", false, false),
        ("[^z-a]x", "bx", false, true),
        ("a[^x]b/c", "a/b/c", false, true),
        ("a[/]b", "a/b", false, true),
        ("\\*.txt", "*.txt", false, true),
        ("\\*.txt", "a.txt", false, false),
        ("a,b", "a,b", false, true),
        ("é*", "été", false, true),
        // Root is never ignored, even by a rule that ignores everything else.
        ("!", "a", false, true),
        ("!", "", true, false),
        ("!", ".", true, false),
        ("!", "./", true, false),
        ("*", "", true, false),
        // Corners of Helm's stripping.
        ("//a.txt", "a.txt", false, true),
        ("foo\\/", "foo", true, false),
        ("!foo\\/", "foo", true, true),
        ("/", "a", true, false),
    ];

    #[test]
    fn table() {
        for &(rules, path, is_dir, expected) in CASES {
            let parsed = IgnoreRules::parse(rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"));
            assert_eq!(
                parsed.ignored(path, is_dir),
                expected,
                "rules {rules:?}, path {path:?}, is_dir {is_dir}"
            );
        }
    }

    #[test]
    fn defaults() {
        let rules = IgnoreRules::default().with_defaults();
        assert_eq!(rules.len(), 1);
        for (path, is_dir, expected) in [
            ("templates/.dotfile", false, true),
            ("templates/.helmignore", false, true),
            ("templates/.hidden", true, true),
            ("templates/.", false, false),
            ("templates/a.yaml", false, false),
            ("templates/sub/.x", false, false),
            (".x", false, false),
            ("templates", true, false),
        ] {
            assert_eq!(rules.ignored(path, is_dir), expected, "{path:?}");
        }
    }

    #[test]
    fn defaults_come_after_file_rules() {
        let mut rules = IgnoreRules::parse("!templates/.keep").unwrap();
        rules.add_defaults();
        assert_eq!(rules.len(), 2);
        // The negated file rule is evaluated first and passes `.keep` on, so
        // the default then ignores it; everything else is ignored by the
        // negated rule itself.
        assert!(rules.ignored("templates/.keep", false));
        assert!(rules.ignored("Chart.yaml", false));
    }

    #[test]
    fn parse_counts_rules_like_helm() {
        let text = "#ignore\n\n\t#ignore\nfoo\nbar/*\nbaz/bar/foo.txt\n\none/more\n";
        let rules = IgnoreRules::parse(text).unwrap();
        assert_eq!(rules.len(), 4);
        assert!(IgnoreRules::parse("").unwrap().is_empty());
        assert!(IgnoreRules::parse("# only\n\n").unwrap().is_empty());
    }

    #[test]
    fn double_star_is_an_error() {
        for text in ["foo/**/bar", "**", "!**", "a**", "[**]"] {
            let err = IgnoreRules::parse(text).unwrap_err();
            assert!(
                matches!(err, IgnoreError::DoubleStar { line: 1 }),
                "{text:?}: {err:?}"
            );
        }
        let err = IgnoreRules::parse("ok\n\n# **\n  foo/**/bar  ").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".helmignore line 4: double-star (**) syntax is not supported"
        );
    }

    #[test]
    fn bad_patterns_are_errors() {
        for text in [
            "[z-", "[", "[]", "[^]", "[a", "[a-", "[a-]", "[-a]", "abc[", "a\\", "\\", "[\\",
            "[a\\", "x[]a]", "![", "[a]/[", "[]a]", "[]-a]x", "[+--]",
        ] {
            let err = IgnoreRules::parse(text).unwrap_err();
            assert!(
                matches!(err, IgnoreError::BadPattern { line: 1, .. }),
                "{text:?}: {err:?}"
            );
        }
        let err = IgnoreRules::parse("a\nb\n[z-").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".helmignore line 3: syntax error in pattern \"[z-\""
        );
    }

    #[test]
    fn valid_odd_patterns_parse() {
        for text in [
            "[\\]]", "[\\-]", "[!]", "[^^]", "[z-a]", "foo\\/", "!", "/", "{", "}", "a]b", "[[]",
            "[é-ü]",
        ] {
            assert!(IgnoreRules::parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn tokenizer_follows_go() {
        assert_eq!(
            tokenize("a*?[^b-c\\]]\\*"),
            Some(vec![
                Token::Literal('a'),
                Token::Star,
                Token::Any,
                Token::Class {
                    negated: true,
                    ranges: vec![('b', 'c'), (']', ']')],
                },
                Token::Literal('*'),
            ])
        );
        assert_eq!(
            tokenize("[a]"),
            Some(vec![Token::Class {
                negated: false,
                ranges: vec![('a', 'a')]
            }])
        );
        assert_eq!(tokenize("[a-]"), None);
    }

    #[test]
    fn class_translation() {
        let glob = |p: &str| tokenize(p).and_then(|t| to_globset(&t));
        assert_eq!(glob("[a]").as_deref(), Some("a"));
        assert_eq!(glob("[ab]").as_deref(), Some("[a-b]"));
        assert_eq!(glob("[!a]").as_deref(), Some("{\\!,a}"));
        assert_eq!(
            glob("[ -~]").as_deref(),
            Some("{ ,\\!,[\"-,],\\-,[.-\\],\\],\\^,[_-~]}")
        );
        assert_eq!(glob("[^ -~]").as_deref(), Some("[^] -,.-\\^-~-]"));
        assert_eq!(glob("[z-a]"), None);
        assert_eq!(glob("[^z-a]").as_deref(), Some("{?,/}"));
        assert_eq!(glob("{a,b}").as_deref(), Some("\\{a\\,b\\}"));
    }

    #[test]
    fn go_base_matches_filepath_base() {
        for (path, base) in [
            ("", "."),
            ("/", "/"),
            ("//", "/"),
            ("a", "a"),
            ("a/b", "b"),
            ("a/b/", "b"),
            ("a/b//", "b"),
        ] {
            assert_eq!(go_base(path), base, "{path:?}");
        }
    }
}
