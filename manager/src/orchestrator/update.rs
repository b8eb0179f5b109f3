//! Rolling updates and rollbacks: bringing a service's tasks to its current
//! spec batch by batch, as its `UpdateConfig` says (swarmkit's updater).
//!
//! The Control API bumps a service's `spec_version` whenever its task
//! template changes and marks the update started (`UpdateStatus` UPDATING,
//! or ROLLBACK_STARTED for `service rollback`). A live task is *current* when
//! it runs the service's task template (same `spec_version`, or an older one
//! with the same content: after a rollback, tasks never updated are current
//! again) and *outdated* otherwise; it is *ready* once it serves
//! (`task::serves`: RUNNING and, with a health check, healthy).
//!
//! Nothing is kept in memory: every pass reads the update's progress from
//! the store (the service's `UpdateStatus` and its tasks), so a new leader
//! carries on where the old one stopped and never redoes a finished slot.
//! Each pass, per service:
//!
//! - A slot whose current task is ready loses its outdated task (start-first:
//!   the old one is stopped only now). A slot whose current task is not ready
//!   yet is *in flight* (and keeps its outdated one running meanwhile); so is
//!   a slot whose outdated task was asked to stop and has not stopped yet
//!   (stop-first: its successor is created only once it has, so a host port
//!   or a volume is free again).
//! - Up to `parallelism` slots are in flight at once (0: all). A new slot is
//!   started only `delay` after the last updated task became ready (its
//!   RUNNING time: a health status does not move a task's timestamp).
//!   Start-first: the new task is created beside the old one; stop-first: the
//!   old one is asked to stop first. Slots go in slot (or node) order.
//! - A task of the new template created since the update started that fails
//!   (FAILED, REJECTED, a non-zero exit: an unhealthy task fails) counts
//!   against `max_failure_ratio` of the service's slots; past it,
//!   `failure_action` applies: `pause` (status PAUSED; nothing more is
//!   updated, slots go on being restarted per the restart policy),
//!   `rollback` (the previous spec comes back, status ROLLBACK_STARTED, rolled
//!   out with the rollback config), `continue`. A rollback that fails pauses
//!   (ROLLBACK_PAUSED) unless its failure action is `continue`. Failures are
//!   counted while the update runs, not only within `monitor` of each task.
//! - The update is COMPLETED (ROLLBACK_COMPLETED) once every slot has a ready
//!   current task and no outdated one, `monitor` after the last one became
//!   ready.
//!
//! Without an update config, Docker's defaults apply: parallelism 1, no
//! delay, pause on failure, 5 s monitor, no failures tolerated, stop-first.
//! A config given is taken as it is (the CLI and Compose fill in those
//! defaults for the keys not given). A paused update is resumed by the next
//! `service update`. Jobs are not updated in place: a changed job runs again
//! as a new job iteration.

use std::collections::HashMap;
use std::time::Duration;

use rswarm_proto::types::update_config::{FailureAction, UpdateOrder};
use rswarm_proto::types::update_status::State as UpdateState;
use rswarm_proto::types::{Node, Service, Task, TaskState, UpdateConfig, UpdateStatus};

use super::plan::{keep_one, refill, Filled, Plan, Slot};
use super::restart::{Clock, RestartSupervisor};
use super::task::{self, new_task, ModeKind};
use super::view::ClusterView;

/// Docker's default monitor period after each task update.
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// Docker's default stop grace period.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// How much longer than its grace period a stopping task may hold back its
/// successor (stop-first) before the successor is created anyway.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// Swarm's default update and rollback config.
pub(crate) fn default_config() -> UpdateConfig {
    UpdateConfig {
        parallelism: 1,
        delay_ns: 0,
        failure_action: FailureAction::Pause as i32,
        monitor_ns: DEFAULT_MONITOR.as_nanos() as i64,
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst as i32,
    }
}

