//! Go `text/template`, the part of it Docker users put in `--format`, evaluated
//! over `serde_json::Value`.
//!
//! Owns the lexer, the parser (into a small tree), the evaluator, Go's `fmt`
//! rendering of values (`map[k:v]`, `[a b]`, `<no value>`), Docker's template
//! functions (`json`, `join`, `split`, `upper`, `lower`, `title`, `pad`,
//! `truncate`) next to Go's builtins (`eq`, `index`, `len`, `println`, …), and
//! Docker's error wording. It knows nothing about tables or rswarm objects:
//! `output` decides which template runs over which value, `table` lays out the
//! result.
//!
//! Supported: `{{.A.B}}`, `{{.}}`, `{{$}}`, variables (`$x := …`, `$x = …`),
//! pipelines (`{{.A | upper}}`), parenthesised arguments, string/number/bool/nil
//! literals, `if`/`else if`/`else`, `range` (with `$v` or `$k, $v`, and `else`),
//! `with`, comments, and the `{{-`/`-}}` trim markers. A literal `\t` or `\n`
//! in the text between actions becomes a tab or newline, as Docker's CLI does.
//! Not supported: `define`/`template`/`block`, `break`/`continue`, and the
//! `html`/`js`/`urlquery`/`call` functions.

use serde_json::{Map, Number, Value};

