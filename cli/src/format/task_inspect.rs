//! `rswarm inspect TASK`: a task as `docker inspect` shows one (ID, Version,
//! CreatedAt, UpdatedAt, Labels, Spec, ServiceID, Slot, NodeID, Status with
//! its ContainerStatus, DesiredState, NetworksAttachments), plus what
//! Docker keeps only on the container: `Status.Health` (`Status`
//! starting/healthy/unhealthy, `FailingStreak`, and `Log` with the last
//! probe's `Output`), present when the task has a health check.

use rswarm_proto::types::{Task, TaskState};
use serde_json::{json, Map, Value};

use super::humanize::rfc3339_nano;
use super::services::task_template_json;
use super::tasks::task_state_word;

fn state_word(state: i32) -> &'static str {
    task_state_word(TaskState::try_from(state).unwrap_or_default())
}

/// One task in Docker's `inspect` shape (see the module docs).
pub fn task_inspect_json(t: &Task) -> Value {
    let meta = t.meta.unwrap_or_default();
    let mut o = Map::new();
    o.insert("ID".into(), t.id.clone().into());
    o.insert(
        "Version".into(),
        json!({"Index": meta.version.map(|v| v.index).unwrap_or(0)}),
    );
    o.insert("CreatedAt".into(), rfc3339_nano(meta.created_at).into());
    o.insert("UpdatedAt".into(), rfc3339_nano(meta.updated_at).into());
    let labels: Map<String, Value> = t
        .annotations
        .as_ref()
        .map(|a| {
            a.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect()
        })
        .unwrap_or_default();
    o.insert("Labels".into(), Value::Object(labels));
    o.insert(
        "Spec".into(),
        t.spec
            .as_ref()
            .map(task_template_json)
            .unwrap_or_else(|| json!({})),
    );
    o.insert("ServiceID".into(), t.service_id.clone().into());
    if t.slot != 0 {
        o.insert("Slot".into(), t.slot.into());
    }
    if !t.node_id.is_empty() {
        o.insert("NodeID".into(), t.node_id.clone().into());
    }
    o.insert("Status".into(), status_json(t));
    o.insert("DesiredState".into(), state_word(t.desired_state).into());
    if !t.networks.is_empty() {
        let nets: Vec<Value> = t
            .networks
            .iter()
            .map(|n| json!({"Network": {"ID": n.network_id}, "Addresses": n.addresses}))
            .collect();
        o.insert("NetworksAttachments".into(), nets.into());
    }
    Value::Object(o)
}

fn status_json(t: &Task) -> Value {
    let s = t.status.clone().unwrap_or_default();
    let mut o = Map::new();
    o.insert("Timestamp".into(), rfc3339_nano(s.timestamp).into());
    o.insert("State".into(), state_word(s.state).into());
    o.insert("Message".into(), s.message.clone().into());
    if !s.err.is_empty() {
        o.insert("Err".into(), s.err.clone().into());
    }
    if let Some(c) = &s.container_status {
        o.insert(
            "ContainerStatus".into(),
            json!({"ContainerID": c.container_id, "PID": c.pid, "ExitCode": c.exit_code}),
        );
    }
    o.insert("PortStatus".into(), json!({}));
    if !s.health.is_empty() {
        o.insert(
            "Health".into(),
            json!({
                "Status": s.health,
                "FailingStreak": s.health_failing_streak,
                "Log": if s.health_output.is_empty() { json!([]) } else { json!([{"Output": s.health_output}]) },
            }),
        );
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{ContainerStatus, TaskStatus};

    #[test]
    fn a_checked_task_shows_its_health() {
        let t = Task {
            id: "t1".into(),
            service_id: "s1".into(),
            slot: 2,
            node_id: "n1".into(),
            desired_state: TaskState::Running as i32,
            status: Some(TaskStatus {
                state: TaskState::Running as i32,
                message: "started".into(),
                container_status: Some(ContainerStatus {
                    container_id: "t1".into(),
                    pid: 42,
                    ..Default::default()
                }),
                health: "healthy".into(),
                health_output: "ok\n".into(),
                health_failing_streak: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = task_inspect_json(&t);
        assert_eq!(v["Status"]["State"], "running");
        assert_eq!(v["DesiredState"], "running");
        assert_eq!(v["Slot"], 2);
        assert_eq!(v["Status"]["ContainerStatus"]["PID"], 42);
        assert_eq!(v["Status"]["Health"]["Status"], "healthy");
        assert_eq!(v["Status"]["Health"]["FailingStreak"], 1);
        assert_eq!(v["Status"]["Health"]["Log"][0]["Output"], "ok\n");
        assert!(v["Status"].get("Err").is_none());

        let plain = task_inspect_json(&Task::default());
        assert!(
            plain["Status"].get("Health").is_none(),
            "no check, no Health"
        );
    }
}
