//! Go templates (`text/template`) read into a tree: text, actions, `if`/`with`/`range` blocks,
//! `define`/`template`/`block`, and pipelines of fields, variables, literals and function calls.
//!
//! Only the tree is built here; [`super::eval`] decides what it can evaluate. The grammar is
//! Go's, with trim markers (`{{-`, `-}}`) and comments (`{{/* */}}`); what does not parse makes
//! the whole file unreadable, as it would make Helm fail.

use std::rc::Rc;

/// Longest template text parsed (Helm's per-file limit).
pub const MAX_TEMPLATE: usize = 5 * 1024 * 1024;
/// Deepest nesting of blocks and parentheses.
const MAX_NESTING: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ParseError {
    pub line: u32,
    pub what: String,
}

fn err<T>(line: u32, what: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        what: what.into(),
    })
}

/// A node of the tree. Lines are 1-based lines of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum TNode {
    /// Text, its first line, and whether it runs to the end of its last line (rather than
    /// stopping where an action on the same line begins).
    Text(String, u32, bool),
    Action(Pipe, u32),
    If(Vec<(Pipe, Vec<TNode>)>, Vec<TNode>),
    With(Vec<(Pipe, Vec<TNode>)>, Vec<TNode>),
    Range(Pipe, Vec<TNode>, Vec<TNode>),
    Template(String, Option<Pipe>, u32),
    Break,
    Continue,
}

/// `[$x :=] cmd | cmd …`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipe {
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.` (empty) or `.a.b`.
    Field(Vec<String>),
    /// `$` (empty name) or `$x`, with fields after it.
    Var(String, Vec<String>),
    /// A function name.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `( pipe )`, with fields after it.
    Group(Box<Pipe>, Vec<String>),
}

/// A parsed file: its top-level nodes and the templates it defines.
#[derive(Debug, Default)]
pub struct Parsed {
    pub nodes: Vec<TNode>,
    pub defines: Vec<(String, Rc<Vec<TNode>>)>,
}

/// A raw piece of the file: text, or the inside of `{{ }}` without trim markers.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String, u32, bool),
    Action(String, u32),
}

/// Splits the file into text and actions, applying trim markers and dropping comments.
fn pieces(src: &str) -> Result<Vec<Piece>, ParseError> {
    let mut out: Vec<Piece> = Vec::new();
    let mut line: u32 = 1;
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut out, rest, line, trim_next);
            break;
        };
        let text = &rest[..open];
        let after = &rest[open + 2..];
        let trim_left = after.starts_with('-') && after[1..].starts_with([' ', '\t', '\n', '\r']);
        let mut text_owned = text.to_string();
        if trim_next {
            text_owned = text_owned.trim_start().to_string();
        }
        // The text ends its line when what `{{-` trims holds the line break; otherwise the
        // action that follows is on the same line.
        let ends_line = trim_left && text[text.trim_end().len()..].contains('\n');
        if trim_left {
            text_owned = text_owned.trim_end().to_string();
        }
        let text_line = line
            + count_lines(&text[..text.len() - text.trim_start().len()]) * u32::from(trim_next);
        if !text_owned.is_empty() {
            out.push(Piece::Text(text_owned, text_line, ends_line));
        }
        line += count_lines(text);
        let body_start = if trim_left { &after[1..] } else { after };
        let action_line = line;
        let end = find_close(body_start).ok_or(ParseError {
            line: action_line,
            what: "unclosed action ('{{' without '}}')".into(),
        })?;
        let mut body = &body_start[..end];
        let trim_right =
            body.ends_with('-') && body[..body.len() - 1].ends_with([' ', '\t', '\n', '\r']);
        if trim_right {
            body = &body[..body.len() - 1];
        }
        line += count_lines(&body_start[..end]);
        rest = &body_start[end + 2..];
        trim_next = trim_right;
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return err(action_line, "unclosed comment");
            }
            continue;
        }
        out.push(Piece::Action(body.to_string(), action_line));
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Piece>, text: &str, line: u32, trim: bool) {
    let t = if trim { text.trim_start() } else { text };
    let skipped = count_lines(&text[..text.len() - t.len()]);
    if !t.is_empty() {
        out.push(Piece::Text(t.to_string(), line + skipped, true));
    }
}

fn count_lines(s: &str) -> u32 {
    u32::try_from(s.bytes().filter(|&b| b == b'\n').count()).unwrap_or(u32::MAX)
}

/// The offset of the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/")?;
                i += end + 3;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A token inside an action.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    /// Fields right after a `)` (`(…).a.b`).
    Chain(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `.a.b.c` starting at a '.', as field names.
fn fields(chars: &[char], i: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && is_ident(chars[j]) {
            j += 1;
        }
        if j == start {
            break;
        }
        out.push(chars[start..j].iter().collect());
        *i = j;
    }
    out
}

fn tokens(body: &str, line: u32) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                let after_paren =
                    matches!(out.last(), Some(Tok::RParen)) && i > 0 && chars[i - 1] == ')';
                let f = fields(&chars, &mut i);
                if f.is_empty() {
                    i += 1;
                    out.push(Tok::Field(Vec::new()));
                } else if after_paren {
                    out.push(Tok::Chain(f));
                } else {
                    out.push(Tok::Field(f));
                }
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                let f = fields(&chars, &mut i);
                out.push(Tok::Var(name, f));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return err(line, "unterminated string");
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let Some(&e) = chars.get(i) else {
                                return err(line, "unterminated string");
                            };
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        c => s.push(c),
                    }
                }
                out.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '`') else {
                    return err(line, "unterminated raw string");
                };
                out.push(Tok::Str(chars[start..start + len].iter().collect()));
                i = start + len + 1;
            }
            '\'' => {
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '\'') else {
                    return err(line, "unterminated character");
                };
                let text: String = chars[start..start + len].iter().collect();
                let ch = text.trim_start_matches('\\').chars().next().unwrap_or('\0');
                out.push(Tok::Int(i64::from(u32::from(ch))));
                i = start + len + 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() {
                    let ch = chars[i];
                    let exponent_sign =
                        matches!(ch, '+' | '-') && matches!(chars[i - 1], 'e' | 'E');
                    if !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' || exponent_sign) {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
                out.push(number(&text, line)?);
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(Tok::Ident(word));
            }
            other => return err(line, format!("unexpected {other:?} in an action")),
        }
    }
    Ok(out)
}

