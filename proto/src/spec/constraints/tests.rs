//! Constraint parsing and matching: every operator, key and refusal, and
//! `matches` against nodes (node.ip with addresses and CIDR blocks).

use super::*;
use crate::types::{Annotations, NodeDescription, NodeSpec, NodeStatus, Platform};

fn err(expr: &str) -> String {
    match Constraint::parse(expr) {
        Ok(c) => panic!("{expr}: expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn node() -> Node {
    Node {
        id: "abc".into(),
        spec: Some(NodeSpec {
            annotations: Some(Annotations {
                name: String::new(),
                labels: [("zone".to_string(), "a".to_string())].into(),
            }),
            ..Default::default()
        }),
        description: Some(NodeDescription {
            hostname: "Host1".into(),
            platform: Some(Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addr: "10.77.0.2".into(),
            ..Default::default()
        }),
        role: NodeRole::Worker as i32,
        ..Default::default()
    }
}

fn holds(text: &str) -> bool {
    Constraint::parse(text)
        .map(|c| c.matches(&node()))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn constraints_parse() {
    let c = Constraint::parse("node.role==worker").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.key, c.operator, c.value.as_str()),
        (Key::Role, Operator::Eq, "worker")
    );
    let c = Constraint::parse(" node.labels.zone != b ").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (c.operator, c.to_string()),
        (Operator::Ne, "node.labels.zone!=b".into())
    );
    assert!(Constraint::parse("node.hostname==host2").is_ok());
    assert!(Constraint::parse("node.platform.os==linux").is_ok());
    assert!(Constraint::parse("engine.labels.disk==ssd").is_ok());
    assert!(Constraint::parse("Node.Role==Manager").is_ok());
    assert!(Constraint::parse("node.role==manager").is_ok());
    // Label names keep their case; the rest of the key does not matter.
    let zone = Constraint::parse("Node.Labels.Zone==a").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(zone.key, Key::NodeLabel("Zone".into()));
    assert_eq!(zone.text_key, "Node.Labels.Zone");
}

#[test]
fn constraint_refusals() {
    assert_eq!(
        err("node.role=worker"),
        "constraint expected one operator from ==, !="
    );
    assert_eq!(
        err("node.role>=worker"),
        "constraint expected one operator from ==, !="
    );
    assert_eq!(err("==worker"), "key '' is invalid");
    assert_eq!(err("node.role==wor<ker"), "value 'wor<ker' is invalid");
    assert_eq!(err("node.role=="), "value '' is invalid");
    assert_eq!(
        err("node.colour==red"),
        "unknown constraint key 'node.colour': use node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>"
    );
    assert_eq!(
        err("node.role==boss"),
        "invalid node.role 'boss': must be manager or worker"
    );
    assert_eq!(
        err("node.labels.==x"),
        "key 'node.labels.' is invalid: a label name must follow"
    );
    assert_eq!(
        err("node.ip==notanip"),
        "invalid node.ip 'notanip': must be an IP address or a CIDR block"
    );
    for bad in [
        "",
        "node.role",
        "foo==bar",
        "a==b==c",
        "é==x",
        "node.ip==10.0.0.0/33",
        "node.ip==10.0.0.0/",
    ] {
        assert!(Constraint::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

#[test]
fn docker_constraints_match_nodes() {
    assert!(holds("node.role==worker"));
    assert!(!holds("node.role == manager"));
    assert!(holds("node.labels.zone==a"));
    assert!(holds("node.labels.zone!=b"));
    assert!(!holds("node.labels.rack==1"));
    assert!(holds("node.labels.rack!=1"));
    assert!(holds("node.hostname==host1"));
    assert!(holds("node.id==abc"));
    assert!(holds("node.platform.os==linux"));
    assert!(holds("Node.Platform.Arch==X86_64"));
    assert!(!holds("engine.labels.gpu==true"));
}

#[test]
fn node_ip_matches_an_address_or_a_cidr_block() {
    assert!(holds("node.ip==10.77.0.2"));
    assert!(!holds("node.ip==10.77.0.3"));
    assert!(holds("node.ip==10.77.0.0/24"));
    assert!(holds("node.ip==10.0.0.0/8"));
    assert!(holds("node.ip==0.0.0.0/0"));
    assert!(!holds("node.ip==10.78.0.0/16"));
    assert!(holds("node.ip!=10.78.0.0/16"));
    assert!(!holds("node.ip==fd00::/8"));
    let mut v6 = node();
    if let Some(s) = v6.status.as_mut() {
        s.addr = "fd00::5".into();
    }
    let c = Constraint::parse("node.ip==fd00::/8").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.matches(&v6));
    // A node without an address matches no block.
    assert!(!Constraint::parse("node.ip==0.0.0.0/0")
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(&Node::default()));
}

#[test]
fn preferences() {
    assert_eq!(
        parse_preference("spread=node.labels.zone"),
        Ok(PlacementPreference {
            spread_descriptor: "node.labels.zone".into()
        })
    );
    assert_eq!(
        parse_preference("pack=x").map_err(|e| e.to_string()),
        Err("unsupported placement preference pack (only spread is supported)".into())
    );
    assert_eq!(
        parse_preference("spread").map_err(|e| e.to_string()),
        Err("placement preference must be of the format \"<strategy>=<arg>\"".into())
    );
    assert_eq!(
        parse_preference("spread=node.hostname").map_err(|e| e.to_string()),
        Err("must be node.labels.<name> or engine.labels.<name>".into())
    );
}
