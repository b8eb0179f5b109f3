//! The scheduler: places pending tasks on nodes. "Why wasn't my task
//! placed?" is answered here.
//!
//! It picks up tasks in PENDING that are still wanted (desired RUNNING, or
//! COMPLETE for jobs). Tasks without a node are grouped by service and spec
//! version; for each group the filters (`filter`, run by `pipeline`) pick the
//! nodes that can take it — Ready and Active, placement constraints, memory
//! and CPU reservations against what the node's other tasks reserve, host
//! ports, platform, max replicas per node — and `spread` deals the tasks out
//! over them. Global tasks arrive with their node preset; they are only
//! checked against that node.
//!
//! A placed task becomes ASSIGNED ("scheduler assigned task to node"). A task
//! no node can take stays PENDING, its message and error saying why, as
//! Docker does: "no suitable node (insufficient memory on 3 nodes)". That is
//! written only when the reason changes.
//!
//! Per-node load (`nodeinfo`) is kept up to date task by task from the
//! store's change stream, so a pass costs what is pending, not what runs.
//! Each pass is written as one batch (in chunks). Only the Raft leader
//! schedules: the leader supervisor (`crate::leader`) runs [`run`] while
//! this manager leads and aborts it when it stops.

pub(crate) mod filter;
pub(crate) mod nodeinfo;
pub(crate) mod pipeline;
mod spread;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rswarm_proto::types::{TaskState, TaskStatus};
use rswarm_raft::{Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

use self::filter::{Candidate, Request};
use self::nodeinfo::{Accounting, NodeInfo};
use self::pipeline::Pipeline;
use crate::error::ManagerError;
use crate::metrics::SchedulerMetrics;
use crate::objects::now_nanos;
use crate::orchestrator::view::{commit, drain, Batch, ClusterView, Drained};
use crate::orchestrator::STORE_ERROR_PAUSE;

/// The message of a task the scheduler placed.
pub const ASSIGNED_MESSAGE: &str = "scheduler assigned task to node";

/// Pause before retrying tasks whose writes conflicted.
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);

/// The leader's scheduling state: the view with per-node accounting, and
/// the batch of the pass under way.
pub(crate) struct Scheduler {
    view: ClusterView<Accounting>,
    batch: Batch,
    now: i64,
    empty: NodeInfo,
    metrics: SchedulerMetrics,
    /// Tasks this pass assigned, with how long (seconds) each was pending.
    /// (`None`: the task carries no pending time.)
    placed: Vec<(String, Option<f64>)>,
    /// Tasks this pass could not place, by reason.
    unplaced: BTreeMap<&'static str, i64>,
}

/// Clears the pending gauge when the scheduler stops (leadership lost): a
/// follower places nothing.
struct ClearPending(SchedulerMetrics);

impl Drop for ClearPending {
    fn drop(&mut self) {
        self.0.pending.clear();
    }
}

/// Schedules for one leadership term: runs until the leader supervisor
/// (`crate::leader`) aborts it, or the store fails under it.
pub async fn run(store: Store) -> Result<(), ManagerError> {
    run_measured(store, SchedulerMetrics::default()).await
}