use super::FormatError;

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

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `.`
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    /// A function name or keyword.
    Ident(String),
    /// A string, number, boolean or `nil`.
    Lit(Value),
    LParen,
    RParen,
    Pipe,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
    /// Whether white space separates this token from the one before it.
    spaced: bool,
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action { tokens: Vec<Token>, start: usize },
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn line_of(source: &str, pos: usize) -> usize {
    1 + source.as_bytes()[..pos.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn parse_error(source: &str, pos: usize, message: impl Into<String>) -> FormatError {
    FormatError::Parse {
        line: line_of(source, pos),
        message: message.into(),
    }
}

/// Docker turns a literal backslash-t / backslash-n typed on the command line
/// into a tab / newline.
fn expand_escapes(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// `-` followed by white space right after `{{`.
fn has_left_trim(rest: &str) -> bool {
    let mut chars = rest.chars();
    chars.next() == Some('-') && chars.next().is_some_and(is_space)
}

/// At `}}`, or at white space, `-`, `}}`: returns (bytes to consume, trim).
fn at_right_delim(rest: &str) -> Option<(usize, bool)> {
    let mut chars = rest.chars();
    if let (Some(space), Some('-')) = (chars.next(), chars.next()) {
        if is_space(space) && chars.as_str().starts_with(RIGHT) {
            return Some((space.len_utf8() + 1 + RIGHT.len(), true));
        }
    }
    rest.starts_with(RIGHT).then_some((RIGHT.len(), false))
}

fn lex(source: &str) -> Result<Vec<Item>, FormatError> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next_text = false;
    loop {
        let open = source[pos..].find(LEFT).map(|i| pos + i);
        let mut text = &source[pos..open.unwrap_or(source.len())];
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        let Some(open) = open else {
            push_text(&mut items, text);
            return Ok(items);
        };
        let mut inner = open + LEFT.len();
        if has_left_trim(&source[inner..]) {
            text = text.trim_end_matches(is_space);
            inner += 2;
        }
        push_text(&mut items, text);

        if source[inner..].starts_with("/*") {
            let close = source[inner..]
                .find("*/")
                .map(|i| inner + i + 2)
                .ok_or_else(|| parse_error(source, open, "unclosed comment"))?;
            let (len, trim) = at_right_delim(&source[close..]).ok_or_else(|| {
                parse_error(source, open, "comment ends before closing delimiter")
            })?;
            pos = close + len;
            trim_next_text = trim;
            continue;
        }
        let (tokens, end, trim) = lex_action(source, inner)?;
        items.push(Item::Action {
            tokens,
            start: open,
        });
        pos = end;
        trim_next_text = trim;
    }
}

fn push_text(items: &mut Vec<Item>, text: &str) {
    if !text.is_empty() {
        items.push(Item::Text(expand_escapes(text)));
    }
}

/// Lexes the inside of one action starting at `pos`; returns its tokens, the
/// position after the closing delimiter, and whether it ended with `-}}`.
fn lex_action(source: &str, mut pos: usize) -> Result<(Vec<Token>, usize, bool), FormatError> {
    let mut tokens = Vec::new();
    let mut spaced = true;
    loop {
        let rest = &source[pos..];
        if let Some((len, trim)) = at_right_delim(rest) {
            return Ok((tokens, pos + len, trim));
        }
        let mut chars = rest.chars();
        let Some(c) = chars.next() else {
            return Err(parse_error(source, pos, "unclosed action"));
        };
        let next = chars.next();
        let start = pos;
        let tok = match c {
            c if is_space(c) => {
                pos += c.len_utf8();
                spaced = true;
                continue;
            }
            '(' => {
                pos += 1;
                Tok::LParen
            }
            ')' => {
                pos += 1;
                Tok::RParen
            }
            '|' => {
                pos += 1;
                Tok::Pipe
            }
            ',' => {
                pos += 1;
                Tok::Comma
            }
            '=' => {
                pos += 1;
                Tok::Assign
            }
            ':' if next == Some('=') => {
                pos += 2;
                Tok::Declare
            }
            ':' => return Err(parse_error(source, pos, "expected :=")),
            '"' => {
                let (text, len) = lex_quoted(source, pos)?;
                pos += len;
                Tok::Lit(Value::String(text))
            }
            '`' => {
                let close = rest[1..]
                    .find('`')
                    .ok_or_else(|| parse_error(source, pos, "unterminated raw quoted string"))?;
                pos += close + 2;
                Tok::Lit(Value::String(rest[1..1 + close].to_string()))
            }
            '\'' => {
                let (value, len) = lex_char(source, pos)?;
                pos += len;
                Tok::Lit(value)
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let (value, len) = lex_number(source, pos)?;
                pos += len;
                Tok::Lit(value)
            }
            '.' if next.is_some_and(is_ident_start) => {
                let (fields, len) = lex_fields(rest);
                pos += len;
                Tok::Field(fields)
            }
            '.' => {
                pos += 1;
                Tok::Dot
            }
            '$' => {
                let name_len = rest[1..]
                    .find(|ch: char| !is_ident_char(ch))
                    .unwrap_or(rest.len() - 1);
                let name = rest[..1 + name_len].to_string();
                pos += 1 + name_len;
                let (fields, len) = lex_fields(&source[pos..]);
                pos += len;
                Tok::Var(name, fields)
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && next.is_some_and(|n| n.is_ascii_digit() || n == '.')) =>
            {
                let (value, len) = lex_number(source, pos)?;
                pos += len;
                Tok::Lit(value)
            }
            c if is_ident_start(c) => {
                let len = rest
                    .find(|ch: char| !is_ident_char(ch))
                    .unwrap_or(rest.len());
                let word = &rest[..len];
                pos += len;
                match word {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(word.to_string()),
                }
            }
            other => {
                return Err(parse_error(
                    source,
                    pos,
                    format!("bad character U+{:04X} '{}'", other as u32, other),
                ))
            }
        };
        tokens.push(Token {
            tok,
            start,
            end: pos,
            spaced,
        });
        spaced = false;
    }
}

/// `.A.B.C` at the start of `rest` (which may also be empty: no fields).
fn lex_fields(rest: &str) -> (Vec<String>, usize) {
    let mut fields = Vec::new();
    let mut pos = 0;
    while rest[pos..].starts_with('.') && rest[pos + 1..].starts_with(is_ident_start) {
        let len = rest[pos + 1..]
            .find(|c: char| !is_ident_char(c))
            .unwrap_or(rest.len() - pos - 1);
        fields.push(rest[pos + 1..pos + 1 + len].to_string());
        pos += 1 + len;
    }
    (fields, pos)
}

fn lex_number(source: &str, pos: usize) -> Result<(Value, usize), FormatError> {
    let rest = &source[pos..];
    let mut len = 0;
    let mut prev = ' ';
    for (i, c) in rest.char_indices() {
        let sign_ok = i == 0 || matches!(prev, 'e' | 'E' | 'p' | 'P');
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || ((c == '+' || c == '-') && sign_ok)
        {
            len = i + c.len_utf8();
            prev = c;
        } else {
            break;
        }
    }
    let text = &rest[..len];
    let bad = || parse_error(source, pos, format!("bad number syntax: \"{text}\""));
    let clean = text.replace('_', "");
    let (negative, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.trim_start_matches('+')),
    };
    let radix = [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ]
    .iter()
    .find_map(|(prefix, radix)| digits.strip_prefix(prefix).map(|d| (d, *radix)));
    let value = if let Some((digits, radix)) = radix {
        let n = i64::from_str_radix(digits, radix).map_err(|_| bad())?;
        Value::from(if negative { -n } else { n })
    } else if let Ok(n) = clean.parse::<i64>() {
        Value::from(n)
    } else if let Ok(n) = clean.parse::<u64>() {
        Value::from(n)
    } else {
        let f: f64 = clean.parse().map_err(|_| bad())?;
        Number::from_f64(f).map(Value::Number).ok_or_else(bad)?
    };
    Ok((value, len))
}

/// One escape sequence after a backslash; returns the character and its length.
fn unescape(rest: &str, quote: char) -> Option<(char, usize)> {
    let mut chars = rest.chars();
    let c = chars.next()?;
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        c if c == quote => Some(c),
        _ => None,
    };
    if let Some(ch) = simple {
        return Some((ch, 1));
    }
    let (digits, radix) = match c {
        'x' => (2, 16),
        'u' => (4, 16),
        'U' => (8, 16),
        '0'..='7' => (3, 8),
        _ => return None,
    };
    let start = if radix == 8 { 0 } else { 1 };
    let hex = rest.get(start..start + digits)?;
    let code = u32::from_str_radix(hex, radix).ok()?;
    Some((char::from_u32(code)?, start + digits))
}

