//! The merged document into the typed [`Project`]: every key checked, every
//! error collected (file, key path, what was expected) rather than stopping
//! at the first, unknown keys refused unless `x-`, and the keys Swarm
//! ignores gathered for one warning line. Service keys are in
//! `read_service.rs`; this module has the top level and the shared readers.

use std::path::Path;

use indexmap::IndexMap;

use super::model::{FileObject, Network, Project, Subnet, Volume};
use super::value::{join, Value};

/// Top-level keys.
const TOP: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "secrets", "configs",
];

/// Reads values with their paths, collecting problems.
pub struct Reader<'a> {
    /// Said first in every error ("app.yml").
    pub file: &'a str,
    /// The first file's folder: relative paths are taken against it.
    pub dir: &'a Path,
    /// Looks up environment variables (`secrets.*.environment`, bare
    /// `environment` keys).
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub errors: Vec<String>,
    /// Reading one of several files on its own: what only the merged
    /// whole must have (an image, a service) is not required yet.
    pub partial: bool,
    /// Keys Swarm ignores that the file uses, for one warning line.
    pub ignored: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn error(&mut self, path: &str, what: impl std::fmt::Display) {
        self.errors.push(format!("{}: {path}: {what}", self.file));
    }

    /// Something the merged whole must have is missing.
    pub fn missing(&mut self, path: &str, what: impl std::fmt::Display) {
        if !self.partial {
            self.error(path, what);
        }
    }

    /// A mapping, or an error naming what was there instead.
    pub fn map<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v IndexMap<String, Value>> {
        match v {
            Value::Map(m) => Some(m),
            other => {
                self.error(path, format!("must be a mapping, not {}", other.kind()));
                None
            }
        }
    }

    /// Refuses unknown keys (except `x-` extensions), notes ignored ones.
    pub fn check_keys(
        &mut self,
        path: &str,
        map: &IndexMap<String, Value>,
        known: &[&str],
        ignored: &[&str],
    ) {
        for key in map.keys() {
            if key.starts_with("x-") || known.contains(&key.as_str()) {
                continue;
            }
            if ignored.contains(&key.as_str()) {
                if !self.ignored.contains(key) {
                    self.ignored.push(key.clone());
                }
                continue;
            }
            self.error(path, format!("unknown key \"{key}\""));
        }
    }

    /// A scalar as text (numbers and booleans as written).
    pub fn string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v.scalar_text() {
            Some(s) => Some(s),
            None => {
                self.error(path, format!("must be a string, not {}", v.kind()));
                None
            }
        }
    }

    /// A list of strings.
    pub fn strings(&mut self, path: &str, v: &Value) -> Vec<String> {
        match v {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.string(&format!("{path}[{i}]"), item))
                .collect(),
            other => {
                self.error(
                    path,
                    format!("must be a list of strings, not {}", other.kind()),
                );
                Vec::new()
            }
        }
    }

    /// A string or a list of strings (`dns: 1.1.1.1` or `dns: [..]`).
    pub fn one_or_many(&mut self, path: &str, v: &Value) -> Vec<String> {
        match v {
            Value::Seq(_) => self.strings(path, v),
            other => self.string(path, other).into_iter().collect(),
        }
    }

    /// A command: a list, or a string split as a shell would.
    pub fn command(&mut self, path: &str, v: &Value) -> Option<Vec<String>> {
        match v {
            Value::Null => None,
            Value::Seq(_) => Some(self.strings(path, v)),
            other => {
                let text = self.string(path, other)?;
                match shell_words::split(&text) {
                    Ok(words) => Some(words),
                    Err(_) => {
                        self.error(path, format!("invalid command {text:?}: unmatched quote"));
                        None
                    }
                }
            }
        }
    }

    pub fn bool(&mut self, path: &str, v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s == "true" || s == "false" => Some(s == "true"),
            other => {
                self.error(path, format!("must be a boolean, not {}", other.kind()));
                None
            }
        }
    }

    /// A whole number ≥ 0 (a number or its text, as interpolation leaves it).
    pub fn uint(&mut self, path: &str, v: &Value) -> Option<u64> {
        let parsed = match v {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            let shown = v.scalar_text().unwrap_or_else(|| v.kind().to_string());
            self.error(path, format!("must be a whole number ≥ 0, not {shown:?}"));
        }
        parsed
    }

    pub fn int(&mut self, path: &str, v: &Value) -> Option<i64> {
        let parsed = match v {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            let shown = v.scalar_text().unwrap_or_else(|| v.kind().to_string());
            self.error(path, format!("must be a whole number, not {shown:?}"));
        }
        parsed
    }

    pub fn float(&mut self, path: &str, v: &Value) -> Option<f64> {
        let parsed = match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            let shown = v.scalar_text().unwrap_or_else(|| v.kind().to_string());
            self.error(path, format!("must be a number, not {shown:?}"));
        }
        parsed
    }

    /// One of `choices`.
    pub fn choice(&mut self, path: &str, v: &Value, choices: &[&str]) -> Option<String> {
        let s = self.string(path, v)?;
        if choices.contains(&s.as_str()) {
            Some(s)
        } else {
            self.error(
                path,
                format!(
                    "invalid value {s:?} (expected one of: {})",
                    choices.join(", ")
                ),
            );
            None
        }
    }

    /// A mapping of strings (labels, options); null values are empty strings.
    pub fn string_map(&mut self, path: &str, v: &Value) -> IndexMap<String, String> {
        let mut out = IndexMap::new();
        match v {
            Value::Map(m) => {
                for (k, item) in m {
                    let value = match item {
                        Value::Null => String::new(),
                        other => self.string(&join(path, k), other).unwrap_or_default(),
                    };
                    out.insert(k.clone(), value);
                }
            }
            other => self.error(
                path,
                format!("must be a mapping or a list, not {}", other.kind()),
            ),
        }
        out
    }

    /// `external: true`, or `external: {name: x}` (old form): the name to
    /// look up, given the object's key and its `name:`.
    fn external(
        &mut self,
        path: &str,
        m: &IndexMap<String, Value>,
        key: &str,
    ) -> (Option<String>, Option<String>) {
        let mut name = m
            .get("name")
            .and_then(|v| self.string(&join(path, "name"), v));
        let external = match m.get("external") {
            None => None,
            Some(Value::Map(e)) => {
                let n = e
                    .get("name")
                    .and_then(|v| self.string(&join(path, "external.name"), v))
                    .or_else(|| name.clone())
                    .unwrap_or_else(|| key.to_string());
                // The old form's name is the object's name.
                name = Some(n.clone());
                Some(n)
            }
            Some(v) => match self.bool(&join(path, "external"), v) {
                Some(true) => Some(name.clone().unwrap_or_else(|| key.to_string())),
                _ => None,
            },
        };
        (external, name)
    }

    /// A path from the file, absolute against the first file's folder.
    pub fn host_path(&self, p: &str) -> String {
        let path = Path::new(p);
        if path.is_absolute() {
            p.to_string()
        } else if let Some(home) = p.strip_prefix("~/") {
            let base = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
            format!("{base}/{home}")
        } else {
            let joined = self.dir.join(path);
            normalize_path(&joined)
        }
    }
}

