//! The template lexer: splits a `--format` string into text and actions,
//! applies the `{{-`/`-}}` trim markers, drops comments, and turns each
//! action into tokens (fields, variables, identifiers, string/number/char
//! literals, punctuation). Also owns the "template: :LINE:" parse error.

use serde_json::{Number, Value};

use crate::format::FormatError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether white space separates this token from the one before it.
    pub(super) spaced: bool,
}

#[derive(Debug)]
pub(super) enum Item {
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

pub(super) fn line_of(source: &str, pos: usize) -> usize {
    1 + source.as_bytes()[..pos.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

pub(super) fn parse_error(source: &str, pos: usize, message: impl Into<String>) -> FormatError {
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

pub(super) fn lex(source: &str) -> Result<Vec<Item>, FormatError> {
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
