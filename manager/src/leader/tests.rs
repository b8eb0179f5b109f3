//! The supervisor starts its loops when the manager leads, starts a loop
//! again when it ends, and stops every loop when leadership is gone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{supervise, LeaderLoop};
use crate::error::ManagerError;
use crate::orchestrator::testing::bare_store;

/// Counts what runs of a test loop do.
#[derive(Default)]
struct Runs {
    started: AtomicUsize,
    running: AtomicUsize,
}

/// Counts down `running` when a run is dropped (aborted or ended).
struct Running(Arc<Runs>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_run_while_leading_and_stop_with_leadership() {
    let (store, _dir) = bare_store().await;
    let forever = Arc::new(Runs::default());
    let failing = Arc::new(Runs::default());
    let loop_of = |runs: &Arc<Runs>, fail: bool| {
        let runs = runs.clone();
        move |_store| {
            let runs = runs.clone();
            async move {
                runs.started.fetch_add(1, Ordering::SeqCst);
                runs.running.fetch_add(1, Ordering::SeqCst);
                let _running = Running(runs);
                if fail {
                    return Err(ManagerError::Internal("test loop failed".into()));
                }
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    };
    let supervisor = supervise(
        store.clone(),
        vec![
            LeaderLoop::new("forever", loop_of(&forever, false)),
            LeaderLoop::new("failing", loop_of(&failing, true)),
        ],
    );
    wait_for("the loop to start", || {
        forever.running.load(Ordering::SeqCst) == 1
    })
    .await;
    // A loop that ends is started again within the term.
    wait_for("the failing loop to be started again", || {
        failing.started.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(forever.started.load(Ordering::SeqCst), 1);

    // No leader any more: every loop is stopped, and the supervisor ends
    // with the store.
    store.shutdown().await.expect("shutdown");
    tokio::time::timeout(Duration::from_secs(10), supervisor)
        .await
        .expect("supervisor ends with the store")
        .expect("supervisor task");
    assert_eq!(forever.running.load(Ordering::SeqCst), 0);
    assert_eq!(failing.running.load(Ordering::SeqCst), 0);
}
