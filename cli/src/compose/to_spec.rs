//! A Compose project → what `stack deploy` creates: one service spec per
//! Compose service and the networks they use, named `<stack>_<name>` and
//! labelled with the stack, as `docker stack deploy` does it.
//!
//! Services come in creation order (dependencies first) with their
//! `depends_on` (`to_spec_depends`).
//!
//! Each Compose key becomes the `servicespec::edits::SpecEdit` its
//! `service create` flag means, parsed by the same functions (ports and
//! mounts through the flags' own long syntax), applied to the same
//! `defaults()` and checked by the same `rswarm_proto::spec::validate`: a
//! key and its flag are honoured by one code path. A key this conversion
//! cannot honour yet (update and rollback configs, …)
//! is refused, naming the file and key path; nothing is accepted and then
//! ignored. Every problem of every service is collected before returning.
//! Volumes (top-level and of type volume) are mapped in `to_spec_volumes`,
//! secrets and configs (objects and references) in `to_spec_secrets`,
//! `logging:` in `to_spec_logging`.

use indexmap::IndexMap;
use rswarm_proto::spec::capabilities::normalize_capability;
use rswarm_proto::spec::constraints::{parse_preference, Constraint};
use rswarm_proto::spec::mounts::parse_mount;
use rswarm_proto::spec::ports::parse_publish;
use rswarm_proto::spec::units::{
    parse_duration_ns, parse_memory_bytes, parse_nano_cpus, parse_uint,
};
use rswarm_proto::spec::ValueError;
use rswarm_proto::types::{
    Annotations, ConfigSpec, IpamConfig, NetworkAttachmentConfig, NetworkSpec, SecretSpec,
    ServiceSpec, Ulimit,
};

use super::model::{MountKind, Project, Service};
use super::to_spec_depends;
use crate::servicespec::container::check_signal;
use crate::servicespec::edits::{apply, defaults, SpecEdit};
use crate::servicespec::policy::{
    parse_endpoint_mode, parse_restart_condition, service_mode, ModeKind,
};

/// The label every object of a stack carries, valued with the stack's name.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// The label a stack's service carries with the image the file asked for.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// What deploying a project means.
#[derive(Debug, Clone, PartialEq)]
pub struct StackPlan {
    /// Networks the stack owns (created if missing), in the file's order.
    pub networks: Vec<NetworkSpec>,
    /// `external: true` networks: looked up, never created.
    pub external_networks: Vec<String>,
    /// One validated spec per Compose service, in the file's order.
    pub services: Vec<ServiceSpec>,
    /// Secrets the stack owns (created if missing), with their data, in the
    /// file's order.
    pub secrets: Vec<SecretSpec>,
    /// Configs the stack owns, likewise.
    pub configs: Vec<ConfigSpec>,
    /// `external: true` secrets: looked up by name, never created.
    pub external_secrets: Vec<String>,
    /// `external: true` configs: looked up by name, never created.
    pub external_configs: Vec<String>,
}

