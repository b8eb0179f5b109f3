//! What the manager measures, as Prometheus metrics: the scheduler (tasks
//! scheduled, pending tasks by reason, scheduling latency), the
//! orchestrators (restarts), the dispatcher (agent sessions, missed
//! heartbeats, assignment messages), and the cluster as this manager's copy
//! of the store shows it (`cluster`: nodes, managers, the leader, services'
//! replicas, tasks by state, rolling updates), computed at scrape time.
//!
//! The daemon registers the handles once ([`ManagerMetrics::register`]) and
//! hands them to every manager it starts in
//! [`crate::ManagerSettings::metrics`]; a manager shows the cluster view
//! while it runs (`Manager::start` attaches its store, `stop` detaches it).
//! Counters and histograms are measured where the work is done, by the loops
//! that run on the leader, so they grow on whichever manager led at the time.

mod cluster;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use rswarm_raft::Store;

pub use cluster::ClusterCollector;

/// Why a task waits in PENDING: the scheduler filter that refused the most
/// nodes (the first such in the pipeline's order), or that there is no node.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: &'static str,
}

/// The kind of an assignments message sent to an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AssignmentKind {
    /// The complete set of the node's tasks (at session start).
    Complete,
    /// Changes since the last message.
    Incremental,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AssignmentLabels {
    pub r#type: &'static str,
}

/// The scheduler's handles.
#[derive(Clone, Debug)]
pub(crate) struct SchedulerMetrics {
    pub scheduled: Counter,
    pub pending: Family<ReasonLabels, Gauge>,
    pub latency: Histogram,
}

impl Default for SchedulerMetrics {
    fn default() -> Self {
        SchedulerMetrics {
            scheduled: Counter::default(),
            pending: Family::default(),
            // 1 ms .. ~65 s.
            latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
        }
    }
}

impl SchedulerMetrics {
    /// The tasks left pending after a pass, by reason (replaces the last
    /// pass's counts).
    pub(crate) fn set_pending(&self, by_reason: &std::collections::BTreeMap<&'static str, i64>) {
        self.pending.clear();
        for (reason, n) in by_reason {
            self.pending.get_or_create(&ReasonLabels { reason }).set(*n);
        }
    }
}

/// The orchestrators' handles.
#[derive(Clone, Debug, Default)]
pub(crate) struct OrchestratorMetrics {
    pub restarts: Counter,
}

/// The dispatcher's handles.
#[derive(Clone, Debug, Default)]
pub(crate) struct DispatcherMetrics {
    pub sessions: Gauge,
    pub heartbeats_missed: Counter,
    pub assignments: Family<AssignmentLabels, Counter>,
}

impl DispatcherMetrics {
    /// One assignments message of `kind` was sent.
    pub(crate) fn sent(&self, kind: AssignmentKind) {
        self.assignments
            .get_or_create(&AssignmentLabels {
                r#type: match kind {
                    AssignmentKind::Complete => "complete",
                    AssignmentKind::Incremental => "incremental",
                },
            })
            .inc();
    }

    /// An agent's session, counted in `sessions` until the guard is dropped.
    pub(crate) fn session(&self) -> SessionGuard {
        self.sessions.inc();
        SessionGuard(self.sessions.clone())
    }
}

/// Counts one open agent session while it lives.
pub(crate) struct SessionGuard(Gauge);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every manager metric handle. Cheap to clone; clones share values.
#[derive(Clone, Debug, Default)]
pub struct ManagerMetrics {
    pub(crate) scheduler: SchedulerMetrics,
    pub(crate) orchestrator: OrchestratorMetrics,
    pub(crate) dispatcher: DispatcherMetrics,
    pub(crate) cluster: Arc<ClusterCollector>,
}

impl ManagerMetrics {
    /// New handles, registered in `registry` (the daemon's, prefixed
    /// `rswarm`): `scheduler_`, `orchestrator_`, `dispatcher_` and the
    /// cluster view.
    pub fn register(registry: &mut Registry) -> Self {
        let m = ManagerMetrics::default();
        let s = registry.sub_registry_with_prefix("scheduler");
        s.register(
            "tasks_scheduled",
            "Tasks the scheduler assigned to a node (counted on the leader that placed them)",
            m.scheduler.scheduled.clone(),
        );
        s.register(
            "pending_tasks",
            "Tasks the leader's scheduler could not place in its last pass, by the filter that refused the most nodes (no_nodes: no node at all)",
            m.scheduler.pending.clone(),
        );
        s.register(
            "scheduling_latency_seconds",
            "Time a task waited from PENDING until the scheduler assigned it",
            m.scheduler.latency.clone(),
        );
        registry.sub_registry_with_prefix("orchestrator").register(
            "restarts",
            "Tasks started again by the restart policy after their previous task ended (counted on the leader)",
            m.orchestrator.restarts.clone(),
        );
        let d = registry.sub_registry_with_prefix("dispatcher");
        d.register(
            "sessions",
            "Agents holding an assignments session with this manager",
            m.dispatcher.sessions.clone(),
        );
        d.register(
            "heartbeats_missed",
            "Nodes this manager marked Down because they missed their heartbeats",
            m.dispatcher.heartbeats_missed.clone(),
        );
        d.register(
            "assignment_messages",
            "Assignments messages sent to agents, by type (complete set or incremental)",
            m.dispatcher.assignments.clone(),
        );
        registry.register_collector(Box::new(m.cluster.clone()));
        m
    }

    /// Show `store`'s cluster view (a manager started on it).
    pub(crate) fn attach(&self, store: &Store) {
        self.cluster.attach(store);
    }

    /// A manager stopped: no cluster view until the next one starts.
    pub(crate) fn detach(&self) {
        self.cluster.detach();
    }
}

#[cfg(test)]
mod tests;
