//! Renders a parsed template as far as it can be known without a cluster or a release.
//!
//! Values, the chart's metadata, variables, `if`/`with`/`range` over known values, `define`d
//! templates (`template`, `include`), `dict`/`list` and the string functions charts use to
//! build image references (`default`, `printf`, `quote`, `toString`, `trim…`, …) are evaluated
//! as Helm evaluates them. Everything else (the release name, the cluster's capabilities, files,
//! `tpl`, functions not listed here) is *unknown*: printed as [`UNKNOWN`], so a line that
//! depends on it can be told apart. A condition that cannot be decided renders every branch
//! when the branches are whole lines (each could be the one that runs), and prints
//! [`UNKNOWN`] when they are part of a line (no branch can be chosen).
//!
//! Work is bounded: a step budget and an output cap stop a template that loops or expands
//! without end ([`Abort`]).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::funcs;
use super::parse::{Arg, Pipe, TNode};
use crate::chart::images::values::{Node, Value, go_float};

/// Printed where a value cannot be known. A noncharacter, so no chart text contains it.
pub const UNKNOWN: char = '\u{FFFF}';

/// Steps (nodes and function calls) one chart's templates may take in all.
pub const MAX_STEPS: u64 = 5_000_000;
/// Longest output of one rendered file.
pub const MAX_OUTPUT: usize = 32 * 1024 * 1024;
/// Deepest `template`/`include` nesting (Helm's own limit is 1000; real charts use < 10).
const MAX_CALL_DEPTH: usize = 32;
/// The stack rendering needs at the limits (nesting, calls, parentheses), with room to spare:
/// callers run it on a thread of this size (see the test of the deepest template).
pub const STACK_SIZE: usize = 64 << 20;
/// Most items a `range` over a number may go through.
const MAX_RANGE: i64 = 100_000;

/// Identifies a template file, for the lines the output came from.
pub type FileId = u32;

/// A `define`d template.
#[derive(Debug, Clone)]
pub struct Define {
    pub file: FileId,
    pub body: Rc<Vec<TNode>>,
}

/// What a template can see.
pub struct Env<'a> {
    pub values: &'a Node,
    pub chart_name: &'a str,
    pub chart_version: &'a str,
    pub app_version: &'a str,
    pub defines: &'a HashMap<String, Define>,
}

/// The rendering stopped: over the step budget or the output cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort;

/// Rendered text and where each piece of it came from.
#[derive(Debug, Default)]
pub struct Out {
    pub text: String,
    /// `(offset, file, line, literal)`: the output from `offset` on came from that line (and,
    /// for template text, the lines after it), as its text (`literal`) or printed by an
    /// action on it.
    pub marks: Vec<(usize, FileId, u32, bool)>,
    /// `(offset, values)`: the values printed by the action that wrote at `offset`.
    pub reads: Vec<(usize, Vec<*const Node>)>,
}

impl Out {
    fn push(&mut self, text: &str, file: FileId, line: u32, literal: bool) -> Result<(), Abort> {
        if self.text.len() + text.len() > MAX_OUTPUT {
            return Err(Abort);
        }
        if !text.is_empty() {
            self.marks.push((self.text.len(), file, line, literal));
            self.text.push_str(text);
        }
        Ok(())
    }

    /// The file and line the output at `offset` came from, and whether it is that line's
    /// own text (rather than what an action on it printed).
    pub fn origin(&self, offset: usize) -> Option<(FileId, u32, bool)> {
        let i = self.marks.partition_point(|(o, _, _, _)| *o <= offset);
        let (start, file, line, literal) = *self.marks.get(i.checked_sub(1)?)?;
        // A piece of template text spans lines; what an action printed stays on its line.
        let more = if literal {
            let before = self.text.get(start..offset)?;
            u32::try_from(before.bytes().filter(|&b| b == b'\n').count()).unwrap_or(u32::MAX)
        } else {
            0
        };
        Some((file, line.saturating_add(more), literal))
    }

    /// The values printed on the output from `start` to `end`.
    pub fn reads_between(
        &self,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = *const Node> + '_ {
        // Reads are in output order.
        let from = self.reads.partition_point(|(o, _)| *o < start);
        self.reads[from..]
            .iter()
            .take_while(move |(o, _)| *o < end)
            .flat_map(|(_, ptrs)| ptrs.iter().copied())
    }

    /// The lines `keep` wants, with their origin, when the line's own text holds them.
    fn kept_lines(&self, keep: fn(&str) -> bool) -> Vec<CapturedLine> {
        let mut kept = Vec::new();
        let mut start = 0;
        for line in self.text.split_inclusive('\n') {
            let (s, e) = (start, start + line.len());
            start = e;
            let trimmed = line.trim();
            if !keep(trimmed) {
                continue;
            }
            let at = s + (line.len() - line.trim_start().len());
            if let Some((file, l, true)) = self.origin(at) {
                kept.push(CapturedLine {
                    text: trimmed.to_string(),
                    file,
                    line: l,
                    reads: self.reads_between(s, e).collect(),
                });
            }
        }
        kept
    }
}