/// [`run`], measuring into `metrics`.
pub(crate) async fn run_measured(
    store: Store,
    metrics: SchedulerMetrics,
) -> Result<(), ManagerError> {
    let store = &store;
    let _clear = ClearPending(metrics.clone());
    let mut changes = store.watch();
    let mut sched =
        Scheduler::new(ClusterView::load(store, Accounting::default())?).measured(metrics.clone());
    tracing::info!(
        nodes = sched.view.nodes.len(),
        pending = sched.view.observer.pending.len(),
        "scheduler: leading"
    );
    let mut changed = true;
    loop {
        let mut retry = false;
        let mut stream = Drained::CaughtUp;
        if changed && !sched.view.observer.pending.is_empty() {
            changed = false;
            sched.plan_pass();
            metrics.set_pending(&sched.unplaced);
            let batch = std::mem::take(&mut sched.batch);
            let placed = std::mem::take(&mut sched.placed);
            if !batch.is_empty() {
                let writes = batch.len();
                let committed = commit(store, &mut sched.view, batch, |v| {
                    if stream == Drained::CaughtUp {
                        stream = drain(&mut changes, v, |_| changed = true);
                    }
                })
                .await;
                tracing::debug!(
                    writes,
                    written = committed.written,
                    rolled_back = committed.rolled_back.len(),
                    "scheduler pass"
                );
                if committed.error.is_none() {
                    sched.count_placed(placed, &committed.rolled_back);
                }
                match committed.error {
                    Some(e @ (StoreError::NoLeader | StoreError::Shutdown)) => return Err(e.into()),
                    Some(e) => {
                        tracing::warn!(error = %e, "scheduler could not write its decisions; retrying in {STORE_ERROR_PAUSE:?}");
                        tokio::time::sleep(STORE_ERROR_PAUSE).await;
                    }
                    None => {}
                }
                retry = !committed.rolled_back.is_empty();
            }
        } else {
            if sched.view.observer.pending.is_empty() {
                metrics.pending.clear();
            }
            changed = false;
        }
        changed |= retry;
        if stream == Drained::CaughtUp && !changed {
            // Nothing to do until the store changes.
            match changes.recv().await {
                Ok(c) => changed |= sched.view.apply(&c).is_some(),
                Err(RecvError::Lagged(_)) => stream = Drained::Lagged,
                Err(RecvError::Closed) => stream = Drained::Closed,
            }
        } else if retry {
            tokio::time::sleep(CONFLICT_PAUSE).await;
        }
        if stream == Drained::CaughtUp {
            stream = drain(&mut changes, &mut sched.view, |_| changed = true);
        }
        match stream {
            Drained::CaughtUp => {}
            Drained::Lagged => {
                tracing::debug!("scheduler fell behind the change stream; reloading");
                sched = Scheduler::new(ClusterView::load(store, Accounting::default())?)
                    .measured(metrics.clone());
                changed = true;
            }
            Drained::Closed => return Ok(()),
        }
    }
}

impl Scheduler {
    pub(crate) fn new(view: ClusterView<Accounting>) -> Scheduler {
        Scheduler {
            view,
            batch: Batch::default(),
            now: now_nanos(),
            empty: NodeInfo::default(),
            metrics: SchedulerMetrics::default(),
            placed: Vec::new(),
            unplaced: BTreeMap::new(),
        }
    }

    /// This scheduler measuring into `metrics`.
    pub(crate) fn measured(mut self, metrics: SchedulerMetrics) -> Scheduler {
        self.metrics = metrics;
        self
    }

    /// Counts the tasks a pass placed whose writes were not rolled back.
    pub(crate) fn count_placed(&self, placed: Vec<(String, Option<f64>)>, rolled_back: &[String]) {
        let rolled_back: std::collections::HashSet<&str> =
            rolled_back.iter().map(String::as_str).collect();
        for (id, pending_for) in placed {
            if !rolled_back.contains(id.as_str()) {
                self.metrics.scheduled.inc();
                if let Some(secs) = pending_for {
                    self.metrics.latency.observe(secs);
                }
            }
        }
    }

    /// What the node carries (nothing, for a node without tasks).
    fn info(&self, node_id: &str) -> &NodeInfo {
        self.view.observer.nodes.get(node_id).unwrap_or(&self.empty)
    }

    /// Decides for every pending task, filling `self.batch`.
    pub(crate) fn plan_pass(&mut self) {
        self.now = now_nanos();
        self.placed.clear();
        self.unplaced.clear();
        let mut preassigned: Vec<String> = Vec::new();
        let mut groups: BTreeMap<(String, u64), Vec<(u64, String)>> = BTreeMap::new();
        for id in &self.view.observer.pending {
            let Some(t) = self.view.tasks.get(id) else {
                continue;
            };
            if !t.node_id.is_empty() {
                preassigned.push(id.clone());
            } else {
                groups
                    .entry((t.service_id.clone(), t.spec_version))
                    .or_default()
                    .push((t.slot, id.clone()));
            }
        }
        preassigned.sort();
        for id in preassigned {
            self.place_preassigned(&id);
        }
        for (_, mut tasks) in groups {
            tasks.sort();
            self.place_group(tasks.into_iter().map(|(_, id)| id).collect());
        }
    }

