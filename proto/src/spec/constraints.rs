//! Placement: constraints (`node.role==worker`, `node.labels.zone!=b`,
//! `node.ip==10.0.0.0/8`) and preferences (`spread=node.labels.zone`). One
//! parser: the CLI and the control API refuse what it refuses, the scheduler
//! and the global orchestrator match nodes with what it returns.
//!
//! The syntax is swarmkit's: `<key>==<value>` or `<key>!=<value>`, where the
//! key is one of `node.id`, `node.hostname`, `node.role`, `node.ip`,
//! `node.platform.os`, `node.platform.arch`, `node.labels.<label>` (set with
//! `node update --label-add`) or `engine.labels.<label>` (the daemon's own).
//! Keys are read without regard to case except a label's name; values
//! compare without regard to case, and a label a node does not have compares
//! as the empty string. `node.role` is `manager` or `worker`; `node.ip` is an
//! address or a CIDR block, which matches every node address inside it.

use std::fmt;
use std::net::IpAddr;

use crate::types::{Node, NodeRole, PlacementPreference};

use super::ValueError;

/// The two operators, in the order swarmkit tries them.
const OPERATORS: [(&str, Operator); 2] = [("==", Operator::Eq), ("!=", Operator::Ne)];

/// The keys a constraint may test, besides `node.labels.*` and `engine.labels.*`.
const NODE_KEYS: [&str; 6] = [
    "node.id",
    "node.hostname",
    "node.role",
    "node.ip",
    "node.platform.os",
    "node.platform.arch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
}

/// What a constraint (or a `spread=` preference) looks at on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Id,
    Hostname,
    Role,
    Ip,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

impl Key {
    /// Parses a key (`node.labels.zone`, `Node.Hostname`, …); also the
    /// descriptor of a `spread=` placement preference.
    pub fn parse(raw: &str) -> Result<Key, ValueError> {
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
                    return Err(ValueError(format!(
                        "unknown constraint key '{raw}': use {}, node.labels.<name> or engine.labels.<name>",
                        NODE_KEYS.join(", ")
                    )));
                }
            }
        };
        if matches!(&key, Key::NodeLabel(l) | Key::EngineLabel(l) if l.is_empty()) {
            return Err(ValueError(format!(
                "key '{raw}' is invalid: a label name must follow"
            )));
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

/// One parsed constraint: `key op value`, with the key as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub text_key: String,
    pub key: Key,
    pub operator: Operator,
    pub value: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Eq => "==",
            Operator::Ne => "!=",
        };
        write!(f, "{}{op}{}", self.text_key, self.value)
    }
}

/// swarmkit's key pattern: a letter or `_`, then letters, digits, `-_.`.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// swarmkit's value pattern: no characters that are (or may become) operators.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c)
        })
}

/// An IP block: an address (a block of one) or `address/prefix`.
fn parse_ip_block(value: &str) -> Option<(IpAddr, u32)> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
        None => max,
    };
    (prefix <= max).then_some((addr, prefix))
}

/// Whether `addr` lies in the block `(net, prefix)`.
fn in_block(addr: IpAddr, (net, prefix): (IpAddr, u32)) -> bool {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ((a, a_len), (n, n_len)) = (bits(addr), bits(net));
    if a_len != n_len {
        return false;
    }
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    a & mask == n & mask
}

impl Constraint {
    /// Parses `key==value` or `key!=value` (blanks around key and value are
    /// dropped), refusing what swarmkit refuses in its words, keys the
    /// scheduler would not know and values a key can never have.
    pub fn parse(expr: &str) -> Result<Constraint, ValueError> {
        let (op_text, operator) = OPERATORS
            .iter()
            .find(|(op, _)| expr.contains(op))
            .copied()
            .ok_or_else(|| ValueError::new("constraint expected one operator from ==, !="))?;
        let (text_key, value) = expr
            .split_once(op_text)
            .ok_or_else(|| ValueError(format!("invalid expr: {expr}")))?;
        let (text_key, value) = (text_key.trim(), value.trim());
        if !valid_key(text_key) {
            return Err(ValueError(format!("key '{text_key}' is invalid")));
        }
        if !valid_value(value) {
            return Err(ValueError(format!("value '{value}' is invalid")));
        }
        let key = Key::parse(text_key)?;
        match key {
            Key::Role if !matches!(value.to_ascii_lowercase().as_str(), "manager" | "worker") => {
                return Err(ValueError(format!(
                    "invalid node.role '{value}': must be manager or worker"
                )))
            }
            Key::Ip if parse_ip_block(value).is_none() => {
                return Err(ValueError(format!(
                    "invalid node.ip '{value}': must be an IP address or a CIDR block"
                )))
            }
            _ => {}
        }
        Ok(Constraint {
            text_key: text_key.to_string(),
            key,
            operator,
            value: value.to_string(),
        })
    }

    /// Parses every constraint; the first that does not parse is the error.
    pub fn parse_all(texts: &[String]) -> Result<Vec<Constraint>, ValueError> {
        texts.iter().map(|t| Constraint::parse(t)).collect()
    }

    /// Whether `node` satisfies this constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let actual = self.key.value_of(node);
        let equal = match self.key {
            Key::Ip => {
                let addr = actual.parse::<IpAddr>().ok();
                match (addr, parse_ip_block(&self.value)) {
                    (Some(a), Some(block)) => in_block(a, block),
                    _ => false,
                }
            }
            _ => actual.eq_ignore_ascii_case(&self.value),
        };
        match self.operator {
            Operator::Eq => equal,
            Operator::Ne => !equal,
        }
    }

    /// Whether `node` satisfies every constraint.
    pub fn all_match(constraints: &[Constraint], node: &Node) -> bool {
        constraints.iter().all(|c| c.matches(node))
    }
}

/// `spread=node.labels.zone`, the one strategy swarmkit has.
pub fn parse_preference(value: &str) -> Result<PlacementPreference, ValueError> {
    let (strategy, arg) = value
        .split_once('=')
        .filter(|(s, _)| !s.is_empty())
        .ok_or_else(|| {
            ValueError::new("placement preference must be of the format \"<strategy>=<arg>\"")
        })?;
    if strategy != "spread" {
        return Err(ValueError(format!(
            "unsupported placement preference {strategy} (only spread is supported)"
        )));
    }
    check_spread_descriptor(arg)?;
    Ok(PlacementPreference {
        spread_descriptor: arg.to_string(),
    })
}

/// What `spread=` may spread over: a node or engine label.
pub fn check_spread_descriptor(descriptor: &str) -> Result<(), ValueError> {
    match Key::parse(descriptor) {
        Ok(Key::NodeLabel(_) | Key::EngineLabel(_)) => Ok(()),
        _ => Err(ValueError::new(
            "must be node.labels.<name> or engine.labels.<name>",
        )),
    }
}

#[cfg(test)]
mod tests;
