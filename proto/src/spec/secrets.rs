//! The rules of secrets and configs, and of a service's references to them
//! (swarmkit's `validateSecretSpec`, `validateConfigSpec` and the container
//! spec's secret/config checks, in Docker's words):
//!
//! - a name is 1 to 64 of `[a-zA-Z0-9-_.]`, starting and ending with a
//!   letter or digit ([`check_name`]);
//! - a value is 1 byte to under 500 KiB ([`MAX_DATA_BYTES`]);
//! - labels: at most [`super::bounds::MAX_LIST_ENTRIES`];
//! - a reference names its object, a file target (a relative one is under
//!   `/run/secrets` for a secret, under `/` for a config; an absolute one is
//!   used as it is, as Docker does), numeric uid and gid, a mode within
//!   0777; no two references of a container share a target
//!   ([`reference_problems`]);
//! - `--secret` and `--config` values in Docker's syntax
//!   ([`parse_reference`]).
//!
//! It also gives `SecretSpec` its `Debug`, which shows the value's length
//! only (prost's generated one would print the bytes).

use crate::types::{Annotations, ContainerSpec, SecretFileTarget};

use super::bounds::MAX_LIST_ENTRIES;
use super::{csv_fields, ValueError};

impl std::fmt::Debug for crate::types::SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSpec")
            .field("annotations", &self.annotations)
            .field(
                "data",
                &format_args!("<{} bytes, redacted>", self.data.len()),
            )
            .finish()
    }
}

/// Values must be shorter than this (Docker's 500 KiB).
pub const MAX_DATA_BYTES: usize = 500 * 1024;
/// The longest name.
pub const MAX_NAME_LEN: usize = 64;
/// Where a task finds its secrets.
pub const SECRETS_DIR: &str = "/run/secrets";
/// The mode of a secret or config file when none is given.
pub const DEFAULT_MODE: u32 = 0o444;

/// Which kind of object a rule speaks of ("secret" or "config").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Config,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
}

/// Docker's name rule for secrets and configs.
pub fn check_name(name: &str) -> Result<(), ValueError> {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    let ok = !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter()
            .all(|c| alnum(c) || *c == b'-' || *c == b'_' || *c == b'.');
    if ok {
        Ok(())
    } else {
        Err(ValueError(format!(
            "invalid name {name:?}: only {MAX_NAME_LEN} [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"
        )))
    }
}

/// Checks a secret's or config's name, labels and value.
pub fn check_spec(
    kind: Kind,
    annotations: Option<&Annotations>,
    data: &[u8],
) -> Result<(), ValueError> {
    let a = annotations.ok_or_else(|| ValueError(format!("{} spec has no name", kind.word())))?;
    check_name(&a.name)?;
    if a.labels.len() > MAX_LIST_ENTRIES {
        return Err(ValueError(format!(
            "{} has {} labels, over the limit of {MAX_LIST_ENTRIES}",
            kind.word(),
            a.labels.len()
        )));
    }
    if data.is_empty() || data.len() >= MAX_DATA_BYTES {
        return Err(ValueError(format!(
            "{} data must be larger than 0 and less than 500 KiB",
            kind.word()
        )));
    }
    Ok(())
}

/// One `--secret` / `--config` value in Docker's syntax (`opts.SecretOpt`):
/// `NAME` (target NAME), or `source=NAME[,target=…][,uid=…][,gid=…][,mode=…]`
/// (`src` for short; keys in any case); uid and gid default to "0", mode to
/// 0444 and is read as Go's `ParseUint(v, 0, 32)` does (`0440` octal, `0o440`,
/// `0x…`, else decimal). Returns the object's name and its file target.
pub fn parse_reference(kind: Kind, value: &str) -> Result<(String, SecretFileTarget), ValueError> {
    let mut file = SecretFileTarget {
        name: String::new(),
        uid: "0".into(),
        gid: "0".into(),
        mode: DEFAULT_MODE,
    };
    let fields = csv_fields(value)?;
    if fields.len() == 1 && !fields[0].contains('=') {
        file.name = fields[0].clone();
        return Ok((fields[0].clone(), file));
    }
    let mut source = String::new();
    for field in &fields {
        let Some((key, val)) = field.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ValueError(format!(
                "invalid field '{field}' must be a key=value pair"
            )));
        };
        match key.to_ascii_lowercase().as_str() {
            "source" | "src" => source = val.to_string(),
            "target" => file.name = val.to_string(),
            "uid" => file.uid = val.to_string(),
            "gid" => file.gid = val.to_string(),
            "mode" => {
                file.mode = parse_go_uint32(val).ok_or_else(|| {
                    ValueError(format!(
                        "invalid mode specified: strconv.ParseUint: parsing {val:?}: invalid syntax"
                    ))
                })?
            }
            _ => {
                return Err(ValueError(format!(
                    "invalid field in {} request: {key}",
                    kind.word()
                )))
            }
        }
    }
    if source.is_empty() {
        return Err(ValueError::new("source is required"));
    }
    if file.name.is_empty() {
        file.name = source.clone();
    }
    Ok((source, file))
}

