//! Just enough of Helm's template engine to find image references: Go's template syntax
//! ([`parse`]) and an evaluator that knows what it cannot know ([`eval`]).

pub mod eval;
pub mod funcs;
pub mod parse;
