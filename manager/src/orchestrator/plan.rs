//! What one orchestration pass decided: tasks to create, tasks to stop or
//! remove, tasks to delete, and when to look again. The reconcilers read the
//! view and fill a plan; the loop then writes it as one batch. Also the step
//! every mode shares: keep one live task per slot, and refill a slot that has
//! none (through the restart policy). Services are written too, for a
//! rolling update's status.

use std::collections::HashSet;
use std::time::Instant;

use rswarm_proto::types::{Service, Task, TaskState};

use super::restart::{Clock, RestartSupervisor, SlotAction, SlotKey};
use super::task::{self, new_task};
use super::update;

/// Most new tasks one service gets in one pass. A service of many replicas
/// is filled over several passes (the loop comes back at once), so a plan
/// never holds more than this many new tasks per service, and a service
/// removed or scaled down meanwhile stops getting tasks at the next pass.
pub(crate) const MAX_CREATES_PER_SERVICE: usize = 1_000;

/// The writes of one pass, each task at most once.
#[derive(Default)]
pub(crate) struct Plan {
    pub puts: Vec<Task>,
    pub deletes: Vec<String>,
    touched: HashSet<String>,
    /// The earliest instant a delayed restart of the current service is due.
    pub wake_at: Option<Instant>,
    /// Services to write back (a rolling update's status, a rollback), each
    /// guarded by the version it was read at.
    pub services: Vec<Service>,
    /// New tasks (ID) that restart a slot whose task ended on its own (the
    /// restart policy's doing; counted in `rswarm_orchestrator_restarts_total`).
    pub restarts: Vec<String>,
}

impl Plan {
    /// Ask `t` to reach `desired` (SHUTDOWN or REMOVE) unless it already is.
    pub(super) fn stop(&mut self, t: &Task, desired: TaskState) {
        if t.desired_state >= desired as i32 || !self.touched.insert(t.id.clone()) {
            return;
        }
        self.puts.push(task::with_desired(t, desired));
    }

    pub(super) fn create(&mut self, t: Task) {
        self.touched.insert(t.id.clone());
        self.puts.push(t);
    }

    pub(super) fn delete(&mut self, t: &Task) {
        if self.touched.insert(t.id.clone()) {
            self.deletes.push(t.id.clone());
        }
    }

    /// Write `svc` (its update status or, for a rollback, its spec) after
    /// this pass's tasks.
    pub(super) fn write_service(&mut self, svc: Service) {
        self.services.push(svc);
    }

    pub(super) fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// Of several live tasks in one slot (a crash between writes, a leader
/// change), keep the best — up to date, furthest along, newest — and stop
/// the rest. Returns the one kept.
pub(crate) fn keep_one<'a>(
    mut live: Vec<&'a Task>,
    svc: &Service,
    plan: &mut Plan,
) -> Option<&'a Task> {
    live.sort_by(|a, b| {
        let rank = |t: &Task| {
            (
                update::is_current(t, svc),
                task::state(t),
                task::created_at(t),
            )
        };
        rank(b).cmp(&rank(a)).then(a.id.cmp(&b.id))
    });
    let mut live = live.into_iter();
    let keep = live.next();
    for extra in live {
        plan.stop(extra, TaskState::Shutdown);
    }
    keep
}

/// One slot's state for [`fill_slot`].
pub(crate) struct Slot<'a> {
    pub key: SlotKey,
    /// Every task of the slot (the current job iteration only, for jobs).
    pub tasks: &'a [&'a Task],
    /// The slot's tasks that are still alive.
    pub live: Vec<&'a Task>,
}

/// What [`fill_slot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filled {
    /// The slot has a live task (possibly being replaced by an updated one).
    Kept,
    /// A new task was planned for the empty slot.
    Created,
    /// The slot stays empty for now (a delayed restart, the policy, or no
    /// permission to create).
    Empty,
}

/// Makes sure a job's slot has one live task: keeps one, or refills an
/// empty slot per the restart policy. Without `may_create` (a paused node, a
/// job at its concurrency limit) it only keeps what is there. (Services
/// that run until stopped go through `update::fill_slot`, which also rolls
/// outdated tasks forward.)
pub(crate) fn fill_slot(
    svc: &Service,
    slot: Slot<'_>,
    may_create: bool,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) -> Filled {
    if keep_one(slot.live, svc, plan).is_some() {
        return Filled::Kept;
    }
    if !may_create {
        return Filled::Empty;
    }
    refill(svc, &slot.key, slot.tasks, sup, clock, plan)
}

/// Gives a slot without a live task its next task, per the restart policy.
pub(crate) fn refill(
    svc: &Service,
    key: &SlotKey,
    tasks: &[&Task],
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) -> Filled {
    let node = (!key.node_id.is_empty()).then_some(key.node_id.as_str());
    match sup.next_for_empty_slot(key, tasks, svc, clock) {
        SlotAction::Create { restart_count } => {
            let t = new_task(svc, key.slot, node, restart_count, clock.nanos);
            // Only the restart policy raises the count above the slot's.
            let before = tasks.iter().map(|t| t.restart_count).max().unwrap_or(0);
            if restart_count > before {
                plan.restarts.push(t.id.clone());
            }
            plan.create(t);
            Filled::Created
        }
        SlotAction::WaitUntil(at) => {
            plan.wake(at);
            Filled::Empty
        }
        SlotAction::Stay => Filled::Empty,
    }
}
