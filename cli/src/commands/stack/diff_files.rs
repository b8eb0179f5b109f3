//! What a `stack deploy` does to secrets and configs, decided with the rest
//! of the deploy (`diff`) before anything is sent:
//!
//! - an `external` secret or config must exist (by name or ID);
//! - a stack's secret or config that does not exist is created; a name
//!   taken by an object of another stack (or of none) is an error;
//! - an existing config of the stack must hold the file's data and labels
//!   (configs are answered with their data): a changed one is an error, as
//!   Docker cannot update one in place; an existing secret is listed for
//!   the control API to confirm (secrets are answered without their value);
//! - with `--prune`, the stack's secrets and configs the file no longer has
//!   are removed, after the services that used them are gone or updated.
//!
//! A planned service refers to objects by name; [`with_ids`] gives those
//! references the IDs the control API would store, so an unchanged service
//! compares equal to its stored spec.

use std::collections::HashSet;

use rswarm_proto::types::{Annotations, Config, Secret, SecretSpec, ServiceSpec};

use super::{namespace, Action, Cluster};
use crate::compose::to_spec::StackPlan;

/// The secrets' and configs' part of a deploy.
#[derive(Default)]
pub(super) struct FileChanges {
    /// Creates, made before the networks and services.
    pub(super) create: Vec<Action>,
    /// Removals (`--prune`), made last.
    pub(super) remove: Vec<Action>,
    /// The stack's existing secrets, for the control API to confirm.
    pub(super) confirm_secrets: Vec<SecretSpec>,
    pub(super) errors: Vec<String>,
}

fn name_of(a: Option<&Annotations>) -> &str {
    a.map_or("", |a| a.name.as_str())
}

fn secret_name(s: &Secret) -> &str {
    name_of(s.spec.as_ref().and_then(|sp| sp.annotations.as_ref()))
}

fn config_name(c: &Config) -> &str {
    name_of(c.spec.as_ref().and_then(|sp| sp.annotations.as_ref()))
}

fn secret_stack(s: &Secret) -> &str {
    namespace(
        s.spec
            .as_ref()
            .and_then(|sp| sp.annotations.as_ref())
            .map(|a| &a.labels),
    )
}

fn config_stack(c: &Config) -> &str {
    namespace(
        c.spec
            .as_ref()
            .and_then(|sp| sp.annotations.as_ref())
            .map(|a| &a.labels),
    )
}

fn external_missing(word: &str, name: &str) -> String {
    format!(
        "{word} \"{name}\" is declared as external, but could not be found. You need to create the {word} before the stack is deployed"
    )
}

pub(super) fn diff(plan: &StackPlan, stack: &str, cluster: &Cluster, prune: bool) -> FileChanges {
    let mut out = FileChanges::default();
    for ext in &plan.external_secrets {
        if !cluster
            .secrets
            .iter()
            .any(|s| secret_name(s) == ext || s.id == *ext)
        {
            out.errors.push(external_missing("secret", ext));
        }
    }
    for ext in &plan.external_configs {
        if !cluster
            .configs
            .iter()
            .any(|c| config_name(c) == ext || c.id == *ext)
        {
            out.errors.push(external_missing("config", ext));
        }
    }
    for spec in &plan.secrets {
        let name = name_of(spec.annotations.as_ref());
        match cluster.secrets.iter().find(|s| secret_name(s) == name) {
            None => out.create.push(Action::CreateSecret(spec.clone())),
            Some(s) if secret_stack(s) == stack => out.confirm_secrets.push(spec.clone()),
            Some(_) => out.errors.push(format!(
                "secret {name} already exists and is not part of stack {stack}"
            )),
        }
    }
    for spec in &plan.configs {
        let name = name_of(spec.annotations.as_ref());
        match cluster.configs.iter().find(|c| config_name(c) == name) {
            None => out.create.push(Action::CreateConfig(spec.clone())),
            Some(c) if config_stack(c) != stack => out.errors.push(format!(
                "config {name} already exists and is not part of stack {stack}"
            )),
            Some(c) if c.spec.as_ref() == Some(spec) => {}
            Some(_) => out.errors.push(format!(
                "config {name} exists with another value or labels: a config cannot be updated in place; remove it first (its services too) or use a new name"
            )),
        }
    }
    if prune {
        let planned: HashSet<&str> = plan
            .secrets
            .iter()
            .map(|s| name_of(s.annotations.as_ref()))
            .collect();
        let mut gone: Vec<&Secret> = cluster
            .secrets
            .iter()
            .filter(|s| secret_stack(s) == stack && !planned.contains(secret_name(s)))
            .collect();
        gone.sort_by_key(|s| secret_name(s));
        out.remove
            .extend(gone.into_iter().map(|s| Action::RemoveSecret {
                id: s.id.clone(),
                name: secret_name(s).to_string(),
            }));
        let planned: HashSet<&str> = plan
            .configs
            .iter()
            .map(|c| name_of(c.annotations.as_ref()))
            .collect();
        let mut gone: Vec<&Config> = cluster
            .configs
            .iter()
            .filter(|c| config_stack(c) == stack && !planned.contains(config_name(c)))
            .collect();
        gone.sort_by_key(|c| config_name(c));
        out.remove
            .extend(gone.into_iter().map(|c| Action::RemoveConfig {
                id: c.id.clone(),
                name: config_name(c).to_string(),
            }));
    }
    out
}

/// `spec` with each secret and config reference given the ID of the
/// cluster's object of its name (left empty for one not created yet: the
/// control API resolves it).
pub(super) fn with_ids(spec: &ServiceSpec, cluster: &Cluster) -> ServiceSpec {
    let mut spec = spec.clone();
    if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        for r in &mut c.secrets {
            if let Some(s) = cluster
                .secrets
                .iter()
                .find(|s| secret_name(s) == r.secret_name)
            {
                r.secret_id = s.id.clone();
            }
        }
        for r in &mut c.configs {
            if let Some(o) = cluster
                .configs
                .iter()
                .find(|o| config_name(o) == r.config_name)
            {
                r.config_id = o.id.clone();
            }
        }
    }
    spec
}
