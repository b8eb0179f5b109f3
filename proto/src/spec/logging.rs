//! A task's log driver (Swarm's `TaskSpec.LogDriver`): which drivers and
//! options rswarm honours, their bounds, and what they mean on a node
//! ([`settings`]), used by the CLI (`--log-driver`, `--log-opt`, Compose's
//! `logging:`), by `validate()` and by the agent's log writer.
//!
//! rswarm keeps task output on the node that runs the task, in
//! `log.jsonl` files (`service logs` reads them from there):
//!
//! - `json-file` (the default, also when no driver is set) and `local`
//!   keep it in files rotated at `max-size` bytes, `max-file` files in total
//!   (`log.jsonl`, `log.jsonl.1`, … the oldest dropped), the rotated ones
//!   gzipped with `compress=true` (`log.jsonl.1.gz`, …). Unset, `json-file`
//!   keeps 10 MiB × 2 files uncompressed (Docker's json-file keeps one
//!   unbounded file: rswarm bounds the disk a chatty task can take), `local`
//!   20 MiB × 5 compressed (Docker's `local` defaults). `max-size` is read as
//!   Docker's json-file reads it (go-units `FromHumanSize`: `10m` is
//!   10,000,000 bytes), `compress` as Go's `ParseBool`.
//! - `none` keeps nothing: output is read and dropped, and `service logs`
//!   answers Docker's "configured logging driver does not support reading".
//!
//! Every other driver (syslog, journald, gelf, fluentd, awslogs, …) and
//! every other option (`tag`, `labels`, `env`, …) is refused by name:
//! a setting is never accepted and then ignored.

use crate::types::Driver;

use super::units::{human_size, parse_bool, parse_human_size, parse_int};
use super::ValueError;

/// The driver used when a spec names none.
pub const DEFAULT_DRIVER: &str = "json-file";
/// Smallest `max-size` accepted: 1 KiB (a log file holds at least a few lines).
pub const MIN_MAX_SIZE: u64 = 1024;
/// Largest `max-size` accepted: 1 TiB.
pub const MAX_MAX_SIZE: u64 = 1 << 40;
/// Most files `max-file` may keep.
pub const MAX_MAX_FILE: u32 = 100;

/// json-file's defaults in rswarm: 10 MiB per file, 2 files, uncompressed.
const JSON_FILE_DEFAULTS: (u64, u32, bool) = (10 * 1024 * 1024, 2, false);
/// Docker's `local` defaults: 20 MiB per file, 5 files, compressed.
const LOCAL_DEFAULTS: (u64, u32, bool) = (20 * 1024 * 1024, 5, true);

/// Options Docker's file drivers know that rswarm does not honour yet.
const NOT_YET: [&str; 8] = [
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
    "mode",
    "max-buffer-size",
    "cache-disabled",
];

/// What a task's log driver means for the node keeping its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSettings {
    /// Lines kept in files: a file is rotated before it would pass
    /// `max_size` bytes, and `max_files` files are kept in total; with
    /// `compress`, the rotated ones are gzipped.
    Files {
        max_size: u64,
        max_files: u32,
        compress: bool,
    },
    /// Output read and dropped.
    Discard,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings::Files {
            max_size: JSON_FILE_DEFAULTS.0,
            max_files: JSON_FILE_DEFAULTS.1,
            compress: JSON_FILE_DEFAULTS.2,
        }
    }
}

/// The driver's name as rswarm reads it: empty is the default.
pub fn driver_name(driver: Option<&Driver>) -> &str {
    match driver {
        Some(d) if !d.name.is_empty() => &d.name,
        _ => DEFAULT_DRIVER,
    }
}

/// What `driver` (None: the default) means, or the first reason it is
/// refused.
pub fn settings(driver: Option<&Driver>) -> Result<LogSettings, ValueError> {
    let name = driver_name(driver);
    let options = driver.map(|d| &d.options);
    let (mut max_size, mut max_files, mut compress) = match name {
        "json-file" => JSON_FILE_DEFAULTS,
        "local" => LOCAL_DEFAULTS,
        "none" => {
            if let Some(key) = options.and_then(|o| o.keys().min()) {
                return Err(ValueError(format!(
                    "unknown log opt '{key}' for none log driver: it keeps no logs"
                )));
            }
            return Ok(LogSettings::Discard);
        }
        other => {
            return Err(ValueError(format!(
                "logging driver {other:?} is not supported: rswarm keeps task logs on the node (json-file, local or none)"
            )))
        }
    };
    let mut keys: Vec<&String> = options.map(|o| o.keys().collect()).unwrap_or_default();
    keys.sort();
    for key in keys {
        let value = options.and_then(|o| o.get(key)).map_or("", String::as_str);
        match key.as_str() {
            "max-size" => max_size = parse_max_size(value)?,
            "max-file" => max_files = parse_max_file(value)?,
            "compress" => {
                compress = parse_bool(value)
                    .map_err(|e| ValueError(format!("invalid log opt compress {value:?}: {e}")))?
            }
            k if NOT_YET.contains(&k) => {
                return Err(ValueError(format!(
                    "log opt '{k}' of the {name} log driver is not supported yet (rswarm takes max-size, max-file and compress)"
                )))
            }
            k => {
                return Err(ValueError(format!(
                    "unknown log opt '{k}' for {name} log driver"
                )))
            }
        }
    }
    Ok(LogSettings::Files {
        max_size,
        max_files,
        compress,
    })
}

