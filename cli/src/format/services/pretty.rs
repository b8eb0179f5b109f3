//! `service inspect --pretty`: Docker's human-readable template rendered for
//! one service (tab-aligned sections for mode, update/rollback config,
//! container, mounts, resources, endpoint), with Go's duration wording.

use std::collections::BTreeMap;

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{Service, ServiceSpec, UpdateConfig};

use super::inspect::update_state_word;
use crate::format::humanize::bytes_size;
use crate::format::tasks::{human_duration, protocol_word};
use crate::servicespec::mounts::mount_type_word;
use crate::servicespec::policy::{endpoint_mode_word, failure_action_word, update_order_word};

/// Go's `time.Duration.String()`: `0s`, `1.5ms`, `5s`, `1m30s`, `1h0m0s`.
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let fraction = |value: u64, digits: u32| -> String {
        let scale = 10u64.pow(digits);
        let (int, frac) = (value / scale, value % scale);
        if frac == 0 {
            return int.to_string();
        }
        let frac = format!("{frac:0width$}", width = digits as usize);
        format!("{int}.{}", frac.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", fraction(u, 3));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(u, 6));
    }
    let hours = u / 3_600_000_000_000;
    let minutes = (u / 60_000_000_000) % 60;
    let seconds = fraction(u % 60_000_000_000, 9);
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// Go's `%v` of a float64 for the values shown here (`0.5`, `2`).
fn go_float(value: f64) -> String {
    value.to_string()
}

fn pretty_update_config(out: &mut String, title: &str, order_label: &str, u: &UpdateConfig) {
    out.push_str(&format!("\n{title}:\n Parallelism:\t{}", u.parallelism));
    if u.delay_ns > 0 {
        out.push_str(&format!("\n Delay:\t\t{}", go_duration(u.delay_ns)));
    }
    out.push_str(&format!(
        "\n On failure:\t{}",
        failure_action_word(u.failure_action())
    ));
    if u.monitor_ns > 0 {
        out.push_str(&format!(
            "\n Monitoring Period: {}",
            go_duration(u.monitor_ns)
        ));
    }
    out.push_str(&format!("\n Max failure ratio: {}", u.max_failure_ratio));
    out.push_str(&format!("\n {order_label}{}", update_order_word(u.order())));
}

/// `docker service inspect --pretty`: Docker's template rendered for one
/// service, including its leading blank line and tab alignment. `now`
/// (unix nanoseconds) is what "Started: 3 minutes ago" counts from.
pub(super) fn service_pretty(service: &Service, now: i64) -> String {
    let default_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&default_spec);
    let annotations = spec.annotations.clone().unwrap_or_default();
    let task = spec.task.clone().unwrap_or_default();
    let c = task.container.clone().unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "\nID:\t\t{}\nName:\t\t{}",
        service.id, annotations.name
    ));
    if !annotations.labels.is_empty() {
        out.push_str("\nLabels:");
        let sorted: BTreeMap<_, _> = annotations.labels.iter().collect();
        for (k, v) in sorted {
            if v.is_empty() {
                out.push_str(&format!("\n {k}"));
            } else {
                out.push_str(&format!("\n {k}={v}"));
            }
        }
    }
    out.push_str("\nService Mode:");
    match &spec.mode {
        Some(Mode::Global(_)) => out.push_str("\tGlobal"),
        Some(Mode::Replicated(r)) => {
            out.push_str(&format!("\tReplicated\n Replicas:\t{}", r.replicas));
        }
        Some(Mode::ReplicatedJob(j)) => out.push_str(&format!(
            "\tReplicated job\n Max concurrent:\t{}\n Total completions:\t{}",
            j.max_concurrent, j.total_completions
        )),
        Some(Mode::GlobalJob(_)) => out.push_str("\tGlobal job"),
        None => {}
    }
    if let Some(u) = service
        .update_status
        .as_ref()
        .filter(|u| u.state() != UpdateState::Unknown)
    {
        out.push_str(&format!(
            "\nUpdateStatus:\n State:\t\t{}",
            update_state_word(u.state())
        ));
        if u.started_at != 0 {
            out.push_str(&format!(
                "\n Started:\t{} ago",
                human_duration(now - u.started_at)
            ));
        }
        if u.state() == UpdateState::Completed && u.completed_at != 0 {
            out.push_str(&format!(
                "\n Completed:\t{} ago",
                human_duration(now - u.completed_at)
            ));
        }
        out.push_str(&format!("\n Message:\t{}", u.message));
    }
    out.push_str("\nPlacement:");
    if let Some(p) = &task.placement {
        if !p.constraints.is_empty() {
            out.push_str(&format!("\n Constraints:\t[{}]", p.constraints.join(" ")));
        }
        if !p.preferences.is_empty() {
            let prefs: Vec<String> = p
                .preferences
                .iter()
                .map(|x| format!("spread={}", x.spread_descriptor))
                .collect();
            out.push_str(&format!("\n Preferences:   [{}]", prefs.join(" ")));
        }
        if p.max_replicas > 0 {
            out.push_str(&format!("\n Max Replicas Per Node:   {}", p.max_replicas));
        }
    }
    if let Some(u) = &spec.update {
        pretty_update_config(&mut out, "UpdateConfig", "Update order:      ", u);
    }
    if let Some(u) = &spec.rollback {
        pretty_update_config(&mut out, "RollbackConfig", "Rollback order:    ", u);
    }
    out.push_str(&format!("\nContainerSpec:\n Image:\t\t{}", c.image));
    if !c.args.is_empty() {
        out.push_str("\n Args:\t\t");
        for a in &c.args {
            out.push_str(&format!("{a} "));
        }
    }
    if !c.env.is_empty() {
        out.push_str("\n Env:\t\t");
        for e in &c.env {
            out.push_str(&format!("{e} "));
        }
    }
    if !c.dir.is_empty() {
        out.push_str(&format!("\n Dir:\t\t{}", c.dir));
    }
    if c.init {
        out.push_str("\n Init:\t\ttrue");
    }
    if !c.user.is_empty() {
        out.push_str(&format!("\n User: {}", c.user));
    }
    if !c.cap_add.is_empty() || !c.cap_drop.is_empty() {
        out.push_str("\nCapabilities:");
        if !c.cap_add.is_empty() {
            out.push_str(&format!("\n Add: {}", c.cap_add.join(", ")));
        }
        if !c.cap_drop.is_empty() {
            out.push_str(&format!("\n Drop: {}", c.cap_drop.join(", ")));
        }
    }
    if !c.sysctls.is_empty() {
        out.push_str("\nSysCtls:");
        let sorted: BTreeMap<_, _> = c.sysctls.iter().collect();
        for (k, v) in sorted {
            if v.is_empty() {
                out.push_str(&format!("\n {k}"));
            } else {
                out.push_str(&format!("\n {k}: {v}"));
            }
        }
    }
    if !c.ulimits.is_empty() {
        out.push_str("\nUlimits:");
        let sorted: BTreeMap<_, _> = c
            .ulimits
            .iter()
            .map(|u| (u.name.clone(), format!("{}:{}", u.soft, u.hard)))
            .collect();
        for (k, v) in sorted {
            out.push_str(&format!("\n {k}: {v}"));
        }
    }
    if !c.mounts.is_empty() {
        out.push_str("\nMounts:");
    }
    for m in &c.mounts {
        out.push_str(&format!(
            "\n Target:\t{}\n  Source:\t{}\n  ReadOnly:\t{}\n  Type:\t\t{}",
            m.target,
            m.source,
            m.read_only,
            mount_type_word(m.r#type())
        ));
    }
    if !c.secrets.is_empty() {
        out.push_str("\nSecrets:");
    }
    for r in &c.secrets {
        let target = r.file.as_ref().map(|f| f.name.as_str()).unwrap_or("");
        out.push_str(&format!(
            "\n Target:\t{target}\n  Source:\t{}",
            r.secret_name
        ));
    }
    if !c.configs.is_empty() {
        out.push_str("\nConfigs:");
    }
    for r in &c.configs {
        let target = r.file.as_ref().map(|f| f.name.as_str()).unwrap_or("");
        out.push_str(&format!(
            "\n Target:\t{target}\n  Source:\t{}",
            r.config_name
        ));
    }
    if let Some(r) = &task.resources {
        out.push_str("\nResources:");
        if let Some(res) = r
            .reservations
            .as_ref()
            .filter(|l| l.nano_cpus > 0 || l.memory_bytes > 0)
        {
            out.push_str("\n Reservations:");
            if res.nano_cpus > 0 {
                out.push_str(&format!(
                    "\n  CPU:\t\t{}",
                    go_float(res.nano_cpus as f64 / 1e9)
                ));
            }
            if res.memory_bytes > 0 {
                out.push_str(&format!(
                    "\n  Memory:\t{}",
                    bytes_size(res.memory_bytes as f64)
                ));
            }
        }
        if let Some(l) = r
            .limits
            .as_ref()
            .filter(|l| l.nano_cpus > 0 || l.memory_bytes > 0 || l.pids > 0)
        {
            out.push_str("\n Limits:");
            if l.nano_cpus > 0 {
                out.push_str(&format!(
                    "\n  CPU:\t\t{}",
                    go_float(l.nano_cpus as f64 / 1e9)
                ));
            }
            if l.memory_bytes > 0 {
                out.push_str(&format!(
                    "\n  Memory:\t{}",
                    bytes_size(l.memory_bytes as f64)
                ));
            }
        }
    }
    let pids = task
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map_or(0, |l| l.pids);
    if pids > 0 {
        out.push_str(&format!("\n  PIDs:\t\t{pids}"));
    }
    if !task.networks.is_empty() {
        out.push_str("\nNetworks:");
        for n in &task.networks {
            out.push_str(&format!(" {}", n.target));
        }
        out.push(' ');
    }
    if let Some(d) = &task.log_driver {
        // Docker's template: "Log Driver:", its name, then "LogOpts:".
        out.push_str("\nLog Driver:");
        if !d.name.is_empty() {
            out.push_str(&format!("\n Name:\t\t{}", d.name));
        }
        if !d.options.is_empty() {
            out.push_str("\n LogOpts:");
            let sorted: BTreeMap<_, _> = d.options.iter().collect();
            for (k, v) in sorted {
                out.push_str(&format!("\n  {k}:\t\t{v}"));
            }
        }
    }
    let mode = spec
        .endpoint
        .as_ref()
        .map_or("", |e| endpoint_mode_word(e.mode()));
    out.push_str(&format!("\nEndpoint Mode:\t{mode}"));
    let ports = service
        .endpoint
        .as_ref()
        .map(|e| &e.ports)
        .filter(|p| !p.is_empty());
    if let Some(ports) = ports {
        out.push_str("\nPorts:");
        for p in ports {
            let publish_mode = match p.publish_mode() {
                rswarm_proto::types::port_config::PublishMode::Ingress => "ingress",
                rswarm_proto::types::port_config::PublishMode::Host => "host",
            };
            out.push_str(&format!(
                "\n PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {publish_mode}",
                p.published_port,
                protocol_word(p.protocol()),
                p.target_port
            ));
        }
        out.push(' ');
    }
    if let Some(h) = &c.healthcheck {
        out.push_str(&format!(
            "\n Healthcheck:\n  Interval = {}\n  Retries = {}\n  StartPeriod =\t{}\n  Timeout =\t{}",
            go_duration(h.interval_ns),
            h.retries,
            go_duration(h.start_period_ns),
            go_duration(h.timeout_ns)
        ));
        if !h.test.is_empty() {
            out.push_str("\n  Tests:");
            for t in &h.test {
                out.push_str(&format!("\n\t Test = {t}"));
            }
            out.push(' ');
        }
    }
    out.push('\n');
    out
}
