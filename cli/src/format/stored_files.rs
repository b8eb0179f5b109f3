//! Secrets and configs in Docker's shapes: `secret ls` rows (ID, NAME,
//! DRIVER, CREATED, UPDATED), `config ls` rows (ID, NAME, CREATED, UPDATED),
//! their `inspect` JSON (a secret's never has a value: the control API never
//! answers one; a config's has its Data in base64) and `--pretty` text (a
//! config's shows its Data), and `ls --filter` (`id=`, `name=` prefixes,
//! `label=KEY[=VALUE]`).

use std::collections::BTreeMap;

use base64::Engine as _;
use rswarm_proto::types::{Config, Meta, Secret};
use serde_json::{json, Value};

use super::humanize::{go_time, rfc3339_nano};
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::tasks::human_duration;
use super::FormatError;

pub const SECRET_LS: ListFormat<'static> = ListFormat {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    headers: HeaderNames::new(&[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("CreatedAt", "CREATED"),
        ("UpdatedAt", "UPDATED"),
        ("Labels", "LABELS"),
    ]),
    row_type: "secret",
};

pub const CONFIG_LS: ListFormat<'static> = ListFormat {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
    headers: HeaderNames::new(&[
        ("ID", "ID"),
        ("Name", "NAME"),
        ("CreatedAt", "CREATED"),
        ("UpdatedAt", "UPDATED"),
        ("Labels", "LABELS"),
    ]),
    row_type: "config",
};

/// What the two kinds share, as the printers see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredFile {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// A config's value; never a secret's.
    pub data: Option<Vec<u8>>,
}

fn times(meta: Option<&Meta>) -> (u64, i64, i64) {
    let m = meta.cloned().unwrap_or_default();
    (
        m.version.map(|v| v.index).unwrap_or(0),
        m.created_at,
        m.updated_at,
    )
}

impl From<&Secret> for StoredFile {
    fn from(s: &Secret) -> Self {
        let a = s
            .spec
            .as_ref()
            .and_then(|s| s.annotations.clone())
            .unwrap_or_default();
        let (version, created_at, updated_at) = times(s.meta.as_ref());
        StoredFile {
            id: s.id.clone(),
            name: a.name,
            labels: a.labels.into_iter().collect(),
            version,
            created_at,
            updated_at,
            data: None,
        }
    }
}

impl From<&Config> for StoredFile {
    fn from(c: &Config) -> Self {
        let spec = c.spec.clone().unwrap_or_default();
        let a = spec.annotations.unwrap_or_default();
        let (version, created_at, updated_at) = times(c.meta.as_ref());
        StoredFile {
            id: c.id.clone(),
            name: a.name,
            labels: a.labels.into_iter().collect(),
            version,
            created_at,
            updated_at,
            data: Some(spec.data),
        }
    }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One `ls` row; `now` is unix nanoseconds. Secrets have a (blank) Driver.
pub fn ls_row(o: &StoredFile, now: i64, secret: bool) -> Value {
    let ago = |t: i64| format!("{} ago", human_duration(now - t));
    let mut row = json!({
        "ID": o.id,
        "Name": o.name,
        "CreatedAt": ago(o.created_at),
        "UpdatedAt": ago(o.updated_at),
        "Labels": labels_text(&o.labels),
    });
    if secret {
        row["Driver"] = json!("");
    }
    row
}

/// One `secret ls --filter` / `config ls --filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Id(String),
    Name(String),
    Label(String, Option<String>),
}

/// Docker's filters of these lists: `id` and `name` match prefixes, `label`
/// a key (with any value) or key=value.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("bad format of filter (expected name=value): {text}"))?;
    match key {
        "id" => Ok(Filter::Id(value.to_string())),
        "name" => Ok(Filter::Name(value.to_string())),
        "label" => Ok(match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(value.to_string(), None),
        }),
        _ => Err(format!("invalid filter '{key}'")),
    }
}

/// Filters of one kind are alternatives; of different kinds, all must match.
pub fn matches(o: &StoredFile, filters: &[Filter]) -> bool {
    let kind = |f: &Filter| std::mem::discriminant(f);
    filters.iter().all(|f| {
        filters
            .iter()
            .filter(|g| kind(g) == kind(f))
            .any(|g| match g {
                Filter::Id(p) => o.id.starts_with(p.as_str()),
                Filter::Name(p) => o.name.starts_with(p.as_str()),
                Filter::Label(k, None) => o.labels.contains_key(k),
                Filter::Label(k, Some(v)) => o.labels.get(k) == Some(v),
            })
    })
}

/// The `ls` output: by name, for `--format` and `-q`.
pub fn render_list_of(
    objects: &[StoredFile],
    now: i64,
    secret: bool,
    format: Option<&str>,
    quiet: bool,
) -> Result<String, FormatError> {
    let mut sorted: Vec<&StoredFile> = objects.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let rows: Vec<Value> = sorted.iter().map(|o| ls_row(o, now, secret)).collect();
    let list = if secret { &SECRET_LS } else { &CONFIG_LS };
    render_list(&rows, format, quiet, list)
}

