//! Nodes in Docker's shapes: the `node ls` row (the fields `--format` sees and
//! the default table), the `node inspect` JSON object (Docker's field names,
//! nesting and omitted-when-empty rules, so `--format '{{.Spec.Role}}'` and
//! `jq` paths carry over), and the `node inspect --pretty` text.
//!
//! Reads `rswarm_proto::types::Node` and nothing else; `output` does the
//! `--format` handling, `humanize` the dates, sizes and capitalisation.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rswarm_proto::types::{
    Node, NodeAvailability, NodeDescription, NodeRole, NodeState, Reachability, TlsInfo,
};
use serde_json::{Map, Value};

use super::humanize::{bytes_size, go_time, natural_cmp, pretty_print, rfc3339_nano};
use super::output::{render_inspect, render_list, ListFormat};
use super::table::HeaderNames;
use super::FormatError;

/// Docker's default `node ls` table: the ID, then ` *` on the local node (two
/// blanks on the others, so the column is as wide either way).
pub const NODE_LS_TABLE: &str = "table {{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}";

/// Docker's column titles for the `node ls` fields.
pub const NODE_LS_HEADERS: &[(&str, &str)] = &[
    ("ID", "ID"),
    ("Self", ""),
    ("Hostname", "HOSTNAME"),
    ("Status", "STATUS"),
    ("Availability", "AVAILABILITY"),
    ("ManagerStatus", "MANAGER STATUS"),
    ("EngineVersion", "ENGINE VERSION"),
    ("TLSStatus", "TLS STATUS"),
];

/// `node ls` for [`render_list`].
pub const NODE_LS: ListFormat<'static> = ListFormat {
    default_table: NODE_LS_TABLE,
    headers: HeaderNames::new(NODE_LS_HEADERS),
    row_type: "node",
};

fn role_word(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Worker => "worker",
        NodeRole::Manager => "manager",
    }
}

fn availability_word(availability: NodeAvailability) -> &'static str {
    match availability {
        NodeAvailability::Active => "active",
        NodeAvailability::Pause => "pause",
        NodeAvailability::Drain => "drain",
    }
}

fn state_word(state: NodeState) -> &'static str {
    match state {
        NodeState::Unknown => "unknown",
        NodeState::Down => "down",
        NodeState::Ready => "ready",
        NodeState::Disconnected => "disconnected",
    }
}

fn reachability_word(reachability: Reachability) -> &'static str {
    match reachability {
        Reachability::Unknown => "unknown",
        Reachability::Unreachable => "unreachable",
        Reachability::Reachable => "reachable",
    }
}

fn hostname(node: &Node) -> &str {
    node.description
        .as_ref()
        .map_or("", |d| d.hostname.as_str())
}

fn availability(node: &Node) -> NodeAvailability {
    node.spec
        .as_ref()
        .map(|s| s.availability())
        .unwrap_or_default()
}

fn state(node: &Node) -> NodeState {
    node.status.as_ref().map(|s| s.state()).unwrap_or_default()
}

fn tls_info(node: &Node) -> Option<&TlsInfo> {
    node.description
        .as_ref()
        .and_then(|d| d.tls_info.as_ref())
        .filter(|t| {
            !t.trust_root.is_empty()
                || !t.cert_issuer_subject.is_empty()
                || !t.cert_issuer_public_key.is_empty()
        })
}

fn spec_labels(node: &Node) -> Option<&HashMap<String, String>> {
    node.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| &a.labels)
}

fn engine_labels(node: &Node) -> Option<&HashMap<String, String>> {
    node.description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .map(|e| &e.labels)
}

