//! Services in Docker's shapes: the `service ls` row (MODE, REPLICAS as
//! "6/6", "3/3" or "2/5 (3/5 completed)", PORTS as "*:8080->80/tcp"), the
//! `service inspect` JSON object (Docker's field names, nesting, units and
//! omitted-when-empty rules, so `--format '{{.Spec.Name}}'` and `jq` paths
//! carry over) and the `service inspect --pretty` text.
//!
//! Reads `rswarm_proto::types::Service` (and, for REPLICAS, the service's
//! tasks and which nodes are down); `output` does `--format` / `-q`.
//!
//! The parts: `ls` (the listing and its cells), `inspect` (the JSON object),
//! `pretty` (the `--pretty` text); this module picks between the last two.

mod inspect;
mod ls;
mod pretty;

use rswarm_proto::types::Service;
use serde_json::Value;

use super::output::render_inspect;
use super::FormatError;
use inspect::service_inspect_json;
pub(crate) use inspect::task_template_json;
pub(crate) use ls::{render_service_list, service_counts, ServiceCounts};
use pretty::service_pretty;

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
