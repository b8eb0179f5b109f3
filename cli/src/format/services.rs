//! Services in Docker's shapes: the `service ls` row (MODE, REPLICAS as
//! "6/6", "3/3" or "2/5 (3/5 completed)", PORTS as "*:8080->80/tcp"), the
//! `service inspect` JSON object (Docker's field names, nesting, units and
//! omitted-when-empty rules, so `--format '{{.Spec.Name}}'` and `jq` paths
//! carry over) and the `service inspect --pretty` text.
//!
//! Reads `rswarm_proto::types::Service` (and, for REPLICAS, the service's
//! tasks and which nodes are down); `output` does `--format` / `-q`.

use std::collections::{BTreeMap, HashMap, HashSet};

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{
    ContainerSpec, EndpointSpec, HealthConfig, Mount, PortConfig, ResourceLimits, Service,
    ServiceSpec, Task, TaskSpec, TaskState, UpdateConfig,
};
use serde_json::{Map, Number, Value};

use super::humanize::{bytes_size, natural_cmp, rfc3339_nano};
use super::output::{render_inspect, render_list, ListFormat};
use super::table::HeaderNames;
use super::tasks::{human_duration, protocol_word, short_id};
use super::FormatError;
use crate::servicespec::mounts::mount_type_word;
use crate::servicespec::policy::{
    endpoint_mode_word, failure_action_word, restart_condition_word, update_order_word,
};
use crate::servicespec::reference::display_image;

/// Docker's default `service ls` table.
pub const SERVICE_LS_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";

/// Docker's column titles for the `service ls` fields.
pub const SERVICE_LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Mode", "MODE"),
    ("Replicas", "REPLICAS"),
    ("Image", "IMAGE"),
    ("Ports", "PORTS"),
];

/// `service ls` for [`render_list`].
pub const SERVICE_LS: ListFormat<'static> = ListFormat {
    default_table: SERVICE_LS_TABLE,
    headers: HeaderNames::new(SERVICE_LS_HEADERS),
    row_type: "service",
};

/// Docker's default stop grace period, shown when the spec leaves it unset.
const DEFAULT_STOP_GRACE_PERIOD_NS: i64 = 10_000_000_000;

/// How many of a service's tasks run, should run, and (jobs) completed:
/// Docker's `ServiceStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    pub running: u64,
    pub desired: u64,
    pub completed: u64,
}

/// Counts a service's tasks the way Docker's daemon does for `service ls`:
/// running = tasks in Running state on nodes that are not down; desired =
/// the replicas (replicated), the tasks not being shut down (global), or the
/// job tasks still to finish (jobs), counting only the current job run.
pub fn service_counts(
    service: &Service,
    tasks: &[Task],
    down_nodes: &HashSet<String>,
) -> ServiceCounts {
    let spec = service.spec.as_ref();
    let mode = spec.and_then(|s| s.mode.as_ref());
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    let is_job = matches!(mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_)));
    let mine = tasks
        .iter()
        .filter(|t| t.service_id == service.id)
        .filter(|t| !is_job || t.job_iteration == iteration);
    let mut counts = ServiceCounts::default();
    let mut not_shut_down = 0u64;
    let mut unfinished_job_tasks = 0u64;
    for t in mine {
        let state = t.status.as_ref().map(|s| s.state()).unwrap_or_default();
        // A task being stopped (scale-down, removal) may still report Running
        // for a moment; like Docker, count only tasks meant to run.
        if state == TaskState::Running
            && t.desired_state() <= TaskState::Complete
            && !down_nodes.contains(&t.node_id)
        {
            counts.running += 1;
        }
        if state == TaskState::Complete {
            counts.completed += 1;
        }
        if t.desired_state() <= TaskState::Running {
            not_shut_down += 1;
        }
        if t.desired_state() <= TaskState::Complete && state < TaskState::Complete {
            unfinished_job_tasks += 1;
        }
    }
    counts.desired = match mode {
        Some(Mode::Replicated(r)) => r.replicas,
        None => 0,
        Some(Mode::Global(_)) => not_shut_down,
        Some(Mode::ReplicatedJob(j)) => j
            .max_concurrent
            .min(j.total_completions.saturating_sub(counts.completed)),
        Some(Mode::GlobalJob(_)) => unfinished_job_tasks,
    };
    counts
}

