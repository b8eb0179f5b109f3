//! The task reaper: deletes task objects nobody needs any more.
//!
//! - History: each slot (a replica number; a node for global modes) keeps at
//!   most the cluster's `task_history_retention_limit` tasks (default 5),
//!   counting the live one; the oldest terminated tasks go first. The newest
//!   task of a slot is always kept: it carries the slot's restart count and,
//!   for jobs, its completion.
//! - Removed services: their tasks are asked to reach REMOVE (agents stop
//!   them) and are deleted once terminated — ended, never assigned, or on a
//!   node that is Down or gone.

use std::collections::HashMap;

use rswarm_proto::types::{Service, Task, TaskState};

use super::plan::Plan;
use super::task::{self, ModeKind};
use super::view::ClusterView;

/// The tasks to delete so that every slot of `svc` keeps at most `limit`
/// tasks; `busy` tasks (written by the pass under way) are left alone.
pub(crate) fn reap_history(
    view: &ClusterView<()>,
    svc: &Service,
    limit: usize,
    busy: impl Fn(&str) -> bool,
) -> Vec<String> {
    let limit = limit.max(1);
    let global = ModeKind::of(svc).is_global();
    let mut slots: HashMap<(u64, &str), Vec<&Task>> = HashMap::new();
    for t in view.service_tasks(&svc.id) {
        let node = if global { t.node_id.as_str() } else { "" };
        slots.entry((t.slot, node)).or_default().push(t);
    }
    let mut doomed = Vec::new();
    for tasks in slots.values_mut() {
        if tasks.len() <= limit {
            continue;
        }
        tasks.sort_by(|a, b| {
            task::created_at(b)
                .cmp(&task::created_at(a))
                .then(b.id.cmp(&a.id))
        });
        let mut excess = tasks.len() - limit;
        for t in tasks.iter().skip(1).rev() {
            if excess == 0 {
                break;
            }
            if busy(&t.id) || !task::is_terminated(t, view.nodes.get(&t.node_id)) {
                continue;
            }
            doomed.push(t.id.clone());
            excess -= 1;
        }
    }
    doomed
}

/// Winds down the tasks of a service that no longer exists.
pub(crate) fn reap_removed(view: &ClusterView<()>, service_id: &str, plan: &mut Plan) {
    reap_tasks(view, view.service_tasks(service_id), plan);
}

/// Asks `tasks` to reach REMOVE (agents stop them) and deletes those already
/// terminated: the tasks of a removed service, or of the slots a scale-down
/// dropped (swarmkit does the same, so `service ps` stops listing them).
pub(crate) fn reap_tasks<'a>(
    view: &ClusterView<()>,
    tasks: impl IntoIterator<Item = &'a Task>,
    plan: &mut Plan,
) {
    for t in tasks {
        // Terminated as if it were already asked to reach REMOVE.
        let terminated = task::has_ended(t)
            || t.node_id.is_empty()
            || task::node_down_or_missing(view.nodes.get(&t.node_id));
        if terminated {
            plan.delete(t);
        } else {
            plan.stop(t, TaskState::Remove);
        }
    }
}