    /// A global task: its node was chosen by the orchestrator; check it.
    fn place_preassigned(&mut self, id: &str) {
        let Some(t) = self.view.tasks.get(id) else {
            return;
        };
        let node_id = t.node_id.clone();
        let req = Request::of(t);
        let pipeline = Pipeline::new(&req);
        // A task whose node left the swarm is the orchestrator's to shut down.
        let Some(node) = self.view.nodes.get(&node_id) else {
            return;
        };
        let candidate = Candidate {
            node,
            info: self.info(&node_id),
        };
        if pipeline.passes(candidate) {
            self.assign(id, &node_id);
        } else {
            let message = pipeline.explain(std::iter::once(candidate));
            *self
                .unplaced
                .entry(pipeline.reason(std::iter::once(candidate)))
                .or_default() += 1;
            self.set_pending_message(id, &message);
        }
    }

    /// Tasks of one service and spec, lowest slots first.
    fn place_group(&mut self, ids: Vec<String>) {
        let Some(first) = ids.first().and_then(|id| self.view.tasks.get(id)) else {
            return;
        };
        let req = Request::of(first);
        let pipeline = Pipeline::new(&req);
        let mut eligible: Vec<String> = self
            .view
            .nodes
            .values()
            .filter(|n| {
                pipeline.passes(Candidate {
                    node: n,
                    info: self.info(&n.id),
                })
            })
            .map(|n| n.id.clone())
            .collect();
        eligible.sort();
        let mut queue: VecDeque<String> = ids.into();
        let want = queue.len();
        self.place_on_subtree(&req, &pipeline, &mut queue, eligible, &req.spread, want);
        if queue.is_empty() {
            return;
        }
        let message = pipeline.explain(self.view.nodes.values().map(|n| Candidate {
            node: n,
            info: self.info(&n.id),
        }));
        let reason = pipeline.reason(self.view.nodes.values().map(|n| Candidate {
            node: n,
            info: self.info(&n.id),
        }));
        *self.unplaced.entry(reason).or_default() += queue.len() as i64;
        for id in queue {
            self.set_pending_message(&id, &message);
        }
    }

    /// Gives the task to the node.
    fn assign(&mut self, task_id: &str, node_id: &str) {
        let Some(t) = self.view.tasks.get(task_id) else {
            return;
        };
        let mut t = t.clone();
        t.node_id = node_id.to_string();
        let status = t.status.get_or_insert_with(TaskStatus::default);
        let pending_since = status.timestamp;
        self.placed.push((
            task_id.to_string(),
            (pending_since > 0).then(|| pending_seconds(pending_since, self.now)),
        ));
        status.state = TaskState::Assigned as i32;
        status.message = ASSIGNED_MESSAGE.into();
        status.err.clear();
        status.timestamp = self.now;
        self.batch.put_task(&mut self.view, t);
    }

    /// Records why the task waits, unless it already says so.
    fn set_pending_message(&mut self, task_id: &str, message: &str) {
        let Some(t) = self.view.tasks.get(task_id) else {
            return;
        };
        if t.status
            .as_ref()
            .is_some_and(|s| s.message == message && s.err == message)
        {
            return;
        }
        let mut t = t.clone();
        let status = t.status.get_or_insert_with(TaskStatus::default);
        status.message = message.to_string();
        status.err = message.to_string();
        self.batch.put_task(&mut self.view, t);
    }
}

/// Seconds from `since` to `now` (unix ns), never negative (clocks of
/// different managers may disagree).
fn pending_seconds(since: i64, now: i64) -> f64 {
    (now.saturating_sub(since).max(0) as f64) / 1e9
}
