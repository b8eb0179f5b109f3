//! The scheduler against a real one-manager store, with the real
//! orchestrator creating the tasks: where tasks land, and what a task that
//! cannot land says.

use std::collections::{BTreeMap, BTreeSet};

use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, EndpointSpec, NodeRole, Placement, PlacementPreference, PortConfig,
    ReplicatedService, ResourceLimits, ResourceRequirements, Task, TaskState,
};

use crate::objects;
use crate::orchestrator::task;
use crate::orchestrator::testing::{placed, TestSwarm};

fn replicated(replicas: u64) -> Mode {
    Mode::Replicated(ReplicatedService { replicas })
}

fn per_node(tasks: &[Task]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for t in tasks.iter().filter(|t| placed(t)) {
        *out.entry(t.node_id.clone()).or_insert(0) += 1;
    }
    out
}

fn all_placed(n: usize) -> impl FnMut(&[Task]) -> Option<Vec<Task>> {
    move |t: &[Task]| (t.iter().filter(|t| placed(t)).count() == n).then(|| t.to_vec())
}

fn pending_messages(tasks: &[Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| task::state(t) == TaskState::Pending as i32)
        .filter_map(|t| t.status.as_ref().map(|s| s.message.clone()))
        .collect()
}

fn labelled(labels: &[(&str, &str)]) -> impl FnOnce(&mut rswarm_proto::types::Node) {
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |n| {
        if let Some(spec) = n.spec.as_mut() {
            spec.annotations = Some(Annotations {
                name: String::new(),
                labels: labels.into_iter().collect(),
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_replicas_spread_two_per_node() {
    let swarm = TestSwarm::start(5).await;
    for h in ["host1", "host2", "host3"] {
        swarm.add_node(h, |_| {}).await;
    }
    let svc = swarm.create_service("web", replicated(6), |_| {}).await;
    let tasks = swarm.wait_for("6 placed tasks", &svc, all_placed(6)).await;
    let counts: Vec<usize> = per_node(&tasks).into_values().collect();
    assert_eq!(counts, vec![2, 2, 2]);
    for t in &tasks {
        let status = t.status.clone().unwrap_or_default();
        assert_eq!(status.state, TaskState::Assigned as i32);
        assert_eq!(status.message, "scheduler assigned task to node");
    }
    let names: BTreeSet<String> = tasks
        .iter()
        .filter_map(|t| t.annotations.as_ref().map(|a| a.name.clone()))
        .collect();
    assert_eq!(names, (1..=6).map(|i| format!("web.{i}")).collect());
    let m = &swarm.metrics.scheduler;
    assert_eq!(m.scheduled.get(), 6, "every placement counted once");
    assert_eq!(m.latency.count(), 6, "and its pending time observed");
    assert!(m.latency.sum() >= 0.0);
    assert!(m.pending.is_empty(), "nothing left pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_confine_tasks() {
    let swarm = TestSwarm::start(5).await;
    let manager_a = swarm
        .add_node("m1", |n| {
            n.role = NodeRole::Manager as i32;
            labelled(&[("zone", "a")])(n)
        })
        .await;
    let worker_a = swarm.add_node("w1", labelled(&[("zone", "a")])).await;
    let worker_b = swarm.add_node("w2", labelled(&[("zone", "b")])).await;
    let constrained = |c: &[&str]| {
        let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
        move |t: &mut rswarm_proto::types::TaskSpec| {
            t.placement = Some(Placement {
                constraints: c,
                ..Default::default()
            })
        }
    };
    let workers = swarm
        .create_service("w", replicated(4), constrained(&["node.role==worker"]))
        .await;
    let zone_a = swarm
        .create_service("a", replicated(4), constrained(&["node.labels.zone==a"]))
        .await;
    let both = swarm
        .create_service(
            "wa",
            replicated(2),
            constrained(&["node.role==worker", "node.labels.zone==a"]),
        )
        .await;
    let nowhere = swarm
        .create_service("x", replicated(1), constrained(&["node.labels.zone==c"]))
        .await;

    let on = |tasks: &[Task]| per_node(tasks).into_keys().collect::<BTreeSet<_>>();
    let t = swarm
        .wait_for("workers placed", &workers, all_placed(4))
        .await;
    assert_eq!(on(&t), BTreeSet::from([worker_a.clone(), worker_b.clone()]));
    let t = swarm
        .wait_for("zone a placed", &zone_a, all_placed(4))
        .await;
    assert_eq!(
        on(&t),
        BTreeSet::from([manager_a.clone(), worker_a.clone()])
    );
    let t = swarm
        .wait_for("zone a workers placed", &both, all_placed(2))
        .await;
    assert_eq!(on(&t), BTreeSet::from([worker_a.clone()]));
    let t = swarm
        .wait_for("the unsatisfiable task explained", &nowhere, |t| {
            (!pending_messages(t).is_empty()
                && !pending_messages(t).contains(task::PENDING_MESSAGE))
            .then(|| t.to_vec())
        })
        .await;
    assert_eq!(
        pending_messages(&t),
        BTreeSet::from([
            "no suitable node (scheduling constraints not satisfied on 3 nodes)".to_string()
        ])
    );
    let pending = &swarm.metrics.scheduler.pending;
    assert_eq!(
        pending
            .get(&crate::metrics::ReasonLabels {
                reason: "constraints"
            })
            .map(|g| g.get()),
        Some(1),
        "the pending task counted under its reason"
    );
    assert_eq!(pending.len(), 1, "and under no other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_memory_keeps_tasks_pending_with_the_reason() {
    let swarm = TestSwarm::start(5).await;
    for h in ["host1", "host2", "host3"] {
        swarm
            .add_node(h, |n| {
                if let Some(r) = n.description.as_mut().and_then(|d| d.resources.as_mut()) {
                    r.memory_bytes = 1 << 30;
                }
            })
            .await;
    }
    let reserve = |bytes: i64| {
        move |t: &mut rswarm_proto::types::TaskSpec| {
            t.resources = Some(ResourceRequirements {
                limits: None,
                reservations: Some(ResourceLimits {
                    memory_bytes: bytes,
                    ..Default::default()
                }),
            })
        }
    };
    let big = swarm
        .create_service("big", replicated(2), reserve(2 << 30))
        .await;
    let t = swarm
        .wait_for("the reason in the task", &big, |t| {
            (pending_messages(t).len() == 1 && !pending_messages(t).contains(task::PENDING_MESSAGE))
                .then(|| t.to_vec())
        })
        .await;
    let expected = "no suitable node (insufficient memory on 3 nodes)";
    assert_eq!(pending_messages(&t), BTreeSet::from([expected.to_string()]));
    assert!(t.iter().all(|t| t.node_id.is_empty()));
    assert!(t
        .iter()
        .all(|t| t.status.as_ref().map(|s| s.err.as_str()) == Some(expected)));

    // 600 MiB each: one per node fits in 1 GiB, the fourth does not.
    let medium = swarm
        .create_service("medium", replicated(4), reserve(600 << 20))
        .await;
    let t = swarm
        .wait_for("3 placed, one explained", &medium, |t| {
            let explained = pending_messages(t) == BTreeSet::from([expected.to_string()]);
            (explained && t.iter().filter(|t| placed(t)).count() == 3).then(|| t.to_vec())
        })
        .await;
    assert_eq!(per_node(&t).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_replicas_and_host_ports_limit_tasks_per_node() {
    let swarm = TestSwarm::start(5).await;
    swarm.add_node("host1", |_| {}).await;
    swarm.add_node("host2", |_| {}).await;
    let limited = swarm
        .create_service("one-each", replicated(3), |t| {
            t.placement = Some(Placement {
                max_replicas: 1,
                ..Default::default()
            })
        })
        .await;
    let t = swarm
        .wait_for("2 placed, 1 explained", &limited, |t| {
            let msgs = pending_messages(t);
            (t.iter().filter(|t| placed(t)).count() == 2
                && msgs.len() == 1
                && !msgs.contains(task::PENDING_MESSAGE))
            .then(|| t.to_vec())
        })
        .await;
    assert_eq!(
        pending_messages(&t),
        BTreeSet::from([
            "no suitable node (max replicas per node limit exceed on 2 nodes)".to_string()
        ])
    );

    // Host-mode ports: the service's endpoint, as the Control API stores it.
    let svc = {
        let mut s = rswarm_proto::types::Service {
            id: crate::objects::new_id(),
            spec_version: 1,
            ..Default::default()
        };
        s.spec = Some(rswarm_proto::types::ServiceSpec {
            annotations: Some(Annotations {
                name: "hostport".into(),
                ..Default::default()
            }),
            task: Some(Default::default()),
            mode: Some(replicated(3)),
            endpoint: Some(EndpointSpec {
                mode: 0,
                ports: vec![PortConfig {
                    target_port: 80,
                    published_port: 8080,
                    publish_mode: PublishMode::Host as i32,
                    ..Default::default()
                }],
            }),
            ..Default::default()
        });
        s
    };
    swarm
        .store
        .write(vec![objects::put(&svc)])
        .await
        .expect("write service");
    let t = swarm
        .wait_for("2 placed on different nodes, 1 explained", &svc.id, |t| {
            let msgs = pending_messages(t);
            (per_node(t).len() == 2 && msgs.len() == 1 && !msgs.contains(task::PENDING_MESSAGE))
                .then(|| t.to_vec())
        })
        .await;
    assert_eq!(
        pending_messages(&t),
        BTreeSet::from(["no suitable node (host-mode port already in use on 2 nodes)".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_preference_evens_out_label_values() {
    let swarm = TestSwarm::start(5).await;
    let a = swarm.add_node("a1", labelled(&[("zone", "a")])).await;
    let b1 = swarm.add_node("b1", labelled(&[("zone", "b")])).await;
    let b2 = swarm.add_node("b2", labelled(&[("zone", "b")])).await;
    let svc = swarm
        .create_service("web", replicated(6), |t| {
            t.placement = Some(Placement {
                preferences: vec![PlacementPreference {
                    spread_descriptor: "node.labels.zone".into(),
                }],
                ..Default::default()
            })
        })
        .await;
    let t = swarm.wait_for("6 placed", &svc, all_placed(6)).await;
    let on = per_node(&t);
    assert_eq!(on.get(&a).copied(), Some(3), "zone a gets half: {on:?}");
    assert_eq!(
        on.get(&b1).copied().unwrap_or(0) + on.get(&b2).copied().unwrap_or(0),
        3
    );
}
