//! The template evaluator: walks the parsed tree over a `serde_json::Value`,
//! binds variables, calls functions, follows field chains, and produces
//! Go's "executing" errors. Also the two special modes: a table header (field
//! names instead of values) and a listing's row (unknown fields fail).

use serde_json::Value;

use super::funcs::{call_function, HEADER_PASS_THROUGH};
use super::gofmt::{go_print, go_type, print_action, truthy};
use super::lex::line_of;
use super::parse::{Arg, ArgKind, Command, Node, Pipeline, Span};
use crate::format::FormatError;

pub(super) struct Exec<'t> {
    pub(super) source: &'t str,
    pub(super) vars: Vec<(String, Value)>,
    pub(super) out: String,
    /// Set while rendering a table header: field name → column title.
    pub(super) header: Option<&'t dyn Fn(&str) -> String>,
    /// Set while rendering a listing's row (see [`Template::execute_row`](super::Template::execute_row)).
    pub(super) row: Option<RowCheck<'t>>,
}

/// The fields a listing's row has, for [`Template::execute_row`](super::Template::execute_row).
pub(super) struct RowCheck<'t> {
    /// The row itself: only fields looked up directly on it are checked.
    pub(super) root: &'t Value,
    pub(super) known: &'t dyn Fn(&str) -> bool,
    pub(super) type_name: &'t str,
}

