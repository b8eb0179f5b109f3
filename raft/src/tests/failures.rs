//! Losing managers: leader failover, writes without quorum, restarting from the
//! data dir, and rebuilding from one survivor with `force_new_cluster`.

use std::time::{Duration, Instant};

use super::*;
use crate::StoreError;

/// How much later than its timeout a refusal may come on a loaded 2-core machine;
/// the point is that it comes (speed is bench-foundation's).
const SLACK: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_writes() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes = three_managers(root.path(), &|_| {}).await;
        let before = nodes[0]
            .store
            .write(vec![put("node", "a", "1", None)])
            .await
            .expect("write");

        let leader = leader_of(&nodes, Duration::from_secs(30)).await;
        let old_leader = nodes.remove(leader);
        let old_id = old_leader.id();
        for node in &nodes {
            wait_for_version(node, "node", "a", before).await;
        }
        let stopped_at = Instant::now();
        old_leader.stop().await;

        // Writes on a survivor succeed once a new leader is elected: well within 5s.
        let index = loop {
            match nodes[0]
                .store
                .write(vec![put("node", "b", "2", None)])
                .await
            {
                Ok(index) => break index,
                // How fast is bench-foundation's business; here only that it happens.
                Err(StoreError::NoLeader) if stopped_at.elapsed() < Duration::from_secs(60) => {
                    continue
                }
                Err(e) => panic!("write after failover: {e}"),
            }
        };
        assert!(index > before);
        let new_leader = leader_of(&nodes, Duration::from_secs(30)).await;
        assert_ne!(nodes[new_leader].id(), old_id);
        for node in &nodes {
            wait_for_version(node, "node", "b", index).await;
        }
        for node in nodes {
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_quorum_fail_with_no_leader_in_time() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes = three_managers(root.path(), &|_| {}).await;
        let leader = leader_of(&nodes, Duration::from_secs(30)).await;

        // Case 1: the leader is left alone. It still believes it leads, but cannot commit.
        let alone = nodes.remove(leader);
        let stopped_member = nodes[0].id();
        for node in nodes.drain(..) {
            node.stop().await;
        }
        let timeout = alone.cfg.write_timeout;
        let started = Instant::now();
        let result = alone.store.write(vec![put("node", "x", "1", None)]).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::NoLeader)),
            "got {result:?}"
        );
        // It gives up after the write timeout rather than waiting for ever (the
        // slack is for a loaded machine; `bounded` catches a hang).
        assert!(
            took >= timeout,
            "gave up after {took:?}, before the timeout"
        );
        assert!(took <= timeout + SLACK, "took {took:?}");
        assert!(StoreError::NoLeader
            .to_string()
            .contains("does not have a leader"));

        // Membership changes give up the same way: removing a real member needs
        // a commit it cannot get.
        let started = Instant::now();
        let result = alone.store.remove_manager(stopped_member).await;
        assert!(
            matches!(result, Err(StoreError::NoLeader)),
            "remove of a member without quorum: {result:?}"
        );
        assert!(started.elapsed() <= timeout + SLACK);
        alone.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_its_peers_gets_no_leader() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes = three_managers(root.path(), &|_| {}).await;
        let leader = leader_of(&nodes, Duration::from_secs(30)).await;
        let follower = nodes.remove((leader + 1) % 3);
        for node in nodes.drain(..) {
            node.stop().await;
        }

        let timeout = follower.cfg.write_timeout;
        for _ in 0..2 {
            let started = Instant::now();
            let result = follower
                .store
                .write(vec![put("node", "y", "1", None)])
                .await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(StoreError::NoLeader)),
                "got {result:?}"
            );
            assert!(took <= timeout + SLACK, "took {took:?}");
        }
        let started = Instant::now();
        let result = follower.store.add_manager(7, "127.0.0.1:1".into()).await;
        assert!(
            matches!(result, Err(StoreError::NoLeader)),
            "got {result:?}"
        );
        assert!(started.elapsed() <= timeout + SLACK);
        follower.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_manager_keeps_objects_and_membership() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes = three_managers(root.path(), &|_| {}).await;
        let mut last = 0;
        for i in 0..10 {
            last = nodes[0]
                .store
                .write(vec![put("task", &format!("t{i}"), "running", None)])
                .await
                .expect("write");
        }
        let leader = leader_of(&nodes, Duration::from_secs(30)).await;
        let restarted = nodes.remove((leader + 1) % 3);
        wait_for_version(&restarted, "task", "t9", last).await;
        let applied_before = restarted.store.status().last_applied;
        let cfg = restarted.stop().await;

        // Reopened from its data dir: the state is there at once, nothing to replay.
        let node = Node::start(cfg, None).await;
        let status = node.store.status();
        assert!(node.store.is_initialized());
        assert_eq!(status.voters, vec![1, 2, 3]);
        assert!(status.last_applied >= applied_before, "{status:?}");
        assert_eq!(node.store.list("task").expect("list").len(), 10);
        assert_eq!(
            node.store
                .get("task", "t9")
                .expect("get")
                .map(|o| o.version),
            Some(last)
        );

        // And it rejoins: a new write reaches it.
        let index = nodes[0]
            .store
            .write(vec![put("task", "t10", "new", None)])
            .await
            .expect("write");
        wait_for_version(&node, "task", "t10", index).await;

        nodes.push(node);
        for node in nodes {
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_rebuilds_from_one_survivor() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let mut nodes = three_managers(root.path(), &|_| {}).await;
        let mut versions = Vec::new();
        for i in 0..5 {
            let id = format!("s{i}");
            let v = nodes[1]
                .store
                .write(vec![put("secret", &id, "data", None)])
                .await
                .expect("write");
            versions.push((id, v));
        }
        let survivor = nodes.pop().expect("three nodes");
        for (id, v) in &versions {
            wait_for_version(&survivor, "secret", id, *v).await;
        }
        for node in nodes.drain(..) {
            node.stop().await;
        }
        // Without quorum the survivor cannot write.
        assert!(matches!(
            survivor
                .store
                .write(vec![put("secret", "late", "x", None)])
                .await,
            Err(StoreError::NoLeader)
        ));
        let cfg = survivor.stop().await;

        crate::Store::force_new_cluster(&cfg).expect("force new cluster");
        let node = Node::start(cfg, None).await;
        wait_until(Duration::from_secs(5), "the survivor to lead alone", || {
            node.store.is_leader()
        })
        .await;
        let status = node.store.status();
        assert_eq!(status.voters, vec![3]);
        assert!(status.learners.is_empty());
        assert_eq!(status.members.len(), 1);
        for (id, v) in &versions {
            assert_eq!(
                node.store
                    .get("secret", id)
                    .expect("get")
                    .map(|o| o.version),
                Some(*v)
            );
        }
        let newest = versions.iter().map(|(_, v)| *v).max().unwrap_or(0);
        let index = node
            .store
            .write(vec![put("secret", "s0", "rotated", Some(versions[0].1))])
            .await
            .expect("write after force-new-cluster");
        assert!(index > newest);

        // It stays a working single-manager cluster across a restart.
        let cfg = node.stop().await;
        let node = Node::start(cfg, None).await;
        wait_until(Duration::from_secs(5), "leader again after restart", || {
            node.store.is_leader()
        })
        .await;
        assert_eq!(
            node.store
                .get("secret", "s0")
                .expect("get")
                .map(|o| o.version),
            Some(index)
        );
        node.store
            .write(vec![put("secret", "s5", "x", None)])
            .await
            .expect("write");
        node.stop().await;
    })
    .await;
}
