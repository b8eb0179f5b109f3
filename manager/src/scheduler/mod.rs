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
}

/// Schedules for one leadership term: runs until the leader supervisor
/// (`crate::leader`) aborts it, or the store fails under it.
pub async fn run(store: Store) -> Result<(), ManagerError> {
    let store = &store;
    let mut changes = store.watch();
    let mut sched = Scheduler::new(ClusterView::load(store, Accounting::default())?);
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
            let batch = std::mem::take(&mut sched.batch);
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
                sched = Scheduler::new(ClusterView::load(store, Accounting::default())?);
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
        }
    }

    /// What the node carries (nothing, for a node without tasks).
    fn info(&self, node_id: &str) -> &NodeInfo {
        self.view.observer.nodes.get(node_id).unwrap_or(&self.empty)
    }

    /// Decides for every pending task, filling `self.batch`.
    pub(crate) fn plan_pass(&mut self) {
        self.now = now_nanos();
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