/// The MODE word: `replicated`, `global`, `replicated job`, `global job`.
pub fn mode_word(mode: Option<&Mode>) -> &'static str {
    match mode {
        Some(Mode::Global(_)) => "global",
        Some(Mode::ReplicatedJob(_)) => "replicated job",
        Some(Mode::GlobalJob(_)) => "global job",
        Some(Mode::Replicated(_)) | None => "replicated",
    }
}

/// The REPLICAS cell: `6/6`, `2/3 (max 1 per node)`, `2/5 (3/5 completed)`.
pub fn replicas_cell(spec: Option<&ServiceSpec>, c: ServiceCounts) -> String {
    let mode = spec.and_then(|s| s.mode.as_ref());
    match mode {
        Some(Mode::ReplicatedJob(j)) => format!(
            "{}/{} ({}/{} completed)",
            c.running, c.desired, c.completed, j.total_completions
        ),
        Some(Mode::GlobalJob(_)) => format!(
            "{}/{} ({}/{} completed)",
            c.running,
            c.desired,
            c.completed,
            c.desired + c.completed
        ),
        _ => {
            let max = spec
                .and_then(|s| s.task.as_ref())
                .and_then(|t| t.placement.as_ref())
                .map_or(0, |p| p.max_replicas);
            if max > 0 {
                format!("{}/{} (max {max} per node)", c.running, c.desired)
            } else {
                format!("{}/{}", c.running, c.desired)
            }
        }
    }
}

/// The ports a service publishes through the routing mesh, as `service ls`
/// shows them: sorted, consecutive ports folded into ranges
/// (`*:8080-8081->80-81/tcp`), host-mode ports left out (they show per task
/// in `service ps`). Uses the allocated ports, else the spec's.
pub fn ports_cell(service: &Service) -> String {
    let allocated = service
        .endpoint
        .as_ref()
        .map(|e| &e.ports)
        .filter(|p| !p.is_empty());
    let spec_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.endpoint.as_ref())
        .map(|e| &e.ports);
    let Some(ports) = allocated.or(spec_ports) else {
        return String::new();
    };
    let mut ports: Vec<&PortConfig> = ports.iter().collect();
    ports.sort_by(|a, b| {
        protocol_word(a.protocol())
            .cmp(protocol_word(b.protocol()))
            .then(a.published_port.cmp(&b.published_port))
    });
    struct Range {
        p_start: u32,
        p_end: u32,
        t_start: u32,
        t_end: u32,
        protocol: &'static str,
    }
    let show = |r: &Range| {
        let publ = if r.p_end > r.p_start {
            format!("{}-{}", r.p_start, r.p_end)
        } else {
            r.p_start.to_string()
        };
        let target = if r.t_end > r.t_start {
            format!("{}-{}", r.t_start, r.t_end)
        } else {
            r.t_start.to_string()
        };
        format!("*:{publ}->{target}/{}", r.protocol)
    };
    let mut out = Vec::new();
    let mut current = Range {
        p_start: 0,
        p_end: 0,
        t_start: 0,
        t_end: 0,
        protocol: "",
    };
    for p in ports {
        if p.publish_mode() != rswarm_proto::types::port_config::PublishMode::Ingress {
            continue;
        }
        let protocol = protocol_word(p.protocol());
        let is_range = current.t_end != current.t_start;
        let overlaps = p.target_port <= current.t_end;
        // Go's unsigned arithmetic: a smaller port wraps around and starts a new range.
        if protocol != current.protocol
            || p.published_port.wrapping_sub(current.p_end) > 1
            || p.target_port.wrapping_sub(current.t_end) > 1
            || (is_range && overlaps)
        {
            if current.p_start > 0 {
                out.push(show(&current));
            }
            current = Range {
                p_start: p.published_port,
                p_end: p.published_port,
                t_start: p.target_port,
                t_end: p.target_port,
                protocol,
            };
            continue;
        }
        current.p_end = p.published_port;
        current.t_end = p.target_port;
    }
    if current.p_start > 0 {
        out.push(show(&current));
    }
    out.join(", ")
}

fn name(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str())
}

fn image(service: &Service) -> &str {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.container.as_ref())
        .map_or("", |c| c.image.as_str())
}

