//! `rswarm events --filter`: which keys are accepted, what their values may
//! be, and whether an event passes. As Docker: values of one key are
//! alternatives (any may match), different keys must all match.
//!
//! - `type=service|node|task|network|secret|config`, `event=ACTION` and
//!   `scope=swarm|local` match exactly (every event here is `swarm`);
//! - `service=`, `node=`, `network=`, `secret=`, `config=` match an event of
//!   that type whose ID or name starts with the value (Docker's fuzzy
//!   match); `service=` and `node=` also match the events of tasks of that
//!   service or on that node (tasks are events Docker's swarm does not have).
//!
//! Docker's other keys (`container`, `image`, `volume`, `plugin`, `daemon`,
//! `label`) are refused: no event here would carry them.

use std::collections::{BTreeMap, BTreeSet};

use rswarm_proto::control::{Event, EventFilter};

/// Most filters in one request.
pub(crate) const MAX_FILTERS: usize = 64;
/// Longest filter value.
pub(crate) const MAX_FILTER_VALUE: usize = 256;

/// The event types there are.
pub(crate) const TYPES: &[&str] = &["service", "node", "task", "network", "secret", "config"];

/// Keys whose values match an object of their own type by ID or name prefix.
const OBJECT_KEYS: &[&str] = &["service", "node", "network", "secret", "config"];

/// Docker keys that no rswarm event can match.
const UNSUPPORTED: &[&str] = &["container", "image", "volume", "plugin", "daemon", "label"];

/// A refused filter, in words for the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FilterError {
    #[error("too many filters ({0}): at most {MAX_FILTERS}")]
    TooMany(usize),
    #[error("Invalid filter '{0}'")]
    UnknownKey(String),
    #[error("filter '{0}' is not supported by rswarm events: its events are about services, nodes, tasks, networks, secrets and configs")]
    Unsupported(String),
    #[error("invalid filter '{key}={value}': the value is longer than {MAX_FILTER_VALUE} bytes")]
    TooLong { key: String, value: String },
    #[error("invalid filter '{key}={value}': the value is empty")]
    Empty { key: String, value: String },
    #[error("invalid filter 'type={0}': the type must be one of service, node, task, network, secret, config")]
    Type(String),
    #[error("invalid filter 'scope={0}': the scope must be swarm or local")]
    Scope(String),
}

/// A request's filters, checked.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filters {
    by_key: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    /// Checks a request's filters.
    pub(crate) fn parse(filters: &[EventFilter]) -> Result<Filters, FilterError> {
        if filters.len() > MAX_FILTERS {
            return Err(FilterError::TooMany(filters.len()));
        }
        let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in filters {
            let key = f.key.trim().to_ascii_lowercase();
            let value = f.value.clone();
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(FilterError::Unsupported(key));
            }
            let known = matches!(key.as_str(), "type" | "event" | "scope")
                || OBJECT_KEYS.contains(&key.as_str());
            if !known {
                return Err(FilterError::UnknownKey(bounded_key(&f.key)));
            }
            if value.len() > MAX_FILTER_VALUE {
                let value = format!("{}…", value.chars().take(32).collect::<String>());
                return Err(FilterError::TooLong { key, value });
            }
            if value.is_empty() {
                return Err(FilterError::Empty { key, value });
            }
            if key == "type" && !TYPES.contains(&value.as_str()) {
                return Err(FilterError::Type(value));
            }
            if key == "scope" && value != "swarm" && value != "local" {
                return Err(FilterError::Scope(value));
            }
            by_key.entry(key).or_default().insert(value);
        }
        Ok(Filters { by_key })
    }

    /// Whether `event` passes every key.
    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.by_key
            .iter()
            .all(|(key, values)| key_matches(key, values, event))
    }
}

fn bounded_key(key: &str) -> String {
    key.chars().take(64).collect()
}

fn attribute<'a>(event: &'a Event, name: &str) -> &'a str {
    event
        .actor
        .as_ref()
        .and_then(|a| a.attributes.get(name))
        .map_or("", |v| v.as_str())
}

fn actor_id(event: &Event) -> &str {
    event.actor.as_ref().map_or("", |a| a.id.as_str())
}

/// Docker's fuzzy match: a value equal to, or a prefix of, the source.
fn fuzzy(values: &BTreeSet<String>, source: &str) -> bool {
    !source.is_empty() && values.iter().any(|v| source.starts_with(v.as_str()))
}

fn key_matches(key: &str, values: &BTreeSet<String>, event: &Event) -> bool {
    match key {
        "type" => values.contains(&event.r#type),
        "event" => values.contains(&event.action),
        "scope" => values.contains("swarm"),
        _ if event.r#type == key => {
            fuzzy(values, actor_id(event)) || fuzzy(values, attribute(event, "name"))
        }
        "service" | "node" if event.r#type == "task" => {
            fuzzy(values, attribute(event, &format!("{key}.id")))
                || fuzzy(values, attribute(event, &format!("{key}.name")))
        }
        _ => false,
    }
}