impl Exec<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> FormatError {
        let start = span.start.min(self.source.len());
        let line_start = self.source[..start].rfind('\n').map_or(0, |i| i + 1);
        FormatError::Exec {
            line: line_of(self.source, start),
            col: start - line_start,
            node: self
                .source
                .get(span.start..span.end)
                .unwrap_or_default()
                .to_string(),
            message: message.into(),
        }
    }

    pub(super) fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), FormatError> {
        for node in nodes {
            match node {
                Node::Text(text) => self.out.push_str(text),
                Node::Action(pipe) => {
                    let value = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.out.push_str(&print_action(&value));
                    } else {
                        self.bind(pipe, &[value]);
                    }
                }
                Node::If {
                    pipe,
                    then,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let value = self.eval_pipeline(dot, pipe)?;
                    let branch = if truthy(&value) { then } else { otherwise };
                    self.bind(pipe, &[value]);
                    self.walk(dot, branch)?;
                    self.vars.truncate(mark);
                }
                Node::With {
                    pipe,
                    then,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let value = self.eval_pipeline(dot, pipe)?;
                    self.bind(pipe, std::slice::from_ref(&value));
                    if truthy(&value) {
                        self.walk(&value, then)?;
                    } else {
                        self.walk(dot, otherwise)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range {
                    pipe,
                    body,
                    otherwise,
                } => {
                    let value = self.eval_pipeline(dot, pipe)?;
                    let entries: Vec<(Value, Value)> = match value {
                        Value::Array(items) => items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::from(i), v))
                            .collect(),
                        Value::Object(map) => {
                            let mut entries: Vec<_> = map.into_iter().collect();
                            entries.sort_by(|a, b| a.0.cmp(&b.0));
                            entries
                                .into_iter()
                                .map(|(k, v)| (Value::String(k), v))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        other => {
                            let span = pipe
                                .cmds
                                .first()
                                .and_then(|c| c.args.first())
                                .map(|a| a.span);
                            return Err(self.error(
                                span.unwrap_or(Span { start: 0, end: 0 }),
                                format!("range can't iterate over {}", go_print(&other)),
                            ));
                        }
                    };
                    let mark = self.vars.len();
                    if entries.is_empty() {
                        self.walk(dot, otherwise)?;
                    }
                    for (key, item) in entries {
                        self.vars.truncate(mark);
                        match pipe.decl.len() {
                            0 => {}
                            1 => self.bind(pipe, std::slice::from_ref(&item)),
                            _ => self.bind(pipe, &[key, item.clone()]),
                        }
                        self.walk(&item, body)?;
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    /// Declares (`:=`) or assigns (`=`) the pipeline's variables.
    fn bind(&mut self, pipe: &Pipeline, values: &[Value]) {
        for (name, value) in pipe.decl.iter().zip(values) {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipeline) -> Result<Value, FormatError> {
        let mut piped: Option<Value> = None;
        for cmd in &pipe.cmds {
            piped = Some(self.eval_command(dot, cmd, piped)?);
        }
        Ok(piped.unwrap_or(Value::Null))
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        cmd: &Command,
        piped: Option<Value>,
    ) -> Result<Value, FormatError> {
        let Some((first, rest)) = cmd.args.split_first() else {
            return Ok(Value::Null);
        };
        let ArgKind::Func(name) = &first.kind else {
            if let Some(extra) = rest.first() {
                let message = match &first.kind {
                    ArgKind::Field(f) => format!(
                        "{} is not a method but has arguments",
                        f.last().map_or("", String::as_str)
                    ),
                    _ => format!(
                        "can't give argument to non-function {}",
                        self.text(first.span)
                    ),
                };
                return Err(self.error(extra.span, message));
            }
            if piped.is_some() {
                return Err(self.error(
                    first.span,
                    format!(
                        "can't give argument to non-function {}",
                        self.text(first.span)
                    ),
                ));
            }
            return self.eval_arg(dot, first);
        };

        // `and` and `or` stop at the first argument that decides them.
        if name == "and" || name == "or" {
            let mut last = Value::Null;
            let count = rest.len() + usize::from(piped.is_some());
            if count == 0 {
                return Err(self.error(
                    first.span,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            for arg in rest {
                last = self.eval_arg(dot, arg)?;
                if truthy(&last) == (name == "or") {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }

        let mut args = Vec::with_capacity(rest.len() + 1);
        for arg in rest {
            args.push(self.eval_arg(dot, arg)?);
        }
        args.extend(piped);
        if self.header.is_some() && HEADER_PASS_THROUGH.contains(&name.as_str()) {
            return Ok(match args.into_iter().next() {
                Some(Value::String(s)) => Value::String(s),
                _ => Value::String(String::new()),
            });
        }
        call_function(name, &args).map_err(|message| self.error(first.span, message))
    }

    fn text(&self, span: Span) -> String {
        self.source
            .get(span.start..span.end)
            .unwrap_or_default()
            .to_string()
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Result<Value, FormatError> {
        if let Some(header) = self.header {
            let fields = match &arg.kind {
                ArgKind::Field(f) | ArgKind::Var(_, f) | ArgKind::Pipe(_, f) => f.as_slice(),
                _ => &[],
            };
            if let Some(last) = fields.last() {
                return Ok(Value::String(header(last)));
            }
        }
        match &arg.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Field(fields) => self.fields(dot, fields, arg.span),
            ArgKind::Var(name, fields) => {
                let value = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.error(arg.span, format!("undefined variable: {name}")))?;
                self.fields(&value, fields, arg.span)
            }
            ArgKind::Func(name) => {
                call_function(name, &[]).map_err(|message| self.error(arg.span, message))
            }
            ArgKind::Lit(value) => Ok(value.clone()),
            ArgKind::Pipe(pipe, fields) => {
                let value = self.eval_pipeline(dot, pipe)?;
                self.fields(&value, fields, arg.span)
            }
        }
    }

    /// Follows `.A.B.C` from `base`. A missing key or null gives null (printed
    /// `<no value>`); a field of a string, number or list is an error, as in Go.
    fn fields(&self, base: &Value, fields: &[String], span: Span) -> Result<Value, FormatError> {
        static NULL: Value = Value::Null;
        let mut current = base;
        if let (Some(row), Some(first), Value::Object(map)) = (&self.row, fields.first(), base) {
            if std::ptr::eq(base, row.root) && !map.contains_key(first) && !(row.known)(first) {
                return Err(self.error(
                    span,
                    format!("can't evaluate field {first} in type {}", row.type_name),
                ));
            }
        }
        for field in fields {
            current = match current {
                Value::Object(map) => map.get(field).unwrap_or(&NULL),
                Value::Null => &NULL,
                other => {
                    return Err(self.error(
                        span,
                        format!("can't evaluate field {field} in type {}", go_type(other)),
                    ))
                }
            };
        }
        Ok(current.clone())
    }
}