/// One `service ls` row with Docker's template fields, in `--format json`
/// order: `ID` (12 characters), `Image` (without digest), `Mode`, `Name`,
/// `Ports`, `Replicas`.
pub fn service_ls_row(service: &Service, counts: ServiceCounts) -> Value {
    let spec = service.spec.as_ref();
    let mut row = Map::new();
    row.insert("ID".into(), short_id(&service.id).into());
    row.insert("Image".into(), display_image(image(service)).into());
    row.insert(
        "Mode".into(),
        mode_word(spec.and_then(|s| s.mode.as_ref())).into(),
    );
    row.insert("Name".into(), name(service).into());
    row.insert("Ports".into(), ports_cell(service).into());
    row.insert("Replicas".into(), replicas_cell(spec, counts).into());
    Value::Object(row)
}

/// Everything `rswarm service ls` prints for `--format` / `-q`: services by
/// name in natural order; `counts` by service ID (missing means 0/0).
pub fn render_service_list(
    services: &[Service],
    counts: &HashMap<String, ServiceCounts>,
    format: Option<&str>,
    quiet: bool,
) -> Result<String, FormatError> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(name(a), name(b)).then_with(|| a.id.cmp(&b.id)));
    let rows: Vec<Value> = sorted
        .into_iter()
        .map(|s| service_ls_row(s, counts.get(&s.id).copied().unwrap_or_default()))
        .collect();
    render_list(&rows, format, quiet, &SERVICE_LS)
}

// ---- inspect JSON --------------------------------------------------------

fn obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn put_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_string(), value.into());
    }
}

fn put_int(map: &mut Map<String, Value>, key: &str, value: i64) {
    if value != 0 {
        map.insert(key.to_string(), value.into());
    }
}

fn put_strings(map: &mut Map<String, Value>, key: &str, values: &[String]) {
    if !values.is_empty() {
        map.insert(key.to_string(), values.to_vec().into());
    }
}

/// Labels as a JSON object with sorted keys (Go's `encoding/json` order).
fn labels_json(labels: &HashMap<String, String>) -> Value {
    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A float32 as Go's `encoding/json` writes it: shortest digits, `0` not `0.0`.
fn float32_json(value: f32) -> Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return Value::from(value as i64);
    }
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn port_json(p: &PortConfig) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "Name", &p.name);
    m.insert("Protocol".into(), protocol_word(p.protocol()).into());
    put_int(&mut m, "TargetPort", i64::from(p.target_port));
    put_int(&mut m, "PublishedPort", i64::from(p.published_port));
    let mode = match p.publish_mode() {
        rswarm_proto::types::port_config::PublishMode::Ingress => "ingress",
        rswarm_proto::types::port_config::PublishMode::Host => "host",
    };
    m.insert("PublishMode".into(), mode.into());
    Value::Object(m)
}

fn endpoint_spec_json(e: &EndpointSpec) -> Value {
    let mut m = Map::new();
    m.insert("Mode".into(), endpoint_mode_word(e.mode()).into());
    if !e.ports.is_empty() {
        m.insert("Ports".into(), e.ports.iter().map(port_json).collect());
    }
    Value::Object(m)
}

fn mount_json(mount: &Mount) -> Value {
    let t = mount.r#type();
    let mut m = Map::new();
    m.insert("Type".into(), mount_type_word(t).into());
    put_str(&mut m, "Source", &mount.source);
    put_str(&mut m, "Target", &mount.target);
    if mount.read_only {
        m.insert("ReadOnly".into(), true.into());
    }
    if mount.volume_nocopy || !mount.volume_labels.is_empty() {
        let mut v = Map::new();
        if mount.volume_nocopy {
            v.insert("NoCopy".into(), true.into());
        }
        if !mount.volume_labels.is_empty() {
            v.insert("Labels".into(), labels_json(&mount.volume_labels));
        }
        m.insert("VolumeOptions".into(), Value::Object(v));
    }
    if mount.tmpfs_size_bytes != 0 || mount.tmpfs_mode != 0 {
        let mut v = Map::new();
        put_int(&mut v, "SizeBytes", mount.tmpfs_size_bytes);
        put_int(&mut v, "Mode", i64::from(mount.tmpfs_mode));
        m.insert("TmpfsOptions".into(), Value::Object(v));
    }
    Value::Object(m)
}

