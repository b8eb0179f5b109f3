//! The rules every finished service spec must follow, whether it came from
//! `service create` flags or a Compose file: what swarmkit's control API
//! refuses (in its words), plus the checks rswarm makes so that a spec the
//! scheduler could never satisfy is refused up front.

use std::collections::HashSet;

use rswarm_proto::types::endpoint_spec::ResolutionMode;
use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::update_config::FailureAction;
use rswarm_proto::types::{ResourceLimits, ServiceSpec, UpdateConfig};

use super::mounts::check_mount;
use super::placement::{check_spread_descriptor, Constraint};
use super::policy::{check_failure_ratio, ModeKind};
use super::reference::ImageRef;
use super::SpecError;
use crate::format::humanize::bytes_size;

/// The shortest healthcheck interval, timeout or start period (Docker's).
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;
/// The least memory a limit may name (Docker's container minimum, and the
/// manager's).
const MIN_MEMORY_LIMIT: i64 = 6 << 20;
/// The least memory a reservation may name (swarmkit's).
const MIN_MEMORY_RESERVATION: i64 = 4 << 20;
/// The least CPU a limit or reservation may name (swarmkit's).
const MIN_NANO_CPUS: i64 = 1_000_000;

fn invalid(message: impl Into<String>) -> Result<(), SpecError> {
    Err(SpecError::invalid(message))
}

/// swarmkit's service name rule: a DNS name component of at most 63
/// characters, letters and digits joined by `-` or `_`.
pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.len() <= 63
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'_')
}

/// Checks a whole spec. The first problem found is the error.
pub fn validate(spec: &ServiceSpec) -> Result<(), SpecError> {
    if let Some(a) = &spec.annotations {
        if !a.name.is_empty() && !valid_service_name(&a.name) {
            return invalid(format!(
                "invalid name {:?}: name must be valid as a DNS name component",
                a.name
            ));
        }
        if a.labels.keys().any(|k| k.trim().is_empty()) {
            return invalid("invalid label: empty name");
        }
    }
    let kind = ModeKind::of(spec.mode.as_ref());
    let task = spec
        .task
        .as_ref()
        .ok_or_else(|| SpecError::invalid("TaskSpec: missing"))?;
    let container = task
        .container
        .as_ref()
        .filter(|c| !c.image.is_empty())
        .ok_or_else(|| SpecError::invalid("ContainerSpec: image reference must be provided"))?;
    if let Err(e) = ImageRef::parse(&container.image) {
        return invalid(format!(
            "ContainerSpec: \"{}\" is not a valid repository/tag: {e}",
            container.image
        ));
    }

    let mut targets = HashSet::new();
    for m in &container.mounts {
        check_mount(m).map_err(|e| SpecError::Invalid(e.0))?;
        if !targets.insert(m.target.as_str()) {
            return invalid(format!(
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
        ] {
            if ns != 0 && ns < MIN_HEALTH_DURATION_NS {
                return invalid(format!("{what} in Healthcheck cannot be less than 1ms"));
            }
        }
        if h.retries < 0 {
            return invalid("Retries in Healthcheck cannot be negative");
        }
    }
    for u in &container.ulimits {
        if u.hard != -1 && u.soft > u.hard {
            return invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            ));
        }
    }
    if container.stop_grace_period_ns < 0 {
        return invalid("ContainerSpec: stop grace period must not be negative");
    }

    if let Some(r) = &task.resources {
        if let Some(l) = &r.limits {
            check_resources(l, MIN_MEMORY_LIMIT)?;
        }
        if let Some(l) = &r.reservations {
            check_resources(l, MIN_MEMORY_RESERVATION)?;
        }
        if let (Some(l), Some(res)) = (&r.limits, &r.reservations) {
            if l.memory_bytes > 0 && res.memory_bytes > l.memory_bytes {
                return invalid(format!(
                    "memory reservation ({}) must not exceed the memory limit ({})",
                    bytes_size(res.memory_bytes as f64),
                    bytes_size(l.memory_bytes as f64)
                ));
            }
            if l.nano_cpus > 0 && res.nano_cpus > l.nano_cpus {
                return invalid(format!(
                    "CPU reservation ({}) must not exceed the CPU limit ({})",
                    res.nano_cpus as f64 / 1e9,
                    l.nano_cpus as f64 / 1e9
                ));
            }
        }
    }

    if let Some(r) = &task.restart {
        if kind.is_job() && r.condition() == Condition::Any {
            return invalid(
                "restart condition \"any\" cannot be used with jobs (a completed job would run again): use on-failure or none",
            );
        }
        if r.delay_ns < 0 || r.window_ns < 0 {
            return invalid("restart delay and window must not be negative");
        }
    }

    if let Some(p) = &task.placement {
        for c in &p.constraints {
            Constraint::parse(c)
                .map_err(|e| SpecError::Invalid(format!("invalid constraint {c:?}: {e}")))?;
        }
        for pref in &p.preferences {
            check_spread_descriptor(&pref.spread_descriptor).map_err(|e| {
                SpecError::Invalid(format!(
                    "invalid placement preference spread={}: {e}",
                    pref.spread_descriptor
                ))
            })?;
        }
    }

    let mut networks = HashSet::new();
    for n in &task.networks {
        if n.target.is_empty() {
            return invalid("network name/id is not specified");
        }
        if !networks.insert(n.target.as_str()) {
            return invalid(format!("network {:?} is attached more than once", n.target));
        }
    }

    for (what, config) in [("update", &spec.update), ("rollback", &spec.rollback)] {
        if let Some(c) = config {
            check_update_config(what, c)?;
        }
    }

    if let Some(e) = &spec.endpoint {
        let mut published = HashSet::new();
        for p in &e.ports {
            if p.target_port == 0 || p.target_port > 65535 || p.published_port > 65535 {
                return invalid(format!(
                    "EndpointSpec: invalid port {}->{}: ports are 1-65535",
                    p.published_port, p.target_port
                ));
            }
            if p.publish_mode() == PublishMode::Ingress && e.mode() == ResolutionMode::Dnsrr {
                return invalid(
                    "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
                );
            }
            if p.published_port != 0 && !published.insert((p.published_port, p.protocol)) {
                return invalid(format!(
                    "EndpointSpec: duplicate published ports provided ({})",
                    p.published_port
                ));
            }
        }
    }
    Ok(())
}

