//! The template parser: turns the lexer's items into a tree of text, actions
//! and `if`/`with`/`range` blocks, checks variables are declared and function
//! names exist, and bounds nesting depth. Owns the tree types the evaluator
//! walks.

use serde_json::Value;

use super::funcs::FUNCTIONS;
use super::lex::{parse_error, Item, Tok, Token};
use crate::format::FormatError;

#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
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
pub(super) struct Pipeline {
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    pub(super) decl: Vec<String>,
    pub(super) assign: bool,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(super) struct Command {
    pub(super) args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(super) struct Arg {
    pub(super) kind: ArgKind,
    pub(super) span: Span,
}

#[derive(Debug, Clone)]
pub(super) enum ArgKind {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Pipe(Box<Pipeline>, Vec<String>),
}

pub(super) enum Stop {
    Eof,
    End { start: usize },
    Else { tokens: Vec<Token>, start: usize },
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

pub(super) struct Parser<'s> {
    pub(super) source: &'s str,
    pub(super) items: std::vec::IntoIter<Item>,
    /// Variables in scope, innermost last.
    pub(super) vars: Vec<String>,
    /// How deep blocks and parentheses nest here (bounded by `MAX_DEPTH`).
    pub(super) depth: usize,
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

    pub(super) fn parse_list(&mut self) -> Result<(Vec<Node>, Stop), FormatError> {
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
