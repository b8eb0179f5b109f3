//! `service ls`: Docker's default table and column titles, the task counts
//! behind REPLICAS (Docker's `ServiceStatus`), the MODE, REPLICAS ("6/6",
//! "2/5 (3/5 completed)") and PORTS ("*:8080->80/tcp") cells, one row per
//! service, and the sorted listing handed to `output`.

use std::collections::{HashMap, HashSet};

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{PortConfig, Service, ServiceSpec, Task, TaskState};
use serde_json::{Map, Value};

use crate::format::humanize::natural_cmp;
use crate::format::output::{render_list, ListFormat};
use crate::format::table::HeaderNames;
use crate::format::tasks::{protocol_word, short_id};
use crate::format::FormatError;
use crate::servicespec::reference::display_image;

/// Docker's default `service ls` table.
pub(super) const SERVICE_LS_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}";

/// Docker's column titles for the `service ls` fields.
pub(super) const SERVICE_LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Name", "NAME"),
    ("Mode", "MODE"),
    ("Replicas", "REPLICAS"),
    ("Image", "IMAGE"),
    ("Ports", "PORTS"),
];

/// `service ls` for [`render_list`].
pub(super) const SERVICE_LS: ListFormat<'static> = ListFormat {
    default_table: SERVICE_LS_TABLE,
    headers: HeaderNames::new(SERVICE_LS_HEADERS),
    row_type: "service",
};

/// How many of a service's tasks run, should run, and (jobs) completed:
/// Docker's `ServiceStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ServiceCounts {
    pub running: u64,
    pub desired: u64,
    pub completed: u64,
}

/// Counts a service's tasks the way Docker's daemon does for `service ls`:
/// running = tasks in Running state on nodes that are not down; desired =
/// the replicas (replicated), the tasks not being shut down (global), or the
/// job tasks still to finish (jobs), counting only the current job run.
pub(crate) fn service_counts(
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
pub(super) fn mode_word(mode: Option<&Mode>) -> &'static str {
    match mode {
        Some(Mode::Global(_)) => "global",
        Some(Mode::ReplicatedJob(_)) => "replicated job",
        Some(Mode::GlobalJob(_)) => "global job",
        Some(Mode::Replicated(_)) | None => "replicated",
    }
}

/// The REPLICAS cell: `6/6`, `2/3 (max 1 per node)`, `2/5 (3/5 completed)`.
pub(super) fn replicas_cell(spec: Option<&ServiceSpec>, c: ServiceCounts) -> String {
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
pub(super) fn ports_cell(service: &Service) -> String {
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
pub(super) fn service_ls_row(service: &Service, counts: ServiceCounts) -> Value {
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
pub(crate) fn render_service_list(
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