fn lex_quoted(source: &str, pos: usize) -> Result<(String, usize), FormatError> {
    let body = &source[pos + 1..];
    let mut out = String::new();
    let mut i = 0;
    loop {
        let Some(c) = body[i..].chars().next() else {
            return Err(parse_error(source, pos, "unterminated quoted string"));
        };
        match c {
            '"' => return Ok((out, i + 2)),
            '\n' => return Err(parse_error(source, pos, "unterminated quoted string")),
            '\\' => {
                let (ch, len) = unescape(&body[i + 1..], '"')
                    .ok_or_else(|| parse_error(source, pos, "invalid syntax in quoted string"))?;
                out.push(ch);
                i += 1 + len;
            }
            c => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
}

fn lex_char(source: &str, pos: usize) -> Result<(Value, usize), FormatError> {
    let body = &source[pos + 1..];
    let bad = || parse_error(source, pos, "malformed character constant");
    let (ch, len) = match body.chars().next() {
        Some('\\') => unescape(&body[1..], '\'')
            .map(|(c, l)| (c, l + 1))
            .ok_or_else(bad)?,
        Some(c) if c != '\'' => (c, c.len_utf8()),
        _ => return Err(bad()),
    };
    if !body[len..].starts_with('\'') {
        return Err(bad());
    }
    Ok((Value::from(ch as u32), len + 2))
}

// ---------------------------------------------------------------------------
// Parser

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        pipe: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Arg {
    kind: ArgKind,
    span: Span,
}

#[derive(Debug, Clone)]
enum ArgKind {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Pipe(Box<Pipeline>, Vec<String>),
}

enum Stop {
    Eof,
    End { start: usize },
    Else { tokens: Vec<Token>, start: usize },
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

struct Parser<'s> {
    source: &'s str,
    items: std::vec::IntoIter<Item>,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    /// How deep blocks and parentheses nest here (bounded by `MAX_DEPTH`).
    depth: usize,
}

/// How deep `{{if}}`/`{{range}}`/`{{with}}` blocks and parentheses may nest. Go
/// bounds expression depth too ("max expression depth exceeded"); without a bound
/// a long enough `--format` overflows the stack (found by the fuzzing harness).
const MAX_DEPTH: usize = 100;

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Dot => "<.>".to_string(),
        Tok::Field(f) => format!("<.{}>", f.join(".")),
        Tok::Var(name, f) if f.is_empty() => format!("<{name}>"),
        Tok::Var(name, f) => format!("<{name}.{}>", f.join(".")),
        Tok::Ident(name) => format!("<{name}>"),
        Tok::Lit(Value::String(s)) => format!("{s:?}"),
        Tok::Lit(v) => format!("<{v}>"),
        Tok::LParen => "\"(\"".to_string(),
        Tok::RParen => "\")\"".to_string(),
        Tok::Pipe => "\"|\"".to_string(),
        Tok::Comma => "\",\"".to_string(),
        Tok::Declare => "\":=\"".to_string(),
        Tok::Assign => "\"=\"".to_string(),
    }
}