fn number(text: &str, line: u32) -> Result<Tok, ParseError> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let parsed = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else {
        digits.parse::<i64>().ok()
    };
    if let Some(n) = parsed {
        return Ok(Tok::Int(if neg { -n } else { n }));
    }
    match text.parse::<f64>() {
        Ok(f) => Ok(Tok::Float(f)),
        Err(_) => err(line, format!("bad number {text:?}")),
    }
}

/// Parses a whole template file.
pub fn parse(src: &str) -> Result<Parsed, ParseError> {
    if src.len() > MAX_TEMPLATE {
        return err(0, "the template is larger than 5 MiB");
    }
    let pieces = pieces(src)?;
    let mut parser = Parser {
        pieces,
        pos: 0,
        defines: Vec::new(),
        depth: 0,
    };
    let (nodes, end) = parser.list()?;
    if let Some((word, line)) = end {
        return err(line, format!("unexpected {{{{{word}}}}}"));
    }
    Ok(Parsed {
        nodes,
        defines: parser.defines,
    })
}

struct Parser {
    pieces: Vec<Piece>,
    pos: usize,
    defines: Vec<(String, Rc<Vec<TNode>>)>,
    depth: usize,
}

/// What ended a list of nodes: `end`, `else`, `else if …`, `else with …`.
type Terminator = Option<(String, u32)>;

