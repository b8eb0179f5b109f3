//! Turning the store's change stream into Docker-style events. A
//! [`Tracker`] remembers the little of each object an event needs (names,
//! node and task states, a service's image and replicas), so that a change
//! can be told apart as a create, an update worth telling (a node going
//! down, a new service spec, a task starting or dying) or noise (a
//! heartbeat, an allocation, a status message) that gives no event.
//!
//! Events per type, in Docker's words where Docker has them:
//! - `service`: `create`, `update` (when the spec or the rolling update's
//!   state changes; `image.old/new`, `replicas.old/new`,
//!   `updatestate.old/new`), `remove`;
//! - `node`: `create`, `update` (state, availability, role, leader or
//!   reachability changed; `state.old/new`, …), `remove`;
//! - `task` (Docker has none; ours follow its container actions): `create`,
//!   then one per state change: `start` (running), `die` (complete),
//!   `fail` (failed), `stop` (shutdown), `reject`, `orphan`, `update` for
//!   the steps in between, always with `state.old/new`; `remove` when the
//!   task is deleted;
//! - `network`, `secret`, `config`: `create`, `update`, `remove` with the
//!   name only (never a secret's or config's data).
//!
//! Pure: no clock, no store; the caller gives the time.

use std::collections::HashMap;

use prost::Message;
use rswarm_proto::control::{Event, EventActor};
use rswarm_proto::types::{
    service_spec::Mode, update_status::State as UpdateState, Config, Meta, Network, Node,
    NodeAvailability, NodeRole, NodeState, Reachability, Secret, Service, Task, TaskState,
};
use rswarm_raft::Change;

use crate::objects::{KIND_CONFIG, KIND_NETWORK, KIND_NODE, KIND_SECRET, KIND_SERVICE, KIND_TASK};

/// Longest attribute value kept (a task's error message, an image name).
const MAX_ATTRIBUTE: usize = 256;

/// What the tracker remembers of a node.
#[derive(Clone, PartialEq, Eq)]
struct NodeSeen {
    name: String,
    state: i32,
    availability: i32,
    role: i32,
    leader: Option<bool>,
    reachability: Option<i32>,
}

/// What the tracker remembers of a service.
#[derive(Clone)]
struct ServiceSeen {
    name: String,
    image: String,
    replicas: Option<u64>,
    update_state: Option<i32>,
    spec_version: u64,
}

/// What the tracker remembers of a task.
#[derive(Clone)]
struct TaskSeen {
    name: String,
    service_id: String,
    service_name: String,
    node_id: String,
    state: i32,
}

/// What the tracker remembers of a network, secret or config.
#[derive(Clone)]
struct NamedSeen {
    name: String,
    spec_version: u64,
}

