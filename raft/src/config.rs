//! What a manager tells its Raft store at start: where the data lives, who it is,
//! and the timing knobs. Also turns those knobs into openraft's own `Config`.

use std::path::PathBuf;
use std::time::Duration;

use openraft::SnapshotPolicy;

use crate::error::StoreError;

/// Settings for one manager's replicated store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The sled database lives here (the caller passes `<data-dir>/raft`).
    pub data_dir: PathBuf,
    /// This manager's Raft id, stable across restarts.
    pub raft_id: u64,
    /// This manager's advertised `host:port` (its gRPC listener).
    pub addr: String,
    /// How often the leader sends heartbeats (default 150ms). Also the time a
    /// follower has to answer one AppendEntries call.
    pub heartbeat_interval: Duration,
    /// Lower bound of the randomised election timeout (default 750ms).
    pub election_timeout_min: Duration,
    /// Upper bound of the randomised election timeout (default 1500ms).
    pub election_timeout_max: Duration,
    /// Log entries since the last snapshot that trigger a new one (default 10 000).
    pub snapshot_interval: u64,
    /// Bytes of log appended since the last compaction that trigger a snapshot and
    /// a purge of the whole log it covers, whatever the entry count (default 64 MiB):
    /// a few big entries written often (a crash-looping task with a large spec)
    /// must not grow the log for 10 000 entries.
    pub snapshot_log_bytes: u64,
    /// How long `write`, and the search for a leader in membership changes,
    /// may take before giving up with `NoLeader` (default 5s).
    pub write_timeout: Duration,
    /// Encryption at rest: log entries, object values and snapshots are sealed
    /// with this key before they reach the disk (`None`: stored in clear).
    pub data_key: Option<crate::DataKey>,
    /// Where this store reports its Raft metrics (the daemon registers them
    /// once and hands the same handles to every store it opens).
    pub metrics: crate::RaftMetrics,
}

impl StoreConfig {
    /// A config with the default timings.
    pub fn new(data_dir: impl Into<PathBuf>, raft_id: u64, addr: impl Into<String>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            raft_id,
            addr: addr.into(),
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(750),
            election_timeout_max: Duration::from_millis(1500),
            snapshot_interval: 10_000,
            snapshot_log_bytes: 64 << 20,
            write_timeout: Duration::from_secs(5),
            data_key: None,
            metrics: crate::RaftMetrics::default(),
        }
    }

    /// How long a leader waits for a joining manager to catch up (as a learner)
    /// before it gives up promoting it: six write timeouts, at least 30 seconds,
    /// because a join may have to ship a whole snapshot.
    pub(crate) fn join_timeout(&self) -> Duration {
        (self.write_timeout * 6).max(Duration::from_secs(30))
    }

    /// openraft's config for these settings.
    pub(crate) fn openraft_config(&self) -> Result<openraft::Config, StoreError> {
        let millis = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        let snapshot_interval = self.snapshot_interval.max(1);
        let config = openraft::Config {
            cluster_name: "rswarm".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval).max(1),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            // Per snapshot chunk; generous because a chunk is up to 1 MiB.
            install_snapshot_timeout: millis(self.election_timeout_max).max(3_000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_interval),
            // Keep only a few entries behind a snapshot: a follower further behind
            // than that gets the snapshot instead.
            max_in_snapshot_log_to_keep: (snapshot_interval / 10).min(500),
            snapshot_max_chunk_size: 1024 * 1024,
            max_payload_entries: 300,
            purge_batch_size: (snapshot_interval / 4).clamp(1, 256),
            ..Default::default()
        };
        config.validate().map_err(|e| {
            StoreError::Config(format!("raft timings for manager {}: {e}", self.raft_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_make_a_valid_openraft_config() {
        let cfg = StoreConfig::new("/tmp/x", 1, "127.0.0.1:2377");
        assert_eq!(cfg.heartbeat_interval, Duration::from_millis(150));
        assert_eq!(cfg.snapshot_interval, 10_000);
        let raft = cfg.openraft_config().expect("valid");
        assert_eq!(raft.heartbeat_interval, 150);
        assert_eq!(raft.max_in_snapshot_log_to_keep, 500);
        assert!(matches!(
            raft.snapshot_policy,
            SnapshotPolicy::LogsSinceLast(10_000)
        ));
    }

    #[test]
    fn an_election_timeout_below_the_heartbeat_is_refused() {
        let mut cfg = StoreConfig::new("/tmp/x", 1, "127.0.0.1:2377");
        cfg.election_timeout_min = Duration::from_millis(100);
        assert!(matches!(cfg.openraft_config(), Err(StoreError::Config(_))));
    }
}
