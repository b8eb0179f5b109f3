//! What `service update`'s `*-rm` flags take out of a spec, by the key each
//! entry is known by (Docker's): an env variable or label by its key, a
//! mount by its target, a secret or config by its name, a published port by
//! its target port, protocol and mode, a DNS entry or group by its value, a
//! `--host` line by its hostname, a ulimit by its name, a sysctl by its key.
//! An `*-add` flag that replaces an entry removes the old one first.

use rswarm_proto::types::{ContainerSpec, PortConfig, ServiceSpec, TaskSpec};

/// One entry to take out, by its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    Env(String),
    Label(String),
    ContainerLabel(String),
    /// By target path.
    Mount(String),
    /// By secret name.
    Secret(String),
    /// By config name.
    Config(String),
    /// By target port, protocol and publish mode.
    Publish(PortConfig),
    Constraint(String),
    /// By spread descriptor.
    Preference(String),
    /// By target (name or ID as stored).
    Network(String),
    Group(String),
    DnsServer(String),
    DnsSearch(String),
    DnsOption(String),
    /// By hostname.
    Host(String),
    /// One whole `"IP HOSTNAME"` line.
    HostLine(String),
    Ulimit(String),
    Sysctl(String),
}

/// The key of an environment entry (`KEY=VALUE` or `KEY`).
pub fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

/// Takes `removal` out of `spec` (nothing when it is not there).
pub fn remove(spec: &mut ServiceSpec, removal: Removal) {
    match removal {
        Removal::Label(k) => {
            if let Some(a) = spec.annotations.as_mut() {
                a.labels.remove(&k);
            }
        }
        Removal::Publish(p) => {
            if let Some(e) = spec.endpoint.as_mut() {
                e.ports.retain(|q| {
                    !(q.target_port == p.target_port
                        && q.protocol == p.protocol
                        && q.publish_mode == p.publish_mode)
                });
            }
        }
        other => {
            if let Some(t) = spec.task.as_mut() {
                remove_task(t, other);
            }
        }
    }
}

fn remove_task(t: &mut TaskSpec, removal: Removal) {
    match removal {
        Removal::Constraint(c) => {
            if let Some(p) = t.placement.as_mut() {
                p.constraints.retain(|x| x.trim() != c.trim());
            }
        }
        Removal::Preference(d) => {
            if let Some(p) = t.placement.as_mut() {
                p.preferences.retain(|x| x.spread_descriptor != d);
            }
        }
        Removal::Network(n) => t.networks.retain(|x| x.target != n),
        other => {
            if let Some(c) = t.container.as_mut() {
                remove_container(c, other);
            }
        }
    }
}

fn remove_container(c: &mut ContainerSpec, removal: Removal) {
    match removal {
        Removal::Env(k) => c.env.retain(|e| env_key(e) != k),
        Removal::ContainerLabel(k) => {
            c.labels.remove(&k);
        }
        Removal::Mount(target) => c.mounts.retain(|m| m.target != target),
        Removal::Secret(name) => c.secrets.retain(|s| s.secret_name != name),
        Removal::Config(name) => c.configs.retain(|s| s.config_name != name),
        Removal::Group(g) => c.groups.retain(|x| *x != g),
        Removal::DnsServer(v) => {
            if let Some(d) = c.dns_config.as_mut() {
                d.nameservers.retain(|x| *x != v);
            }
        }
        Removal::DnsSearch(v) => {
            if let Some(d) = c.dns_config.as_mut() {
                d.search.retain(|x| *x != v);
            }
        }
        Removal::DnsOption(v) => {
            if let Some(d) = c.dns_config.as_mut() {
                d.options.retain(|x| *x != v);
            }
        }
        Removal::Host(name) => c
            .hosts
            .retain(|line| line.split_whitespace().nth(1) != Some(name.as_str())),
        Removal::HostLine(line) => c.hosts.retain(|l| *l != line),
        Removal::Ulimit(name) => c.ulimits.retain(|u| u.name != name),
        Removal::Sysctl(k) => {
            c.sysctls.remove(&k);
        }
        // Service- and task-level removals were done by the callers.
        _ => {}
    }
}
