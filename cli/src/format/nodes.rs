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
mod tests {
    use super::*;
    use rswarm_proto::types::{
        Annotations, EngineDescription, ManagerStatus, Meta, NodeSpec, NodeStatus, Platform,
        Resources, Version,
    };
    use serde_json::json;

    const LEADER_ID: &str = "k3n8s2j5d0q9x1m4v7b6c2z8a";
    const WORKER_ID: &str = "w0rk3rn0d3id0000000000001";

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn node(id: &str, hostname: &str, manager: Option<ManagerStatus>) -> Node {
        Node {
            id: id.to_string(),
            meta: Some(Meta {
                version: Some(Version { index: 10 }),
                created_at: 1_494_975_164_991_066_200,
                updated_at: 1_494_975_165_230_878_043,
            }),
            spec: Some(NodeSpec {
                annotations: Some(Annotations {
                    name: String::new(),
                    labels: HashMap::new(),
                }),
                desired_role: if manager.is_some() {
                    NodeRole::Manager as i32
                } else {
                    NodeRole::Worker as i32
                },
                availability: NodeAvailability::Active as i32,
            }),
            description: Some(NodeDescription {
                hostname: hostname.to_string(),
                platform: Some(Platform {
                    architecture: "x86_64".to_string(),
                    os: "linux".to_string(),
                }),
                resources: Some(Resources {
                    nano_cpus: 4_000_000_000,
                    memory_bytes: 8_272_031_744,
                }),
                engine: Some(EngineDescription {
                    engine_version: "0.1.0".to_string(),
                    labels: HashMap::new(),
                }),
                tls_info: Some(TlsInfo {
                    trust_root: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                        .to_string(),
                    cert_issuer_subject: b"subject".to_vec(),
                    cert_issuer_public_key: b"key".to_vec(),
                    ..Default::default()
                }),
            }),
            status: Some(NodeStatus {
                state: NodeState::Ready as i32,
                message: String::new(),
                addr: "10.0.0.1".to_string(),
            }),
            manager_status: manager,
            role: NodeRole::Worker as i32,
            cert_expires_at: 0,
            attachments: vec![],
        }
    }

    fn leader() -> Node {
        node(
            LEADER_ID,
            "host1",
            Some(ManagerStatus {
                raft_id: 1,
                addr: "10.0.0.1:4242".to_string(),
                leader: true,
                reachability: Reachability::Reachable as i32,
            }),
        )
    }

    fn worker() -> Node {
        node(WORKER_ID, "host2", None)
    }

