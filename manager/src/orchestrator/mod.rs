//! Orchestrators: turn services into tasks and keep them that way. One loop
//! on the leader reconciles every service against its tasks:
//!
//! - `replicated`: slots 1..=replicas, scale up and down;
//! - `global`: one task per eligible node, including nodes that join later;
//! - `jobs`: replicated and global jobs, run to completion;
//! - `restart`: the restart policy (condition, delay, attempts, window);
//! - `update`: rolling updates and rollbacks, batch by batch as a service's
//!   update config says, their progress kept in the service's update status;
//! - `depends`: `depends_on`, a service's first tasks wait for its
//!   dependencies;
//! - `reaper`: task history per slot, and removed services' tasks;
//! - `task`: making new tasks and the task state rules the loops share;
//! - `plan`: what one pass decided; `view`: the in-memory copy of the store
//!   the loops (this one and the scheduler) work from.
//!
//! The loop talks to nothing but the store: it reads services, tasks and
//! nodes from its view, fed by `Store::watch`, and writes tasks back in
//! batches. The scheduler then places the PENDING tasks it creates, and the
//! dispatcher carries desired states to agents and their reports back.
//!
//! Only the Raft leader orchestrates: the leader supervisor
//! (`crate::leader`) runs [`run`] while this manager leads and aborts it
//! when it stops. A manager that becomes leader loads everything and
//! reconciles every service, so nothing depends on what a previous leader
//! kept in memory (restart delays are counted again from when this leader
//! first sees a task end).

mod depends;
mod global;
mod jobs;
mod plan;
mod reaper;
mod replicated;
mod restart;
pub mod task;
mod update;
pub(crate) mod view;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rswarm_raft::{Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

use self::plan::Plan;
use self::restart::{Clock, RestartSupervisor};
use self::task::ModeKind;
use self::view::{commit, drain, Batch, ClusterView, Drained, Touched};
use crate::error::ManagerError;

/// How often the loop looks at due restarts and the full pass when nothing changes.
const TICK: Duration = Duration::from_millis(250);
/// Every so often everything is reconciled, whether or not it changed.
const FULL_PASS_EVERY: Duration = Duration::from_secs(30);
/// Pause before redoing services whose writes conflicted.
const CONFLICT_PAUSE: Duration = Duration::from_millis(20);
/// Pause after the store failed a write for another reason.
pub(crate) const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Services that need a pass.
#[derive(Default)]
struct Dirty {
    all: bool,
    services: HashSet<String>,
}

impl Dirty {
    fn everything() -> Dirty {
        Dirty {
            all: true,
            services: HashSet::new(),
        }
    }

