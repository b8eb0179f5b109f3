use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    update_status, Annotations, GlobalService, ManagerStatus, Node, NodeAvailability, NodeSpec,
    NodeState, NodeStatus, ReplicatedService, Service, ServiceSpec, Task, TaskState, TaskStatus,
    UpdateStatus,
};

use super::cluster::ClusterCounts;
use super::*;
use crate::objects;

fn node(id: &str, state: NodeState, availability: NodeAvailability, manager: bool) -> Node {
    Node {
        id: id.into(),
        role: if manager {
            rswarm_proto::types::NodeRole::Manager as i32
        } else {
            rswarm_proto::types::NodeRole::Worker as i32
        },
        spec: Some(NodeSpec {
            availability: availability as i32,
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: state as i32,
            ..Default::default()
        }),
        manager_status: manager.then(|| ManagerStatus {
            raft_id: objects::raft_id_for(id),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(id: &str, name: &str, mode: Mode) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            mode: Some(mode),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, service_id: &str, node_id: &str, state: TaskState) -> Task {
    Task {
        id: id.into(),
        service_id: service_id.into(),
        node_id: node_id.into(),
        desired_state: TaskState::Running as i32,
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The text exposition of one collector under the `rswarm` prefix.
fn scrape(collector: impl Collector) -> String {
    let mut registry = Registry::with_prefix("rswarm");
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    encode(&mut out, &registry).expect("encode");
    out
}

#[derive(Debug)]
struct Counts(ClusterCounts);

impl Collector for Counts {
    fn encode(&self, encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

#[test]
fn the_cluster_view_counts_nodes_replicas_tasks_and_the_leader() {
    let nodes = [
        node("m1", NodeState::Ready, NodeAvailability::Active, true),
        node("w1", NodeState::Ready, NodeAvailability::Drain, false),
        node("w2", NodeState::Down, NodeAvailability::Active, false),
    ];
    let mut web = service(
        "s1",
        "web",
        Mode::Replicated(ReplicatedService { replicas: 3 }),
    );
    web.update_status = Some(UpdateStatus {
        state: update_status::State::Updating as i32,
        ..Default::default()
    });
    let agent = service("s2", "agent", Mode::Global(GlobalService {}));
    let tasks = [
        task("t1", "s1", "m1", TaskState::Running),
        task("t2", "s1", "w1", TaskState::Running),
        // On a Down node: not counted as running, as in `service ls`.
        task("t3", "s1", "w2", TaskState::Running),
        task("t4", "s2", "m1", TaskState::Pending),
    ];
    let counts = ClusterCounts::of(
        &nodes,
        &[web, agent],
        &tasks,
        Some(objects::raft_id_for("m1")),
    );
    let out = scrape(Counts(counts));
    for line in [
        "# HELP rswarm_nodes Nodes in the swarm by status and availability",
        "rswarm_nodes{state=\"ready\",availability=\"active\"} 1",
        "rswarm_nodes{state=\"ready\",availability=\"drain\"} 1",
        "rswarm_nodes{state=\"down\",availability=\"active\"} 1",
        "rswarm_nodes{state=\"disconnected\",availability=\"pause\"} 0",
        "rswarm_managers 1",
        "rswarm_cluster_leader{node_id=\"m1\"} 1",
        "rswarm_service_replicas_desired{service=\"web\",mode=\"replicated\"} 3",
        "rswarm_service_replicas_running{service=\"web\",mode=\"replicated\"} 2",
        "rswarm_service_replicas_desired{service=\"agent\",mode=\"global\"} 1",
        "rswarm_service_replicas_running{service=\"agent\",mode=\"global\"} 0",
        "rswarm_tasks{state=\"running\"} 3",
        "rswarm_tasks{state=\"pending\"} 1",
        "rswarm_tasks{state=\"failed\"} 0",
        "rswarm_orchestrator_rolling_updates{state=\"updating\"} 1",
        "rswarm_orchestrator_rolling_updates{state=\"rollback_paused\"} 0",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(!out.contains("w1\"} 1\nrswarm_cluster_leader"), "{out}");
}

#[test]
fn without_a_manager_the_cluster_view_is_empty() {
    let m = ManagerMetrics::default();
    assert_eq!(scrape(m.cluster.clone()), "# EOF\n");
}

#[test]
fn every_manager_family_is_registered_with_help() {
    let mut registry = Registry::with_prefix("rswarm");
    let m = ManagerMetrics::register(&mut registry);
    m.scheduler.scheduled.inc();
    m.scheduler.latency.observe(0.25);
    m.scheduler.set_pending(&BTreeMap::from([
        ("insufficient_memory", 2),
        ("no_nodes", 1),
    ]));
    m.orchestrator.restarts.inc();
    m.dispatcher.heartbeats_missed.inc();
    m.dispatcher.sent(AssignmentKind::Complete);
    m.dispatcher.sent(AssignmentKind::Incremental);
    m.dispatcher.sent(AssignmentKind::Incremental);
    let session = m.dispatcher.session();
    let mut out = String::new();
    encode(&mut out, &registry).expect("encode");
    for line in [
        "# HELP rswarm_scheduler_tasks_scheduled Tasks the scheduler assigned",
        "rswarm_scheduler_tasks_scheduled_total 1",
        "rswarm_scheduler_scheduling_latency_seconds_count 1",
        "rswarm_scheduler_pending_tasks{reason=\"insufficient_memory\"} 2",
        "rswarm_scheduler_pending_tasks{reason=\"no_nodes\"} 1",
        "rswarm_orchestrator_restarts_total 1",
        "rswarm_dispatcher_sessions 1",
        "rswarm_dispatcher_heartbeats_missed_total 1",
        "rswarm_dispatcher_assignment_messages_total{type=\"complete\"} 1",
        "rswarm_dispatcher_assignment_messages_total{type=\"incremental\"} 2",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    drop(session);
    assert_eq!(
        m.dispatcher.sessions.get(),
        0,
        "a closed session is not counted"
    );
    m.scheduler.set_pending(&BTreeMap::from([("no_nodes", 1)]));
    let mut out = String::new();
    encode(&mut out, &registry).expect("encode");
    assert!(
        !out.contains("insufficient_memory"),
        "a new pass replaces the last:\n{out}"
    );
}