    fn ok<T>(r: Result<T, FormatError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn node_ls_default_table_marks_self_like_docker() {
        let out = ok(render_node_list(&[leader()], LEADER_ID, None, false));
        assert_eq!(
            out,
            "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n\
             k3n8s2j5d0q9x1m4v7b6c2z8a *   host1      Ready     Active         Leader           0.1.0\n"
        );
    }

    #[test]
    fn node_ls_sorts_by_hostname_naturally_and_pads_other_nodes() {
        let mut third = worker();
        third.id = "a000000000000000000000010".to_string();
        if let Some(d) = third.description.as_mut() {
            d.hostname = "host10".to_string();
        }
        let out = ok(render_node_list(
            &[third, worker(), leader()],
            LEADER_ID,
            None,
            false,
        ));
        assert_eq!(
            out,
            "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n\
             k3n8s2j5d0q9x1m4v7b6c2z8a *   host1      Ready     Active         Leader           0.1.0\n\
             w0rk3rn0d3id0000000000001     host2      Ready     Active                          0.1.0\n\
             a000000000000000000000010     host10     Ready     Active                          0.1.0\n"
        );
    }

    #[test]
    fn node_ls_quiet_and_custom_formats() {
        let nodes = [worker(), leader()];
        assert_eq!(
            ok(render_node_list(&nodes, LEADER_ID, None, true)),
            format!("{LEADER_ID}\n{WORKER_ID}\n")
        );
        assert_eq!(
            ok(render_node_list(
                &nodes,
                LEADER_ID,
                Some("{{.Hostname}} {{.Self}} {{.TLSStatus}}"),
                false
            )),
            "host1 true Ready\nhost2 false Ready\n"
        );
        assert_eq!(
            ok(render_node_list(
                &nodes,
                LEADER_ID,
                Some(r"table {{.Hostname}}\t{{.TLSStatus}}"),
                false
            )),
            "HOSTNAME   TLS STATUS\nhost1      Ready\nhost2      Ready\n"
        );
    }

    #[test]
    fn node_ls_json_rows_have_dockers_sorted_fields() {
        let out = ok(render_node_list(
            &[leader()],
            LEADER_ID,
            Some("json"),
            false,
        ));
        assert_eq!(
            out,
            format!(
                "{{\"Availability\":\"Active\",\"EngineVersion\":\"0.1.0\",\"Hostname\":\"host1\",\"ID\":\"{LEADER_ID}\",\"ManagerStatus\":\"Leader\",\"Self\":true,\"Status\":\"Ready\",\"TLSStatus\":\"Ready\"}}\n"
            )
        );
    }

    #[test]
    fn node_ls_row_manager_status_words() {
        let mut reachable = leader();
        if let Some(ms) = reachable.manager_status.as_mut() {
            ms.leader = false;
        }
        assert_eq!(node_ls_row(&reachable, "")["ManagerStatus"], "Reachable");
        assert_eq!(node_ls_row(&worker(), "")["ManagerStatus"], "");
        assert_eq!(node_ls_row(&leader(), "")["Self"], false);
        let mut down = worker();
        down.status = Some(NodeStatus {
            state: NodeState::Down as i32,
            ..Default::default()
        });
        if let Some(s) = down.spec.as_mut() {
            s.availability = NodeAvailability::Drain as i32;
        }
        assert_eq!(node_ls_row(&down, "")["Status"], "Down");
        assert_eq!(node_ls_row(&down, "")["Availability"], "Drain");
    }

    #[test]
    fn node_inspect_json_has_dockers_shape() {
        let mut n = leader();
        if let Some(a) = n.spec.as_mut().and_then(|s| s.annotations.as_mut()) {
            a.labels = labels(&[("zone", "a"), ("disk", "ssd")]);
        }
        let expected = json!({
            "ID": LEADER_ID,
            "Version": {"Index": 10},
            "CreatedAt": "2017-05-16T22:52:44.9910662Z",
            "UpdatedAt": "2017-05-16T22:52:45.230878043Z",
            "Spec": {"Labels": {"disk": "ssd", "zone": "a"}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "host1",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 4000000000_i64, "MemoryBytes": 8272031744_i64},
                "Engine": {"EngineVersion": "0.1.0"},
                "TLSInfo": {
                    "TrustRoot": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                    "CertIssuerSubject": "c3ViamVjdA==",
                    "CertIssuerPublicKey": "a2V5"
                }
            },
            "Status": {"State": "ready", "Addr": "10.0.0.1"},
            "ManagerStatus": {"Leader": true, "Reachability": "reachable", "Addr": "10.0.0.1:4242"}
        });
        let actual = node_inspect_json(&n);
        assert_eq!(actual, expected);
        // Field order is Docker's too (it shows in `inspect` output).
        assert_eq!(actual.to_string(), expected.to_string());
    }

    #[test]
    fn node_inspect_json_omits_what_docker_omits() {
        let value = node_inspect_json(&worker());
        assert!(value.get("ManagerStatus").is_none());
        assert_eq!(value["Spec"]["Labels"], json!({}));
        assert!(value["Description"]["Engine"].get("Labels").is_none());
        assert!(value["Status"].get("Message").is_none());

        let mut reachable = leader();
        if let Some(ms) = reachable.manager_status.as_mut() {
            ms.leader = false;
        }
        let ms = &node_inspect_json(&reachable)["ManagerStatus"];
        assert_eq!(
            ms,
            &json!({"Reachability": "reachable", "Addr": "10.0.0.1:4242"})
        );

        let bare = Node {
            id: "x".to_string(),
            ..Default::default()
        };
        assert_eq!(
            node_inspect_json(&bare),
            json!({
                "ID": "x",
                "Version": {},
                "CreatedAt": "0001-01-01T00:00:00Z",
                "UpdatedAt": "0001-01-01T00:00:00Z",
                "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
                "Description": {"Platform": {}, "Resources": {}, "Engine": {}, "TLSInfo": {}},
                "Status": {"State": "unknown"}
            })
        );
    }

