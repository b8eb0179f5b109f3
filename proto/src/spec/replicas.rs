//! How many of a service's tasks run and should run: Docker's
//! `ServiceStatus`, behind `service ls`'s REPLICAS and the managers'
//! `rswarm_service_replicas_*` metrics, so both always agree.

use std::collections::HashSet;

use crate::types::service_spec::Mode;
use crate::types::{Service, Task, TaskState};

/// How many of a service's tasks run, should run, and (jobs) completed:
/// Docker's `ServiceStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    pub running: u64,
    pub desired: u64,
    pub completed: u64,
}

/// Counts a service's tasks the way Docker's daemon does for `service ls`:
/// running = tasks in Running state on nodes that are not down; desired =
/// the replicas (replicated), the tasks not being shut down (global), or the
/// job tasks still to finish (jobs), counting only the current job run.
pub fn counts(service: &Service, tasks: &[Task], down_nodes: &HashSet<String>) -> ServiceCounts {
    let spec = service.spec.as_ref();
    let mode = spec.and_then(|s| s.mode.as_ref());
    let iteration = service.job_status.as_ref().map_or(0, |j| j.job_iteration);
    let is_job = matches!(mode, Some(Mode::ReplicatedJob(_) | Mode::GlobalJob(_)));
    let mine = tasks
        .iter()
        .filter(|t| t.service_id == service.id)
        .filter(|t| !is_job || t.job_iteration == iteration);
    let mut counts = ServiceCounts::default();
    let mut not_shut_down = 0u64;
    let mut unfinished_job_tasks = 0u64;
    for t in mine {
        let state = t.status.as_ref().map(|s| s.state()).unwrap_or_default();
        // A task being stopped (scale-down, removal) may still report Running
        // for a moment; like Docker, count only tasks meant to run.
        if state == TaskState::Running
            && t.desired_state() <= TaskState::Complete
            && !down_nodes.contains(&t.node_id)
        {
            counts.running += 1;
        }
        if state == TaskState::Complete {
            counts.completed += 1;
        }
        if t.desired_state() <= TaskState::Running {
            not_shut_down += 1;
        }
        if t.desired_state() <= TaskState::Complete && state < TaskState::Complete {
            unfinished_job_tasks += 1;
        }
    }
    counts.desired = match mode {
        Some(Mode::Replicated(r)) => r.replicas,
        None => 0,
        Some(Mode::Global(_)) => not_shut_down,
        Some(Mode::ReplicatedJob(j)) => j
            .max_concurrent
            .min(j.total_completions.saturating_sub(counts.completed)),
        Some(Mode::GlobalJob(_)) => unfinished_job_tasks,
    };
    counts
}
