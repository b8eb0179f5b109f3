//! Service specs from what a user types. The `service create` flags become one
//! [`rswarm_proto::types::ServiceSpec`] here, and `stack deploy`'s Compose
//! conversion builds the same spec from the same building blocks, so a value
//! means the same thing and is refused with the same words whichever way it
//! came in.
//!
//! - `units`: numbers, durations, memory sizes (`64M`, Docker's `RAMInBytes`)
//!   and CPUs (`0.5` → nano CPUs), with Go's and Docker's error wording.
//! - `ports`: `-p 8080:80`, `8080:80/udp`, `mode=host,target=80,published=8080`.
//! - `mounts`: `type=bind|volume|tmpfs,source=…,target=…,readonly,tmpfs-size=…`.
//! - `placement`: constraints (`node.role==worker`) and `spread=` preferences.
//! - `container`: env (`-e`, `--env-file`), labels, ulimits, sysctls,
//!   capabilities, stop signals, `--entrypoint` words.
//! - `policy`: service mode, restart policy, update and rollback config.
//! - `reference`: image references (`registry:5000/repo:tag@sha256:…`).
//! - `flags`: the `service create` flags (clap) and their translation.
//! - `validate`: the checks every finished spec must pass before it is sent.
//!
//! Nothing here talks to a daemon: a spec is parsed and validated completely
//! before any call that stores anything.

pub mod container;
pub mod flags;
pub mod mounts;
pub mod placement;
pub mod policy;
pub mod ports;
pub mod reference;
pub mod units;
pub mod validate;

pub use flags::ServiceFlags;
pub use validate::validate;

/// Why one value is not valid: the reason alone (`invalid size: '64X'`); the
/// caller says which flag or Compose field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub fn new(reason: impl Into<String>) -> ValueError {
        ValueError(reason.into())
    }
}

/// Why a service spec is refused. The message is the line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// One flag's value does not parse (pflag's wording, as Docker prints it).
    #[error("invalid argument \"{value}\" for \"{flag}\" flag: {reason}")]
    Flag {
        flag: String,
        value: String,
        reason: ValueError,
    },
    /// The values parse but do not make a valid service together.
    #[error("{0}")]
    Invalid(String),
}

impl SpecError {
    pub fn invalid(message: impl Into<String>) -> SpecError {
        SpecError::Invalid(message.into())
    }

    /// Ties a value's error to the flag it came from, e.g. `-p, --publish`.
    pub fn flag(flag: &str, value: &str, reason: ValueError) -> SpecError {
        SpecError::Flag {
            flag: flag.to_string(),
            value: value.to_string(),
            reason,
        }
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

    #[test]
    fn flag_errors_read_like_pflag() {
        let e = SpecError::flag(
            "--limit-memory",
            "64X",
            ValueError::new("invalid size: '64X'"),
        );
        assert_eq!(
            e.to_string(),
            "invalid argument \"64X\" for \"--limit-memory\" flag: invalid size: '64X'"
        );
    }
}
