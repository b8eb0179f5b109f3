//! Restart policy: what happens to a slot (a replica number, or a node for
//! global modes) whose task is no longer alive.
//!
//! - A task that ended on its own (COMPLETE, FAILED, REJECTED) is restarted
//!   per its spec's policy: condition `any` (the default; for jobs a
//!   completed task is done, so `any` acts as `on-failure`), `on-failure`
//!   (FAILED, REJECTED or a non-zero exit code) or `none`; after `delay`
//!   (5 s unless `delay_set`), at most `max_attempts` times (0: unlimited)
//!   within `window` (0: ever). "max attempts 3" gives the slot exactly three
//!   restarts — four tasks in all — then it stays down.
//! - A task we stopped (scale down, update) or that was lost with its node
//!   (Down, drained, removed) did not fail: its slot is refilled at once,
//!   without delay and without counting an attempt. Unlike swarmkit this also
//!   holds for condition `none`: losing a node is not the task's doing.
//! - A service updated since the slot's last task starts that slot afresh.
//!
//! Nothing here blocks: a restart that is not yet due answers with the
//! instant it will be, and the loop comes back then. Everything needed to
//! decide is in the store (the slot's newest task and its `restart_count`),
//! so a new leader carries on where the old one stopped; only the delay is
//! counted from when this manager first saw the task end.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rswarm_proto::types::restart_policy::Condition;
use rswarm_proto::types::{Service, Task};

use super::task::{self, ModeKind};

/// Docker's default restart delay.
pub(super) const DEFAULT_DELAY: Duration = Duration::from_secs(5);

/// The two clocks a decision needs: the loop's monotonic one for delays,
/// wall time (unix ns, as stored in tasks) for windows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub instant: Instant,
    pub nanos: i64,
}

impl Clock {
    pub(super) fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            nanos: crate::objects::now_nanos(),
        }
    }
}

/// A slot: replicated tasks share `slot`, global ones `node_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SlotKey {
    pub service_id: String,
    pub slot: u64,
    pub node_id: String,
}

/// What to do with a slot that has no live task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotAction {
    /// Create its next task with this restart count.
    Create { restart_count: u32 },
    /// A restart is due at this instant.
    WaitUntil(Instant),
    /// The policy says no (or the job slot is done): leave it empty.
    Stay,
}

/// A task spec's restart policy with Docker's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub condition: Condition,
    pub delay: Duration,
    pub max_attempts: u64,
    /// Zero: attempts are counted forever.
    pub window: Duration,
}

pub(crate) fn policy(t: &Task) -> Policy {
    let r = t.spec.as_ref().and_then(|s| s.restart.as_ref());
    let nanos = |ns: i64| Duration::from_nanos(ns.max(0) as u64);
    match r {
        None => Policy {
            condition: Condition::Any,
            delay: DEFAULT_DELAY,
            max_attempts: 0,
            window: Duration::ZERO,
        },
        Some(r) => Policy {
            condition: Condition::try_from(r.condition).unwrap_or(Condition::Any),
            delay: if r.delay_set {
                nanos(r.delay_ns)
            } else {
                DEFAULT_DELAY
            },
            max_attempts: r.max_attempts,
            window: nanos(r.window_ns),
        },
    }
}

/// Restart times of one slot (wall clock, unix ns) for the spec version
/// they were counted under; only kept for policies with a window.
struct SlotHistory {
    spec_version: u64,
    restarts: VecDeque<i64>,
}

/// Remembers what the store cannot say: when a dead task was first seen
/// (delays) and, for policies with a window, restarts whose tasks the reaper
/// may already have deleted.
#[derive(Default)]
pub(crate) struct RestartSupervisor {
    dead_since: HashMap<String, Instant>,
    history: HashMap<SlotKey, SlotHistory>,
}

impl RestartSupervisor {
    /// Decides for a slot without a live task. `tasks` are the slot's tasks
    /// (any state, the current job iteration only for jobs).
    pub(super) fn next_for_empty_slot(
        &mut self,
        key: &SlotKey,
        tasks: &[&Task],
        svc: &Service,
        clock: Clock,
    ) -> SlotAction {
        let mode = ModeKind::of(svc);
        let Some(latest) = tasks.iter().copied().max_by(|a, b| {
            task::created_at(a)
                .cmp(&task::created_at(b))
                .then(a.id.cmp(&b.id))
        }) else {
            return SlotAction::Create { restart_count: 0 };
        };
        if !super::update::is_current(latest, svc) {
            return SlotAction::Create { restart_count: 0 };
        }
        if !task::ended_on_its_own(latest) {
            return SlotAction::Create {
                restart_count: latest.restart_count,
            };
        }
        if mode.is_job() && task::completed(latest) {
            return SlotAction::Stay;
        }
        let p = policy(latest);
        match p.condition {
            Condition::None => return SlotAction::Stay,
            Condition::OnFailure if !task::failed(latest) => return SlotAction::Stay,
            _ => {}
        }
        if p.max_attempts > 0 {
            let used = if p.window.is_zero() {
                u64::from(latest.restart_count)
            } else {
                self.restarts_within(key, tasks, latest.spec_version, p.window, clock.nanos)
            };
            if used >= p.max_attempts {
                return SlotAction::Stay;
            }
        }
        let since = *self
            .dead_since
            .entry(latest.id.clone())
            .or_insert(clock.instant);
        let due = since + p.delay;
        if clock.instant < due {
            return SlotAction::WaitUntil(due);
        }
        // `dead_since` keeps the entry (until the task is deleted): should
        // the new task's creation fail to commit, the retry is not delayed
        // a second time.
        if !p.window.is_zero() && p.max_attempts > 0 {
            if let Some(h) = self.history.get_mut(key) {
                h.restarts.push_back(clock.nanos);
            }
        }
        SlotAction::Create {
            restart_count: latest.restart_count.saturating_add(1),
        }
    }