fn healthcheck_json(h: &HealthConfig) -> Value {
    let mut m = Map::new();
    put_strings(&mut m, "Test", &h.test);
    put_int(&mut m, "Interval", h.interval_ns);
    put_int(&mut m, "Timeout", h.timeout_ns);
    put_int(&mut m, "StartPeriod", h.start_period_ns);
    put_int(&mut m, "Retries", i64::from(h.retries));
    Value::Object(m)
}

fn container_json(c: &ContainerSpec) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "Image", &c.image);
    if !c.labels.is_empty() {
        m.insert("Labels".into(), labels_json(&c.labels));
    }
    put_strings(&mut m, "Command", &c.command);
    put_strings(&mut m, "Args", &c.args);
    put_str(&mut m, "Hostname", &c.hostname);
    put_strings(&mut m, "Env", &c.env);
    put_str(&mut m, "Dir", &c.dir);
    put_str(&mut m, "User", &c.user);
    put_strings(&mut m, "Groups", &c.groups);
    if c.init {
        m.insert("Init".into(), true.into());
    }
    put_str(&mut m, "StopSignal", &c.stop_signal);
    if c.tty {
        m.insert("TTY".into(), true.into());
    }
    if c.open_stdin {
        m.insert("OpenStdin".into(), true.into());
    }
    if c.read_only {
        m.insert("ReadOnly".into(), true.into());
    }
    if !c.mounts.is_empty() {
        m.insert("Mounts".into(), c.mounts.iter().map(mount_json).collect());
    }
    let grace = if c.stop_grace_period_ns == 0 {
        DEFAULT_STOP_GRACE_PERIOD_NS
    } else {
        c.stop_grace_period_ns
    };
    m.insert("StopGracePeriod".into(), grace.into());
    if let Some(h) = &c.healthcheck {
        m.insert("Healthcheck".into(), healthcheck_json(h));
    }
    m.insert("Isolation".into(), "default".into());
    if !c.sysctls.is_empty() {
        m.insert("Sysctls".into(), labels_json(&c.sysctls));
    }
    put_strings(&mut m, "CapabilityAdd", &c.cap_add);
    put_strings(&mut m, "CapabilityDrop", &c.cap_drop);
    if !c.ulimits.is_empty() {
        let ulimits = c
            .ulimits
            .iter()
            .map(|u| {
                obj(vec![
                    ("Name", u.name.clone().into()),
                    ("Hard", u.hard.into()),
                    ("Soft", u.soft.into()),
                ])
            })
            .collect();
        m.insert("Ulimits".into(), ulimits);
    }
    Value::Object(m)
}

fn limits_json(l: &ResourceLimits, with_pids: bool) -> Value {
    let mut m = Map::new();
    put_int(&mut m, "NanoCPUs", l.nano_cpus);
    put_int(&mut m, "MemoryBytes", l.memory_bytes);
    if with_pids {
        put_int(&mut m, "Pids", l.pids);
    }
    Value::Object(m)
}