/// Docker's `inspect` JSON: ID, Version, CreatedAt, UpdatedAt, Spec (Name,
/// Labels, and a config's Data in base64).
pub fn inspect_json(o: &StoredFile) -> Value {
    let mut spec = json!({"Name": o.name, "Labels": o.labels});
    if let Some(d) = &o.data {
        spec["Data"] = json!(base64::engine::general_purpose::STANDARD.encode(d));
    }
    json!({
        "ID": o.id,
        "Version": {"Index": o.version},
        "CreatedAt": rfc3339_nano(o.created_at),
        "UpdatedAt": rfc3339_nano(o.updated_at),
        "Spec": spec,
    })
}

/// Docker's `inspect --pretty` text, objects separated by a blank line.
pub fn pretty(objects: &[StoredFile], secret: bool) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&format!("ID:              {}\n", o.id));
        out.push_str(&format!("Name:              {}\n", o.name));
        if !o.labels.is_empty() {
            out.push_str("Labels:\n");
            for (k, v) in &o.labels {
                if v.is_empty() {
                    out.push_str(&format!(" - {k}\n"));
                } else {
                    out.push_str(&format!(" - {k}={v}\n"));
                }
            }
        }
        if secret {
            out.push_str("Driver:            \n");
            out.push_str(&format!("Created at:        {}\n", go_time(o.created_at)));
            out.push_str(&format!("Updated at:        {}", go_time(o.updated_at)));
        } else {
            out.push_str(&format!("Created at:          {}\n", go_time(o.created_at)));
            out.push_str(&format!("Updated at:          {}\n", go_time(o.updated_at)));
            out.push_str("Data:\n");
            let data = o.data.as_deref().unwrap_or_default();
            out.push_str(&String::from_utf8_lossy(data));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn object(name: &str, data: Option<&[u8]>) -> StoredFile {
        StoredFile {
            id: format!("{name}id0123456789abcdefghij"),
            name: name.into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            version: 11,
            created_at: 1_500_000_000 * SEC,
            updated_at: 1_500_000_000 * SEC,
            data: data.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn ls_tables_have_dockers_columns() {
        let now = 1_500_000_090 * SEC;
        let out = render_list_of(
            &[object("b", None), object("a", None)],
            now,
            true,
            None,
            false,
        )
        .unwrap();
        let mut lines = out.lines();
        let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(head, ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]);
        let first = lines.next().unwrap();
        assert!(first.starts_with("aid0123456789abcdefghij "), "{first}");
        assert!(first.contains("About a minute ago"), "{first}");
        let out = render_list_of(&[object("a", Some(b"x"))], now, false, None, false).unwrap();
        let head: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(head, ["ID", "NAME", "CREATED", "UPDATED"]);
        let quiet = render_list_of(&[object("a", None)], now, true, None, true).unwrap();
        assert_eq!(quiet, "aid0123456789abcdefghij\n");
    }

    #[test]
    fn inspect_shows_a_configs_data_and_never_a_secrets() {
        let s = inspect_json(&object("pw", None));
        assert_eq!(s["Spec"]["Name"], "pw");
        assert_eq!(s["Spec"]["Labels"]["env"], "prod");
        assert_eq!(s["Version"]["Index"], 11);
        assert!(s["Spec"].get("Data").is_none());
        let c = inspect_json(&object("conf", Some(b"hello")));
        assert_eq!(c["Spec"]["Data"], "aGVsbG8=");
        let p = pretty(&[object("conf", Some(b"hello"))], false);
        assert!(p.contains("Labels:\n - env=prod\n"), "{p}");
        assert!(p.ends_with("Data:\nhello\n"), "{p}");
        let p = pretty(&[object("pw", None)], true);
        assert!(p.contains("Driver:            \n"), "{p}");
        assert!(
            p.ends_with("Updated at:        2017-07-14 02:40:00 +0000 UTC\n"),
            "{p}"
        );
    }

    #[test]
    fn filters_match_prefixes_and_labels() {
        let o = object("db_password", None);
        let f = |t: &str| parse_filter(t).unwrap();
        assert!(matches(&o, &[f("name=db")]));
        assert!(!matches(&o, &[f("name=password")]));
        assert!(matches(&o, &[f("name=x"), f("name=db_")]));
        assert!(matches(&o, &[f("id=db_pass"), f("label=env")]));
        assert!(!matches(&o, &[f("label=env=dev")]));
        assert_eq!(
            parse_filter("driver=x").unwrap_err(),
            "invalid filter 'driver'"
        );
        assert_eq!(
            parse_filter("name").unwrap_err(),
            "bad format of filter (expected name=value): name"
        );
    }
}
