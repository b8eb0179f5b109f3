//! Log compaction by size. openraft snapshots after a number of entries
//! (`snapshot_interval`); this watcher also compacts once the log entries appended
//! since the last compaction pass `snapshot_log_bytes`: it asks Raft for a snapshot
//! and, once that snapshot is built, purges the whole log it covers. So the log on
//! disk stays within about that many bytes however large its entries are.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::Inner;

/// How often the appended byte count is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for a requested snapshot before asking again.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

/// Runs for the life of the store; ends when it is dropped or shut down.
pub(crate) async fn watch(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(store) = inner.upgrade() else {
            return;
        };
        if store.is_shut_down() {
            return;
        }
        let limit = store.cfg.snapshot_log_bytes.max(1);
        let Ok(db) = store.db() else {
            continue;
        };
        let appended = db.appended_bytes.load(Ordering::Relaxed);
        if appended < limit {
            continue;
        }
        let raft = store.raft();
        let before = raft.metrics().borrow().snapshot.map(|s| s.index);
        drop(store);
        tracing::info!(
            appended_bytes = appended,
            limit,
            "raft log passed its size limit; compacting"
        );
        if raft.trigger().snapshot().await.is_err() {
            continue; // Raft stopped: `heal` restarts it, and the count starts again.
        }
        let mut metrics = raft.metrics();
        let built = tokio::time::timeout(SNAPSHOT_WAIT, async {
            metrics
                .wait_for(|m| m.snapshot.map(|s| s.index) > before)
                .await
                .ok()
                .and_then(|m| m.snapshot.map(|s| s.index))
        })
        .await;
        let Ok(Some(upto)) = built else {
            tracing::warn!("raft snapshot for log compaction not built within 30s; retrying");
            continue;
        };
        // Only appends touch the count, so it is still at least `appended`.
        db.appended_bytes.fetch_sub(appended, Ordering::Relaxed);
        if raft.trigger().purge_log(upto).await.is_err() {
            continue;
        }
        tracing::info!(upto, "raft log purged up to the new snapshot");
    }
}