impl Parser {
    /// Nodes up to an `end` or `else` (returned) or the end of the file.
    fn list(&mut self) -> Result<(Vec<TNode>, Terminator), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return err(0, "blocks nested too deep");
        }
        let mut nodes = Vec::new();
        while self.pos < self.pieces.len() {
            let piece = std::mem::replace(
                &mut self.pieces[self.pos],
                Piece::Text(String::new(), 0, false),
            );
            self.pos += 1;
            let (body, line) = match piece {
                Piece::Text(t, line, ends_line) => {
                    nodes.push(TNode::Text(t, line, ends_line));
                    continue;
                }
                Piece::Action(body, line) => (body, line),
            };
            let trimmed = body.trim();
            let (word, rest) = match trimmed.find(|c: char| c.is_whitespace()) {
                Some(i) => (&trimmed[..i], trimmed[i..].trim()),
                None => (trimmed, ""),
            };
            match word {
                "end" => {
                    self.depth -= 1;
                    return Ok((nodes, Some(("end".into(), line))));
                }
                "else" => {
                    self.depth -= 1;
                    return Ok((
                        nodes,
                        Some((format!("else {rest}").trim().to_string(), line)),
                    ));
                }
                "if" | "with" => {
                    let node = self.conditional(word, rest, line)?;
                    nodes.push(node);
                }
                "range" => {
                    let pipe = pipe(rest, line, true)?;
                    let (body, end) = self.list()?;
                    let otherwise = match end {
                        Some((w, _)) if w == "end" => Vec::new(),
                        Some((w, _)) if w == "else" => self.expect_end(line)?,
                        _ => return err(line, "range without end"),
                    };
                    nodes.push(TNode::Range(pipe, body, otherwise));
                }
                "define" => {
                    let name = quoted_name(rest, line)?;
                    let (body, end) = self.list()?;
                    if !matches!(&end, Some((w, _)) if w == "end") {
                        return err(line, "define without end");
                    }
                    self.defines.push((name, Rc::new(body)));
                }
                "block" => {
                    let (name, arg) = name_and_pipe(rest, line)?;
                    let (body, end) = self.list()?;
                    if !matches!(&end, Some((w, _)) if w == "end") {
                        return err(line, "block without end");
                    }
                    self.defines.push((name.clone(), Rc::new(body)));
                    nodes.push(TNode::Template(name, arg, line));
                }
                "template" => {
                    let (name, arg) = name_and_pipe(rest, line)?;
                    nodes.push(TNode::Template(name, arg, line));
                }
                "break" => nodes.push(TNode::Break),
                "continue" => nodes.push(TNode::Continue),
                _ => nodes.push(TNode::Action(pipe(trimmed, line, false)?, line)),
            }
        }
        self.depth -= 1;
        Ok((nodes, None))
    }

    fn expect_end(&mut self, line: u32) -> Result<Vec<TNode>, ParseError> {
        let (body, end) = self.list()?;
        match end {
            Some((w, _)) if w == "end" => Ok(body),
            _ => err(line, "a block without its end"),
        }
    }

    /// `if`/`with` with their `else if`/`else with` chains.
    fn conditional(&mut self, word: &str, rest: &str, line: u32) -> Result<TNode, ParseError> {
        let mut branches = Vec::new();
        let mut cond = pipe(rest, line, false)?;
        loop {
            let (body, end) = self.list()?;
            branches.push((cond, body));
            let Some((term, tline)) = end else {
                return err(line, format!("{word} without end"));
            };
            if term == "end" {
                return Ok(make(word, branches, Vec::new()));
            }
            let chained = term
                .strip_prefix("else ")
                .and_then(|r| r.strip_prefix(word))
                .filter(|r| r.starts_with(char::is_whitespace));
            match chained {
                Some(next) => cond = pipe(next.trim(), tline, false)?,
                None if term == "else" => {
                    let otherwise = self.expect_end(line)?;
                    return Ok(make(word, branches, otherwise));
                }
                None => return err(tline, format!("unexpected {{{{{term}}}}}")),
            }
        }
    }
}

fn make(word: &str, branches: Vec<(Pipe, Vec<TNode>)>, otherwise: Vec<TNode>) -> TNode {
    if word == "if" {
        TNode::If(branches, otherwise)
    } else {
        TNode::With(branches, otherwise)
    }
}

