//! Jobs: tasks that run to completion (desired state COMPLETE).
//!
//! - Replicated jobs: `total_completions` slots (default `max_concurrent`,
//!   itself default 1), at most `max_concurrent` running at once. A slot is
//!   done once one of its tasks COMPLETEs with exit code 0; a failed task is
//!   restarted in its slot per the restart policy (`any` acts as
//!   `on-failure` here, `none` gives the slot up). When every slot is done
//!   (or given up) the job is finished and nothing is restarted.
//! - Global jobs: one completion on every eligible node that existed when
//!   the job was last executed (`job_status.last_execution`, else the
//!   service's creation time), as swarmkit does: a node whose creation time
//!   is not before that instant gets no task of this iteration. Clocks of
//!   managers may skew a little; this is a best effort, as in swarmkit.
//! - A node that is Down, drained or removed loses its running job tasks;
//!   they are run again elsewhere (replicated) or when it returns (global).
//! - Only tasks of the service's current `job_iteration` count; tasks of an
//!   earlier iteration still running are shut down. Running a job again is
//!   the Control API's bump of `job_status.job_iteration`.

use std::collections::BTreeMap;

use rswarm_proto::types::{Node, Service, Task, TaskState};

use super::global::{tasks_by_node, NodeRules};
use super::plan::{fill_slot, keep_one, Filled, Plan, Slot, MAX_CREATES_PER_SERVICE};
use super::restart::{Clock, RestartSupervisor, SlotKey};
use super::task::{self, job_iteration};
use super::view::ClusterView;

/// Sorts a job's tasks: tasks of an earlier iteration still running are
/// stopped; the others are returned.
fn current_iteration<'a>(
    svc: &Service,
    tasks: impl Iterator<Item = &'a Task>,
    plan: &mut Plan,
) -> Vec<&'a Task> {
    let iteration = job_iteration(svc);
    let mut current = Vec::new();
    for t in tasks {
        if t.job_iteration == iteration {
            current.push(t);
        } else if task::is_wanted(t) && !task::has_ended(t) {
            plan.stop(t, TaskState::Shutdown);
        }
    }
    current
}

/// Splits a slot's tasks: returns whether the slot is done, and its live
/// tasks; failed or lost ones are asked to shut down. A live task in a slot
/// that is done or unwanted is stopped too.
fn classify<'a>(
    view: &ClusterView<()>,
    tasks: &[&'a Task],
    wanted: bool,
    global: bool,
    plan: &mut Plan,
) -> (bool, Vec<&'a Task>) {
    let done = tasks.iter().any(|t| task::completed(t));
    let mut live = Vec::new();
    for &t in tasks {
        if !task::is_wanted(t) || task::completed(t) {
            continue;
        }
        let lost = !global && task::lost_with_node(t, view.nodes.get(&t.node_id));
        if !wanted || done || task::has_ended(t) || lost {
            plan.stop(t, TaskState::Shutdown);
        } else {
            live.push(t);
        }
    }
    (done, live)
}

pub(crate) fn reconcile_replicated(
    view: &ClusterView<()>,
    svc: &Service,
    max_concurrent: u64,
    total: u64,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) {
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in current_iteration(svc, view.service_tasks(&svc.id), plan) {
        slots.entry(t.slot).or_default().push(t);
    }
    let mut running: u64 = 0;
    let mut waiting: Vec<(u64, &[&Task])> = Vec::new();
    for (&slot, tasks) in &slots {
        let wanted = (1..=total).contains(&slot);
        let (done, live) = classify(view, tasks, wanted, false, plan);
        if !wanted || done {
            continue;
        }
        if keep_one(live, svc, plan).is_some() {
            running += 1;
        } else {
            waiting.push((slot, tasks.as_slice()));
        }
    }
    // Slots that ran before (restarts) go first, then slots never started.
    let never_started = (1..=total)
        .filter(|s| !slots.contains_key(s))
        .map(|s| (s, &[][..]));
    let mut capacity = max_concurrent.saturating_sub(running);
    let mut created = 0;
    for (slot, tasks) in waiting.into_iter().chain(never_started) {
        if capacity == 0 {
            break;
        }
        if created == MAX_CREATES_PER_SERVICE {
            // The rest in the next pass, which comes at once.
            plan.wake(clock.instant);
            break;
        }
        let key = SlotKey {
            service_id: svc.id.clone(),
            slot,
            node_id: String::new(),
        };
        let filled = fill_slot(
            svc,
            Slot {
                key,
                tasks,
                live: Vec::new(),
            },
            true,
            sup,
            clock,
            plan,
        );
        if filled == Filled::Created {
            capacity -= 1;
            created += 1;
        }
    }
}

/// The instant (unix nanoseconds) the job's current iteration started: its
/// last execution, else the service's creation; 0 when neither is known.
fn last_execution(svc: &Service) -> i64 {
    svc.job_status
        .as_ref()
        .map(|j| j.last_execution)
        .filter(|&t| t != 0)
        .or_else(|| svc.meta.as_ref().map(|m| m.created_at))
        .unwrap_or(0)
}

/// Whether the node was in the swarm when the job's iteration started. A
/// node or a job with no known time counts as having been there.
fn existed_at(node: &Node, started: i64) -> bool {
    let created = node.meta.as_ref().map(|m| m.created_at).unwrap_or(0);
    started == 0 || created == 0 || created < started
}

pub(crate) fn reconcile_global(
    view: &ClusterView<()>,
    svc: &Service,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) {
    let rules = NodeRules::of(svc);
    let by_node = tasks_by_node(view, svc, plan);
    let started = last_execution(svc);
    for node in view.nodes.values() {
        let eligible = rules.eligibility(node);
        // A node that joined after the job started keeps what it has (it
        // has nothing of this iteration) but is given no task.
        let create = eligible.create && existed_at(node, started);
        let all = by_node
            .get(node.id.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let tasks = current_iteration(svc, all.iter().copied(), plan);
        let (done, live) = classify(view, &tasks, eligible.keep, true, plan);
        if done || !eligible.keep {
            continue;
        }
        let key = SlotKey {
            service_id: svc.id.clone(),
            slot: 0,
            node_id: node.id.clone(),
        };
        fill_slot(
            svc,
            Slot {
                key,
                tasks: &tasks,
                live,
            },
            create,
            sup,
            clock,
            plan,
        );
    }
}
