//! `service ls`: Docker's default table and column titles, the task counts
//! behind REPLICAS (Docker's `ServiceStatus`, whose rule lives in
//! `rswarm_proto::spec::replicas`), the MODE, REPLICAS ("6/6",
//! "2/5 (3/5 completed)") and PORTS ("*:8080->80/tcp") cells, one row per
//! service, and the sorted listing handed to `output`.

use std::collections::HashMap;

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{PortConfig, Service, ServiceSpec};
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

// The REPLICAS counts are Docker's `ServiceStatus`, one rule shared with
// the manager's metrics.
pub(crate) use rswarm_proto::spec::replicas::{counts as service_counts, ServiceCounts};

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