/// A line of interest (see [`Renderer::new`]) in what an `include` returned, with where it
/// was written: once the include's text is indented and printed, only its content says
/// which line it was.
#[derive(Debug, Clone)]
pub struct CapturedLine {
    pub text: String,
    pub file: FileId,
    pub line: u32,
    pub reads: Vec<*const Node>,
}

/// Lines of interest kept from includes and skipped branches, at most.
const MAX_KEPT_LINES: usize = 100_000;

#[derive(Debug, Clone)]
pub enum Val<'a> {
    Unknown,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Node(&'a Node),
    /// The top-level object (`$` of the chart): `.Values`, `.Chart`, `.Release`…
    Root,
    Chart,
    /// `.Release`, `.Capabilities`, `.Files`, `.Template`: nothing in them is known.
    Opaque,
    Dict(Rc<BTreeMap<String, Val<'a>>>),
    List(Rc<Vec<Val<'a>>>),
}

impl<'a> Val<'a> {
    /// Go's truth (`if`): `None` when it cannot be known.
    fn truth(&self) -> Option<bool> {
        match self {
            Val::Unknown | Val::Opaque => None,
            Val::Null => Some(false),
            Val::Bool(b) => Some(*b),
            Val::Int(i) => Some(*i != 0),
            Val::Float(f) => Some(*f != 0.0),
            Val::Str(s) => Some(!s.is_empty()),
            Val::Node(n) => Some(n.truthy()),
            Val::Root | Val::Chart => Some(true),
            Val::Dict(d) => Some(!d.is_empty()),
            Val::List(l) => Some(!l.is_empty()),
        }
    }

    fn is_unknown(&self) -> bool {
        matches!(self, Val::Unknown | Val::Opaque)
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// One chart's rendering state.
pub struct Renderer<'a> {
    env: &'a Env<'a>,
    vars: Vec<(String, Val<'a>)>,
    steps: u64,
    depth: usize,
    /// Values turned into text since the last top-level print.
    pending: Vec<*const Node>,
    /// How many `include`s are capturing output (the reads made inside also count for the
    /// action that prints their result).
    capturing: usize,
    /// Inside an `include`: how many of `pending` its output already accounts for.
    attributed: usize,
    /// Bytes written while rendering the current file.
    produced: usize,
    /// Which lines of included text and of skipped branches to keep.
    keep: fn(&str) -> bool,
    /// Lines of interest in what `include`s returned.
    pub captured: Vec<CapturedLine>,
    /// Lines of interest written in branches that were not rendered (a condition false with
    /// these values, a loop over nothing): whole lines of template text, `(file, line, text)`.
    pub dormant: Vec<(FileId, u32, String)>,
}

impl<'a> Renderer<'a> {
    /// A renderer for one chart. `keep` picks the lines worth remembering from included text
    /// and from branches not taken (see [`Self::captured`], [`Self::dormant`]).
    pub fn new(env: &'a Env<'a>, keep: fn(&str) -> bool) -> Self {
        Renderer {
            env,
            vars: Vec::new(),
            steps: 0,
            depth: 0,
            pending: Vec::new(),
            capturing: 0,
            attributed: 0,
            produced: 0,
            keep,
            captured: Vec::new(),
            dormant: Vec::new(),
        }
    }

    /// Remembers the wanted whole lines of text in nodes that are not rendered.
    fn skip(&mut self, nodes: &[TNode], file: FileId) {
        for node in nodes {
            if self.dormant.len() >= MAX_KEPT_LINES {
                return;
            }
            match node {
                TNode::Text(t, line, ends_line) => {
                    // A line that an action continues may hold only part of its value.
                    let parts: Vec<&str> = t.split('\n').collect();
                    let last = parts.len() - 1;
                    for (i, part) in parts.iter().enumerate() {
                        if (i < last || *ends_line) && (self.keep)(part.trim()) {
                            let l = line.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                            self.dormant.push((file, l, part.trim().to_string()));
                        }
                    }
                }
                TNode::If(b, e) | TNode::With(b, e) => {
                    b.iter().for_each(|(_, body)| self.skip(body, file));
                    self.skip(e, file);
                }
                TNode::Range(_, b, e) => {
                    self.skip(b, file);
                    self.skip(e, file);
                }
                TNode::Action(..) | TNode::Template(..) | TNode::Break | TNode::Continue => {}
            }
        }
    }

    /// Renders a file's top-level nodes with the chart's root object as `.` and `$`.
    pub fn render_file(&mut self, nodes: &[TNode], file: FileId) -> Result<Out, Abort> {
        let mut out = Out::default();
        self.vars.clear();
        self.vars.push((String::new(), Val::Root));
        self.pending.clear();
        self.produced = 0;
        self.render(nodes, &Val::Root, file, &mut out)?;
        Ok(out)
    }

    /// Counts what a file's rendering writes, included text too (each `include` writes its
    /// own output before the action prints it).
    fn produce(&mut self, bytes: usize) -> Result<(), Abort> {
        self.produced = self.produced.saturating_add(bytes);
        if self.produced > 2 * MAX_OUTPUT {
            Err(Abort)
        } else {
            Ok(())
        }
    }

    fn step(&mut self) -> Result<(), Abort> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            Err(Abort)
        } else {
            Ok(())
        }
    }

    fn render(
        &mut self,
        nodes: &[TNode],
        dot: &Val<'a>,
        file: FileId,
        out: &mut Out,
    ) -> Result<Flow, Abort> {
        for node in nodes {
            self.step()?;
            match node {
                TNode::Text(t, line, _) => {
                    self.produce(t.len())?;
                    out.push(t, file, *line, true)?;
                }
                TNode::Action(pipe, line) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        let text = self.text_of(&v).unwrap_or_else(|| UNKNOWN.to_string());
                        self.emit(&text, file, *line, out)?;
                    }
                }
                TNode::If(branches, otherwise) | TNode::With(branches, otherwise) => {
                    let with = matches!(node, TNode::With(..));
                    match self.conditional(branches, otherwise, with, dot, file, out)? {
                        Flow::Normal => {}
                        flow => return Ok(flow),
                    }
                }
                TNode::Range(pipe, body, otherwise) => {
                    self.range(pipe, body, otherwise, dot, file, out)?
                }
                TNode::Template(name, arg, line) => {
                    let arg = match arg {
                        Some(p) => self.pipe(p, dot)?,
                        None => Val::Null,
                    };
                    match self.env.defines.get(name) {
                        Some(def) if self.depth < MAX_CALL_DEPTH => {
                            let def = def.clone();
                            self.call(&def, arg, out)?;
                        }
                        _ => self.emit(&UNKNOWN.to_string(), file, *line, out)?,
                    }
                }
                TNode::Break => return Ok(Flow::Break),
                TNode::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// Writes an action's text, remembering which values it printed.
    fn emit(&mut self, text: &str, file: FileId, line: u32, out: &mut Out) -> Result<(), Abort> {
        let reads = if self.capturing == 0 {
            std::mem::take(&mut self.pending)
        } else {
            let new = self.pending[self.attributed.min(self.pending.len())..].to_vec();
            self.attributed = self.pending.len();
            new
        };
        if !reads.is_empty() {
            out.reads.push((out.text.len(), reads));
        }
        self.produce(text.len())?;
        out.push(text, file, line, false)
    }

    /// Renders a define with `arg` as `.` and `$`, in a scope of its own.
    fn call(&mut self, def: &Define, arg: Val<'a>, out: &mut Out) -> Result<(), Abort> {
        let saved = std::mem::take(&mut self.vars);
        self.vars.push((String::new(), arg.clone()));
        self.depth += 1;
        let result = self.render(&def.body, &arg, def.file, out);
        self.depth -= 1;
        self.vars = saved;
        result.map(|_| ())
    }

    fn conditional(
        &mut self,
        branches: &[(Pipe, Vec<TNode>)],
        otherwise: &[TNode],
        with: bool,
        dot: &Val<'a>,
        file: FileId,
        out: &mut Out,
    ) -> Result<Flow, Abort> {
        let scope = self.vars.len();
        let mut result = Flow::Normal;
        let mut unknown = false;
        let mut taken = branches.len();
        for (i, (cond, body)) in branches.iter().enumerate() {
            let v = self.pipe(cond, dot)?;
            let inner_dot = if with { v.clone() } else { dot.clone() };
            match v.truth() {
                Some(false) => self.skip(body, file),
                Some(true) => {
                    let flow = self.render(body, &inner_dot, file, out)?;
                    if !unknown {
                        result = flow;
                    }
                    taken = i;
                    break;
                }
                None => {
                    if !unknown && inline(branches, otherwise) {
                        self.emit(&UNKNOWN.to_string(), file, 0, out)?;
                        self.vars.truncate(scope);
                        return Ok(Flow::Normal);
                    }
                    unknown = true;
                    let d = if with { Val::Unknown } else { inner_dot };
                    self.render(body, &d, file, out)?;
                }
            }
        }
        if taken < branches.len() {
            for (_, body) in &branches[taken + 1..] {
                self.skip(body, file);
            }
            self.skip(otherwise, file);
        } else {
            let flow = self.render(otherwise, dot, file, out)?;
            if !unknown {
                result = flow;
            }
        }
        self.vars.truncate(scope);
        Ok(result)
    }

    fn range(
        &mut self,
        pipe: &Pipe,
        body: &[TNode],
        otherwise: &[TNode],
        dot: &Val<'a>,
        file: FileId,
        out: &mut Out,
    ) -> Result<(), Abort> {
        let scope = self.vars.len();
        let plain = Pipe {
            decl: Vec::new(),
            assign: false,
            cmds: pipe.cmds.clone(),
        };
        let v = self.pipe(&plain, dot)?;
        let items: Option<Vec<(Val<'a>, Val<'a>)>> = match &v {
            Val::Node(n) => match &n.value {
                Value::List(l) => Some(
                    l.iter()
                        .enumerate()
                        .map(|(i, x)| (Val::Int(i as i64), Val::Node(x)))
                        .collect(),
                ),
                Value::Map(m) => Some(
                    m.iter()
                        .map(|(k, x)| (Val::Str(k.clone()), Val::Node(x)))
                        .collect(),
                ),
                Value::Null => Some(Vec::new()),
                Value::Int(n) if *n > MAX_RANGE => return Err(Abort),
                Value::Int(n) => Some((0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect()),
                _ => None,
            },
            Val::List(l) => Some(
                l.iter()
                    .enumerate()
                    .map(|(i, x)| (Val::Int(i as i64), x.clone()))
                    .collect(),
            ),
            Val::Dict(d) => Some(
                d.iter()
                    .map(|(k, x)| (Val::Str(k.clone()), x.clone()))
                    .collect(),
            ),
            Val::Null => Some(Vec::new()),
            Val::Int(n) if *n > MAX_RANGE => return Err(Abort),
            Val::Int(n) => Some((0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect()),
            _ => None,
        };
        let bind = |r: &mut Self, key: Val<'a>, item: Val<'a>| {
            r.vars.truncate(scope);
            match pipe.decl.as_slice() {
                [e] => r.vars.push((e.clone(), item)),
                [k, e] => {
                    r.vars.push((k.clone(), key));
                    r.vars.push((e.clone(), item));
                }
                _ => {}
            }
        };
        match items {
            Some(items) if items.is_empty() => {
                self.skip(body, file);
                self.render(otherwise, dot, file, out)?;
            }
            Some(items) => {
                for (key, item) in items {
                    self.step()?;
                    bind(self, key, item.clone());
                    if let Flow::Break = self.render(body, &item, file, out)? {
                        break;
                    }
                    // `continue` ends this item's body; the loop goes on.
                }
            }
            None => {
                if inline(&[(plain.clone(), body.to_vec())], otherwise) {
                    self.emit(&UNKNOWN.to_string(), file, 0, out)?;
                } else {
                    bind(self, Val::Unknown, Val::Unknown);
                    self.render(body, &Val::Unknown, file, out)?;
                    self.vars.truncate(scope);
                    self.render(otherwise, dot, file, out)?;
                }
            }
        }
        self.vars.truncate(scope);
        Ok(())
    }

    /// Evaluates a pipeline, declaring or assigning its variables.
    fn pipe(&mut self, pipe: &Pipe, dot: &Val<'a>) -> Result<Val<'a>, Abort> {
        let mut prev: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            self.step()?;
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Val::Unknown);
        if let [name] = pipe.decl.as_slice() {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        args: &[Arg],
        dot: &Val<'a>,
        prev: Option<Val<'a>>,
    ) -> Result<Val<'a>, Abort> {
        let Some((first, rest)) = args.split_first() else {
            return Ok(Val::Unknown);
        };
        if let Arg::Ident(name) = first {
            let mut vals = Vec::with_capacity(rest.len() + 1);
            for a in rest {
                vals.push(self.operand(a, dot)?);
            }
            vals.extend(prev);
            return self.function(name, vals);
        }
        if !rest.is_empty() || prev.is_some() {
            return Ok(Val::Unknown);
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, arg: &Arg, dot: &Val<'a>) -> Result<Val<'a>, Abort> {
        Ok(match arg {
            Arg::Field(names) => fields(dot.clone(), names, self.env),
            Arg::Var(name, names) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map_or(Val::Unknown, |(_, v)| v.clone());
                fields(v, names, self.env)
            }
            Arg::Ident(name) => self.function(name, Vec::new())?,
            Arg::Str(s) => Val::Str(s.clone()),
            Arg::Int(i) => Val::Int(*i),
            Arg::Float(f) => Val::Float(*f),
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Nil => Val::Null,
            Arg::Group(p, names) => {
                let v = self.pipe(p, dot)?;
                fields(v, names, self.env)
            }
        })
    }

    /// A value as text, as Go prints it (`None` for what cannot be printed meaningfully).
    fn text_of(&mut self, v: &Val<'a>) -> Option<String> {
        match v {
            Val::Null => Some(String::new()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Int(i) => Some(i.to_string()),
            Val::Float(f) => Some(go_float(*f)),
            Val::Str(s) => Some(s.clone()),
            Val::Node(n) => {
                let text = match &n.value {
                    Value::Null => Some(String::new()),
                    other => other.scalar_text(),
                }?;
                self.pending.push(*n as *const Node);
                Some(text)
            }
            _ => None,
        }
    }

    fn include(&mut self, name: &str, arg: Val<'a>) -> Result<Val<'a>, Abort> {
        let Some(def) = self.env.defines.get(name).cloned() else {
            return Ok(Val::Unknown);
        };
        if self.depth >= MAX_CALL_DEPTH {
            return Ok(Val::Unknown);
        }
        let mut captured = Out::default();
        self.capturing += 1;
        let outer = std::mem::replace(&mut self.attributed, self.pending.len());
        let result = self.call(&def, arg, &mut captured);
        self.attributed = outer;
        self.capturing -= 1;
        result?;
        if self.captured.len() < MAX_KEPT_LINES {
            self.captured.extend(captured.kept_lines(self.keep));
        }
        Ok(Val::Str(captured.text))
    }

    fn function(&mut self, name: &str, args: Vec<Val<'a>>) -> Result<Val<'a>, Abort> {
        self.step()?;
        if name == "include" {
            let mut it = args.into_iter();
            return match (it.next(), it.next()) {
                (Some(Val::Str(n)), arg) => self.include(&n, arg.unwrap_or(Val::Null)),
                _ => Ok(Val::Unknown),
            };
        }
        let any_unknown = args.iter().any(Val::is_unknown);
        let v = match name {
            "default" => match args.as_slice() {
                [d] => d.clone(),
                [d, given, ..] => match given.truth() {
                    None => Val::Unknown,
                    Some(true) => given.clone(),
                    Some(false) => d.clone(),
                },
                _ => Val::Unknown,
            },
            "coalesce" => {
                let mut found = Val::Null;
                for a in &args {
                    match a.truth() {
                        None => {
                            found = Val::Unknown;
                            break;
                        }
                        Some(true) => {
                            found = a.clone();
                            break;
                        }
                        Some(false) => {}
                    }
                }
                found
            }
            "ternary" => match args.as_slice() {
                [a, b, c] => match c.truth() {
                    Some(true) => a.clone(),
                    Some(false) => b.clone(),
                    None => Val::Unknown,
                },
                _ => Val::Unknown,
            },
            "required" => args.last().cloned().unwrap_or(Val::Unknown),
            "not" => match args.first().and_then(Val::truth) {
                Some(t) => Val::Bool(!t),
                None => Val::Unknown,
            },
            "and" => {
                let mut last = Val::Bool(true);
                for a in &args {
                    match a.truth() {
                        Some(false) => return Ok(a.clone()),
                        Some(true) => last = a.clone(),
                        None => last = Val::Unknown,
                    }
                }
                last
            }
            "or" => {
                let mut last = Val::Bool(false);
                for a in &args {
                    match a.truth() {
                        Some(true) => return Ok(a.clone()),
                        Some(false) => last = a.clone(),
                        None => last = Val::Unknown,
                    }
                }
                last
            }
            "empty" => match args.first().and_then(Val::truth) {
                Some(t) => Val::Bool(!t),
                None => Val::Unknown,
            },
            "dict" => {
                let mut map = BTreeMap::new();
                for pair in args.chunks(2) {
                    let key = match &pair[0] {
                        Val::Str(s) => s.clone(),
                        _ => return Ok(Val::Unknown),
                    };
                    map.insert(key, pair.get(1).cloned().unwrap_or(Val::Null));
                }
                Val::Dict(Rc::new(map))
            }
            "list" => Val::List(Rc::new(args)),
            "hasKey" => match args.as_slice() {
                [container, Val::Str(k)] => match container {
                    Val::Dict(d) => Val::Bool(d.contains_key(k)),
                    Val::Node(n) => match n.as_map() {
                        Some(m) => Val::Bool(m.contains_key(k)),
                        None => Val::Unknown,
                    },
                    _ => Val::Unknown,
                },
                _ => Val::Unknown,
            },
            "get" | "index" if !any_unknown => {
                let mut it = args.into_iter();
                let mut cur = it.next().unwrap_or(Val::Unknown);
                for k in it {
                    cur = match (&cur, &k) {
                        (_, Val::Str(key)) => {
                            fields(cur.clone(), std::slice::from_ref(key), self.env)
                        }
                        (Val::Node(n), Val::Int(i)) => match &n.value {
                            Value::List(l) => usize::try_from(*i)
                                .ok()
                                .and_then(|i| l.get(i))
                                .map_or(Val::Null, Val::Node),
                            _ => Val::Unknown,
                        },
                        (Val::List(l), Val::Int(i)) => usize::try_from(*i)
                            .ok()
                            .and_then(|i| l.get(i).cloned())
                            .unwrap_or(Val::Null),
                        _ => Val::Unknown,
                    };
                }
                cur
            }
            _ if any_unknown => Val::Unknown,
            _ => self.string_function(name, &args).unwrap_or(Val::Unknown),
        };
        match &v {
            Val::Str(s) if s.len() > funcs::MAX_STRING => Err(Abort),
            _ => Ok(v),
        }
    }

    /// Functions of texts ([`funcs`]), and the comparisons; `None` when an argument has no
    /// text or the function is not known.
    fn string_function(&mut self, name: &str, args: &[Val<'a>]) -> Option<Val<'a>> {
        match name {
            "eq" | "ne" => {
                let (first, rest) = args.split_first()?;
                let a = self.text_of(first)?;
                let mut equal = false;
                for b in rest {
                    equal |= self.text_of(b)? == a;
                }
                return Some(Val::Bool(if name == "eq" { equal } else { !equal }));
            }
            // A scalar is its own YAML; anything bigger is not a reference.
            "toYaml" => {
                return match args.first()? {
                    Val::Node(n) if n.as_map().is_some() || matches!(n.value, Value::List(_)) => {
                        None
                    }
                    v @ (Val::Str(_)
                    | Val::Int(_)
                    | Val::Float(_)
                    | Val::Bool(_)
                    | Val::Node(_)) => self.text_of(v).map(Val::Str),
                    _ => None,
                };
            }
            _ => {}
        }
        let mut texts = Vec::with_capacity(args.len());
        for a in args {
            texts.push(self.text_of(a)?);
        }
        let numbers: Vec<Option<i64>> = args.iter().map(number).collect();
        Some(match funcs::call(name, &texts, &numbers)? {
            funcs::Value::Text(t) => Val::Str(t),
            funcs::Value::Bool(b) => Val::Bool(b),
        })
    }
}

/// A whole number, as `indent`, `trunc` and `printf`'s `%d` take them.
fn number(v: &Val) -> Option<i64> {
    let float = |f: f64| (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64);
    match v {
        Val::Int(i) => Some(*i),
        Val::Float(f) => float(*f),
        Val::Node(n) => match n.value {
            Value::Int(i) => Some(i),
            Value::Float(f) => float(f),
            _ => None,
        },
        _ => None,
    }
}

/// Whether none of the branches holds a line break (they are parts of one line).
fn inline(branches: &[(Pipe, Vec<TNode>)], otherwise: &[TNode]) -> bool {
    fn flat(nodes: &[TNode]) -> bool {
        nodes.iter().all(|n| match n {
            TNode::Text(t, _, _) => !t.contains('\n'),
            TNode::Action(..) | TNode::Break | TNode::Continue => true,
            TNode::If(b, e) | TNode::With(b, e) => b.iter().all(|(_, x)| flat(x)) && flat(e),
            TNode::Range(_, b, e) => flat(b) && flat(e),
            TNode::Template(..) => false,
        })
    }
    branches.iter().all(|(_, b)| flat(b)) && flat(otherwise)
}

/// `.a.b` on a value.
fn fields<'a>(mut v: Val<'a>, names: &[String], env: &Env<'a>) -> Val<'a> {
    for name in names {
        v = match v {
            Val::Root => match name.as_str() {
                "Values" => Val::Node(env.values),
                "Chart" => Val::Chart,
                "Release" | "Capabilities" | "Files" | "Template" => Val::Opaque,
                _ => Val::Null,
            },
            Val::Chart => match name.as_str() {
                "Name" => Val::Str(env.chart_name.to_string()),
                "Version" => Val::Str(env.chart_version.to_string()),
                "AppVersion" => Val::Str(env.app_version.to_string()),
                _ => Val::Unknown,
            },
            Val::Node(n) => match &n.value {
                Value::Map(m) => m.get(name).map_or(Val::Null, Val::Node),
                Value::Null => Val::Null,
                _ => Val::Unknown,
            },
            Val::Dict(d) => d.get(name).cloned().unwrap_or(Val::Null),
            Val::Null => Val::Null,
            _ => Val::Unknown,
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn render(src: &str, values: &str) -> String {
        let values = Node::from_yaml(values, 0).unwrap();
        let parsed = parse(src).unwrap();
        let defines: HashMap<String, Define> = parsed
            .defines
            .iter()
            .map(|(n, b)| {
                (
                    n.clone(),
                    Define {
                        file: 0,
                        body: b.clone(),
                    },
                )
            })
            .collect();
        let env = Env {
            values: &values,
            chart_name: "c",
            chart_version: "1.0.0",
            app_version: "2.0",
            defines: &defines,
        };
        let mut r = Renderer::new(&env, |_| false);
        r.render_file(&parsed.nodes, 0)
            .unwrap()
            .text
            .replace(UNKNOWN, "?")
    }

    #[test]
    fn values_and_defaults() {
        assert_eq!(
            render(
                "image: {{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}",
                "image: {repository: nginx}"
            ),
            "image: nginx:2.0"
        );
        assert_eq!(
            render(
                r#"{{ $t := .Values.t | toString }}x:{{ $t | quote }}"#,
                "t: 1.10"
            ),
            "x:\"1.1\""
        );
        assert_eq!(render("{{ .Release.Name }}-x", ""), "?-x");
        assert_eq!(
            render("{{ .Values.missing }}|{{ .Values.a.b.c }}", "a: {}"),
            "|"
        );
    }

    #[test]
    fn inline_conditions_and_with() {
        let src = r#"image: "{{- with .Values.image }}{{- if .registry -}}{{ .registry }}/{{- end -}}{{ .repository }}{{- if (.digest) -}} @{{.digest}}{{- else -}}:{{ .tag }} {{- end -}}{{ end }}""#;
        assert_eq!(
            render(src, "image: {registry: r.io, repository: a/b, tag: '1'}"),
            "image: \"r.io/a/b:1\""
        );
        assert_eq!(
            render(src, "image: {repository: a/b, digest: 'sha256:x'}"),
            "image: \"a/b@sha256:x\""
        );
        assert_eq!(
            render("a: {{ if .Release.IsUpgrade }}x{{ else }}y{{ end }}", ""),
            "a: ?"
        );
    }

    #[test]
    fn unknown_block_conditions_render_every_branch() {
        let src = "{{- if .Capabilities.APIVersions.Has \"x\" }}\nimage: a\n{{- else }}\nimage: b\n{{- end }}\n";
        assert_eq!(render(src, ""), "\nimage: a\nimage: b\n");
    }

    #[test]
    fn helpers_like_bitnami() {
        let src = r#"{{- define "common.images.image" -}}
{{- $registryName := default .imageRoot.registry ((.global).imageRegistry) -}}
{{- $repositoryName := .imageRoot.repository -}}
{{- $separator := ":" -}}
{{- $termination := .imageRoot.tag | toString -}}
{{- if .imageRoot.digest }}
    {{- $separator = "@" -}}
    {{- $termination = .imageRoot.digest | toString -}}
{{- end -}}
{{- if $registryName }}
    {{- printf "%s/%s%s%s" $registryName $repositoryName $separator $termination -}}
{{- else -}}
    {{- printf "%s%s%s"  $repositoryName $separator $termination -}}
{{- end -}}
{{- end -}}
image: {{ include "common.images.image" (dict "imageRoot" .Values.image "global" .Values.global) }}"#;
        let values = "image: {registry: docker.io, repository: bitnami/redis, tag: 7.0.5, digest: ''}\nglobal: {imageRegistry: ''}";
        assert_eq!(render(src, values), "image: docker.io/bitnami/redis:7.0.5");
        let mirrored = "image: {registry: docker.io, repository: bitnami/redis, tag: 7.0.5, digest: 'sha256:ab'}\nglobal: {imageRegistry: m.io}";
        assert_eq!(render(src, mirrored), "image: m.io/bitnami/redis@sha256:ab");
    }

    #[test]
    fn ranges() {
        let src = "{{- range .Values.sidecars }}\n- image: {{ .image }}{{ end }}\n{{- range $k, $v := .Values.m }}\n{{ $k }}={{ $v }}{{ end }}";
        assert_eq!(
            render(src, "sidecars: [{image: a}, {image: b}]\nm: {x: 1, y: 2}"),
            "\n- image: a\n- image: b\nx=1\ny=2"
        );
        assert_eq!(
            render("{{ range .Values.none }}x{{ else }}empty{{ end }}", ""),
            "empty"
        );
        assert_eq!(
            render(
                "{{- range .Files.Lines \"x\" }}\nimage: {{ . }}{{ end }}",
                ""
            ),
            "\nimage: ?"
        );
    }

    #[test]
    fn runaway_templates_stop() {
        let values = Node::from_yaml("", 0).unwrap();
        let parsed = parse(r#"{{- define "loop" }}{{ include "loop" . }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}"#).unwrap();
        let defines: HashMap<String, Define> = parsed
            .defines
            .iter()
            .map(|(n, b)| {
                (
                    n.clone(),
                    Define {
                        file: 0,
                        body: b.clone(),
                    },
                )
            })
            .collect();
        let env = Env {
            values: &values,
            chart_name: "c",
            chart_version: "1",
            app_version: "",
            defines: &defines,
        };
        let started = std::time::Instant::now();
        let _ = Renderer::new(&env, |_| false).render_file(&parsed.nodes, 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn lines_are_tracked() {
        let values = Node::from_yaml("a: x", 0).unwrap();
        let parsed = parse("one\ntwo: {{ .Values.a }}\nthree\n").unwrap();
        let defines = HashMap::new();
        let env = Env {
            values: &values,
            chart_name: "c",
            chart_version: "1",
            app_version: "",
            defines: &defines,
        };
        let out = Renderer::new(&env, |_| false)
            .render_file(&parsed.nodes, 7)
            .unwrap();
        let at = out.text.find("three").unwrap();
        assert_eq!(out.origin(at), Some((7, 3, true)));
        let x = out.text.find('x').unwrap();
        assert_eq!(out.origin(x), Some((7, 2, false)));
        assert_eq!(out.reads.len(), 1);
    }

    #[test]
    fn included_and_skipped_lines_keep_their_origin() {
        let values = Node::from_yaml("image: {repository: a, tag: '1'}\noff: false", 0).unwrap();
        let src = "{{- define \"pod\" }}\ncontainers:\n  - image: {{ .Values.image.repository }}:{{ .Values.image.tag }}\n{{- end }}\n\
                   spec:\n{{- include \"pod\" . | nindent 2 }}\n{{- if .Values.off }}\n  - image: busybox:1\n  - image: x:{{ .Values.t }}\n{{- end }}\n";
        let parsed = parse(src).unwrap();
        let defines: HashMap<String, Define> = parsed
            .defines
            .iter()
            .map(|(n, b)| {
                (
                    n.clone(),
                    Define {
                        file: 3,
                        body: b.clone(),
                    },
                )
            })
            .collect();
        let env = Env {
            values: &values,
            chart_name: "c",
            chart_version: "1",
            app_version: "",
            defines: &defines,
        };
        let mut r = Renderer::new(&env, |l| l.contains("image:"));
        let out = r.render_file(&parsed.nodes, 4).unwrap();
        assert!(out.text.contains("    - image: a:1"), "{}", out.text);
        assert_eq!(r.captured.len(), 1);
        assert_eq!((r.captured[0].file, r.captured[0].line), (3, 3));
        assert_eq!(r.captured[0].text, "- image: a:1");
        assert_eq!(r.captured[0].reads.len(), 2);
        assert_eq!(r.dormant, [(4, 8, "- image: busybox:1".to_string())]);
    }

    /// The deepest a template may go (blocks nested as deep as the parser allows, in defines
    /// calling each other as deep as allowed, with parentheses as deep as allowed inside) fits
    /// in a quarter of [`STACK_SIZE`], even unoptimised.
    #[test]
    fn the_deepest_template_fits_a_small_stack() {
        let depth = 95;
        let mut src = String::new();
        for k in 0..=MAX_CALL_DEPTH {
            src.push_str(&format!("{{{{- define \"d{k}\" -}}}}"));
            src.push_str(&"{{ if true }}{{ with . }}".repeat(depth / 2));
            src.push_str(&format!(
                "{{{{ include \"d{}\" {}.{}| quote }}}}",
                k + 1,
                "(".repeat(depth),
                ")".repeat(depth)
            ));
            src.push_str(&"{{ end }}{{ end }}".repeat(depth / 2));
            src.push_str("{{- end -}}\n");
        }
        src.push_str("image: {{ include \"d0\" . }}\n");
        let handle = std::thread::Builder::new()
            .stack_size(STACK_SIZE / 4)
            .spawn(move || {
                let values = Node::from_yaml("", 0).unwrap();
                let parsed = parse(&src).unwrap();
                let defines: HashMap<String, Define> = parsed
                    .defines
                    .iter()
                    .map(|(n, b)| {
                        (
                            n.clone(),
                            Define {
                                file: 0,
                                body: b.clone(),
                            },
                        )
                    })
                    .collect();
                let env = Env {
                    values: &values,
                    chart_name: "c",
                    chart_version: "1",
                    app_version: "",
                    defines: &defines,
                };
                Renderer::new(&env, |_| false)
                    .render_file(&parsed.nodes, 0)
                    .map(|o| o.text.len())
            })
            .unwrap();
        assert!(handle.join().is_ok());
    }

    #[test]
    fn runaway_strings_and_ranges_stop() {
        let values = Node::from_yaml("", 0).unwrap();
        let doubling = format!(
            "{{{{ $x := \"0123456789abcdef\" }}}}{}image: {{{{ $x }}}}",
            "{{ $x = printf \"%s%s\" $x $x }}".repeat(60)
        );
        let sources = [
            doubling,
            "{{ range 1000000000 }}x{{ end }}".to_string(),
            format!(
                "{{{{ $x := \"{}\" }}}}{{{{ $x | nindent 1024 | nindent 1024 | nindent 1024 }}}}",
                "a\\n".repeat(1000)
            ),
            format!(
                "{{{{ $x := \"{}\" }}}}{{{{ replace \"a\" \"{}\" $x }}}}",
                "a".repeat(100_000),
                "b".repeat(1000)
            ),
        ];
        for src in sources {
            let parsed = parse(&src).unwrap();
            let defines = HashMap::new();
            let env = Env {
                values: &values,
                chart_name: "c",
                chart_version: "1",
                app_version: "",
                defines: &defines,
            };
            let started = std::time::Instant::now();
            let rendered = Renderer::new(&env, |_| false).render_file(&parsed.nodes, 0);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{src:.80}"
            );
            if let Ok(out) = rendered {
                assert!(out.text.len() <= MAX_OUTPUT, "{src:.80}");
            }
        }
    }

    mod properties {
        use super::super::super::parse::parse;
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever a template says, reading and rendering it ends without a panic, within
            /// its budget.
            #[test]
            fn arbitrary_templates_never_panic(
                src in r#"([a-z:\- \n]|\{\{-? |-?\}\}|\.Values\.[ab]|\$[xy]?|:?=|\||\(|\)|"[a-z%]*"|if |else |end|range |with |define |include |template |printf |default |quote |dict |list |nindent |[0-9]+)*"#,
                values in r"(a: [0-9a-z]{0,3}\n)?(b: \{c: [0-9]\}\n)?",
            ) {
                let values = Node::from_yaml(&values, 0).unwrap_or_else(|_| Node::empty_map(0));
                if let Ok(parsed) = parse(&src) {
                    let defines: HashMap<String, Define> = parsed
                        .defines
                        .iter()
                        .map(|(n, b)| (n.clone(), Define { file: 0, body: b.clone() }))
                        .collect();
                    let env = Env { values: &values, chart_name: "c", chart_version: "1", app_version: "2", defines: &defines };
                    let mut r = Renderer::new(&env, |l| l.contains("image"));
                    if let Ok(out) = r.render_file(&parsed.nodes, 0) {
                        prop_assert!(out.text.len() <= MAX_OUTPUT);
                        for i in 0..=out.text.len() {
                            if out.text.is_char_boundary(i) {
                                let _ = out.origin(i);
                            }
                        }
                    }
                }
            }
        }
    }
}