fn task_template_json(t: &TaskSpec) -> Value {
    let mut m = Map::new();
    m.insert(
        "ContainerSpec".into(),
        t.container
            .as_ref()
            .map_or_else(|| obj(vec![]), container_json),
    );
    if let Some(r) = &t.resources {
        let mut res = Map::new();
        if let Some(l) = &r.limits {
            res.insert("Limits".into(), limits_json(l, true));
        }
        if let Some(l) = &r.reservations {
            res.insert("Reservations".into(), limits_json(l, false));
        }
        m.insert("Resources".into(), Value::Object(res));
    }
    if let Some(r) = &t.restart {
        let mut rp = Map::new();
        rp.insert(
            "Condition".into(),
            restart_condition_word(r.condition()).into(),
        );
        if r.delay_set || r.delay_ns != 0 {
            rp.insert("Delay".into(), r.delay_ns.into());
        }
        rp.insert("MaxAttempts".into(), r.max_attempts.into());
        put_int(&mut rp, "Window", r.window_ns);
        m.insert("RestartPolicy".into(), Value::Object(rp));
    }
    let mut placement = Map::new();
    if let Some(p) = &t.placement {
        put_strings(&mut placement, "Constraints", &p.constraints);
        if !p.preferences.is_empty() {
            let prefs = p
                .preferences
                .iter()
                .map(|pref| {
                    obj(vec![(
                        "Spread",
                        obj(vec![(
                            "SpreadDescriptor",
                            pref.spread_descriptor.clone().into(),
                        )]),
                    )])
                })
                .collect();
            placement.insert("Preferences".into(), prefs);
        }
        if p.max_replicas != 0 {
            placement.insert("MaxReplicas".into(), p.max_replicas.into());
        }
        if !p.platforms.is_empty() {
            let platforms = p
                .platforms
                .iter()
                .map(|pl| {
                    obj(vec![
                        ("Architecture", pl.architecture.clone().into()),
                        ("OS", pl.os.clone().into()),
                    ])
                })
                .collect();
            placement.insert("Platforms".into(), platforms);
        }
    }
    m.insert("Placement".into(), Value::Object(placement));
    if !t.networks.is_empty() {
        let networks = t
            .networks
            .iter()
            .map(|n| {
                let mut nm = Map::new();
                put_str(&mut nm, "Target", &n.target);
                put_strings(&mut nm, "Aliases", &n.aliases);
                Value::Object(nm)
            })
            .collect();
        m.insert("Networks".into(), networks);
    }
    m.insert("ForceUpdate".into(), t.force_update.into());
    m.insert("Runtime".into(), "container".into());
    Value::Object(m)
}

fn update_config_json(u: &UpdateConfig) -> Value {
    let mut m = Map::new();
    m.insert("Parallelism".into(), u.parallelism.into());
    put_int(&mut m, "Delay", u.delay_ns);
    m.insert(
        "FailureAction".into(),
        failure_action_word(u.failure_action()).into(),
    );
    put_int(&mut m, "Monitor", u.monitor_ns);
    m.insert("MaxFailureRatio".into(), float32_json(u.max_failure_ratio));
    m.insert("Order".into(), update_order_word(u.order()).into());
    Value::Object(m)
}

fn mode_json(mode: Option<&Mode>) -> Value {
    match mode {
        Some(Mode::Replicated(r)) => obj(vec![(
            "Replicated",
            obj(vec![("Replicas", r.replicas.into())]),
        )]),
        Some(Mode::Global(_)) => obj(vec![("Global", obj(vec![]))]),
        Some(Mode::ReplicatedJob(j)) => obj(vec![(
            "ReplicatedJob",
            obj(vec![
                ("MaxConcurrent", j.max_concurrent.into()),
                ("TotalCompletions", j.total_completions.into()),
            ]),
        )]),
        Some(Mode::GlobalJob(_)) => obj(vec![("GlobalJob", obj(vec![]))]),
        None => obj(vec![]),
    }
}

/// A service spec in Docker's `ServiceSpec` JSON shape.
pub fn service_spec_json(spec: &ServiceSpec) -> Value {
    let mut m = Map::new();
    let annotations = spec.annotations.clone().unwrap_or_default();
    put_str(&mut m, "Name", &annotations.name);
    m.insert("Labels".into(), labels_json(&annotations.labels));
    m.insert(
        "TaskTemplate".into(),
        spec.task
            .as_ref()
            .map_or_else(|| obj(vec![]), task_template_json),
    );
    m.insert("Mode".into(), mode_json(spec.mode.as_ref()));
    if let Some(u) = &spec.update {
        m.insert("UpdateConfig".into(), update_config_json(u));
    }
    if let Some(u) = &spec.rollback {
        m.insert("RollbackConfig".into(), update_config_json(u));
    }
    if let Some(e) = &spec.endpoint {
        m.insert("EndpointSpec".into(), endpoint_spec_json(e));
    }
    Value::Object(m)
}

fn update_state_word(s: UpdateState) -> &'static str {
    match s {
        UpdateState::Unknown => "",
        UpdateState::Updating => "updating",
        UpdateState::Paused => "paused",
        UpdateState::Completed => "completed",
        UpdateState::RollbackStarted => "rollback_started",
        UpdateState::RollbackPaused => "rollback_paused",
        UpdateState::RollbackCompleted => "rollback_completed",
    }
}

