//! Replicated services: slots 1..=replicas, each with exactly one live task.
//!
//! - A slot without a task gets one, at most `MAX_CREATES_PER_SERVICE` per
//!   pass (the loop comes back at once for the rest).
//! - Scaling down asks the tasks of the highest slots (above `replicas`) to
//!   reach REMOVE and deletes them once they have stopped, as swarmkit does:
//!   they are not restarted and `service ps` no longer lists them.
//! - A task that ended (COMPLETE, FAILED, REJECTED, SHUTDOWN…) or whose node
//!   is Down, drained or removed is asked to shut down, and its slot is
//!   refilled per the restart policy (`restart`); the scheduler places the
//!   new task on a node that can take it.
//! - A live task of an older spec is replaced, as the rolling update
//!   (`update`) says.

use std::collections::BTreeMap;

use rswarm_proto::types::{Service, Task, TaskState};

use super::plan::{Plan, Slot, MAX_CREATES_PER_SERVICE};
use super::reaper;
use super::restart::{Clock, RestartSupervisor, SlotKey};
use super::task::{self, new_task};
use super::update::{self, Rollout};
use super::view::ClusterView;

pub(crate) fn reconcile(
    view: &ClusterView<()>,
    svc: &Service,
    replicas: u64,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) {
    let mut roll = Rollout::new(svc, &view.nodes);
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in view.service_tasks(&svc.id) {
        slots.entry(t.slot).or_default().push(t);
    }
    for (&slot, tasks) in &slots {
        if !(1..=replicas).contains(&slot) {
            reaper::reap_tasks(view, tasks.iter().copied(), plan);
            continue;
        }
        let mut live = Vec::new();
        for &t in tasks {
            if t.desired_state > TaskState::Running as i32 {
                continue;
            }
            if task::has_ended(t) || task::lost_with_node(t, view.nodes.get(&t.node_id)) {
                plan.stop(t, TaskState::Shutdown);
                continue;
            }
            live.push(t);
        }
        let key = SlotKey {
            service_id: svc.id.clone(),
            slot,
            node_id: String::new(),
        };
        update::fill_slot(&mut roll, Slot { key, tasks, live }, true, sup, clock, plan);
    }
    // Missing slots are created in bounded batches (one million replicas
    // is never one plan); the loop comes back at once for the rest.
    let mut created = 0;
    for slot in 1..=replicas {
        if slots.contains_key(&slot) {
            continue;
        }
        roll.note_empty_slot();
        if created == MAX_CREATES_PER_SERVICE {
            plan.wake(clock.instant);
            break;
        }
        plan.create(new_task(svc, slot, None, 0, clock.nanos));
        created += 1;
    }
    update::advance(view, roll, clock, plan);
}
