//! What the dashboard shows, as one JSON document read from this manager's
//! copy of the store: nodes (state, availability, role, resources, manager
//! reachability), services (mode, desired and running replicas, update
//! state), the live tasks on each node, and Raft health. Nodes come through
//! the Control API's own listing (decorated with the live Raft view) and
//! services and tasks through the same reads and redaction it answers with.

use std::collections::HashMap;

use rswarm_proto::control::control_server::Control;
use rswarm_proto::control::{ListNodesRequest, ListTasksRequest};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{
    Node, NodeAvailability, NodeRole, NodeState, Reachability, Service, Task, TaskState,
};
use rswarm_raft::Store;
use serde_json::{json, Value};

use crate::controlapi::{redact, services, ControlApi};
use crate::objects;

/// Every node, through the Control API's paged listing.
pub(crate) async fn nodes(store: &Store) -> Result<Vec<Node>, tonic::Status> {
    let control = ControlApi::new(store.clone());
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = control
            .list_nodes(tonic::Request::new(ListNodesRequest { page_token }))
            .await?
            .into_inner();
        out.extend(page.nodes);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// A protobuf enum's name without its prefix, lower case (`TASK_STATE_RUNNING` → `running`).
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn task_state(t: &Task) -> i32 {
    t.status.as_ref().map_or(0, |s| s.state)
}

fn task_state_name(state: i32) -> String {
    TaskState::try_from(state)
        .map(|s| short(s.as_str_name(), "TASK_STATE_"))
        .unwrap_or_else(|_| "unknown".into())
}

fn node_json(n: &Node) -> Value {
    let spec = n.spec.clone().unwrap_or_default();
    let desc = n.description.clone().unwrap_or_default();
    let res = desc.resources.unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    let manager = n.manager_status.as_ref().map(|m| {
        json!({
            "leader": m.leader,
            "reachability": Reachability::try_from(m.reachability)
                .map(|r| short(r.as_str_name(), "REACHABILITY_"))
                .unwrap_or_else(|_| "unknown".into()),
            "addr": m.addr,
        })
    });
    json!({
        "id": n.id,
        "hostname": desc.hostname,
        "role": if n.role == NodeRole::Manager as i32 { "manager" } else { "worker" },
        "state": NodeState::try_from(status.state)
            .map(|s| short(s.as_str_name(), "NODE_STATE_"))
            .unwrap_or_else(|_| "unknown".into()),
        "addr": status.addr,
        "availability": NodeAvailability::try_from(spec.availability)
            .map(|a| short(a.as_str_name(), "NODE_AVAILABILITY_"))
            .unwrap_or_else(|_| "unknown".into()),
        "nano_cpus": res.nano_cpus,
        "memory_bytes": res.memory_bytes,
        "engine_version": desc.engine.map(|e| e.engine_version).unwrap_or_default(),
        "manager": manager,
    })
}

fn service_json(s: &Service, tasks: &[&Task]) -> Value {
    let spec = s.spec.clone().unwrap_or_default();
    let live: Vec<&&Task> = tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running as i32)
        .collect();
    let running = live
        .iter()
        .filter(|t| task_state(t) == TaskState::Running as i32)
        .count();
    let (mode, desired) = match &spec.mode {
        Some(Mode::Replicated(r)) => ("replicated", r.replicas),
        Some(Mode::Global(_)) => ("global", live.len() as u64),
        Some(Mode::ReplicatedJob(j)) => ("replicated-job", j.total_completions),
        Some(Mode::GlobalJob(_)) => ("global-job", live.len() as u64),
        None => ("", 0),
    };
    let image = spec
        .task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .map(|c| c.image.clone())
        .unwrap_or_default();
    let update = s.update_status.as_ref().map(|u| {
        json!({
            "state": UpdateState::try_from(u.state)
                .map(|st| st.as_str_name().to_ascii_lowercase())
                .unwrap_or_else(|_| "unknown".into()),
            "message": u.message,
        })
    });
    json!({
        "id": s.id,
        "name": objects::service_name(s),
        "image": image,
        "mode": mode,
        "desired": desired,
        "running": running,
        "update": update,
        "can_rollback": s.previous_spec.is_some(),
        "force_update": spec.task.as_ref().map_or(0, |t| t.force_update),
    })
}

fn task_json(t: &Task, service_names: &HashMap<&str, &str>) -> Value {
    let status = t.status.clone().unwrap_or_default();
    let service = service_names
        .get(t.service_id.as_str())
        .copied()
        .unwrap_or_default();
    json!({
        "id": t.id,
        "name": if t.slot > 0 { format!("{service}.{}", t.slot) } else { service.to_string() },
        "service_id": t.service_id,
        "node_id": t.node_id,
        "state": task_state_name(status.state),
        "desired_state": task_state_name(t.desired_state),
        "message": if status.err.is_empty() { status.message } else { status.err },
        "health": status.health,
    })
}

fn raft_json(store: &Store, nodes: &[Node]) -> Value {
    let status = store.status();
    let managers: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.manager_status.is_some())
        .collect();
    let reachable = managers
        .iter()
        .filter(|n| {
            n.manager_status.as_ref().map(|m| m.reachability)
                == Some(Reachability::Reachable as i32)
        })
        .count();
    let leader = managers
        .iter()
        .find(|n| n.manager_status.as_ref().is_some_and(|m| m.leader))
        .map(|n| {
            n.description
                .as_ref()
                .map(|d| d.hostname.clone())
                .unwrap_or_default()
        });
    json!({
        "state": status.state,
        "term": status.term,
        "leader": leader,
        "last_log_index": status.last_log_index,
        "last_applied": status.last_applied,
        "voters": status.voters.len(),
        "managers": managers.len(),
        "managers_reachable": reachable,
    })
}

/// The whole dashboard state now. Tasks are those not yet shut down or
/// wanted to run (what `service ps` shows first), grouped per node.
pub(crate) async fn snapshot(store: &Store) -> Result<Value, tonic::Status> {
    let nodes = nodes(store).await?;
    let services: Vec<Service> = objects::list::<Service>(store)?
        .into_iter()
        .map(redact::service)
        .collect();
    let tasks: Vec<Task> = services::list_tasks(store, &ListTasksRequest::default())?
        .into_iter()
        .map(redact::task)
        .collect();
    let names: HashMap<&str, &str> = services
        .iter()
        .map(|s| (s.id.as_str(), objects::service_name(s)))
        .collect();
    let mut by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
    for t in &tasks {
        by_service.entry(t.service_id.as_str()).or_default().push(t);
    }
    let mut services_json: Vec<Value> = services
        .iter()
        .map(|s| service_json(s, by_service.get(s.id.as_str()).map_or(&[], |v| v)))
        .collect();
    services_json.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut nodes_json: Vec<Value> = nodes.iter().map(node_json).collect();
    nodes_json.sort_by(|a, b| a["hostname"].as_str().cmp(&b["hostname"].as_str()));
    let mut tasks_json: Vec<Value> = tasks
        .iter()
        .filter(|t| {
            t.desired_state <= TaskState::Running as i32
                || task_state(t) <= TaskState::Running as i32
        })
        .map(|t| task_json(t, &names))
        .collect();
    tasks_json.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({
        "raft": raft_json(store, &nodes),
        "nodes": nodes_json,
        "services": services_json,
        "tasks": tasks_json,
        "now": objects::now_nanos() / 1_000_000,
    }))
}
