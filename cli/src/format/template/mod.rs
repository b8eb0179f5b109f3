//! Go `text/template`, the part of it Docker users put in `--format`, evaluated
//! over `serde_json::Value`.
//!
//! This module owns the entry points ([`Template`], [`render`]); the work is in
//! its parts: `lex` (text and action tokens), `parse` (the tree), `exec` (the
//! evaluator, table-header and row modes), `funcs` (Docker's template
//! functions — `json`, `join`, `split`, `upper`, `lower`, `title`, `pad`,
//! `truncate` — next to Go's builtins — `eq`, `index`, `len`, `println`, …)
//! and `gofmt` (Go's `fmt` rendering of values: `map[k:v]`, `[a b]`,
//! `<no value>`). Errors use Docker's wording. It knows nothing about tables or
//! rswarm objects: `output` decides which template runs over which value,
//! `table` lays out the result.
//!
//! Supported: `{{.A.B}}`, `{{.}}`, `{{$}}`, variables (`$x := …`, `$x = …`),
//! pipelines (`{{.A | upper}}`), parenthesised arguments, string/number/bool/nil
//! literals, `if`/`else if`/`else`, `range` (with `$v` or `$k, $v`, and `else`),
//! `with`, comments, and the `{{-`/`-}}` trim markers. A literal `\t` or `\n`
//! in the text between actions becomes a tab or newline, as Docker's CLI does.
//! Not supported: `define`/`template`/`block`, `break`/`continue`, and the
//! `html`/`js`/`urlquery`/`call` functions.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;

use serde_json::Value;

use super::FormatError;
use exec::{Exec, RowCheck};
use lex::{lex, parse_error};
use parse::{Node, Parser, Stop};

/// A parsed template: parse once, execute on many values.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    root: Vec<Node>,
}

/// Parses `format` and executes it once over `value`.
pub fn render(format: &str, value: &Value) -> Result<String, FormatError> {
    Template::parse(format)?.execute(value)
}

impl Template {
    /// Parses a Go template. Errors read like Docker's, e.g.
    /// `template parsing error: template: :1: function "foo" not defined`.
    pub fn parse(format: &str) -> Result<Template, FormatError> {
        let items = lex(format)?;
        let mut parser = Parser {
            source: format,
            items: items.into_iter(),
            vars: vec!["$".to_string()],
            depth: 0,
        };
        let (root, stop) = parser.parse_list()?;
        match stop {
            Stop::Eof => Ok(Template {
                source: format.to_string(),
                root,
            }),
            Stop::End { start } => Err(parse_error(format, start, "unexpected {{end}}")),
            Stop::Else { start, .. } => Err(parse_error(format, start, "unexpected {{else}}")),
        }
    }

    /// Runs the template with `value` as `.` (and `$`).
    pub fn execute(&self, value: &Value) -> Result<String, FormatError> {
        let mut exec = Exec {
            source: &self.source,
            vars: vec![("$".to_string(), value.clone())],
            out: String::new(),
            header: None,
            row: None,
        };
        exec.walk(value, &self.root)?;
        Ok(exec.out)
    }

    /// Runs the template over a listing's row, which stands for a Go struct
    /// in Docker: a field of the row that neither the row has nor `known`
    /// declares fails as Go fails on a struct ("can't evaluate field Nope in
    /// type node"), instead of printing `<no value>` as for a map's key.
    pub fn execute_row(
        &self,
        value: &Value,
        known: &dyn Fn(&str) -> bool,
        type_name: &str,
    ) -> Result<String, FormatError> {
        let mut exec = Exec {
            source: &self.source,
            vars: vec![("$".to_string(), value.clone())],
            out: String::new(),
            header: None,
            row: Some(RowCheck {
                root: value,
                known,
                type_name,
            }),
        };
        exec.walk(value, &self.root)?;
        Ok(exec.out)
    }

    /// Runs the template the way Docker renders a table's header line: every
    /// field reference prints `header(field name)` (the last name of a chain
    /// like `.Spec.Name`), the text-changing functions (`json`, `upper`,
    /// `join`, `index`, …) pass that name through unchanged, and the rest run
    /// as usual. Like Docker, a failure ends the header where it happened
    /// rather than failing the command.
    pub fn execute_header(&self, header: &dyn Fn(&str) -> String) -> String {
        let root = Value::String(String::new());
        let mut exec = Exec {
            source: &self.source,
            vars: vec![("$".to_string(), root.clone())],
            out: String::new(),
            header: Some(header),
            row: None,
        };
        // A header that fails part-way keeps what it printed so far.
        let _ = exec.walk(&root, &self.root);
        exec.out
    }
}

#[cfg(test)]
mod tests;
