//! What each node already carries, kept up to date task by task as the view
//! changes (never recounted from scratch): resources reserved by its
//! unfinished tasks, its task count per service and in all, and the
//! host-mode ports in use. Plus the set of tasks waiting for a node.
//!
//! A task weighs on its node from ASSIGNED until it ends (COMPLETE and
//! above): its reservations and host ports count even while it is being shut
//! down, since it still holds them. Task counts (spread, max replicas per
//! node) leave out tasks already asked to stop.

use std::collections::{HashMap, HashSet};

use rswarm_proto::types::port_config::PublishMode;
use rswarm_proto::types::{Node, Task, TaskState};

use crate::orchestrator::task as task_state;
use crate::orchestrator::view::TaskObserver;

/// A host-mode port: (protocol, published port).
pub(crate) type HostPort = (i32, u32);

/// The load on one node.
#[derive(Debug, Default, Clone)]
pub(crate) struct NodeInfo {
    pub reserved_cpu: i64,
    pub reserved_memory: i64,
    /// Tasks per service ID (not counting tasks asked to stop).
    pub service_tasks: HashMap<String, u32>,
    /// Tasks in all (not counting tasks asked to stop).
    pub active_tasks: u32,
    /// Host-mode ports in use, with how many tasks hold each.
    pub host_ports: HashMap<HostPort, u32>,
}

impl NodeInfo {
    pub(crate) fn tasks_of(&self, service_id: &str) -> u32 {
        self.service_tasks.get(service_id).copied().unwrap_or(0)
    }

    /// CPU left for reservations (nano CPUs); negative when overcommitted.
    pub(crate) fn available_cpu(&self, node: &Node) -> i64 {
        capacity(node).0.saturating_sub(self.reserved_cpu)
    }

    /// Memory left for reservations (bytes).
    pub(crate) fn available_memory(&self, node: &Node) -> i64 {
        capacity(node).1.saturating_sub(self.reserved_memory)
    }

    pub(crate) fn port_in_use(&self, port: &HostPort) -> bool {
        self.host_ports.get(port).is_some_and(|n| *n > 0)
    }
}

/// (nano CPUs, memory bytes) the node reported.
fn capacity(node: &Node) -> (i64, i64) {
    node.description
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .map(|r| (r.nano_cpus, r.memory_bytes))
        .unwrap_or((0, 0))
}

/// (nano CPUs, memory bytes) a task reserves.
pub(crate) fn reservations(t: &Task) -> (i64, i64) {
    t.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .map(|r| (r.nano_cpus.max(0), r.memory_bytes.max(0)))
        .unwrap_or((0, 0))
}

/// The host-mode ports a task publishes (published port given).
pub(crate) fn host_ports(t: &Task) -> Vec<HostPort> {
    let Some(endpoint) = t.endpoint.as_ref() else {
        return Vec::new();
    };
    let ports = if endpoint.ports.is_empty() {
        endpoint
            .spec
            .as_ref()
            .map(|s| s.ports.as_slice())
            .unwrap_or(&[])
    } else {
        endpoint.ports.as_slice()
    };
    ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Host as i32 && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
        .collect()
}

/// Whether the task waits for the scheduler: PENDING and still wanted.
pub(crate) fn is_pending(t: &Task) -> bool {
    task_state::state(t) == TaskState::Pending as i32 && task_state::is_wanted(t)
}

/// The scheduler's bookkeeping, fed by every task change in its view.
#[derive(Default)]
pub(crate) struct Accounting {
    pub nodes: HashMap<String, NodeInfo>,
    /// IDs of tasks waiting for a node.
    pub pending: HashSet<String>,
}

