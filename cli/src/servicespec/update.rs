//! The `service update` flags, named and spelled as Docker's: the flags
//! `service create` also takes (`shared`), the `*-add`/`*-rm` pairs that
//! change a list or map of the current spec, `--image`, `--args`,
//! `--force` and `--rollback`. [`UpdateFlags::to_spec`] turns them into
//! `edits::SpecEdit`s over the spec the service has now (only what was given
//! changes) and checks the result with the spec library's one `validate`,
//! so a bad flag changes nothing: the spec is refused before it is sent.
//!
//! An `*-add` replaces the entry with the same key (an env variable's name,
//! a label's key, a mount's target, a secret's or config's name, an
//! identical published port, ...); an `*-rm` takes entries out by that key
//! (`removals`). Adds apply before removes, as Docker's do, except for
//! secrets and configs (removed, then added).

use clap::Args;
use rswarm_proto::spec::constraints::{parse_preference, Constraint};
use rswarm_proto::spec::dns::{
    parse_dns_option, parse_dns_search, parse_dns_server, parse_extra_host,
};
use rswarm_proto::spec::mounts::{parse_mount, resolve_bind_source};
use rswarm_proto::spec::ports::parse_publish;
use rswarm_proto::spec::secrets::{parse_reference, Kind};
use rswarm_proto::spec::units::parse_uint;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{ConfigReference, PortConfig, SecretReference, ServiceSpec};

use super::container::{parse_env, parse_label, parse_sysctl, parse_ulimit, split_words};
use super::edits::{apply, SpecEdit};
use super::flags::{each, opt, parse_network, LocalInputs};
use super::policy::parse_endpoint_mode;
use super::removals::{env_key, Removal};
use super::shared::SharedFlags;
use super::SpecError;

/// Everything `service update` takes besides SERVICE, `--detach`,
/// `--quiet` and `--with-registry-auth`.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct UpdateFlags {
    /// Service image tag
    #[arg(long, value_name = "string")]
    pub image: Option<String>,
    /// Service command args
    #[arg(long, value_name = "command", allow_hyphen_values = true)]
    pub args: Option<String>,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Endpoint mode (vip or dnsrr)
    #[arg(long = "endpoint-mode", value_name = "string")]
    pub endpoint_mode: Option<String>,
    /// Add or update an environment variable
    #[arg(long = "env-add", value_name = "list")]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long = "env-rm", value_name = "list")]
    pub env_rm: Vec<String>,
    /// Add or update a service label
    #[arg(long = "label-add", value_name = "list")]
    pub label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long = "label-rm", value_name = "list")]
    pub label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long = "container-label-add", value_name = "list")]
    pub container_label_add: Vec<String>,
    /// Remove a container label by its key
    #[arg(long = "container-label-rm", value_name = "list")]
    pub container_label_rm: Vec<String>,
    /// Add or update a mount on a service
    #[arg(long = "mount-add", value_name = "mount")]
    pub mount_add: Vec<String>,
    /// Remove a mount by its target path
    #[arg(long = "mount-rm", value_name = "list")]
    pub mount_rm: Vec<String>,
    /// Add or update a secret on a service
    #[arg(long = "secret-add", value_name = "secret")]
    pub secret_add: Vec<String>,
    /// Remove a secret
    #[arg(long = "secret-rm", value_name = "list")]
    pub secret_rm: Vec<String>,
    /// Add or update a config file on a service
    #[arg(long = "config-add", value_name = "config")]
    pub config_add: Vec<String>,
    /// Remove a configuration file
    #[arg(long = "config-rm", value_name = "list")]
    pub config_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long = "publish-add", value_name = "port")]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port
    #[arg(long = "publish-rm", value_name = "port")]
    pub publish_rm: Vec<String>,
    /// Add or update a placement constraint
    #[arg(long = "constraint-add", value_name = "list")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long = "constraint-rm", value_name = "list")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long = "placement-pref-add", value_name = "pref")]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference
    #[arg(long = "placement-pref-rm", value_name = "pref")]
    pub placement_pref_rm: Vec<String>,
    /// Add a network
    #[arg(long = "network-add", value_name = "network")]
    pub network_add: Vec<String>,
    /// Remove a network
    #[arg(long = "network-rm", value_name = "list")]
    pub network_rm: Vec<String>,
    /// Add an additional supplementary user group to the container
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Remove a previously added supplementary user group from the container
    #[arg(long = "group-rm", value_name = "list")]
    pub group_rm: Vec<String>,
    /// Add or update a custom DNS server
    #[arg(long = "dns-add", value_name = "list")]
    pub dns_add: Vec<String>,
    /// Remove a custom DNS server
    #[arg(long = "dns-rm", value_name = "list")]
    pub dns_rm: Vec<String>,
    /// Add or update a DNS option
    #[arg(long = "dns-option-add", value_name = "list")]
    pub dns_option_add: Vec<String>,
    /// Remove a DNS option
    #[arg(long = "dns-option-rm", value_name = "list")]
    pub dns_option_rm: Vec<String>,
    /// Add or update a custom DNS search domain
    #[arg(long = "dns-search-add", value_name = "list")]
    pub dns_search_add: Vec<String>,
    /// Remove a DNS search domain
    #[arg(long = "dns-search-rm", value_name = "list")]
    pub dns_search_rm: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "host-add", value_name = "list")]
    pub host_add: Vec<String>,
    /// Remove a custom host-to-IP mapping (host:ip)
    #[arg(long = "host-rm", value_name = "list")]
    pub host_rm: Vec<String>,
    /// Add or update a ulimit option
    #[arg(long = "ulimit-add", value_name = "ulimit")]
    pub ulimit_add: Vec<String>,
    /// Remove a ulimit option
    #[arg(long = "ulimit-rm", value_name = "list")]
    pub ulimit_rm: Vec<String>,
    /// Add or update a Sysctl option
    #[arg(long = "sysctl-add", value_name = "list")]
    pub sysctl_add: Vec<String>,
    /// Remove a Sysctl option
    #[arg(long = "sysctl-rm", value_name = "list")]
    pub sysctl_rm: Vec<String>,
    /// Use an init inside each service container to forward signals and reap processes
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub init: Option<bool>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub read_only: Option<bool>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub tty: Option<bool>,
    #[command(flatten)]
    pub shared: SharedFlags,
}

