//! What runs in the container besides the image: environment (`-e`,
//! `--env-file`), labels, ulimits, sysctls, the stop signal and
//! `--entrypoint` words, each as Docker reads and refuses it.

use rswarm_proto::types::Ulimit;

use super::ValueError;
use rswarm_proto::spec::units::parse_int;

/// One `-e` value, Docker's `ValidateEnv`: `KEY=VALUE` is kept as it is;
/// a bare `KEY` takes its value from `lookup` (the local environment) and
/// stays bare (unset in the container) when `lookup` has none.
pub fn parse_env(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ValueError> {
    let (key, has_value) = match value.split_once('=') {
        Some((k, _)) => (k, true),
        None => (value, false),
    };
    if key.is_empty() {
        return Err(ValueError(format!("invalid environment variable: {value}")));
    }
    if has_value {
        return Ok(value.to_string());
    }
    Ok(match lookup(key) {
        Some(v) => format!("{key}={v}"),
        None => value.to_string(),
    })
}

/// The lines of an `--env-file`, Docker's `ParseEnvFile`: blank lines and
/// `#` comments are skipped, `KEY=VALUE` is passed through untrimmed, a bare
/// `KEY` takes its value from `lookup` or is dropped.
pub fn parse_env_file(
    content: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ValueError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for raw in content.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (variable, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if variable.contains(char::is_whitespace) {
            return Err(ValueError(format!(
                "poorly formatted environment: variable '{variable}' contains whitespaces"
            )));
        }
        if variable.is_empty() {
            return Err(ValueError(format!(
                "poorly formatted environment: no variable name on line '{line}'"
            )));
        }
        match value {
            Some(v) => out.push(format!("{variable}={v}")),
            None => {
                if let Some(v) = lookup(variable) {
                    out.push(format!("{variable}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// One `-l`/`--label`/`--container-label` value, Docker's `ValidateLabel`:
/// `key=value` or `key` (empty value).
pub fn parse_label(value: &str) -> Result<(String, String), ValueError> {
    let (key, val) = value.split_once('=').unwrap_or((value, ""));
    let trimmed = key.trim();
    if trimmed.is_empty() {
        return Err(ValueError(format!("invalid label '{value}': empty name")));
    }
    if trimmed.contains(char::is_whitespace) {
        return Err(ValueError(format!(
            "label '{trimmed}' contains whitespaces"
        )));
    }
    Ok((key.to_string(), val.to_string()))
}

/// One `--sysctl` value: `name=value`.
pub fn parse_sysctl(value: &str) -> Result<(String, String), ValueError> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(ValueError::new("sysctl must be in the form name=value")),
    }
}

/// The resource names `--ulimit` knows (go-units' list).
const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// One `--ulimit` value, go-units' `ParseUlimit`: `nofile=1024:2048`
/// (soft:hard) or `nofile=1024` (both the same); `-1` means unlimited.
pub fn parse_ulimit(value: &str) -> Result<Ulimit, ValueError> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| ValueError(format!("invalid ulimit argument: {value}")))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(ValueError(format!("invalid ulimit type: {name}")));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let s = parse_int(soft)?;
            (s, s)
        }
        [soft, hard] => {
            let h = parse_int(hard)?;
            (parse_int(soft)?, h)
        }
        _ => {
            return Err(ValueError(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            )))
        }
    };
    if hard != -1 && soft > hard {
        return Err(ValueError(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// A stop signal Docker accepts: a name with or without `SIG` (`TERM`,
/// `SIGQUIT`, `SIGRTMIN+3`) or a number; kept as the user wrote it.
pub fn check_signal(value: &str) -> Result<(), ValueError> {
    let invalid = || ValueError(format!("Invalid signal: {value}"));
    if let Ok(n) = value.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(invalid())
        };
    }
    let upper = value.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    let realtime = ["SIGRTMIN", "SIGRTMAX"].iter().any(|base| {
        name.strip_prefix(base).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(['+', '-'])
                    .and_then(|n| n.parse::<u8>().ok())
                    .is_some_and(|n| n <= 30)
        })
    });
    if realtime || name.parse::<nix::sys::signal::Signal>().is_ok() {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Splits an `--entrypoint` into words the way a POSIX shell would
/// (google/shlex, as Docker does): blanks separate, quotes group, a
/// backslash escapes, `#` starts a comment.
pub fn split_words(value: &str) -> Result<Vec<String>, ValueError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '#' if word.is_none() => break,
            '\\' => {
                let next = chars
                    .next()
                    .ok_or_else(|| ValueError::new("EOF found after escape character"))?;
                word.get_or_insert_with(String::new).push(next);
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => {
                            return Err(ValueError::new("EOF found when expecting closing quote"))
                        }
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => w.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => {
                                return Err(ValueError::new(
                                    "EOF found when expecting closing quote",
                                ))
                            }
                        },
                        Some(c) => w.push(c),
                        None => {
                            return Err(ValueError::new("EOF found when expecting closing quote"))
                        }
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn home_env(k: &str) -> Option<String> {
        (k == "HOME").then(|| "/root".to_string())
    }

    #[test]
    fn env_values() {
        assert_eq!(parse_env("A=1", &no_env), Ok("A=1".into()));
        assert_eq!(parse_env("A=", &no_env), Ok("A=".into()));
        assert_eq!(parse_env("HOME", &home_env), Ok("HOME=/root".into()));
        assert_eq!(parse_env("UNSET", &home_env), Ok("UNSET".into()));
        assert_eq!(
            parse_env("=x", &no_env),
            Err(ValueError::new("invalid environment variable: =x"))
        );
    }

    #[test]
    fn env_files() {
        let content = "\u{feff}# comment\n\nA=1\n  B= two words \nHOME\nUNSET\n";
        assert_eq!(
            parse_env_file(content, &home_env),
            Ok(vec![
                "A=1".into(),
                "B= two words ".into(),
                "HOME=/root".into()
            ])
        );
        assert_eq!(
            parse_env_file("A B=1\n", &no_env),
            Err(ValueError::new(
                "poorly formatted environment: variable 'A B' contains whitespaces"
            ))
        );
        assert_eq!(
            parse_env_file("=1\n", &no_env),
            Err(ValueError::new(
                "poorly formatted environment: no variable name on line '=1'"
            ))
        );
    }

    #[test]
    fn labels_and_sysctls() {
        assert_eq!(parse_label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_label("flag"), Ok(("flag".into(), String::new())));
        assert_eq!(
            parse_label("=x"),
            Err(ValueError::new("invalid label '=x': empty name"))
        );
        assert_eq!(
            parse_label("a b=x"),
            Err(ValueError::new("label 'a b' contains whitespaces"))
        );
        assert_eq!(
            parse_sysctl("net.core.somaxconn=1024"),
            Ok(("net.core.somaxconn".into(), "1024".into()))
        );
        assert_eq!(
            parse_sysctl("net.core.somaxconn"),
            Err(ValueError::new("sysctl must be in the form name=value"))
        );
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048"),
            Ok(Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            })
        );
        assert_eq!(
            parse_ulimit("nproc=512"),
            Ok(Ulimit {
                name: "nproc".into(),
                soft: 512,
                hard: 512
            })
        );
        assert_eq!(
            parse_ulimit("core=-1:-1").map(|u| (u.soft, u.hard)),
            Ok((-1, -1))
        );
        let err = |v: &str| parse_ulimit(v).map_err(|e| e.to_string()).err();
        assert_eq!(
            err("nofile"),
            Some("invalid ulimit argument: nofile".into())
        );
        assert_eq!(err("files=1"), Some("invalid ulimit type: files".into()));
        assert_eq!(
            err("nofile=2048:1024"),
            Some("ulimit soft limit must be less than or equal to hard limit: 2048 > 1024".into())
        );
        assert_eq!(
            err("nofile=1:2:3"),
            Some(
                "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
                    .into()
            )
        );
        assert_eq!(
            err("nofile=lots"),
            Some("strconv.ParseInt: parsing \"lots\": invalid syntax".into())
        );
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "TERM", "sigquit", "9", "SIGRTMIN+3", "SIGUSR1"] {
            assert_eq!(check_signal(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_signal("SIGNOPE"),
            Err(ValueError::new("Invalid signal: SIGNOPE"))
        );
        assert!(check_signal("99").is_err());
    }

    #[test]
    fn entrypoint_words() {
        assert_eq!(
            split_words(r#"/bin/sh -c "echo \"hi\" there" 'a b'"#),
            Ok(vec![
                "/bin/sh".to_string(),
                "-c".into(),
                "echo \"hi\" there".into(),
                "a b".into()
            ])
        );
        assert_eq!(split_words("a\\ b"), Ok(vec!["a b".to_string()]));
        assert_eq!(split_words(""), Ok(vec![]));
        assert_eq!(
            split_words("'open"),
            Err(ValueError::new("EOF found when expecting closing quote"))
        );
    }
}
