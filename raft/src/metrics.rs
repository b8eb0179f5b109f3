//! What the store measures about Raft, as Prometheus metrics under
//! `rswarm_raft_`: term, commit and applied index, snapshot index, whether
//! this manager leads, voters, leader changes, proposal and apply latency,
//! snapshots built and their size.
//!
//! The handles are made once per daemon ([`RaftMetrics::register`]) and
//! given to each store it opens in [`crate::StoreConfig::metrics`]; a store
//! made without them ([`Default`]) measures into handles nobody serves.
//! Gauges that mirror openraft's own report (term, applied, leader, voters)
//! are kept current by a task that follows that report (`follow`), which
//! also counts leader changes; the commit index is set where the log store
//! saves it, latencies where a proposal is made and where an entry is
//! applied, snapshots where one is built or installed.

use std::sync::Weak;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::Inner;

/// How long `follow` trusts one metrics channel before it looks again (the
/// Raft instance is replaced when the store heals).
const RECHECK: Duration = Duration::from_secs(1);

/// The Raft metric handles. Cheap to clone; clones share values.
#[derive(Clone, Debug)]
pub struct RaftMetrics {
    pub(crate) term: Gauge,
    pub(crate) commit_index: Gauge,
    pub(crate) applied_index: Gauge,
    pub(crate) snapshot_index: Gauge,
    pub(crate) leader: Gauge,
    pub(crate) voters: Gauge,
    pub(crate) leader_changes: Counter,
    pub(crate) proposal_seconds: Histogram,
    pub(crate) apply_seconds: Histogram,
    pub(crate) snapshots: Counter,
    pub(crate) snapshot_bytes: Gauge,
}

impl Default for RaftMetrics {
    fn default() -> Self {
        RaftMetrics {
            term: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            snapshot_index: Gauge::default(),
            leader: Gauge::default(),
            voters: Gauge::default(),
            leader_changes: Counter::default(),
            // 0.5 ms .. ~8 s: a commit needs a round trip to a quorum and fsyncs.
            proposal_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            // 20 µs .. ~0.3 s: one entry's batch into sled.
            apply_seconds: Histogram::new(exponential_buckets(0.00002, 2.0, 15)),
            snapshots: Counter::default(),
            snapshot_bytes: Gauge::default(),
        }
    }
}

impl RaftMetrics {
    /// New handles, registered under `raft_` in `registry` (the daemon's,
    /// prefixed `rswarm`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = RaftMetrics::default();
        let r = registry.sub_registry_with_prefix("raft");
        r.register("term", "Current Raft term", m.term.clone());
        r.register(
            "commit_index",
            "Highest Raft log index this manager knows to be committed",
            m.commit_index.clone(),
        );
        r.register(
            "applied_index",
            "Last Raft log index applied to the store",
            m.applied_index.clone(),
        );
        r.register(
            "snapshot_index",
            "Raft log index of the last snapshot",
            m.snapshot_index.clone(),
        );
        r.register(
            "leader",
            "1 if this manager is the Raft leader",
            m.leader.clone(),
        );
        r.register(
            "voters",
            "Voting members of the Raft group",
            m.voters.clone(),
        );
        r.register(
            "leader_changes",
            "Times this manager saw a new Raft leader",
            m.leader_changes.clone(),
        );
        r.register(
            "proposal_duration_seconds",
            "Time from proposing a write on the leader to its commit and apply",
            m.proposal_seconds.clone(),
        );
        r.register(
            "apply_duration_seconds",
            "Time to apply one Raft log entry to the store",
            m.apply_seconds.clone(),
        );
        r.register(
            "snapshots",
            "Raft snapshots built or installed by this manager",
            m.snapshots.clone(),
        );
        r.register(
            "snapshot_size_bytes",
            "Size of the last Raft snapshot built or installed",
            m.snapshot_bytes.clone(),
        );
        m
    }

    /// A snapshot of `bytes` was built or installed.
    pub(crate) fn snapshot(&self, bytes: usize) {
        self.snapshots.inc();
        self.snapshot_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Mirror one openraft report into the gauges; count a leader change
    /// when the known leader differs from `last_leader` (updated).
    fn mirror(
        &self,
        m: &openraft::RaftMetrics<u64, openraft::BasicNode>,
        last_leader: &mut Option<u64>,
    ) {
        let index = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
        self.term.set(index(m.current_term));
        self.applied_index
            .set(index(m.last_applied.map(|l| l.index).unwrap_or(0)));
        self.snapshot_index
            .set(index(m.snapshot.map(|l| l.index).unwrap_or(0)));
        self.leader
            .set((m.state == openraft::ServerState::Leader) as i64);
        self.voters
            .set(m.membership_config.membership().voter_ids().count() as i64);
        if let Some(leader) = m.current_leader {
            if *last_leader != Some(leader) {
                self.leader_changes.inc();
                *last_leader = Some(leader);
            }
        }
    }

    /// This manager's store stopped: it leads nothing any more.
    fn stopped(&self) {
        self.leader.set(0);
    }
}