impl Accounting {
    fn apply(&mut self, t: &Task, sign: i64) {
        let state = task_state::state(t);
        if t.node_id.is_empty()
            || state < TaskState::Assigned as i32
            || state >= TaskState::Complete as i32
        {
            return;
        }
        if !self.nodes.contains_key(&t.node_id) {
            self.nodes.insert(t.node_id.clone(), NodeInfo::default());
        }
        let Some(info) = self.nodes.get_mut(&t.node_id) else {
            return;
        };
        let (cpu, memory) = reservations(t);
        info.reserved_cpu = info.reserved_cpu.saturating_add(sign * cpu);
        info.reserved_memory = info.reserved_memory.saturating_add(sign * memory);
        let bump = |n: &mut u32| {
            *n = if sign > 0 {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        for port in host_ports(t) {
            let n = info.host_ports.entry(port).or_default();
            bump(n);
            if *n == 0 {
                info.host_ports.remove(&port);
            }
        }
        if task_state::is_wanted(t) {
            bump(&mut info.active_tasks);
            match info.service_tasks.get_mut(&t.service_id) {
                Some(n) => {
                    bump(n);
                    if *n == 0 {
                        info.service_tasks.remove(&t.service_id);
                    }
                }
                None if sign > 0 => {
                    info.service_tasks.insert(t.service_id.clone(), 1);
                }
                None => {}
            }
        }
    }
}

impl TaskObserver for Accounting {
    fn task_changed(&mut self, old: Option<&Task>, new: Option<&Task>) {
        if let Some(old) = old {
            self.apply(old, -1);
            self.pending.remove(&old.id);
        }
        if let Some(new) = new {
            self.apply(new, 1);
            if is_pending(new) {
                self.pending.insert(new.id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{
        Endpoint, PortConfig, ResourceLimits, ResourceRequirements, TaskSpec, TaskStatus,
    };

    fn task(state: TaskState, desired: TaskState) -> Task {
        Task {
            id: "t".into(),
            service_id: "s".into(),
            node_id: "n".into(),
            spec: Some(TaskSpec {
                resources: Some(ResourceRequirements {
                    reservations: Some(ResourceLimits {
                        nano_cpus: 500,
                        memory_bytes: 64,
                        pids: 0,
                    }),
                    limits: None,
                }),
                ..Default::default()
            }),
            endpoint: Some(Endpoint {
                ports: vec![PortConfig {
                    published_port: 8080,
                    target_port: 80,
                    publish_mode: PublishMode::Host as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(TaskStatus {
                state: state as i32,
                ..Default::default()
            }),
            desired_state: desired as i32,
            ..Default::default()
        }
    }

    #[test]
    fn a_task_weighs_on_its_node_until_it_ends() {
        let mut acc = Accounting::default();
        let running = task(TaskState::Running, TaskState::Running);
        acc.task_changed(None, Some(&running));
        let info = &acc.nodes["n"];
        assert_eq!((info.reserved_cpu, info.reserved_memory), (500, 64));
        assert_eq!((info.active_tasks, info.tasks_of("s")), (1, 1));
        assert!(info.port_in_use(&(0, 8080)));

        let stopping = task(TaskState::Running, TaskState::Shutdown);
        acc.task_changed(Some(&running), Some(&stopping));
        let info = &acc.nodes["n"];
        assert_eq!(info.reserved_memory, 64, "still holds its memory");
        assert_eq!(info.active_tasks, 0, "no longer counts for spread");

        let stopped = task(TaskState::Shutdown, TaskState::Shutdown);
        acc.task_changed(Some(&stopping), Some(&stopped));
        let info = &acc.nodes["n"];
        assert_eq!((info.reserved_cpu, info.reserved_memory), (0, 0));
        assert!(!info.port_in_use(&(0, 8080)));
    }

    #[test]
    fn pending_tasks_are_tracked() {
        let mut acc = Accounting::default();
        let mut t = task(TaskState::Pending, TaskState::Running);
        t.node_id.clear();
        acc.task_changed(None, Some(&t));
        assert!(acc.pending.contains("t"));
        acc.task_changed(Some(&t), None);
        assert!(acc.pending.is_empty());
    }
}
