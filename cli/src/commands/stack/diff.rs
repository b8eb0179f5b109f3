//! What a `stack deploy` changes, decided before anything is sent: the
//! planned stack (`compose::to_spec::plan`) against the services and
//! networks the cluster has. Pure, so the rules are tested without a
//! cluster:
//!
//! - a stack network that does not exist is created; one that exists is
//!   left alone (networks cannot be updated); a name taken by a network of
//!   another stack (or of none) is an error;
//! - an `external` network must exist, else Docker's error;
//! - a service that does not exist is created; one whose stored spec differs
//!   from the planned spec is updated on the spec version it was read at; an
//!   identical one is not touched; a service name taken outside the stack,
//!   or a service whose mode would change (Swarm cannot), is an error;
//! - with `--prune`, the stack's services the file no longer names are
//!   removed (first, as Docker does);
//! - secrets and configs (`diff_files`): the stack's missing ones are
//!   created before the networks and services (Docker's order), external
//!   ones must exist, an existing one must hold what the file says (Docker
//!   cannot update one in place); a planned service's references get the
//!   IDs of the objects of their names, as the control API stores them;
//!   with `--prune`, the stack's ones the file dropped are removed last;
//! - registry credentials (`--with-registry-auth`) are not part of the
//!   comparison: the control API never answers them, and sending them
//!   alone does not make a service change.
//!
//! Every error is collected, so a deploy that would fail changes nothing.

use std::collections::HashSet;

use rswarm_proto::types::{
    Config, ConfigSpec, Network, NetworkSpec, Secret, SecretSpec, Service, ServiceSpec, Version,
};

use crate::compose::to_spec::{StackPlan, NAMESPACE_LABEL};
use crate::servicespec::policy::ModeKind;

/// One call a deploy makes, in the order it makes them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    RemoveService {
        id: String,
        name: String,
    },
    CreateSecret(SecretSpec),
    CreateConfig(ConfigSpec),
    CreateNetwork(NetworkSpec),
    CreateService(ServiceSpec),
    UpdateService {
        id: String,
        name: String,
        /// The spec version the stored spec was read at.
        spec_version: Option<Version>,
        spec: ServiceSpec,
    },
    RemoveSecret {
        id: String,
        name: String,
    },
    RemoveConfig {
        id: String,
        name: String,
    },
}

impl Action {
    /// The name of the object the call is about.
    pub(super) fn name(&self) -> &str {
        match self {
            Action::RemoveService { name, .. }
            | Action::UpdateService { name, .. }
            | Action::RemoveSecret { name, .. }
            | Action::RemoveConfig { name, .. } => name,
            Action::CreateSecret(spec) => annotations_name(spec.annotations.as_ref()),
            Action::CreateConfig(spec) => annotations_name(spec.annotations.as_ref()),
            Action::CreateNetwork(spec) => network_spec_name(spec),
            Action::CreateService(spec) => spec_name(spec),
        }
    }

    /// The object's kind and name ("service shop_web").
    pub(super) fn object(&self) -> String {
        let kind = match self {
            Action::CreateNetwork(_) => "network",
            Action::CreateSecret(_) | Action::RemoveSecret { .. } => "secret",
            Action::CreateConfig(_) | Action::RemoveConfig { .. } => "config",
            _ => "service",
        };
        format!("{kind} {}", self.name())
    }

    /// What Docker prints before the call ("Creating service shop_web").
    pub(super) fn announce(&self) -> String {
        match self {
            Action::RemoveService { .. }
            | Action::RemoveSecret { .. }
            | Action::RemoveConfig { .. } => format!("Removing {}", self.object()),
            Action::CreateNetwork(_)
            | Action::CreateService(_)
            | Action::CreateSecret(_)
            | Action::CreateConfig(_) => format!("Creating {}", self.object()),
            Action::UpdateService { id, name, .. } => {
                format!("Updating service {name} (id: {id})")
            }
        }
    }

    /// The verb of the change, for the report of a deploy that failed.
    pub(super) fn verb(&self) -> (&'static str, &'static str) {
        match self {
            Action::RemoveService { .. }
            | Action::RemoveSecret { .. }
            | Action::RemoveConfig { .. } => ("removed", "remove"),
            Action::CreateNetwork(_)
            | Action::CreateService(_)
            | Action::CreateSecret(_)
            | Action::CreateConfig(_) => ("created", "create"),
            Action::UpdateService { .. } => ("updated", "update"),
        }
    }
}

/// What the cluster has, as listed before a deploy.
#[derive(Clone, Copy, Default)]
pub(super) struct Cluster<'a> {
    pub(super) services: &'a [Service],
    pub(super) networks: &'a [Network],
    /// Without their values (the control API never answers them).
    pub(super) secrets: &'a [Secret],
    pub(super) configs: &'a [Config],
}

/// Everything a deploy will do.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Changes {
    pub(super) actions: Vec<Action>,
    /// Services of the file whose stored spec is already the planned one:
    /// (ID, name).
    pub(super) unchanged: Vec<(String, String)>,
    /// The stack's existing secrets, as the file has them: the control API
    /// (which alone sees their values) must confirm they hold the same
    /// before anything is changed.
    pub(super) confirm_secrets: Vec<SecretSpec>,
}