impl Parser<'_> {
    fn error(&self, pos: usize, message: impl Into<String>) -> FormatError {
        parse_error(self.source, pos, message)
    }

    /// One level deeper; refused beyond `MAX_DEPTH`. The caller leaves with `self.depth -= 1`.
    fn enter(&mut self, pos: usize) -> Result<(), FormatError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(pos, "max expression depth exceeded"));
        }
        self.depth += 1;
        Ok(())
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, Stop), FormatError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (tokens, start) = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action { tokens, start } => (tokens, start),
            };
            let keyword = match tokens.first().map(|t| &t.tok) {
                Some(Tok::Ident(word)) if KEYWORDS.contains(&word.as_str()) => word.clone(),
                _ => {
                    nodes.push(Node::Action(
                        self.parse_pipeline(&tokens, start, "command")?,
                    ));
                    continue;
                }
            };
            match keyword.as_str() {
                "end" => {
                    if let Some(extra) = tokens.get(1) {
                        return Err(self.error(
                            extra.start,
                            format!("unexpected {} in end", describe(&extra.tok)),
                        ));
                    }
                    return Ok((nodes, Stop::End { start }));
                }
                "else" => {
                    let tokens = tokens[1..].to_vec();
                    return Ok((nodes, Stop::Else { tokens, start }));
                }
                "if" | "with" | "range" => {
                    nodes.push(self.parse_control(&keyword, &tokens[1..], start)?);
                }
                other => {
                    return Err(self.error(start, format!("{{{{{other}}}}} is not supported")));
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn parse_control(
        &mut self,
        keyword: &str,
        tokens: &[Token],
        start: usize,
    ) -> Result<Node, FormatError> {
        self.enter(start)?;
        let node = self.parse_control_body(keyword, tokens, start);
        self.depth -= 1;
        node
    }

    fn parse_control_body(
        &mut self,
        keyword: &str,
        tokens: &[Token],
        start: usize,
    ) -> Result<Node, FormatError> {
        let mark = self.vars.len();
        let pipe = self.parse_pipeline(tokens, start, keyword)?;
        let (body, stop) = self.parse_list()?;
        let eof = |p: &Self| p.error(p.source.len(), "unexpected EOF");
        let otherwise = match stop {
            Stop::Eof => return Err(eof(self)),
            Stop::End { .. } => Vec::new(),
            Stop::Else { tokens, start } => {
                let chained = keyword != "range"
                    && matches!(tokens.first().map(|t| &t.tok), Some(Tok::Ident(w)) if w == keyword);
                if chained {
                    // `{{else if x}}…{{end}}` is `{{else}}{{if x}}…{{end}}{{end}}`.
                    vec![self.parse_control(keyword, &tokens[1..], start)?]
                } else if let Some(extra) = tokens.first() {
                    return Err(self.error(
                        extra.start,
                        format!("unexpected {} in else", describe(&extra.tok)),
                    ));
                } else {
                    match self.parse_list()? {
                        (list, Stop::End { .. }) => list,
                        (_, Stop::Eof) => return Err(eof(self)),
                        (_, Stop::Else { start, .. }) => {
                            return Err(self.error(start, "expected end; found {{else}}"))
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        Ok(match keyword {
            "if" => Node::If {
                pipe,
                then: body,
                otherwise,
            },
            "with" => Node::With {
                pipe,
                then: body,
                otherwise,
            },
            _ => Node::Range {
                pipe,
                body,
                otherwise,
            },
        })
    }

    /// A whole action's pipeline, with its optional declaration.
    fn parse_pipeline(
        &mut self,
        tokens: &[Token],
        start: usize,
        context: &str,
    ) -> Result<Pipeline, FormatError> {
        let mut cur = 0;
        let mut decl = Vec::new();
        let mut assign = false;
        let var = |i: usize| match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::Var(name, fields)) if fields.is_empty() => Some(name.clone()),
            _ => None,
        };
        let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
        if let (Some(name), Some(op @ (Tok::Declare | Tok::Assign))) = (var(0), tok(1)) {
            decl.push(name);
            assign = *op == Tok::Assign;
            cur = 2;
        } else if let (
            Some(a),
            Some(Tok::Comma),
            Some(b),
            Some(op @ (Tok::Declare | Tok::Assign)),
        ) = (var(0), tok(1), var(2), tok(3))
        {
            if context != "range" {
                return Err(self.error(start, format!("too many declarations in {context}")));
            }
            decl.push(a);
            decl.push(b);
            assign = *op == Tok::Assign;
            cur = 4;
        }
        for name in &decl {
            if assign && !self.vars.contains(name) {
                return Err(self.error(start, format!("undefined variable \"{name}\"")));
            }
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        let cmds = self.parse_commands(tokens, &mut cur, start, false)?;
        if let Some(extra) = tokens.get(cur) {
            return Err(self.error(
                extra.start,
                format!("unexpected {} in {context}", describe(&extra.tok)),
            ));
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    /// Commands separated by `|`, up to the end of the tokens (or a `)` when
    /// inside parentheses).
    fn parse_commands(
        &mut self,
        tokens: &[Token],
        cur: &mut usize,
        start: usize,
        in_paren: bool,
    ) -> Result<Vec<Command>, FormatError> {
        let mut cmds = Vec::new();
        loop {
            let mut args: Vec<Arg> = Vec::new();
            while let Some(token) = tokens.get(*cur) {
                match token.tok {
                    Tok::Pipe => break,
                    Tok::RParen if in_paren => break,
                    _ => {}
                }
                if !args.is_empty() && !token.spaced {
                    return Err(self.error(
                        token.start,
                        format!("unexpected {} in operand", describe(&token.tok)),
                    ));
                }
                args.push(self.parse_operand(tokens, cur)?);
            }
            if args.is_empty() {
                let at = tokens.get(*cur).map_or(start, |t| t.start);
                return Err(self.error(at, "missing value for command"));
            }
            cmds.push(Command { args });
            match tokens.get(*cur).map(|t| &t.tok) {
                Some(Tok::Pipe) => *cur += 1,
                _ => return Ok(cmds),
            }
        }
    }

    fn parse_operand(&mut self, tokens: &[Token], cur: &mut usize) -> Result<Arg, FormatError> {
        let token = &tokens[*cur];
        *cur += 1;
        let kind = match &token.tok {
            Tok::Dot => ArgKind::Dot,
            Tok::Field(fields) => ArgKind::Field(fields.clone()),
            Tok::Var(name, fields) => {
                if !self.vars.contains(name) {
                    return Err(self.error(token.start, format!("undefined variable \"{name}\"")));
                }
                ArgKind::Var(name.clone(), fields.clone())
            }
            Tok::Ident(name) if KEYWORDS.contains(&name.as_str()) => {
                return Err(self.error(token.start, format!("unexpected <{name}> in command")));
            }
            Tok::Ident(name) if FUNCTIONS.contains(&name.as_str()) => ArgKind::Func(name.clone()),
            Tok::Ident(name) => {
                return Err(self.error(token.start, format!("function \"{name}\" not defined")));
            }
            Tok::Lit(value) => ArgKind::Lit(value.clone()),
            Tok::LParen => {
                self.enter(token.start)?;
                let cmds = self.parse_commands(tokens, cur, token.start, true);
                self.depth -= 1;
                let cmds = cmds?;
                match tokens.get(*cur) {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => *cur += 1,
                    _ => return Err(self.error(token.start, "unclosed left paren")),
                }
                let mut fields = Vec::new();
                if let Some(Token {
                    tok: Tok::Field(chain),
                    spaced: false,
                    ..
                }) = tokens.get(*cur)
                {
                    fields = chain.clone();
                    *cur += 1;
                }
                let pipe = Pipeline {
                    decl: Vec::new(),
                    assign: false,
                    cmds,
                };
                ArgKind::Pipe(Box::new(pipe), fields)
            }
            other => {
                return Err(self.error(
                    token.start,
                    format!("unexpected {} in operand", describe(other)),
                ));
            }
        };
        let end = tokens.get(*cur - 1).map_or(token.end, |t| t.end);
        Ok(Arg {
            kind,
            span: Span {
                start: token.start,
                end,
            },
        })
    }
}

// ---------------------------------------------------------------------------
// Values as Go prints them

/// A value the way Go's `fmt` prints it with `%v`: strings bare, integral
/// numbers without a decimal point, `map[k:v …]` with sorted keys, `[a b]`,
/// and `<nil>` for null.
pub fn go_print(value: &Value) -> String {
    let mut out = String::new();
    write_go(&mut out, value);
    out
}

fn write_go(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            for (i, (key, item)) in sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_go(out, item);
            }
            out.push(']');
        }
    }
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    // Go's %v: shortest digits, exponent form below 1e-4 or from 1e6 up.
    let exp = f.abs().log10().floor();
    if !(-4.0..6.0).contains(&exp) {
        let sci = format!("{f:e}");
        if let Some((mantissa, exp)) = sci.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
    }
    f.to_string()
}

/// What an action prints for a value: like [`go_print`], but a missing or null
/// value is `<no value>`, as in Go templates.
fn print_action(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        other => go_print(other),
    }
}

/// Go's notion of "true" in `if`, `with`, `and`, `or`, `not`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The Go type a value would have after `json.Unmarshal`, for error messages.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

// ---------------------------------------------------------------------------
// Functions

const FUNCTIONS: &[&str] = &[
    // Go's builtins.
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", // Docker's additions.
    "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

/// Functions that print their first argument unchanged in a table header, as
/// Docker's header functions do (plus `index` and `slice`, so that
/// `{{index .Labels "k"}}` heads its column with `LABELS`).
const HEADER_PASS_THROUGH: &[&str] = &[
    "json", "split", "join", "title", "lower", "upper", "truncate", "index", "slice",
];

/// Exactly `N` arguments, as an array to destructure.
fn want_args<'a, const N: usize>(name: &str, args: &'a [Value]) -> Result<&'a [Value; N], String> {
    args.try_into().map_err(|_| {
        format!(
            "wrong number of args for {name}: want {N} got {}",
            args.len()
        )
    })
}

fn calling(name: &str, message: impl std::fmt::Display) -> String {
    format!("error calling {name}: {message}")
}

fn int_arg(name: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| calling(name, format!("expected integer; found {}", go_print(value)))),
        other => Err(calling(
            name,
            format!("expected integer; found {}", go_type(other)),
        )),
    }
}

