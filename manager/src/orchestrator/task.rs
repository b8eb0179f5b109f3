//! Making new tasks for a service, and the few questions every orchestrator
//! asks about a task (is it alive, did it end on its own, did it fail, is its
//! node gone). One place for the task state rules the loops share.
//!
//! A new task starts in NEW ("created"): the allocator gives it its network
//! attachments and moves it to PENDING ("pending task scheduling"), and only
//! then does the scheduler see it (it only picks up PENDING tasks).

use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{
    Annotations, Endpoint, Meta, Node, NodeAvailability, NodeState, Service, Task, TaskState,
    TaskStatus,
};

use crate::objects::new_id;

/// The message of a task waiting for the scheduler.
pub const PENDING_MESSAGE: &str = "pending task scheduling";

/// A service's mode, with Docker's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeKind {
    Replicated {
        replicas: u64,
    },
    Global,
    /// `max_concurrent` defaults to 1, `total_completions` to `max_concurrent`.
    ReplicatedJob {
        max_concurrent: u64,
        total: u64,
    },
    GlobalJob,
}

impl ModeKind {
    /// A service without a mode is replicated with one replica (Docker's default).
    pub(crate) fn of(svc: &Service) -> ModeKind {
        match svc.spec.as_ref().and_then(|s| s.mode.as_ref()) {
            None => ModeKind::Replicated { replicas: 1 },
            Some(Mode::Replicated(r)) => ModeKind::Replicated {
                replicas: r.replicas,
            },
            Some(Mode::Global(_)) => ModeKind::Global,
            Some(Mode::ReplicatedJob(j)) => {
                let max_concurrent = if j.max_concurrent == 0 {
                    1
                } else {
                    j.max_concurrent
                };
                let total = if j.total_completions == 0 {
                    max_concurrent
                } else {
                    j.total_completions
                };
                ModeKind::ReplicatedJob {
                    max_concurrent,
                    total,
                }
            }
            Some(Mode::GlobalJob(_)) => ModeKind::GlobalJob,
        }
    }

    pub(crate) fn is_job(self) -> bool {
        matches!(self, ModeKind::ReplicatedJob { .. } | ModeKind::GlobalJob)
    }

    pub(crate) fn is_global(self) -> bool {
        matches!(self, ModeKind::Global | ModeKind::GlobalJob)
    }

    /// What the tasks of this mode are asked to reach.
    pub(crate) fn desired(self) -> TaskState {
        if self.is_job() {
            TaskState::Complete
        } else {
            TaskState::Running
        }
    }
}

/// The service's current job iteration (0 for services that are not jobs).
pub(crate) fn job_iteration(svc: &Service) -> u64 {
    svc.job_status
        .as_ref()
        .map(|j| j.job_iteration)
        .unwrap_or(0)
}

/// The service's name (empty if it has none).
pub(crate) fn service_name(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.as_str())
        .unwrap_or("")
}

/// A new task of `svc` for `slot` (replicated and replicated jobs) or for
/// `node_id` (global modes: slot 0, the node preset), ready to be created.
pub(crate) fn new_task(
    svc: &Service,
    slot: u64,
    node_id: Option<&str>,
    restart_count: u32,
    now: i64,
) -> Task {
    let mode = ModeKind::of(svc);
    let spec = svc.spec.as_ref();
    let name = match node_id {
        Some(node) => format!("{}.{}", service_name(svc), node),
        None => format!("{}.{}", service_name(svc), slot),
    };
    // Host-mode ports travel with the task (the scheduler checks them per
    // node); the service's allocated endpoint if it has one, else its spec.
    let endpoint = svc.endpoint.clone().or_else(|| {
        spec.and_then(|s| s.endpoint.clone()).map(|e| Endpoint {
            ports: e.ports.clone(),
            spec: Some(e),
            virtual_ips: Vec::new(),
        })
    });
    Task {
        id: new_id(),
        meta: Some(Meta {
            version: None,
            created_at: now,
            updated_at: now,
            spec_version: None,
        }),
        spec: spec.and_then(|s| s.task.clone()),
        spec_version: svc.spec_version,
        service_id: svc.id.clone(),
        slot: if node_id.is_some() { 0 } else { slot },
        node_id: node_id.unwrap_or("").to_string(),
        annotations: Some(Annotations {
            name,
            labels: Default::default(),
        }),
        service_annotations: spec.and_then(|s| s.annotations.clone()),
        status: Some(TaskStatus {
            timestamp: now,
            // The allocator gives the task its network addresses and moves it
            // to PENDING, where the scheduler takes over.
            state: TaskState::New as i32,
            message: "created".into(),
            ..Default::default()
        }),
        desired_state: mode.desired() as i32,
        endpoint,
        job_iteration: if mode.is_job() { job_iteration(svc) } else { 0 },
        restart_count,
        // Network attachments are the allocator's to fill.
        ..Default::default()
    }
}

/// The task's observed state.
pub(crate) fn state(t: &Task) -> i32 {
    t.status.as_ref().map(|s| s.state).unwrap_or(0)
}

/// The task's exit code (0 when it has none).
pub(crate) fn exit_code(t: &Task) -> i32 {
    t.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .map(|c| c.exit_code)
        .unwrap_or(0)
}