/// Keeps the mirrored gauges current until the store shuts down or is dropped.
pub(crate) async fn follow(inner: Weak<Inner>) {
    let mut last_leader = None;
    loop {
        let Some(store) = inner.upgrade() else { break };
        if store.is_shut_down() {
            store.metrics().stopped();
            break;
        }
        let metrics = store.metrics().clone();
        let mut rx = store.raft().metrics();
        drop(store);
        metrics.mirror(&rx.borrow_and_update(), &mut last_leader);
        match tokio::time::timeout(RECHECK, rx.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // That Raft instance stopped; look at the current one.
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn every_family_is_registered_under_rswarm_raft_with_help() {
        let mut registry = Registry::with_prefix("rswarm");
        let m = RaftMetrics::register(&mut registry);
        m.proposal_seconds.observe(0.003);
        m.snapshot(1234);
        let mut out = String::new();
        encode(&mut out, &registry).expect("encode");
        for family in [
            "rswarm_raft_term",
            "rswarm_raft_commit_index",
            "rswarm_raft_applied_index",
            "rswarm_raft_snapshot_index",
            "rswarm_raft_leader",
            "rswarm_raft_voters",
            "rswarm_raft_leader_changes_total",
            "rswarm_raft_proposal_duration_seconds",
            "rswarm_raft_apply_duration_seconds",
            "rswarm_raft_snapshots_total",
            "rswarm_raft_snapshot_size_bytes",
        ] {
            assert!(
                out.contains(&format!("\n{family} "))
                    || out.contains(&format!("\n{family}_"))
                    || out.contains(&format!("{family}_count")),
                "{family} missing:\n{out}"
            );
        }
        assert!(
            out.contains("# HELP rswarm_raft_term Current Raft term"),
            "{out}"
        );
        assert!(
            out.contains("rswarm_raft_proposal_duration_seconds_count 1"),
            "{out}"
        );
        assert!(
            out.contains("rswarm_raft_snapshot_size_bytes 1234"),
            "{out}"
        );
        assert!(out.contains("rswarm_raft_snapshots_total 1"), "{out}");
    }

    #[test]
    fn a_new_leader_is_counted_once() {
        let m = RaftMetrics::default();
        let mut report = openraft::RaftMetrics::<u64, openraft::BasicNode>::new_initial(1);
        let mut last = None;
        m.mirror(&report, &mut last);
        assert_eq!(m.leader_changes.get(), 0, "no leader known yet");
        report.current_leader = Some(2);
        report.current_term = 3;
        m.mirror(&report, &mut last);
        m.mirror(&report, &mut last);
        assert_eq!(m.leader_changes.get(), 1);
        assert_eq!(m.term.get(), 3);
        assert_eq!(m.leader.get(), 0);
        report.current_leader = Some(1);
        report.state = openraft::ServerState::Leader;
        m.mirror(&report, &mut last);
        assert_eq!(m.leader_changes.get(), 2);
        assert_eq!(m.leader.get(), 1);
        m.stopped();
        assert_eq!(m.leader.get(), 0);
    }
}
