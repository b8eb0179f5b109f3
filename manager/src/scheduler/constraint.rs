//! Placement constraints as Docker writes them: `<key>==<value>` or
//! `<key>!=<value>`, where the key is one of `node.id`, `node.hostname`,
//! `node.role`, `node.ip`, `node.platform.os`, `node.platform.arch`,
//! `node.labels.<label>` (labels set with `node update --label-add`) or
//! `engine.labels.<label>` (the daemon's own labels). As in swarmkit, values
//! compare without regard to case, label names exactly, and a label a node
//! does not have compares as the empty string.
//!
//! Refusing malformed constraints is the Control API's job; here one that
//! does not parse simply matches no node (the scheduler explains it as
//! "scheduling constraints not satisfied"). Used by the scheduler's filter
//! and by the global orchestrator to pick eligible nodes.

use rswarm_proto::types::{Node, NodeRole};

/// `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Eq,
    Ne,
}

/// What a constraint looks at on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Id,
    Hostname,
    Role,
    Ip,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

impl Key {
    /// Parses a key (`node.labels.zone`, `node.hostname`, …); also the
    /// descriptor of a `spread=` placement preference.
    pub fn parse(raw: &str) -> Result<Key, String> {
        let raw = raw.trim();
        let key = match raw.to_ascii_lowercase().as_str() {
            "node.id" => Key::Id,
            "node.hostname" => Key::Hostname,
            "node.role" => Key::Role,
            "node.ip" => Key::Ip,
            "node.platform.os" => Key::Os,
            "node.platform.arch" => Key::Arch,
            _ => {
                if let Some(label) = strip_prefix_ignore_case(raw, "node.labels.") {
                    Key::NodeLabel(label.to_string())
                } else if let Some(label) = strip_prefix_ignore_case(raw, "engine.labels.") {
                    Key::EngineLabel(label.to_string())
                } else {
                    return Err(format!(
                        "unknown key {raw:?} (expected node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>)"
                    ));
                }
            }
        };
        if matches!(&key, Key::NodeLabel(l) | Key::EngineLabel(l) if l.is_empty()) {
            return Err(format!("{raw:?} names no label"));
        }
        Ok(key)
    }

    /// The node's value for this key ("" for a label it does not have).
    pub fn value_of(&self, node: &Node) -> String {
        let desc = node.description.as_ref();
        let platform = desc.and_then(|d| d.platform.as_ref());
        match self {
            Key::Id => node.id.clone(),
            Key::Hostname => desc.map(|d| d.hostname.clone()).unwrap_or_default(),
            Key::Role => {
                if node.role == NodeRole::Manager as i32 {
                    "manager".into()
                } else {
                    "worker".into()
                }
            }
            Key::Ip => node
                .status
                .as_ref()
                .map(|s| s.addr.clone())
                .unwrap_or_default(),
            Key::Os => platform.map(|p| p.os.clone()).unwrap_or_default(),
            Key::Arch => platform.map(|p| p.architecture.clone()).unwrap_or_default(),
            Key::NodeLabel(label) => node
                .spec
                .as_ref()
                .and_then(|s| s.annotations.as_ref())
                .and_then(|a| a.labels.get(label))
                .cloned()
                .unwrap_or_default(),
            Key::EngineLabel(label) => desc
                .and_then(|d| d.engine.as_ref())
                .and_then(|e| e.labels.get(label))
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// One parsed constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Constraint {
    pub key: Key,
    pub op: Operator,
    pub value: String,
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl Constraint {
    /// Parses `key==value` or `key!=value`.
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let (at, op) = match (text.find("=="), text.find("!=")) {
            (Some(e), Some(n)) if n < e => (n, Operator::Ne),
            (Some(e), _) => (e, Operator::Eq),
            (None, Some(n)) => (n, Operator::Ne),
            (None, None) => {
                return Err(format!(
                    "constraint {text:?} has no operator (use == or !=)"
                ))
            }
        };
        let raw_key = text[..at].trim();
        let value = text[at + 2..].trim();
        if value.is_empty() {
            return Err(format!("constraint {text:?} has no value"));
        }
        if value.contains("==") || value.contains("!=") {
            return Err(format!("constraint {text:?} has more than one operator"));
        }
        let key = Key::parse(raw_key).map_err(|e| format!("constraint {text:?}: {e}"))?;
        Ok(Constraint {
            key,
            op,
            value: value.to_string(),
        })
    }

    /// Parses every constraint; the first that does not parse is the error.
    pub fn parse_all(texts: &[String]) -> Result<Vec<Constraint>, String> {
        texts.iter().map(|t| Constraint::parse(t)).collect()
    }

    /// Whether `node` satisfies this constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let actual = self.key.value_of(node);
        let equal = actual.eq_ignore_ascii_case(&self.value);
        match self.op {
            Operator::Eq => equal,
            Operator::Ne => !equal,
        }
    }

    /// Whether `node` satisfies every constraint.
    pub fn all_match(constraints: &[Constraint], node: &Node) -> bool {
        constraints.iter().all(|c| c.matches(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Annotations, NodeDescription, NodeSpec, Platform};

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
    fn malformed_constraints_are_errors_not_panics() {
        for bad in [
            "",
            "node.role",
            "node.role==",
            "foo==bar",
            "node.labels.==x",
            "a==b==c",
            "é==x",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
