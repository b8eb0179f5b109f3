//! Log compaction: after `snapshot_interval` entries a snapshot is built and the
//! log purged, and a manager that joins afterwards catches up from the snapshot.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_manager_catches_up_from_a_snapshot() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let small_snapshots = |cfg: &mut StoreConfig| cfg.snapshot_interval = 20;
        let first = Node::fresh(root.path(), 1, &small_snapshots).await;
        first.store.bootstrap().await.expect("bootstrap");

        let mut last = 0;
        for i in 0..60 {
            last = first
                .store
                .write(vec![put(
                    "config",
                    &format!("c{i:02}"),
                    &format!("value {i}"),
                    None,
                )])
                .await
                .expect("write");
        }
        // A later write replaces one object and deletes another, so the snapshot is
        // not just the history of puts.
        first
            .store
            .write(vec![Op::Delete {
                kind: "config".into(),
                id: "c00".into(),
                expect_version: None,
            }])
            .await
            .expect("delete");
        for i in 60..70 {
            last = first
                .store
                .write(vec![put(
                    "config",
                    &format!("c{i:02}"),
                    &format!("value {i}"),
                    None,
                )])
                .await
                .expect("write");
        }

        wait_until(
            Duration::from_secs(10),
            "a snapshot and a purged log",
            || {
                let m = first.store.raft_metrics();
                m.snapshot.is_some_and(|s| s.index >= 40) && m.purged.is_some_and(|p| p.index >= 20)
            },
        )
        .await;
        let purged = first
            .store
            .raft_metrics()
            .purged
            .map(|p| p.index)
            .unwrap_or(0);
        assert!(first.store.status().snapshot_index >= 40);
        // The metrics saw it: snapshots built with their size, every write
        // proposed here timed, the commit index at the last write at least.
        let metrics = &first.cfg.metrics;
        assert!(metrics.snapshots.get() >= 1);
        assert!(metrics.snapshot_bytes.get() > 0);
        assert!(metrics.proposal_seconds.count() >= 71);
        assert!(metrics.apply_seconds.count() >= 71);
        assert!(metrics.commit_index.get() >= last as i64);

        // The log from index 0 is gone, so a joining manager can only catch up by snapshot.
        let second = Node::fresh(root.path(), 2, &small_snapshots).await;
        let mut changes = second.store.watch();
        first
            .store
            .add_manager(2, second.cfg.addr.clone())
            .await
            .expect("add manager");
        wait_until(
            Duration::from_secs(10),
            "the new manager to apply everything",
            || second.store.status().last_applied >= last,
        )
        .await;

        let m = second.store.raft_metrics();
        let installed = m.snapshot.map(|s| s.index).unwrap_or(0);
        assert!(
            installed > purged,
            "installed snapshot {installed}, leader purged {purged}"
        );
        assert!(
            m.purged.is_some(),
            "the new manager's log starts after its snapshot"
        );
        assert_eq!(second.store.status().voters, vec![1, 2]);
        assert!(
            second.cfg.metrics.snapshots.get() >= 1,
            "an installed snapshot is counted"
        );

        let mine = first.store.list("config").expect("list");
        let theirs = second.store.list("config").expect("list");
        assert_eq!(mine.len(), 69);
        assert_eq!(mine, theirs);
        assert!(second.store.get("config", "c00").expect("get").is_none());

        // Installing the snapshot announced every object in it.
        let mut announced = std::collections::BTreeSet::new();
        while let Ok(change) = changes.try_recv() {
            if change.value.is_some() {
                announced.insert(change.id);
            }
        }
        assert!(
            announced.len() >= 60,
            "announced {} objects",
            announced.len()
        );

        // The pair keeps working, and the new manager restarts from its own snapshot.
        let index = second
            .store
            .write(vec![put("config", "after", "x", Some(0))])
            .await
            .expect("forwarded write");
        wait_for_version(&first, "config", "after", index).await;
        wait_for_version(&second, "config", "after", index).await;
        let cfg = second.stop().await;
        let second = Node::start(cfg, None).await;
        assert_eq!(second.store.list("config").expect("list").len(), 70);

        second.stop().await;
        first.stop().await;
    })
    .await;
}

/// A few big entries compact the log long before `snapshot_interval` entries: once
/// the appended bytes pass `snapshot_log_bytes`, a snapshot is built and the whole
/// log it covers is purged, and the store keeps its objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_entries_compact_the_log_by_size_not_count() {
    bounded(Duration::from_secs(60), async {
        let root = tempfile::tempdir().expect("tempdir");
        let small_log = |cfg: &mut StoreConfig| {
            cfg.snapshot_interval = 10_000;
            cfg.snapshot_log_bytes = 256 * 1024;
        };
        let node = Node::fresh(root.path(), 1, &small_log).await;
        node.store.bootstrap().await.expect("bootstrap");

        let big = "x".repeat(32 * 1024);
        let mut last = 0;
        for i in 0..30 {
            last = node
                .store
                .write(vec![put("config", "big", &format!("{i}{big}"), None)])
                .await
                .expect("write");
        }
        assert!(last < 100, "30 writes are far below the entry interval");

        wait_until(
            Duration::from_secs(20),
            "a snapshot and the log purged up to it",
            || {
                let m = node.store.raft_metrics();
                match (m.snapshot, m.purged) {
                    (Some(s), Some(p)) => s.index >= 8 && p.index == s.index,
                    _ => false,
                }
            },
        )
        .await;

        let value = node
            .store
            .get("config", "big")
            .expect("get")
            .expect("the object is still there");
        assert!(String::from_utf8_lossy(&value.value).starts_with("29x"));

        // After a restart the store loads from the snapshot and the short log.
        let cfg = node.stop().await;
        let node = Node::start(cfg, None).await;
        let value = node
            .store
            .get("config", "big")
            .expect("get")
            .expect("the object survives a restart");
        assert!(String::from_utf8_lossy(&value.value).starts_with("29x"));
        node.stop().await;
    })
    .await;
}