/// The task runs the service's current task template (always true for jobs,
/// which are not updated in place).
pub(crate) fn is_current(t: &Task, svc: &Service) -> bool {
    ModeKind::of(svc).is_job() || rswarm_proto::spec::rollout::runs_current_template(t, svc)
}

/// The state of the service's update, UNKNOWN without one.
pub(crate) fn update_state(svc: &Service) -> UpdateState {
    svc.update_status
        .as_ref()
        .and_then(|u| UpdateState::try_from(u.state).ok())
        .unwrap_or(UpdateState::Unknown)
}

/// Whether the service's update (or rollback) is under way.
pub(crate) fn is_rolling(svc: &Service) -> bool {
    matches!(
        update_state(svc),
        UpdateState::Updating | UpdateState::RollbackStarted
    )
}

/// One service's rollout in one pass: what its slots look like, gathered by
/// [`fill_slot`], then acted on by [`advance`].
pub(crate) struct Rollout<'a> {
    svc: &'a Service,
    state: UpdateState,
    config: UpdateConfig,
    nodes: &'a HashMap<String, Node>,
    /// Slots seen.
    slots: usize,
    /// Slots with a ready current task and nothing outdated.
    done: usize,
    /// Slots being updated now.
    in_flight: usize,
    /// Outdated tasks whose slots wait for their turn.
    waiting: Vec<&'a Task>,
    /// When the last task updated in this rollout became ready (unix ns).
    last_ready: i64,
}

impl<'a> Rollout<'a> {
    pub(crate) fn new(svc: &'a Service, nodes: &'a HashMap<String, Node>) -> Rollout<'a> {
        let state = update_state(svc);
        let spec = svc.spec.as_ref();
        let config = if matches!(
            state,
            UpdateState::RollbackStarted | UpdateState::RollbackPaused
        ) {
            spec.and_then(|s| s.rollback)
        } else {
            spec.and_then(|s| s.update)
        };
        Rollout {
            svc,
            state,
            config: config.unwrap_or_else(default_config),
            nodes,
            slots: 0,
            done: 0,
            in_flight: 0,
            waiting: Vec::new(),
            last_ready: 0,
        }
    }

    /// A slot that has no task at all yet (it is being created).
    pub(crate) fn note_empty_slot(&mut self) {
        self.slots += 1;
    }

    fn started_at(&self) -> i64 {
        self.svc
            .update_status
            .as_ref()
            .map(|u| u.started_at)
            .unwrap_or(0)
    }

    fn paused(&self) -> bool {
        matches!(
            self.state,
            UpdateState::Paused | UpdateState::RollbackPaused
        )
    }

    /// The slot's outdated task that was asked to stop and has not yet
    /// (its node is up, and it is within its grace period and some slack):
    /// its successor waits. Returns when to give up waiting (unix ns).
    fn stopping_predecessor(&self, tasks: &[&Task]) -> Option<i64> {
        tasks
            .iter()
            .filter(|t| {
                t.desired_state > TaskState::Running as i32
                    && !task::has_ended(t)
                    && !is_current(t, self.svc)
                    && !t.node_id.is_empty()
                    && !task::node_down_or_missing(self.nodes.get(&t.node_id))
            })
            .map(|t| {
                let grace = t
                    .spec
                    .as_ref()
                    .and_then(|s| s.container.as_ref())
                    .map(|c| c.stop_grace_period_ns)
                    .filter(|&ns| ns > 0)
                    .map_or(DEFAULT_STOP_GRACE, |ns| Duration::from_nanos(ns as u64));
                let asked = t.meta.as_ref().map(|m| m.updated_at).unwrap_or(0);
                asked.saturating_add((grace + STOP_SLACK).as_nanos() as i64)
            })
            .max()
    }
}