/// Turns `project` into the stack `stack`'s objects. `file` names the
/// Compose file(s) in error lines. Every problem is returned, one line each.
pub fn plan(project: &Project, stack: &str, file: &str) -> Result<StackPlan, Vec<String>> {
    let mut c = Conv {
        file,
        errors: Vec::new(),
        stack,
        volumes: &project.volumes,
        project,
    };
    if !rswarm_proto::spec::names::is_dns_component(stack) {
        // Every service name would repeat it: the one line says it all.
        return Err(vec![format!(
            "invalid stack name {stack:?}: a stack name must be valid as a DNS name component"
        )]);
    }
    for (path, why) in super::to_spec_volumes::check_top_level(&project.volumes) {
        c.refuse(&path, &why);
    }
    let (files, problems) = super::to_spec_secrets::objects(project, stack);
    for (path, why) in problems {
        c.refuse(&path, &why);
    }
    // The networks the services use, each once: Compose name → real name.
    let mut used: IndexMap<String, String> = IndexMap::new();
    let mut networks = Vec::new();
    let mut external_networks = Vec::new();
    for (sname, service) in &project.services {
        let names: Vec<&String> = if service.networks.is_empty() {
            vec![]
        } else {
            service.networks.keys().collect()
        };
        let names = if names.is_empty() {
            vec!["default"]
        } else {
            names.into_iter().map(String::as_str).collect()
        };
        for n in names {
            if used.contains_key(n) {
                continue;
            }
            match project.networks.get(n) {
                Some(net) => {
                    if let Some(ext) = &net.external {
                        used.insert(n.to_string(), ext.clone());
                        external_networks.push(ext.clone());
                        continue;
                    }
                    let real = net.name.clone().unwrap_or_else(|| format!("{stack}_{n}"));
                    used.insert(n.to_string(), real.clone());
                    if let Some(spec) = c.network(stack, n, &real, net) {
                        networks.push(spec);
                    }
                }
                None if n == "default" => {
                    let real = format!("{stack}_default");
                    used.insert(n.to_string(), real.clone());
                    networks.push(network_spec(stack, &real, Default::default()));
                }
                None => c.errors.push(format!(
                    "{}: services.{sname}.networks.{n}: network {n} is not declared under the top-level networks key",
                    c.file
                )),
            }
        }
    }
    // Dependencies first, so each is there when its dependents are created.
    let order = to_spec_depends::creation_order(file, project).unwrap_or_else(|cycle| {
        c.errors.push(cycle);
        project.services.keys().cloned().collect()
    });
    let mut services = Vec::new();
    for name in &order {
        let Some(service) = project.services.get(name) else {
            continue;
        };
        let deps = to_spec_depends::dependencies(file, stack, project, name, service);
        let spec = c.service(stack, name, service, &used);
        match (spec, deps) {
            (Some(mut spec), Ok(deps)) => {
                spec.depends_on = deps;
                services.push(spec);
            }
            (_, Err(lines)) => c.errors.extend(lines),
            (None, Ok(_)) => {}
        }
    }
    if c.errors.is_empty() {
        Ok(StackPlan {
            networks,
            external_networks,
            services,
            secrets: files.secrets,
            configs: files.configs,
            external_secrets: files.external_secrets,
            external_configs: files.external_configs,
        })
    } else {
        Err(c.errors)
    }
}

fn network_spec(stack: &str, real: &str, mut labels: IndexMap<String, String>) -> NetworkSpec {
    labels.insert(NAMESPACE_LABEL.into(), stack.into());
    NetworkSpec {
        annotations: Some(Annotations {
            name: real.to_string(),
            labels: labels.into_iter().collect(),
        }),
        driver: "overlay".into(),
        ..Default::default()
    }
}

/// Quotes one field of a comma-separated flag value when it needs it.
fn csv(field: String) -> String {
    if field.contains(',') || field.contains('"') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

struct Conv<'a> {
    file: &'a str,
    errors: Vec<String>,
    stack: &'a str,
    /// The top-level volumes (`to_spec_volumes`).
    volumes: &'a IndexMap<String, super::model::Volume>,
    /// The whole project (secrets and configs: `to_spec_secrets`).
    project: &'a Project,
}