/// A service as `docker service inspect` shows it: `ID`, `Version.Index`,
/// `CreatedAt`/`UpdatedAt`, `Spec` (see [`service_spec_json`]),
/// `PreviousSpec` when there is one, `Endpoint` (`Spec`, allocated `Ports`,
/// `VirtualIPs`), `UpdateStatus` once an update ran, and `JobStatus` for jobs.
pub fn service_inspect_json(service: &Service) -> Value {
    let meta = service.meta.as_ref();
    let mut m = Map::new();
    m.insert("ID".into(), service.id.clone().into());
    let mut version = Map::new();
    if let Some(v) = meta.and_then(|m| m.version.as_ref()) {
        version.insert("Index".into(), v.index.into());
    }
    m.insert("Version".into(), Value::Object(version));
    m.insert(
        "CreatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.created_at)).into(),
    );
    m.insert(
        "UpdatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.updated_at)).into(),
    );
    let default_spec = ServiceSpec::default();
    let spec = service.spec.as_ref().unwrap_or(&default_spec);
    m.insert("Spec".into(), service_spec_json(spec));
    if let Some(p) = &service.previous_spec {
        m.insert("PreviousSpec".into(), service_spec_json(p));
    }
    let mut endpoint = Map::new();
    match &service.endpoint {
        Some(e) => {
            endpoint.insert(
                "Spec".into(),
                e.spec
                    .as_ref()
                    .map_or_else(|| obj(vec![]), endpoint_spec_json),
            );
            if !e.ports.is_empty() {
                endpoint.insert("Ports".into(), e.ports.iter().map(port_json).collect());
            }
            if !e.virtual_ips.is_empty() {
                let vips = e
                    .virtual_ips
                    .iter()
                    .map(|v| {
                        obj(vec![
                            ("NetworkID", v.network_id.clone().into()),
                            ("Addr", v.addr.clone().into()),
                        ])
                    })
                    .collect();
                endpoint.insert("VirtualIPs".into(), vips);
            }
        }
        None => {
            endpoint.insert("Spec".into(), obj(vec![]));
        }
    }
    m.insert("Endpoint".into(), Value::Object(endpoint));
    if let Some(u) = service
        .update_status
        .as_ref()
        .filter(|u| u.state() != UpdateState::Unknown)
    {
        let mut us = Map::new();
        us.insert("State".into(), update_state_word(u.state()).into());
        if u.started_at != 0 {
            us.insert("StartedAt".into(), rfc3339_nano(u.started_at).into());
        }
        if u.completed_at != 0 {
            us.insert("CompletedAt".into(), rfc3339_nano(u.completed_at).into());
        }
        put_str(&mut us, "Message", &u.message);
        m.insert("UpdateStatus".into(), Value::Object(us));
    }
    if matches!(spec.mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_))) {
        let job = service.job_status.unwrap_or_default();
        let mut js = Map::new();
        js.insert(
            "JobIteration".into(),
            obj(vec![("Index", job.job_iteration.into())]),
        );
        if job.last_execution != 0 {
            js.insert(
                "LastExecution".into(),
                rfc3339_nano(job.last_execution).into(),
            );
        }
        m.insert("JobStatus".into(), Value::Object(js));
    }
    Value::Object(m)
}

// ---- --pretty ------------------------------------------------------------

/// Go's `time.Duration.String()`: `0s`, `1.5ms`, `5s`, `1m30s`, `1h0m0s`.
pub fn go_duration(nanos: i64) -> String {
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
pub fn service_pretty(service: &Service, now: i64) -> String {
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

/// Everything `rswarm service inspect` prints: `--pretty` (or `--format
/// pretty`) gives [`service_pretty`] for each service, otherwise
/// [`render_inspect`] over [`service_inspect_json`].
pub fn render_service_inspect(
    services: &[Service],
    format: Option<&str>,
    pretty: bool,
    now: i64,
) -> Result<String, FormatError> {
    let format = format.filter(|f| !f.is_empty());
    if pretty || format == Some("pretty") {
        return Ok(services.iter().map(|s| service_pretty(s, now)).collect());
    }
    if format.is_some_and(|f| f.starts_with("pretty")) {
        return Err(FormatError::Usage(
            "cannot supply extra formatting options to the pretty template".to_string(),
        ));
    }
    let objects: Vec<Value> = services.iter().map(service_inspect_json).collect();
    render_inspect(&objects, format)
}

#[cfg(test)]
mod tests;