/// Makes sure a slot of a service that runs until stopped has one live task
/// of the current spec: keeps the best current task (and, while it is not
/// ready, the outdated one it replaces), notes an outdated slot for
/// [`advance`] to update in its turn, or refills an empty slot per the
/// restart policy. Without `may_create` (a paused node) it only keeps what
/// is there.
pub(crate) fn fill_slot<'a>(
    roll: &mut Rollout<'a>,
    slot: Slot<'a>,
    may_create: bool,
    sup: &mut RestartSupervisor,
    clock: Clock,
    plan: &mut Plan,
) -> Filled {
    let svc = roll.svc;
    roll.slots += 1;
    let (current, outdated): (Vec<&Task>, Vec<&Task>) =
        slot.live.into_iter().partition(|t| is_current(t, svc));
    if let Some(new) = keep_one(current, svc, plan) {
        if task::serves(new) {
            for old in outdated {
                plan.stop(old, TaskState::Shutdown);
            }
            roll.done += 1;
            let started = roll.started_at();
            if task::created_at(new) >= started && started > 0 {
                let at = new.status.as_ref().map(|s| s.timestamp).unwrap_or(0);
                roll.last_ready = roll.last_ready.max(at);
            }
        } else {
            // Start-first: the old task serves until the new one does.
            keep_one(outdated, svc, plan);
            roll.in_flight += 1;
        }
        return Filled::Kept;
    }
    if let Some(old) = keep_one(outdated, svc, plan) {
        if may_create {
            roll.waiting.push(old);
        }
        return Filled::Kept;
    }
    if !may_create {
        return Filled::Empty;
    }
    if let Some(until) = roll.stopping_predecessor(slot.tasks) {
        if clock.nanos < until {
            roll.in_flight += 1;
            plan.wake(clock.instant + Duration::from_nanos((until - clock.nanos) as u64));
            return Filled::Empty;
        }
    }
    let filled = refill(svc, &slot.key, slot.tasks, sup, clock, plan);
    if filled == Filled::Created {
        roll.in_flight += 1;
    }
    filled
}

/// After every slot of the service went through [`fill_slot`]: applies the
/// failure action, starts the next slots' updates, and marks the update
/// completed.
pub(crate) fn advance(view: &ClusterView<()>, roll: Rollout<'_>, clock: Clock, plan: &mut Plan) {
    let svc = roll.svc;
    if roll.paused() {
        return;
    }
    let rolling = is_rolling(svc);
    let cfg = &roll.config;
    if rolling {
        let started = roll.started_at();
        let mut failed: Vec<(i64, String)> = view
            .service_tasks(&svc.id)
            .filter(|t| is_current(t, svc) && task::created_at(t) >= started && task::failed(t))
            .map(|t| (task::created_at(t), t.id.clone()))
            .collect();
        failed.sort();
        let tolerated = f64::from(cfg.max_failure_ratio) * roll.slots.max(1) as f64;
        if let Some((_, first)) = failed.first() {
            if failed.len() as f64 > tolerated {
                let action =
                    FailureAction::try_from(cfg.failure_action).unwrap_or(FailureAction::Pause);
                let rolling_back = roll.state == UpdateState::RollbackStarted;
                match action {
                    FailureAction::Continue => {}
                    FailureAction::Rollback if !rolling_back => {
                        match rolled_back(view, svc, first, clock.nanos) {
                            Ok(back) => plan.write_service(back),
                            Err(why) => {
                                tracing::warn!(service = %svc.id, "cannot roll back: {why}");
                                plan.write_service(paused(svc, first, false, clock.nanos));
                            }
                        }
                        return;
                    }
                    _ => {
                        plan.write_service(paused(svc, first, rolling_back, clock.nanos));
                        return;
                    }
                }
            }
        }
    }

    let limit = match cfg.parallelism {
        0 => usize::MAX,
        p => usize::try_from(p).unwrap_or(usize::MAX),
    };
    let mut free = limit.saturating_sub(roll.in_flight);
    let mut waiting = roll.waiting;
    if free > 0 && !waiting.is_empty() && cfg.delay_ns > 0 && roll.last_ready > 0 {
        let due = roll.last_ready.saturating_add(cfg.delay_ns);
        if clock.nanos < due {
            plan.wake(clock.instant + Duration::from_nanos((due - clock.nanos) as u64));
            free = 0;
        }
    }
    waiting.sort_by(|a, b| (a.slot, &a.node_id).cmp(&(b.slot, &b.node_id)));
    let start_first = cfg.order == UpdateOrder::StartFirst as i32;
    for old in waiting.iter().take(free) {
        if start_first {
            let node = (old.slot == 0 && !old.node_id.is_empty()).then_some(old.node_id.as_str());
            plan.create(new_task(svc, old.slot, node, 0, clock.nanos));
        } else {
            plan.stop(old, TaskState::Shutdown);
        }
    }

    if rolling && waiting.is_empty() && roll.in_flight == 0 && roll.done == roll.slots {
        let monitor = cfg.monitor_ns.max(0);
        let due = roll.last_ready.saturating_add(monitor);
        if clock.nanos >= due {
            plan.write_service(completed(svc, clock.nanos));
        } else {
            plan.wake(clock.instant + Duration::from_nanos((due - clock.nanos) as u64));
        }
    }
}