fn quoted_name(rest: &str, line: u32) -> Result<String, ParseError> {
    match tokens(rest, line)?.as_slice() {
        [Tok::Str(s)] => Ok(s.clone()),
        _ => err(line, "a template name must be a quoted string"),
    }
}

fn name_and_pipe(rest: &str, line: u32) -> Result<(String, Option<Pipe>), ParseError> {
    let toks = tokens(rest, line)?;
    let Some((Tok::Str(name), args)) = toks.split_first() else {
        return err(line, "a template name must be a quoted string");
    };
    let arg = if args.is_empty() {
        None
    } else {
        Some(
            PipeParser {
                toks: args,
                pos: 0,
                line,
                depth: 0,
            }
            .pipe(false)?,
        )
    };
    Ok((name.clone(), arg))
}

/// Parses a pipeline (with `$i, $e :=` allowed when `range`).
pub fn pipe(text: &str, line: u32, range: bool) -> Result<Pipe, ParseError> {
    let toks = tokens(text, line)?;
    PipeParser {
        toks: &toks,
        pos: 0,
        line,
        depth: 0,
    }
    .pipe(range)
}

struct PipeParser<'a> {
    toks: &'a [Tok],
    pos: usize,
    line: u32,
    depth: usize,
}

impl PipeParser<'_> {
    fn pipe(&mut self, range: bool) -> Result<Pipe, ParseError> {
        let mut p = Pipe::default();
        // Declarations: `$x :=`, `$x =`, or (range) `$i, $e :=`.
        let mut look = self.pos;
        let mut names = Vec::new();
        while let Some(Tok::Var(name, f)) = self.toks.get(look) {
            if !f.is_empty() {
                break;
            }
            names.push(name.clone());
            look += 1;
            match self.toks.get(look) {
                Some(Tok::Comma) if range && names.len() == 1 => look += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    p.assign = matches!(self.toks[look], Tok::Assign);
                    p.decl = std::mem::take(&mut names);
                    self.pos = look + 1;
                    break;
                }
                _ => break,
            }
        }
        loop {
            let cmd = self.command()?;
            if cmd.is_empty() {
                return err(self.line, "missing value in a pipeline");
            }
            p.cmds.push(cmd);
            match self.toks.get(self.pos) {
                Some(Tok::Pipe) => self.pos += 1,
                None | Some(Tok::RParen) => return Ok(p),
                Some(t) => return err(self.line, format!("unexpected {t:?} in a pipeline")),
            }
        }
    }

    fn command(&mut self) -> Result<Vec<Arg>, ParseError> {
        let mut args = Vec::new();
        while let Some(tok) = self.toks.get(self.pos) {
            let arg = match tok {
                Tok::Pipe | Tok::RParen => break,
                Tok::Field(f) => Arg::Field(f.clone()),
                Tok::Var(n, f) => Arg::Var(n.clone(), f.clone()),
                Tok::Ident(w) => match w.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    _ => Arg::Ident(w.clone()),
                },
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Int(i) => Arg::Int(*i),
                Tok::Float(f) => Arg::Float(*f),
                Tok::LParen => {
                    self.depth += 1;
                    if self.depth > MAX_NESTING {
                        return err(self.line, "parentheses nested too deep");
                    }
                    self.pos += 1;
                    let inner = self.pipe(false)?;
                    if self.toks.get(self.pos) != Some(&Tok::RParen) {
                        return err(self.line, "unclosed '('");
                    }
                    self.depth -= 1;
                    let chain = match self.toks.get(self.pos + 1) {
                        Some(Tok::Chain(f)) => {
                            self.pos += 1;
                            f.clone()
                        }
                        _ => Vec::new(),
                    };
                    Arg::Group(Box::new(inner), chain)
                }
                Tok::Chain(_) | Tok::Declare | Tok::Assign | Tok::Comma => {
                    return err(self.line, format!("unexpected {tok:?}"));
                }
            };
            args.push(arg);
            self.pos += 1;
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(nodes: &[TNode]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| match n {
                TNode::Text(t, l, _) => format!("{l}:{t:?}"),
                TNode::Action(_, l) => format!("{l}:action"),
                other => format!("{other:?}").chars().take(12).collect(),
            })
            .collect()
    }

    #[test]
    fn trim_markers_and_comments() {
        let p = parse("a  {{- .x -}}  b\n{{/* note */}}c {{- /* x */ -}} d").unwrap();
        assert_eq!(
            texts(&p.nodes),
            ["1:\"a\"", "1:action", "1:\"b\\n\"", "2:\"c\"", "2:\"d\""]
        );
    }

    #[test]
    fn lines_follow_the_file() {
        let p = parse("x\n\ny: {{ .a }}\n{{- if .b }}\nz\n{{- end }}\n").unwrap();
        let TNode::Action(_, line) = &p.nodes[1] else {
            panic!("{:?}", p.nodes)
        };
        assert_eq!(*line, 3);
        let TNode::If(branches, _) = &p.nodes[2] else {
            panic!("{:?}", p.nodes)
        };
        // The text starts with the line break that ends line 4.
        assert_eq!(texts(&branches[0].1), ["4:\"\\nz\""]);
    }

    #[test]
    fn blocks_and_defines() {
        let src = r#"{{- define "x.image" -}}{{ .Values.a }}{{- end -}}
{{ if .a }}1{{ else if .b }}2{{ else }}3{{ end }}
{{ with .Values.image }}{{ .repository }}{{ end }}
{{ range $i, $e := .Values.list }}{{ $e }}{{ end }}
{{ template "x.image" . }}{{ include "x.image" $ | quote }}"#;
        let p = parse(src).unwrap();
        assert_eq!(p.defines.len(), 1);
        assert_eq!(p.defines[0].0, "x.image");
        assert!(
            p.nodes
                .iter()
                .any(|n| matches!(n, TNode::If(b, e) if b.len() == 2 && !e.is_empty()))
        );
        assert!(
            p.nodes
                .iter()
                .any(|n| matches!(n, TNode::Range(pipe, _, _) if pipe.decl == ["i", "e"]))
        );
        assert!(
            p.nodes
                .iter()
                .any(|n| matches!(n, TNode::Template(name, Some(_), _) if name == "x.image"))
        );
    }

    #[test]
    fn pipelines() {
        let p = pipe(
            r#"$tag := .Values.image.tag | default .Chart.AppVersion | toString"#,
            1,
            false,
        )
        .unwrap();
        assert_eq!(p.decl, ["tag"]);
        assert_eq!(p.cmds.len(), 3);
        assert_eq!(
            p.cmds[0],
            [Arg::Field(vec![
                "Values".into(),
                "image".into(),
                "tag".into()
            ])]
        );
        let p = pipe(r#"printf "%s:%s" (.Values.a).b $x.y 1.5 -2 'a'"#, 1, false).unwrap();
        assert_eq!(
            p.cmds[0][2],
            Arg::Group(
                Box::new(Pipe {
                    cmds: vec![vec![Arg::Field(vec!["Values".into(), "a".into()])]],
                    ..Pipe::default()
                }),
                vec!["b".into()]
            )
        );
        assert_eq!(p.cmds[0][3], Arg::Var("x".into(), vec!["y".into()]));
        assert_eq!(p.cmds[0][4], Arg::Float(1.5));
        assert_eq!(p.cmds[0][5], Arg::Int(-2));
        assert_eq!(p.cmds[0][6], Arg::Int(97));
    }

    #[test]
    fn broken_templates_are_errors() {
        for bad in [
            "{{ .a ",
            "{{ if .a }}x",
            "{{ end }}",
            "{{ \"x }}",
            "{{ define x }}{{ end }}",
            "{{ ( .a }}",
            "{{ .a | }}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "{{ if .a }}".repeat(5000);
        assert!(parse(&deep).is_err());
        let parens = format!("{{{{ {}.a{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&parens).is_err());
    }
}