/// The task serves: RUNNING and, when it has a health check, healthy (not
/// while still "starting", nor once "unhealthy": Docker's rule). Only such a
/// task is a backend of its VIPs, the routing mesh and `tasks.<service>`,
/// and a rolling update counts a new task as updated only then.
pub(crate) fn serves(t: &Task) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.state == TaskState::Running as i32 && (s.health.is_empty() || s.health == "healthy")
    })
}

/// The task has stopped running, whatever the reason (COMPLETE and above).
pub(crate) fn has_ended(t: &Task) -> bool {
    state(t) >= TaskState::Complete as i32
}

/// The task is still wanted (desired RUNNING, or COMPLETE for jobs).
pub(crate) fn is_wanted(t: &Task) -> bool {
    t.desired_state <= TaskState::Complete as i32
}

/// It stopped by itself: it exited (COMPLETE, FAILED) or its node refused it
/// (REJECTED), rather than being stopped by us (SHUTDOWN) or lost with its
/// node (ORPHANED). Only these go through the restart policy.
pub(crate) fn ended_on_its_own(t: &Task) -> bool {
    let s = state(t);
    s == TaskState::Complete as i32
        || s == TaskState::Failed as i32
        || s == TaskState::Rejected as i32
}

/// It ended in failure: FAILED, REJECTED, or an exit code other than 0.
pub(crate) fn failed(t: &Task) -> bool {
    let s = state(t);
    s == TaskState::Failed as i32
        || s == TaskState::Rejected as i32
        || (s == TaskState::Complete as i32 && exit_code(t) != 0)
}

/// A job task that finished its work (COMPLETE with exit code 0).
pub(crate) fn completed(t: &Task) -> bool {
    state(t) == TaskState::Complete as i32 && exit_code(t) == 0
}

/// The node is gone for good or for now: removed from the swarm, or Down.
pub(crate) fn node_down_or_missing(node: Option<&Node>) -> bool {
    match node {
        None => true,
        Some(n) => n.status.as_ref().map(|s| s.state) == Some(NodeState::Down as i32),
    }
}

/// The node is drained: its tasks move elsewhere.
pub(crate) fn is_drained(n: &Node) -> bool {
    n.spec.as_ref().map(|s| s.availability) == Some(NodeAvailability::Drain as i32)
}

/// The node takes new tasks (Active, not Paused or Drained).
pub(crate) fn is_active(n: &Node) -> bool {
    n.spec.as_ref().map(|s| s.availability).unwrap_or(0) == NodeAvailability::Active as i32
}

/// A replicated (or replicated-job) task's node can no longer keep it: the
/// node is Down, removed or drained. Unassigned tasks have no node to lose.
pub(crate) fn lost_with_node(t: &Task, node: Option<&Node>) -> bool {
    if t.node_id.is_empty() {
        return false;
    }
    node_down_or_missing(node) || node.is_some_and(is_drained)
}

/// The task no longer runs anywhere and never will again: it ended, or it
/// was stopped before it ran (unassigned), or its node is Down or gone. Only
/// such tasks are deleted by the reaper.
pub(crate) fn is_terminated(t: &Task, node: Option<&Node>) -> bool {
    has_ended(t)
        || (t.desired_state >= TaskState::Shutdown as i32
            && (t.node_id.is_empty() || node_down_or_missing(node)))
}

/// The task's creation time (store-stamped), for "newest first" orderings.
pub(crate) fn created_at(t: &Task) -> i64 {
    t.meta.as_ref().map(|m| m.created_at).unwrap_or(0)
}

/// A copy of `t` asked to reach `desired` (SHUTDOWN: stop it; REMOVE: stop it
/// and let the reaper delete it).
pub(crate) fn with_desired(t: &Task, desired: TaskState) -> Task {
    let mut t = t.clone();
    t.desired_state = desired as i32;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{ReplicatedJob, ServiceSpec};

    #[test]
    fn job_defaults_follow_docker() {
        let svc = |max_concurrent, total_completions| Service {
            spec: Some(ServiceSpec {
                mode: Some(Mode::ReplicatedJob(ReplicatedJob {
                    max_concurrent,
                    total_completions,
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            ModeKind::of(&svc(0, 0)),
            ModeKind::ReplicatedJob {
                max_concurrent: 1,
                total: 1
            }
        );
        assert_eq!(
            ModeKind::of(&svc(3, 0)),
            ModeKind::ReplicatedJob {
                max_concurrent: 3,
                total: 3
            }
        );
        assert_eq!(
            ModeKind::of(&svc(0, 5)),
            ModeKind::ReplicatedJob {
                max_concurrent: 1,
                total: 5
            }
        );
    }

    #[test]
    fn new_tasks_are_pending_and_named_for_their_slot() {
        let svc = Service {
            id: "svc1".into(),
            spec: Some(ServiceSpec {
                annotations: Some(Annotations {
                    name: "web".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            spec_version: 4,
            ..Default::default()
        };
        let t = new_task(&svc, 3, None, 2, 99);
        assert_eq!(
            t.annotations.as_ref().map(|a| a.name.as_str()),
            Some("web.3")
        );
        assert_eq!(state(&t), TaskState::New as i32);
        assert_eq!(t.desired_state, TaskState::Running as i32);
        assert_eq!((t.slot, t.spec_version, t.restart_count), (3, 4, 2));
        assert_eq!(t.id.len(), 25);
        let g = new_task(&svc, 0, Some("node9"), 0, 99);
        assert_eq!(g.annotations.map(|a| a.name), Some("web.node9".into()));
        assert_eq!((g.slot, g.node_id.as_str()), (0, "node9"));
    }
}