    /// Restarts of the slot within `window` before now, from memory, or (for
    /// a slot this manager has not seen restart yet) from the slot's tasks.
    fn restarts_within(
        &mut self,
        key: &SlotKey,
        tasks: &[&Task],
        spec_version: u64,
        window: Duration,
        now: i64,
    ) -> u64 {
        let seed = || SlotHistory {
            spec_version,
            restarts: {
                let mut times: Vec<i64> = tasks
                    .iter()
                    .filter(|t| t.restart_count > 0 && t.spec_version == spec_version)
                    .map(|t| task::created_at(t))
                    .collect();
                times.sort_unstable();
                times.into()
            },
        };
        let h = self.history.entry(key.clone()).or_insert_with(seed);
        if h.spec_version != spec_version {
            *h = seed();
        }
        let since = now.saturating_sub(i64::try_from(window.as_nanos()).unwrap_or(i64::MAX));
        while h.restarts.front().is_some_and(|t| *t < since) {
            h.restarts.pop_front();
        }
        h.restarts.len() as u64
    }

    /// Forgets tasks and services that are gone.
    pub(super) fn forget_missing(&mut self, tasks: &HashSet<&str>, services: &HashSet<&str>) {
        self.dead_since.retain(|id, _| tasks.contains(id.as_str()));
        self.history
            .retain(|k, _| services.contains(k.service_id.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{
        ContainerStatus, Meta, RestartPolicy, ServiceSpec, TaskSpec, TaskState, TaskStatus,
    };

    fn svc() -> Service {
        Service {
            id: "s".into(),
            spec: Some(ServiceSpec::default()),
            spec_version: 1,
            ..Default::default()
        }
    }

    fn dead(id: &str, state: TaskState, exit: i32, restarts: u32, restart: RestartPolicy) -> Task {
        Task {
            id: id.into(),
            meta: Some(Meta {
                created_at: 10 + i64::from(restarts),
                ..Default::default()
            }),
            spec: Some(TaskSpec {
                restart: Some(restart),
                ..Default::default()
            }),
            spec_version: 1,
            service_id: "s".into(),
            slot: 1,
            status: Some(TaskStatus {
                state: state as i32,
                container_status: Some(ContainerStatus {
                    exit_code: exit,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_count: restarts,
            ..Default::default()
        }
    }

    fn key() -> SlotKey {
        SlotKey {
            service_id: "s".into(),
            slot: 1,
            node_id: String::new(),
        }
    }

    fn no_delay(condition: Condition, max_attempts: u64) -> RestartPolicy {
        RestartPolicy {
            condition: condition as i32,
            delay_set: true,
            max_attempts,
            ..Default::default()
        }
    }

    #[test]
    fn on_failure_restarts_failures_only_and_counts_attempts() {
        let mut sup = RestartSupervisor::default();
        let clock = Clock::now();
        let p = no_delay(Condition::OnFailure, 3);
        let ok = dead("a", TaskState::Complete, 0, 0, p);
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&ok], &svc(), clock),
            SlotAction::Stay
        );
        let failed = dead("b", TaskState::Failed, 1, 2, p);
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&failed], &svc(), clock),
            SlotAction::Create { restart_count: 3 }
        );
        let third = dead("c", TaskState::Failed, 1, 3, p);
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&third], &svc(), clock),
            SlotAction::Stay
        );
        let none = dead("d", TaskState::Failed, 1, 0, no_delay(Condition::None, 0));
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&none], &svc(), clock),
            SlotAction::Stay
        );
    }

    #[test]
    fn the_delay_is_counted_from_when_the_end_was_seen() {
        let mut sup = RestartSupervisor::default();
        let clock = Clock::now();
        let t = dead("a", TaskState::Failed, 1, 0, RestartPolicy::default());
        let due = clock.instant + DEFAULT_DELAY;
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&t], &svc(), clock),
            SlotAction::WaitUntil(due)
        );
        let later = Clock {
            instant: due,
            nanos: clock.nanos,
        };
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&t], &svc(), later),
            SlotAction::Create { restart_count: 1 }
        );
    }

    #[test]
    fn a_window_counts_only_recent_restarts() {
        let mut sup = RestartSupervisor::default();
        let p = RestartPolicy {
            window_ns: 1_000,
            ..no_delay(Condition::Any, 1)
        };
        // Restarted once at t=11 (the task's creation): within the window at 500, not at 5000.
        let t = dead("a", TaskState::Failed, 1, 1, p);
        let at = |nanos| Clock {
            instant: Instant::now(),
            nanos,
        };
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&t], &svc(), at(500)),
            SlotAction::Stay
        );
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&t], &svc(), at(5_000)),
            SlotAction::Create { restart_count: 2 }
        );
    }

    #[test]
    fn lost_or_stopped_tasks_are_replaced_at_once_and_outdated_slots_start_afresh() {
        let mut sup = RestartSupervisor::default();
        let clock = Clock::now();
        let mut stopped = dead("a", TaskState::Running, 0, 2, RestartPolicy::default());
        stopped.desired_state = TaskState::Shutdown as i32;
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&stopped], &svc(), clock),
            SlotAction::Create { restart_count: 2 }
        );
        let mut updated = svc();
        updated.spec_version = 2;
        let failed = dead("b", TaskState::Failed, 1, 3, no_delay(Condition::None, 0));
        assert_eq!(
            sup.next_for_empty_slot(&key(), &[&failed], &updated, clock),
            SlotAction::Create { restart_count: 0 }
        );
    }
}