/// `max-size`: a positive decimal size (`2k`, `10m`) within the bounds.
fn parse_max_size(value: &str) -> Result<u64, ValueError> {
    let n = parse_human_size(value)
        .map_err(|e| ValueError(format!("invalid log opt max-size {value:?}: {e}")))?;
    if n <= 0 {
        return Err(ValueError::new("max-size must be a positive number"));
    }
    let n = n as u64;
    if n < MIN_MAX_SIZE {
        return Err(ValueError(format!(
            "log opt max-size {value} is below the minimum of {}",
            human_size(MIN_MAX_SIZE as i64)
        )));
    }
    if n > MAX_MAX_SIZE {
        return Err(ValueError(format!(
            "log opt max-size {value} is over the limit of {}",
            human_size(MAX_MAX_SIZE as i64)
        )));
    }
    Ok(n)
}

/// `max-file`: how many files are kept, 1 to [`MAX_MAX_FILE`].
fn parse_max_file(value: &str) -> Result<u32, ValueError> {
    let n = parse_int(value)
        .map_err(|e| ValueError(format!("invalid log opt max-file {value:?}: {e}")))?;
    if n < 1 {
        return Err(ValueError::new("max-file cannot be less than 1"));
    }
    if n > MAX_MAX_FILE as i64 {
        return Err(ValueError(format!(
            "log opt max-file {n} is over the limit of {MAX_MAX_FILE}"
        )));
    }
    Ok(n as u32)
}

/// One `--log-opt` value: `key=value` (Docker's: a key alone means an empty value).
pub fn parse_log_opt(value: &str) -> Result<(String, String), ValueError> {
    let (k, v) = value.split_once('=').unwrap_or((value, ""));
    if k.is_empty() {
        return Err(ValueError(format!(
            "invalid log opt {value:?}: expected key=value"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The problems of a task's log driver, for `validate()`.
pub(super) fn problems(driver: Option<&Driver>) -> Vec<String> {
    match settings(driver) {
        Ok(_) => vec![],
        Err(e) => vec![e.0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(name: &str, opts: &[(&str, &str)]) -> Driver {
        Driver {
            name: name.into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn err(name: &str, opts: &[(&str, &str)]) -> String {
        match settings(Some(&driver(name, opts))) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn defaults_per_driver() {
        let ten = LogSettings::Files {
            max_size: 10 << 20,
            max_files: 2,
            compress: false,
        };
        assert_eq!(settings(None), Ok(ten));
        assert_eq!(settings(Some(&driver("", &[]))), Ok(ten));
        assert_eq!(settings(Some(&driver("json-file", &[]))), Ok(ten));
        assert_eq!(
            settings(Some(&driver("local", &[]))),
            Ok(LogSettings::Files {
                max_size: 20 << 20,
                max_files: 5,
                compress: true
            })
        );
        assert_eq!(
            settings(Some(&driver("none", &[]))),
            Ok(LogSettings::Discard)
        );
    }

    #[test]
    fn max_size_and_max_file_set_the_rotation() {
        assert_eq!(
            settings(Some(&driver(
                "json-file",
                &[("max-size", "2k"), ("max-file", "3")]
            ))),
            Ok(LogSettings::Files {
                max_size: 2000,
                max_files: 3,
                compress: false
            })
        );
        assert_eq!(
            settings(Some(&driver(
                "json-file",
                &[("compress", "true"), ("max-file", "4")]
            ))),
            Ok(LogSettings::Files {
                max_size: 10 << 20,
                max_files: 4,
                compress: true
            })
        );
        assert_eq!(
            settings(Some(&driver("local", &[("max-size", "1m")]))),
            Ok(LogSettings::Files {
                max_size: 1_000_000,
                max_files: 5,
                compress: true
            })
        );
    }

    #[test]
    fn other_drivers_and_options_are_refused_by_name() {
        assert_eq!(
            err("syslog", &[]),
            "logging driver \"syslog\" is not supported: rswarm keeps task logs on the node (json-file, local or none)"
        );
        assert_eq!(
            err("json-file", &[("foo", "1")]),
            "unknown log opt 'foo' for json-file log driver"
        );
        assert_eq!(
            err("local", &[("tag", "{{.Name}}")]),
            "log opt 'tag' of the local log driver is not supported yet (rswarm takes max-size, max-file and compress)"
        );
        assert_eq!(
            err("local", &[("compress", "yes")]),
            "invalid log opt compress \"yes\": strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
        assert_eq!(
            err("none", &[("max-size", "1m")]),
            "unknown log opt 'max-size' for none log driver: it keeps no logs"
        );
    }

    #[test]
    fn bounds() {
        assert_eq!(
            err("json-file", &[("max-size", "1000")]),
            "log opt max-size 1000 is below the minimum of 1KiB"
        );
        assert!(settings(Some(&driver("json-file", &[("max-size", "1024")]))).is_ok());
        assert_eq!(
            err("json-file", &[("max-size", "2t")]),
            "log opt max-size 2t is over the limit of 1TiB"
        );
        assert_eq!(
            err("json-file", &[("max-size", "0")]),
            "max-size must be a positive number"
        );
        assert_eq!(
            err("json-file", &[("max-size", "ten")]),
            "invalid log opt max-size \"ten\": invalid size: 'ten'"
        );
        assert_eq!(
            err("json-file", &[("max-file", "0")]),
            "max-file cannot be less than 1"
        );
        assert_eq!(
            err("json-file", &[("max-file", "101")]),
            "log opt max-file 101 is over the limit of 100"
        );
        assert!(settings(Some(&driver("json-file", &[("max-file", "100")]))).is_ok());
    }

    #[test]
    fn log_opt_values() {
        assert_eq!(
            parse_log_opt("max-size=2k"),
            Ok(("max-size".into(), "2k".into()))
        );
        assert_eq!(parse_log_opt("tag"), Ok(("tag".into(), String::new())));
        assert!(parse_log_opt("=x").is_err());
    }
}