fn with_status(
    svc: &Service,
    state: UpdateState,
    message: String,
    now: i64,
    done: bool,
) -> Service {
    let mut s = svc.clone();
    let old = s.update_status.take().unwrap_or_default();
    s.update_status = Some(UpdateStatus {
        state: state as i32,
        started_at: old.started_at,
        completed_at: if done { now } else { 0 },
        message,
    });
    s
}

fn completed(svc: &Service, now: i64) -> Service {
    if update_state(svc) == UpdateState::RollbackStarted {
        with_status(
            svc,
            UpdateState::RollbackCompleted,
            "rollback completed".into(),
            now,
            true,
        )
    } else {
        with_status(
            svc,
            UpdateState::Completed,
            "update completed".into(),
            now,
            true,
        )
    }
}

fn paused(svc: &Service, task_id: &str, rollback: bool, now: i64) -> Service {
    let (state, what) = if rollback {
        (UpdateState::RollbackPaused, "rollback")
    } else {
        (UpdateState::Paused, "update")
    };
    with_status(
        svc,
        state,
        format!("{what} paused due to failure or early termination of task {task_id}"),
        now,
        false,
    )
}

/// The service with its previous spec (and that spec's published ports)
/// back and its rollback started.
fn rolled_back(
    view: &ClusterView<()>,
    svc: &Service,
    task_id: &str,
    now: i64,
) -> Result<Service, String> {
    let mut s = svc.clone();
    let previous = s
        .previous_spec
        .take()
        .ok_or("the service has no previous spec")?;
    let endpoint_spec = previous.endpoint.clone().unwrap_or_default();
    let endpoint = s.endpoint.get_or_insert_with(Default::default);
    if endpoint.spec.as_ref() != Some(&endpoint_spec) {
        let services: Vec<Service> = view.services.values().cloned().collect();
        endpoint.ports = crate::allocator::ports::allocate(&services, &svc.id, &endpoint_spec)
            .map_err(|e| e.to_string())?;
        endpoint.spec = Some(endpoint_spec);
    }
    let current = s.spec.take();
    if current.as_ref().and_then(|c| c.task.as_ref()) != previous.task.as_ref() {
        s.spec_version += 1;
    }
    s.spec = Some(previous);
    s.previous_spec = current;
    crate::objects::bump_spec_version(&mut s);
    s.update_status = Some(UpdateStatus {
        state: UpdateState::RollbackStarted as i32,
        started_at: now,
        completed_at: 0,
        message: format!(
            "update rolled back due to failure or early termination of task {task_id}"
        ),
    });
    Ok(s)
}

#[cfg(test)]
mod tests;
