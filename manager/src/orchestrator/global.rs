//! Global services: one live task on every eligible node.
//!
//! A node is eligible when it passes the service's placement constraints
//! and platforms and is neither drained nor Down. New tasks go only to
//! eligible nodes that are Active and Ready (or have not sent their first
//! heartbeat yet: the scheduler holds such a task until the node is Ready);
//! a paused node keeps what it runs but gets nothing new. A node that joins
//! later gets its task as soon as it appears; drained, Down, removed or no
//! longer matching nodes have their tasks shut down (a node that comes back
//! gets a new one).
//!
//! Global tasks are created with their node preset (slot 0). The scheduler
//! still checks them against that node (readiness, resources, host ports)
//! before assigning them, exactly like swarmkit.

use std::collections::HashMap;

use rswarm_proto::types::{Node, NodeState, Service, Task, TaskState};

use super::plan::{Plan, Slot};
use super::restart::{Clock, RestartSupervisor, SlotKey};
use super::task;
use super::update::{self, Rollout};
use super::view::ClusterView;
use crate::scheduler::filter::platform_supported;
use rswarm_proto::spec::constraints::Constraint;

/// Whether a node may keep, and may get new, tasks of a global service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Eligibility {
    pub keep: bool,
    pub create: bool,
}

/// The placement rules of a global service, parsed once per pass.
pub(crate) struct NodeRules {
    /// `None`: a constraint does not parse; no node qualifies.
    constraints: Option<Vec<Constraint>>,
    platforms: Vec<rswarm_proto::types::Platform>,
}

impl NodeRules {
    pub(super) fn of(svc: &Service) -> NodeRules {
        let placement = svc
            .spec
            .as_ref()
            .and_then(|s| s.task.as_ref())
            .and_then(|t| t.placement.as_ref());
        let constraints = placement.map(|p| p.constraints.as_slice()).unwrap_or(&[]);
        let constraints = match Constraint::parse_all(constraints) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!(service = %svc.id, error = %e, "global service has an invalid constraint; no node qualifies");
                None
            }
        };
        NodeRules {
            constraints,
            platforms: placement.map(|p| p.platforms.clone()).unwrap_or_default(),
        }
    }

    pub(super) fn eligibility(&self, node: &Node) -> Eligibility {
        let fits = self
            .constraints
            .as_ref()
            .is_some_and(|c| Constraint::all_match(c, node))
            && platform_supported(&self.platforms, node);
        let state = node.status.as_ref().map(|s| s.state).unwrap_or(0);
        let keep = fits && !task::is_drained(node) && state != NodeState::Down as i32;
        let create = keep
            && task::is_active(node)
            && (state == NodeState::Ready as i32 || state == NodeState::Unknown as i32);
        Eligibility { keep, create }
    }
}

/// Tasks of a service grouped by node, and the stopping of those whose node
/// is gone from the swarm.
pub(crate) fn tasks_by_node<'a>(
    view: &'a ClusterView<()>,
    svc: &Service,
    plan: &mut Plan,
) -> HashMap<&'a str, Vec<&'a Task>> {
    let mut by_node: HashMap<&str, Vec<&Task>> = HashMap::new();
    for t in view.service_tasks(&svc.id) {
        by_node.entry(t.node_id.as_str()).or_default().push(t);
    }
    for (node_id, tasks) in &by_node {
        if view.nodes.contains_key(*node_id) {
            continue;
        }
        for t in tasks
            .iter()
            .filter(|t| task::is_wanted(t) && !task::has_ended(t))
        {
            plan.stop(t, TaskState::Shutdown);
        }
    }
    by_node
}

pub(crate) fn reconcile(
    view: &ClusterView<()>,
    svc: &Service,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) {
    let rules = NodeRules::of(svc);
    let by_node = tasks_by_node(view, svc, plan);
    let mut roll = Rollout::new(svc, &view.nodes);
    for node in view.nodes.values() {
        let eligible = rules.eligibility(node);
        let tasks = by_node
            .get(node.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut live = Vec::new();
        for &t in tasks {
            if t.desired_state > TaskState::Running as i32 {
                continue;
            }
            if !eligible.keep || task::has_ended(t) {
                plan.stop(t, TaskState::Shutdown);
            } else {
                live.push(t);
            }
        }
        if !eligible.keep {
            continue;
        }
        let key = SlotKey {
            service_id: svc.id.clone(),
            slot: 0,
            node_id: node.id.clone(),
        };
        update::fill_slot(
            &mut roll,
            Slot { key, tasks, live },
            eligible.create,
            sup,
            clock,
            plan,
        );
    }
    update::advance(view, roll, clock, plan);
}