fn annotations_name(a: Option<&rswarm_proto::types::Annotations>) -> &str {
    a.map_or("", |a| a.name.as_str())
}

fn spec_name(spec: &ServiceSpec) -> &str {
    annotations_name(spec.annotations.as_ref())
}

/// Two specs alike but for the registry credentials.
fn same_spec(stored: &ServiceSpec, planned: &ServiceSpec) -> bool {
    let without_auth = |s: &ServiceSpec| {
        let mut s = s.clone();
        if let Some(c) = s.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.pull_options = None;
        }
        s
    };
    without_auth(stored) == without_auth(planned)
}

fn network_spec_name(spec: &NetworkSpec) -> &str {
    spec.annotations.as_ref().map_or("", |a| a.name.as_str())
}

fn network_name(n: &Network) -> &str {
    n.spec.as_ref().map_or("", network_spec_name)
}

fn service_name(s: &Service) -> &str {
    s.spec.as_ref().map_or("", spec_name)
}

/// The stack an object's labels put it in ("" for none).
pub(super) fn namespace(labels: Option<&std::collections::HashMap<String, String>>) -> &str {
    labels
        .and_then(|l| l.get(NAMESPACE_LABEL))
        .map_or("", String::as_str)
}

pub(super) fn service_stack(s: &Service) -> &str {
    namespace(
        s.spec
            .as_ref()
            .and_then(|sp| sp.annotations.as_ref())
            .map(|a| &a.labels),
    )
}

pub(super) fn network_stack(n: &Network) -> &str {
    namespace(
        n.spec
            .as_ref()
            .and_then(|sp| sp.annotations.as_ref())
            .map(|a| &a.labels),
    )
}

fn mode_word(kind: ModeKind) -> &'static str {
    match kind {
        ModeKind::Replicated => "replicated",
        ModeKind::Global => "global",
        ModeKind::ReplicatedJob => "replicated-job",
        ModeKind::GlobalJob => "global-job",
    }
}

/// Decides what deploying `plan` as stack `stack` does to `cluster`; every
/// reason it cannot is returned.
pub(super) fn diff(
    plan: &StackPlan,
    stack: &str,
    cluster: &Cluster,
    prune: bool,
) -> Result<Changes, Vec<String>> {
    let (services, networks) = (cluster.services, cluster.networks);
    let mut errors = Vec::new();
    let mut actions = Vec::new();
    let mut unchanged = Vec::new();
    let files = diff_files::diff(plan, stack, cluster, prune);
    errors.extend(files.errors);

    for ext in &plan.external_networks {
        let found = networks
            .iter()
            .any(|n| network_name(n) == ext || n.id == *ext);
        if !found {
            errors.push(format!(
                "network \"{ext}\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed"
            ));
        }
    }

    if prune {
        let planned: HashSet<&str> = plan.services.iter().map(spec_name).collect();
        let mut gone: Vec<&Service> = services
            .iter()
            .filter(|s| service_stack(s) == stack && !planned.contains(service_name(s)))
            .collect();
        gone.sort_by(|a, b| service_name(a).cmp(service_name(b)));
        actions.extend(gone.into_iter().map(|s| Action::RemoveService {
            id: s.id.clone(),
            name: service_name(s).to_string(),
        }));
    }
    actions.extend(files.create);

    for spec in &plan.networks {
        let name = network_spec_name(spec);
        match networks.iter().find(|n| network_name(n) == name) {
            None => actions.push(Action::CreateNetwork(spec.clone())),
            Some(n) if network_stack(n) == stack => {}
            Some(_) => errors.push(format!(
                "network {name} already exists and is not part of stack {stack}"
            )),
        }
    }

    for spec in &plan.services {
        let name = spec_name(spec);
        let spec = &diff_files::with_ids(spec, cluster);
        let Some(current) = services.iter().find(|s| service_name(s) == name) else {
            actions.push(Action::CreateService(spec.clone()));
            continue;
        };
        if service_stack(current) != stack {
            errors.push(format!(
                "service {name} already exists and is not part of stack {stack}"
            ));
            continue;
        }
        let stored = current.spec.as_ref();
        if stored.is_some_and(|s| same_spec(s, spec)) {
            unchanged.push((current.id.clone(), name.to_string()));
            continue;
        }
        let (was, wants) = (
            ModeKind::of(stored.and_then(|s| s.mode.as_ref())),
            ModeKind::of(spec.mode.as_ref()),
        );
        if was != wants {
            errors.push(format!(
                "service {name} runs in {} mode and the file asks for {}: a service's mode cannot change; remove the service (stack rm, or --prune after renaming it) and deploy again",
                mode_word(was),
                mode_word(wants)
            ));
            continue;
        }
        actions.push(Action::UpdateService {
            id: current.id.clone(),
            name: name.to_string(),
            spec_version: current.meta.as_ref().and_then(|m| m.spec_version),
            spec: spec.clone(),
        });
    }

    actions.extend(files.remove);

    if errors.is_empty() {
        Ok(Changes {
            actions,
            unchanged,
            confirm_secrets: files.confirm_secrets,
        })
    } else {
        Err(errors)
    }
}

#[path = "diff_files.rs"]
mod diff_files;

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
