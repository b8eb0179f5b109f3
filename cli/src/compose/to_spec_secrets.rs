//! Compose secrets and configs → the stack's secret and config objects and
//! the services' references to them, as `docker stack deploy` makes them.
//!
//! A top-level entry becomes the object `<stack>_<key>` (or its `name:`,
//! used as is), labelled with its `labels:` and `com.docker.stack.namespace`,
//! whose data is the `file:` (taken against the first Compose file's
//! folder, read here, bounded like `secret create`: 1 byte to under
//! 500 KiB), the value of the `environment:` variable, or a config's
//! `content:`. An `external: true` entry is looked up by its name, never
//! created. A service's entry (`- db_password`, or the long syntax with
//! source, target, uid, gid and mode) must name a top-level entry; it
//! becomes a reference to the object's name, with Docker's defaults: target
//! the Compose key (`/run/secrets/<key>` for a secret, `/<key>` for a
//! config), uid and gid 0, mode 0444. The control API turns names into IDs.

use std::io::Read;

use indexmap::IndexMap;
use rswarm_proto::spec::secrets::{check_name, check_spec, Kind, DEFAULT_MODE, MAX_DATA_BYTES};
use rswarm_proto::types::{
    Annotations, ConfigReference, ConfigSpec, SecretFileTarget, SecretReference, SecretSpec,
};

use super::model::{FileObject, FileRef, Project};
use super::to_spec::NAMESPACE_LABEL;

/// A problem: (key path, why).
pub(super) type Problem = (String, String);

/// The secrets and configs a stack creates, and the external ones it uses.
#[derive(Default)]
pub(super) struct Objects {
    pub(super) secrets: Vec<SecretSpec>,
    pub(super) configs: Vec<ConfigSpec>,
    pub(super) external_secrets: Vec<String>,
    pub(super) external_configs: Vec<String>,
}

/// One top-level entry: created (name, labels, data) or external (name).
enum Object {
    Own(Annotations, Vec<u8>),
    External(String),
}

/// The objects of the top-level `secrets:` and `configs:` of `project` in
/// stack `stack`, with every problem, in the file's order.
pub(super) fn objects(project: &Project, stack: &str) -> (Objects, Vec<Problem>) {
    let mut out = Objects::default();
    let mut problems = Vec::new();
    for (key, o) in &project.secrets {
        match object(Kind::Secret, stack, key, o, &mut problems) {
            Some(Object::Own(annotations, data)) => out.secrets.push(SecretSpec {
                annotations: Some(annotations),
                data,
            }),
            Some(Object::External(name)) => out.external_secrets.push(name),
            None => {}
        }
    }
    for (key, o) in &project.configs {
        match object(Kind::Config, stack, key, o, &mut problems) {
            Some(Object::Own(annotations, data)) => out.configs.push(ConfigSpec {
                annotations: Some(annotations),
                data,
            }),
            Some(Object::External(name)) => out.external_configs.push(name),
            None => {}
        }
    }
    (out, problems)
}

fn section(kind: Kind) -> &'static str {
    match kind {
        Kind::Secret => "secrets",
        Kind::Config => "configs",
    }
}

/// The name a top-level entry has in the cluster.
fn real_name(stack: &str, key: &str, o: &FileObject) -> String {
    match (&o.external, &o.name) {
        (Some(ext), _) => ext.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => format!("{stack}_{key}"),
    }
}

fn object(
    kind: Kind,
    stack: &str,
    key: &str,
    o: &FileObject,
    problems: &mut Vec<Problem>,
) -> Option<Object> {
    let at = format!("{}.{key}", section(kind));
    let word = kind.word();
    let name = real_name(stack, key, o);
    let name_at = if o.name.is_some() {
        format!("{at}.name")
    } else {
        at.clone()
    };
    if let Err(e) = check_name(&name) {
        problems.push((name_at, e.0));
        return None;
    }
    if o.external.is_some() {
        if !o.labels.is_empty() {
            problems.push((
                format!("{at}.labels"),
                format!("an external {word} is used as it is: it cannot have labels"),
            ));
            return None;
        }
        return Some(Object::External(name));
    }
    let (source_at, data) = if let Some(path) = &o.file {
        (format!("{at}.file"), read_file(kind, path))
    } else if let Some(value) = &o.environment_value {
        (format!("{at}.environment"), Ok(value.clone().into_bytes()))
    } else if let Some(content) = &o.content {
        (format!("{at}.content"), Ok(content.clone().into_bytes()))
    } else {
        // The loader refused an entry without a source already.
        return None;
    };
    let data = match data {
        Ok(d) => d,
        Err(why) => {
            problems.push((source_at, why));
            return None;
        }
    };
    let mut labels = o.labels.clone();
    labels.insert(NAMESPACE_LABEL.into(), stack.into());
    let annotations = Annotations {
        name,
        labels: labels.into_iter().collect(),
    };
    if let Err(e) = check_spec(kind, Some(&annotations), &data) {
        let path = if data.is_empty() || data.len() >= MAX_DATA_BYTES {
            source_at
        } else {
            at
        };
        problems.push((path, e.0));
        return None;
    }
    Some(Object::Own(annotations, data))
}

/// A `file:`'s bytes, refused (without reading more) past the bound.
fn read_file(kind: Kind, path: &str) -> Result<Vec<u8>, String> {
    let word = kind.word();
    let f = std::fs::File::open(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut data = Vec::new();
    f.take(MAX_DATA_BYTES as u64)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if data.len() >= MAX_DATA_BYTES {
        return Err(format!(
            "{path} is too large: a {word} must be less than 500 KiB"
        ));
    }
    if data.is_empty() {
        return Err(format!("{path} is empty: a {word} needs at least one byte"));
    }
    Ok(data)
}

/// The references of service `service` (its `secrets:` and `configs:`
/// entries) in stack `stack`, with every problem.
pub(super) fn references(
    project: &Project,
    stack: &str,
    service: &str,
    secrets: &[FileRef],
    configs: &[FileRef],
) -> (Vec<SecretReference>, Vec<ConfigReference>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut refs = |kind: Kind, list: &[FileRef], declared: &IndexMap<String, FileObject>| {
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let Some(o) = declared.get(&r.source) else {
                problems.push((
                    format!("services.{service}.{}[{i}]", section(kind)),
                    format!(
                        "{} {:?} is not declared under the top-level {} key",
                        kind.word(),
                        r.source,
                        section(kind)
                    ),
                ));
                continue;
            };
            let file = SecretFileTarget {
                name: r.target.clone().unwrap_or_else(|| r.source.clone()),
                uid: r.uid.clone().unwrap_or_else(|| "0".into()),
                gid: r.gid.clone().unwrap_or_else(|| "0".into()),
                mode: r.mode.unwrap_or(DEFAULT_MODE),
            };
            out.push((real_name(stack, &r.source, o), file));
        }
        out
    };
    let secret_refs = refs(Kind::Secret, secrets, &project.secrets)
        .into_iter()
        .map(|(name, file)| SecretReference {
            secret_id: String::new(),
            secret_name: name,
            file: Some(file),
        })
        .collect();
    let config_refs = refs(Kind::Config, configs, &project.configs)
        .into_iter()
        .map(|(name, file)| ConfigReference {
            config_id: String::new(),
            config_name: name,
            file: Some(file),
        })
        .collect();
    (secret_refs, config_refs, problems)
}

#[cfg(test)]
#[path = "to_spec_secrets_tests.rs"]
mod tests;
