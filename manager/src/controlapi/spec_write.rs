//! A user's write of an object's spec (`node update`, `service update`,
//! `service scale`, `swarm update`), in one place. The caller says which spec
//! version it read; the write is refused only when the spec itself changed
//! since (`ManagerError::OutOfSequence`). Status and allocation writes by the
//! managers (heartbeats, addresses, VIPs, job status) move the object's store
//! version but not its spec version: the store's compare-and-swap then fails
//! and the write is redone here on a fresh read, a bounded number of times,
//! so they never make a user's command fail or resend.

use rswarm_raft::{Store, StoreError};

use crate::error::ManagerError;
use crate::objects::{self, Object};

/// How many times a spec write is redone after status writes raced with it.
pub const SPEC_WRITE_ATTEMPTS: usize = 20;

/// Write a user's change to one object's spec.
///
/// `based_on` is the spec version the user's spec was based on (0: any, the
/// change applies over whatever is stored). `read` finds the object afresh
/// on each try; `change` makes the wanted object of it (it sets the spec and
/// may refuse). The spec version moves on when the spec changed. Answers the
/// object as stored after the write.
pub async fn write_spec<T: Object>(
    store: &Store,
    based_on: u64,
    mut read: impl FnMut() -> Result<T, ManagerError>,
    mut change: impl FnMut(&mut T) -> Result<(), ManagerError>,
) -> Result<T, ManagerError> {
    let mut last = String::new();
    for _ in 0..SPEC_WRITE_ATTEMPTS {
        let mut object = read()?;
        let current = objects::spec_version(&object);
        if based_on != 0 && based_on != current {
            return Err(ManagerError::OutOfSequence {
                kind: T::KIND,
                id: object.key().to_string(),
                expected: based_on,
                actual: current,
            });
        }
        let before = object.spec().cloned();
        change(&mut object)?;
        if object.spec() != before.as_ref() {
            objects::bump_spec_version(&mut object);
        }
        let key = object.key().to_string();
        match store.write(vec![objects::put(&object)]).await {
            Ok(_) => {
                return objects::get::<T>(store, &key)?.ok_or_else(|| {
                    ManagerError::NotFound(format!("{} {key} was removed meanwhile", T::KIND))
                })
            }
            // The object changed since it was read (the store waited until
            // this manager applied that change): look again; if it was only
            // status, the spec version still matches and the write is redone.
            Err(StoreError::Conflict { .. }) => {
                tracing::debug!(kind = T::KIND, id = %key, "a spec write raced with another write; redoing it on a fresh read");
                last = key;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ManagerError::Internal(format!(
        "{} {last} kept changing while its spec was written ({SPEC_WRITE_ATTEMPTS} tries); try again",
        T::KIND
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Node, NodeSpec, NodeState, NodeStatus};
    use std::cell::Cell;

    async fn node_in(store: &Store) -> Node {
        let node = Node {
            id: "n1".into(),
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
            ..Default::default()
        };
        store.write(vec![objects::put(&node)]).await.expect("put");
        objects::get::<Node>(store, "n1")
            .expect("get")
            .expect("node")
    }

    /// A write of the node's status, as the dispatcher's heartbeats do.
    async fn status_write(store: &Store, message: &str) {
        let mut n = objects::get::<Node>(store, "n1")
            .expect("get")
            .expect("node");
        n.status = Some(NodeStatus {
            state: NodeState::Ready as i32,
            message: message.into(),
            addr: String::new(),
        });
        store.write(vec![objects::put(&n)]).await.expect("status");
    }

    fn labelled(label: &str) -> NodeSpec {
        let mut spec = NodeSpec::default();
        spec.annotations
            .get_or_insert_with(Default::default)
            .labels
            .insert(label.into(), "1".into());
        spec
    }

    fn set(spec: NodeSpec) -> impl FnMut(&mut Node) -> Result<(), ManagerError> {
        move |n: &mut Node| {
            n.spec = Some(spec.clone());
            Ok(())
        }
    }

    fn fresh(store: &Store) -> impl FnMut() -> Result<Node, ManagerError> + '_ {
        || Ok(objects::get::<Node>(store, "n1")?.expect("node"))
    }

    #[tokio::test]
    async fn a_new_object_starts_at_spec_version_one() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        assert_eq!(objects::spec_version(&node_in(&store).await), 1);
    }

    #[tokio::test]
    async fn a_write_on_a_spec_changed_underneath_is_refused() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let read = node_in(&store).await;
        let based_on = objects::spec_version(&read);
        // Someone else's spec write lands first.
        write_spec(&store, based_on, fresh(&store), set(labelled("a")))
            .await
            .expect("first write");
        let err = write_spec(&store, based_on, fresh(&store), set(labelled("b")))
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                ManagerError::OutOfSequence {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("update out of sequence"),
            "{err}"
        );
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::Aborted);
        let n = objects::get::<Node>(&store, "n1")
            .expect("get")
            .expect("node");
        assert_eq!(
            n.spec,
            Some(labelled("a")),
            "the refused write changed nothing"
        );
    }

    #[tokio::test]
    async fn a_write_raced_by_a_status_write_is_redone_and_succeeds() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let stale = node_in(&store).await;
        let based_on = objects::spec_version(&stale);
        // The status moves between the user's read and its write.
        status_write(&store, "heartbeat").await;
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            // The first try works on the copy read before the status write.
            if reads.get() == 1 {
                Ok(stale.clone())
            } else {
                Ok(objects::get::<Node>(&store, "n1")?.expect("node"))
            }
        };
        let n = write_spec(&store, based_on, read, set(labelled("a")))
            .await
            .expect("status writes never refuse a spec write");
        assert_eq!(reads.get(), 2, "redone once, on a fresh read");
        assert_eq!(n.spec, Some(labelled("a")));
        assert_eq!(
            n.status.as_ref().map(|s| s.message.as_str()),
            Some("heartbeat"),
            "the status written meanwhile is kept"
        );
        assert_eq!(objects::spec_version(&n), based_on + 1);
    }

    #[tokio::test]
    async fn status_writes_leave_the_spec_version_alone() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let read = node_in(&store).await;
        let based_on = objects::spec_version(&read);
        status_write(&store, "one").await;
        status_write(&store, "two").await;
        let now = objects::get::<Node>(&store, "n1")
            .expect("get")
            .expect("node");
        assert_eq!(objects::spec_version(&now), based_on);
        // So a spec write based on the first read still goes through.
        write_spec(&store, based_on, fresh(&store), set(labelled("a")))
            .await
            .expect("write");
    }

    #[tokio::test]
    async fn an_unchanged_spec_keeps_its_version() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let read = node_in(&store).await;
        let n = write_spec(&store, 1, fresh(&store), set(NodeSpec::default()))
            .await
            .expect("write");
        assert_eq!(objects::spec_version(&n), objects::spec_version(&read));
    }

    #[tokio::test]
    async fn based_on_zero_applies_over_any_spec() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        node_in(&store).await;
        write_spec(&store, 0, fresh(&store), set(labelled("a")))
            .await
            .expect("first");
        let n = write_spec(&store, 0, fresh(&store), set(labelled("b")))
            .await
            .expect("second");
        assert_eq!(n.spec, Some(labelled("b")));
        assert_eq!(objects::spec_version(&n), 3);
    }

    #[tokio::test]
    async fn a_refusal_from_the_change_is_returned_as_it_is() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        node_in(&store).await;
        let err = write_spec(&store, 0, fresh(&store), |_: &mut Node| {
            Err(ManagerError::FailedPrecondition("no".into()))
        })
        .await
        .expect_err("refused");
        assert!(
            matches!(err, ManagerError::FailedPrecondition(_)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn endless_races_give_up_after_a_bounded_number_of_tries() {
        let (store, _dir) = crate::orchestrator::testing::bare_store().await;
        let stale = node_in(&store).await;
        status_write(&store, "moved").await;
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(stale.clone())
        };
        let err = write_spec(&store, 0, read, set(labelled("a")))
            .await
            .expect_err("gives up");
        assert_eq!(reads.get(), SPEC_WRITE_ATTEMPTS);
        assert!(err.to_string().contains("kept changing"), "{err}");
    }
}