/// Go's `fmt.Sprint`: a space between two operands when neither is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !arg.is_string() {
            out.push(' ');
        }
        write_go(&mut out, arg);
    }
    out
}

fn go_sprintln(args: &[Value]) -> String {
    let mut out: String = args.iter().map(go_print).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

/// Go's `strings.Title`: upper-case each letter that follows a separator.
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_separator = true;
    for c in s.chars() {
        if after_separator && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_separator = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn compare_eq(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Number(_), Value::Number(_)) => {
            Ok(compare_order(a, b)? == std::cmp::Ordering::Equal)
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err("invalid type for comparison".to_string())
        }
        _ => Err("incompatible types for comparison".to_string()),
    }
}

fn compare_order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Ok(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Ok(x.cmp(&y));
            }
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x.partial_cmp(&y)
                .ok_or_else(|| "invalid type for comparison".to_string())
        }
        (Value::String(_), Value::Number(_)) | (Value::Number(_), Value::String(_)) => {
            Err("incompatible types for comparison".to_string())
        }
        _ => Err("invalid type for comparison".to_string()),
    }
}

fn index_value(name: &str, item: &Value, keys: &[Value]) -> Result<Value, String> {
    let mut current = item.clone();
    for key in keys {
        current = match (&current, key) {
            (Value::Object(map), Value::String(k)) => match map.get(k) {
                Some(v) => v.clone(),
                // A missing key gives the map's zero value; the maps users
                // index (labels, options) hold strings, so that is "".
                None if map.values().all(Value::is_string) => Value::String(String::new()),
                None => Value::Null,
            },
            // Like indexing a nil map[string]string in Go.
            (Value::Null, Value::String(_)) => Value::String(String::new()),
            (Value::Array(items), Value::Number(_)) => {
                let i = int_arg(name, key)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| calling(name, format!("index out of range: {i}")))?
            }
            (Value::Object(_), other) => {
                return Err(calling(
                    name,
                    format!("value has type {}; should be string", go_type(other)),
                ))
            }
            (Value::Null, _) => return Err(calling(name, "index of untyped nil")),
            (other, _) => {
                return Err(calling(
                    name,
                    format!("can't index item of type {}", go_type(other)),
                ))
            }
        };
    }
    Ok(current)
}