    #[test]
    fn inspect_format_paths_carry_over_from_docker() {
        let mut n = leader();
        if let Some(a) = n.spec.as_mut().and_then(|s| s.annotations.as_mut()) {
            a.labels = labels(&[("zone", "a")]);
        }
        let nodes = [n];
        let run = |f: &str| ok(render_node_inspect(&nodes, Some(f), false));
        assert_eq!(run("{{.ManagerStatus.Leader}}"), "true\n");
        assert_eq!(run("{{json .Spec.Labels}}"), "{\"zone\":\"a\"}\n");
        assert_eq!(
            run("{{.Spec.Role}} {{.Status.State}} {{.Description.Hostname}}"),
            "manager ready host1\n"
        );
        assert_eq!(run(r#"{{index .Spec.Labels "zone"}}"#), "a\n");
        assert_eq!(run("{{.Status.Message}}"), "<no value>\n");
        assert_eq!(run("{{.ManagerStatus.Addr}}"), "10.0.0.1:4242\n");
    }

    #[test]
    fn inspect_default_is_an_indented_array() {
        let out = ok(render_node_inspect(&[worker()], None, false));
        assert!(out.starts_with("[\n    {\n        \"ID\": \"w0rk3rn0d3id0000000000001\",\n        \"Version\": {\n            \"Index\": 10\n        },\n"));
        assert!(out.ends_with("    }\n]\n"));
    }

    #[test]
    fn pretty_matches_dockers_layout() {
        let mut n = leader();
        if let Some(a) = n.spec.as_mut().and_then(|s| s.annotations.as_mut()) {
            a.labels = labels(&[("zone", "a"), ("gpu", "")]);
        }
        if let Some(e) = n.description.as_mut().and_then(|d| d.engine.as_mut()) {
            e.labels = labels(&[("provider", "metal")]);
        }
        let expected: String = [
            "ID:\t\t\tk3n8s2j5d0q9x1m4v7b6c2z8a\n",
            "Labels:\n",
            " - gpu\n",
            " - zone=a\n",
            "Hostname:              \thost1\n",
            "Joined at:             \t2017-05-16 22:52:44.9910662 +0000 utc\n",
            "Status:\n",
            " State:\t\t\tReady\n",
            " Availability:         \tActive\n",
            " Address:\t\t10.0.0.1\n",
            "Manager Status:\n",
            " Address:\t\t10.0.0.1:4242\n",
            " Raft Status:\t\tReachable\n",
            " Leader:\t\tYes\n",
            "Platform:\n",
            " Operating System:\tlinux\n",
            " Architecture:\t\tx86_64\n",
            "Resources:\n",
            " CPUs:\t\t\t4\n",
            " Memory:\t\t7.704GiB\n",
            "Engine Version:\t\t0.1.0\n",
            "Engine Labels:\n",
            " - provider=metal\n",
            "TLS Info:\n",
            " TrustRoot:\n",
            "-----BEGIN CERTIFICATE-----\n",
            "MIIB\n",
            "-----END CERTIFICATE-----\n",
            "\n",
            " Issuer Subject:\tc3ViamVjdA==\n",
            " Issuer Public Key:\ta2V5\n",
        ]
        .concat();
        assert_eq!(node_pretty(&n), expected);
        assert_eq!(ok(render_node_inspect(&[n], None, true)), expected);
    }

    #[test]
    fn pretty_for_a_worker_with_a_status_message_and_no_tls() {
        let mut n = worker();
        n.status = Some(NodeStatus {
            state: NodeState::Down as i32,
            message: "heartbeat failure".to_string(),
            addr: String::new(),
        });
        if let Some(d) = n.description.as_mut() {
            d.tls_info = None;
        }
        let out = node_pretty(&n);
        assert!(out.contains("Status:\n State:\t\t\tDown\n Message:              \tHeartbeat failure\n Availability:         \tActive\nPlatform:\n"));
        assert!(!out.contains("Manager Status"));
        assert!(!out.contains("TLS Info"));
        assert!(out.ends_with("Engine Version:\t\t0.1.0\n"));
    }

    #[test]
    fn pretty_rejects_extra_format_options_like_docker() {
        assert_eq!(
            render_node_inspect(&[worker()], Some("pretty {{.ID}}"), false)
                .map_err(|e| e.to_string()),
            Err("cannot supply extra formatting options to the pretty template".to_string())
        );
        assert_eq!(
            ok(render_node_inspect(&[worker()], Some("pretty"), false)),
            node_pretty(&worker())
        );
    }
}
