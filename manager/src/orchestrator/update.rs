//! Bringing tasks to a new service spec. The Control API bumps a service's
//! `spec_version` whenever its task template changes; a live task with an
//! older `spec_version` is outdated and replaced.
//!
//! Every outdated task is replaced in the same pass: the old one is asked to
//! shut down and its successor (same slot or node, restart count reset) is
//! created alongside — all at once. A service's `UpdateConfig` (parallelism,
//! delay, order, failure action, monitor) is not applied here.
//!
//! Jobs are not updated in place: a changed job runs again as a new job
//! iteration.

use rswarm_proto::types::{Service, Task, TaskState};

use super::plan::Plan;
use super::restart::Clock;
use super::task::{new_task, ModeKind};

/// The task runs an older spec than its service's (never true for jobs).
pub(crate) fn is_outdated(t: &Task, svc: &Service) -> bool {
    !ModeKind::of(svc).is_job() && t.spec_version < svc.spec_version
}

/// Replaces an outdated live task: stop it, create its successor.
pub(crate) fn replace_outdated_task(svc: &Service, old: &Task, clock: Clock, plan: &mut Plan) {
    if plan.touches(&old.id) {
        return;
    }
    plan.stop(old, TaskState::Shutdown);
    let node =
        (!old.node_id.is_empty() && ModeKind::of(svc).is_global()).then_some(old.node_id.as_str());
    plan.create(new_task(svc, old.slot, node, 0, clock.nanos));
}
