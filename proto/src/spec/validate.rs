//! The rules every finished service spec must follow, whether it came from
//! `service create` flags, a Compose file or a raw API call: the bounds,
//! what swarmkit's control API refuses (in its words), and the checks rswarm
//! makes so that a spec the scheduler could never satisfy is refused up
//! front. [`validate`] reports every problem at once; the CLI calls it for
//! early errors and the control API as the final word. [`check_supported`]
//! is where what is valid but not run by the cluster yet is refused (the
//! control API's call; nothing is, today).

use std::collections::HashSet;
use std::fmt;

use crate::types::endpoint_spec::ResolutionMode;
use crate::types::port_config::PublishMode;
use crate::types::restart_policy::Condition;
use crate::types::service_spec::Mode;
use crate::types::update_config::FailureAction;
use crate::types::{ResourceLimits, ServiceSpec, UpdateConfig};

use super::constraints::{check_spread_descriptor, Constraint};
use super::mounts::check_mount;
use super::names::is_dns_component;
use super::reference::ImageRef;
use super::units::human_size;
use super::ValueError;

/// The shortest healthcheck interval, timeout or start period (Docker's).
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;
/// The least memory a limit may name (Docker's container minimum).
const MIN_MEMORY_LIMIT: i64 = 6 << 20;
/// The least memory a reservation may name (swarmkit's).
const MIN_MEMORY_RESERVATION: i64 = 4 << 20;
/// The least CPU a limit or reservation may name (swarmkit's).
const MIN_NANO_CPUS: i64 = 1_000_000;

/// Every problem of a spec, in the order found; each is a line a user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<String>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// Checks a whole spec and returns every problem found. An empty name is
/// allowed (the control API gives one).
pub fn validate(spec: &ServiceSpec) -> Result<(), Problems> {
    let mut out = super::bounds::problems(spec);
    check_annotations(spec, &mut out);
    if spec.mode.is_none() {
        out.push("service spec has no mode".into());
    }
    let is_job = matches!(
        spec.mode,
        Some(Mode::ReplicatedJob(_)) | Some(Mode::GlobalJob(_))
    );
    match &spec.task {
        None => out.push("TaskSpec: missing".into()),
        Some(task) => {
            match task.container.as_ref().filter(|c| !c.image.is_empty()) {
                None => out.push("ContainerSpec: image reference must be provided".into()),
                Some(c) => check_container(c, &mut out),
            }
            if let Some(r) = &task.resources {
                check_resources(r.limits.as_ref(), r.reservations.as_ref(), &mut out);
            }
            if let Some(r) = &task.restart {
                if is_job && r.condition() == Condition::Any {
                    out.push("restart condition \"any\" cannot be used with jobs (a completed job would run again): use on-failure or none".into());
                }
                if r.delay_ns < 0 || r.window_ns < 0 {
                    out.push("restart delay and window must not be negative".into());
                }
            }
            if let Some(p) = &task.placement {
                for c in &p.constraints {
                    if let Err(e) = Constraint::parse(c) {
                        out.push(format!("invalid constraint {c:?}: {e}"));
                    }
                }
                for pref in &p.preferences {
                    if let Err(e) = check_spread_descriptor(&pref.spread_descriptor) {
                        out.push(format!(
                            "invalid placement preference spread={}: {e}",
                            pref.spread_descriptor
                        ));
                    }
                }
            }
            out.extend(super::logging::problems(task.log_driver.as_ref()));
            let mut networks = HashSet::new();
            for n in &task.networks {
                if n.target.is_empty() {
                    out.push("network name/id is not specified".into());
                } else if !networks.insert(n.target.as_str()) {
                    out.push(format!("network {:?} is attached more than once", n.target));
                }
            }
        }
    }
    for (what, config) in [("update", &spec.update), ("rollback", &spec.rollback)] {
        if let Some(c) = config {
            check_update_config(what, c, &mut out);
        }
    }
    check_endpoint(spec, &mut out);
    check_dependencies(spec, &mut out);
    if out.is_empty() {
        Ok(())
    } else {
        Err(Problems(out))
    }
}

/// Refuses what is valid but that rswarm would store and ignore, so no
/// setting is silently dropped. Nothing today: secrets and configs are
/// mounted by the nodes since they are sent to them.
pub fn check_supported(_spec: &ServiceSpec) -> Result<(), ValueError> {
    Ok(())
}

/// `depends_on` names other services, each once.
fn check_dependencies(spec: &ServiceSpec, out: &mut Vec<String>) {
    let own = spec.annotations.as_ref().map(|a| a.name.as_str());
    let mut seen = HashSet::new();
    for d in &spec.depends_on {
        if !is_dns_component(&d.service) {
            out.push(format!(
                "depends_on: invalid service name {:?}: name must be valid as a DNS name component",
                d.service
            ));
        } else if own == Some(d.service.as_str()) {
            out.push(format!(
                "depends_on: service {} cannot depend on itself",
                d.service
            ));
        } else if !seen.insert(d.service.as_str()) {
            out.push(format!(
                "depends_on: service {} is named more than once",
                d.service
            ));
        }
    }
}