/// The event source's memory of the objects it has seen.
#[derive(Default)]
pub(crate) struct Tracker {
    nodes: HashMap<String, NodeSeen>,
    services: HashMap<String, ServiceSeen>,
    tasks: HashMap<String, TaskSeen>,
    named: HashMap<(&'static str, String), NamedSeen>,
}

/// The store kinds that give events, and their event type.
pub(crate) const EVENT_KINDS: &[(&str, &str)] = &[
    (KIND_NODE, "node"),
    (KIND_SERVICE, "service"),
    (KIND_TASK, "task"),
    (KIND_NETWORK, "network"),
    (KIND_SECRET, "secret"),
    (KIND_CONFIG, "config"),
];

/// A proto enum's name as Docker prints it: `NODE_STATE_DOWN` → `down`.
fn lower(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

fn node_state(v: i32) -> String {
    NodeState::try_from(v)
        .map(|s| lower(s.as_str_name(), "NODE_STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn availability(v: i32) -> String {
    NodeAvailability::try_from(v)
        .map(|s| lower(s.as_str_name(), "NODE_AVAILABILITY_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn role(v: i32) -> String {
    NodeRole::try_from(v)
        .map(|s| lower(s.as_str_name(), "NODE_ROLE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn reachability(v: i32) -> String {
    Reachability::try_from(v)
        .map(|s| lower(s.as_str_name(), "REACHABILITY_"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A task state as `service ps` shows it: `running`, `failed`, …
pub(crate) fn task_state(v: i32) -> String {
    TaskState::try_from(v)
        .map(|s| lower(s.as_str_name(), "TASK_STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn update_state(v: i32) -> String {
    UpdateState::try_from(v)
        .map(|s| s.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| "unknown".into())
}

fn bounded(s: &str) -> String {
    if s.len() <= MAX_ATTRIBUTE {
        return s.to_string();
    }
    let mut end = MAX_ATTRIBUTE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn spec_version(meta: Option<&Meta>) -> u64 {
    meta.and_then(|m| m.spec_version.as_ref())
        .map_or(0, |v| v.index)
}

/// A task's action for the state it reached.
fn task_action(state: i32) -> &'static str {
    match TaskState::try_from(state) {
        Ok(TaskState::Running) => "start",
        Ok(TaskState::Complete) => "die",
        Ok(TaskState::Failed) => "fail",
        Ok(TaskState::Shutdown) => "stop",
        Ok(TaskState::Rejected) => "reject",
        Ok(TaskState::Orphaned) => "orphan",
        _ => "update",
    }
}

fn node_seen(n: &Node) -> NodeSeen {
    let spec = n.spec.as_ref();
    let name = spec
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| crate::objects::hostname(n).to_string());
    NodeSeen {
        name,
        state: n.status.as_ref().map_or(0, |s| s.state),
        availability: spec.map_or(0, |s| s.availability),
        role: n.role,
        leader: n.manager_status.as_ref().map(|m| m.leader),
        reachability: n.manager_status.as_ref().map(|m| m.reachability),
    }
}

fn service_seen(s: &Service) -> ServiceSeen {
    let spec = s.spec.as_ref();
    ServiceSeen {
        name: spec
            .and_then(|s| s.annotations.as_ref())
            .map(|a| a.name.clone())
            .unwrap_or_default(),
        image: spec
            .and_then(|s| s.task.as_ref())
            .and_then(|t| t.container.as_ref())
            .map(|c| c.image.clone())
            .unwrap_or_default(),
        replicas: match spec.and_then(|s| s.mode.as_ref()) {
            Some(Mode::Replicated(r)) => Some(r.replicas),
            _ => None,
        },
        update_state: s.update_status.as_ref().map(|u| u.state),
        spec_version: spec_version(s.meta.as_ref()),
    }
}

fn task_seen(t: &Task, services: &HashMap<String, ServiceSeen>) -> TaskSeen {
    let service_name = t
        .service_annotations
        .as_ref()
        .map(|a| a.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| services.get(&t.service_id).map(|s| s.name.clone()))
        .unwrap_or_default();
    let name = if t.slot > 0 {
        format!("{service_name}.{}", t.slot)
    } else {
        format!("{service_name}.{}", t.node_id)
    };
    TaskSeen {
        name,
        service_id: t.service_id.clone(),
        service_name,
        node_id: t.node_id.clone(),
        state: t.status.as_ref().map_or(0, |s| s.state),
    }
}

/// Puts `old`/`new` attributes when a value changed.
fn changed(attrs: &mut HashMap<String, String>, key: &str, old: String, new: String) {
    if old != new {
        attrs.insert(format!("{key}.old"), old);
        attrs.insert(format!("{key}.new"), new);
    }
}

fn event(
    kind: &str,
    action: &str,
    id: &str,
    attributes: HashMap<String, String>,
    change: &Change,
    now: i64,
) -> Event {
    Event {
        r#type: kind.to_string(),
        action: action.to_string(),
        actor: Some(EventActor {
            id: id.to_string(),
            attributes,
        }),
        time_nano: now,
        index: change.index,
    }
}

fn decode<M: Message + Default>(change: &Change, bytes: &[u8]) -> Option<M> {
    match M::decode(bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(kind = %change.kind, id = %change.id, error = %e, "events: undecodable object");
            None
        }
    }
}

impl Tracker {
    /// The event a change makes, if any, remembering what it needs for the
    /// next one. `now`: the event's time (unix nanoseconds).
    pub(crate) fn change(&mut self, change: &Change, now: i64) -> Option<Event> {
        match change.kind.as_str() {
            KIND_NODE => self.node(change, now),
            KIND_SERVICE => self.service(change, now),
            KIND_TASK => self.task(change, now),
            KIND_NETWORK => self.named::<Network>(KIND_NETWORK, "network", change, now),
            KIND_SECRET => self.named::<Secret>(KIND_SECRET, "secret", change, now),
            KIND_CONFIG => self.named::<Config>(KIND_CONFIG, "config", change, now),
            _ => None,
        }
    }

    /// The IDs of every object the tracker remembers of a store kind (to
    /// find the deletions missed while the stream lagged).
    pub(crate) fn ids(&self, kind: &str) -> Vec<String> {
        match kind {
            KIND_NODE => self.nodes.keys().cloned().collect(),
            KIND_SERVICE => self.services.keys().cloned().collect(),
            KIND_TASK => self.tasks.keys().cloned().collect(),
            _ => self
                .named
                .keys()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| id.clone())
                .collect(),
        }
    }

    fn node(&mut self, change: &Change, now: i64) -> Option<Event> {
        let Some(bytes) = &change.value else {
            let old = self.nodes.remove(&change.id)?;
            let attrs = HashMap::from([("name".to_string(), old.name)]);
            return Some(event("node", "remove", &change.id, attrs, change, now));
        };
        let node: Node = decode(change, bytes)?;
        let new = node_seen(&node);
        let old = self.nodes.insert(change.id.clone(), new.clone());
        let mut attrs = HashMap::from([("name".to_string(), new.name.clone())]);
        let Some(old) = old else {
            return Some(event("node", "create", &change.id, attrs, change, now));
        };
        if old == new {
            return None;
        }
        changed(
            &mut attrs,
            "state",
            node_state(old.state),
            node_state(new.state),
        );
        changed(
            &mut attrs,
            "availability",
            availability(old.availability),
            availability(new.availability),
        );
        changed(&mut attrs, "role", role(old.role), role(new.role));
        if let (Some(o), Some(n)) = (old.leader, new.leader) {
            changed(&mut attrs, "leader", o.to_string(), n.to_string());
        }
        if let (Some(o), Some(n)) = (old.reachability, new.reachability) {
            changed(&mut attrs, "reachability", reachability(o), reachability(n));
        }
        Some(event("node", "update", &change.id, attrs, change, now))
    }

    fn service(&mut self, change: &Change, now: i64) -> Option<Event> {
        let Some(bytes) = &change.value else {
            let old = self.services.remove(&change.id)?;
            let attrs = HashMap::from([("name".to_string(), old.name)]);
            return Some(event("service", "remove", &change.id, attrs, change, now));
        };
        let service: Service = decode(change, bytes)?;
        let new = service_seen(&service);
        let old = self.services.insert(change.id.clone(), new.clone());
        let mut attrs = HashMap::from([("name".to_string(), new.name.clone())]);
        let Some(old) = old else {
            return Some(event("service", "create", &change.id, attrs, change, now));
        };
        if old.spec_version == new.spec_version && old.update_state == new.update_state {
            return None;
        }
        changed(
            &mut attrs,
            "image",
            bounded(&old.image),
            bounded(&new.image),
        );
        if let (Some(o), Some(n)) = (old.replicas, new.replicas) {
            changed(&mut attrs, "replicas", o.to_string(), n.to_string());
        }
        match (old.update_state, new.update_state) {
            (None, Some(n)) => {
                attrs.insert("updatestate.new".into(), update_state(n));
            }
            (Some(o), Some(n)) => {
                changed(&mut attrs, "updatestate", update_state(o), update_state(n))
            }
            _ => {}
        }
        Some(event("service", "update", &change.id, attrs, change, now))
    }

    fn task(&mut self, change: &Change, now: i64) -> Option<Event> {
        let Some(bytes) = &change.value else {
            let old = self.tasks.remove(&change.id)?;
            let attrs = self.task_attributes(&old);
            return Some(event("task", "remove", &change.id, attrs, change, now));
        };
        let task: Task = decode(change, bytes)?;
        let new = task_seen(&task, &self.services);
        let old = self.tasks.insert(change.id.clone(), new.clone());
        let mut attrs = self.task_attributes(&new);
        let Some(old) = old else {
            attrs.insert("state.new".into(), task_state(new.state));
            return Some(event("task", "create", &change.id, attrs, change, now));
        };
        if old.state == new.state {
            return None;
        }
        changed(
            &mut attrs,
            "state",
            task_state(old.state),
            task_state(new.state),
        );
        let status = task.status.as_ref();
        let ended = matches!(
            TaskState::try_from(new.state),
            Ok(TaskState::Complete | TaskState::Failed | TaskState::Rejected)
        );
        if ended {
            if let Some(c) = status.and_then(|s| s.container_status.as_ref()) {
                attrs.insert("exitCode".into(), c.exit_code.to_string());
            }
            if let Some(err) = status.map(|s| s.err.as_str()).filter(|e| !e.is_empty()) {
                attrs.insert("error".into(), bounded(err));
            }
        }
        Some(event(
            "task",
            task_action(new.state),
            &change.id,
            attrs,
            change,
            now,
        ))
    }

    /// A task's attributes: its name (`web.1`), its service's name and ID,
    /// and its node's ID and name once it has one.
    fn task_attributes(&self, t: &TaskSeen) -> HashMap<String, String> {
        let mut attrs = HashMap::from([
            ("name".to_string(), t.name.clone()),
            ("service.name".to_string(), t.service_name.clone()),
            ("service.id".to_string(), t.service_id.clone()),
        ]);
        if !t.node_id.is_empty() {
            attrs.insert("node.id".into(), t.node_id.clone());
            if let Some(n) = self.nodes.get(&t.node_id) {
                attrs.insert("node.name".into(), n.name.clone());
            }
        }
        attrs
    }

    fn named<M>(&mut self, kind: &'static str, ty: &str, change: &Change, now: i64) -> Option<Event>
    where
        M: Message + Default + crate::objects::Object,
        M::Spec: NamedSpec,
    {
        let key = (kind, change.id.clone());
        let Some(bytes) = &change.value else {
            let old = self.named.remove(&key)?;
            let attrs = HashMap::from([("name".to_string(), old.name)]);
            return Some(event(ty, "remove", &change.id, attrs, change, now));
        };
        let object: M = decode(change, bytes)?;
        let new = NamedSeen {
            name: object
                .spec()
                .map(|s| s.name().to_string())
                .unwrap_or_default(),
            spec_version: spec_version(object.meta()),
        };
        let old = self.named.insert(key, new.clone());
        let attrs = HashMap::from([("name".to_string(), new.name.clone())]);
        match old {
            None => Some(event(ty, "create", &change.id, attrs, change, now)),
            Some(o) if o.spec_version != new.spec_version || o.name != new.name => {
                Some(event(ty, "update", &change.id, attrs, change, now))
            }
            Some(_) => None,
        }
    }
}

/// The name in a network's, secret's or config's spec.
pub(crate) trait NamedSpec {
    fn name(&self) -> &str;
}

macro_rules! named_spec {
    ($($ty:ty),*) => {$(
        impl NamedSpec for $ty {
            fn name(&self) -> &str {
                self.annotations.as_ref().map_or("", |a| a.name.as_str())
            }
        }
    )*};
}

named_spec!(
    rswarm_proto::types::NetworkSpec,
    rswarm_proto::types::SecretSpec,
    rswarm_proto::types::ConfigSpec
);
