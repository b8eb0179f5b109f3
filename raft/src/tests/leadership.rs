//! Waiting for this manager's leadership to change (`Store::wait_leadership`),
//! as the manager's leader supervisor does.

use std::time::Duration;

use super::*;
use crate::StoreError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_is_awaited_from_bootstrap_to_shutdown() {
    bounded(Duration::from_secs(60), async {
        let root = tempfile::tempdir().expect("tempdir");
        let node = Node::fresh(root.path(), 1, &|_| {}).await;
        // A store that is not bootstrapped does not lead: no wait.
        node.store
            .wait_leadership(false)
            .await
            .expect("not leading yet");

        let store = node.store.clone();
        let leads = tokio::spawn(async move { store.wait_leadership(true).await });
        node.store.bootstrap().await.expect("bootstrap");
        tokio::time::timeout(Duration::from_secs(10), leads)
            .await
            .expect("leadership noticed in time")
            .expect("waiter task")
            .expect("leading");
        assert!(node.store.is_leader());

        let store = node.store.clone();
        let follows = tokio::spawn(async move { store.wait_leadership(false).await });
        let store = node.store.clone();
        node.stop().await;
        tokio::time::timeout(Duration::from_secs(10), follows)
            .await
            .expect("loss of leadership noticed in time")
            .expect("waiter task")
            .expect("not leading");
        // A store that is shut down never leads again.
        assert!(matches!(
            store.wait_leadership(true).await,
            Err(StoreError::Shutdown)
        ));
    })
    .await;
}
