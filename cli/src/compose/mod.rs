//! Compose files as `stack deploy` reads them: YAML (anchors, merge keys,
//! `x-` extensions) → interpolation of `${VAR}` from the environment and a
//! `.env` file → several files merged with Compose's override rules → a
//! typed [`Project`], every problem reported with its file and key path
//! before anything is created.

mod emit;
mod envfile;
mod interpolate;
mod merge;
pub mod model;
mod read;
mod read_deploy;
mod read_ports;
mod read_service;
mod read_volumes;
pub mod to_spec;
mod to_spec_depends;
mod to_spec_health;
mod to_spec_secrets;
mod to_spec_update;
mod to_spec_volumes;
mod value;
mod yaml;

use std::collections::HashMap;
use std::path::Path;

pub use model::Project;

/// Every problem found in the files, one line each ("app.yml:
/// services.web.ports[1]: invalid port \"80:abc\"").
#[derive(Debug)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// One Compose file's text and the name errors call it by.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// What loading gave: the project, and the warnings to print before acting
/// (unset variables, keys Swarm ignores).
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<String>,
}

/// Loads and checks `sources` (merged in order). `dir` is the first file's
/// folder (relative paths and the default `.env` are taken against it);
/// `env_file` replaces that `.env`; `environ` looks up the environment,
/// which wins over the env file. Every problem is returned, one line each.
pub fn load(
    sources: &[Source],
    dir: &Path,
    env_file: Option<&Path>,
    environ: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<String>> {
    let dotenv = read_dotenv(dir, env_file, environ)?;
    let lookup = |name: &str| environ(name).or_else(|| dotenv.get(name).cloned());
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut unset = Vec::new();
    let mut docs = Vec::new();
    for source in sources {
        let mut doc = match yaml::parse(&source.text) {
            Ok(doc) => doc,
            Err(e) => {
                errors.push(format!("{}: {e}", source.name));
                continue;
            }
        };
        doc.visit_strings_mut("", &mut |path, text| match interpolate::interpolate(
            text, &lookup, &mut unset,
        ) {
            Ok(v) => *text = v,
            Err(interpolate::Problem::Format) => errors.push(format!(
                "{}: {path}: invalid interpolation format {text:?} (write a literal $ as $$)",
                source.name
            )),
            Err(interpolate::Problem::Required(var, msg)) => errors.push(if msg.is_empty() {
                format!(
                    "{}: {path}: required variable {var} is missing a value",
                    source.name
                )
            } else {
                format!(
                    "{}: {path}: required variable {var} is missing a value: {msg}",
                    source.name
                )
            }),
        });
        merge::normalize(&mut doc);
        if sources.len() > 1 {
            // Each file on its own first, so that errors name the right file.
            let mut r = reader(&source.name, dir, &lookup, true);
            read::project(&mut r, &doc);
            errors.extend(r.errors);
        }
        docs.push(doc);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut docs = docs.into_iter();
    let Some(mut merged) = docs.next() else {
        return Err(vec!["no Compose file given".into()]);
    };
    for doc in docs {
        merge::merge(&mut merged, doc);
    }
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let label = names.join(", ");
    let mut r = reader(&label, dir, &lookup, false);
    let project = read::project(&mut r, &merged);
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    for var in unset {
        warnings.push(format!(
            "The \"{var}\" variable is not set. Defaulting to a blank string."
        ));
    }
    if !r.ignored.is_empty() {
        warnings.push(format!(
            "Ignoring unsupported options: {}",
            r.ignored.join(", ")
        ));
    }
    Ok(Loaded { project, warnings })
}

/// The project as Compose YAML: merged, interpolated, every short syntax in
/// its long form (`stack config`).
pub fn to_yaml(project: &Project) -> String {
    yaml::to_text(&emit::project(project))
}

fn reader<'a>(
    file: &'a str,
    dir: &'a Path,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    partial: bool,
) -> read::Reader<'a> {
    read::Reader {
        file,
        dir,
        lookup,
        errors: Vec::new(),
        partial,
        ignored: Vec::new(),
    }
}

/// The `.env` beside the first file (if there is one) or `--env-file`
/// (which must exist).
fn read_dotenv(
    dir: &Path,
    env_file: Option<&Path>,
    environ: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, Vec<String>> {
    let (path, required) = match env_file {
        Some(p) => (p.to_path_buf(), true),
        None => (dir.join(".env"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HashMap::new())
        }
        Err(e) => return Err(vec![format!("{}: {e}", path.display())]),
    };
    let name = path.display().to_string();
    envfile::parse(&name, &text, environ)
        .map(|vars| vars.into_iter().collect())
        .map_err(|e| vec![e])
}

#[cfg(test)]
mod tests;