/// Labels as a JSON object with sorted keys (Go's `encoding/json` order).
fn labels_json(labels: Option<&HashMap<String, String>>) -> Value {
    let sorted: BTreeMap<&String, &String> = labels.into_iter().flatten().collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Inserts a string unless it is empty (Go's `omitempty`).
fn put_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Inserts a number unless it is zero (Go's `omitempty`).
fn put_int(map: &mut Map<String, Value>, key: &str, value: i64) {
    if value != 0 {
        map.insert(key.to_string(), Value::from(value));
    }
}

/// One `node ls` row with Docker's template fields: `Availability`,
/// `EngineVersion`, `Hostname`, `ID`, `ManagerStatus` (`Leader`, `Reachable`,
/// `Unreachable`, `Unknown`, or empty for a worker), `Self`, `Status`,
/// `TLSStatus`, in the (sorted) order `--format json` prints them.
///
/// `TLSStatus` is `Ready` when the node reports TLS information and `Unknown`
/// otherwise (Docker also says `Needs Rotation` when it differs from the
/// cluster's; rswarm rotates through the CA service instead).
pub fn node_ls_row(node: &Node, self_id: &str) -> Value {
    let manager_status = match &node.manager_status {
        Some(ms) if ms.leader => "Leader".to_string(),
        Some(ms) => pretty_print(reachability_word(ms.reachability())),
        None => String::new(),
    };
    let engine_version = node
        .description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .map_or("", |e| e.engine_version.as_str());
    let tls_status = if tls_info(node).is_some() {
        "Ready"
    } else {
        "Unknown"
    };
    let mut row = Map::new();
    row.insert(
        "Availability".into(),
        pretty_print(availability_word(availability(node))).into(),
    );
    row.insert("EngineVersion".into(), engine_version.into());
    row.insert("Hostname".into(), hostname(node).into());
    row.insert("ID".into(), node.id.clone().into());
    row.insert("ManagerStatus".into(), manager_status.into());
    row.insert(
        "Self".into(),
        Value::Bool(!self_id.is_empty() && node.id == self_id),
    );
    row.insert(
        "Status".into(),
        pretty_print(state_word(state(node))).into(),
    );
    row.insert("TLSStatus".into(), tls_status.into());
    Value::Object(row)
}

/// `node ls` rows in Docker's order: by hostname in natural order (`host2`
/// before `host10`), then by ID.
pub fn node_ls_rows(nodes: &[Node], self_id: &str) -> Vec<Value> {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(hostname(a), hostname(b)).then_with(|| a.id.cmp(&b.id)));
    sorted
        .into_iter()
        .map(|n| node_ls_row(n, self_id))
        .collect()
}

/// Everything `rswarm node ls` prints for `--format` / `-q`.
pub fn render_node_list(
    nodes: &[Node],
    self_id: &str,
    format: Option<&str>,
    quiet: bool,
) -> Result<String, FormatError> {
    render_list(&node_ls_rows(nodes, self_id), format, quiet, &NODE_LS)
}

/// A node as `docker node inspect` shows it: `ID`, `Version.Index`,
/// `CreatedAt`/`UpdatedAt` (RFC 3339 with nanoseconds), `Spec` (`Name` when
/// set, `Labels` always, `Role`, `Availability`), `Description` (`Hostname`,
/// `Platform`, `Resources`, `Engine`, `TLSInfo` with base64 issuer fields),
/// `Status` (`State`, `Message`, `Addr`) and, for Raft members only,
/// `ManagerStatus` (`Leader` only when true, `Reachability`, `Addr`). Empty
/// strings and zero numbers are left out, as Go's `omitempty` does.
pub fn node_inspect_json(node: &Node) -> Value {
    let meta = node.meta.as_ref();
    let mut version = Map::new();
    if let Some(index) = meta.and_then(|m| m.version.as_ref()).map(|v| v.index) {
        if index != 0 {
            version.insert("Index".into(), Value::from(index));
        }
    }

    let mut spec = Map::new();
    if let Some(annotations) = node.spec.as_ref().and_then(|s| s.annotations.as_ref()) {
        put_str(&mut spec, "Name", &annotations.name);
    }
    spec.insert("Labels".into(), labels_json(spec_labels(node)));
    let role = node
        .spec
        .as_ref()
        .map(|s| s.desired_role())
        .unwrap_or_default();
    spec.insert("Role".into(), role_word(role).into());
    spec.insert(
        "Availability".into(),
        availability_word(availability(node)).into(),
    );

    let mut status = Map::new();
    status.insert("State".into(), state_word(state(node)).into());
    if let Some(s) = &node.status {
        put_str(&mut status, "Message", &s.message);
        put_str(&mut status, "Addr", &s.addr);
    }

    let mut object = Map::new();
    object.insert("ID".into(), node.id.clone().into());
    object.insert("Version".into(), Value::Object(version));
    object.insert(
        "CreatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.created_at)).into(),
    );
    object.insert(
        "UpdatedAt".into(),
        rfc3339_nano(meta.map_or(0, |m| m.updated_at)).into(),
    );
    object.insert("Spec".into(), Value::Object(spec));
    object.insert(
        "Description".into(),
        description_json(node.description.as_ref()),
    );
    object.insert("Status".into(), Value::Object(status));
    if let Some(ms) = &node.manager_status {
        let mut manager = Map::new();
        if ms.leader {
            manager.insert("Leader".into(), Value::Bool(true));
        }
        manager.insert(
            "Reachability".into(),
            reachability_word(ms.reachability()).into(),
        );
        put_str(&mut manager, "Addr", &ms.addr);
        object.insert("ManagerStatus".into(), Value::Object(manager));
    }
    Value::Object(object)
}

fn description_json(description: Option<&NodeDescription>) -> Value {
    let default = NodeDescription::default();
    let d = description.unwrap_or(&default);
    let mut out = Map::new();
    put_str(&mut out, "Hostname", &d.hostname);

    let mut platform = Map::new();
    if let Some(p) = &d.platform {
        put_str(&mut platform, "Architecture", &p.architecture);
        put_str(&mut platform, "OS", &p.os);
    }
    out.insert("Platform".into(), Value::Object(platform));

    let mut resources = Map::new();
    if let Some(r) = &d.resources {
        put_int(&mut resources, "NanoCPUs", r.nano_cpus);
        put_int(&mut resources, "MemoryBytes", r.memory_bytes);
    }
    out.insert("Resources".into(), Value::Object(resources));

    let mut engine = Map::new();
    if let Some(e) = &d.engine {
        put_str(&mut engine, "EngineVersion", &e.engine_version);
        if !e.labels.is_empty() {
            engine.insert("Labels".into(), labels_json(Some(&e.labels)));
        }
    }
    out.insert("Engine".into(), Value::Object(engine));

    let mut tls = Map::new();
    if let Some(t) = &d.tls_info {
        put_str(&mut tls, "TrustRoot", &t.trust_root);
        put_str(
            &mut tls,
            "CertIssuerSubject",
            &BASE64.encode(&t.cert_issuer_subject),
        );
        put_str(
            &mut tls,
            "CertIssuerPublicKey",
            &BASE64.encode(&t.cert_issuer_public_key),
        );
    }
    out.insert("TLSInfo".into(), Value::Object(tls));
    Value::Object(out)
}

/// `docker node inspect --pretty`: the human-readable summary, with Docker's
/// labels and its tab-and-blank alignment (tabs are left for the terminal).
/// Ends with a newline.
pub fn node_pretty(node: &Node) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let default = NodeDescription::default();
    let d = node.description.as_ref().unwrap_or(&default);

    line(format!("ID:\t\t\t{}", node.id));
    let name = node
        .spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map_or("", |a| a.name.as_str());
    if !name.is_empty() {
        line(format!("Name:\t\t\t{name}"));
    }
    if let Some(labels) = spec_labels(node).filter(|l| !l.is_empty()) {
        line("Labels:".to_string());
        for item in label_lines(labels) {
            line(item);
        }
    }
    line(format!("Hostname:              \t{}", d.hostname));
    let created_at = node.meta.as_ref().map_or(0, |m| m.created_at);
    line(format!(
        "Joined at:             \t{}",
        pretty_print(&go_time(created_at))
    ));

    line("Status:".to_string());
    line(format!(
        " State:\t\t\t{}",
        pretty_print(state_word(state(node)))
    ));
    let (message, addr) = node
        .status
        .as_ref()
        .map_or(("", ""), |s| (s.message.as_str(), s.addr.as_str()));
    if !message.is_empty() {
        line(format!(
            " Message:              \t{}",
            pretty_print(message)
        ));
    }
    line(format!(
        " Availability:         \t{}",
        pretty_print(availability_word(availability(node)))
    ));
    if !addr.is_empty() {
        line(format!(" Address:\t\t{addr}"));
    }

    if let Some(ms) = &node.manager_status {
        line("Manager Status:".to_string());
        line(format!(" Address:\t\t{}", ms.addr));
        line(format!(
            " Raft Status:\t\t{}",
            pretty_print(reachability_word(ms.reachability()))
        ));
        line(format!(
            " Leader:\t\t{}",
            if ms.leader { "Yes" } else { "No" }
        ));
    }

    let (os, arch) = d
        .platform
        .as_ref()
        .map_or(("", ""), |p| (p.os.as_str(), p.architecture.as_str()));
    line("Platform:".to_string());
    line(format!(" Operating System:\t{os}"));
    line(format!(" Architecture:\t\t{arch}"));

    let (nano_cpus, memory) = d
        .resources
        .as_ref()
        .map_or((0, 0), |r| (r.nano_cpus, r.memory_bytes));
    line("Resources:".to_string());
    line(format!(" CPUs:\t\t\t{}", nano_cpus / 1_000_000_000));
    let memory = if memory == 0 {
        String::new()
    } else {
        bytes_size(memory as f64)
    };
    line(format!(" Memory:\t\t{memory}"));

    let engine_version = d.engine.as_ref().map_or("", |e| e.engine_version.as_str());
    line(format!("Engine Version:\t\t{engine_version}"));
    if let Some(labels) = engine_labels(node).filter(|l| !l.is_empty()) {
        line("Engine Labels:".to_string());
        for item in label_lines(labels) {
            line(item);
        }
    }

    if let Some(tls) = tls_info(node) {
        line("TLS Info:".to_string());
        line(" TrustRoot:".to_string());
        line(tls.trust_root.clone());
        line(format!(
            " Issuer Subject:\t{}",
            BASE64.encode(&tls.cert_issuer_subject)
        ));
        line(format!(
            " Issuer Public Key:\t{}",
            BASE64.encode(&tls.cert_issuer_public_key)
        ));
    }
    out
}

/// ` - key=value` lines in key order (` - key` when the value is empty).
fn label_lines(labels: &HashMap<String, String>) -> Vec<String> {
    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
    sorted
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                format!(" - {k}")
            } else {
                format!(" - {k}={v}")
            }
        })
        .collect()
}

/// Everything `rswarm node inspect` prints: `--pretty` (or `--format pretty`)
/// gives [`node_pretty`] for each node, otherwise [`render_inspect`] over
/// [`node_inspect_json`].
pub fn render_node_inspect(
    nodes: &[Node],
    format: Option<&str>,
    pretty: bool,
) -> Result<String, FormatError> {
    let format = format.filter(|f| !f.is_empty());
    if pretty || format == Some("pretty") {
        return Ok(nodes.iter().map(node_pretty).collect());
    }
    if format.is_some_and(|f| f.starts_with("pretty")) {
        return Err(FormatError::Usage(
            "cannot supply extra formatting options to the pretty template".to_string(),
        ));
    }
    let objects: Vec<Value> = nodes.iter().map(node_inspect_json).collect();
    render_inspect(&objects, format)
}

#[cfg(test)]
mod tests;
