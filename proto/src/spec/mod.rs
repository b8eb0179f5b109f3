//! The rules of a service spec, in one place, used by every side that reads
//! one: the CLI (early errors), the control API (the final word), the
//! scheduler (constraints matched against nodes) and the agent (image
//! references it pulls). This is swarmkit's `api/validation` beside the API
//! types.
//!
//! - [`reference`]: image references (`registry:5000/repo:tag@sha256:…`).
//! - [`units`]: numbers, Go durations (`1m30s`), sizes (`64M`), CPUs.
//! - [`ports`]: `--publish` values.
//! - [`mounts`]: `--mount` values and the rules of a mount.
//! - [`constraints`]: placement constraints (parse, and `matches(&Node)`)
//!   and `spread=` preferences.
//! - [`dns`]: `--dns`, `--dns-search`, `--dns-option`, `--host` values and
//!   the rules of a task's resolver settings and host entries.
//! - [`logging`]: a task's log driver (json-file, local, none) and its
//!   `max-size`/`max-file` options.
//! - [`names`]: the DNS-name rule for service and network names.
//! - [`capabilities`]: Linux capability names.
//! - [`bounds`]: size limits every spec keeps.
//! - [`rollout`]: which tasks run a service's current template.
//! - [`secrets`]: secret and config names, values and a container's
//!   references to them.
//! - [`validate`]: every problem of a whole spec, and what the cluster does
//!   not run yet.
//!
//! Every refusal is a line a user reads; nothing here talks to a daemon.

pub mod bounds;
pub mod capabilities;
pub mod constraints;
pub mod dns;
pub mod logging;
pub mod mounts;
pub mod names;
pub mod ports;
pub mod reference;
pub mod replicas;
pub mod rollout;
pub mod secrets;
pub mod units;
mod validate;

pub use validate::{check_supported, validate, Problems};

/// Why one value is not valid: the reason alone (`invalid size: '64X'`); the
/// caller says which flag or field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub fn new(reason: impl Into<String>) -> ValueError {
        ValueError(reason.into())
    }
}

/// Splits one comma-separated value the way Go's `encoding/csv` reads a
/// line, as Docker's `--mount`, `--publish` and `--network` do: fields
/// may be double-quoted (`"a,b"`), a doubled quote inside is a quote.
pub fn csv_fields(value: &str) -> Result<Vec<String>, ValueError> {
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    let mut column = 0usize;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            column += 1;
            let mut closed = false;
            while let Some(c) = chars.next() {
                column += 1;
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        column += 1;
                        field.push('"');
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            if !closed || !matches!(chars.peek(), None | Some(',')) {
                return Err(ValueError(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    column + 1
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                column += 1;
                if c == '"' {
                    return Err(ValueError(format!(
                        "parse error on line 1, column {column}: bare \" in non-quoted-field"
                    )));
                }
                field.push(c);
                chars.next();
            }
        }
        fields.push(field);
        match chars.next() {
            Some(_) => column += 1,
            None => return Ok(fields),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_split_and_unquote_like_go() {
        assert_eq!(
            csv_fields("type=bind,source=/x,target=/y"),
            Ok(vec![
                "type=bind".to_string(),
                "source=/x".to_string(),
                "target=/y".to_string()
            ])
        );
        assert_eq!(
            csv_fields(r#""source=/a,b",target=/y"#),
            Ok(vec!["source=/a,b".to_string(), "target=/y".to_string()])
        );
        assert_eq!(csv_fields(""), Ok(vec![String::new()]));
        assert_eq!(
            csv_fields(r#"a"b"#),
            Err(ValueError::new(
                "parse error on line 1, column 2: bare \" in non-quoted-field"
            ))
        );
        assert!(csv_fields(r#""open"#).is_err());
    }
}