impl Conv<'_> {
    fn refuse(&mut self, path: &str, why: &str) {
        self.errors.push(format!("{}: {path}: {why}", self.file));
    }

    fn value<T>(
        &mut self,
        path: &str,
        v: &str,
        parse: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match parse(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.refuse(path, &format!("invalid value {v:?}: {e}"));
                None
            }
        }
    }

    fn network(
        &mut self,
        stack: &str,
        key: &str,
        real: &str,
        net: &super::model::Network,
    ) -> Option<NetworkSpec> {
        let at = format!("networks.{key}");
        if let Some(d) = net.driver.as_deref() {
            if d != "overlay" {
                self.refuse(
                    &format!("{at}.driver"),
                    &format!("network driver {d:?} is not supported: rswarm networks are overlay networks"),
                );
                return None;
            }
        }
        let mut spec = network_spec(stack, real, net.labels.clone());
        spec.options = net.driver_opts.clone().into_iter().collect();
        spec.attachable = net.attachable;
        spec.internal = net.internal;
        for (i, s) in net.subnets.iter().enumerate() {
            if !is_cidr(&s.subnet) {
                self.refuse(
                    &format!("{at}.ipam.config[{i}].subnet"),
                    &format!("invalid CIDR address: {}", s.subnet),
                );
            }
            spec.ipam.push(IpamConfig {
                subnet: s.subnet.clone(),
                gateway: s.gateway.clone().unwrap_or_default(),
                ip_range: String::new(),
            });
        }
        Some(spec)
    }

    /// One Compose service as the edits its flags would be, applied to the
    /// defaults and validated; `None` (with the problems recorded) if any
    /// key is wrong or not honoured yet.
    fn service(
        &mut self,
        stack: &str,
        name: &str,
        s: &Service,
        networks: &IndexMap<String, String>,
    ) -> Option<ServiceSpec> {
        let before = self.errors.len();
        let at = |key: &str| format!("services.{name}.{key}");
        self.refuse_unsupported(name, s);
        let d = &s.deploy;
        let kind = match d.mode.as_deref() {
            None => Some(ModeKind::Replicated),
            Some(m) => self.value(&at("deploy.mode"), m, ModeKind::parse),
        };
        let mut edits = vec![
            SpecEdit::Name(format!("{stack}_{name}")),
            SpecEdit::Label(NAMESPACE_LABEL.into(), stack.into()),
            SpecEdit::Label(IMAGE_LABEL.into(), s.image.clone()),
            SpecEdit::ContainerLabel(NAMESPACE_LABEL.into(), stack.into()),
            SpecEdit::Image(s.image.clone()),
        ];
        if s.image.is_empty() {
            self.refuse(
                &at("image"),
                "a service needs an image (rswarm does not build images)",
            );
        }
        if let Some(kind) = kind {
            let per_node = d.max_replicas_per_node.unwrap_or(0);
            match service_mode(kind, d.replicas, None, per_node) {
                Ok(mode) => edits.push(SpecEdit::Mode(mode)),
                Err(e) => self.refuse(&at("deploy"), &e.to_string()),
            }
            edits.push(SpecEdit::MaxReplicasPerNode(per_node));
        }
        if let Some(m) = &d.endpoint_mode {
            if let Some(m) = self.value(&at("deploy.endpoint_mode"), m, parse_endpoint_mode) {
                edits.push(SpecEdit::EndpointMode(m));
            }
        }
        for (k, v) in &d.labels {
            edits.push(SpecEdit::Label(k.clone(), v.clone()));
        }
        for (i, c) in d.constraints.iter().enumerate() {
            let path = at(&format!("deploy.placement.constraints[{i}]"));
            if self.value(&path, c, Constraint::parse).is_some() {
                edits.push(SpecEdit::Constraint(c.trim().to_string()));
            }
        }
        for (i, p) in d.preferences.iter().enumerate() {
            let path = at(&format!("deploy.placement.preferences[{i}].spread"));
            if let Some(p) = self.value(&path, &format!("spread={p}"), parse_preference) {
                edits.push(SpecEdit::Preference(p));
            }
        }
        self.resources(name, s, &mut edits);
        let configs = [
            (&s.deploy.update_config, "update_config", false),
            (&s.deploy.rollback_config, "rollback_config", true),
        ];
        for (config, key, rollback) in configs {
            let Some(u) = config else { continue };
            let at = format!("services.{name}.deploy.{key}");
            match super::to_spec_update::update_edits(u, &at, rollback) {
                Ok(e) => edits.extend(e),
                Err(errors) => errors.iter().for_each(|(p, why)| self.refuse(p, why)),
            }
        }
        self.restart(name, s, &mut edits);
        self.container(name, s, &mut edits);
        self.dns(name, s, &mut edits);
        self.logging(name, s, &mut edits);
        for (i, p) in s.ports.iter().enumerate() {
            let mut text = format!(
                "target={},protocol={},mode={}",
                p.target, p.protocol, p.mode
            );
            if let Some(published) = p.published {
                text.push_str(&format!(",published={published}"));
            }
            if let Some(ports) = self.value(&at(&format!("ports[{i}]")), &text, parse_publish) {
                edits.extend(ports.into_iter().map(SpecEdit::Publish));
            }
        }
        let mine: Vec<(&str, Vec<String>)> = if s.networks.is_empty() {
            vec![("default", vec![])]
        } else {
            s.networks
                .iter()
                .map(|(n, a)| (n.as_str(), a.aliases.clone()))
                .collect()
        };
        for (n, extra) in mine {
            let Some(target) = networks.get(n) else {
                continue;
            };
            let mut aliases = vec![name.to_string()];
            aliases.extend(extra.into_iter().filter(|a| a != name));
            edits.push(SpecEdit::Network(NetworkAttachmentConfig {
                target: target.clone(),
                aliases,
            }));
        }
        let (secrets, configs, problems) =
            super::to_spec_secrets::references(self.project, stack, name, &s.secrets, &s.configs);
        problems.iter().for_each(|(p, why)| self.refuse(p, why));
        if self.errors.len() > before {
            return None;
        }
        let mut spec = defaults(kind.unwrap_or(ModeKind::Replicated));
        apply(&mut spec, edits);
        if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.secrets = secrets;
            c.configs = configs;
        }
        if let Err(p) = rswarm_proto::spec::validate(&spec) {
            for line in p.to_string().lines() {
                self.refuse(&format!("services.{name}"), line);
            }
            return None;
        }
        Some(spec)
    }

    /// Keys the model reads that no edit honours yet: refused by name.
    fn refuse_unsupported(&mut self, name: &str, s: &Service) {
        let d = &s.deploy;
        let not_yet = [(
            "deploy.resources.reservations.pids",
            d.reservations.pids.is_some(),
            "a pids reservation is not supported (only a limit)",
        )];
        for (key, present, why) in not_yet {
            if present {
                self.refuse(&format!("services.{name}.{key}"), why);
            }
        }
    }

    fn resources(&mut self, name: &str, s: &Service, edits: &mut Vec<SpecEdit>) {
        let d = &s.deploy;
        let at = |key: &str| format!("services.{name}.deploy.resources.{key}");
        if let Some(v) = &d.limits.cpus {
            edits.extend(
                self.value(&at("limits.cpus"), v, parse_nano_cpus)
                    .map(SpecEdit::LimitNanoCpus),
            );
        }
        if let Some(v) = &d.limits.memory {
            edits.extend(
                self.value(&at("limits.memory"), v, parse_memory_bytes)
                    .map(SpecEdit::LimitMemoryBytes),
            );
        }
        if let Some(p) = d.limits.pids {
            edits.push(SpecEdit::LimitPids(p));
        }
        if let Some(v) = &d.reservations.cpus {
            edits.extend(
                self.value(&at("reservations.cpus"), v, parse_nano_cpus)
                    .map(SpecEdit::ReserveNanoCpus),
            );
        }
        if let Some(v) = &d.reservations.memory {
            edits.extend(
                self.value(&at("reservations.memory"), v, parse_memory_bytes)
                    .map(SpecEdit::ReserveMemoryBytes),
            );
        }
    }

    fn restart(&mut self, name: &str, s: &Service, edits: &mut Vec<SpecEdit>) {
        let Some(r) = &s.deploy.restart_policy else {
            return;
        };
        let at = |key: &str| format!("services.{name}.deploy.restart_policy.{key}");
        if let Some(c) = &r.condition {
            edits.extend(
                self.value(&at("condition"), c, parse_restart_condition)
                    .map(SpecEdit::RestartCondition),
            );
        }
        if let Some(v) = &r.delay {
            edits.extend(
                self.value(&at("delay"), v, parse_duration_ns)
                    .map(SpecEdit::RestartDelayNs),
            );
        }
        if let Some(n) = r.max_attempts {
            edits.push(SpecEdit::RestartMaxAttempts(n));
        }
        if let Some(v) = &r.window {
            edits.extend(
                self.value(&at("window"), v, parse_duration_ns)
                    .map(SpecEdit::RestartWindowNs),
            );
        }
    }

    /// The container's settings: command, env, mounts, limits, labels.
    fn container(&mut self, name: &str, s: &Service, edits: &mut Vec<SpecEdit>) {
        let at = |key: &str| format!("services.{name}.{key}");
        if let Some(c) = &s.command {
            edits.push(SpecEdit::Args(c.clone()));
        }
        if let Some(e) = &s.entrypoint {
            edits.push(SpecEdit::Command(e.clone()));
        }
        if !s.environment.is_empty() {
            edits.push(SpecEdit::Env(
                s.environment
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ));
        }
        let texts = [
            (&s.hostname, SpecEdit::Hostname as fn(String) -> SpecEdit),
            (&s.working_dir, SpecEdit::Workdir),
            (&s.user, SpecEdit::User),
        ];
        edits.extend(texts.into_iter().filter_map(|(v, e)| v.clone().map(e)));
        for (k, v) in &s.labels {
            edits.push(SpecEdit::ContainerLabel(k.clone(), v.clone()));
        }
        for (i, m) in s.volumes.iter().enumerate() {
            let path = at(&format!("volumes[{i}]"));
            let mut fields = vec![format!("target={}", m.target)];
            match m.kind {
                MountKind::Volume => {
                    match super::to_spec_volumes::volume_mount(self.volumes, self.stack, m) {
                        Ok(mount) => edits.push(SpecEdit::Mount(mount)),
                        Err(why) => self.refuse(&path, &why),
                    }
                    continue;
                }
                MountKind::Bind => {
                    fields.insert(0, "type=bind".into());
                    fields.push(format!("source={}", m.source.clone().unwrap_or_default()));
                }
                MountKind::Tmpfs => {
                    fields.insert(0, "type=tmpfs".into());
                    if let Some(size) = &m.tmpfs_size {
                        fields.push(format!("tmpfs-size={size}"));
                    }
                    if let Some(mode) = m.tmpfs_mode {
                        fields.push(format!("tmpfs-mode={mode:o}"));
                    }
                }
            }
            if m.read_only {
                fields.push("readonly=true".into());
            }
            if let Some(p) = &m.propagation {
                fields.push(format!("bind-propagation={p}"));
            }
            let text: Vec<String> = fields.into_iter().map(csv).collect();
            edits.extend(
                self.value(&path, &text.join(","), parse_mount)
                    .map(SpecEdit::Mount),
            );
        }
        if let Some(i) = s.init {
            edits.push(SpecEdit::Init(i));
        }
        edits.push(SpecEdit::ReadOnly(s.read_only));
        edits.push(SpecEdit::Tty(s.tty));
        edits.push(SpecEdit::OpenStdin(s.stdin_open));
        if let Some(h) = &s.healthcheck {
            match super::to_spec_health::health_config(h, &at("healthcheck")) {
                Ok(c) => edits.push(SpecEdit::Healthcheck(Some(c))),
                Err(errors) => errors.iter().for_each(|(p, why)| self.refuse(p, why)),
            }
        }
        if let Some(v) = &s.stop_grace_period {
            edits.extend(
                self.value(&at("stop_grace_period"), v, parse_duration_ns)
                    .map(SpecEdit::StopGracePeriodNs),
            );
        }
        if let Some(v) = &s.stop_signal {
            if self.value(&at("stop_signal"), v, check_signal).is_some() {
                edits.push(SpecEdit::StopSignal(v.clone()));
            }
        }
        for (k, v) in &s.sysctls {
            edits.push(SpecEdit::Sysctl(k.clone(), v.clone()));
        }
        for (k, u) in &s.ulimits {
            edits.push(SpecEdit::Ulimit(Ulimit {
                name: k.clone(),
                soft: u.soft,
                hard: u.hard,
            }));
        }
        let mut caps = |key: &str, list: &[String]| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    self.value(&at(&format!("{key}[{i}]")), c, normalize_capability)
                })
                .collect()
        };
        let add = caps("cap_add", &s.cap_add);
        let drop = caps("cap_drop", &s.cap_drop);
        edits.push(SpecEdit::Capabilities { add, drop });
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && parse_uint(len).is_ok_and(|l| l <= 32)
}

#[path = "to_spec_dns.rs"]
mod dns;

#[path = "to_spec_logging.rs"]
mod logging;

#[cfg(test)]
#[path = "to_spec_tests.rs"]
mod tests;