fn slice_value(name: &str, args: &[Value]) -> Result<Value, String> {
    let Some((item, bounds)) = args.split_first() else {
        return Err(format!(
            "wrong number of args for {name}: want at least 1 got 0"
        ));
    };
    let bounds = bounds
        .iter()
        .map(|b| {
            int_arg(name, b)
                .and_then(|i| usize::try_from(i).map_err(|_| calling(name, "negative index")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let len = match item {
        Value::String(s) => s.len(),
        Value::Array(a) => a.len(),
        other => {
            return Err(calling(
                name,
                format!("can't slice item of type {}", go_type(other)),
            ))
        }
    };
    let (lo, hi) = match bounds.as_slice() {
        [] => (0, len),
        [lo] => (*lo, len),
        [lo, hi] => (*lo, *hi),
        _ => return Err(calling(name, "too many slice indexes")),
    };
    if lo > hi || hi > len {
        return Err(calling(name, format!("index out of range: {hi}")));
    }
    match item {
        Value::String(s) => s
            .get(lo..hi)
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| calling(name, "slice is not on a character boundary")),
        Value::Array(a) => Ok(Value::Array(a[lo..hi].to_vec())),
        _ => Ok(Value::Null),
    }
}

/// A small `fmt.Sprintf`: verbs `v s d q t f g e x X %`, flags `-+0 `, width
/// and precision.
fn go_sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let number = arg.as_f64();
        let mut text = match (verb, arg) {
            ('d', Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => go_number(n),
            ('f' | 'F', _) if number.is_some() => {
                format!("{:.*}", precision.unwrap_or(6), number.unwrap_or(0.0))
            }
            ('e', _) if number.is_some() => {
                let p = precision.unwrap_or(6);
                let sci = format!("{:.*e}", p, number.unwrap_or(0.0));
                match sci.split_once('e') {
                    Some((m, e)) => {
                        let e: i32 = e.parse().unwrap_or(0);
                        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                    }
                    None => sci,
                }
            }
            ('g', _) if number.is_some() => match precision {
                Some(p) => super::humanize::go_format_g(number.unwrap_or(0.0), p),
                None => go_print(arg),
            },
            ('x' | 'X', Value::Number(n)) if n.as_i64().is_some() => {
                let i = n.as_i64().unwrap_or(0);
                let hex = format!("{:x}", i.unsigned_abs());
                let hex = if i < 0 { format!("-{hex}") } else { hex };
                if verb == 'X' {
                    hex.to_uppercase()
                } else {
                    hex
                }
            }
            ('x' | 'X', Value::String(s)) => {
                let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    hex.to_uppercase()
                } else {
                    hex
                }
            }
            ('q', Value::String(s)) => format!("{s:?}"),
            ('t', Value::Bool(b)) => b.to_string(),
            ('s' | 'v', _) => {
                let text = go_print(arg);
                match precision {
                    Some(p) if verb == 's' => text.chars().take(p).collect(),
                    _ => text,
                }
            }
            _ => format!("%!{verb}({}={})", go_type(arg), go_print(arg)),
        };
        if number.is_some() && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g') && !text.starts_with('-')
        {
            if plus {
                text.insert(0, '+');
            } else if space {
                text.insert(0, ' ');
            }
        }
        let width: usize = width.parse().unwrap_or(0);
        let len = text.chars().count();
        if len < width {
            let fill = width - len;
            if minus {
                text.push_str(&" ".repeat(fill));
            } else if zero && number.is_some() {
                let sign_len = usize::from(text.starts_with(['-', '+', ' ']));
                text.insert_str(sign_len, &"0".repeat(fill));
            } else {
                text.insert_str(0, &" ".repeat(fill));
            }
        }
        out.push_str(&text);
    }
    for extra in args {
        out.push_str(&format!("%!(EXTRA {}={})", go_type(extra), go_print(extra)));
    }
    out
}

/// Calls a template function with evaluated arguments.
fn call_function(name: &str, args: &[Value]) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => go_print(other),
    };
    let string = |s: String| Ok(Value::String(s));
    match name {
        "not" => {
            let [a] = want_args(name, args)?;
            Ok(Value::Bool(!truthy(a)))
        }
        "len" => {
            let [a] = want_args(name, args)?;
            let n = match a {
                Value::String(s) => s.len(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Null => return Err(calling(name, "len of untyped nil")),
                other => return Err(calling(name, format!("len of type {}", go_type(other)))),
            };
            Ok(Value::from(n))
        }
        "index" => match args.split_first() {
            Some((item, keys)) => index_value(name, item, keys),
            None => Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )),
        },
        "slice" => slice_value(name, args),
        "print" => string(go_sprint(args)),
        "println" => string(go_sprintln(args)),
        "printf" => match args.split_first() {
            Some((format, rest)) => string(go_sprintf(&text(format), rest)),
            None => Err(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )),
        },
        "eq" => match args.split_first() {
            Some((first, rest)) if !rest.is_empty() => {
                for other in rest {
                    if compare_eq(first, other).map_err(|e| calling(name, e))? {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            _ => Err(calling(name, "missing argument for comparison")),
        },
        "ne" => {
            let [a, b] = want_args(name, args)?;
            let equal = compare_eq(a, b).map_err(|e| calling(name, e))?;
            Ok(Value::Bool(!equal))
        }
        "lt" | "le" | "gt" | "ge" => {
            let [a, b] = want_args(name, args)?;
            let order = compare_order(a, b).map_err(|e| calling(name, e))?;
            Ok(Value::Bool(match name {
                "lt" => order.is_lt(),
                "le" => order.is_le(),
                "gt" => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        "json" => {
            let [a] = want_args(name, args)?;
            serde_json::to_string(a)
                .map(Value::String)
                .map_err(|e| calling(name, e))
        }
        "split" => {
            let [a, b] = want_args(name, args)?;
            let (s, sep) = (text(a), text(b));
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Value::Array(parts))
        }
        "join" => {
            let [a, b] = want_args(name, args)?;
            let sep = text(b);
            match a {
                Value::Array(items) => {
                    string(items.iter().map(text).collect::<Vec<_>>().join(&sep))
                }
                Value::Null => string(String::new()),
                other => Err(calling(
                    name,
                    format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    ),
                )),
            }
        }
        "title" => {
            let [a] = want_args(name, args)?;
            string(go_title(&text(a)))
        }
        "lower" => {
            let [a] = want_args(name, args)?;
            string(text(a).to_lowercase())
        }
        "upper" => {
            let [a] = want_args(name, args)?;
            string(text(a).to_uppercase())
        }
        "pad" => {
            let [a, b, c] = want_args(name, args)?;
            let s = text(a);
            if s.is_empty() {
                return string(s);
            }
            let before = usize::try_from(int_arg(name, b)?).unwrap_or(0);
            let after = usize::try_from(int_arg(name, c)?).unwrap_or(0);
            string(format!("{}{s}{}", " ".repeat(before), " ".repeat(after)))
        }
        "truncate" => {
            let [a, b] = want_args(name, args)?;
            let s = text(a);
            let n = usize::try_from(int_arg(name, b)?).unwrap_or(0);
            string(s.chars().take(n).collect())
        }
        _ => Err(format!("function \"{name}\" not defined")),
    }
}

// ---------------------------------------------------------------------------
// Evaluation

struct Exec<'t> {
    source: &'t str,
    vars: Vec<(String, Value)>,
    out: String,
    /// Set while rendering a table header: field name → column title.
    header: Option<&'t dyn Fn(&str) -> String>,
    /// Set while rendering a listing's row (see [`Template::execute_row`]).
    row: Option<RowCheck<'t>>,
}

/// The fields a listing's row has, for [`Template::execute_row`].
struct RowCheck<'t> {
    /// The row itself: only fields looked up directly on it are checked.
    root: &'t Value,
    known: &'t dyn Fn(&str) -> bool,
    type_name: &'t str,
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

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), FormatError> {
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

#[cfg(test)]
mod tests;