fn check_resources(r: &ResourceLimits, min_memory: i64) -> Result<(), SpecError> {
    if r.nano_cpus != 0 && r.nano_cpus < MIN_NANO_CPUS {
        return invalid(format!(
            "invalid cpu value {}: Must be at least 0.001",
            r.nano_cpus as f64 / 1e9
        ));
    }
    if r.memory_bytes != 0 && r.memory_bytes < min_memory {
        return invalid(format!(
            "invalid memory value {}: Must be at least {}",
            r.memory_bytes,
            bytes_size(min_memory as f64)
        ));
    }
    if r.pids < 0 {
        return invalid(format!(
            "invalid pids limit {}: must not be negative",
            r.pids
        ));
    }
    Ok(())
}

fn check_update_config(what: &str, c: &UpdateConfig) -> Result<(), SpecError> {
    check_failure_ratio(c.max_failure_ratio)
        .map_err(|e| SpecError::Invalid(format!("{what} config: max failure ratio {e}")))?;
    if c.delay_ns < 0 || c.monitor_ns < 0 {
        return invalid(format!(
            "{what} config: delay and monitor must not be negative"
        ));
    }
    if what == "rollback" && c.failure_action() == FailureAction::Rollback {
        return invalid("rollback config: failure action must be pause or continue");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_components() {
        for ok in ["web", "web-1", "a_b", "W3b", "x"] {
            assert!(valid_service_name(ok), "{ok}");
        }
        for bad in ["", "-web", "web-", "we.b", "web 1", &"a".repeat(64)] {
            assert!(!valid_service_name(bad), "{bad}");
        }
    }
}