impl UpdateFlags {
    /// `--rollback` with any other spec flag: Docker refuses the mix.
    pub fn check_rollback_alone(&self) -> Result<(), SpecError> {
        let others = UpdateFlags {
            rollback: false,
            ..self.clone()
        };
        if self.rollback && others != UpdateFlags::default() {
            return Err(SpecError::invalid(
                "other flags may not be combined with --rollback",
            ));
        }
        Ok(())
    }

    /// The spec `current` becomes with these flags, validated.
    pub fn to_spec(
        &self,
        current: &ServiceSpec,
        local: &LocalInputs<'_>,
    ) -> Result<ServiceSpec, SpecError> {
        let edits = self.edits(current, local)?;
        let mut spec = current.clone();
        apply(&mut spec, edits);
        rswarm_proto::spec::validate(&spec).map_err(|p| SpecError::Invalid(p.to_string()))?;
        Ok(spec)
    }

    /// What the flags mean for `current`, as edits: every value parsed, the
    /// first that does not parse (or does not apply to the service's mode)
    /// refused naming its flag.
    pub fn edits(
        &self,
        current: &ServiceSpec,
        local: &LocalInputs<'_>,
    ) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = self.mode_edits(current.mode.as_ref())?;
        if let Some(image) = &self.image {
            edits.push(SpecEdit::Image(image.clone()));
        }
        if let Some(args) = opt("--args", &self.args, split_words)? {
            edits.push(SpecEdit::Args(args));
        }
        if let Some(mode) = opt("--endpoint-mode", &self.endpoint_mode, parse_endpoint_mode)? {
            edits.push(SpecEdit::EndpointMode(mode));
        }
        edits.extend(self.shared.resource_edits()?);
        edits.extend(self.shared.restart_edits()?);
        edits.extend(self.shared.process_edits()?);
        edits.extend(self.env_and_label_edits(local)?);
        edits.extend(self.file_edits()?);
        let ports = current
            .endpoint
            .as_ref()
            .map_or(&[][..], |e| e.ports.as_slice());
        edits.extend(self.placement_edits(ports)?);
        let groups = current
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .map_or(&[][..], |c| c.groups.as_slice());
        edits.extend(self.container_edits(groups)?);
        let current_health = current
            .task
            .as_ref()
            .and_then(|t| t.container.as_ref())
            .and_then(|c| c.healthcheck.as_ref());
        if let Some(h) = self.shared.health()?.for_update(current_health)? {
            edits.push(SpecEdit::Healthcheck(h));
        }
        if !self.shared.cap_add.is_empty() || !self.shared.cap_drop.is_empty() {
            edits.push(self.shared.capability_edit()?);
        }
        edits.extend(self.shared.update_edits(false)?);
        edits.extend(self.shared.update_edits(true)?);
        edits.extend(self.shared.log_edits()?);
        if self.force {
            edits.push(SpecEdit::ForceUpdate);
        }
        Ok(edits)
    }

    /// `--replicas`, `--max-concurrent` and `--replicas-max-per-node`,
    /// refused (in Docker's words) for a mode they do not apply to.
    fn mode_edits(&self, mode: Option<&Mode>) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        let replicas = opt("--replicas", &self.shared.replicas, parse_uint)?;
        let max_concurrent = opt("--max-concurrent", &self.shared.max_concurrent, parse_uint)?;
        let per_node = opt(
            "--replicas-max-per-node",
            &self.shared.replicas_max_per_node,
            parse_uint,
        )?;
        let mut new_mode = mode.cloned();
        if let Some(n) = replicas {
            match new_mode.as_mut() {
                Some(Mode::Replicated(r)) => r.replicas = n,
                Some(Mode::ReplicatedJob(j)) => j.total_completions = n,
                _ => {
                    return Err(SpecError::invalid(
                        "replicas can only be used with replicated or replicated-job mode",
                    ))
                }
            }
        }
        if let Some(n) = max_concurrent {
            match new_mode.as_mut() {
                Some(Mode::ReplicatedJob(j)) => j.max_concurrent = n,
                _ => {
                    return Err(SpecError::invalid(
                        "max-concurrent can only be used with replicated-job mode",
                    ))
                }
            }
        }
        if let Some(n) = per_node {
            if !matches!(mode, Some(Mode::Replicated(_) | Mode::ReplicatedJob(_))) {
                return Err(SpecError::invalid(
                    "replicas-max-per-node can only be used with replicated or replicated-job mode",
                ));
            }
            edits.push(SpecEdit::MaxReplicasPerNode(n));
        }
        if new_mode.as_ref() != mode {
            if let Some(m) = new_mode {
                edits.push(SpecEdit::Mode(m));
            }
        }
        Ok(edits)
    }

    /// `--env-add/-rm`, `--label-add/-rm`, `--container-label-add/-rm`,
    /// `--mount-add/-rm`.
    fn env_and_label_edits(&self, local: &LocalInputs<'_>) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        for entry in each("--env-add", &self.env_add, |v| parse_env(v, local.env))? {
            edits.push(SpecEdit::Remove(Removal::Env(env_key(&entry).to_string())));
            edits.push(SpecEdit::Env(vec![entry]));
        }
        removals(&mut edits, &self.env_rm, Removal::Env);
        for (k, v) in each("--label-add", &self.label_add, parse_label)? {
            edits.push(SpecEdit::Label(k, v));
        }
        removals(&mut edits, &self.label_rm, Removal::Label);
        for (k, v) in each(
            "--container-label-add",
            &self.container_label_add,
            parse_label,
        )? {
            edits.push(SpecEdit::ContainerLabel(k, v));
        }
        removals(
            &mut edits,
            &self.container_label_rm,
            Removal::ContainerLabel,
        );
        for mut m in each("--mount-add", &self.mount_add, parse_mount)? {
            resolve_bind_source(&mut m, &local.cwd);
            edits.push(SpecEdit::Remove(Removal::Mount(m.target.clone())));
            edits.push(SpecEdit::Mount(m));
        }
        removals(&mut edits, &self.mount_rm, Removal::Mount);
        Ok(edits)
    }

    /// `--secret-add/-rm` and `--config-add/-rm`, by name (the control API
    /// resolves new ones to their IDs).
    fn file_edits(&self) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        removals(&mut edits, &self.secret_rm, Removal::Secret);
        for (name, file) in each("--secret-add", &self.secret_add, |v| {
            parse_reference(Kind::Secret, v)
        })? {
            edits.push(SpecEdit::Remove(Removal::Secret(name.clone())));
            edits.push(SpecEdit::Secret(SecretReference {
                secret_id: String::new(),
                secret_name: name,
                file: Some(file),
            }));
        }
        removals(&mut edits, &self.config_rm, Removal::Config);
        for (name, file) in each("--config-add", &self.config_add, |v| {
            parse_reference(Kind::Config, v)
        })? {
            edits.push(SpecEdit::Remove(Removal::Config(name.clone())));
            edits.push(SpecEdit::Config(ConfigReference {
                config_id: String::new(),
                config_name: name,
                file: Some(file),
            }));
        }
        Ok(edits)
    }

    /// `--publish-add/-rm`, `--constraint-add/-rm`,
    /// `--placement-pref-add/-rm`, `--network-add/-rm`.
    fn placement_edits(&self, current_ports: &[PortConfig]) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        for ports in each("--publish-add", &self.publish_add, parse_publish)? {
            // The same port again is no change (Docker keeps one).
            edits.extend(
                ports
                    .into_iter()
                    .filter(|p| !current_ports.contains(p))
                    .map(SpecEdit::Publish),
            );
        }
        for ports in each("--publish-rm", &self.publish_rm, parse_publish)? {
            edits.extend(
                ports
                    .into_iter()
                    .map(|p| SpecEdit::Remove(Removal::Publish(p))),
            );
        }
        for c in each("--constraint-add", &self.constraint_add, |c| {
            Constraint::parse(c).map(|_| c.trim().to_string())
        })? {
            edits.push(SpecEdit::Remove(Removal::Constraint(c.clone())));
            edits.push(SpecEdit::Constraint(c));
        }
        removals(&mut edits, &self.constraint_rm, Removal::Constraint);
        for p in each(
            "--placement-pref-add",
            &self.placement_pref_add,
            parse_preference,
        )? {
            edits.push(SpecEdit::Preference(p));
        }
        for p in each(
            "--placement-pref-rm",
            &self.placement_pref_rm,
            parse_preference,
        )? {
            edits.push(SpecEdit::Remove(Removal::Preference(p.spread_descriptor)));
        }
        for n in each("--network-add", &self.network_add, parse_network)? {
            edits.push(SpecEdit::Remove(Removal::Network(n.target.clone())));
            edits.push(SpecEdit::Network(n));
        }
        removals(&mut edits, &self.network_rm, Removal::Network);
        Ok(edits)
    }

    /// Groups, DNS, hosts, ulimits, sysctls, `--init`, `--read-only`, `--tty`.
    fn container_edits(&self, current_groups: &[String]) -> Result<Vec<SpecEdit>, SpecError> {
        let mut edits = Vec::new();
        if !self.group_add.is_empty() {
            let mut groups = current_groups.to_vec();
            groups.extend(
                self.group_add
                    .iter()
                    .filter(|g| !current_groups.contains(g))
                    .cloned(),
            );
            edits.push(SpecEdit::Groups(groups));
        }
        removals(&mut edits, &self.group_rm, Removal::Group);
        for v in each("--dns-add", &self.dns_add, parse_dns_server)? {
            edits.push(SpecEdit::Remove(Removal::DnsServer(v.clone())));
            edits.push(SpecEdit::DnsServer(v));
        }
        for v in each("--dns-search-add", &self.dns_search_add, parse_dns_search)? {
            edits.push(SpecEdit::Remove(Removal::DnsSearch(v.clone())));
            edits.push(SpecEdit::DnsSearch(v));
        }
        for v in each("--dns-option-add", &self.dns_option_add, parse_dns_option)? {
            edits.push(SpecEdit::Remove(Removal::DnsOption(v.clone())));
            edits.push(SpecEdit::DnsOption(v));
        }
        removals(&mut edits, &self.dns_rm, Removal::DnsServer);
        removals(&mut edits, &self.dns_search_rm, Removal::DnsSearch);
        removals(&mut edits, &self.dns_option_rm, Removal::DnsOption);
        for line in each("--host-add", &self.host_add, parse_extra_host)? {
            // The same line again is no change (Docker drops duplicates).
            edits.push(SpecEdit::Remove(Removal::HostLine(line.clone())));
            edits.push(SpecEdit::Host(line));
        }
        for h in &self.host_rm {
            let name = h.split([':', '=']).next().unwrap_or_default().trim();
            edits.push(SpecEdit::Remove(Removal::Host(name.to_string())));
        }
        for u in each("--ulimit-add", &self.ulimit_add, parse_ulimit)? {
            edits.push(SpecEdit::Remove(Removal::Ulimit(u.name.clone())));
            edits.push(SpecEdit::Ulimit(u));
        }
        removals(&mut edits, &self.ulimit_rm, Removal::Ulimit);
        for (k, v) in each("--sysctl-add", &self.sysctl_add, parse_sysctl)? {
            edits.push(SpecEdit::Sysctl(k, v));
        }
        removals(&mut edits, &self.sysctl_rm, Removal::Sysctl);
        let bools = [
            (self.init, SpecEdit::Init as fn(bool) -> SpecEdit),
            (self.read_only, SpecEdit::ReadOnly),
            (self.tty, SpecEdit::Tty),
        ];
        edits.extend(bools.into_iter().filter_map(|(v, edit)| v.map(edit)));
        Ok(edits)
    }
}

/// One `Remove` edit per value of an `*-rm` flag.
fn removals(edits: &mut Vec<SpecEdit>, values: &[String], key: fn(String) -> Removal) {
    edits.extend(
        values
            .iter()
            .map(|v| SpecEdit::Remove(key(v.trim().to_string()))),
    );
}

#[cfg(test)]
mod tests;