/// Go's `strconv.ParseUint(v, 0, 32)`: a `0x`, `0o`, `0b` or `0` prefix
/// picks the base, `_` may separate digits after a prefix.
fn parse_go_uint32(v: &str) -> Option<u32> {
    let lower = v.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d.to_string(), 16)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d.to_string(), 8)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d.to_string(), 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8)
    } else {
        (lower.clone(), 10)
    };
    let digits = if radix == 10 {
        digits
    } else {
        digits.replace('_', "")
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u32::from_str_radix(&digits, radix).ok()
}

/// Where a reference's file appears in the container.
pub fn target_path(kind: Kind, file: &SecretFileTarget) -> String {
    match kind {
        Kind::Secret if !file.name.starts_with('/') => format!("{SECRETS_DIR}/{}", file.name),
        _ if file.name.starts_with('/') => file.name.clone(),
        _ => format!("/{}", file.name),
    }
}

fn check_target(kind: Kind, object: &str, file: Option<&SecretFileTarget>) -> Vec<String> {
    let mut out = vec![];
    let Some(file) = file else {
        return vec![format!("{} {object:?}: no file target", kind.word())];
    };
    let name = &file.name;
    let bad_name = name.is_empty()
        || name.len() > 4096
        || name.contains('\0')
        || name.split('/').any(|c| c == "..")
        || name.trim_end_matches('/').is_empty();
    if bad_name {
        out.push(format!(
            "{} {object:?}: invalid target {name:?}",
            kind.word()
        ));
    }
    for (what, v) in [("uid", &file.uid), ("gid", &file.gid)] {
        if !v.is_empty() && v.parse::<u32>().is_err() {
            out.push(format!(
                "{} {object:?}: invalid {what} {v:?}: must be a number",
                kind.word()
            ));
        }
    }
    if file.mode > 0o777 {
        out.push(format!(
            "{} {object:?}: invalid mode {:o}: must be within 0777",
            kind.word(),
            file.mode
        ));
    }
    out
}

