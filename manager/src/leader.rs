//! The leader supervisor: the one place that starts every leader-only loop
//! when this manager becomes the Raft leader and stops them all when it
//! stops being leader (swarmkit's `becomeLeader` / `becomeFollower`).
//!
//! A leader-only loop is a plain future (`run(store)`) that works as if it
//! led forever: the supervisor waits on the store's leadership
//! (`Store::wait_leadership`, no polling), spawns every loop when this
//! manager leads, and aborts them (and waits until they are gone) as soon as
//! it does not, so two terms' loops never run side by side. A loop that ends
//! on its own during a term (the store failed under it, or its write found
//! no leader a moment before the supervisor noticed) is started again after
//! `RESTART_PAUSE`, from a fresh read of the store.
//!
//! The loops (`every_loop`): the orchestrators, the allocator, the
//! scheduler, and housekeeping (heartbeat failure detection, Raft membership
//! following node roles, finishing a root CA rotation).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rswarm_raft::Store;
use tokio::task::{JoinHandle, JoinSet};

use crate::dispatcher::{self, DispatcherService};
use crate::error::ManagerError;
use crate::{allocator, ca, orchestrator, roles, scheduler};

/// Pause before a loop that ended during a term is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// One term's run of a loop.
type Run = Pin<Box<dyn Future<Output = Result<(), ManagerError>> + Send>>;

/// A leader-only loop: its name (for logs) and how to run it for a term.
#[derive(Clone)]
pub struct LeaderLoop {
    name: &'static str,
    run: Arc<dyn Fn(Store) -> Run + Send + Sync>,
}

impl LeaderLoop {
    /// A loop that `run` runs until it fails or is aborted.
    pub fn new<F, Fut>(name: &'static str, run: F) -> LeaderLoop
    where
        F: Fn(Store) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ManagerError>> + Send + 'static,
    {
        LeaderLoop {
            name,
            run: Arc::new(move |store| Box::pin(run(store))),
        }
    }

    /// Runs the loop for the rest of the term, starting it again whenever
    /// it ends.
    async fn keep_running(self, store: Store) {
        loop {
            match (self.run)(store.clone()).await {
                Ok(()) => tracing::info!(r#loop = self.name, "leader loop ended; starting over"),
                Err(e) => {
                    tracing::warn!(r#loop = self.name, error = %e, "leader loop stopped; starting over")
                }
            }
            tokio::time::sleep(RESTART_PAUSE).await;
        }
    }
}

/// Every leader-only loop of a manager whose dispatcher is `dispatcher`,
/// measuring into `metrics`.
pub(crate) fn every_loop(
    dispatcher: DispatcherService,
    metrics: crate::metrics::ManagerMetrics,
) -> Vec<LeaderLoop> {
    let orchestrated = metrics.orchestrator.clone();
    let scheduled = metrics.scheduler.clone();
    vec![
        LeaderLoop::new("orchestrator", move |store| {
            orchestrator::run_measured(store, orchestrated.clone())
        }),
        LeaderLoop::new("allocator", allocator::run),
        LeaderLoop::new("scheduler", move |store| {
            scheduler::run_measured(store, scheduled.clone())
        }),
        LeaderLoop::new("housekeeping", move |store| {
            housekeeping(store, dispatcher.clone())
        }),
    ]
}

/// Starts the supervisor of `loops` on `store`. It runs until aborted (its
/// loops are aborted with it) or the store shuts down.
pub fn supervise(store: Store, loops: Vec<LeaderLoop>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if store.wait_leadership(true).await.is_err() {
                return;
            }
            tracing::info!(
                term = store.status().term,
                "leading: starting the leader loops"
            );
            let mut running = JoinSet::new();
            let mut names = std::collections::HashMap::new();
            for l in &loops {
                let id = running.spawn(l.clone().keep_running(store.clone())).id();
                names.insert(id, l.name);
            }
            loop {
                tokio::select! {
                    _ = store.wait_leadership(false) => break,
                    Some(done) = running.join_next_with_id() => {
                        // `keep_running` never returns: only a panic ends it.
                        if let Err(e) = done {
                            let name = names.get(&e.id()).copied().unwrap_or("?");
                            tracing::error!(r#loop = name, error = %e, "leader loop panicked; it stays stopped until the next term");
                        }
                    }
                }
            }
            running.shutdown().await;
            tracing::info!("no longer leading: leader loops stopped");
        }
    })
}

/// The leader's periodic chores: marks nodes that missed their heartbeats
/// Down, keeps Raft membership in line with node roles, and finishes a root
/// CA rotation once every node has renewed.
async fn housekeeping(store: Store, dispatcher: DispatcherService) -> Result<(), ManagerError> {
    // The failure detector forgets this term when the loop stops, so a
    // later term starts afresh (see `dispatcher`).
    let _term = ForgetTerm(&dispatcher);
    let mut tick = tokio::time::interval(dispatcher::CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = dispatcher.check_heartbeats().await {
            tracing::debug!(error = %e, "heartbeat check");
        }
        if let Err(e) = roles::reconcile(&store).await {
            tracing::debug!(error = %e, "role reconciliation");
        }
        if let Err(e) = ca::rotation::reconcile(&store).await {
            tracing::debug!(error = %e, "root CA rotation");
        }
    }
}

/// Has the dispatcher forget its term when dropped.
struct ForgetTerm<'a>(&'a DispatcherService);

impl Drop for ForgetTerm<'_> {
    fn drop(&mut self) {
        self.0.forget_term();
    }
}

#[cfg(test)]
mod tests;