fn check_annotations(spec: &ServiceSpec, out: &mut Vec<String>) {
    if let Some(a) = &spec.annotations {
        if !a.name.is_empty() && !is_dns_component(&a.name) {
            out.push(format!(
                "invalid name {:?}: name must be valid as a DNS name component",
                a.name
            ));
        }
        if a.labels.keys().any(|k| k.trim().is_empty()) {
            out.push("invalid label: empty name".into());
        }
    }
}

fn check_container(container: &crate::types::ContainerSpec, out: &mut Vec<String>) {
    super::dns::check_dns(container, out);
    if let Err(e) = ImageRef::parse(&container.image) {
        out.push(format!(
            "ContainerSpec: \"{}\" is not a valid repository/tag: {e}",
            container.image
        ));
    }
    out.extend(super::secrets::reference_problems(container));
    let mut targets = HashSet::new();
    for m in &container.mounts {
        if let Err(e) = check_mount(m) {
            out.push(e.0);
        } else if !targets.insert(m.target.as_str()) {
            out.push(format!(
                "ContainerSpec: duplicate mount point: {}",
                m.target
            ));
        }
    }
    if let Some(h) = &container.healthcheck {
        for (what, ns) in [
            ("Interval", h.interval_ns),
            ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns),
            ("StartInterval", h.start_interval_ns),
        ] {
            if ns != 0 && ns < MIN_HEALTH_DURATION_NS {
                out.push(format!("{what} in Healthcheck cannot be less than 1ms"));
            }
        }
        if h.retries < 0 {
            out.push("Retries in Healthcheck cannot be negative".into());
        }
    }
    for u in &container.ulimits {
        if u.hard != -1 && u.soft > u.hard {
            out.push(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            ));
        }
    }
    if container.stop_grace_period_ns < 0 {
        out.push("ContainerSpec: stop grace period must not be negative".into());
    }
}

fn check_resources(
    limits: Option<&ResourceLimits>,
    reservations: Option<&ResourceLimits>,
    out: &mut Vec<String>,
) {
    for (r, min_memory) in [
        (limits, MIN_MEMORY_LIMIT),
        (reservations, MIN_MEMORY_RESERVATION),
    ] {
        let Some(r) = r else { continue };
        if r.nano_cpus != 0 && r.nano_cpus < MIN_NANO_CPUS {
            out.push(format!(
                "invalid cpu value {}: Must be at least 0.001",
                r.nano_cpus as f64 / 1e9
            ));
        }
        if r.memory_bytes != 0 && r.memory_bytes < min_memory {
            out.push(format!(
                "invalid memory value {}: Must be at least {}",
                r.memory_bytes,
                human_size(min_memory)
            ));
        }
        if r.pids < 0 {
            out.push(format!(
                "invalid pids limit {}: must not be negative",
                r.pids
            ));
        }
    }
    if let (Some(l), Some(res)) = (limits, reservations) {
        if l.memory_bytes > 0 && res.memory_bytes > l.memory_bytes {
            out.push(format!(
                "memory reservation ({}) must not exceed the memory limit ({})",
                human_size(res.memory_bytes),
                human_size(l.memory_bytes)
            ));
        }
        if l.nano_cpus > 0 && res.nano_cpus > l.nano_cpus {
            out.push(format!(
                "CPU reservation ({}) must not exceed the CPU limit ({})",
                res.nano_cpus as f64 / 1e9,
                l.nano_cpus as f64 / 1e9
            ));
        }
    }
}

fn check_update_config(what: &str, c: &UpdateConfig, out: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&c.max_failure_ratio) {
        out.push(format!(
            "{what} config: max failure ratio must be a fraction between 0 and 1"
        ));
    }
    if c.delay_ns < 0 || c.monitor_ns < 0 {
        out.push(format!(
            "{what} config: delay and monitor must not be negative"
        ));
    }
    if what == "rollback" && c.failure_action() == FailureAction::Rollback {
        out.push("rollback config: failure action must be pause or continue".into());
    }
}

fn check_endpoint(spec: &ServiceSpec, out: &mut Vec<String>) {
    let Some(e) = &spec.endpoint else { return };
    let mut published = HashSet::new();
    for p in &e.ports {
        if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
            out.push(format!(
                "EndpointSpec: invalid port {}->{}: ports are 1-65535",
                p.published_port, p.target_port
            ));
        }
        if p.publish_mode() == PublishMode::Ingress && e.mode() == ResolutionMode::Dnsrr {
            out.push(
                "EndpointSpec: port published with ingress mode can't be used with dnsrr mode"
                    .into(),
            );
        }
        if p.published_port != 0 && !published.insert((p.published_port, p.protocol)) {
            out.push(format!(
                "EndpointSpec: duplicate published ports provided ({})",
                p.published_port
            ));
        }
    }
}

#[cfg(test)]
mod tests;
