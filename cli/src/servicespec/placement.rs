//! Placement: constraints (`node.role==worker`, `node.labels.zone!=b`) and
//! preferences (`spread=node.labels.zone`). The syntax is swarmkit's; the
//! keys are the ones rswarm's scheduler knows, and anything else is refused
//! here rather than silently matching no node.

use std::fmt;

use rswarm_proto::types::PlacementPreference;

use super::ValueError;

/// The two operators, in the order swarmkit tries them.
const OPERATORS: [(&str, Operator); 2] = [("==", Operator::Eq), ("!=", Operator::Ne)];

/// The keys a constraint may test, besides `node.labels.*` and `engine.labels.*`.
const NODE_KEYS: [&str; 5] = [
    "node.id",
    "node.hostname",
    "node.role",
    "node.platform.os",
    "node.platform.arch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
}

/// One parsed constraint: `key op value`. Keys match case-insensitively
/// except a label's name (`node.labels.Zone`), which is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub operator: Operator,
    pub value: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Eq => "==",
            Operator::Ne => "!=",
        };
        write!(f, "{}{op}{}", self.key, self.value)
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

impl Constraint {
    /// Parses `key==value` or `key!=value` (blanks around key and value are
    /// dropped), refusing what swarmkit refuses in its words, and keys the
    /// scheduler would not know.
    pub fn parse(expr: &str) -> Result<Constraint, ValueError> {
        let (op_text, operator) = OPERATORS
            .iter()
            .find(|(op, _)| expr.contains(op))
            .copied()
            .ok_or_else(|| ValueError::new("constraint expected one operator from ==, !="))?;
        let (key, value) = expr
            .split_once(op_text)
            .ok_or_else(|| ValueError(format!("invalid expr: {expr}")))?;
        let (key, value) = (key.trim(), value.trim());
        if !valid_key(key) {
            return Err(ValueError(format!("key '{key}' is invalid")));
        }
        if !valid_value(value) {
            return Err(ValueError(format!("value '{value}' is invalid")));
        }
        let lower = key.to_ascii_lowercase();
        let label = ["node.labels.", "engine.labels."]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix));
        match label {
            Some("") => {
                return Err(ValueError(format!(
                    "key '{key}' is invalid: a label name must follow"
                )))
            }
            Some(_) => {}
            None if NODE_KEYS.contains(&lower.as_str()) => {}
            None => {
                return Err(ValueError(format!(
                    "unknown constraint key '{key}': use {}, node.labels.<name> or engine.labels.<name>",
                    NODE_KEYS.join(", ")
                )))
            }
        }
        if lower == "node.role"
            && !matches!(value.to_ascii_lowercase().as_str(), "manager" | "worker")
        {
            return Err(ValueError(format!(
                "invalid node.role '{value}': must be manager or worker"
            )));
        }
        Ok(Constraint {
            key: key.to_string(),
            operator,
            value: value.to_string(),
        })
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
    let lower = descriptor.to_ascii_lowercase();
    let label = ["node.labels.", "engine.labels."]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix));
    match label {
        Some(l) if !l.is_empty() => Ok(()),
        _ => Err(ValueError::new(
            "must be node.labels.<name> or engine.labels.<name>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(expr: &str) -> String {
        match Constraint::parse(expr) {
            Ok(c) => panic!("{expr}: expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn constraints_parse() {
        assert_eq!(
            Constraint::parse("node.role==worker"),
            Ok(Constraint {
                key: "node.role".into(),
                operator: Operator::Eq,
                value: "worker".into()
            })
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
        // Label names keep their case; the rest of the key does not matter.
        let zone = Constraint::parse("Node.Labels.Zone==a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(zone.key, "Node.Labels.Zone");
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
            "unknown constraint key 'node.colour': use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>"
        );
        assert_eq!(
            err("node.role==boss"),
            "invalid node.role 'boss': must be manager or worker"
        );
        assert_eq!(
            err("node.labels.==x"),
            "key 'node.labels.' is invalid: a label name must follow"
        );
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
}