/// `a/./b/../c` → `a/c` without touching the filesystem.
fn normalize_path(p: &Path) -> String {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

/// Reads a whole merged document.
pub fn project(r: &mut Reader, doc: &Value) -> Project {
    let mut p = Project::default();
    let Some(top) = r.map("(top level)", doc) else {
        return p;
    };
    r.check_keys("(top level)", top, TOP, &[]);
    match top.get("services") {
        Some(Value::Map(services)) => {
            for (name, v) in services {
                if let Some(s) = super::read_service::service(r, name, v) {
                    p.services.insert(name.clone(), s);
                }
            }
        }
        Some(other) => r.error(
            "services",
            format!("must be a mapping, not {}", other.kind()),
        ),
        None => r.missing("services", "missing: a stack needs at least one service"),
    }
    objects(r, top, "networks", &mut p.networks, network);
    objects(r, top, "volumes", &mut p.volumes, volume);
    objects(r, top, "secrets", &mut p.secrets, |r, path, key, m| {
        file_object(r, path, key, m, false)
    });
    objects(r, top, "configs", &mut p.configs, |r, path, key, m| {
        file_object(r, path, key, m, true)
    });
    p
}

fn objects<T: Default>(
    r: &mut Reader,
    top: &IndexMap<String, Value>,
    section: &str,
    out: &mut IndexMap<String, T>,
    read: impl Fn(&mut Reader, &str, &str, &IndexMap<String, Value>) -> T,
) {
    let Some(v) = top.get(section) else { return };
    let Some(m) = r.map(section, v) else { return };
    for (key, item) in m {
        let path = join(section, key);
        let object = match item {
            // `networks: {front: }`: all defaults.
            Value::Null => T::default(),
            other => match r.map(&path, other) {
                Some(fields) => read(r, &path, key, fields),
                None => continue,
            },
        };
        out.insert(key.clone(), object);
    }
}

fn network(r: &mut Reader, path: &str, key: &str, m: &IndexMap<String, Value>) -> Network {
    r.check_keys(
        path,
        m,
        &[
            "driver",
            "driver_opts",
            "attachable",
            "external",
            "name",
            "labels",
            "ipam",
            "internal",
        ],
        &["enable_ipv6"],
    );
    let (external, name) = r.external(path, m, key);
    let mut n = Network {
        external,
        name,
        ..Default::default()
    };
    if let Some(v) = m.get("driver") {
        n.driver = r.choice(&join(path, "driver"), v, &["overlay"]);
    }
    if let Some(v) = m.get("driver_opts") {
        n.driver_opts = r.string_map(&join(path, "driver_opts"), v);
    }
    if let Some(v) = m.get("attachable") {
        n.attachable = r.bool(&join(path, "attachable"), v).unwrap_or(false);
    }
    if let Some(v) = m.get("internal") {
        n.internal = r.bool(&join(path, "internal"), v).unwrap_or(false);
    }
    if let Some(v) = m.get("labels") {
        n.labels = r.string_map(&join(path, "labels"), v);
    }
    if let Some(v) = m.get("ipam") {
        let ipam_path = join(path, "ipam");
        if let Some(ipam) = r.map(&ipam_path, v) {
            r.check_keys(&ipam_path, ipam, &["driver", "config"], &["options"]);
            if let Some(d) = ipam.get("driver") {
                r.choice(&join(&ipam_path, "driver"), d, &["default"]);
            }
            if let Some(Value::Seq(configs)) = ipam.get("config") {
                for (i, c) in configs.iter().enumerate() {
                    let cpath = format!("{ipam_path}.config[{i}]");
                    let Some(cm) = r.map(&cpath, c) else { continue };
                    r.check_keys(
                        &cpath,
                        cm,
                        &["subnet", "gateway"],
                        &["ip_range", "aux_addresses"],
                    );
                    let subnet = cm
                        .get("subnet")
                        .and_then(|v| r.string(&join(&cpath, "subnet"), v));
                    let gateway = cm
                        .get("gateway")
                        .and_then(|v| r.string(&join(&cpath, "gateway"), v));
                    match subnet {
                        Some(subnet) => n.subnets.push(Subnet { subnet, gateway }),
                        None => r.error(&cpath, "missing subnet"),
                    }
                }
            } else if let Some(other) = ipam.get("config") {
                r.error(
                    &join(&ipam_path, "config"),
                    format!("must be a list, not {}", other.kind()),
                );
            }
        }
    }
    n
}

fn volume(r: &mut Reader, path: &str, key: &str, m: &IndexMap<String, Value>) -> Volume {
    r.check_keys(
        path,
        m,
        &["driver", "driver_opts", "external", "name", "labels"],
        &[],
    );
    let (external, name) = r.external(path, m, key);
    let mut v = Volume {
        external,
        name,
        ..Default::default()
    };
    if let Some(d) = m.get("driver") {
        v.driver = r.choice(&join(path, "driver"), d, &["local"]);
    }
    if let Some(o) = m.get("driver_opts") {
        v.driver_opts = r.string_map(&join(path, "driver_opts"), o);
    }
    if let Some(l) = m.get("labels") {
        v.labels = r.string_map(&join(path, "labels"), l);
    }
    v
}

fn file_object(
    r: &mut Reader,
    path: &str,
    key: &str,
    m: &IndexMap<String, Value>,
    config: bool,
) -> FileObject {
    let known: &[&str] = if config {
        &[
            "file",
            "external",
            "name",
            "labels",
            "environment",
            "content",
        ]
    } else {
        &["file", "external", "name", "labels", "environment"]
    };
    r.check_keys(
        path,
        m,
        known,
        &["driver", "driver_opts", "template_driver"],
    );
    let (external, name) = r.external(path, m, key);
    let mut o = FileObject {
        external,
        name,
        ..Default::default()
    };
    if let Some(f) = m.get("file").and_then(|v| r.string(&join(path, "file"), v)) {
        o.file = Some(r.host_path(&f));
    }
    o.environment = m
        .get("environment")
        .and_then(|v| r.string(&join(path, "environment"), v));
    o.content = m
        .get("content")
        .and_then(|v| r.string(&join(path, "content"), v));
    if let Some(l) = m.get("labels") {
        o.labels = r.string_map(&join(path, "labels"), l);
    }
    let sources = [
        o.file.is_some(),
        o.environment.is_some(),
        o.content.is_some(),
        o.external.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let what = if config { "config" } else { "secret" };
    match sources {
        1 => {}
        0 => r.error(
            path,
            format!(
                "a {what} needs one of file, environment{}, or external",
                if config { ", content" } else { "" }
            ),
        ),
        _ => r.error(
            path,
            format!(
                "a {what} takes only one of file, environment{}, or external",
                if config { ", content" } else { "" }
            ),
        ),
    }
    if let Some(var) = &o.environment {
        o.environment_value = (r.lookup)(var);
        if o.environment_value.is_none() {
            r.error(
                &join(path, "environment"),
                format!("environment variable {var} is not set"),
            );
        }
    }
    o
}
