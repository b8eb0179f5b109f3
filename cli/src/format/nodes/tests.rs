//! Unit tests of `nodes`.

use super::*;
use rswarm_proto::types::{
    Annotations, EngineDescription, ManagerStatus, Meta, NodeSpec, NodeStatus, Platform, Resources,
    Version,
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
            spec_version: None,
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
        render_node_inspect(&[worker()], Some("pretty {{.ID}}"), false).map_err(|e| e.to_string()),
        Err("cannot supply extra formatting options to the pretty template".to_string())
    );
    assert_eq!(
        ok(render_node_inspect(&[worker()], Some("pretty"), false)),
        node_pretty(&worker())
    );
}