/// Every problem of a container's secret and config references.
pub fn reference_problems(c: &ContainerSpec) -> Vec<String> {
    let mut out = vec![];
    for (kind, n) in [
        (Kind::Secret, c.secrets.len()),
        (Kind::Config, c.configs.len()),
    ] {
        if n > MAX_LIST_ENTRIES {
            out.push(format!(
                "service spec has {n} {}s, over the limit of {MAX_LIST_ENTRIES}",
                kind.word()
            ));
        }
    }
    let mut targets = std::collections::HashSet::new();
    let refs = c
        .secrets
        .iter()
        .map(|s| (Kind::Secret, s.secret_name.as_str(), s.file.as_ref()))
        .chain(
            c.configs
                .iter()
                .map(|s| (Kind::Config, s.config_name.as_str(), s.file.as_ref())),
        );
    for (kind, name, file) in refs {
        if let Err(e) = check_name(name) {
            out.push(format!("{} reference: {e}", kind.word()));
            continue;
        }
        let problems = check_target(kind, name, file);
        if problems.is_empty() {
            if let Some(f) = file {
                let path = target_path(kind, f);
                if !targets.insert(path.clone()) {
                    out.push(format!(
                        "{} {name:?}: target {path} is used more than once",
                        kind.word()
                    ));
                }
            }
        }
        out.extend(problems);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConfigReference, SecretReference};

    #[test]
    fn a_secret_specs_debug_shows_no_value() {
        let spec = crate::types::SecretSpec {
            annotations: Some(Annotations {
                name: "db_pw".into(),
                labels: Default::default(),
            }),
            data: b"hunter2-value".to_vec(),
        };
        let shown = format!(
            "{spec:?} {:?}",
            crate::types::Secret {
                spec: Some(spec.clone()),
                ..Default::default()
            }
        );
        assert!(!shown.contains("104, 117"), "{shown}"); // the bytes of "hu"
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("db_pw") && shown.contains("<13 bytes, redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["a", "db_password", "my.cert-1", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", ".a", "a b", "a/b", &"x".repeat(65), "é"] {
            let e = check_name(bad).unwrap_err().0;
            assert!(
                e.contains("only 64 [a-zA-Z0-9-_.] characters allowed"),
                "{e}"
            );
        }
    }

    #[test]
    fn values_are_bounded() {
        let a = Annotations {
            name: "s".into(),
            labels: Default::default(),
        };
        assert!(check_spec(Kind::Secret, Some(&a), b"x").is_ok());
        assert_eq!(
            check_spec(Kind::Secret, Some(&a), b"").unwrap_err().0,
            "secret data must be larger than 0 and less than 500 KiB"
        );
        let big = vec![0u8; MAX_DATA_BYTES];
        assert_eq!(
            check_spec(Kind::Config, Some(&a), &big).unwrap_err().0,
            "config data must be larger than 0 and less than 500 KiB"
        );
        assert!(check_spec(Kind::Config, Some(&a), &big[1..]).is_ok());
    }

    fn file(name: &str) -> Option<SecretFileTarget> {
        Some(SecretFileTarget {
            name: name.into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
        })
    }

    #[test]
    fn flag_values_read_as_dockers() {
        let (name, f) = parse_reference(Kind::Secret, "db_pw").unwrap();
        assert_eq!(name, "db_pw");
        assert_eq!(f, file("db_pw").unwrap());
        let (name, f) = parse_reference(
            Kind::Secret,
            "source=db_pw,target=/etc/pw,uid=1000,gid=1001,mode=0400",
        )
        .unwrap();
        assert_eq!(name, "db_pw");
        assert_eq!(
            f,
            SecretFileTarget {
                name: "/etc/pw".into(),
                uid: "1000".into(),
                gid: "1001".into(),
                mode: 0o400,
            }
        );
        let (name, f) = parse_reference(Kind::Config, "SRC=app,Mode=0o640").unwrap();
        assert_eq!(
            (name.as_str(), f.name.as_str(), f.mode),
            ("app", "app", 0o640)
        );
        // Go reads a mode without a leading 0 as decimal.
        assert_eq!(
            parse_reference(Kind::Config, "src=a,mode=292")
                .unwrap()
                .1
                .mode,
            0o444
        );
        assert_eq!(
            parse_reference(Kind::Config, "src=a,mode=0x1ff")
                .unwrap()
                .1
                .mode,
            0o777
        );
        let err = |k, v| parse_reference(k, v).unwrap_err().0;
        assert_eq!(err(Kind::Secret, "target=x"), "source is required");
        assert_eq!(
            err(Kind::Secret, "src=a,b"),
            "invalid field 'b' must be a key=value pair"
        );
        assert_eq!(
            err(Kind::Config, "src=a,size=3"),
            "invalid field in config request: size"
        );
        assert_eq!(
            err(Kind::Secret, "src=a,mode=rw"),
            "invalid mode specified: strconv.ParseUint: parsing \"rw\": invalid syntax"
        );
        assert_eq!(
            err(Kind::Secret, "src=a,mode=09"),
            "invalid mode specified: strconv.ParseUint: parsing \"09\": invalid syntax"
        );
    }

    #[test]
    fn references_need_distinct_sane_targets() {
        let mut c = ContainerSpec {
            secrets: vec![SecretReference {
                secret_id: String::new(),
                secret_name: "pw".into(),
                file: file("pw"),
            }],
            configs: vec![ConfigReference {
                config_id: String::new(),
                config_name: "conf".into(),
                file: file("/etc/app.conf"),
            }],
            ..Default::default()
        };
        assert!(reference_problems(&c).is_empty());
        assert_eq!(
            target_path(Kind::Secret, &file("pw").unwrap()),
            "/run/secrets/pw"
        );
        assert_eq!(target_path(Kind::Config, &file("conf").unwrap()), "/conf");
        c.configs[0].file = file("/run/secrets/pw");
        assert_eq!(
            reference_problems(&c),
            vec!["config \"conf\": target /run/secrets/pw is used more than once"]
        );
        c.configs[0].file = file("/");
        assert_eq!(
            reference_problems(&c),
            vec!["config \"conf\": invalid target \"/\""]
        );
        c.configs[0].file = file("../x");
        assert_eq!(
            reference_problems(&c),
            vec!["config \"conf\": invalid target \"../x\""]
        );
        c.configs.clear();
        c.secrets[0].file.as_mut().unwrap().uid = "root".into();
        c.secrets[0].file.as_mut().unwrap().mode = 0o1777;
        assert_eq!(
            reference_problems(&c),
            vec![
                "secret \"pw\": invalid uid \"root\": must be a number",
                "secret \"pw\": invalid mode 1777: must be within 0777"
            ]
        );
    }
}