    fn note(&mut self, touched: Option<Touched>) {
        match touched {
            None => {}
            Some(Touched::Node) | Some(Touched::Cluster) => self.all = true,
            Some(Touched::Service(id)) | Some(Touched::Task(id)) if !self.all => {
                self.services.insert(id);
            }
            Some(_) => {}
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.services.is_empty()
    }

    fn merge(&mut self, other: Dirty) {
        self.all |= other.all;
        if !self.all {
            self.services.extend(other.services);
        }
    }
}

/// The leader's orchestration state.
#[derive(Default)]
struct Orchestrator {
    restarts: RestartSupervisor,
    metrics: crate::metrics::OrchestratorMetrics,
    /// Services to look at again when a delayed restart is due.
    wakeups: BinaryHeap<Reverse<(Instant, String)>>,
    /// Services held back by `depends_on`, with the reason last logged.
    waiting: HashMap<String, String>,
}

/// Orchestrates for one leadership term: runs until the leader supervisor
/// (`crate::leader`) aborts it, or the store fails under it.
pub async fn run(store: Store) -> Result<(), ManagerError> {
    run_measured(store, Default::default()).await
}

/// [`run`], measuring into `metrics`.
pub(crate) async fn run_measured(
    store: Store,
    metrics: crate::metrics::OrchestratorMetrics,
) -> Result<(), ManagerError> {
    let store = &store;
    let mut changes = store.watch();
    let mut view = ClusterView::load(store, ())?;
    tracing::info!(
        services = view.services.len(),
        tasks = view.tasks.len(),
        "orchestrator: leading"
    );
    let mut orch = Orchestrator {
        metrics,
        ..Default::default()
    };
    let mut dirty = Dirty::everything();
    let mut last_full = Instant::now();
    loop {
        let clock = Clock::now();
        while let Some(Reverse((at, _))) = orch.wakeups.peek() {
            if *at > clock.instant {
                break;
            }
            if let Some(Reverse((_, id))) = orch.wakeups.pop() {
                dirty.note(Some(Touched::Service(id)));
            }
        }
        if last_full.elapsed() >= FULL_PASS_EVERY {
            dirty.all = true;
        }
        let mut retry = false;
        let mut stream = Drained::CaughtUp;
        if !dirty.is_empty() {
            if dirty.all {
                last_full = clock.instant;
            }
            let todo = std::mem::take(&mut dirty);
            let (again, error) = orch
                .pass(store, &mut view, todo, clock, |v| {
                    if stream == Drained::CaughtUp {
                        stream = drain(&mut changes, v, |t| dirty.note(Some(t)));
                    }
                })
                .await;
            if let Some(e) = error {
                return Err(e.into());
            }
            retry = !again.is_empty();
            dirty.merge(again);
        }
        // Changes that arrived during the pass are handled at once.
        let more_work = !retry && !dirty.is_empty();
        if stream == Drained::CaughtUp && !more_work {
            let next = if retry {
                Instant::now() + CONFLICT_PAUSE
            } else {
                let tick = Instant::now() + TICK;
                orch.wakeups
                    .peek()
                    .map_or(tick, |Reverse((at, _))| (*at).min(tick))
            };
            tokio::select! {
                r = changes.recv() => match r {
                    Ok(c) => dirty.note(view.apply(&c)),
                    Err(RecvError::Lagged(_)) => stream = Drained::Lagged,
                    Err(RecvError::Closed) => stream = Drained::Closed,
                },
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
        if stream == Drained::CaughtUp {
            stream = drain(&mut changes, &mut view, |t| dirty.note(Some(t)));
        }
        match stream {
            Drained::CaughtUp => {}
            Drained::Lagged => {
                tracing::debug!("orchestrator fell behind the change stream; reloading");
                view = ClusterView::load(store, ())?;
                dirty = Dirty::everything();
            }
            Drained::Closed => return Ok(()),
        }
    }
}

impl Orchestrator {
    /// Reconciles the dirty services and writes the result. Returns the
    /// services to redo (their writes conflicted) and a store error that
    /// ends this leadership (no leader, shut down).
    async fn pass(
        &mut self,
        store: &Store,
        view: &mut ClusterView<()>,
        dirty: Dirty,
        clock: Clock,
        between_chunks: impl FnMut(&mut ClusterView<()>),
    ) -> (Dirty, Option<StoreError>) {
        let ids: Vec<String> = if dirty.all {
            let mut ids: HashSet<String> = view.services.keys().cloned().collect();
            ids.extend(view.tasks_by_service.keys().cloned());
            ids.into_iter().collect()
        } else {
            dirty.services.into_iter().collect()
        };
        let limit = view.history_limit();
        let mut plan = Plan::default();
        for id in &ids {
            let waiting = view
                .services
                .get(id)
                .and_then(|svc| depends::waiting_for(view, svc));
            if let Some(why) = waiting {
                if self.waiting.insert(id.clone(), why.clone()).as_ref() != Some(&why) {
                    tracing::info!(service = %id, "orchestrator: {why}");
                }
                self.wakeups
                    .push(Reverse((clock.instant + depends::RECHECK, id.clone())));
                continue;
            }
            self.waiting.remove(id);
            match view.services.get(id) {
                Some(svc) => match ModeKind::of(svc) {
                    ModeKind::Replicated { replicas } => replicated::reconcile(
                        view,
                        svc,
                        replicas,
                        &mut self.restarts,
                        clock,
                        &mut plan,
                    ),
                    ModeKind::Global => {
                        global::reconcile(view, svc, &mut self.restarts, clock, &mut plan)
                    }
                    ModeKind::ReplicatedJob {
                        max_concurrent,
                        total,
                    } => jobs::reconcile_replicated(
                        view,
                        svc,
                        max_concurrent,
                        total,
                        &mut self.restarts,
                        clock,
                        &mut plan,
                    ),
                    ModeKind::GlobalJob => {
                        jobs::reconcile_global(view, svc, &mut self.restarts, clock, &mut plan)
                    }
                },
                None => reaper::reap_removed(view, id, &mut plan),
            }
            if let Some(at) = plan.wake_at.take() {
                self.wakeups.push(Reverse((at, id.clone())));
            }
        }
        if dirty.all {
            let tasks: HashSet<&str> = view.tasks.keys().map(String::as_str).collect();
            let services: HashSet<&str> = view.services.keys().map(String::as_str).collect();
            self.restarts.forget_missing(&tasks, &services);
        }

        let Plan {
            puts,
            deletes,
            services,
            restarts,
            ..
        } = plan;
        let mut service_of: HashMap<String, String> = HashMap::new();
        let mut batch = Batch::default();
        for t in puts {
            service_of.insert(t.id.clone(), t.service_id.clone());
            batch.put_task(view, t);
        }
        // History is trimmed with this pass's new tasks already counted.
        let mut deletes = deletes;
        for id in &ids {
            if let Some(svc) = view.services.get(id) {
                deletes.extend(reaper::reap_history(view, svc, limit, |t| batch.touches(t)));
            }
        }
        for id in deletes {
            if let Some(t) = view.tasks.get(&id) {
                service_of.insert(id.clone(), t.service_id.clone());
            }
            batch.delete_task(view, &id);
        }
        if batch.is_empty() && services.is_empty() {
            return (Dirty::default(), None);
        }
        let writes = batch.len();
        let committed = if batch.is_empty() {
            Default::default()
        } else {
            commit(store, view, batch, between_chunks).await
        };
        tracing::debug!(
            writes,
            written = committed.written,
            rolled_back = committed.rolled_back.len(),
            "orchestrator pass"
        );
        if committed.error.is_none() {
            let restarted = restarts
                .iter()
                .filter(|id| !committed.rolled_back.contains(id))
                .count();
            self.metrics.restarts.inc_by(restarted as u64);
        }
        let mut again = Dirty::default();
        for id in &committed.rolled_back {
            if let Some(svc) = service_of.get(id) {
                again.services.insert(svc.clone());
            }
        }
        let mut error = committed.error;
        if error.is_none() {
            for svc in services {
                match write_service(store, view, svc).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict { id, .. }) => {
                        again.services.insert(id);
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
        }
        let error = match error {
            Some(e @ (StoreError::NoLeader | StoreError::Shutdown)) => Some(e),
            Some(e) => {
                tracing::warn!(error = %e, "orchestrator could not write its decisions; retrying in {STORE_ERROR_PAUSE:?}");
                tokio::time::sleep(STORE_ERROR_PAUSE).await;
                None
            }
            None => None,
        };
        (again, error)
    }
}

/// Writes a service the loop changed (its update status, or a rollback's
/// spec), guarded by the version it was read at, and puts it in the view.
async fn write_service(
    store: &Store,
    view: &mut ClusterView<()>,
    svc: rswarm_proto::types::Service,
) -> Result<(), StoreError> {
    if !store.is_leader() {
        return Err(StoreError::NoLeader);
    }
    let index = store.write(vec![crate::objects::put(&svc)]).await?;
    let mut svc = svc;
    let meta = svc.meta.get_or_insert_with(Default::default);
    meta.version = Some(rswarm_proto::types::Version { index });
    tracing::info!(
        service = %svc.id,
        state = ?update::update_state(&svc),
        "orchestrator: update status"
    );
    view.services.insert(svc.id.clone(), svc);
    Ok(())
}
