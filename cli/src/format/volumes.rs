//! Volumes in Docker's shapes: `volume ls` rows (DRIVER, VOLUME NAME), the
//! `volume inspect` JSON, the `--filter`s of `volume ls`, and go-units'
//! `HumanSize` for `volume prune`'s reclaimed space.

use rswarm_proto::daemon::VolumeInfo;
use serde_json::{json, Map, Value};

use super::humanize::go_format_g;
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::FormatError;

pub const VOLUME_LS: ListFormat<'static> = ListFormat {
    default_table: "table {{.Driver}}\t{{.Name}}",
    headers: HeaderNames::new(&[
        ("Driver", "DRIVER"),
        ("Name", "VOLUME NAME"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
    ]),
    row_type: "volume",
};

fn labels_text(v: &VolumeInfo) -> String {
    let mut l: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    l.sort();
    l.join(",")
}

pub fn render_volume_list(
    volumes: &[VolumeInfo],
    format: Option<&str>,
    quiet: bool,
) -> Result<String, FormatError> {
    if quiet {
        // A volume's ID is its name.
        return Ok(volumes.iter().map(|v| format!("{}\n", v.name)).collect());
    }
    let rows: Vec<Value> = volumes
        .iter()
        .map(|v| {
            json!({
                "Driver": v.driver,
                "Name": v.name,
                "Scope": v.scope,
                "Mountpoint": v.mountpoint,
                "Labels": labels_text(v),
            })
        })
        .collect();
    render_list(&rows, format, quiet, &VOLUME_LS)
}

/// `docker volume inspect`'s shape (its keys in Go's field order).
pub fn volume_inspect_json(v: &VolumeInfo) -> Value {
    let labels: Map<String, Value> = v
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": {},
        "Scope": v.scope,
    })
}

/// One `volume ls --filter`: `dangling=true|false`, `name=SUBSTRING`,
/// `label=KEY` or `label=KEY=VALUE`, `driver=NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeFilter {
    Dangling(bool),
    Name(String),
    Label(String, Option<String>),
    Driver(String),
}

pub fn parse_volume_filter(text: &str) -> Result<VolumeFilter, String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("bad format of filter (expected name=value): {text}"))?;
    match key {
        "dangling" => match value {
            "true" | "1" => Ok(VolumeFilter::Dangling(true)),
            "false" | "0" => Ok(VolumeFilter::Dangling(false)),
            _ => Err(format!(
                "invalid filter 'dangling={value}': expected true or false"
            )),
        },
        "name" => Ok(VolumeFilter::Name(value.to_string())),
        "label" => Ok(match value.split_once('=') {
            Some((k, v)) => VolumeFilter::Label(k.to_string(), Some(v.to_string())),
            None => VolumeFilter::Label(value.to_string(), None),
        }),
        "driver" => Ok(VolumeFilter::Driver(value.to_string())),
        _ => Err(format!("invalid filter '{key}'")),
    }
}

/// Docker's rule: filters of one kind are alternatives (any may match),
/// filters of different kinds must all match.
pub fn volume_matches(v: &VolumeInfo, filters: &[VolumeFilter]) -> bool {
    let kind = |f: &VolumeFilter| std::mem::discriminant(f);
    filters.iter().all(|f| {
        filters
            .iter()
            .filter(|g| kind(g) == kind(f))
            .any(|g| match g {
                VolumeFilter::Dangling(d) => v.used_by.is_empty() == *d,
                VolumeFilter::Name(n) => v.name.contains(n.as_str()),
                VolumeFilter::Label(k, None) => v.labels.contains_key(k),
                VolumeFilter::Label(k, Some(val)) => v.labels.get(k) == Some(val),
                VolumeFilter::Driver(d) => &v.driver == d,
            })
    })
}

/// go-units' `HumanSize`: decimal units, four significant digits, no space
/// (`0B`, `1.024kB`, `12.5MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_format_g(size, 4), UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, labels: &[(&str, &str)], used: bool) -> VolumeInfo {
        VolumeInfo {
            name: name.into(),
            driver: "local".into(),
            scope: "local".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            used_by: if used { vec!["t1".into()] } else { vec![] },
            ..Default::default()
        }
    }

    #[test]
    fn ls_has_dockers_columns() {
        let out = render_volume_list(&[vol("data", &[], false)], None, false).expect("render");
        assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     data\n");
        let q = render_volume_list(&[vol("a1", &[], false), vol("b1", &[], true)], None, true)
            .expect("quiet");
        assert_eq!(q, "a1\nb1\n");
    }

    #[test]
    fn filters_follow_docker() {
        let f = |t: &str| parse_volume_filter(t).expect(t);
        let a = vol("shop_db", &[("com.docker.stack.namespace", "shop")], true);
        let b = vol("cache", &[], false);
        assert!(volume_matches(&b, &[f("dangling=true")]));
        assert!(!volume_matches(&a, &[f("dangling=true")]));
        assert!(volume_matches(&a, &[f("name=db"), f("name=zz")]));
        assert!(!volume_matches(&a, &[f("name=db"), f("dangling=true")]));
        assert!(volume_matches(&a, &[f("label=com.docker.stack.namespace")]));
        assert!(volume_matches(
            &a,
            &[f("label=com.docker.stack.namespace=shop")]
        ));
        assert!(!volume_matches(
            &a,
            &[f("label=com.docker.stack.namespace=x")]
        ));
        assert_eq!(
            parse_volume_filter("colour=red"),
            Err("invalid filter 'colour'".into())
        );
        assert!(parse_volume_filter("dangling=maybe").is_err());
        assert!(parse_volume_filter("dangling").is_err());
    }

    #[test]
    fn sizes_are_decimal() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1024), "1.024kB");
        assert_eq!(human_size(12_500_000), "12.5MB");
    }

    #[test]
    fn inspect_has_dockers_keys() {
        let v = volume_inspect_json(&vol("data", &[("a", "1")], false));
        let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            [
                "CreatedAt",
                "Driver",
                "Labels",
                "Mountpoint",
                "Name",
                "Options",
                "Scope"
            ]
        );
        assert_eq!(v["Labels"]["a"], "1");
        assert_eq!(v["Scope"], "local");
    }
}
