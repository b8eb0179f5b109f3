//! A healthy three-manager cluster: forming it, forwarded writes, version
//! checks, watches, reads and membership removal.

use std::time::Duration;

use super::*;
use crate::{Change, StoreError};

#[derive(Clone, PartialEq, prost::Message)]
struct Probe {
    #[prost(string, tag = "1")]
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_managers_agree_on_every_write() {
    bounded(Duration::from_secs(90), async {
        let root = tempfile::tempdir().expect("tempdir");
        let nodes = three_managers(root.path(), &|_| {}).await;

        let leader = leader_of(&nodes, Duration::from_secs(5)).await;
        let status = nodes[leader].store.status();
        assert_eq!(status.state, "Leader");
        assert_eq!(status.voters, vec![1, 2, 3]);
        assert!(status.learners.is_empty());
        assert_eq!(status.members.len(), 3);
        assert_eq!(
            nodes[leader].store.leader().map(|(id, _)| id),
            Some(nodes[leader].id())
        );

        // Bootstrapping an existing member is refused.
        assert!(matches!(
            nodes[0].store.bootstrap().await,
            Err(StoreError::AlreadyInitialized { .. })
        ));

        let follower = (leader + 1) % 3;
        let watcher = (leader + 2) % 3;
        let mut changes = nodes[watcher].store.watch();

        // A write on a follower is forwarded and lands everywhere with one version.
        let v1 = nodes[follower]
            .store
            .write(vec![put("service", "web", "v1", Some(0))])
            .await
            .expect("forwarded write");
        // The manager that forwarded the write reads it back at once.
        assert_eq!(
            nodes[follower]
                .store
                .get("service", "web")
                .expect("get")
                .map(|o| o.version),
            Some(v1)
        );
        for node in &nodes {
            wait_for_version(node, "service", "web", v1).await;
            let object = node
                .store
                .get("service", "web")
                .expect("get")
                .expect("present");
            assert_eq!(object.value, b"v1");
        }
        let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .expect("change in time")
            .expect("change");
        assert_eq!(
            change,
            Change {
                index: v1,
                kind: "service".into(),
                id: "web".into(),
                value: Some(b"v1".to_vec())
            }
        );

        // One stale expectation rejects the whole batch.
        let rejected = nodes[follower]
            .store
            .write(vec![
                put("service", "api", "x", Some(0)),
                put("service", "web", "v2", Some(0)),
            ])
            .await;
        match rejected {
            Err(StoreError::Conflict {
                kind,
                id,
                expected,
                actual,
            }) => {
                assert_eq!(
                    (kind.as_str(), id.as_str(), expected, actual),
                    ("service", "web", 0, v1)
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }

        // The right expectation goes through; a delete is seen by watchers.
        let v2 = nodes[leader]
            .store
            .write(vec![put("service", "web", "v2", Some(v1))])
            .await
            .expect("update");
        assert!(v2 > v1);
        let v3 = nodes[follower]
            .store
            .write(vec![Op::Delete {
                kind: "service".into(),
                id: "web".into(),
                expect_version: Some(v2),
            }])
            .await
            .expect("delete");
        let mut seen = Vec::new();
        while seen.last().map(|c: &Change| c.index) != Some(v3) {
            let change = tokio::time::timeout(Duration::from_secs(5), changes.recv())
                .await
                .expect("change in time")
                .expect("change");
            seen.push(change);
        }
        // Nothing of the rejected batch was ever applied or announced.
        assert!(seen.iter().all(|c| c.id == "web"));
        assert_eq!(
            seen.iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![v2, v3]
        );
        assert_eq!(seen[1].value, None);
        for node in &nodes {
            wait_until(Duration::from_secs(5), "delete applied", || {
                node.store.status().last_applied >= v3
            })
            .await;
            assert!(node.store.get("service", "web").expect("get").is_none());
            assert!(node.store.get("service", "api").expect("get").is_none());
        }

        // Lists are sorted by id; protobuf helpers decode.
        let mut last = 0;
        for id in ["c", "a", "b"] {
            let value = prost::Message::encode_to_vec(&Probe {
                name: id.to_uppercase(),
            });
            last = nodes[follower]
                .store
                .write(vec![Op::Put {
                    kind: "probe".into(),
                    id: id.into(),
                    value,
                    expect_version: None,
                }])
                .await
                .expect("write probe");
        }
        wait_until(Duration::from_secs(5), "probes applied", || {
            nodes[watcher].store.status().last_applied >= last
        })
        .await;
        let ids: Vec<String> = nodes[watcher]
            .store
            .list("probe")
            .expect("list")
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(ids, vec!["a", "b", "c"]);
        let probes: Vec<(u64, Probe)> = nodes[watcher]
            .store
            .list_messages("probe")
            .expect("list messages");
        assert_eq!(probes.len(), 3);
        assert_eq!(probes[0].1.name, "A");
        let (version, probe) = nodes[watcher]
            .store
            .get_message::<Probe>("probe", "b")
            .expect("get message")
            .expect("present");
        assert_eq!((version, probe.name.as_str()), (last, "B"));

        // Removing a manager, asked on a follower, is forwarded to the leader.
        let removed = nodes[watcher].id();
        nodes[follower]
            .store
            .remove_manager(removed)
            .await
            .expect("remove manager");
        let mut expected: Vec<u64> = vec![1, 2, 3]
            .into_iter()
            .filter(|id| *id != removed)
            .collect();
        expected.sort();
        wait_until(Duration::from_secs(5), "removal applied", || {
            nodes[follower].store.status().voters == expected
        })
        .await;
        assert!(nodes[follower]
            .store
            .status()
            .members
            .iter()
            .all(|(id, _)| *id != removed));

        for node in nodes {
            node.stop().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batches_are_refused_before_raft() {
    bounded(Duration::from_secs(30), async {
        let root = tempfile::tempdir().expect("tempdir");
        let node = Node::fresh(root.path(), 1, &|_| {}).await;
        node.store.bootstrap().await.expect("bootstrap");
        for addr in ["", ":2377", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:99999"] {
            assert!(
                matches!(
                    node.store.add_manager(7, addr.to_string()).await,
                    Err(StoreError::Membership(_))
                ),
                "manager address {addr:?} accepted"
            );
        }
        assert_eq!(node.store.status().members.len(), 1);
        assert!(matches!(
            node.store.write(vec![]).await,
            Err(StoreError::InvalidOp(_))
        ));
        assert!(matches!(
            node.store.write(vec![put("", "x", "v", None)]).await,
            Err(StoreError::InvalidOp(_))
        ));
        assert!(matches!(
            node.store.write(vec![put("a\0b", "x", "v", None)]).await,
            Err(StoreError::InvalidOp(_))
        ));
        let index = node
            .store
            .write(vec![put("k", "x", "v", None)])
            .await
            .expect("write");
        assert_eq!(
            node.store.get("k", "x").expect("get").map(|o| o.version),
            Some(index)
        );
        node.stop().await;
    })
    .await;
}
